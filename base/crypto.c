/* crypto.c: the project's only contact with OpenSSL 3: randomness,
 * SHA-256, Ed25519 keys and domain-separated signatures, AES-256-GCM.
 *
 * Signatures are over domain || 0x00 || message so a signature made for
 * one purpose (an event) can never be replayed as another (an auth
 * challenge). Parsed public keys are kept in a small cache because the
 * daemon and the auditor verify many events from few actors. */
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "base.h"

void dcr_random(void *p, size_t n)
{
	DCR_ASSERT(n <= INT32_MAX);
	if (RAND_bytes(p, (int)n) != 1) {
		fprintf(stderr, "dcr: the random number generator failed\n");
		abort();
	}
}

uint64_t dcr_random_below(uint64_t bound)
{
	DCR_ASSERT(bound > 0);
	uint64_t limit = UINT64_MAX - UINT64_MAX % bound, v;
	do
		dcr_random(&v, sizeof v);
	while (v >= limit);
	return v % bound;
}

int dcr_ct_memcmp(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n);
}

void dcr_wipe(void *p, size_t n)
{
	OPENSSL_cleanse(p, n);
}

/* ---- SHA-256 ---- */

struct dcr_sha256_ctx {
	EVP_MD_CTX *md;
};

void dcr_sha256(const void *p, size_t n, uint8_t out[DCR_SHA256_BYTES])
{
	unsigned int len = 0;
	DCR_ASSERT(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) == 1);
}

dcr_sha256_ctx *dcr_sha256_new(void)
{
	dcr_sha256_ctx *c = dcr_calloc(1, sizeof *c);
	c->md = EVP_MD_CTX_new();
	DCR_ASSERT(c->md != NULL);
	DCR_ASSERT(EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) == 1);
	return c;
}

void dcr_sha256_update(dcr_sha256_ctx *c, const void *p, size_t n)
{
	DCR_ASSERT(EVP_DigestUpdate(c->md, p, n) == 1);
}

void dcr_sha256_final(dcr_sha256_ctx *c, uint8_t out[DCR_SHA256_BYTES])
{
	unsigned int len = 0;
	DCR_ASSERT(EVP_DigestFinal_ex(c->md, out, &len) == 1);
}

void dcr_sha256_reset(dcr_sha256_ctx *c)
{
	DCR_ASSERT(EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) == 1);
}

void dcr_sha256_free(dcr_sha256_ctx *c)
{
	if (c == NULL)
		return;
	EVP_MD_CTX_free(c->md);
	free(c);
}

/* ---- Ed25519 ---- */

struct dcr_key {
	EVP_PKEY *pkey;
	uint8_t pub[DCR_ED25519_PUB_BYTES];
};

static int key_wrap(EVP_PKEY *pkey, dcr_key **out)
{
	size_t n = DCR_ED25519_PUB_BYTES;
	dcr_key *k = dcr_calloc(1, sizeof *k);
	k->pkey = pkey;
	if (EVP_PKEY_get_raw_public_key(pkey, k->pub, &n) != 1 || n != DCR_ED25519_PUB_BYTES) {
		EVP_PKEY_free(pkey);
		free(k);
		return DCR_EKEY;
	}
	*out = k;
	return 0;
}

int dcr_key_generate(dcr_key **out)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (pkey == NULL)
		return DCR_ECRYPTO;
	return key_wrap(pkey, out);
}

int dcr_key_load(const char *path, dcr_key **out, dcr_err *err)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return dcr_err_set(err, -errno, "%s: %s", path, strerror(errno));
	EVP_PKEY *pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	ERR_clear_error();
	if (pkey == NULL)
		return dcr_err_set(err, DCR_EKEY, "%s: not a PEM private key", path);
	if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(pkey);
		return dcr_err_set(err, DCR_EKEY, "%s: not an Ed25519 key", path);
	}
	int rc = key_wrap(pkey, out);
	if (rc != 0)
		return dcr_err_set(err, rc, "%s: unreadable Ed25519 key", path);
	return 0;
}

int dcr_key_save(const dcr_key *k, const char *path, bool force, dcr_err *err)
{
	int rc = 0;
	int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL);
	int fd = open(path, flags, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return dcr_err_set(err, DCR_EEXIST,
					   "%s already exists (use --force to overwrite)", path);
		return dcr_err_set(err, -errno, "%s: %s", path, strerror(errno));
	}
	FILE *f = fdopen(fd, "wb");
	if (f == NULL) {
		close(fd);
		return dcr_err_set(err, -errno, "%s: %s", path, strerror(errno));
	}
	if (fchmod(fd, 0600) != 0 ||
	    PEM_write_PrivateKey(f, k->pkey, NULL, NULL, 0, NULL, NULL) != 1 || fflush(f) != 0 ||
	    fsync(fd) != 0) {
		ERR_clear_error();
		rc = dcr_err_set(err, DCR_ECRYPTO, "%s: could not write the key", path);
	}
	if (fclose(f) != 0 && rc == 0)
		rc = dcr_err_set(err, -errno, "%s: %s", path, strerror(errno));
	return rc;
}

void dcr_key_public(const dcr_key *k, uint8_t pub[DCR_ED25519_PUB_BYTES])
{
	memcpy(pub, k->pub, DCR_ED25519_PUB_BYTES);
}

void dcr_key_free(dcr_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

/* domain || 0x00 || msg in one contiguous buffer: Ed25519 (PureEdDSA)
 * signs the whole message, there is no streaming interface. Small
 * messages use the stack. */
static uint8_t *dsep(const char *domain, const void *msg, size_t n, uint8_t *stackbuf,
		     size_t stack_n, size_t *total)
{
	size_t d = strlen(domain);
	*total = d + 1 + n;
	uint8_t *p = *total <= stack_n ? stackbuf : dcr_malloc(*total);
	memcpy(p, domain, d);
	p[d] = 0;
	if (n)
		memcpy(p + d + 1, msg, n);
	return p;
}

int dcr_sign(const dcr_key *k, const char *domain, const void *msg, size_t n,
	     uint8_t sig[DCR_ED25519_SIG_BYTES])
{
	uint8_t stackbuf[1024];
	size_t total, siglen = DCR_ED25519_SIG_BYTES;
	int rc = 0;
	uint8_t *m = dsep(domain, msg, n, stackbuf, sizeof stackbuf, &total);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestSignInit(md, NULL, NULL, NULL, k->pkey) != 1 ||
	    EVP_DigestSign(md, sig, &siglen, m, total) != 1 || siglen != DCR_ED25519_SIG_BYTES) {
		ERR_clear_error();
		rc = DCR_ECRYPTO;
	}
	EVP_MD_CTX_free(md);
	if (m != stackbuf)
		free(m);
	return rc;
}

/* Public key cache: direct-mapped on the first key bytes. Entries hold a
 * reference; a hit takes another reference under the lock. */
#define PK_CACHE_SLOTS 256
static struct {
	pthread_mutex_t lock;
	struct {
		bool used;
		uint8_t pub[DCR_ED25519_PUB_BYTES];
		EVP_PKEY *pkey;
	} slot[PK_CACHE_SLOTS];
} pk_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static EVP_PKEY *pubkey_get(const uint8_t pub[DCR_ED25519_PUB_BYTES])
{
	unsigned i = ((unsigned)pub[0] | (unsigned)pub[1] << 8) % PK_CACHE_SLOTS;
	EVP_PKEY *pk = NULL;
	pthread_mutex_lock(&pk_cache.lock);
	if (pk_cache.slot[i].used && memcmp(pk_cache.slot[i].pub, pub, DCR_ED25519_PUB_BYTES) == 0) {
		pk = pk_cache.slot[i].pkey;
		EVP_PKEY_up_ref(pk);
	}
	pthread_mutex_unlock(&pk_cache.lock);
	if (pk)
		return pk;
	pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, DCR_ED25519_PUB_BYTES);
	if (pk == NULL) {
		ERR_clear_error();
		return NULL;
	}
	pthread_mutex_lock(&pk_cache.lock);
	if (pk_cache.slot[i].used)
		EVP_PKEY_free(pk_cache.slot[i].pkey);
	pk_cache.slot[i].used = true;
	memcpy(pk_cache.slot[i].pub, pub, DCR_ED25519_PUB_BYTES);
	pk_cache.slot[i].pkey = pk;
	EVP_PKEY_up_ref(pk);
	pthread_mutex_unlock(&pk_cache.lock);
	return pk;
}

/* Drops a reference from pubkey_get under the cache's lock, so the last
 * free (here or at an eviction in another thread) is ordered after every
 * use of the key by the lock, not only by OpenSSL's internal atomics (which
 * ThreadSanitizer cannot see). */
static void pubkey_put(EVP_PKEY *pk)
{
	pthread_mutex_lock(&pk_cache.lock);
	EVP_PKEY_free(pk);
	pthread_mutex_unlock(&pk_cache.lock);
}

__attribute__((destructor)) static void pk_cache_clear(void)
{
	pthread_mutex_lock(&pk_cache.lock);
	for (unsigned i = 0; i < PK_CACHE_SLOTS; i++) {
		if (pk_cache.slot[i].used)
			EVP_PKEY_free(pk_cache.slot[i].pkey);
		pk_cache.slot[i].used = false;
	}
	pthread_mutex_unlock(&pk_cache.lock);
}

/* Public keys of small order (and their non-canonical encodings, with or
 * without the sign bit). OpenSSL's Ed25519 accepts them, and under such a
 * key a signature with R = identity and S = 0 verifies for 1 message in 8
 * up to every message: anyone could forge events "by" such an actor.
 * The list is the well-known blocklist: 0 and 1, the two points of order
 * 8, and p-1, p, p+1 (each checked against dcr_verify in development). */
static const uint8_t weak_keys[7][32] = {
    {0x00},
    {0x01},
    {0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4,
     0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6,
     0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05},
    {0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b,
     0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39,
     0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a},
    {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    {0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    {0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
};

bool dcr_pub_is_weak(const uint8_t pub[DCR_ED25519_PUB_BYTES])
{
	for (size_t i = 0; i < sizeof(weak_keys) / sizeof(weak_keys[0]); i++)
		if (memcmp(pub, weak_keys[i], 31) == 0 && (pub[31] & 0x7f) == weak_keys[i][31])
			return true;
	return false;
}

int dcr_verify(const uint8_t pub[DCR_ED25519_PUB_BYTES], const char *domain, const void *msg,
	       size_t n, const uint8_t sig[DCR_ED25519_SIG_BYTES])
{
	uint8_t stackbuf[1024];
	size_t total;
	int rc = 0;
	if (dcr_pub_is_weak(pub))
		return DCR_EKEY;
	EVP_PKEY *pk = pubkey_get(pub);
	if (pk == NULL)
		return DCR_EKEY;
	uint8_t *m = dsep(domain, msg, n, stackbuf, sizeof stackbuf, &total);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk) != 1) {
		rc = DCR_ECRYPTO;
	} else if (EVP_DigestVerify(md, sig, DCR_ED25519_SIG_BYTES, m, total) != 1) {
		rc = DCR_ESIG;
	}
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	pubkey_put(pk);
	if (m != stackbuf)
		free(m);
	return rc;
}

/* RFC 8032 5.1.3 point decoding, deterministic and independent of the
 * OpenSSL version: y (the 255 low bits, little-endian) must be < p, x^2 =
 * (y^2 - 1) / (d y^2 + 1) must have a square root mod p, and x = 0 with
 * the sign bit set is refused. */
bool dcr_ed25519_point_valid(const uint8_t pub[DCR_ED25519_PUB_BYTES])
{
	uint8_t be[32];
	bool ok = false;
	BN_CTX *ctx = BN_CTX_new();
	DCR_ASSERT(ctx);
	BN_CTX_start(ctx);
	BIGNUM *p = BN_CTX_get(ctx), *d = BN_CTX_get(ctx), *y = BN_CTX_get(ctx),
	       *u = BN_CTX_get(ctx), *v = BN_CTX_get(ctx), *x = BN_CTX_get(ctx),
	       *t = BN_CTX_get(ctx), *e = BN_CTX_get(ctx), *y2 = BN_CTX_get(ctx);
	DCR_ASSERT(y2);
	for (size_t i = 0; i < 32; i++)
		be[i] = pub[31 - i];
	be[0] &= 0x7f;
	int sign = pub[31] >> 7;
	/* p = 2^255 - 19; d = -121665 / 121666 mod p */
	DCR_ASSERT(BN_set_word(p, 1) && BN_lshift(p, p, 255) && BN_sub_word(p, 19));
	DCR_ASSERT(BN_bin2bn(be, 32, y));
	if (BN_cmp(y, p) >= 0)
		goto out;
	DCR_ASSERT(BN_set_word(t, 121666) && BN_mod_inverse(t, t, p, ctx));
	DCR_ASSERT(BN_set_word(d, 121665) && BN_mod_mul(d, d, t, p, ctx) &&
	           BN_mod_sub(d, p, d, p, ctx));
	DCR_ASSERT(BN_mod_sqr(y2, y, p, ctx));
	DCR_ASSERT(BN_copy(u, y2) && BN_mod_sub(u, u, BN_value_one(), p, ctx));
	DCR_ASSERT(BN_mod_mul(v, d, y2, p, ctx) && BN_mod_add(v, v, BN_value_one(), p, ctx));
	/* x = u v^3 (u v^7)^((p-5)/8) */
	DCR_ASSERT(BN_copy(e, p) && BN_sub_word(e, 5) && BN_rshift(e, e, 3));
	DCR_ASSERT(BN_mod_sqr(t, v, p, ctx) && BN_mod_mul(t, t, v, p, ctx)); /* v^3 */
	DCR_ASSERT(BN_mod_mul(x, u, t, p, ctx));                              /* u v^3 */
	DCR_ASSERT(BN_mod_sqr(t, t, p, ctx) && BN_mod_mul(t, t, v, p, ctx));  /* v^7 */
	DCR_ASSERT(BN_mod_mul(t, t, u, p, ctx) && BN_mod_exp(t, t, e, p, ctx));
	DCR_ASSERT(BN_mod_mul(x, x, t, p, ctx));
	/* v x^2 == u: x; == -u: x * 2^((p-1)/4); else no square root */
	DCR_ASSERT(BN_mod_sqr(t, x, p, ctx) && BN_mod_mul(t, t, v, p, ctx));
	if (BN_cmp(t, u) != 0) {
		DCR_ASSERT(BN_mod_sub(e, p, u, p, ctx));
		if (BN_cmp(t, e) != 0)
			goto out;
		DCR_ASSERT(BN_copy(e, p) && BN_sub_word(e, 1) && BN_rshift(e, e, 2));
		DCR_ASSERT(BN_set_word(t, 2) && BN_mod_exp(t, t, e, p, ctx));
		DCR_ASSERT(BN_mod_mul(x, x, t, p, ctx));
	}
	if (BN_is_zero(x) && sign)
		goto out;
	ok = true;
out:
	BN_CTX_end(ctx);
	BN_CTX_free(ctx);
	return ok;
}

char *dcr_pub_format(const uint8_t pub[DCR_ED25519_PUB_BYTES])
{
	char *b = dcr_b64_encode(pub, DCR_ED25519_PUB_BYTES);
	char *s = dcr_asprintf("ed25519:%s", b);
	free(b);
	return s;
}

int dcr_pub_parse(const char *s, uint8_t pub[DCR_ED25519_PUB_BYTES])
{
	static const char prefix[] = "ed25519:";
	uint8_t tmp[DCR_ED25519_PUB_BYTES + 3];
	if (s == NULL || strncmp(s, prefix, sizeof prefix - 1) != 0)
		return DCR_EKEY;
	s += sizeof prefix - 1;
	int n = dcr_b64_decode(s, strlen(s), tmp, sizeof tmp);
	/* Refuse encodings that are not points on the curve (our own check:
	 * OpenSSL only decodes a key when it verifies), and small-order keys. */
	if (n != DCR_ED25519_PUB_BYTES || !dcr_ed25519_point_valid(tmp) || dcr_pub_is_weak(tmp))
		return DCR_EKEY;
	memcpy(pub, tmp, DCR_ED25519_PUB_BYTES);
	return 0;
}

/* ---- AES-256-GCM ---- */

static int gcm(bool enc, const uint8_t *key, const uint8_t *nonce, const void *aad,
	       size_t aad_n, const void *in, size_t n, void *out, uint8_t *tag)
{
	int rc = 0, len = 0;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (c == NULL)
		return DCR_ECRYPTO;
	if (EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce, enc ? 1 : 0) != 1) {
		rc = DCR_ECRYPTO;
		goto out;
	}
	if (aad_n && EVP_CipherUpdate(c, NULL, &len, aad, (int)aad_n) != 1) {
		rc = DCR_ECRYPTO;
		goto out;
	}
	const uint8_t *ip = in;
	uint8_t *op = out;
	for (size_t off = 0; off < n;) { /* EVP takes int lengths */
		size_t step = n - off > (1u << 30) ? (1u << 30) : n - off;
		if (EVP_CipherUpdate(c, op + off, &len, ip + off, (int)step) != 1) {
			rc = DCR_ECRYPTO;
			goto out;
		}
		off += step;
	}
	if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, DCR_GCM_TAG_BYTES, tag) != 1) {
		rc = DCR_ECRYPTO;
		goto out;
	}
	if (EVP_CipherFinal_ex(c, op + n, &len) != 1) {
		rc = enc ? DCR_ECRYPTO : DCR_EINTEGRITY;
		goto out;
	}
	if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, DCR_GCM_TAG_BYTES, tag) != 1)
		rc = DCR_ECRYPTO;
out:
	ERR_clear_error();
	EVP_CIPHER_CTX_free(c);
	return rc;
}

int dcr_gcm_seal(const uint8_t key[DCR_AES_KEY_BYTES], const uint8_t nonce[DCR_GCM_NONCE_BYTES],
		 const void *aad, size_t aad_n, const void *pt, size_t n, void *ct,
		 uint8_t tag[DCR_GCM_TAG_BYTES])
{
	return gcm(true, key, nonce, aad, aad_n, pt, n, ct, tag);
}

int dcr_gcm_open(const uint8_t key[DCR_AES_KEY_BYTES], const uint8_t nonce[DCR_GCM_NONCE_BYTES],
		 const void *aad, size_t aad_n, const void *ct, size_t n, void *pt,
		 const uint8_t tag[DCR_GCM_TAG_BYTES])
{
	return gcm(false, key, nonce, aad, aad_n, ct, n, pt, (uint8_t *)tag);
}
