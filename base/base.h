/* base.h: primitives shared by every dcr module.
 *
 * Errors: functions return 0 or a negative code; system errors are -errno,
 * project codes are the DCR_E* values below (a reserved range far from any
 * errno). Functions that can explain a failure take a `dcr_err *` and fill
 * it with a message that says what and where.
 *
 * This module is the only one that includes OpenSSL and msgpack-c headers;
 * the rest of the code uses the wrappers here.
 *
 * Include this header after system headers: it ends by banning unsafe libc
 * functions (banned.h). */
#ifndef DCR_BASE_H
#define DCR_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "limits.h"

/* ---- errors ---------------------------------------------------------- */

#define DCR_ERRNO_MAP(X)                                                        \
	X(ETRUNC, "truncated input")                                            \
	X(ETRAILING, "trailing bytes after value")                              \
	X(ENONCANON, "non-canonical encoding")                                  \
	X(ELIMIT, "limit exceeded")                                             \
	X(EFORMAT, "malformed input")                                           \
	X(ESIG, "bad signature")                                                \
	X(EKEY, "bad key")                                                      \
	X(ECRYPTO, "cryptographic failure")                                     \
	X(ESTORE, "storage failure")                                            \
	X(ESEQ, "sequence conflict")                                            \
	X(ENOTFOUND, "not found")                                               \
	X(EEXIST, "already exists")                                             \
	X(EDENIED, "permission denied")                                         \
	X(ESTATE, "not allowed in the current state")                           \
	X(EINVALID, "invalid")                                                  \
	X(ECSV, "invalid CSV data")                                             \
	X(ESQL, "SQL error")                                                    \
	X(ETIMEOUT, "time limit exceeded")                                      \
	X(EPROTO, "protocol error")                                             \
	X(EINTEGRITY, "integrity check failed")                                 \
	X(EINTERNAL, "internal error")                                          \
	X(ECANCELED, "cancelled")                                               \
	X(ESCRIPT, "the script failed")                                         \
	X(EOUTPUT, "output refused")                                            \
	X(EUNAVAIL, "not available on this host")

enum {
	DCR__ERR_BASE = -30000,
#define DCR__ERR_ENUM(name, msg) DCR_##name,
	DCR_ERRNO_MAP(DCR__ERR_ENUM)
#undef DCR__ERR_ENUM
	DCR__ERR_END
};

/* Static text for any code (project or -errno). Never NULL. */
const char *dcr_strerror(int code);
/* Short name of a project code ("ESIG"), or "ERRNO" for -errno. */
const char *dcr_errname(int code);

typedef struct dcr_err {
	int code;
	char msg[DCR_ERR_MSG_BYTES];
} dcr_err;

/* Sets err (if not NULL) and returns code, so callers can
 * `return dcr_err_set(err, DCR_EFORMAT, "line %d ...", n);`.
 * If fmt is NULL the message is dcr_strerror(code). */
int dcr_err_set(dcr_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prefixes the existing message with "prefix: ". */
void dcr_err_prefix(dcr_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dcr_err_clear(dcr_err *err);

/* Invariant check that stays on in release builds. */
#define DCR_ASSERT(cond)                                                        \
	do {                                                                    \
		if (!(cond))                                                    \
			dcr__assert_fail(#cond, __FILE__, __LINE__);            \
	} while (0)
_Noreturn void dcr__assert_fail(const char *expr, const char *file, int line);

/* malloc/calloc/realloc that abort on exhaustion (allocation sizes are
 * always bounded by the limits in limits.h before we get here). */
void *dcr_malloc(size_t n);
/* align: a power of two, a multiple of sizeof(void *); free() frees it */
void *dcr_malloc_aligned(size_t align, size_t n);
void *dcr_calloc(size_t n, size_t size);
void *dcr_realloc(void *p, size_t n);
char *dcr_strdup(const char *s);
char *dcr_strndup(const char *s, size_t n);
/* Formatted string, heap allocated (free with free()). */
char *dcr_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- growable byte buffer ---------------------------------------------- */

typedef struct dcr_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
} dcr_buf;

void dcr_buf_init(dcr_buf *b);
void dcr_buf_release(dcr_buf *b);
void dcr_buf_reset(dcr_buf *b); /* len = 0, keeps memory */
void dcr_buf_reserve(dcr_buf *b, size_t extra);
void dcr_buf_append(dcr_buf *b, const void *p, size_t n);
void dcr_buf_append_u8(dcr_buf *b, uint8_t v);
void dcr_buf_append_str(dcr_buf *b, const char *s);
void dcr_buf_printf(dcr_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ensures a NUL after data[len] (not counted in len); returns data. */
char *dcr_buf_cstr(dcr_buf *b);

/* A reader over memory for the project's byte-source callbacks
 * (int read(void *ctx, void *buf, size_t cap): bytes read, 0 at the end;
 * cmp_prepare, cmp_sandbox_input, cmp_synth_run): dcr_mem_read with ctx a
 * dcr_mem hands out p[off..n) and advances off. The bytes must outlive
 * the reads. */
typedef struct dcr_mem {
	const uint8_t *p;
	size_t n, off;
} dcr_mem;
int dcr_mem_read(void *ctx, void *buf, size_t cap);

/* ---- encodings --------------------------------------------------------- */

/* Appends s[0..n) as a JSON string literal (quotes included), escaping
 * quotes, backslashes and control characters; bytes >= 0x80 pass through
 * (callers hold UTF-8). */
void dcr_json_str(dcr_buf *b, const char *s, size_t n);

/* Compares at most n bytes of two strings (to a NUL) folding A-Z to a-z
 * only, whatever the locale: the rules and the SQL tokenizer use it, so
 * that a verdict is the same on every machine. <0, 0 or >0. */
int dcr_ascii_ncasecmp(const char *a, const char *b, size_t n);

/* Lowercase hex; out must hold 2*n+1 bytes. */
void dcr_hex_encode(const uint8_t *p, size_t n, char *out);
/* Decodes exactly 2*n hex chars (either case) into n bytes. */
int dcr_hex_decode(const char *s, size_t slen, uint8_t *out, size_t n);
/* Standard base64 with padding; returns heap string. */
char *dcr_b64_encode(const uint8_t *p, size_t n);
/* Decodes strict padded base64; returns decoded length or negative. */
int dcr_b64_decode(const char *s, size_t slen, uint8_t *out, size_t out_cap);

/* Big-endian helpers. */
void dcr_put_be64(uint8_t *p, uint64_t v);
uint64_t dcr_get_be64(const uint8_t *p);
void dcr_put_be32(uint8_t *p, uint32_t v);
uint32_t dcr_get_be32(const uint8_t *p);

/* Wall clock, unix milliseconds; monotonic milliseconds. */
uint64_t dcr_now_ms(void);
uint64_t dcr_mono_ms(void);

/* Whole-file helpers. dcr_read_file caps at max_bytes. */
int dcr_read_file(const char *path, size_t max_bytes, dcr_buf *out, dcr_err *err);
/* Writes atomically (temp file, fsync, rename) with the given mode. */
int dcr_write_file_atomic(const char *path, const void *p, size_t n, int mode, dcr_err *err);
/* true if path is a directory holding nothing but "." and ".." */
bool dcr_dir_empty(const char *path);
/* dcr's per-user configuration directory (known_servers, joined rooms,
 * remembered checkpoints): $DCR_CONFIG_DIR, else $XDG_CONFIG_HOME/dcr,
 * else $HOME/.config/dcr. With create, makes it (and missing parents) mode
 * 0700. Returns a malloc'd path (caller frees) or NULL with err set. */
char *dcr_config_dir(bool create, dcr_err *err);

/* ---- crypto (OpenSSL 3) ------------------------------------------------ */

#define DCR_SHA256_BYTES 32
#define DCR_ED25519_PUB_BYTES 32
#define DCR_ED25519_SIG_BYTES 64
#define DCR_AES_KEY_BYTES 32
#define DCR_GCM_NONCE_BYTES 12
#define DCR_GCM_TAG_BYTES 16

/* Cryptographically secure random bytes; aborts if the RNG fails. */
void dcr_random(void *p, size_t n);
/* Uniform integer in [0, bound) from the CSPRNG (bound > 0). */
uint64_t dcr_random_below(uint64_t bound);

void dcr_sha256(const void *p, size_t n, uint8_t out[DCR_SHA256_BYTES]);
typedef struct dcr_sha256_ctx dcr_sha256_ctx;
dcr_sha256_ctx *dcr_sha256_new(void);
void dcr_sha256_update(dcr_sha256_ctx *c, const void *p, size_t n);
/* Writes the digest; the context may be reused after dcr_sha256_reset. */
void dcr_sha256_final(dcr_sha256_ctx *c, uint8_t out[DCR_SHA256_BYTES]);
void dcr_sha256_reset(dcr_sha256_ctx *c);
void dcr_sha256_free(dcr_sha256_ctx *c);

/* Ed25519 private key (opaque). The public key is 32 raw bytes. */
typedef struct dcr_key dcr_key;
int dcr_key_generate(dcr_key **out);
/* PEM (PKCS#8) file; errors name the path. */
int dcr_key_load(const char *path, dcr_key **out, dcr_err *err);
/* Writes PEM with mode 0600; refuses to overwrite unless force. */
int dcr_key_save(const dcr_key *k, const char *path, bool force, dcr_err *err);
void dcr_key_public(const dcr_key *k, uint8_t pub[DCR_ED25519_PUB_BYTES]);
void dcr_key_free(dcr_key *k);

/* Signs domain || 0x00 || msg. domain is a short ASCII string such as
 * DCR_DOMAIN_EVENT; the separator keeps domains prefix-free. */
int dcr_sign(const dcr_key *k, const char *domain, const void *msg, size_t n,
	     uint8_t sig[DCR_ED25519_SIG_BYTES]);
/* 0 if valid, DCR_ESIG if not, DCR_EKEY if pub is not a valid point.
 * Parsed public keys are cached (thread safe). */
int dcr_verify(const uint8_t pub[DCR_ED25519_PUB_BYTES], const char *domain, const void *msg,
	       size_t n, const uint8_t sig[DCR_ED25519_SIG_BYTES]);

#define DCR_DOMAIN_EVENT "dcr.event.v1"
#define DCR_DOMAIN_CHECKPOINT "dcr.checkpoint.v1"
#define DCR_DOMAIN_AUTH "dcr.auth.v1"
/* Authentication on a TLS connection: the signed message is challenge ||
 * daemon_key || the connection's channel binding (RFC 9266 tls-exporter,
 * base/tls.h), so it is useless on any other connection
 * (docs/protocol.md "Authentication"). */
#define DCR_DOMAIN_AUTH_TLS "dcr.auth.tls.v1"

/* True for the small-order public keys (identity, points of order 2, 4
 * and 8, and their non-canonical encodings) under which a signature can be
 * forged without a private key. dcr_verify and dcr_pub_parse refuse them. */
bool dcr_pub_is_weak(const uint8_t pub[DCR_ED25519_PUB_BYTES]);

/* RFC 8032 5.1.3: the 32 bytes decode to a curve point (y < p, x
 * recoverable, not x = 0 with the sign bit set). Our own arithmetic, so
 * the verdict does not depend on the OpenSSL version. */
bool dcr_ed25519_point_valid(const uint8_t pub[DCR_ED25519_PUB_BYTES]);

/* "ed25519:<base64>" <-> raw key (not a point or weak: refused). */
char *dcr_pub_format(const uint8_t pub[DCR_ED25519_PUB_BYTES]);
int dcr_pub_parse(const char *s, uint8_t pub[DCR_ED25519_PUB_BYTES]);

/* AES-256-GCM one-shot. ct has n bytes; tag 16 bytes. open returns
 * DCR_EINTEGRITY when the tag does not match. */
int dcr_gcm_seal(const uint8_t key[DCR_AES_KEY_BYTES], const uint8_t nonce[DCR_GCM_NONCE_BYTES],
		 const void *aad, size_t aad_n, const void *pt, size_t n, void *ct,
		 uint8_t tag[DCR_GCM_TAG_BYTES]);
int dcr_gcm_open(const uint8_t key[DCR_AES_KEY_BYTES], const uint8_t nonce[DCR_GCM_NONCE_BYTES],
		 const void *aad, size_t aad_n, const void *ct, size_t n, void *pt,
		 const uint8_t tag[DCR_GCM_TAG_BYTES]);

/* Constant-time compare (CRYPTO_memcmp) and wipe (OPENSSL_cleanse). */
int dcr_ct_memcmp(const void *a, const void *b, size_t n);
void dcr_wipe(void *p, size_t n);

/* ---- msgpack (canonical) ------------------------------------------------
 *
 * Canonical form, required of everything we sign or hash and of protocol
 * frames: every integer, length and count in its shortest encoding;
 * non-negative integers as unsigned; floats only as float64; map keys are
 * strings, strictly increasing in bytewise order (memcmp, shorter first on
 * a common prefix), so no duplicates; no ext types. */

typedef struct dcr_mpw {
	dcr_buf *out;
} dcr_mpw;

void dcr_mpw_init(dcr_mpw *w, dcr_buf *out); /* appends to out */
void dcr_mpw_map(dcr_mpw *w, uint32_t n);     /* caller writes keys sorted */
void dcr_mpw_array(dcr_mpw *w, uint32_t n);
void dcr_mpw_str(dcr_mpw *w, const char *s);
void dcr_mpw_strn(dcr_mpw *w, const char *s, size_t n);
void dcr_mpw_bin(dcr_mpw *w, const void *p, size_t n);
void dcr_mpw_uint(dcr_mpw *w, uint64_t v);
void dcr_mpw_int(dcr_mpw *w, int64_t v);
void dcr_mpw_double(dcr_mpw *w, double v);
void dcr_mpw_bool(dcr_mpw *w, bool v);
void dcr_mpw_nil(dcr_mpw *w);
/* Appends an already-encoded (validated) value verbatim. */
void dcr_mpw_raw(dcr_mpw *w, const void *p, size_t n);

typedef struct dcr_mp_limits {
	size_t bytes_max;   /* whole input */
	uint32_t depth_max; /* nesting of arrays/maps; scalars at top are depth 0 */
	size_t str_max;     /* bytes of one str or bin */
	uint32_t elems_max; /* entries of one array or map */
	/* values in the whole document (every scalar, string, array and map
	 * counts one; a map entry counts its key and its value); 0: bounded
	 * only by bytes_max. Unpacking costs about DCR_MP_UNPACKED_BYTES_PER_OBJECT
	 * per value, so this caps the memory of a parsed document. */
	uint32_t objs_max;
} dcr_mp_limits;

/* Limits used for events and protocol frames (from limits.h). */
extern const dcr_mp_limits dcr_mp_limits_default;

/* Checks that [p, p+n) is exactly one canonical msgpack value within the
 * limits. Never allocates in proportion to declared lengths. The error
 * names the byte offset: "offset 17: string of 9000 bytes exceeds ...". */
int dcr_mp_check(const void *p, size_t n, const dcr_mp_limits *lim, dcr_err *err);
/* dcr_mp_check that also returns the number of values (*objs, set on
 * success only). */
int dcr_mp_check_count(const void *p, size_t n, const dcr_mp_limits *lim, uint64_t *objs,
                       dcr_err *err);

/* A decoded document: dcr_mp_check, then unpacked. Values point into the
 * document (and into the input bytes, which must outlive it). */
typedef struct dcr_mp_doc dcr_mp_doc;
typedef struct dcr_mpv dcr_mpv; /* opaque node */

enum dcr_mp_type {
	DCR_MP_NIL,
	DCR_MP_BOOL,
	DCR_MP_UINT,
	DCR_MP_INT, /* negative */
	DCR_MP_FLOAT,
	DCR_MP_STR,
	DCR_MP_BIN,
	DCR_MP_ARRAY,
	DCR_MP_MAP,
};

int dcr_mp_parse(const void *p, size_t n, const dcr_mp_limits *lim, dcr_mp_doc **out,
		 dcr_err *err);
void dcr_mp_doc_free(dcr_mp_doc *d);
const dcr_mpv *dcr_mp_root(const dcr_mp_doc *d);

/* NULL (an absent entry from dcr_mp_get or dcr_mp_at) gives DCR_MP_NIL, so
 * `dcr_mp_type(dcr_mp_get(m, "k")) != DCR_MP_ARRAY` is a safe check. */
enum dcr_mp_type dcr_mp_type(const dcr_mpv *v);
/* Map lookup by key; NULL if absent or v is not a map. */
const dcr_mpv *dcr_mp_get(const dcr_mpv *v, const char *key);
uint32_t dcr_mp_len(const dcr_mpv *v); /* array/map entries, str/bin bytes */
const dcr_mpv *dcr_mp_at(const dcr_mpv *v, uint32_t i); /* array element */
/* Map entry i: key string (not NUL-terminated) and value. */
const dcr_mpv *dcr_mp_map_at(const dcr_mpv *v, uint32_t i, const char **key, size_t *key_n);

/* Typed getters: return 0, or DCR_EFORMAT if the type is wrong (v may be
 * NULL, giving DCR_EFORMAT). str/bin return pointers into the input. */
int dcr_mp_u64(const dcr_mpv *v, uint64_t *out);
int dcr_mp_i64(const dcr_mpv *v, int64_t *out);
int dcr_mp_f64(const dcr_mpv *v, double *out); /* float, or any int */
int dcr_mp_bool(const dcr_mpv *v, bool *out);
int dcr_mp_str(const dcr_mpv *v, const char **p, size_t *n);
int dcr_mp_bin(const dcr_mpv *v, const uint8_t **p, size_t *n);
/* str copied to a fresh NUL-terminated heap string; rejects embedded NUL. */
int dcr_mp_strdup(const dcr_mpv *v, char **out);
/* Convenience: map field getters, with err naming the field when absent
 * or of the wrong type. */
int dcr_mp_get_u64(const dcr_mpv *m, const char *key, uint64_t *out, dcr_err *err);
int dcr_mp_get_str(const dcr_mpv *m, const char *key, const char **p, size_t *n, dcr_err *err);
int dcr_mp_get_bin(const dcr_mpv *m, const char *key, const uint8_t **p, size_t *n,
		   dcr_err *err);
/* Exactly-n-byte bin field (keys, hashes). */
int dcr_mp_get_binn(const dcr_mpv *m, const char *key, uint8_t *out, size_t n, dcr_err *err);

#include "banned.h"
/* ---- file archives (archive.c, docs/compute.md "The result archive") --- */

/* One file of an archive: name (a relative path, not NUL-terminated when
 * read back) and its bytes. */
typedef struct dcr_archive_entry {
	const char *name;
	size_t name_len;
	const uint8_t *data;
	size_t len;
} dcr_archive_entry;

/* A relative path of '/'-separated components, none empty, "." or "..",
 * without control bytes, at most DCR_ARCHIVE_NAME_BYTES_MAX bytes. */
bool dcr_archive_name_valid(const char *s, size_t n);
/* Appends the canonical archive of the n entries (any order; names valid
 * and unique: asserted). */
void dcr_archive_write(dcr_buf *out, const dcr_archive_entry *e, size_t n);
/* A parsed archive: entries point into the input bytes, which must
 * outlive it. */
typedef struct dcr_archive {
	dcr_archive_entry *e;
	size_t n;
	dcr_mp_doc *doc;
} dcr_archive;
/* Parses and checks an archive (canonical, sorted, names valid);
 * DCR_EFORMAT (or the msgpack check's code) with a message otherwise. */
int dcr_archive_read(const void *p, size_t n, dcr_archive *out, dcr_err *err);
const dcr_archive_entry *dcr_archive_find(const dcr_archive *a, const char *name);
void dcr_archive_release(dcr_archive *a);

#endif
