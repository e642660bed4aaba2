/* test_base.c: base primitives: canonical msgpack writer and checker,
 * encodings, signatures with domain separation, AES-GCM. */
#include <unistd.h>

#include "../../base/base.h"

#include "test.h"

static int check_bytes(const char *hex, dcr_err *err)
{
	uint8_t b[256];
	size_t n = strlen(hex) / 2;
	DCR_ASSERT(dcr_hex_decode(hex, strlen(hex), b, n) == 0);
	return dcr_mp_check(b, n, NULL, err);
}

static void test_mp(void)
{
	dcr_buf b;
	dcr_mpw w;
	dcr_err err;
	dcr_buf_init(&b);
	dcr_mpw_init(&w, &b);
	dcr_mpw_map(&w, 5);
	dcr_mpw_str(&w, "a");
	dcr_mpw_uint(&w, 300);
	dcr_mpw_str(&w, "b");
	dcr_mpw_int(&w, -5000);
	dcr_mpw_str(&w, "bb");
	dcr_mpw_bin(&w, "xyz", 3);
	dcr_mpw_str(&w, "c");
	dcr_mpw_array(&w, 2);
	dcr_mpw_bool(&w, true);
	dcr_mpw_double(&w, 1.5);
	dcr_mpw_str(&w, "d");
	dcr_mpw_str(&w, "h\xc3\xa9llo");
	dcr_mp_doc *d = NULL;
	CHECK(dcr_mp_parse(b.data, b.len, NULL, &d, &err) == 0);
	uint64_t u = 0;
	int64_t i = 0;
	const char *s;
	size_t n;
	CHECK(dcr_mp_get_u64(dcr_mp_root(d), "a", &u, &err) == 0 && u == 300);
	CHECK(dcr_mp_i64(dcr_mp_get(dcr_mp_root(d), "b"), &i) == 0 && i == -5000);
	CHECK(dcr_mp_get_str(dcr_mp_root(d), "d", &s, &n, &err) == 0 && n == 6);
	CHECK(dcr_mp_len(dcr_mp_get(dcr_mp_root(d), "c")) == 2);
	CHECK(dcr_mp_get_u64(dcr_mp_root(d), "zz", &u, &err) == DCR_EFORMAT);
	CHECK(strstr(err.msg, "missing field \"zz\"") != NULL);
	dcr_mp_doc_free(d);
	/* Every strict prefix is truncated; one extra byte is trailing. */
	for (size_t k = 0; k < b.len; k++)
		CHECK(dcr_mp_check(b.data, k, NULL, &err) == (k == 0 ? DCR_ETRUNC : DCR_ETRUNC));
	dcr_buf_append_u8(&b, 0xc0);
	CHECK(dcr_mp_check(b.data, b.len, NULL, &err) == DCR_ETRAILING);
	dcr_buf_release(&b);

	CHECK(check_bytes("cc05", &err) == DCR_ENONCANON);     /* 5 as uint8 */
	CHECK(check_bytes("d0ff", &err) == DCR_ENONCANON);     /* -1 as int8 */
	CHECK(check_bytes("d001", &err) == DCR_ENONCANON);     /* +1 signed */
	CHECK(check_bytes("ca3f800000", &err) == DCR_ENONCANON); /* float32 */
	CHECK(check_bytes("d90161", &err) == DCR_ENONCANON);   /* str8 of 1 */
	CHECK(check_bytes("82a16201a16101", &err) == DCR_ENONCANON); /* b before a */
	CHECK(check_bytes("82a16101a16101", &err) == DCR_ENONCANON); /* duplicate */
	CHECK(check_bytes("810101", &err) == DCR_EFORMAT);     /* int key */
	CHECK(check_bytes("a2c328", &err) == DCR_EFORMAT);     /* bad UTF-8 */
	CHECK(check_bytes("c1", &err) == DCR_EFORMAT);
	CHECK(check_bytes("d40000", &err) == DCR_EFORMAT);     /* ext */
	CHECK(check_bytes("ddffffffff", &err) == DCR_ELIMIT);  /* 4G array */
	CHECK(check_bytes("dd00010000", &err) == DCR_ETRUNC);  /* 65536 declared, none there */
	CHECK(check_bytes("dbffffffff", &err) == DCR_ELIMIT);  /* 4G string */
	/* deep nesting */
	char deep[80];
	memset(deep, '9', sizeof deep);
	for (int k = 0; k < 38; k++)
		deep[2 * k + 1] = '1';
	deep[76] = 'c';
	deep[77] = '0';
	deep[78] = '\0';
	CHECK(check_bytes(deep, &err) == DCR_ELIMIT);
	CHECK(strstr(err.msg, "nesting") != NULL);
}

static void test_encodings(void)
{
	uint8_t raw[5] = {0, 1, 2, 0xfe, 0xff}, back[8];
	char hex[11];
	dcr_hex_encode(raw, 5, hex);
	CHECK(strcmp(hex, "000102feff") == 0);
	CHECK(dcr_hex_decode(hex, 10, back, 5) == 0 && memcmp(raw, back, 5) == 0);
	CHECK(dcr_hex_decode("0g", 2, back, 1) == DCR_EFORMAT);
	char *b64 = dcr_b64_encode((const uint8_t *)"foobar", 6);
	CHECK(strcmp(b64, "Zm9vYmFy") == 0);
	free(b64);
	b64 = dcr_b64_encode((const uint8_t *)"fo", 2);
	CHECK(strcmp(b64, "Zm8=") == 0);
	CHECK(dcr_b64_decode(b64, 4, back, sizeof back) == 2 && memcmp(back, "fo", 2) == 0);
	free(b64);
	CHECK(dcr_b64_decode("Zm9=", 4, back, sizeof back) < 0); /* non-zero pad bits */
	CHECK(dcr_b64_decode("Zm8", 3, back, sizeof back) < 0);
}

static void test_sign(void)
{
	dcr_key *k = NULL, *k2 = NULL;
	uint8_t pub[32], pub2[32], sig[64];
	CHECK(dcr_key_generate(&k) == 0 && dcr_key_generate(&k2) == 0);
	dcr_key_public(k, pub);
	dcr_key_public(k2, pub2);
	CHECK(dcr_sign(k, DCR_DOMAIN_EVENT, "hello", 5, sig) == 0);
	CHECK(dcr_verify(pub, DCR_DOMAIN_EVENT, "hello", 5, sig) == 0);
	CHECK(dcr_verify(pub, DCR_DOMAIN_EVENT, "hello", 5, sig) == 0); /* cached */
	CHECK(dcr_verify(pub, DCR_DOMAIN_AUTH, "hello", 5, sig) == DCR_ESIG);
	CHECK(dcr_verify(pub2, DCR_DOMAIN_EVENT, "hello", 5, sig) == DCR_ESIG);
	CHECK(dcr_verify(pub, DCR_DOMAIN_EVENT, "hellp", 5, sig) == DCR_ESIG);
	sig[10] ^= 1;
	CHECK(dcr_verify(pub, DCR_DOMAIN_EVENT, "hello", 5, sig) == DCR_ESIG);

	/* Small-order keys: a zero signature must not verify, and the key
	 * is refused outright (forgeable without a private key). */
	uint8_t weak[32] = {1}, zsig[64] = {0};
	zsig[0] = 1; /* R = identity encoding, S = 0 */
	CHECK(dcr_pub_is_weak(weak));
	CHECK(!dcr_pub_is_weak(pub));
	CHECK(dcr_verify(weak, DCR_DOMAIN_EVENT, "hello", 5, zsig) == DCR_EKEY);
	char *wl = dcr_pub_format(weak);
	uint8_t wparsed[32];
	CHECK(dcr_pub_parse(wl, wparsed) == DCR_EKEY);
	free(wl);

	char *line = dcr_pub_format(pub);
	uint8_t parsed[32];
	CHECK(dcr_pub_parse(line, parsed) == 0 && memcmp(parsed, pub, 32) == 0);
	CHECK(dcr_pub_parse("ed25519:AAAA", parsed) == DCR_EKEY);
	CHECK(dcr_pub_parse(line + 1, parsed) == DCR_EKEY);
	free(line);

	/* RFC 8032 5.1.3 point decoding (our own arithmetic): every generated
	 * key is a point; y >= p, a y without a square root for x, and x = 0
	 * with the sign bit set are not. */
	CHECK(dcr_ed25519_point_valid(pub) && dcr_ed25519_point_valid(pub2));
	for (int i = 0; i < 20; i++) {
		dcr_key *kk;
		uint8_t kp[32];
		CHECK(dcr_key_generate(&kk) == 0);
		dcr_key_public(kk, kp);
		CHECK(dcr_ed25519_point_valid(kp));
		dcr_key_free(kk);
	}
	uint8_t pt[32];
	memset(pt, 0xff, 32);
	pt[0] = 0xed, pt[31] = 0x7f; /* y = p */
	CHECK(!dcr_ed25519_point_valid(pt));
	pt[0] = 0xec; /* y = p - 1: x = 0, a point of order 2 */
	CHECK(dcr_ed25519_point_valid(pt));
	pt[31] = 0xff; /* the same with the sign bit set */
	CHECK(!dcr_ed25519_point_valid(pt));
	memset(pt, 0, 32);
	pt[0] = 2; /* y = 2: (y^2 - 1) / (d y^2 + 1) is not a square */
	CHECK(!dcr_ed25519_point_valid(pt));
	CHECK(dcr_pub_parse("ed25519:AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", parsed) ==
	      DCR_EKEY);
	pt[0] = 1; /* y = 1: the identity, x = 0 */
	CHECK(dcr_ed25519_point_valid(pt));
	pt[31] = 0x80;
	CHECK(!dcr_ed25519_point_valid(pt));

	char dir[] = "/tmp/dcr-test-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char *path = dcr_asprintf("%s/id.pem", dir);
	dcr_err err;
	dcr_key *k3 = NULL;
	CHECK(dcr_key_save(k, path, false, &err) == 0);
	CHECK(dcr_key_save(k, path, false, &err) == DCR_EEXIST);
	CHECK(dcr_key_load(path, &k3, &err) == 0);
	uint8_t pub3[32];
	dcr_key_public(k3, pub3);
	CHECK(memcmp(pub3, pub, 32) == 0);
	unlink(path);
	rmdir(dir);
	free(path);
	dcr_key_free(k);
	dcr_key_free(k2);
	dcr_key_free(k3);
}

static void test_gcm(void)
{
	uint8_t key[32], nonce[12], tag[16], ct[100], pt[100], msg[100];
	dcr_random(key, 32);
	dcr_random(nonce, 12);
	dcr_random(msg, 100);
	CHECK(dcr_gcm_seal(key, nonce, "aad", 3, msg, 100, ct, tag) == 0);
	CHECK(dcr_gcm_open(key, nonce, "aad", 3, ct, 100, pt, tag) == 0 && memcmp(pt, msg, 100) == 0);
	CHECK(dcr_gcm_open(key, nonce, "aae", 3, ct, 100, pt, tag) == DCR_EINTEGRITY);
	ct[0] ^= 1;
	CHECK(dcr_gcm_open(key, nonce, "aad", 3, ct, 100, pt, tag) == DCR_EINTEGRITY);
	uint8_t h[32];
	dcr_sha256("abc", 3, h);
	char hex[65];
	dcr_hex_encode(h, 32, hex);
	CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
}

/* The result archive of python/r runs (base/archive.c): written sorted and
 * canonical, read back; every rule of the reader refuses its breach. */
static void test_archive(void)
{
	dcr_archive_entry in[3] = {
	    {"notes/b.txt", 11, (const uint8_t *)"bee", 3},
	    {"dataset.csv", 11, (const uint8_t *)"a,b\n1,2\n", 8},
	    {"notes/a.txt", 11, (const uint8_t *)"", 0},
	};
	dcr_buf b;
	dcr_archive a;
	dcr_err err;

	dcr_buf_init(&b);
	dcr_archive_write(&b, in, 3);
	CHECK_OK(dcr_archive_read(b.data, b.len, &a, &err), &err);
	CHECK(a.n == 3 && a.e[0].name_len == 11 && memcmp(a.e[0].name, "dataset.csv", 11) == 0 &&
	      memcmp(a.e[1].name, "notes/a.txt", 11) == 0 && a.e[1].len == 0 && a.e[2].len == 3);
	CHECK(dcr_archive_find(&a, "notes/b.txt") == &a.e[2] && !dcr_archive_find(&a, "notes"));
	dcr_archive_release(&a);
	/* the empty archive */
	dcr_buf_reset(&b);
	dcr_archive_write(&b, NULL, 0);
	CHECK(b.len == 1 && b.data[0] == 0x90);
	CHECK_OK(dcr_archive_read(b.data, b.len, &a, &err), &err);
	CHECK(a.n == 0);
	dcr_archive_release(&a);
	/* names */
	CHECK(dcr_archive_name_valid("a/b.txt", 7) && dcr_archive_name_valid(".hidden", 7));
	CHECK(!dcr_archive_name_valid("", 0) && !dcr_archive_name_valid("../x", 4) &&
	      !dcr_archive_name_valid("a/../x", 6) && !dcr_archive_name_valid("/abs", 4) &&
	      !dcr_archive_name_valid("a//b", 4) && !dcr_archive_name_valid("a/", 2) &&
	      !dcr_archive_name_valid("./a", 3) && !dcr_archive_name_valid("a\nb", 3) &&
	      !dcr_archive_name_valid("a\x7f", 2) && !dcr_archive_name_valid("..", 2));
	/* hand-made archives the reader refuses */
	static const struct {
		const char *n1, *n2; /* two entries' names */
		const char *why;
	} bad[] = {
	    {"b", "a", "out of order or repeated"},
	    {"a", "a", "out of order or repeated"},
	    {"a", "../etc/passwd", "not a relative path"},
	    {"a", "x/./y", "not a relative path"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		dcr_mpw w;
		dcr_buf_reset(&b);
		dcr_mpw_init(&w, &b);
		dcr_mpw_array(&w, 2);
		dcr_mpw_array(&w, 2);
		dcr_mpw_str(&w, bad[i].n1);
		dcr_mpw_bin(&w, "x", 1);
		dcr_mpw_array(&w, 2);
		dcr_mpw_str(&w, bad[i].n2);
		dcr_mpw_bin(&w, "y", 1);
		CHECK_ERR(dcr_archive_read(b.data, b.len, &a, &err), DCR_EFORMAT, &err, bad[i].why);
	}
	{
		/* an entry that is not [str, bin], and a root that is not an array */
		dcr_mpw w;
		dcr_buf_reset(&b);
		dcr_mpw_init(&w, &b);
		dcr_mpw_array(&w, 1);
		dcr_mpw_array(&w, 2);
		dcr_mpw_str(&w, "a");
		dcr_mpw_str(&w, "text, not bin");
		CHECK_ERR(dcr_archive_read(b.data, b.len, &a, &err), DCR_EFORMAT, &err,
		          "entry 0 is not [name, bytes]");
		dcr_buf_reset(&b);
		dcr_mpw_init(&w, &b);
		dcr_mpw_map(&w, 0);
		CHECK_ERR(dcr_archive_read(b.data, b.len, &a, &err), DCR_EFORMAT, &err,
		          "not an array");
		/* bytes after the value, and a cut archive */
		dcr_buf_reset(&b);
		dcr_archive_write(&b, in, 1);
		dcr_buf_append_u8(&b, 0xc0);
		CHECK(dcr_archive_read(b.data, b.len, &a, &err) < 0);
		CHECK(dcr_archive_read(b.data, b.len - 3, &a, &err) < 0);
	}
	dcr_buf_release(&b);
}

int main(void)
{
	test_mp();
	test_encodings();
	test_sign();
	test_gcm();
	test_archive();
	CHECK(strcmp(dcr_strerror(DCR_ESIG), "bad signature") == 0);
	CHECK(strcmp(dcr_errname(DCR_ESEQ), "ESEQ") == 0);
	if (t_failures)
		fprintf(stderr, "%d failures\n", t_failures);
	return t_failures ? 1 : 0;
}
