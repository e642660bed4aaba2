/* test_base_tls.c: base/tls.h: fingerprints, the key directory, the
 * engine against the blocking client over a socketpair (handshake, the
 * server's fingerprint, channel binding equal on both ends and different
 * across connections, data both ways, close), and refusals: a client
 * offering TLS 1.2 at most, plain text, a key file readable by others.
 * The lent feed (dcrd's: no copy, keep what was not consumed) with an
 * upload through a small socket buffer (partial writes), a corrupted
 * record and a peer that closes in the middle of one. */
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "../../base/tls.h"
#include "test.h"

static char tdir[64];

static int rm_cb(const char *p, const struct stat *st, int fl, struct FTW *f)
{
	(void)st;
	(void)fl;
	(void)f;
	return remove(p);
}

static void cleanup(void)
{
	if (tdir[0])
		nftw(tdir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

/* ---- a server side driven over a blocking fd ------------------------------ */

typedef struct served {
	dcr_tls_server *srv;
	int fd;
	int rc; /* of the handshake (1 done) or the error */
	dcr_err err;
	uint8_t binding[DCR_TLS_BINDING_BYTES];
	dcr_buf got; /* plaintext received (echoed back unless sink) */
	bool sink;
} served;

static int flush_fd(int fd, dcr_tls_engine *e)
{
	uint8_t buf[4096];
	size_t n;

	while ((n = dcr_tls_engine_drain(e, buf, sizeof buf)) > 0)
		if (send(fd, buf, n, MSG_NOSIGNAL) != (ssize_t)n)
			return -1;
	return 0;
}

static void *serve_main(void *arg)
{
	served *s = arg;
	dcr_tls_engine *e = NULL;
	uint8_t buf[4096], pt[4096];
	ssize_t r;

	dcr_err_clear(&s->err);
	s->rc = dcr_tls_engine_server(s->srv, &e, &s->err);
	if (s->rc < 0)
		goto out;
	CHECK(!dcr_tls_engine_handshake_done(e));
	CHECK_RC(dcr_tls_engine_binding(e, s->binding, &s->err), DCR_ESTATE);
	s->rc = 0;
	while (s->rc == 0) {
		r = recv(s->fd, buf, sizeof buf, 0);
		if (r <= 0) {
			s->rc = -ECONNRESET;
			goto out;
		}
		s->rc = dcr_tls_engine_feed(e, buf, (size_t)r, &s->err);
		flush_fd(s->fd, e);
		CHECK(dcr_tls_engine_buffered(e) <= (size_t)r + 64 * 1024);
	}
	if (s->rc < 0)
		goto out;
	CHECK(dcr_tls_engine_handshake_done(e));
	CHECK_OK(dcr_tls_engine_binding(e, s->binding, &s->err), &s->err);
	/* echo until the client closes */
	for (;;) {
		int n = dcr_tls_engine_read(e, pt, sizeof pt, &s->err);
		if (n > 0) {
			dcr_buf_append(&s->got, pt, (size_t)n);
			if (!s->sink) {
				CHECK_OK(dcr_tls_engine_write(e, pt, (size_t)n, &s->err), &s->err);
				flush_fd(s->fd, e);
			}
			continue;
		}
		if (n < 0)
			break; /* -EPIPE: close_notify */
		r = recv(s->fd, buf, sizeof buf, 0);
		if (r <= 0)
			break;
		dcr_tls_engine_feed(e, buf, (size_t)r, &s->err);
		flush_fd(s->fd, e);
	}
out:
	flush_fd(s->fd, e); /* an alert */
	dcr_tls_engine_free(e);
	shutdown(s->fd, SHUT_RDWR);
	return NULL;
}

/* One connection over a socketpair: the server in a thread, the client
 * here (tls12: the test client offering TLS 1.2 at most). Fills the
 * client's fingerprint and binding; returns the client's rc. */
static int one_conn(dcr_tls_server *srv, bool tls12, served *s, uint8_t fp[32], uint8_t binding[32],
                    const char *say, dcr_err *err)
{
	int sv[2];
	pthread_t th;
	dcr_tls_client *c = NULL;
	int rc;

	DCR_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	{
		struct timeval tv = {20, 0};
		setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	}
	memset(s, 0, sizeof *s);
	s->srv = srv;
	s->fd = sv[1];
	dcr_buf_init(&s->got);
	DCR_ASSERT(pthread_create(&th, NULL, serve_main, s) == 0);
	if (tls12)
		rc = dcr__tls_client_connect_tls12(sv[0], &c, err);
	else
		rc = dcr_tls_client_connect(sv[0], "dcr.test", &c, fp, err);
	if (rc == 0) {
		uint8_t back[256];
		size_t have = 0, n = strlen(say);
		dcr_tls_client_binding(c, binding);
		CHECK_OK(dcr_tls_client_send(c, say, n, err), err);
		while (have < n) {
			int k = dcr_tls_client_recv(c, back + have, sizeof back - have, err);
			CHECK(k > 0, "recv: %d %s", k, err->msg);
			if (k <= 0)
				break;
			have += (size_t)k;
		}
		CHECK(have == n && memcmp(back, say, n) == 0, "echo");
		dcr_tls_client_free(c);
	}
	close(sv[0]);
	pthread_join(th, NULL);
	close(sv[1]);
	return rc;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_fingerprint(void)
{
	uint8_t fp[32], back[32];
	char s[DCR_TLS_FINGERPRINT_BYTES];
	dcr_err err;

	for (int i = 0; i < 32; i++)
		fp[i] = (uint8_t)(i * 37 + 5);
	dcr_tls_fingerprint_format(fp, s);
	CHECK(strlen(s) == 71 && strncmp(s, "sha256:", 7) == 0);
	CHECK(strncmp(s + 7, "052a4f", 6) == 0, "%s", s);
	for (const char *p = s + 7; *p; p++)
		CHECK((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'), "lowercase hex");
	CHECK_OK(dcr_tls_fingerprint_parse(s, back, &err), &err);
	CHECK(memcmp(fp, back, 32) == 0);
	/* negative: each way a pin can be mistyped */
	CHECK_ERR(dcr_tls_fingerprint_parse("md5:00", back, &err), DCR_EFORMAT, &err, "sha256:");
	CHECK_ERR(dcr_tls_fingerprint_parse("sha256:abcd", back, &err), DCR_EFORMAT, &err,
	          "found 4 characters");
	s[20] = 'g';
	CHECK_ERR(dcr_tls_fingerprint_parse(s, back, &err), DCR_EFORMAT, &err, "not hex");
	s[20] = 'a';
	{
		char longer[80];
		snprintf(longer, sizeof longer, "%s0", s);
		CHECK_ERR(dcr_tls_fingerprint_parse(longer, back, &err), DCR_EFORMAT, &err,
		          "found 65");
	}
}

/* The fingerprint as anyone recomputes it from tls.crt with openssl(1);
 * false when openssl is not installed. */
static bool openssl_fingerprint(const char *dir, char out[DCR_TLS_FINGERPRINT_BYTES])
{
	char *cmd = dcr_asprintf("openssl x509 -in %s/tls.crt -pubkey -noout 2>/dev/null | "
	                         "openssl pkey -pubin -outform der 2>/dev/null | sha256sum",
	                         dir);
	FILE *p = popen(cmd, "r");
	char line[128] = "";
	bool ok = false;

	free(cmd);
	if (!p)
		return false;
	if (fgets(line, sizeof line, p) && strlen(line) > 64 && line[64] == ' ') {
		snprintf(out, DCR_TLS_FINGERPRINT_BYTES, "sha256:%.64s", line);
		ok = true;
	}
	pclose(p);
	return ok;
}

static void test_keydir(void)
{
	char *dir = dcr_asprintf("%s/tls", tdir);
	char *kp = dcr_asprintf("%s/tls.key", dir), *cp = dcr_asprintf("%s/tls.crt", dir);
	dcr_tls_server *a = NULL, *b = NULL;
	uint8_t fa[32], fb[32];
	char s[DCR_TLS_FINGERPRINT_BYTES], o[DCR_TLS_FINGERPRINT_BYTES];
	struct stat st;
	bool created = false;
	dcr_err err;

	CHECK_OK(dcr_tls_server_open(dir, &a, &created, &err), &err);
	CHECK(created, "the key was made at first use");
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700, "dir mode %o",
	      (unsigned)st.st_mode & 0777);
	CHECK(stat(kp, &st) == 0 && (st.st_mode & 0777) == 0600, "key mode %o",
	      (unsigned)st.st_mode & 0777);
	CHECK(stat(cp, &st) == 0, "certificate written");
	dcr_tls_server_fingerprint(a, fa);
	dcr_tls_fingerprint_format(fa, s);
	if (openssl_fingerprint(dir, o))
		CHECK(strcmp(s, o) == 0, "ours %s, openssl's %s", s, o);
	else
		fprintf(stderr, "note: openssl(1) not found, fingerprint not cross-checked\n");
	/* reload: the same key, the same fingerprint, nothing made */
	CHECK_OK(dcr_tls_server_open(dir, &b, &created, &err), &err);
	CHECK(!created);
	dcr_tls_server_fingerprint(b, fb);
	CHECK(memcmp(fa, fb, 32) == 0, "fingerprint stable across a reload");
	dcr_tls_server_free(b);
	b = NULL;
	/* a lost certificate is issued again for the same key */
	CHECK(unlink(cp) == 0);
	CHECK_OK(dcr_tls_server_open(dir, &b, &created, &err), &err);
	CHECK(!created && stat(cp, &st) == 0);
	dcr_tls_server_fingerprint(b, fb);
	CHECK(memcmp(fa, fb, 32) == 0, "fingerprint stable across a re-issued certificate");
	if (openssl_fingerprint(dir, o))
		CHECK(strcmp(s, o) == 0, "re-issued: ours %s, openssl's %s", s, o);
	dcr_tls_server_free(b);
	b = NULL;
	/* negative: a key readable by others is refused */
	CHECK(chmod(kp, 0644) == 0);
	CHECK_ERR(dcr_tls_server_open(dir, &b, &created, &err), DCR_EKEY, &err, "chmod 600");
	CHECK(b == NULL);
	CHECK(chmod(kp, 0600) == 0);
	/* negative: garbage in the key file */
	{
		char *d2 = dcr_asprintf("%s/tls2", tdir), *k2 = dcr_asprintf("%s/tls.key", d2);
		CHECK(mkdir(d2, 0700) == 0);
		CHECK_OK(dcr_write_file_atomic(k2, "not a key\n", 10, 0600, &err), &err);
		CHECK_ERR(dcr_tls_server_open(d2, &b, &created, &err), DCR_EKEY, &err,
		          "not a PEM private key");
		free(d2);
		free(k2);
	}
	/* another directory: another key */
	{
		char *d3 = dcr_asprintf("%s/tls3", tdir);
		CHECK_OK(dcr_tls_server_open(d3, &b, &created, &err), &err);
		dcr_tls_server_fingerprint(b, fb);
		CHECK(memcmp(fa, fb, 32) != 0, "two directories, two keys");
		dcr_tls_server_free(b);
		b = NULL;
		free(d3);
	}
	dcr_tls_server_free(a);
	free(dir);
	free(kp);
	free(cp);
}

static void test_handshake(void)
{
	char *dir = dcr_asprintf("%s/tls", tdir);
	dcr_tls_server *srv = NULL;
	uint8_t sfp[32], fp1[32], fp2[32], b1[32], b2[32];
	served s1, s2;
	dcr_err err;

	CHECK_OK(dcr_tls_server_open(dir, &srv, NULL, &err), &err);
	if (!srv)
		goto out;
	dcr_tls_server_fingerprint(srv, sfp);
	CHECK_OK(one_conn(srv, false, &s1, fp1, b1, "hello over TLS 1.3", &err), &err);
	CHECK_RC(s1.rc, 1);
	CHECK(memcmp(fp1, sfp, 32) == 0, "the client sees the server's fingerprint");
	CHECK(memcmp(b1, s1.binding, 32) == 0, "exporter equal on both ends");
	CHECK(s1.got.len == 18 && memcmp(s1.got.data, "hello over TLS 1.3", 18) == 0);
	CHECK_OK(one_conn(srv, false, &s2, fp2, b2, "again", &err), &err);
	CHECK(memcmp(fp2, sfp, 32) == 0);
	CHECK(memcmp(b2, s2.binding, 32) == 0, "exporter equal on both ends (2)");
	CHECK(memcmp(b1, b2, 32) != 0, "exporters of two connections differ");
	dcr_buf_release(&s1.got);
	dcr_buf_release(&s2.got);

	/* negative: a client that offers TLS 1.2 at most is refused by the
	 * server, and the client learns why (the server's alert) */
	{
		int rc = one_conn(srv, true, &s1, fp1, b1, "x", &err);
		CHECK(rc == DCR_EPROTO, "tls12 client: %d %s", rc, err.msg);
		CHECK(strstr(err.msg, "protocol_version") || strstr(err.msg, "TLS 1.3"),
		      "client message: %s", err.msg);
		CHECK(s1.rc == DCR_EPROTO, "server: %d %s", s1.rc, s1.err.msg);
		CHECK(strstr(s1.err.msg, "TLS 1.2 or older"), "server message: %s", s1.err.msg);
		dcr_buf_release(&s1.got);
	}
	/* negative: plain text is not TLS */
	{
		dcr_tls_engine *e = NULL;
		const char *txt = "GET / HTTP/1.0\r\n\r\n";
		CHECK_OK(dcr_tls_engine_server(srv, &e, &err), &err);
		CHECK_ERR(dcr_tls_engine_feed(e, txt, strlen(txt), &err), DCR_EPROTO, &err,
		          "does not speak TLS");
		CHECK(!dcr_tls_engine_handshake_done(e));
		{
			/* answered with a fatal alert record, decode_error */
			uint8_t al[16];
			size_t n = dcr_tls_engine_drain(e, al, sizeof al);
			CHECK(n == 7 && al[0] == 0x15 && al[5] == 2 && al[6] == 50,
			      "alert: %zu bytes", n);
		}
		dcr_tls_engine_free(e);
		CHECK_OK(dcr_tls_engine_server(srv, &e, &err), &err);
		CHECK_ERR(dcr_tls_engine_feed(e, "\x00\x00\x00\x10hello dcrd frame", 20, &err),
		          DCR_EPROTO, &err, "TLS handshake");
		dcr_tls_engine_free(e);
	}
	/* the server still serves after the refusals */
	CHECK_OK(one_conn(srv, false, &s2, fp2, b2, "still here", &err), &err);
	CHECK(memcmp(fp2, sfp, 32) == 0);
	dcr_buf_release(&s2.got);
out:
	dcr_tls_server_free(srv);
	free(dir);
}

/* A large send in pieces (sendv: a frame's head, 3 MiB, its tail) arrives
 * whole and in order. */
static void test_large(void)
{
	char *dir = dcr_asprintf("%s/tls", tdir);
	dcr_tls_server *srv = NULL;
	dcr_tls_client *c = NULL;
	served s;
	pthread_t th;
	int sv[2];
	size_t big_n = 3u << 20;
	uint8_t *big = dcr_malloc(big_n), fp[32];
	struct iovec iov[3];
	dcr_err err;

	for (size_t i = 0; i < big_n; i++)
		big[i] = (uint8_t)(i * 7 + (i >> 13));
	CHECK_OK(dcr_tls_server_open(dir, &srv, NULL, &err), &err);
	DCR_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	memset(&s, 0, sizeof s);
	s.srv = srv;
	s.fd = sv[1];
	s.sink = true;
	dcr_buf_init(&s.got);
	DCR_ASSERT(pthread_create(&th, NULL, serve_main, &s) == 0);
	CHECK_OK(dcr_tls_client_connect(sv[0], "dcr.test", &c, fp, &err), &err);
	if (c) {
		iov[0].iov_base = "head";
		iov[0].iov_len = 4;
		iov[1].iov_base = big;
		iov[1].iov_len = big_n;
		iov[2].iov_base = "end";
		iov[2].iov_len = 3;
		CHECK_OK(dcr_tls_client_sendv(c, iov, 3, &err), &err);
		dcr_tls_client_free(c); /* close_notify: the server's read ends */
	}
	pthread_join(th, NULL);
	CHECK(s.got.len == big_n + 7, "received %zu bytes", s.got.len);
	CHECK(s.got.len == big_n + 7 && memcmp(s.got.data, "head", 4) == 0 &&
	          memcmp(s.got.data + 4, big, big_n) == 0 &&
	          memcmp(s.got.data + 4 + big_n, "end", 3) == 0,
	      "in order");
	close(sv[0]);
	close(sv[1]);
	dcr_buf_release(&s.got);
	dcr_tls_server_free(srv);
	free(big);
	free(dir);
}

/* ---- the lent feed --------------------------------------------------------- */

typedef struct uploader {
	int fd;
	const uint8_t *p;
	size_t n;
	int rc;
	dcr_err err;
} uploader;

static void *upload_main(void *arg)
{
	uploader *u = arg;
	dcr_tls_client *c = NULL;
	uint8_t fp[32];

	u->rc = dcr_tls_client_connect(u->fd, "dcr.test", &c, fp, &u->err);
	if (u->rc < 0)
		return NULL;
	u->rc = dcr_tls_client_send(c, u->p, u->n, &u->err);
	dcr_tls_client_free(c);
	shutdown(u->fd, SHUT_WR);
	return NULL;
}

/* The server side of one upload, the way dcrd drives it: each read of the
 * socket is lent to the engine, plaintext is taken only on some rounds
 * (a connection that stops reading), then keep, and the read buffer is
 * overwritten before the next read. Returns the engine's last read rc
 * (0 or an error); got: the plaintext. corrupt: flip a byte of the
 * ciphertext at that offset after the handshake (0: none); cut: the
 * stream ends there as if the peer closed (0: none). */
static int lent_serve(dcr_tls_server *srv, int fd, size_t corrupt, size_t cut, dcr_buf *got,
                      dcr_err *err)
{
	static const size_t sizes[] = {1, 5, 700, 16384 + 22, 65536, 3000, 40000, 16389};
	dcr_tls_engine *e = NULL;
	uint8_t *buf = dcr_malloc(65536), pt[20000];
	size_t seen = 0, kept_max = 0;
	int rc = 0, round = 0;

	CHECK_OK(dcr_tls_engine_server(srv, &e, err), err);
	for (;; round++) {
		size_t want = sizes[round % (sizeof sizes / sizeof sizes[0])];
		ssize_t r = recv(fd, buf, want, 0);
		bool pull = round % 3 != 1;
		if (r <= 0)
			break;
		if (cut && dcr_tls_engine_handshake_done(e) && seen + (size_t)r >= cut) {
			r = (ssize_t)(cut - seen);
			if (r == 0)
				break;
		}
		if (corrupt && dcr_tls_engine_handshake_done(e) && seen <= corrupt &&
		    corrupt < seen + (size_t)r)
			buf[corrupt - seen] ^= 0x40;
		if (dcr_tls_engine_handshake_done(e))
			seen += (size_t)r;
		rc = dcr_tls_engine_feed_lent(e, buf, (size_t)r, err);
		CHECK(dcr_tls_engine_buffered(e) <= kept_max + (size_t)r + 64 * 1024);
		flush_fd(fd, e);
		if (rc < 0)
			break;
		while (rc == 1 && pull) {
			int n = dcr_tls_engine_read(e, pt, sizeof pt, err);
			if (n <= 0) {
				rc = n < 0 ? n : 1;
				break;
			}
			dcr_buf_append(got, pt, (size_t)n);
		}
		dcr_tls_engine_keep(e);
		memset(buf, 0xAA, 65536); /* the engine must not read it again */
		if (dcr_tls_engine_buffered(e) > kept_max)
			kept_max = dcr_tls_engine_buffered(e);
		if (rc < 0 || (cut && seen == cut))
			break;
		rc = 0;
	}
	/* the end of the stream: what was kept is still there */
	while (rc >= 0 && dcr_tls_engine_handshake_done(e)) {
		int n = dcr_tls_engine_read(e, pt, sizeof pt, err);
		if (n <= 0) {
			rc = n;
			break;
		}
		dcr_buf_append(got, pt, (size_t)n);
	}
	if (rc < 0)
		CHECK(dcr_tls_engine_pending(e) > 0 || rc == -EPIPE, "an alert for the peer");
	flush_fd(fd, e);
	dcr_tls_engine_free(e);
	free(buf);
	return rc;
}

static int lent_upload(dcr_tls_server *srv, const uint8_t *big, size_t big_n, size_t corrupt,
                       size_t cut, dcr_buf *got, dcr_err *err)
{
	int sv[2], small = 4096, rc;
	pthread_t th;
	uploader u;

	DCR_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	/* a small send buffer: the client's send() takes part of a batch */
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	{
		struct timeval tv = {20, 0};
		setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	}
	memset(&u, 0, sizeof u);
	u.fd = sv[0];
	u.p = big;
	u.n = big_n;
	DCR_ASSERT(pthread_create(&th, NULL, upload_main, &u) == 0);
	rc = lent_serve(srv, sv[1], corrupt, cut, got, err);
	shutdown(sv[1], SHUT_RDWR); /* a client still sending stops */
	pthread_join(th, NULL);
	if (!corrupt && !cut)
		CHECK_OK(u.rc, &u.err);
	close(sv[0]);
	close(sv[1]);
	return rc;
}

static void test_lent(void)
{
	char *dir = dcr_asprintf("%s/tls", tdir);
	dcr_tls_server *srv = NULL;
	size_t big_n = (5u << 20) + 12345;
	uint8_t *big = dcr_malloc(big_n);
	dcr_buf got;
	dcr_err err;
	int rc;

	for (size_t i = 0; i < big_n; i++)
		big[i] = (uint8_t)(i * 13 + (i >> 11));
	CHECK_OK(dcr_tls_server_open(dir, &srv, NULL, &err), &err);
	dcr_buf_init(&got);

	/* the whole upload arrives, in order, through partial writes and
	 * rounds that keep what they did not read; then close_notify */
	rc = lent_upload(srv, big, big_n, 0, 0, &got, &err);
	CHECK(rc == -EPIPE, "close_notify at the end: %d %s", rc, err.msg);
	CHECK(got.len == big_n && memcmp(got.data, big, big_n) == 0, "upload: %zu of %zu bytes",
	      got.len, big_n);

	/* a corrupted byte in a record: DCR_EPROTO, nothing of that record
	 * or after it is given, what came before is intact */
	dcr_buf_reset(&got);
	rc = lent_upload(srv, big, big_n, 1000000, 0, &got, &err);
	CHECK(rc == DCR_EPROTO, "corrupted record: %d %s", rc, err.msg);
	CHECK(got.len < 1000000 && memcmp(got.data, big, got.len) == 0,
	      "corrupted: %zu bytes before it", got.len);

	/* an upload that ends inside a record (3 records and 100 bytes) */
	dcr_buf_reset(&got);
	{
		size_t short_n = 16384 * 3 + 100;
		rc = lent_upload(srv, big, short_n, 0, 0, &got, &err);
		CHECK(rc == -EPIPE && got.len == short_n && memcmp(got.data, big, short_n) == 0,
		      "a short upload: %d, %zu", rc, got.len);
	}
	/* the peer closes in the middle of a record (no close_notify): the
	 * engine waits for the rest (no error, no plaintext of that record),
	 * gives only whole records */
	dcr_buf_reset(&got);
	rc = lent_upload(srv, big, big_n, 0, 1000000, &got, &err);
	CHECK(rc == 0, "cut: no error, the engine waits for more: %d %s", rc, err.msg);
	CHECK(got.len > 0 && got.len < 1000000 && got.len % 16384 == 0 &&
	          memcmp(got.data, big, got.len) == 0,
	      "cut: whole records only, %zu bytes", got.len);

	dcr_buf_release(&got);
	dcr_tls_server_free(srv);
	free(big);
	free(dir);
}

/* A client against a peer that is not a TLS server: it answers plain
 * text, or closes. */
static void test_client_errors(void)
{
	int sv[2];
	dcr_tls_client *c = NULL;
	uint8_t fp[32];
	dcr_err err;

	DCR_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	CHECK(send(sv[1], "SSH-2.0-OpenSSH_9.2\r\n", 21, 0) == 21);
	CHECK_ERR(dcr_tls_client_connect(sv[0], "example.test", &c, fp, &err), DCR_EPROTO, &err,
	          "example.test");
	CHECK(c == NULL);
	close(sv[0]);
	close(sv[1]);
	DCR_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	shutdown(sv[1], SHUT_WR);
	CHECK_ERR(dcr_tls_client_connect(sv[0], "127.0.0.1", &c, fp, &err), -ECONNRESET, &err,
	          "closed the connection");
	close(sv[0]);
	close(sv[1]);
	/* a silent server: the receive timeout */
	DCR_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	{
		struct timeval tv = {0, 200000};
		setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	}
	CHECK_ERR(dcr_tls_client_connect(sv[0], "slow.test", &c, fp, &err), -ETIMEDOUT, &err,
	          "slow.test");
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	snprintf(tdir, sizeof tdir, "/tmp/dcr-tls-unit-XXXXXX");
	if (!mkdtemp(tdir)) {
		perror("mkdtemp");
		return 1;
	}
	atexit(cleanup);
	test_fingerprint();
	test_keydir();
	test_handshake();
	test_large();
	test_lent();
	test_client_errors();
	if (t_failures)
		fprintf(stderr, "%d checks failed\n", t_failures);
	return t_failures ? 1 : 0;
}
