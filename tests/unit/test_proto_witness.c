/* test_proto_witness.c: the witness's files without a daemon
 * (proto/witness.h; the lying hosts themselves are in tests/e2e/witness.sh
 * and witness_mount.sh, against a real dcrd).
 *
 * Evidence files: each kind accepted when the two signed checkpoints show
 * it, and refused when they do not (a "fork" of equal roots, a "shorter"
 * that is longer, an "inconsistent" pair whose proof verifies, a "key" of
 * one key), or when a byte is changed; `shorter` is a proof on its own only
 * when the shorter checkpoint was signed later. Remembered-checkpoint
 * files: a damaged one is an error that says how to start again, absent is
 * DCR_ENOTFOUND, --list skips damaged ones, forget removes one. */
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "../../proto/witness.h"

static dcr_key *key1, *key2;
static uint8_t room[ES_ROOM_ID_BYTES];
static uint8_t leaves[8][32];

static es_checkpoint cp_make(const dcr_key *k, uint64_t size, const uint8_t *root_override,
                             uint64_t ts)
{
	es_checkpoint cp;

	memset(&cp, 0, sizeof cp);
	memcpy(cp.room, room, sizeof room);
	cp.size = size;
	cp.ts_ms = ts;
	if (root_override)
		memcpy(cp.root, root_override, 32);
	else
		es_merkle_root((const uint8_t(*)[32])leaves, size, cp.root);
	CHECK(es_checkpoint_sign(&cp, k) == 0);
	return cp;
}

static void evidence(dcr_buf *out, const char *kind, const es_checkpoint *a,
                     const es_checkpoint *b, const uint8_t (*proof)[32], size_t proof_n)
{
	dcr_buf ca, cb;
	dcr_mpw w;
	char hex[ES_ROOM_HEX_BYTES];

	dcr_buf_init(&ca);
	dcr_buf_init(&cb);
	es_checkpoint_encode(a, &ca);
	es_checkpoint_encode(b, &cb);
	es_room_format(room, hex);
	dcr_buf_reset(out);
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 8);
	dcr_mpw_str(&w, "detected_ms");
	dcr_mpw_uint(&w, 1795000000000);
	dcr_mpw_str(&w, "format");
	dcr_mpw_str(&w, "dcr.witness-evidence/1");
	dcr_mpw_str(&w, "kind");
	dcr_mpw_str(&w, kind);
	dcr_mpw_str(&w, "presented");
	dcr_mpw_bin(&w, cb.data, cb.len);
	dcr_mpw_str(&w, "proof");
	dcr_mpw_array(&w, (uint32_t)proof_n);
	for (size_t i = 0; i < proof_n; i++)
		dcr_mpw_bin(&w, proof[i], 32);
	dcr_mpw_str(&w, "remembered");
	dcr_mpw_bin(&w, ca.data, ca.len);
	dcr_mpw_str(&w, "room");
	dcr_mpw_str(&w, hex);
	dcr_mpw_str(&w, "server");
	dcr_mpw_str(&w, "unix:/run/dcr.sock");
	dcr_buf_release(&ca);
	dcr_buf_release(&cb);
}

/* 0 and the verdict, or the error code. */
static int check(const dcr_buf *b, bool *conclusive)
{
	cl_witness_evidence ev;
	dcr_err err;
	int rc;

	dcr_err_clear(&err);
	rc = cl_witness_evidence_check(b->data, b->len, &ev, conclusive, &err);
	if (rc == 0) {
		CHECK(memcmp(ev.room, room, sizeof room) == 0);
		CHECK(ev.server != NULL);
		cl_witness_evidence_release(&ev);
	} else {
		CHECK(err.msg[0] != 0);
	}
	return rc;
}

static void test_evidence(void)
{
	uint8_t other[32], proof[ES_PROOF_HASHES_MAX][32];
	size_t pn = 0;
	bool conc = false;
	dcr_buf b;

	dcr_buf_init(&b);
	memset(other, 0xab, sizeof other);
	es_checkpoint a6 = cp_make(key1, 6, NULL, 1000), b6 = cp_make(key1, 6, other, 2000);
	es_checkpoint a6same = cp_make(key1, 6, NULL, 3000);
	es_checkpoint s4late = cp_make(key1, 4, NULL, 5000), s4early = cp_make(key1, 4, NULL, 500);
	es_checkpoint n8 = cp_make(key1, 8, NULL, 6000), n8bad = cp_make(key1, 8, other, 6000);
	es_checkpoint k2 = cp_make(key2, 6, NULL, 7000);

	/* fork: a proof on its own; not for equal roots, nor across two keys */
	evidence(&b, "fork", &a6, &b6, NULL, 0);
	CHECK(check(&b, &conc) == 0 && conc);
	{
		cl_witness_evidence ev;
		dcr_err err;
		CHECK(cl_witness_evidence_check(b.data, b.len, &ev, &conc, &err) == 0);
		CHECK(strcmp(ev.server, "unix:/run/dcr.sock") == 0 && strcmp(ev.kind, "fork") == 0);
		CHECK(ev.remembered.size == 6 && ev.presented.size == 6 && ev.detected_ms == 1795000000000);
		cl_witness_evidence_release(&ev);
	}
	evidence(&b, "fork", &a6, &a6same, NULL, 0);
	CHECK(check(&b, &conc) == DCR_EINVALID);
	evidence(&b, "fork", &a6, &k2, NULL, 0);
	CHECK(check(&b, &conc) == DCR_EINVALID);
	/* shorter: conclusive only when signed after the longer one */
	evidence(&b, "shorter", &a6, &s4late, NULL, 0);
	CHECK(check(&b, &conc) == 0 && conc);
	evidence(&b, "shorter", &a6, &s4early, NULL, 0);
	CHECK(check(&b, &conc) == 0 && !conc);
	evidence(&b, "shorter", &s4late, &a6, NULL, 0);
	CHECK(check(&b, &conc) == DCR_EINVALID);
	/* inconsistent: the host's proof must fail; an honest pair is refused */
	CHECK(es_merkle_consistency((const uint8_t(*)[32])leaves, 6, 8, proof, &pn) == 0);
	evidence(&b, "inconsistent", &a6, &n8bad, (const uint8_t(*)[32])proof, pn);
	CHECK(check(&b, &conc) == 0 && !conc);
	evidence(&b, "inconsistent", &a6, &n8, (const uint8_t(*)[32])proof, pn);
	CHECK(check(&b, &conc) == DCR_EINVALID);
	/* key: two keys, never conclusive; one key is not a key change */
	evidence(&b, "key", &a6, &k2, NULL, 0);
	CHECK(check(&b, &conc) == 0 && !conc);
	evidence(&b, "key", &a6, &b6, NULL, 0);
	CHECK(check(&b, &conc) == DCR_EINVALID);
	evidence(&b, "other", &a6, &b6, NULL, 0);
	CHECK(check(&b, &conc) == DCR_EINVALID);
	/* any byte of a checkpoint changed: a signature fails (or the
	 * encoding); the last byte is the server name's and may change */
	evidence(&b, "fork", &a6, &b6, NULL, 0);
	for (size_t i = 0; i + 1 < b.len; i++) {
		dcr_buf c;
		dcr_buf_init(&c);
		dcr_buf_append(&c, b.data, b.len);
		c.data[i] ^= 0x01;
		int rc = check(&c, &conc);
		/* flips inside detected_ms's value or the server string leave a
		 * valid file that still shows a fork */
		if (rc == 0)
			CHECK(conc);
		dcr_buf_release(&c);
	}
	/* truncated */
	b.len--;
	CHECK(check(&b, &conc) < 0);
	dcr_buf_release(&b);
}

static void test_records(void)
{
	char dir[] = "/tmp/dcr-witness-unit-XXXXXX";
	cl_witness_record r, *v = NULL;
	cl_witness *w = NULL;
	size_t n = 0;
	dcr_err err;
	char *path;

	CHECK(mkdtemp(dir) != NULL);
	dcr_err_clear(&err);
	CHECK_ERR(cl_witness_load(dir, "unix:/x", room, &r, &err), DCR_ENOTFOUND, &err,
	          "no checkpoint of this room remembered");
	CHECK_ERR(cl_witness_forget(dir, "unix:/x", room, &err), DCR_ENOTFOUND, &err, NULL);
	CHECK_OK(cl_witness_new("unix:/x", room, dir, &w, &err), &err);
	CHECK(cl_witness_size(w) == 0);
	cl_witness_free(w);
	/* a damaged file where the record of unix:/x would be */
	{
		uint8_t h[32];
		char sid[17], hex[ES_ROOM_HEX_BYTES];
		dcr_sha256("unix:/x", 7, h);
		dcr_hex_encode(h, 8, sid);
		es_room_format(room, hex);
		path = dcr_asprintf("%s/%s-%s", dir, sid, hex);
	}
	CHECK(dcr_write_file_atomic(path, "garbage", 7, 0600, &err) == 0);
	CHECK_FAILS(cl_witness_load(dir, "unix:/x", room, &r, &err), &err, "is damaged",
	            "--forget");
	CHECK_OK(cl_witness_list(dir, &v, &n, &err), &err);
	CHECK(n == 0);
	cl_witness_records_free(v, n);
	CHECK_OK(cl_witness_forget(dir, "unix:/x", room, &err), &err);
	CHECK(access(path, F_OK) != 0);
	{
		char *lock = dcr_asprintf("%s.lock", path);
		unlink(lock);
		free(lock);
	}
	free(path);
	CHECK(rmdir(dir) == 0);
}

int main(void)
{
	CHECK(dcr_key_generate(&key1) == 0);
	CHECK(dcr_key_generate(&key2) == 0);
	es_room_new(room);
	for (int i = 0; i < 8; i++) {
		char s[16];
		int n = snprintf(s, sizeof s, "entry-%d", i);
		es_leaf_hash(s, (size_t)n, leaves[i]);
	}
	test_evidence();
	test_records();
	dcr_key_free(key1);
	dcr_key_free(key2);
	if (t_failures) {
		fprintf(stderr, "%d failures\n", t_failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
