/* test_es_envelope.c: event envelopes and checkpoints from untrusted bytes.
 *
 * Round trips of every envelope field, then hostile inputs: every prefix,
 * trailing bytes, oversize and deep inputs, too many values (the 4 MB
 * map of arrays of small integers), huge declared lengths (must
 * fail fast, without allocating in proportion), non-canonical integers,
 * unsorted and duplicate keys, wrong and missing fields, and signatures
 * that must not verify (flipped bit, another key, another domain). Each
 * rejection is checked for its error code and for a message naming what
 * was wrong. */
#include <inttypes.h>
#include <malloc.h>

#include "../../eventstore/eventstore.h"

#include "test.h"

static dcr_key *key_a, *key_b;
static uint8_t pub_a[32], pub_b[32];
static uint8_t room[ES_ROOM_ID_BYTES];

/* ---- hand-made envelopes ----------------------------------------------------- */

#define NF 7
typedef struct {
	const char *key[NF + 2];
	dcr_buf val[NF + 2];
	int n;
} fields;

static void fields_std(fields *f)
{
	static const char *const keys[NF] = {"actor", "body", "room", "seq", "ts", "type", "v"};
	char hex[ES_ROOM_HEX_BYTES];
	dcr_mpw w;

	memset(f, 0, sizeof(*f));
	for (int i = 0; i < NF + 2; i++)
		dcr_buf_init(&f->val[i]);
	for (int i = 0; i < NF; i++)
		f->key[i] = keys[i];
	f->n = NF;
	dcr_mpw_init(&w, &f->val[0]);
	dcr_mpw_bin(&w, pub_a, 32);
	dcr_mpw_init(&w, &f->val[1]);
	dcr_mpw_map(&w, 1);
	dcr_mpw_str(&w, "dataset");
	dcr_mpw_str(&w, "bank_customers");
	es_room_format(room, hex);
	dcr_mpw_init(&w, &f->val[2]);
	dcr_mpw_str(&w, hex);
	dcr_mpw_init(&w, &f->val[3]);
	dcr_mpw_uint(&w, 3);
	dcr_mpw_init(&w, &f->val[4]);
	dcr_mpw_uint(&w, 1764072000000ull);
	dcr_mpw_init(&w, &f->val[5]);
	dcr_mpw_str(&w, "dataset.provisioned");
	dcr_mpw_init(&w, &f->val[6]);
	dcr_mpw_uint(&w, 1);
}

static void fields_release(fields *f)
{
	for (int i = 0; i < NF + 2; i++)
		dcr_buf_release(&f->val[i]);
}

static int field_index(fields *f, const char *key)
{
	for (int i = 0; i < f->n; i++)
		if (strcmp(f->key[i], key) == 0)
			return i;
	DCR_ASSERT(0);
}

/* Replaces the value of key with raw msgpack bytes. */
static void fields_set(fields *f, const char *key, const void *raw, size_t n)
{
	int i = field_index(f, key);

	dcr_buf_reset(&f->val[i]);
	dcr_buf_append(&f->val[i], raw, n);
}

static void fields_remove(fields *f, const char *key)
{
	int i = field_index(f, key);
	dcr_buf tmp = f->val[i];

	for (int j = i; j + 1 < f->n; j++) {
		f->key[j] = f->key[j + 1];
		f->val[j] = f->val[j + 1];
	}
	f->n--;
	f->val[f->n] = tmp; /* keep it for release */
	dcr_buf_reset(&f->val[f->n]);
	f->key[f->n] = NULL;
}

/* Envelope bytes in the order of f, then a signature by k under domain. */
static void fields_entry(fields *f, const dcr_key *k, const char *domain, dcr_buf *out)
{
	uint8_t sig[64];
	dcr_mpw w;

	dcr_buf_reset(out);
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, (uint32_t)f->n);
	for (int i = 0; i < f->n; i++) {
		dcr_mpw_str(&w, f->key[i]);
		dcr_mpw_raw(&w, f->val[i].data, f->val[i].len);
	}
	DCR_ASSERT(dcr_sign(k, domain, out->data, out->len, sig) == 0);
	dcr_buf_append(out, sig, 64);
}

/* Decodes and expects code rc and a message containing needle. */
static void expect_decode(const dcr_buf *e, int code, const char *needle, const char *what)
{
	es_event ev;
	dcr_err err;
	int rc;

	dcr_err_clear(&err);
	rc = es_event_decode(e->data, e->len, &ev, &err);
	CHECK(rc == code, "%s: decode gave %s (%d) want %s: %s", what, dcr_errname(rc), rc,
	      dcr_errname(code), err.msg);
	if (rc != 0 && needle)
		CHECK(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, err.msg,
		      needle);
	if (rc == 0)
		es_event_release(&ev);
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_round_trip(void)
{
	static const struct {
		uint64_t seq, ts;
		const char *type;
		int body;
	} cases[] = {
	    {0, 0, "room.created", 0},
	    {1, 1764072000000ull, "dataset.provisioned", 1},
	    {127, 128, "a", 2},
	    {UINT64_MAX, UINT64_MAX, "x.y_z.", 1},
	    {65536, 4294967296ull,
	     "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk", 2},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		dcr_buf body, e;
		dcr_mpw w;
		es_event ev;
		dcr_err err;
		char hex[ES_ROOM_HEX_BYTES];
		uint64_t u;
		const char *s;
		size_t sn;
		int rc;

		dcr_buf_init(&body);
		dcr_buf_init(&e);
		dcr_mpw_init(&w, &body);
		if (cases[c].body == 0) {
			dcr_mpw_map(&w, 0);
		} else if (cases[c].body == 1) {
			dcr_mpw_map(&w, 2);
			dcr_mpw_str(&w, "n");
			dcr_mpw_uint(&w, 42);
			dcr_mpw_str(&w, "name");
			dcr_mpw_str(&w, "bank_customers");
		} else {
			dcr_mpw_map(&w, 1);
			dcr_mpw_str(&w, "deep");
			for (int i = 0; i < 10; i++)
				dcr_mpw_array(&w, 1);
			dcr_mpw_bin(&w, "\x00\x01", 2);
		}
		dcr_buf_append(&e, "prefix", 6); /* build appends */
		rc = es_event_build(key_a, room, cases[c].seq, cases[c].ts, cases[c].type,
		                    body.data, body.len, &e, &err);
		CHECK(rc == 0, "build %zu: %s", c, err.msg);
		CHECK(memcmp(e.data, "prefix", 6) == 0, "build appends");
		rc = es_event_decode(e.data + 6, e.len - 6, &ev, &err);
		CHECK(rc == 0, "decode %zu: %s", c, err.msg);
		if (rc != 0)
			goto next;
		CHECK(ev.env == e.data + 6 && ev.env_n == e.len - 6 - 64, "env points into entry");
		CHECK(memcmp(ev.sig, e.data + e.len - 64, 64) == 0, "sig");
		CHECK(memcmp(ev.actor, pub_a, 32) == 0, "actor");
		CHECK(memcmp(ev.room, room, 16) == 0, "room");
		es_room_format(room, hex);
		CHECK(strcmp(ev.room_hex, hex) == 0, "room_hex");
		CHECK(ev.seq == cases[c].seq, "seq %" PRIu64, ev.seq);
		CHECK(ev.ts_ms == cases[c].ts, "ts");
		CHECK(strcmp(ev.type, cases[c].type) == 0, "type %s", ev.type);
		CHECK(dcr_mp_type(ev.body) == DCR_MP_MAP, "body is a map");
		if (cases[c].body == 1) {
			CHECK(dcr_mp_u64(dcr_mp_get(ev.body, "n"), &u) == 0 && u == 42, "body.n");
			CHECK(dcr_mp_str(dcr_mp_get(ev.body, "name"), &s, &sn) == 0 && sn == 14 &&
			          memcmp(s, "bank_customers", 14) == 0,
			      "body.name");
		}
		CHECK(es_event_verify(&ev, &err) == 0, "verify %zu: %s", c, err.msg);
		es_event_release(&ev);
		es_event_release(&ev); /* idempotent */
	next:
		dcr_buf_release(&body);
		dcr_buf_release(&e);
	}
}

static void test_build_rejects(void)
{
	dcr_buf e, body;
	dcr_mpw w;
	dcr_err err;
	const char *bad_types[] = {
	    "",
	    "Room.created",
	    "run2",
	    "a-b",
	    "room created",
	    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl"};

	dcr_buf_init(&e);
	dcr_buf_init(&body);
	dcr_mpw_init(&w, &body);
	dcr_mpw_map(&w, 0);
	for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
		int rc =
		    es_event_build(key_a, room, 0, 0, bad_types[i], body.data, body.len, &e, &err);

		CHECK(rc == DCR_EFORMAT && e.len == 0, "type '%s' refused (%d)", bad_types[i], rc);
	}
	dcr_buf_reset(&body);
	dcr_mpw_array(&w, 0);
	CHECK(es_event_build(key_a, room, 0, 0, "a", body.data, body.len, &e, &err) == DCR_EFORMAT,
	      "array body refused");
	CHECK(es_event_build(key_a, room, 0, 0, "a", "\x81\xa1", 2, &e, &err) == DCR_ETRUNC,
	      "truncated body refused: %s", err.msg);
	CHECK(e.len == 0, "nothing appended on failure");
	/* An envelope over the limit. */
	{
		size_t big = DCR_EVENT_BYTES_MAX - 16;
		char *s = dcr_malloc(big);

		memset(s, 'x', big);
		dcr_buf_reset(&body);
		dcr_mpw_map(&w, 1);
		dcr_mpw_str(&w, "s");
		dcr_mpw_strn(&w, s, big);
		CHECK(es_event_build(key_a, room, 0, 0, "a", body.data, body.len, &e, &err) ==
		          DCR_ELIMIT,
		      "oversize envelope refused: %s", err.msg);
		CHECK(e.len == 0, "nothing appended on failure");
		free(s);
	}
	dcr_buf_release(&e);
	dcr_buf_release(&body);
}

static void test_truncation_and_trailing(void)
{
	fields f;
	dcr_buf e, t;

	dcr_buf_init(&e);
	dcr_buf_init(&t);
	fields_std(&f);
	fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
	expect_decode(&e, 0, NULL, "standard entry");
	for (size_t n = 0; n < e.len; n++) {
		es_event ev;
		dcr_err err;
		int rc = es_event_decode(e.data, n, &ev, &err);

		CHECK(rc == DCR_ETRUNC, "prefix of %zu/%zu bytes: %s (%s)", n, e.len,
		      dcr_errname(rc), err.msg);
	}
	for (size_t extra = 1; extra <= 3; extra++) {
		dcr_buf_reset(&t);
		dcr_buf_append(&t, e.data, e.len);
		for (size_t i = 0; i < extra; i++)
			dcr_buf_append_u8(&t, 0);
		expect_decode(&t, DCR_ETRAILING, "offset", "trailing bytes");
	}
	fields_release(&f);
	dcr_buf_release(&e);
	dcr_buf_release(&t);
}

static void test_limits(void)
{
	fields f;
	dcr_buf e, v;
	dcr_mpw w;
	struct mallinfo2 before, after;
	bool measure = getenv("DCR_SANITIZED") == NULL;

	dcr_buf_init(&e);
	dcr_buf_init(&v);
	dcr_mpw_init(&w, &v);

	/* Deep nesting in the body. */
	fields_std(&f);
	dcr_mpw_map(&w, 1);
	dcr_mpw_str(&w, "d");
	for (int i = 0; i < 40; i++)
		dcr_mpw_array(&w, 1);
	dcr_mpw_nil(&w);
	fields_set(&f, "body", v.data, v.len);
	fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
	expect_decode(&e, DCR_ELIMIT, "nesting", "deep nesting");
	fields_release(&f);

	/* Huge declared lengths: array32, map32, str32, bin32 of 0xffffffff. */
	static const uint8_t huge[][5] = {{0xdd, 0xff, 0xff, 0xff, 0xff},
	                                  {0xdf, 0xff, 0xff, 0xff, 0xff},
	                                  {0xdb, 0xff, 0xff, 0xff, 0xff},
	                                  {0xc6, 0xff, 0xff, 0xff, 0xff}};
	for (size_t h = 0; h < 4; h++) {
		uint64_t t0;

		/* As the whole envelope, then as the value of the body. */
		dcr_buf_reset(&e);
		dcr_buf_append(&e, huge[h], 5);
		for (int i = 0; i < 64; i++)
			dcr_buf_append_u8(&e, 0x11);
		if (measure)
			before = mallinfo2();
		t0 = dcr_mono_ms();
		expect_decode(&e, DCR_ELIMIT, "exceeds", "huge declared length");
		CHECK(dcr_mono_ms() - t0 < 5000, "fails fast");
		if (measure) {
			after = mallinfo2();
			CHECK(after.uordblks < before.uordblks + 65536,
			      "huge header 0x%02x allocated %zu bytes", huge[h][0],
			      after.uordblks - before.uordblks);
		}
		fields_std(&f);
		dcr_buf_reset(&v);
		dcr_mpw_map(&w, 1);
		dcr_mpw_str(&w, "x");
		dcr_buf_append(&v, huge[h], 5);
		fields_set(&f, "body", v.data, v.len);
		fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
		expect_decode(&e, DCR_ELIMIT, "exceeds", "huge declared length in body");
		fields_release(&f);
	}

	/* A map declaring more entries than bytes follow is truncation. */
	fields_std(&f);
	fields_set(&f, "body", "\xde\x10\x00", 3);
	fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
	expect_decode(&e, DCR_ETRUNC, NULL, "map16 of 4096 entries, nothing follows");
	fields_release(&f);

	/* An envelope over DCR_EVENT_BYTES_MAX (whatever is inside). */
	dcr_buf_reset(&e);
	dcr_buf_reserve(&e, DCR_EVENT_BYTES_MAX + 65);
	memset(e.data, 0xc0, DCR_EVENT_BYTES_MAX + 65);
	e.len = DCR_EVENT_BYTES_MAX + 65;
	expect_decode(&e, DCR_ELIMIT, "limit", "oversize envelope");

	/* Values in the envelope: 17 + n for a body {x: [0 x n]}; at most
	 * DCR_EVENT_OBJECTS_MAX, counted before unpacking. */
	for (uint32_t n = DCR_EVENT_OBJECTS_MAX - 17; n <= DCR_EVENT_OBJECTS_MAX - 16; n++) {
		fields_std(&f);
		dcr_buf_reset(&v);
		dcr_mpw_map(&w, 1);
		dcr_mpw_str(&w, "x");
		dcr_mpw_array(&w, n);
		for (uint32_t i = 0; i < n; i++)
			dcr_mpw_uint(&w, 0);
		fields_set(&f, "body", v.data, v.len);
		fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
		if (n + 17 <= DCR_EVENT_OBJECTS_MAX)
			expect_decode(&e, 0, NULL, "values at the limit");
		else
			expect_decode(&e, DCR_ELIMIT, "more than 4096 values", "one value too many");
		fields_release(&f);
	}
	/* The memory attack as an event: a body of arrays of small integers
	 * (~4 MB, which msgpack-c would unpack into ~96 MB) is refused
	 * without unpacking it. */
	fields_std(&f);
	dcr_buf_reset(&v);
	dcr_mpw_map(&w, 40);
	for (uint32_t k = 0; k < 40; k++) {
		char key[16];
		snprintf(key, sizeof key, "k%02u", k);
		dcr_mpw_str(&w, key);
		dcr_mpw_array(&w, 100000);
		for (uint32_t i = 0; i < 100000; i++)
			dcr_mpw_uint(&w, i % 128);
	}
	fields_set(&f, "body", v.data, v.len);
	fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
	CHECK(e.len > 4000000 && e.len <= DCR_EVENT_BYTES_MAX + 64, "attack size %zu", e.len);
	if (measure)
		before = mallinfo2();
	expect_decode(&e, DCR_ELIMIT, "more than 4096 values", "map of arrays of small integers");
	if (measure) {
		after = mallinfo2();
		CHECK(after.uordblks < before.uordblks + 65536,
		      "the refused attack allocated %zu bytes", after.uordblks - before.uordblks);
	}
	fields_release(&f);

	/* A string in the body longer than the whole envelope may be. */
	fields_std(&f);
	dcr_buf_reset(&v);
	dcr_mpw_map(&w, 1);
	dcr_mpw_str(&w, "s");
	dcr_buf_append(&v, "\xdb\x00\x50\x00\x00", 5); /* 5 MiB string, absent */
	fields_set(&f, "body", v.data, v.len);
	fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
	expect_decode(&e, DCR_ELIMIT, "string", "oversize string");
	fields_release(&f);

	dcr_buf_release(&e);
	dcr_buf_release(&v);
}

static void test_canonical(void)
{
	fields f;
	dcr_buf e;

	dcr_buf_init(&e);
	/* 5 as uint8 instead of a positive fixint. */
	fields_std(&f);
	fields_set(&f, "seq", "\xcc\x05", 2);
	fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
	expect_decode(&e, DCR_ENONCANON, "non-canonical", "seq 0xcc 0x05");
	fields_set(&f, "seq", "\xcd\x00\x05", 3);
	fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
	expect_decode(&e, DCR_ENONCANON, "non-canonical", "seq uint16 5");
	fields_set(&f, "seq", "\xd0\x05", 2);
	fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
	expect_decode(&e, DCR_ENONCANON, "non-canonical", "seq int8 5");
	fields_set(&f, "seq", "\xca\x40\xa0\x00\x00", 5);
	fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
	expect_decode(&e, DCR_ENONCANON, "float32", "seq float32");
	fields_release(&f);

	/* A short string in str8 form. */
	fields_std(&f);
	fields_set(&f, "type", "\xd9\x01\x61", 3);
	fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
	expect_decode(&e, DCR_ENONCANON, "non-canonical", "type as str8");
	fields_release(&f);

	/* Unsorted keys: swap seq and ts. */
	fields_std(&f);
	{
		dcr_buf tmp = f.val[3];
		const char *k = f.key[3];

		f.val[3] = f.val[4];
		f.key[3] = f.key[4];
		f.val[4] = tmp;
		f.key[4] = k;
	}
	fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
	expect_decode(&e, DCR_ENONCANON, "order", "unsorted keys");
	fields_release(&f);

	/* Duplicate key: a second "v". */
	fields_std(&f);
	f.key[7] = "v";
	dcr_buf_append_u8(&f.val[7], 0x01);
	f.n = 8;
	fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
	expect_decode(&e, DCR_ENONCANON, "order", "duplicate key");
	fields_release(&f);

	/* Unsorted keys inside the body. */
	fields_std(&f);
	fields_set(&f, "body", "\x82\xa1\x62\x01\xa1\x61\x02", 7);
	fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
	expect_decode(&e, DCR_ENONCANON, "order", "unsorted body keys");
	fields_release(&f);
	dcr_buf_release(&e);
}

static void test_fields(void)
{
	static const struct {
		const char *key;
		const char *raw;
		size_t n;
		const char *needle;
	} bad[] = {
	    {"actor", "\xa1x", 2, "'actor' must be binary"},
	    {"actor", "\xc4\x03\x01\x02\x03", 5, "'actor' must be 32 bytes"},
	    {"body", "\x90", 1, "'body' must be a map"},
	    {"body", "\xc0", 1, "'body' must be a map"},
	    {"room", "\x01", 1, "'room' must be a string"},
	    {"room", "\xa3\x61\x62\x63", 4, "'room' must be 32 lowercase hex"},
	    {"room",
	     "\xd9\x20"
	     "0123456789ABCDEF0123456789abcdef",
	     34, "'room' must be 32 lowercase hex"},
	    {"room",
	     "\xd9\x20"
	     "0123456789abcdef0123456789abcdeg",
	     34, "'room' must be 32 lowercase hex"},
	    {"room",
	     "\xd9\x21"
	     "0123456789abcdef0123456789abcdef0",
	     35, "'room' must be 32 lowercase hex"},
	    {"seq", "\xff", 1, "'seq' must be an unsigned integer"},
	    {"seq", "\xa1\x31", 2, "'seq' must be an unsigned integer"},
	    {"seq", "\xcb\x40\x14\x00\x00\x00\x00\x00\x00", 9, "'seq' must be an unsigned"},
	    {"ts", "\xc3", 1, "'ts' must be an unsigned integer"},
	    {"type", "\x01", 1, "'type' must be a string"},
	    {"type", "\xa0", 1, "'type' must be 1 to 63"},
	    {"type", "\xa4Room", 5, "not one of [a-z._]"},
	    {"type", "\xa4run2", 5, "not one of [a-z._]"},
	    {"type", "\xa3\x61\x00\x62", 4, "not one of [a-z._]"},
	    {"v", "\x02", 1, "unsupported version 2"},
	    {"v", "\x00", 1, "unsupported version 0"},
	    {"v", "\xa1\x31", 2, "'v' must be an unsigned integer"},
	};
	fields f;
	dcr_buf e;

	dcr_buf_init(&e);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char what[64];

		fields_std(&f);
		fields_set(&f, bad[i].key, bad[i].raw, bad[i].n);
		fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
		snprintf(what, sizeof(what), "bad %s #%zu", bad[i].key, i);
		expect_decode(&e, DCR_EFORMAT, bad[i].needle, what);
		fields_release(&f);
	}
	/* type of 64 characters (ES_TYPE_BYTES_MAX) */
	{
		uint8_t raw[2 + 64];

		raw[0] = 0xd9;
		raw[1] = 64;
		memset(raw + 2, 'a', 64);
		fields_std(&f);
		fields_set(&f, "type", raw, sizeof(raw));
		fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
		expect_decode(&e, DCR_EFORMAT, "1 to 63", "type of 64 chars");
		fields_release(&f);
	}
	/* Every field missing in turn. */
	static const char *const names[] = {"actor", "body", "room", "seq", "ts", "type", "v"};
	for (size_t i = 0; i < 7; i++) {
		char needle[64];

		fields_std(&f);
		fields_remove(&f, names[i]);
		fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
		snprintf(needle, sizeof(needle), "missing field '%s'", names[i]);
		expect_decode(&e, DCR_EFORMAT, needle, needle);
		fields_release(&f);
	}
	/* Unknown fields, before, between and after the known ones. */
	static const char *const extra[] = {"a", "seq_hint", "zz"};
	for (size_t i = 0; i < 3; i++) {
		char needle[64];
		int pos;

		fields_std(&f);
		for (pos = 0; pos < f.n && strcmp(f.key[pos], extra[i]) < 0; pos++)
			;
		for (int j = f.n; j > pos; j--) {
			dcr_buf tmp = f.val[j];

			f.key[j] = f.key[j - 1];
			f.val[j] = f.val[j - 1];
			f.val[j - 1] = tmp;
		}
		f.key[pos] = extra[i];
		dcr_buf_reset(&f.val[pos]);
		dcr_buf_append_u8(&f.val[pos], 0x00);
		f.n++;
		fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
		snprintf(needle, sizeof(needle), "unknown field '%s'", extra[i]);
		expect_decode(&e, DCR_EFORMAT, needle, needle);
		fields_release(&f);
	}
	/* Control characters of untrusted keys never reach the message. */
	fields_std(&f);
	f.key[7] = "zz\n\x1b[31m";
	dcr_buf_append_u8(&f.val[7], 0x00);
	f.n = 8;
	fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
	expect_decode(&e, DCR_EFORMAT, "unknown field 'zz??[31m'", "control characters");
	fields_release(&f);
	/* Not a map at all. */
	dcr_buf_reset(&e);
	dcr_buf_append(&e, "\x93\x01\x02\x03", 4);
	for (int i = 0; i < 64; i++)
		dcr_buf_append_u8(&e, 0);
	expect_decode(&e, DCR_EFORMAT, "expected a map", "array envelope");
	dcr_buf_release(&e);
}

static void test_signatures(void)
{
	fields f;
	dcr_buf e;
	es_event ev;
	dcr_err err;

	dcr_buf_init(&e);
	fields_std(&f);

	/* Control: signed by the actor under the event domain. */
	fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
	CHECK(es_event_decode(e.data, e.len, &ev, &err) == 0, "%s", err.msg);
	CHECK(es_event_verify(&ev, &err) == 0, "control verifies: %s", err.msg);
	es_event_release(&ev);

	/* Every single bit of the signature flipped in turn. */
	for (size_t bit = 0; bit < 64 * 8; bit += 7) {
		e.data[e.len - 64 + bit / 8] ^= (uint8_t)(1u << (bit % 8));
		CHECK(es_event_decode(e.data, e.len, &ev, &err) == 0, "decodes");
		CHECK(es_event_verify(&ev, &err) == DCR_ESIG, "flipped sig bit %zu verifies", bit);
		es_event_release(&ev);
		e.data[e.len - 64 + bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}

	/* A changed envelope byte (ts) under the original signature. */
	{
		size_t env_n = e.len - 64;
		bool found = false;

		/* the key "ts" (0xa2 't' 's'), then a uint64 (0xcf + 8 bytes) */
		for (size_t i = 0; i + 12 <= env_n; i++)
			if (memcmp(e.data + i, "\xa2ts\xcf", 4) == 0) {
				e.data[i + 11] ^= 1;
				found = true;
				break;
			}
		CHECK(found, "ts located");
		CHECK(es_event_decode(e.data, e.len, &ev, &err) == 0, "decodes");
		CHECK(es_event_verify(&ev, &err) == DCR_ESIG, "tampered ts verifies");
		CHECK(strstr(err.msg, "seq 3 (dataset.provisioned)") != NULL, "message: %s",
		      err.msg);
		es_event_release(&ev);
	}

	/* Wrong key: actor is A, signature by B. */
	fields_entry(&f, key_b, DCR_DOMAIN_EVENT, &e);
	CHECK(es_event_decode(e.data, e.len, &ev, &err) == 0, "decodes");
	CHECK(es_event_verify(&ev, &err) == DCR_ESIG, "signature by another key verifies");
	es_event_release(&ev);

	/* Wrong domain: the same bytes signed by A for authentication. */
	fields_entry(&f, key_a, DCR_DOMAIN_AUTH, &e);
	CHECK(es_event_decode(e.data, e.len, &ev, &err) == 0, "decodes");
	CHECK(es_event_verify(&ev, &err) == DCR_ESIG, "auth-domain signature verifies as event");
	es_event_release(&ev);
	fields_entry(&f, key_a, DCR_DOMAIN_CHECKPOINT, &e);
	CHECK(es_event_decode(e.data, e.len, &ev, &err) == 0, "decodes");
	CHECK(es_event_verify(&ev, &err) == DCR_ESIG, "checkpoint-domain signature verifies");
	es_event_release(&ev);

	/* Actor bytes that are not a point on the curve. */
	{
		uint8_t bad[34] = {0xc4, 32};

		memset(bad + 2, 0xff, 32);
		fields_set(&f, "actor", bad, sizeof(bad));
		fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
		CHECK(es_event_decode(e.data, e.len, &ev, &err) == 0, "decodes");
		CHECK(es_event_verify(&ev, &err) != 0, "invalid actor key verifies");
		es_event_release(&ev);
	}
	/* Small-order actor keys: with R = identity and S = 0 the signature
	 * "verifies" for many messages under OpenSSL; es_event_verify must
	 * refuse the key itself, whatever the message. */
	{
		static const char *const weak[] = {
		    "0000000000000000000000000000000000000000000000000000000000000000",
		    "0100000000000000000000000000000000000000000000000000000000000000",
		    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
		    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
		    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		};
		uint8_t raw[34] = {0xc4, 32};

		CHECK(!es_key_is_weak(pub_a) && !es_key_is_weak(pub_b), "real keys are not weak");
		for (size_t i = 0; i < 7; i++)
			for (int sign = 0; sign < 2; sign++)
				for (int m = 0; m < 8; m++) {
					DCR_ASSERT(dcr_hex_decode(weak[i], 64, raw + 2, 32) == 0);
					raw[2 + 31] |= (uint8_t)(sign << 7);
					CHECK(es_key_is_weak(raw + 2), "weak key %zu", i);
					fields_set(&f, "actor", raw, sizeof(raw));
					{
						uint8_t ts = (uint8_t)m; /* another message */

						fields_set(&f, "ts", &ts, 1);
					}
					fields_entry(&f, key_a, DCR_DOMAIN_EVENT, &e);
					memset(e.data + e.len - 64, 0, 64);
					e.data[e.len - 64] = 0x01; /* R = identity, S = 0 */
					CHECK(es_event_decode(e.data, e.len, &ev, &err) == 0,
					      "decodes");
					CHECK(es_event_verify(&ev, &err) == DCR_EKEY,
					      "weak actor key %zu (sign %d, msg %d) refused", i,
					      sign, m);
					es_event_release(&ev);
				}
	}
	fields_release(&f);
	dcr_buf_release(&e);
}

static void test_rooms(void)
{
	uint8_t r[16], r2[16];
	char hex[ES_ROOM_HEX_BYTES];

	es_room_new(r);
	es_room_format(r, hex);
	CHECK(strlen(hex) == 32, "hex length");
	CHECK(es_room_parse(hex, r2) == 0 && memcmp(r, r2, 16) == 0, "round trip");
	CHECK(es_room_parse("0123456789ABCDEF0123456789abcdef", r2) == DCR_EFORMAT, "uppercase");
	CHECK(es_room_parse("0123456789abcdef0123456789abcde", r2) == DCR_EFORMAT, "31 chars");
	CHECK(es_room_parse("0123456789abcdef0123456789abcdef0", r2) == DCR_EFORMAT, "33 chars");
	CHECK(es_room_parse("0123456789abcdef0123456789abcdeg", r2) == DCR_EFORMAT, "g");
	CHECK(es_room_parse("", r2) == DCR_EFORMAT, "empty");
	CHECK(es_room_parse(NULL, r2) == DCR_EFORMAT, "NULL");
}

static void test_checkpoints(void)
{
	es_checkpoint cp, cp2;
	dcr_buf b, t;
	dcr_err err;

	dcr_buf_init(&b);
	dcr_buf_init(&t);
	memset(&cp, 0, sizeof(cp));
	memcpy(cp.room, room, 16);
	cp.size = 12345;
	for (int i = 0; i < 32; i++)
		cp.root[i] = (uint8_t)i;
	cp.ts_ms = 1764072000123ull;
	CHECK(es_checkpoint_sign(&cp, key_b) == 0, "sign");
	CHECK(memcmp(cp.key, pub_b, 32) == 0, "signer key set");
	CHECK(es_checkpoint_verify(&cp, &err) == 0, "verify: %s", err.msg);
	es_checkpoint_encode(&cp, &b);
	CHECK(b.len < ES_CHECKPOINT_BYTES_MAX, "size %zu", b.len);
	CHECK(es_checkpoint_decode(b.data, b.len, &cp2, &err) == 0, "decode: %s", err.msg);
	CHECK(memcmp(&cp, &cp2, sizeof(cp)) == 0, "round trip");
	CHECK(es_checkpoint_verify(&cp2, &err) == 0, "decoded verifies");

	/* Every field matters. */
	cp2 = cp;
	cp2.size++;
	CHECK(es_checkpoint_verify(&cp2, &err) == DCR_ESIG, "size changed");
	CHECK(strstr(err.msg, "size 12346") != NULL, "message: %s", err.msg);
	cp2 = cp;
	cp2.root[5] ^= 1;
	CHECK(es_checkpoint_verify(&cp2, &err) == DCR_ESIG, "root changed");
	cp2 = cp;
	cp2.room[0] ^= 1;
	CHECK(es_checkpoint_verify(&cp2, &err) == DCR_ESIG, "room changed");
	cp2 = cp;
	cp2.ts_ms--;
	CHECK(es_checkpoint_verify(&cp2, &err) == DCR_ESIG, "ts changed");
	cp2 = cp;
	memcpy(cp2.key, pub_a, 32);
	CHECK(es_checkpoint_verify(&cp2, &err) == DCR_ESIG, "other key");
	cp2 = cp;
	cp2.sig[63] ^= 0x40;
	CHECK(es_checkpoint_verify(&cp2, &err) == DCR_ESIG, "sig changed");
	/* All-zero key and signature (what an unsigned checkpoint holds) verify
	 * under plain OpenSSL Ed25519; they must not here. */
	cp2 = cp;
	memset(cp2.key, 0, 32);
	memset(cp2.sig, 0, 64);
	CHECK(es_checkpoint_verify(&cp2, &err) == DCR_EKEY, "zero key refused");

	/* An event-domain signature over the checkpoint body is not a checkpoint. */
	{
		dcr_buf body;
		char hex[ES_ROOM_HEX_BYTES];
		dcr_mpw w;

		dcr_buf_init(&body);
		dcr_mpw_init(&w, &body);
		es_room_format(cp.room, hex);
		dcr_mpw_map(&w, 4);
		dcr_mpw_str(&w, "room");
		dcr_mpw_str(&w, hex);
		dcr_mpw_str(&w, "root");
		dcr_mpw_bin(&w, cp.root, 32);
		dcr_mpw_str(&w, "size");
		dcr_mpw_uint(&w, cp.size);
		dcr_mpw_str(&w, "ts");
		dcr_mpw_uint(&w, cp.ts_ms);
		cp2 = cp;
		DCR_ASSERT(dcr_sign(key_b, DCR_DOMAIN_CHECKPOINT, body.data, body.len, cp2.sig) ==
		           0);
		CHECK(es_checkpoint_verify(&cp2, &err) == 0, "documented body format");
		DCR_ASSERT(dcr_sign(key_b, DCR_DOMAIN_EVENT, body.data, body.len, cp2.sig) == 0);
		CHECK(es_checkpoint_verify(&cp2, &err) == DCR_ESIG, "event domain");
		dcr_buf_release(&body);
	}

	/* Malformed serializations. */
	for (size_t n = 0; n < b.len; n++)
		CHECK(es_checkpoint_decode(b.data, n, &cp2, &err) == DCR_ETRUNC, "prefix %zu", n);
	dcr_buf_append(&t, b.data, b.len);
	dcr_buf_append_u8(&t, 0);
	CHECK(es_checkpoint_decode(t.data, t.len, &cp2, &err) == DCR_ETRAILING, "trailing");
	{
		dcr_mpw w;

		dcr_buf_reset(&t);
		dcr_mpw_init(&w, &t);
		dcr_mpw_map(&w, 5);
		dcr_mpw_str(&w, "key");
		dcr_mpw_bin(&w, cp.key, 32);
		dcr_mpw_str(&w, "room");
		dcr_mpw_bin(&w, cp.room, 16);
		dcr_mpw_str(&w, "root");
		dcr_mpw_bin(&w, cp.root, 32);
		dcr_mpw_str(&w, "sig");
		dcr_mpw_bin(&w, cp.sig, 64);
		dcr_mpw_str(&w, "size");
		dcr_mpw_uint(&w, 1);
		CHECK(es_checkpoint_decode(t.data, t.len, &cp2, &err) == DCR_EFORMAT &&
		          strstr(err.msg, "missing field 'ts'"),
		      "missing ts: %s", err.msg);
	}
	dcr_buf_release(&b);
	dcr_buf_release(&t);
}

/* Random mutations of valid entries (a replayable, deterministic fuzz):
 * decoding must never crash or leak (ASan), and a mutated entry that still
 * decodes must not verify. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void test_mutations(void)
{
	dcr_buf orig, m, body;
	dcr_mpw w;
	dcr_err err;
	int decoded = 0;
	const int rounds = getenv("DCR_SANITIZED") ? 20000 : 60000;

	dcr_buf_init(&orig);
	dcr_buf_init(&m);
	dcr_buf_init(&body);
	dcr_mpw_init(&w, &body);
	dcr_mpw_map(&w, 3);
	dcr_mpw_str(&w, "a");
	dcr_mpw_array(&w, 3);
	dcr_mpw_int(&w, -5);
	dcr_mpw_double(&w, 1.5);
	dcr_mpw_nil(&w);
	dcr_mpw_str(&w, "b");
	dcr_mpw_bin(&w, "\x01\x02\x03", 3);
	dcr_mpw_str(&w, "c");
	dcr_mpw_map(&w, 1);
	dcr_mpw_str(&w, "d");
	dcr_mpw_bool(&w, true);
	DCR_ASSERT(es_event_build(key_a, room, 300, 1764072000000ull, "request.approved", body.data,
	                          body.len, &orig, &err) == 0);
	for (int r = 0; r < rounds; r++) {
		es_event ev;
		int k = 1 + (int)(rng() % 4);

		dcr_buf_reset(&m);
		dcr_buf_append(&m, orig.data, orig.len);
		for (int j = 0; j < k; j++) {
			size_t at = m.len ? (size_t)(rng() % m.len) : 0;

			switch (rng() % 5) {
			case 0: /* flip bits */
				if (m.len)
					m.data[at] ^= (uint8_t)(1u << (rng() % 8));
				break;
			case 1: /* interesting byte */
				if (m.len) {
					static const uint8_t b[] = {
					    0x00, 0x7f, 0x80, 0xc0, 0xcc, 0xcf, 0xd9, 0xdb,
					    0xdc, 0xdd, 0xde, 0xdf, 0xff, 0x8f, 0x9f, 0xbf};
					m.data[at] = b[rng() % sizeof(b)];
				}
				break;
			case 2: /* delete a byte */
				if (m.len) {
					memmove(m.data + at, m.data + at + 1, m.len - at - 1);
					m.len--;
				}
				break;
			case 3: /* insert a byte */
				dcr_buf_append_u8(&m, 0);
				memmove(m.data + at + 1, m.data + at, m.len - at - 1);
				m.data[at] = (uint8_t)rng();
				break;
			default: /* truncate */
				m.len = at;
				break;
			}
		}
		if (es_event_decode(m.data, m.len, &ev, &err) == 0) {
			decoded++;
			if (m.len != orig.len || memcmp(m.data, orig.data, m.len) != 0)
				CHECK(es_event_verify(&ev, &err) != 0, "mutation %d verifies", r);
			es_event_release(&ev);
		}
	}
	printf("mutations: %d rounds, %d still decoded (none verified)\n", rounds, decoded);
	dcr_buf_release(&orig);
	dcr_buf_release(&m);
	dcr_buf_release(&body);
}

int main(void)
{
	DCR_ASSERT(dcr_key_generate(&key_a) == 0);
	DCR_ASSERT(dcr_key_generate(&key_b) == 0);
	dcr_key_public(key_a, pub_a);
	dcr_key_public(key_b, pub_b);
	es_room_new(room);

	test_round_trip();
	test_build_rejects();
	test_truncation_and_trailing();
	test_limits();
	test_canonical();
	test_fields();
	test_signatures();
	test_rooms();
	test_checkpoints();
	test_mutations();

	dcr_key_free(key_a);
	dcr_key_free(key_b);
	if (t_failures) {
		fprintf(stderr, "%d failures\n", t_failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
