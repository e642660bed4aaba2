/* test_rm_fuzz.c: deterministic robustness tests of the room module's two
 * parsers of untrusted input, run as a normal (fast) test:
 *
 * - definitions: thousands of mutations of the valid example (byte flips,
 *   cuts, duplicated ranges, inserted JSON tokens). Whatever parses must
 *   print (rm_def_to_json), parse again and print identically.
 * - event bodies: random maps over the known body fields with random value
 *   types, applied to a published room. A rejected event must leave the
 *   state unchanged; rm_describe must never fail.
 *
 * Under ASan this also checks that no input leaks or overruns. Seeds are
 * fixed so a failure reproduces; RM_FUZZ_ITERS scales the run. */
#include "test_rm_common.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static size_t rndn(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static const char *const tokens[] = {
    "{",      "}",       "[",        "]",        ",",          ":",          "\"",       "null",
    "true",   "1e999",   "-1",       "0.5",      "\\u0000",    "\"x-a\":1,", "\"\"",     "[]",
    "{}",     "\"int\"", "\"file\"", "\"sql\"",  "\"python\"", "overlap",    "sqlite_",  "\\",
    "SELECT", "FROM",    "COUNT(*)", "ed25519:", "@",          "\xff",       "\xc3\xa9", "\n",
};

static char *mutate(const char *src)
{
	size_t n = strlen(src);
	dcr_buf b;
	dcr_buf_init(&b);
	dcr_buf_append(&b, src, n);
	int rounds = 1 + (int)rndn(3);
	for (int r = 0; r < rounds; r++) {
		size_t at = rndn(b.len + 1);
		switch (rndn(4)) {
		case 0: /* flip a byte */
			if (b.len)
				b.data[rndn(b.len)] = (uint8_t)(32 + rndn(95));
			break;
		case 1: { /* cut a range */
			size_t len = rndn(40) + 1;
			if (at + len > b.len)
				len = b.len - at;
			memmove(b.data + at, b.data + at + len, b.len - at - len);
			b.len -= len;
			break;
		}
		case 2: { /* duplicate a range */
			size_t len = rndn(60) + 1;
			if (at + len > b.len)
				len = b.len - at;
			char *copy = dcr_strndup((const char *)b.data + at, len);
			dcr_buf b2;
			dcr_buf_init(&b2);
			dcr_buf_append(&b2, b.data, at);
			dcr_buf_append(&b2, copy, len);
			dcr_buf_append(&b2, b.data + at, b.len - at);
			dcr_buf_release(&b);
			b = b2;
			free(copy);
			break;
		}
		default: { /* insert a token */
			const char *t = tokens[rndn(sizeof tokens / sizeof tokens[0])];
			dcr_buf b2;
			dcr_buf_init(&b2);
			dcr_buf_append(&b2, b.data, at);
			dcr_buf_append_str(&b2, t);
			dcr_buf_append(&b2, b.data + at, b.len - at);
			dcr_buf_release(&b);
			b = b2;
			break;
		}
		}
	}
	char *out = dcr_strndup((const char *)b.data, b.len);
	dcr_buf_release(&b);
	return out;
}

static void fuzz_definitions(const char *valid, int iters)
{
	int parsed = 0;
	for (int i = 0; i < iters; i++) {
		char *text = mutate(valid);
		rm_def *d = NULL, *d2 = NULL;
		dcr_err e;
		dcr_err_clear(&e);
		int rc = rm_def_parse(text, strlen(text), &d, &e);
		if (rc) {
			CHECK(d == NULL && e.msg[0] != 0);
		} else {
			parsed++;
			char *j1 = rm_def_to_json(d);
			if (rm_def_parse(j1, strlen(j1), &d2, &e) != 0) {
				fprintf(stderr, "iteration %d: printed form rejected: %s\n", i,
				        e.msg);
				t_failures++;
			} else {
				char *j2 = rm_def_to_json(d2);
				CHECK(strcmp(j1, j2) == 0);
				free(j2);
			}
			free(j1);
		}
		rm_def_free(d);
		rm_def_free(d2);
		free(text);
	}
	fprintf(stderr, "definitions: %d mutations, %d still valid\n", iters, parsed);
	CHECK(parsed > 0 && parsed < iters);
}

/* ---- bodies --------------------------------------------------------------------- */

static const char *const keys[] = {
    /* sorted, so any subset in order is canonical */
    "blob",         "bytes",         "computation", "dataset", "definition", "definition_sha256",
    "duration_ms",  "error",         "file",        "inputs",  "reason",     "result_blob",
    "result_bytes", "result_sha256", "rows",        "run",     "schema",     "sha256",
    "stats_sha256", "suppressed",
};
static const char *const types[] = {
    RM_EV_CREATED,     RM_EV_SAVED,         RM_EV_PUBLISHED,     RM_EV_STOPPED,
    RM_EV_PROVISIONED, RM_EV_DEPROVISIONED, RM_EV_RUN_REQUESTED, RM_EV_RUN_COMPLETED,
    RM_EV_RUN_FAILED,  RM_EV_RETRIEVED,     "room.other",
};
static const char *const strs[] = {
    "bank_customers",
    "insurer_customers",
    "overlap",
    "by_city",
    "churn",
    "",
    "4f1c2a9b000000000000000000000001",
    "4f1c2a9b000000000000000000000002",
    "[[\"city\",\"string\"],[\"n\",\"integer\"]]",
    "{}",
    "{\"bank_customers\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
    "[",
    "line\nbreak",
};

static void random_value(dcr_mpw *w)
{
	uint8_t bin[32];
	switch (rndn(6)) {
	case 0:
	case 1:
		dcr_mpw_str(w, strs[rndn(sizeof strs / sizeof strs[0])]);
		break;
	case 2:
		dcr_mpw_uint(w, rndn(3) ? rndn(100) : UINT64_MAX);
		break;
	case 3:
		memset(bin, (int)rndn(256), sizeof bin);
		dcr_mpw_bin(w, bin, rndn(4) ? 32 : rndn(33));
		break;
	case 4:
		dcr_mpw_nil(w);
		break;
	default:
		dcr_mpw_int(w, -1 - (int64_t)rndn(5));
		break;
	}
}

/* Field names of each type in types[] (space separated, padded). */
static const char *const fields_of[] = {
    " definition ",
    " definition ",
    " definition_sha256 ",
    " reason ",
    " blob bytes dataset file rows sha256 stats_sha256 ",
    " dataset ",
    " computation run ",
    " computation duration_ms inputs result_blob result_bytes result_sha256 rows run schema "
    "suppressed ",
    " computation error run ",
    " run ",
};

static bool has_field(const char *list, const char *key)
{
	char pad[64];
	snprintf(pad, sizeof pad, " %s ", key);
	return strstr(list, pad) != NULL;
}

/* A value of the right type for the field, from a small pool. */
static void good_value(dcr_mpw *w, const char *key)
{
	static const char *const uints = " bytes rows duration_ms result_bytes suppressed ";
	static const char *const bins = " sha256 stats_sha256 result_sha256 definition_sha256 ";
	char pad[64];
	uint8_t bin[32];
	snprintf(pad, sizeof pad, " %s ", key);
	if (strstr(uints, pad)) {
		dcr_mpw_uint(w, rndn(1000));
	} else if (strstr(bins, pad)) {
		memset(bin, (int)rndn(256), sizeof bin);
		dcr_mpw_bin(w, bin, 32);
	} else if (strcmp(key, "run") == 0) {
		char id[33];
		snprintf(id, sizeof id, "%032x", (unsigned)rndn(6));
		dcr_mpw_str(w, id);
	} else if (strcmp(key, "schema") == 0) {
		dcr_mpw_array(w, 2);
		dcr_mpw_array(w, 2);
		dcr_mpw_str(w, "city");
		dcr_mpw_str(w, "string");
		dcr_mpw_array(w, 2);
		dcr_mpw_str(w, rndn(2) ? "n" : "City");
		dcr_mpw_str(w, "integer");
	} else if (strcmp(key, "inputs") == 0) {
		/* 0..2 of the datasets overlap reads, in canonical order */
		static const char *const ds[] = {"bank_customers", "insurer_customers"};
		uint32_t n = (uint32_t)rndn(3);
		memset(bin, (int)rndn(2) * 0x3f, sizeof bin);
		dcr_mpw_map(w, n);
		for (uint32_t i = 0; i < n; i++) {
			dcr_mpw_str(w, ds[i]);
			dcr_mpw_bin(w, bin, 32);
		}
	} else {
		dcr_mpw_str(w, strs[rndn(6)]);
	}
}

static void fuzz_bodies(const t_fixture *f, int iters)
{
	const dcr_key *actors[] = {f->anna, f->ian, f->carl, f->daemon};
	char *def = t_valid_def(f);
	uint8_t room[ES_ROOM_ID_BYTES];
	rm_state s;
	dcr_buf body, entry;
	dcr_err e;
	es_event ev;
	int accepted = 0;

	es_room_new(room);
	rm_state_init(&s, f->daemon_pub);
	dcr_buf_init(&body);
	dcr_buf_init(&entry);
	/* a published room with both tables provisioned */
	for (int step = 0; step < 4; step++) {
		dcr_buf_reset(&body);
		dcr_buf_reset(&entry);
		const char *type = RM_EV_CREATED;
		const dcr_key *k = f->anna;
		if (step == 0) {
			rm_body_definition(&body, def);
		} else if (step == 1) {
			type = RM_EV_PUBLISHED;
			rm_body_published(&body, s.def_sha256);
		} else {
			rm_provision p = {.dataset =
			                      step == 2 ? "bank_customers" : "insurer_customers",
			                  .blob = "b",
			                  .file = "f.csv",
			                  .rows = 1,
			                  .bytes = 1};
			type = RM_EV_PROVISIONED;
			k = step == 2 ? f->anna : f->ian;
			rm_body_provisioned(&body, &p);
		}
		DCR_ASSERT(
		    es_event_build(k, room, s.size, 1, type, body.data, body.len, &entry, &e) == 0);
		DCR_ASSERT(es_event_decode(entry.data, entry.len, &ev, &e) == 0);
		DCR_ASSERT(rm_apply(&s, &ev, &e) == 0);
		es_event_release(&ev);
	}

	for (int i = 0; i < iters; i++) {
		dcr_mpw w;
		const char *chosen[sizeof keys / sizeof keys[0]];
		uint32_t n = 0;
		/* most bodies: the right field names for the type, sometimes one
		 * off; the rest: any subset */
		size_t ti = rndn(sizeof types / sizeof types[0]);
		/* stop the room only near the end, so most events meet a live room */
		if (ti == 3 && i < iters * 9 / 10)
			ti = 6;
		const char *type = types[ti];
		const dcr_key *actor = actors[rndn(4)];
		if (rndn(4) != 0)
			actor = ti == 7 || ti == 8 ? f->daemon : rndn(2) ? f->anna : f->ian;
		bool exact = rndn(3) != 0 && ti < 10;
		for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
			if (exact ? has_field(fields_of[ti], keys[k]) : rndn(4) == 0)
				chosen[n++] = keys[k];
		dcr_buf_reset(&body);
		dcr_buf_reset(&entry);
		dcr_mpw_init(&w, &body);
		dcr_mpw_map(&w, n);
		for (uint32_t k = 0; k < n; k++) {
			dcr_mpw_str(&w, chosen[k]);
			if (exact && rndn(8))
				good_value(&w, chosen[k]);
			else
				random_value(&w);
		}
		uint64_t seq = rndn(10) ? s.size : rndn(s.size + 2);
		DCR_ASSERT(es_event_build(actor, room, seq, rnd() >> 20, type, body.data, body.len,
		                          &entry, &e) == 0);
		DCR_ASSERT(es_event_decode(entry.data, entry.len, &ev, &e) == 0);
		char *line = rm_describe(&s, &ev);
		CHECK(line && strchr(line, '\n') == NULL);
		free(line);
		uint64_t size = s.size;
		enum rm_status st = s.status;
		size_t nruns = s.nruns, nprov = s.nprovisions;
		if (rm_apply(&s, &ev, &e) == 0) {
			accepted++;
			CHECK(s.size == size + 1);
		} else {
			CHECK(s.size == size && s.status == st && s.nruns == nruns &&
			      s.nprovisions == nprov);
			CHECK(strncmp(e.msg, "seq ", 4) == 0);
			if (getenv("RM_VERBOSE"))
				fprintf(stderr, "%s\n", e.msg);
		}
		es_event_release(&ev);
	}
	fprintf(stderr, "bodies: %d events, %d accepted\n", iters, accepted);
	rm_state_release(&s);
	dcr_buf_release(&body);
	dcr_buf_release(&entry);
	free(def);
}

int main(void)
{
	t_fixture F;
	const char *it = getenv("RM_FUZZ_ITERS");
	int iters = it ? (int)strtol(it, NULL, 10) : 1500;
	t_fixture_init(&F);
	char *valid = t_valid_def(&F);
	fuzz_definitions(valid, iters);
	fuzz_bodies(&F, iters);
	free(valid);
	t_fixture_release(&F);
	if (t_failures)
		fprintf(stderr, "%d check(s) failed\n", t_failures);
	return t_failures ? 1 : 0;
}
