/* tls.c: TLS 1.3 over memory buffers (the engine), the server's key
 * directory and context, and the blocking client (tls.h).
 *
 * Invariants: every context is TLS 1.3 only, without compression,
 * renegotiation, tickets or a session cache; an engine never does I/O
 * (its BIO reads from the bytes fed or lent to it and appends to its own
 * output buffer), so dcrd's loop decides when bytes move and how many are
 * held; the OpenSSL error queue is empty whenever a function of this file
 * returns (translated into dcr_err, or cleared). The client is the same
 * engine driven by a blocking loop over a socket.
 *
 * Copies: ciphertext goes from the caller's (lent) buffer into OpenSSL's
 * record buffer, is decrypted there and copied once into the caller's
 * plaintext buffer; records OpenSSL writes are appended once to the
 * engine's output, which the caller takes whole (drain_all swaps buffers)
 * or the client sends from where it is.
 *
 * Workload: one engine per TCP connection of dcrd (a handshake costs an
 * Ed25519 signature and an X25519 exchange), one client per CLI or mount
 * connection. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls.h"

#define IO_BUF_BYTES (16u * 1024 + 512) /* one TLS record and its overhead */
/* The client encrypts up to this much plaintext before it hands the
 * records to the socket in one go: few system calls for large uploads,
 * bounded memory. */
#define CLIENT_BATCH_BYTES (256u * 1024)

struct dcr_tls_server {
	SSL_CTX *ctx;
	uint8_t fp[DCR_SHA256_BYTES];
};

struct dcr_tls_engine {
	SSL *ssl;
	BIO *bio; /* owned by ssl; reads in then lent, appends to out */
	dcr_buf in;            /* ciphertext fed (copied), from in_off on */
	size_t in_off;         /* released once consumed */
	const uint8_t *lent;   /* ciphertext lent (dcr_tls_engine_feed_lent) */
	size_t lent_n;         /* not consumed yet */
	dcr_buf out;           /* records for the peer, from out_off on */
	size_t out_off;
	bool done, closed;
	bool server, sent; /* sent: bytes were drained for the peer */
};

struct dcr_tls_client {
	dcr_tls_engine *e;
	SSL_CTX *ctx;
	int fd;
	char name[128];
	uint8_t binding[DCR_TLS_BINDING_BYTES];
};

/* ---- errors ---------------------------------------------------------------- */

/* What an OpenSSL reason means for a dcr user, or NULL. */
static const char *reason_text(unsigned long e)
{
	if (ERR_GET_LIB(e) != ERR_LIB_SSL)
		return NULL;
	switch (ERR_GET_REASON(e)) {
	case SSL_R_UNSUPPORTED_PROTOCOL:
		return "the peer offered only TLS 1.2 or older; dcr speaks TLS 1.3 only";
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
		return "the peer refused the TLS version (protocol_version alert): one side "
		       "speaks no TLS 1.3";
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_HTTP_REQUEST:
	case SSL_R_HTTPS_PROXY_REQUEST:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
		return "the peer does not speak TLS (its bytes are not TLS records)";
	case SSL_R_NO_SHARED_CIPHER:
	case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
	case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
		return "no cipher suite or signature algorithm in common with the peer";
	case SSL_R_UNEXPECTED_EOF_WHILE_READING:
		return "the peer closed the connection in the middle of the session";
	default:
		return NULL;
	}
}

/* Sets err to "what: <the OpenSSL error queue, explained>" and clears the
 * queue. Returns code. */
__attribute__((format(printf, 3, 4))) static int tls_err(dcr_err *err, int code, const char *fmt,
                                                         ...)
{
	char what[256], detail[256] = "", raw[128];
	unsigned long e, first = 0;
	const char *text;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	while ((e = ERR_get_error()) != 0)
		if (!first)
			first = e;
	if (first) {
		ERR_error_string_n(first, raw, sizeof raw);
		text = reason_text(first);
		if (text)
			snprintf(detail, sizeof detail, ": %s (OpenSSL %s)", text, raw);
		else
			snprintf(detail, sizeof detail, ": OpenSSL %s", raw);
	}
	return dcr_err_set(err, code, "%s%s", what, detail);
}

/* ---- fingerprints ---------------------------------------------------------- */

void dcr_tls_fingerprint_format(const uint8_t fp[DCR_SHA256_BYTES],
                                char out[DCR_TLS_FINGERPRINT_BYTES])
{
	memcpy(out, DCR_TLS_FINGERPRINT_PREFIX, 7);
	dcr_hex_encode(fp, DCR_SHA256_BYTES, out + 7);
	DCR_ASSERT(strlen(out) == DCR_TLS_FINGERPRINT_CHARS);
}

int dcr_tls_fingerprint_parse(const char *s, uint8_t fp[DCR_SHA256_BYTES], dcr_err *err)
{
	size_t n = strlen(s);

	if (strncmp(s, DCR_TLS_FINGERPRINT_PREFIX, 7) != 0)
		return dcr_err_set(err, DCR_EFORMAT,
		                   "fingerprint \"%.80s\": expected sha256: and 64 hex digits", s);
	if (n != DCR_TLS_FINGERPRINT_CHARS)
		return dcr_err_set(err, DCR_EFORMAT,
		                   "fingerprint \"%.80s\": expected 64 hex digits after sha256:, "
		                   "found %zu characters",
		                   s, n - 7);
	if (dcr_hex_decode(s + 7, 64, fp, DCR_SHA256_BYTES) < 0)
		return dcr_err_set(err, DCR_EFORMAT,
		                   "fingerprint \"%.80s\": not hex digits after sha256:", s);
	return 0;
}

/* SHA-256 of the DER SubjectPublicKeyInfo. */
static int spki_fingerprint(const X509_PUBKEY *pk, uint8_t fp[DCR_SHA256_BYTES], dcr_err *err)
{
	unsigned char *der = NULL;
	int n = i2d_X509_PUBKEY(pk, &der);

	if (n <= 0)
		return tls_err(err, DCR_ECRYPTO, "encoding the public key");
	dcr_sha256(der, (size_t)n, fp);
	OPENSSL_free(der);
	return 0;
}

static int pkey_fingerprint(EVP_PKEY *k, uint8_t fp[DCR_SHA256_BYTES], dcr_err *err)
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(k, &der);

	if (n <= 0)
		return tls_err(err, DCR_ECRYPTO, "encoding the public key");
	dcr_sha256(der, (size_t)n, fp);
	OPENSSL_free(der);
	return 0;
}

/* ---- contexts --------------------------------------------------------------- */

/* The settings every context shares: TLS 1.3 only, no compression, no
 * renegotiation, no tickets, no session cache, buffers released while
 * idle. max_version: TLS1_3_VERSION (tests: TLS1_2_VERSION). */
static SSL_CTX *ctx_new(bool server, int max_version, dcr_err *err)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	if (!ctx) {
		tls_err(err, DCR_ECRYPTO, "creating a TLS context");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(
	        ctx, max_version == TLS1_3_VERSION ? TLS1_3_VERSION : TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, max_version) != 1) {
		tls_err(err, DCR_ECRYPTO, "setting the TLS version");
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx,
	                    SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
	/* a server holds many connections: no record buffers while idle; a
	 * client has one and keeps them (no allocation per record) */
	if (server)
		SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* the fingerprint is the identity */
	if (server)
		SSL_CTX_set_num_tickets(ctx, 0);
	return ctx;
}

/* ---- the key directory ------------------------------------------------------ */

static int fsync_dir(const char *dir, dcr_err *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return dcr_err_set(err, -errno, "%s: %s", dir, strerror(errno));
	if (fsync(fd) < 0)
		rc = dcr_err_set(err, -errno, "fsync %s: %s", dir, strerror(errno));
	close(fd);
	return rc;
}

/* Writes bytes to a fresh temporary file next to path (mode), fsynced;
 * *tmp_out is its name (caller frees). */
static int write_tmp(const char *path, const void *p, size_t n, int mode, char **tmp_out,
                     dcr_err *err)
{
	uint32_t r;
	char *tmp;
	int fd, rc = 0;

	dcr_random(&r, sizeof r);
	tmp = dcr_asprintf("%s.tmp.%ld.%08x", path, (long)getpid(), r);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		rc = dcr_err_set(err, -errno, "creating %s: %s", tmp, strerror(errno));
		free(tmp);
		return rc;
	}
	if (fchmod(fd, (mode_t)mode) < 0 || write(fd, p, n) != (ssize_t)n || fsync(fd) < 0)
		rc = dcr_err_set(err, errno ? -errno : -EIO, "writing %s: %s", tmp,
		                 strerror(errno ? errno : EIO));
	if (close(fd) < 0 && rc == 0)
		rc = dcr_err_set(err, -errno, "writing %s: %s", tmp, strerror(errno));
	if (rc < 0) {
		unlink(tmp);
		free(tmp);
		return rc;
	}
	*tmp_out = tmp;
	return 0;
}

static int load_key(const char *path, EVP_PKEY **out, dcr_err *err)
{
	struct stat st;
	EVP_PKEY *k = NULL;
	FILE *f;

	*out = NULL;
	f = fopen(path, "rbe");
	if (!f)
		return dcr_err_set(err, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
		fclose(f);
		return dcr_err_set(err, DCR_EKEY,
		                   "%s is readable by others (mode %03o): chmod 600 it (a TLS key "
		                   "anyone can read lets them impersonate this server)",
		                   path, (unsigned)(st.st_mode & 0777));
	}
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!k)
		return tls_err(err, DCR_EKEY, "%s: not a PEM private key", path);
	if (EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(k);
		return dcr_err_set(err, DCR_EKEY, "%s: not an Ed25519 key", path);
	}
	*out = k;
	return 0;
}

/* Makes the key at path unless one is there: published with link(2), so
 * a concurrent maker's key is never overwritten (then that one is
 * loaded). */
static int make_key(const char *dir, const char *path, EVP_PKEY **out, bool *created, dcr_err *err)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	BIO *mem = NULL;
	char *pem, *tmp = NULL;
	long n;
	int rc = 0;

	*out = NULL;
	if (!k)
		return tls_err(err, DCR_ECRYPTO, "generating the TLS key");
	mem = BIO_new(BIO_s_secmem());
	if (!mem || PEM_write_bio_PrivateKey(mem, k, NULL, NULL, 0, NULL, NULL) != 1) {
		rc = tls_err(err, DCR_ECRYPTO, "encoding the TLS key");
		goto out;
	}
	n = BIO_get_mem_data(mem, &pem);
	rc = write_tmp(path, pem, (size_t)n, 0600, &tmp, err);
	if (rc < 0)
		goto out;
	if (link(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		if (e != EEXIST) {
			rc = dcr_err_set(err, -e, "creating %s: %s", path, strerror(e));
			goto out;
		}
		EVP_PKEY_free(k); /* someone else made it first: theirs */
		k = NULL;
		rc = load_key(path, &k, err);
		goto out;
	}
	unlink(tmp);
	rc = fsync_dir(dir, err);
	if (rc == 0)
		*created = true;
out:
	BIO_free(mem);
	free(tmp);
	if (rc < 0)
		EVP_PKEY_free(k);
	else
		*out = k;
	return rc;
}

static X509 *load_cert(const char *path)
{
	FILE *f = fopen(path, "rbe");
	X509 *x;

	if (!f)
		return NULL;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	ERR_clear_error();
	return x;
}

/* A self-signed certificate for k (CN=dcrd, no expiry: RFC 5280's
 * 99991231235959Z), written to path (0644, atomically). */
static int make_cert(const char *dir, const char *path, EVP_PKEY *k, X509 **out, dcr_err *err)
{
	X509 *x = X509_new();
	X509_NAME *name = NULL;
	BIO *mem = NULL;
	uint64_t serial;
	char *pem, *tmp = NULL;
	long n;
	int rc = 0;

	*out = NULL;
	dcr_random(&serial, sizeof serial);
	serial >>= 1; /* positive */
	if (!x || X509_set_version(x, X509_VERSION_3) != 1 ||
	    ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial ? serial : 1) != 1 ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -86400) ||
	    ASN1_TIME_set_string(X509_getm_notAfter(x), "99991231235959Z") != 1 ||
	    X509_set_pubkey(x, k) != 1 || !(name = X509_NAME_new()) ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"dcrd", -1,
	                               -1, 0) != 1 ||
	    X509_set_subject_name(x, name) != 1 || X509_set_issuer_name(x, name) != 1 ||
	    X509_sign(x, k, NULL) <= 0) {
		rc = tls_err(err, DCR_ECRYPTO, "making the TLS certificate");
		goto out;
	}
	mem = BIO_new(BIO_s_mem());
	if (!mem || PEM_write_bio_X509(mem, x) != 1) {
		rc = tls_err(err, DCR_ECRYPTO, "encoding the TLS certificate");
		goto out;
	}
	n = BIO_get_mem_data(mem, &pem);
	rc = write_tmp(path, pem, (size_t)n, 0644, &tmp, err);
	if (rc < 0)
		goto out;
	if (rename(tmp, path) < 0) {
		rc = dcr_err_set(err, -errno, "creating %s: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = fsync_dir(dir, err);
out:
	X509_NAME_free(name);
	BIO_free(mem);
	free(tmp);
	if (rc < 0)
		X509_free(x);
	else
		*out = x;
	return rc;
}

int dcr_tls_server_open(const char *dir, dcr_tls_server **out, bool *created, dcr_err *err)
{
	char *kp = dcr_asprintf("%s/%s", dir, DCR_TLS_KEY_FILE);
	char *cp = dcr_asprintf("%s/%s", dir, DCR_TLS_CERT_FILE);
	dcr_tls_server *s = NULL;
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	bool made = false;
	int rc = 0;

	*out = NULL;
	ERR_clear_error();
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		rc = dcr_err_set(err, -errno, "creating %s: %s", dir, strerror(errno));
		goto out;
	}
	if (access(kp, F_OK) == 0)
		rc = load_key(kp, &k, err);
	else if (errno == ENOENT)
		rc = make_key(dir, kp, &k, &made, err);
	else
		rc = dcr_err_set(err, -errno, "%s: %s", kp, strerror(errno));
	if (rc < 0)
		goto out;
	x = load_cert(cp);
	if (x && X509_check_private_key(x, k) != 1) {
		/* a certificate of another key: issue one for ours */
		X509_free(x);
		x = NULL;
	}
	ERR_clear_error();
	if (!x) {
		rc = make_cert(dir, cp, k, &x, err);
		if (rc < 0)
			goto out;
	}
	s = dcr_calloc(1, sizeof *s);
	rc = pkey_fingerprint(k, s->fp, err);
	if (rc < 0)
		goto out;
	s->ctx = ctx_new(true, TLS1_3_VERSION, err);
	if (!s->ctx) {
		rc = err ? err->code : DCR_ECRYPTO;
		goto out;
	}
	if (SSL_CTX_use_certificate(s->ctx, x) != 1 || SSL_CTX_use_PrivateKey(s->ctx, k) != 1 ||
	    SSL_CTX_check_private_key(s->ctx) != 1) {
		rc = tls_err(err, DCR_EKEY, "%s and %s: the key does not work with TLS", kp, cp);
		goto out;
	}
	*out = s;
	s = NULL;
	if (created)
		*created = made;
out:
	dcr_tls_server_free(s);
	X509_free(x);
	EVP_PKEY_free(k);
	free(kp);
	free(cp);
	ERR_clear_error();
	return rc;
}

void dcr_tls_server_free(dcr_tls_server *s)
{
	if (!s)
		return;
	SSL_CTX_free(s->ctx);
	free(s);
}

void dcr_tls_server_fingerprint(const dcr_tls_server *s, uint8_t fp[DCR_SHA256_BYTES])
{
	memcpy(fp, s->fp, DCR_SHA256_BYTES);
}

/* ---- the engine ------------------------------------------------------------- */

/* The engine's BIO: reads what was fed (in), then what is lent; an empty
 * read asks to retry (more to come, never the end of the stream); writes
 * are appended to out. */
static int bio_read_ex(BIO *b, char *buf, size_t cap, size_t *got)
{
	dcr_tls_engine *e = BIO_get_data(b);
	size_t k = 0;

	BIO_clear_retry_flags(b);
	if (e->in_off < e->in.len) {
		k = e->in.len - e->in_off < cap ? e->in.len - e->in_off : cap;
		memcpy(buf, e->in.data + e->in_off, k);
		e->in_off += k;
		if (e->in_off == e->in.len) {
			dcr_buf_release(&e->in);
			e->in_off = 0;
		}
	}
	if (k < cap && e->lent_n > 0) {
		size_t m = e->lent_n < cap - k ? e->lent_n : cap - k;
		memcpy(buf + k, e->lent, m);
		e->lent += m;
		e->lent_n -= m;
		k += m;
	}
	*got = k;
	if (k == 0) {
		BIO_set_retry_read(b);
		return 0;
	}
	return 1;
}

static int bio_write_ex(BIO *b, const char *p, size_t n, size_t *put)
{
	dcr_tls_engine *e = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	dcr_buf_append(&e->out, p, n);
	*put = n;
	return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	dcr_tls_engine *e = BIO_get_data(b);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_PENDING:
		return (long)(e->in.len - e->in_off + e->lent_n);
	case BIO_CTRL_WPENDING:
		return (long)(e->out.len - e->out_off);
	default:
		return 0; /* BIO_CTRL_EOF: never the end */
	}
}

static BIO_METHOD *bio_method;
static CRYPTO_ONCE bio_once = CRYPTO_ONCE_STATIC_INIT;

static void bio_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "dcr tls engine");

	if (m && (BIO_meth_set_read_ex(m, bio_read_ex) != 1 ||
	          BIO_meth_set_write_ex(m, bio_write_ex) != 1 ||
	          BIO_meth_set_ctrl(m, bio_ctrl) != 1)) {
		BIO_meth_free(m);
		m = NULL;
	}
	bio_method = m; /* lives as long as the process */
}

static BIO *bio_new(dcr_tls_engine *e)
{
	BIO *b;

	if (!CRYPTO_THREAD_run_once(&bio_once, bio_method_init) || !bio_method)
		return NULL;
	b = BIO_new(bio_method);
	if (b) {
		BIO_set_data(b, e);
		BIO_set_init(b, 1);
	}
	return b;
}

static size_t out_pending(const dcr_tls_engine *e)
{
	return e->out.len - e->out_off;
}

/* The output was taken: empty it (its memory stays for the next records). */
static void out_taken(dcr_tls_engine *e, size_t n)
{
	e->out_off += n;
	if (e->out_off == e->out.len) {
		dcr_buf_reset(&e->out);
		e->out_off = 0;
	}
	if (n)
		e->sent = true;
}

static int engine_new(SSL_CTX *ctx, bool server, const char *sni, dcr_tls_engine **out,
                      dcr_err *err)
{
	dcr_tls_engine *e = dcr_calloc(1, sizeof *e);

	*out = NULL;
	ERR_clear_error();
	dcr_buf_init(&e->in);
	dcr_buf_init(&e->out);
	e->ssl = SSL_new(ctx);
	e->bio = bio_new(e);
	if (!e->ssl || !e->bio) {
		int rc = tls_err(err, DCR_ECRYPTO, "creating a TLS session");
		BIO_free(e->bio);
		SSL_free(e->ssl);
		free(e);
		return rc;
	}
	SSL_set_bio(e->ssl, e->bio, e->bio); /* one reference, owned by ssl */
	e->server = server;
	if (server) {
		SSL_set_accept_state(e->ssl);
	} else {
		SSL_set_connect_state(e->ssl);
		if (sni && SSL_set_tlsext_host_name(e->ssl, sni) != 1) {
			int rc = tls_err(err, DCR_EINVALID, "server name %s", sni);
			dcr_tls_engine_free(e);
			return rc;
		}
	}
	*out = e;
	return 0;
}

int dcr_tls_engine_server(dcr_tls_server *s, dcr_tls_engine **out, dcr_err *err)
{
	return engine_new(s->ctx, true, NULL, out, err);
}

void dcr_tls_engine_free(dcr_tls_engine *e)
{
	if (!e)
		return;
	SSL_free(e->ssl); /* and its BIO */
	dcr_buf_release(&e->in);
	dcr_buf_release(&e->out);
	free(e);
	ERR_clear_error();
}

/* Keeps a copy of n bytes fed (after what is lent: keep it first). */
static void engine_put(dcr_tls_engine *e, const void *p, size_t n)
{
	DCR_ASSERT(e->lent_n == 0);
	if (n == 0)
		return;
	if (e->in_off > 0) {
		/* (rare: bytes kept while the caller did not read) */
		memmove(e->in.data, e->in.data + e->in_off, e->in.len - e->in_off);
		e->in.len -= e->in_off;
		e->in_off = 0;
	}
	dcr_buf_append(&e->in, p, n);
}

/* One step of the handshake: 1 done, 0 wants more input, <0 failed. */
static int engine_handshake(dcr_tls_engine *e, const char *who, dcr_err *err)
{
	int r, ge;

	if (e->done)
		return 1;
	ERR_clear_error();
	r = SSL_do_handshake(e->ssl);
	if (r == 1) {
		e->done = true;
		return 1;
	}
	ge = SSL_get_error(e->ssl, r);
	if (ge == SSL_ERROR_WANT_READ || ge == SSL_ERROR_WANT_WRITE)
		return 0;
	if (e->server && !e->sent && out_pending(e) == 0) {
		/* OpenSSL answers bytes that are not TLS with silence: say it
		 * with a fatal decode_error alert (a plaintext record, as any
		 * alert before keys exist) so the peer learns why it is closed */
		static const uint8_t alert[7] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 50};
		dcr_buf_append(&e->out, alert, sizeof alert);
	}
	return tls_err(err, DCR_EPROTO, "TLS handshake%s%s", who ? " with " : "", who ? who : "");
}

int dcr_tls_engine_feed(dcr_tls_engine *e, const void *p, size_t n, dcr_err *err)
{
	engine_put(e, p, n);
	return engine_handshake(e, NULL, err);
}

int dcr_tls_engine_feed_lent(dcr_tls_engine *e, const void *p, size_t n, dcr_err *err)
{
	DCR_ASSERT(e->lent_n == 0);
	e->lent = p;
	e->lent_n = n;
	return engine_handshake(e, NULL, err);
}

void dcr_tls_engine_keep(dcr_tls_engine *e)
{
	const uint8_t *p = e->lent;
	size_t n = e->lent_n;

	e->lent = NULL;
	e->lent_n = 0;
	engine_put(e, p, n);
}

bool dcr_tls_engine_handshake_done(const dcr_tls_engine *e)
{
	return e->done;
}

int dcr_tls_engine_read(dcr_tls_engine *e, void *buf, size_t cap, dcr_err *err)
{
	size_t got = 0;
	int r, ge;

	DCR_ASSERT(e->done && cap > 0 && cap <= INT_MAX);
	ERR_clear_error();
	r = SSL_read_ex(e->ssl, buf, cap, &got);
	if (r == 1)
		return (int)got;
	ge = SSL_get_error(e->ssl, r);
	if (ge == SSL_ERROR_WANT_READ || ge == SSL_ERROR_WANT_WRITE)
		return 0;
	if (ge == SSL_ERROR_ZERO_RETURN) {
		ERR_clear_error();
		return dcr_err_set(err, -EPIPE, "the peer closed the TLS session");
	}
	return tls_err(err, DCR_EPROTO, "reading from the TLS session");
}

int dcr_tls_engine_write(dcr_tls_engine *e, const void *p, size_t n, dcr_err *err)
{
	DCR_ASSERT(e->done);
	if (e->closed)
		return dcr_err_set(err, -EPIPE, "writing to a closed TLS session");
	while (n > 0) {
		size_t w = 0;
		ERR_clear_error();
		if (SSL_write_ex(e->ssl, p, n, &w) != 1 || w == 0)
			return tls_err(err, DCR_EPROTO, "writing to the TLS session");
		p = (const uint8_t *)p + w;
		n -= w;
	}
	return 0;
}

void dcr_tls_engine_close(dcr_tls_engine *e)
{
	if (e->closed)
		return;
	e->closed = true;
	if (e->done) {
		ERR_clear_error();
		(void)SSL_shutdown(e->ssl);
		ERR_clear_error();
	}
}

size_t dcr_tls_engine_pending(const dcr_tls_engine *e)
{
	return out_pending(e);
}

size_t dcr_tls_engine_drain(dcr_tls_engine *e, void *buf, size_t cap)
{
	size_t n = out_pending(e) < cap ? out_pending(e) : cap;

	if (n)
		memcpy(buf, e->out.data + e->out_off, n);
	out_taken(e, n);
	return n;
}

void dcr_tls_engine_drain_all(dcr_tls_engine *e, dcr_buf *out)
{
	size_t n = out_pending(e);

	if (n == 0)
		return;
	if (out->len == 0 && e->out_off == 0) {
		/* the whole buffer changes hands: no copy */
		dcr_buf t = *out;
		*out = e->out;
		e->out = t;
		dcr_buf_reset(&e->out);
		e->sent = true;
		return;
	}
	dcr_buf_append(out, e->out.data + e->out_off, n);
	out_taken(e, n);
}

size_t dcr_tls_engine_buffered(const dcr_tls_engine *e)
{
	return e->in.len - e->in_off + e->lent_n + out_pending(e);
}

int dcr_tls_engine_binding(dcr_tls_engine *e, uint8_t out[DCR_TLS_BINDING_BYTES], dcr_err *err)
{
	if (!e->done)
		return dcr_err_set(err, DCR_ESTATE, "no channel binding before the TLS handshake");
	ERR_clear_error();
	if (SSL_export_keying_material(e->ssl, out, DCR_TLS_BINDING_BYTES, DCR_TLS_BINDING_LABEL,
	                               strlen(DCR_TLS_BINDING_LABEL), NULL, 0, 0) != 1)
		return tls_err(err, DCR_ECRYPTO, "exporting the channel binding (RFC 9266)");
	return 0;
}

int dcr_tls_engine_peer_fingerprint(dcr_tls_engine *e, uint8_t fp[DCR_SHA256_BYTES], dcr_err *err)
{
	X509 *x;
	int rc;

	if (!e->done)
		return dcr_err_set(err, DCR_ESTATE, "no peer certificate before the TLS handshake");
	x = SSL_get0_peer_certificate(e->ssl);
	if (!x)
		return dcr_err_set(err, DCR_EPROTO, "the peer sent no certificate");
	rc = spki_fingerprint(X509_get_X509_PUBKEY(x), fp, err);
	ERR_clear_error();
	return rc;
}

/* ---- the blocking client ---------------------------------------------------- */

/* Sends everything the engine holds for the server, from where it is. */
static int client_flush(dcr_tls_client *c, dcr_err *err)
{
	dcr_tls_engine *e = c->e;
	int rc = 0;

	while (out_pending(e) > 0) {
		ssize_t w =
		    send(c->fd, e->out.data + e->out_off, out_pending(e), MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			out_taken(e, out_pending(e)); /* the connection is lost */
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			rc = dcr_err_set(err, -ETIMEDOUT,
			                 "sending to %s: the server took nothing within the send "
			                 "timeout",
			                 c->name);
			break;
		}
		if (w < 0) {
			rc =
			    dcr_err_set(err, -errno, "sending to %s: %s", c->name, strerror(errno));
			break;
		}
		out_taken(e, (size_t)w);
	}
	return rc;
}

/* Reads what the socket has into the engine: 1, 0 at the end of the
 * stream, or an error. */
static int client_fill(dcr_tls_client *c, dcr_err *err)
{
	uint8_t buf[IO_BUF_BYTES];
	ssize_t r;

	for (;;) {
		r = recv(c->fd, buf, sizeof buf, 0);
		if (r < 0 && errno == EINTR)
			continue;
		break;
	}
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return dcr_err_set(err, -ETIMEDOUT,
		                   "receiving from %s: nothing within the receive timeout",
		                   c->name);
	if (r < 0)
		return dcr_err_set(err, -errno, "receiving from %s: %s", c->name, strerror(errno));
	if (r == 0)
		return 0;
	engine_put(c->e, buf, (size_t)r);
	return 1;
}

static bool is_ip(const char *s)
{
	unsigned char a[16];

	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

static int client_connect(int fd, const char *server_name, int max_version, dcr_tls_client **out,
                          uint8_t fp[DCR_SHA256_BYTES], dcr_err *err)
{
	dcr_tls_client *c = dcr_calloc(1, sizeof *c);
	uint8_t dummy[DCR_SHA256_BYTES];
	int rc;

	*out = NULL;
	c->fd = fd;
	snprintf(c->name, sizeof c->name, "%s", server_name ? server_name : "the server");
	c->ctx = ctx_new(false, max_version, err);
	if (!c->ctx) {
		rc = err ? err->code : DCR_ECRYPTO;
		goto out;
	}
	rc = engine_new(c->ctx, false,
	                server_name && *server_name && !is_ip(server_name) ? server_name : NULL,
	                &c->e, err);
	if (rc < 0)
		goto out;
	for (;;) {
		rc = engine_handshake(c->e, c->name, err);
		{
			/* an alert for the server goes out even on failure */
			dcr_err ferr;
			int frc = client_flush(c, &ferr);
			if (rc >= 0 && frc < 0) {
				rc = frc;
				if (err)
					*err = ferr;
			}
		}
		if (rc != 0)
			break;
		rc = client_fill(c, err);
		if (rc == 0)
			rc = dcr_err_set(err, -ECONNRESET,
			                 "TLS handshake with %s: the server closed the connection "
			                 "(is it a dcrd TLS port? does it refuse this address?)",
			                 c->name);
		if (rc < 0)
			break;
	}
	if (rc < 0)
		goto out;
	rc = dcr_tls_engine_peer_fingerprint(c->e, fp ? fp : dummy, err);
	if (rc == 0)
		rc = dcr_tls_engine_binding(c->e, c->binding, err);
	if (rc < 0)
		goto out;
	*out = c;
	c = NULL;
	rc = 0;
out:
	if (c) {
		dcr_tls_engine_free(c->e);
		SSL_CTX_free(c->ctx);
		free(c);
	}
	ERR_clear_error();
	return rc;
}

int dcr_tls_client_connect(int fd, const char *server_name, dcr_tls_client **out,
                           uint8_t fp[DCR_SHA256_BYTES], dcr_err *err)
{
	return client_connect(fd, server_name, TLS1_3_VERSION, out, fp, err);
}

int dcr__tls_client_connect_tls12(int fd, dcr_tls_client **out, dcr_err *err)
{
	return client_connect(fd, NULL, TLS1_2_VERSION, out, NULL, err);
}

int dcr_tls_client_sendv(dcr_tls_client *c, const struct iovec *iov, size_t iovcnt, dcr_err *err)
{
	size_t batch = 0;
	int rc;

	for (size_t i = 0; i < iovcnt; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t n = iov[i].iov_len;
		while (n > 0) {
			size_t k = n > CLIENT_BATCH_BYTES - batch ? CLIENT_BATCH_BYTES - batch : n;
			rc = dcr_tls_engine_write(c->e, p, k, err);
			if (rc < 0)
				return rc;
			p += k;
			n -= k;
			batch += k;
			if (batch == CLIENT_BATCH_BYTES) {
				rc = client_flush(c, err);
				if (rc < 0)
					return rc;
				batch = 0;
			}
		}
	}
	return client_flush(c, err);
}

int dcr_tls_client_send(dcr_tls_client *c, const void *p, size_t n, dcr_err *err)
{
	struct iovec v = {(void *)p, n};

	return dcr_tls_client_sendv(c, &v, 1, err);
}

int dcr_tls_client_recv(dcr_tls_client *c, void *buf, size_t cap, dcr_err *err)
{
	if (cap > INT_MAX)
		cap = INT_MAX;
	for (;;) {
		int rc = dcr_tls_engine_read(c->e, buf, cap, err);
		if (rc > 0)
			return rc;
		if (rc == -EPIPE)
			return 0; /* close_notify: the end */
		if (rc < 0) {
			dcr_err_prefix(err, "%s", c->name);
			return rc;
		}
		rc = client_flush(c, err); /* e.g. a key update's answer */
		if (rc == 0)
			rc = client_fill(c, err);
		if (rc <= 0)
			return rc;
	}
}

void dcr_tls_client_binding(const dcr_tls_client *c, uint8_t out[DCR_TLS_BINDING_BYTES])
{
	memcpy(out, c->binding, DCR_TLS_BINDING_BYTES);
}

void dcr_tls_client_free(dcr_tls_client *c)
{
	uint8_t buf[IO_BUF_BYTES];
	size_t n;

	if (!c)
		return;
	dcr_tls_engine_close(c->e);
	while ((n = dcr_tls_engine_drain(c->e, buf, sizeof buf)) > 0)
		if (send(c->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			break;
	dcr_tls_engine_free(c->e);
	SSL_CTX_free(c->ctx);
	dcr_wipe(c->binding, sizeof c->binding);
	free(c);
}
