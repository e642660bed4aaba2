/* test_dmn_tls.c: dcrd --listen (TLS 1.3 over TCP on 127.0.0.1), driven
 * by a client of base/tls.h written here (frames by hand, as an
 * implementation in another language would), against the real dcrd.
 *
 * Positive: the TLS handshake gives the fingerprint `dcrd --fingerprint`
 * prints (and `openssl` computes from tls.crt); authentication with
 * dcr.auth.tls.v1 over challenge || daemon_key || this connection's
 * exporter; requests answered; the unix socket serves beside it; the key
 * and its fingerprint survive a restart.
 *
 * Refusals, each followed by a good client that is still served:
 * `openssl s_client -tls1_2` and a TLS 1.2-only client of ours; plain
 * text; an authentication relayed from another connection (signed over
 * connection A's exporter, sent on B: refused; over B's own: accepted); a
 * unix-socket-style dcr.auth.v1 signature on TLS (and a TLS-style one on
 * the unix socket); 1,000 idle TCP connections (dcrd's descriptors and
 * memory stay bounded); a handshake trickled byte by byte (closed at
 * --tls-handshake-timeout-ms); the per-address limit counts the peer IP;
 * a corrupted record after authentication (closed with an alert).
 *
 * A 6 MiB dataset provisioned over TLS with the client library
 * (cl_connect_addr pinned, cl_provision: dcrd's SHA-256 of what it stored
 * must be the client's), and 12 frames of 1 MiB sent before any answer is
 * read (dcrd stops reading at DMN_INFLIGHT_MAX with ciphertext left in its
 * read: kept, then read when it resumes): every answer, in order. */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/time.h>

#include "../../base/tls.h"
#include "test_dmn_common.h"

#define HS_TIMEOUT_MS 2000
#define EVICTED       "the oldest of the address holding the most gives way" /* dcrd log */
#define STR_(x)       #x
#define STR(x)        STR_(x)
#define FLOOD_CONNS   1000

static td T;
static unsigned port, port6; /* port6: the [::1] listener, 0 without IPv6 */
static bool use6;            /* tcp_connect goes to [::1] */
static uint8_t server_fp[32];

/* ---- a transport: a unix socket, or TCP with TLS --------------------------- */

typedef struct tr {
	int fd;
	dcr_tls_client *tls;
	uint8_t binding[32];
	uint8_t challenge[32], daemon_key[32];
} tr;

static void tr_close(tr *t)
{
	dcr_tls_client_free(t->tls);
	t->tls = NULL;
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

static void set_timeouts(int fd, unsigned s)
{
	struct timeval tv = {s, 0};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int tcp_connect(void)
{
	struct sockaddr_in sa;
	struct sockaddr_in6 sa6;
	int fd = socket(use6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	bool ok;

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memset(&sa6, 0, sizeof sa6);
	sa6.sin6_family = AF_INET6;
	sa6.sin6_port = htons((uint16_t)port6);
	sa6.sin6_addr = in6addr_loopback;
	ok = fd >= 0 && (use6 ? connect(fd, (struct sockaddr *)&sa6, sizeof sa6)
	                      : connect(fd, (struct sockaddr *)&sa, sizeof sa)) == 0;
	if (!ok) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

static int tr_send(tr *t, const void *p, size_t n)
{
	dcr_err err;

	if (t->tls)
		return dcr_tls_client_send(t->tls, p, n, &err);
	while (n > 0) {
		ssize_t w = send(t->fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		p = (const uint8_t *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

static int tr_read_exact(tr *t, void *p, size_t n)
{
	dcr_err err;

	while (n > 0) {
		ssize_t r = t->tls ? dcr_tls_client_recv(t->tls, p, n, &err) : recv(t->fd, p, n, 0);
		if (r <= 0)
			return -1;
		p = (uint8_t *)p + r;
		n -= (size_t)r;
	}
	return 0;
}

/* The next frame as a document (NULL at EOF or on a bad frame); its bytes
 * stay in buf. */
static dcr_mp_doc *tr_read_doc(tr *t, dcr_buf *buf)
{
	uint8_t hdr[4];
	uint32_t len;
	dcr_mp_doc *doc = NULL;
	dcr_err err;

	if (tr_read_exact(t, hdr, 4) < 0)
		return NULL;
	len = dcr_get_be32(hdr);
	if (len > DCR_FRAME_BYTES_MAX)
		return NULL;
	dcr_buf_reset(buf);
	dcr_buf_reserve(buf, len + 1);
	if (tr_read_exact(t, buf->data, len) < 0)
		return NULL;
	buf->len = len;
	if (proto_frame_parse(buf->data, len, &doc, &err) < 0)
		return NULL;
	return doc;
}

/* Reads the daemon's hello into t. */
static int tr_hello(tr *t)
{
	dcr_buf b;
	dcr_mp_doc *d;
	dcr_err err;
	int rc = -1;

	dcr_buf_init(&b);
	d = tr_read_doc(t, &b);
	if (d && dcr_mp_get_binn(dcr_mp_root(d), "challenge", t->challenge, 32, &err) == 0 &&
	    dcr_mp_get_binn(dcr_mp_root(d), "daemon_key", t->daemon_key, 32, &err) == 0)
		rc = 0;
	dcr_mp_doc_free(d);
	dcr_buf_release(&b);
	return rc;
}

/* A TLS connection to dcrd up to its hello; fp gets the server's
 * fingerprint. */
static int tls_open(tr *t, uint8_t fp[32], dcr_err *err)
{
	int rc;

	memset(t, 0, sizeof *t);
	t->fd = tcp_connect();
	if (t->fd < 0)
		return dcr_err_set(err, -errno, "connect: %s", strerror(errno));
	set_timeouts(t->fd, 30);
	rc = dcr_tls_client_connect(t->fd, "127.0.0.1", &t->tls, fp, err);
	if (rc < 0) {
		tr_close(t);
		return rc;
	}
	dcr_tls_client_binding(t->tls, t->binding);
	if (tr_hello(t) < 0) {
		tr_close(t);
		return dcr_err_set(err, DCR_EPROTO, "no hello from dcrd");
	}
	return 0;
}

static int unix_open(tr *t)
{
	struct sockaddr_un sa;

	memset(t, 0, sizeof *t);
	t->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, T.sock, strlen(T.sock) + 1);
	if (connect(t->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		tr_close(t);
		return -1;
	}
	set_timeouts(t->fd, 30);
	return tr_hello(t);
}

/* Answers the challenge of t signed with domain over challenge ||
 * daemon_key (|| binding unless NULL), as k. Returns the answer's "code"
 * ("" for ok) in code. */
static void tr_auth(tr *t, const dcr_key *k, const char *domain, const uint8_t *binding,
                    char code[32], char msg[DCR_ERR_MSG_BYTES])
{
	uint8_t m[96], pub[32], sig[64];
	dcr_buf body, frame, rb;
	dcr_mpw w;
	dcr_mp_doc *d;
	size_t n = 64;
	dcr_err err;

	snprintf(code, 32, "EOF");
	msg[0] = 0;
	memcpy(m, t->challenge, 32);
	memcpy(m + 32, t->daemon_key, 32);
	if (binding) {
		memcpy(m + 64, binding, 32);
		n = 96;
	}
	dcr_key_public(k, pub);
	DCR_ASSERT(dcr_sign(k, domain, m, n, sig) == 0);
	dcr_buf_init(&body);
	dcr_buf_init(&frame);
	dcr_buf_init(&rb);
	dcr_mpw_init(&w, &body);
	dcr_mpw_map(&w, 2);
	dcr_mpw_str(&w, "key");
	dcr_mpw_bin(&w, pub, 32);
	dcr_mpw_str(&w, "sig");
	dcr_mpw_bin(&w, sig, 64);
	proto_frame_wrap(&frame, body.data, body.len);
	if (tr_send(t, frame.data, frame.len) == 0 && (d = tr_read_doc(t, &rb)) != NULL) {
		bool ok = false;
		const char *p;
		size_t pn;
		dcr_mp_bool(dcr_mp_get(dcr_mp_root(d), "ok"), &ok);
		if (ok)
			code[0] = 0;
		else if (dcr_mp_get_str(dcr_mp_root(d), "code", &p, &pn, &err) == 0)
			snprintf(code, 32, "%.*s", (int)pn, p);
		if (dcr_mp_get_str(dcr_mp_root(d), "error", &p, &pn, &err) == 0)
			snprintf(msg, DCR_ERR_MSG_BYTES, "%.*s", (int)pn, p);
		dcr_mp_doc_free(d);
	}
	dcr_buf_release(&body);
	dcr_buf_release(&frame);
	dcr_buf_release(&rb);
}

/* whoami on an authenticated t: its key must be k's. */
static bool tr_whoami(tr *t, const dcr_key *k)
{
	dcr_buf req, rb;
	dcr_mp_doc *d;
	uint8_t pub[32], got[32];
	dcr_err err;
	bool ok = false;

	dcr_key_public(k, pub);
	dcr_buf_init(&req);
	dcr_buf_init(&rb);
	proto_request(&req, 7, "whoami", NULL, 0);
	if (tr_send(t, req.data, req.len) == 0 && (d = tr_read_doc(t, &rb)) != NULL) {
		uint64_t id = 0;
		dcr_mp_bool(dcr_mp_get(dcr_mp_root(d), "ok"), &ok);
		dcr_mp_get_u64(dcr_mp_root(d), "id", &id, &err);
		ok = ok && id == 7 && dcr_mp_get_binn(dcr_mp_root(d), "key", got, 32, &err) == 0 &&
		     memcmp(got, pub, 32) == 0;
		dcr_mp_doc_free(d);
	}
	dcr_buf_release(&req);
	dcr_buf_release(&rb);
	return ok;
}

/* A good client: TLS, the pinned fingerprint, authenticated, served. */
static bool good_client(const char *when)
{
	tr t;
	uint8_t fp[32];
	char code[32], msg[DCR_ERR_MSG_BYTES];
	dcr_err err;
	bool ok = false;
	uint64_t t0 = dcr_mono_ms();

	if (tls_open(&t, fp, &err) < 0) {
		fprintf(stderr, "good client %s: %s\n", when, err.msg);
		return false;
	}
	if (memcmp(fp, server_fp, 32) != 0)
		fprintf(stderr, "good client %s: another fingerprint\n", when);
	else {
		tr_auth(&t, T.anna, DCR_DOMAIN_AUTH_TLS, t.binding, code, msg);
		if (code[0])
			fprintf(stderr, "good client %s: refused %s %s\n", when, code, msg);
		else
			ok = tr_whoami(&t, T.anna);
	}
	tr_close(&t);
	CHECK(ok, "a good client is served %s (%llu ms)", when,
	      (unsigned long long)(dcr_mono_ms() - t0));
	return ok;
}

/* ---- helpers on dcrd ----------------------------------------------------------- */

static int count_fds(pid_t pid)
{
	char path[64];
	DIR *d;
	struct dirent *de;
	int n = 0;

	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	FILE *f;
	long kb = -1;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = strtol(line + 6, NULL, 10);
	fclose(f);
	return kb;
}

#define TLS_LINE  "listening on tls:127.0.0.1:"
#define TLS_LINE6 "listening on tls:[::1]:"

/* Whether this host can listen on [::1]. */
static bool have_ipv6(void)
{
	struct sockaddr_in6 sa;
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	memset(&sa, 0, sizeof sa);
	sa.sin6_family = AF_INET6;
	sa.sin6_addr = in6addr_loopback;
	ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* The port of the last "listening on" line with prefix in the log. */
static unsigned log_port(const char *log, const char *prefix)
{
	const char *p = NULL;

	/* the last one: a restart appends to the log */
	for (const char *q = strstr(log, prefix); q; q = strstr(q + 1, prefix))
		p = q;
	return p ? (unsigned)strtoul(p + strlen(prefix), NULL, 10) : 0;
}

/* Starts dcrd with --listen 127.0.0.1:0 and extra; finds its port. */
static int start(const char *const *extra)
{
	const char *args[12];
	int n = 0;
	char *log;
	uint64_t t0 = dcr_mono_ms();
	bool v6 = have_ipv6();

	args[n++] = "--no-sync";
	args[n++] = "--log-level=debug"; /* the peer's address of a handshake */
	/* (one argument each: td_spawn takes at most 10 extra) */
	args[n++] = "--listen=127.0.0.1:0";
	if (v6)
		args[n++] = "--listen=[::1]:0";
	else
		fprintf(stderr, "note: no IPv6 loopback here: the [::1] listener is not tested\n");
	args[n++] = "--tls-handshake-timeout-ms=" STR(HS_TIMEOUT_MS);
	for (int i = 0; extra && extra[i]; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	DCR_ASSERT(n <= 10);
	if (td_start(&T, args) < 0)
		return -1;
	port = port6 = 0;
	while ((!port || (v6 && !port6)) && dcr_mono_ms() - t0 < 30000) {
		log = td_log_text(&T);
		port = log_port(log, TLS_LINE);
		port6 = log_port(log, TLS_LINE6);
		free(log);
		if (!port || (v6 && !port6))
			usleep(20000);
	}
	CHECK(port > 0 && (!v6 || port6 > 0), "dcrd printed its TLS ports");
	return port ? 0 : -1;
}

/* `dcrd --data DIR --fingerprint` */
static bool fingerprint_cmd(char out[DCR_TLS_FINGERPRINT_BYTES])
{
	char *exe = td_dcrd_path();
	char *cmd = dcr_asprintf("%s --data %s --fingerprint 2>/dev/null", exe, T.data);
	FILE *p = popen(cmd, "r");
	char line[128] = "";
	bool ok = false;

	if (p) {
		if (fgets(line, sizeof line, p)) {
			line[strcspn(line, "\n")] = 0;
			ok = strlen(line) == DCR_TLS_FINGERPRINT_CHARS;
			if (ok)
				memcpy(out, line, DCR_TLS_FINGERPRINT_BYTES);
		}
		ok = pclose(p) == 0 && ok;
	}
	free(exe);
	free(cmd);
	return ok;
}

/* ---- the tests ------------------------------------------------------------------ */

static void test_fingerprint_first(void)
{
	char s[DCR_TLS_FINGERPRINT_BYTES], s2[DCR_TLS_FINGERPRINT_BYTES];
	dcr_err err;
	struct stat st;
	char *kp = dcr_asprintf("%s/tls/tls.key", T.data);

	/* before any start: made on demand, then stable */
	CHECK(fingerprint_cmd(s), "dcrd --fingerprint");
	CHECK(stat(kp, &st) == 0 && (st.st_mode & 0777) == 0600, "tls.key mode 0600");
	CHECK(fingerprint_cmd(s2) && strcmp(s, s2) == 0, "the same fingerprint twice");
	CHECK_OK(dcr_tls_fingerprint_parse(s, server_fp, &err), &err);
	free(kp);
}

static void test_positive(void)
{
	tr t, u;
	uint8_t fp[32];
	char code[32], msg[DCR_ERR_MSG_BYTES];
	dcr_err err;

	CHECK_OK(tls_open(&t, fp, &err), &err);
	if (t.fd < 0)
		return;
	CHECK(memcmp(fp, server_fp, 32) == 0, "the handshake shows dcrd --fingerprint's key");
	tr_auth(&t, T.anna, DCR_DOMAIN_AUTH_TLS, t.binding, code, msg);
	CHECK(code[0] == 0, "authenticated over TLS: %s %s", code, msg);
	CHECK(tr_whoami(&t, T.anna), "whoami over TLS");
	CHECK(tr_whoami(&t, T.anna), "a second request on the same connection");
	/* the operator's operations are not for TLS connections (no peer uid) */
	{
		dcr_buf req, rb;
		dcr_mp_doc *d;
		const char *p;
		size_t pn;
		dcr_buf_init(&req);
		dcr_buf_init(&rb);
		proto_request(&req, 8, "admin.status", NULL, 0);
		CHECK(tr_send(&t, req.data, req.len) == 0);
		d = tr_read_doc(&t, &rb);
		CHECK(d && dcr_mp_get_str(dcr_mp_root(d), "code", &p, &pn, &err) == 0 && pn == 7 &&
		          memcmp(p, "EDENIED", 7) == 0,
		      "admin.status over TLS: EDENIED");
		dcr_mp_doc_free(d);
		dcr_buf_release(&req);
		dcr_buf_release(&rb);
		CHECK(tr_whoami(&t, T.anna), "still usable after EDENIED");
	}
	/* the unix socket serves beside it, unchanged (dcr.auth.v1) */
	CHECK(unix_open(&u) == 0, "unix socket hello");
	tr_auth(&u, T.ian, DCR_DOMAIN_AUTH, NULL, code, msg);
	CHECK(code[0] == 0, "unix socket auth: %s %s", code, msg);
	CHECK(tr_whoami(&u, T.ian));
	tr_close(&u);
	/* the client library on the unix socket too */
	{
		cl_conn *c = td_connect(&T, T.carl);
		CHECK(c != NULL);
		cl_close(c);
	}
	tr_close(&t);
	/* the IPv6 listener: the same, and the address is the peer's /64 */
	if (port6) {
		use6 = true;
		good_client("over [::1]");
		use6 = false;
		CHECK(td_log_wait(&T, "ip ::/64", 10000) || td_log_has(&T, "ip ::/64"),
		      "an IPv6 peer is counted by its /64");
	}
}

static void test_tls12_refused(void)
{
	int fd = tcp_connect();
	dcr_tls_client *c = NULL;
	dcr_err err;

	CHECK(fd >= 0);
	set_timeouts(fd, 30);
	CHECK_ERR(dcr__tls_client_connect_tls12(fd, &c, &err), DCR_EPROTO, &err,
	          "protocol_version");
	close(fd);
	CHECK(td_log_wait(&T, "dcr speaks TLS 1.3 only", 10000), "dcrd logged the refusal");
	/* openssl s_client -tls1_2, as a user would try */
	{
		char *cmd =
		    dcr_asprintf("timeout 60 openssl s_client -connect 127.0.0.1:%u -tls1_2 "
		                 "</dev/null >%s/s_client.out 2>&1",
		                 port, T.dir);
		char *out = dcr_asprintf("%s/s_client.out", T.dir);
		int st = system(cmd);
		dcr_buf b;
		dcr_buf_init(&b);
		if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
			fprintf(stderr, "note: openssl(1) not found: s_client case skipped (the "
			                "TLS 1.2 client above covers it)\n");
		} else {
			dcr_read_file(out, 1 << 20, &b, &err);
			CHECK(WIFEXITED(st) && WEXITSTATUS(st) != 0, "s_client -tls1_2 fails");
			CHECK(strstr(dcr_buf_cstr(&b), "alert protocol version"),
			      "s_client saw the protocol_version alert: %s", dcr_buf_cstr(&b));
			/* the positive control: s_client with TLS 1.3 connects */
			free(cmd);
			cmd = dcr_asprintf("timeout 60 openssl s_client -connect 127.0.0.1:%u "
			                   "-tls1_3 </dev/null >%s/s_client.out 2>&1",
			                   port, T.dir);
			st = system(cmd);
			dcr_buf_reset(&b);
			dcr_read_file(out, 1 << 20, &b, &err);
			CHECK(strstr(dcr_buf_cstr(&b), "TLSv1.3"), "s_client -tls1_3 connects: %s",
			      dcr_buf_cstr(&b));
		}
		dcr_buf_release(&b);
		free(cmd);
		free(out);
	}
	good_client("after TLS 1.2 clients");
}

static void test_plain_text(void)
{
	int fd = tcp_connect();
	uint8_t got[64];
	size_t n = 0;
	ssize_t r;

	CHECK(fd >= 0);
	set_timeouts(fd, 30);
	CHECK(send(fd, "hello dcrd\n", 11, MSG_NOSIGNAL) == 11);
	while ((r = recv(fd, got + n, sizeof got - n, 0)) > 0)
		n += (size_t)r;
	CHECK(r == 0 || errno == ECONNRESET, "closed, not timed out");
	CHECK(n == 7 && got[0] == 0x15 && got[5] == 2, "a fatal TLS alert, then EOF (%zu bytes)",
	      n);
	close(fd);
	/* a dcrd frame sent in clear gets the same */
	fd = tcp_connect();
	set_timeouts(fd, 30);
	CHECK(send(fd, "\x00\x00\x00\x05\x80\x00\x00\x00\x00", 9, MSG_NOSIGNAL) == 9);
	n = 0;
	while ((r = recv(fd, got + n, sizeof got - n, 0)) > 0)
		n += (size_t)r;
	CHECK(n == 7 && got[0] == 0x15, "clear frame: a TLS alert (%zu bytes)", n);
	close(fd);
	CHECK(td_log_wait(&T, "does not speak TLS", 10000));
	good_client("after plain text");
}

static void test_relay(void)
{
	tr a, b, c;
	uint8_t fp[32];
	char code[32], msg[DCR_ERR_MSG_BYTES];
	dcr_err err;

	CHECK_OK(tls_open(&a, fp, &err), &err);
	CHECK_OK(tls_open(&b, fp, &err), &err);
	if (a.fd < 0 || b.fd < 0)
		goto out;
	CHECK(memcmp(a.binding, b.binding, 32) != 0, "two connections, two exporters");
	/* B's challenge signed over A's exporter: what a relay in the middle
	 * of A would get anna to sign. Refused. */
	tr_auth(&b, T.anna, DCR_DOMAIN_AUTH_TLS, a.binding, code, msg);
	CHECK(strcmp(code, "ESIG") == 0, "relayed authentication refused: %s %s", code, msg);
	CHECK(strstr(msg, "channel binding"), "the refusal says why: %s", msg);
	/* the connection is closed after it */
	{
		uint8_t x;
		CHECK(tr_read_exact(&b, &x, 1) < 0, "closed after the refusal");
	}
	/* A with its own exporter: accepted */
	tr_auth(&a, T.anna, DCR_DOMAIN_AUTH_TLS, a.binding, code, msg);
	CHECK(code[0] == 0, "own exporter accepted: %s %s", code, msg);
	CHECK(tr_whoami(&a, T.anna));
	/* a fresh B with B's own exporter: accepted */
	CHECK_OK(tls_open(&c, fp, &err), &err);
	if (c.fd >= 0) {
		tr_auth(&c, T.anna, DCR_DOMAIN_AUTH_TLS, c.binding, code, msg);
		CHECK(code[0] == 0, "own exporter accepted (2): %s %s", code, msg);
		tr_close(&c);
	}
	/* no binding at all, the tls domain: refused */
	CHECK_OK(tls_open(&c, fp, &err), &err);
	if (c.fd >= 0) {
		uint8_t zero[32] = {0};
		tr_auth(&c, T.anna, DCR_DOMAIN_AUTH_TLS, zero, code, msg);
		CHECK(strcmp(code, "ESIG") == 0, "zero binding refused: %s", code);
		tr_close(&c);
	}
out:
	tr_close(&a);
	tr_close(&b);
	good_client("after a relayed authentication");
}

static void test_wrong_domain(void)
{
	tr t, u;
	uint8_t fp[32];
	char code[32], msg[DCR_ERR_MSG_BYTES];
	dcr_err err;

	/* a unix-socket signature (dcr.auth.v1, no binding) on TLS */
	CHECK_OK(tls_open(&t, fp, &err), &err);
	if (t.fd >= 0) {
		tr_auth(&t, T.anna, DCR_DOMAIN_AUTH, NULL, code, msg);
		CHECK(strcmp(code, "ESIG") == 0, "dcr.auth.v1 on TLS refused: %s %s", code, msg);
		tr_close(&t);
	}
	/* the TLS domain with a binding on the unix socket */
	CHECK(unix_open(&u) == 0);
	if (u.fd >= 0) {
		uint8_t any[32];
		memset(any, 7, sizeof any);
		tr_auth(&u, T.anna, DCR_DOMAIN_AUTH_TLS, any, code, msg);
		CHECK(strcmp(code, "ESIG") == 0, "dcr.auth.tls.v1 on the socket refused: %s", code);
		tr_close(&u);
	}
	good_client("after wrong-domain signatures");
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
		rl.rlim_cur = rl.rlim_max > 4096 ? 4096 : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void test_flood(void)
{
	int *fds = dcr_calloc(FLOOD_CONNS, sizeof *fds);
	int fd0 = count_fds(T.pid), fd_max = 0, opened = 0, closed_by_dcrd = 0;
	long rss0 = rss_kb(T.pid), rss_max = 0;
	uint64_t t0;

	for (int i = 0; i < FLOOD_CONNS; i++) {
		fds[i] = tcp_connect();
		if (fds[i] >= 0)
			opened++;
		if (i % 50 == 49) {
			int n = count_fds(T.pid);
			long r = rss_kb(T.pid);
			fd_max = n > fd_max ? n : fd_max;
			rss_max = r > rss_max ? r : rss_max;
		}
	}
	CHECK(opened >= FLOOD_CONNS * 9 / 10, "opened %d idle TCP connections", opened);
	/* let dcrd accept every one of them */
	t0 = dcr_mono_ms();
	while (dcr_mono_ms() - t0 < 1500) {
		int n = count_fds(T.pid);
		long r = rss_kb(T.pid);
		fd_max = n > fd_max ? n : fd_max;
		rss_max = r > rss_max ? r : rss_max;
		usleep(50000);
	}
	/* bounded: the handshake pool (64) and those closing, not 1,000 */
	CHECK(fd_max - fd0 <= 3 * (int)DMN_TLS_HANDSHAKES_MAX,
	      "dcrd's descriptors: %d at rest, at most %d during the flood", fd0, fd_max);
	/* (about 20 MB here; a sanitizer's shadow memory and quarantine
	 * multiply it) */
	CHECK(rss_max - rss0 < (getenv("DCR_SANITIZED") ? 512 : 64) * 1024,
	      "dcrd's RSS: %ld KiB at rest, at most %ld KiB", rss0, rss_max);
	fprintf(stderr, "flood of %d: dcrd fds %d -> max %d, RSS %ld -> max %ld KiB\n", opened, fd0,
	        fd_max, rss0, rss_max);
	/* the good client completes its handshake while they are open */
	good_client("during 1,000 idle connections");
	/* dcrd closes all but the newest (the pool) and those it has not
	 * accepted yet: count them as it goes (a loaded machine is slow) */
	t0 = dcr_mono_ms();
	do {
		for (int i = 0; i < FLOOD_CONNS; i++) {
			char x;
			ssize_t r;
			if (fds[i] < 0)
				continue;
			r = recv(fds[i], &x, 1, MSG_DONTWAIT);
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
				closed_by_dcrd++;
				close(fds[i]);
				fds[i] = -1;
			}
		}
		if (closed_by_dcrd < opened - 2 * (int)DMN_TLS_HANDSHAKES_MAX)
			usleep(100000);
	} while (closed_by_dcrd < opened - 2 * (int)DMN_TLS_HANDSHAKES_MAX &&
	         dcr_mono_ms() - t0 < 30000);
	for (int i = 0; i < FLOOD_CONNS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	CHECK(closed_by_dcrd >= opened - 2 * (int)DMN_TLS_HANDSHAKES_MAX,
	      "dcrd closed %d of them (the oldest give way)", closed_by_dcrd);
	CHECK(td_log_has(&T, EVICTED), "the eviction is logged");
	free(fds);
	good_client("after the flood");
}

/* A real ClientHello of our client (captured over a socketpair). */
static size_t client_hello(uint8_t *out, size_t cap)
{
	int sv[2];
	dcr_tls_client *c = NULL;
	uint8_t fp[32];
	dcr_err err;
	ssize_t n;

	DCR_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	{
		struct timeval tv = {0, 100000};
		setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	}
	CHECK(dcr_tls_client_connect(sv[0], "127.0.0.1", &c, fp, &err) == -ETIMEDOUT);
	n = recv(sv[1], out, cap, MSG_DONTWAIT);
	close(sv[0]);
	close(sv[1]);
	return n > 0 ? (size_t)n : 0;
}

static void test_slow_handshake(void)
{
	uint8_t hello[2048];
	size_t n = client_hello(hello, sizeof hello), sent = 0;
	int fd = tcp_connect();
	uint64_t t0 = dcr_mono_ms(), dt;
	bool closed = false;

	CHECK(n > 100 && hello[0] == 0x16, "captured a ClientHello of %zu bytes", n);
	CHECK(fd >= 0);
	/* one byte every 100 ms: 25 s for the whole hello, far past the
	 * 2 s handshake timeout */
	while (sent < n && dcr_mono_ms() - t0 < 60000) {
		char x;
		ssize_t r;
		if (send(fd, hello + sent, 1, MSG_NOSIGNAL) != 1) {
			closed = true;
			break;
		}
		sent++;
		usleep(100000);
		r = recv(fd, &x, 1, MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
			closed = true;
			break;
		}
	}
	dt = dcr_mono_ms() - t0;
	CHECK(closed && sent < n, "closed after %zu of %zu bytes, %llu ms", sent, n,
	      (unsigned long long)dt);
	CHECK(dt >= HS_TIMEOUT_MS - 200, "not before the timeout: %llu ms", (unsigned long long)dt);
	CHECK(td_log_wait(&T, "no TLS handshake within " STR(HS_TIMEOUT_MS) " ms", 10000),
	      "logged");
	close(fd);
	good_client("after a slow handshake");
}

/* After a restart with a lower per-address limit: the same key (same
 * fingerprint), and the limit counts the peer's IP. */
static void test_restart_and_addr_limit(void)
{
	/* a small handshake pool and a long handshake timeout for
	 * test_hs_fairness, which follows */
	const char *extra[] = {"--max-conns-per-addr=3", "--tls-handshake-timeout-ms=60000",
	                       "--max-tls-handshakes=8", NULL};
	tr t[4];
	uint8_t fp[32];
	char code[32], msg[DCR_ERR_MSG_BYTES];
	dcr_key *k[4];
	dcr_err err;

	CHECK(td_stop(&T, SIGTERM) == 0, "clean stop");
	if (start(extra) < 0)
		return;
	good_client("after a restart (same fingerprint)");
	for (int i = 0; i < 4; i++) {
		DCR_ASSERT(dcr_key_generate(&k[i]) == 0);
		CHECK_OK(tls_open(&t[i], fp, &err), &err);
		if (t[i].fd < 0)
			continue;
		tr_auth(&t[i], k[i], DCR_DOMAIN_AUTH_TLS, t[i].binding, code, msg);
		if (i < 3)
			CHECK(code[0] == 0, "conn %d admitted: %s %s", i, code, msg);
	}
	/* the fourth from 127.0.0.1: an idle stranger's connection of the
	 * same address gives way to it, or it is refused; either way the
	 * address is the peer's IP */
	CHECK(
	    td_log_wait(&T, "ip 127.0.0.1", 10000) &&
	        (td_log_has(&T, "another connection from ip 127.0.0.1, which has 3 connections") ||
	         td_log_has(&T, "ip 127.0.0.1 has 3 connections open")),
	    "the per-address limit counts the IP");
	for (int i = 0; i < 4; i++) {
		tr_close(&t[i]);
		dcr_key_free(k[i]);
	}
}

/* How many times needle is in dcrd's log. */
static unsigned log_count(const char *needle)
{
	char *log = td_log_text(&T);
	unsigned n = 0;

	for (const char *q = strstr(log, needle); q; q = strstr(q + 1, needle))
		n++;
	free(log);
	return n;
}

/* A TCP connection to dcrd's IPv4 listener from the source address src
 * (any 127.x.y.z is loopback). */
static int tcp_connect_from(const char *src)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	inet_pton(AF_INET, src, &sa.sin_addr);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The handshake pool (8 here) is shared fairly between addresses: a
 * flood from 127.0.0.1 pushes out its own connections, not a slow client
 * of 127.0.0.2 that has not started its handshake yet, which then
 * completes it and is served. */
static void test_hs_fairness(void)
{
	int slow = tcp_connect_from("127.0.0.2"), flood[40];
	dcr_tls_client *c = NULL;
	uint8_t fp[32];
	dcr_err err;
	uint64_t t0;

	unsigned base = log_count(EVICTED);

	if (slow < 0) {
		fprintf(stderr, "note: cannot connect from 127.0.0.2: fairness not tested\n");
		return;
	}
	set_timeouts(slow, 30);
	for (int i = 0; i < 40; i++)
		flood[i] = tcp_connect();
	/* until dcrd has made room at least 10 times (the 1st and the 10th
	 * are logged) */
	t0 = dcr_mono_ms();
	while (log_count(EVICTED) < base + 2 && dcr_mono_ms() - t0 < 30000)
		usleep(50000);
	CHECK(log_count(EVICTED) >= base + 2, "the flood made dcrd close handshakes");
	usleep(300000);
	CHECK(!td_log_has(&T, "TLS connection from ip 127.0.0.2 closed"),
	      "the other address's connection was not pushed out");
	CHECK_OK(dcr_tls_client_connect(slow, "127.0.0.1", &c, fp, &err), &err);
	if (c) {
		tr t;
		char code[32], msg[DCR_ERR_MSG_BYTES];
		memset(&t, 0, sizeof t);
		t.fd = slow;
		t.tls = c;
		dcr_tls_client_binding(c, t.binding);
		CHECK(tr_hello(&t) == 0);
		tr_auth(&t, T.ian, DCR_DOMAIN_AUTH_TLS, t.binding, code, msg);
		CHECK(code[0] == 0, "the slow client of 127.0.0.2 is served: %s %s", code, msg);
		CHECK(tr_whoami(&t, T.ian));
		tr_close(&t);
	} else
		close(slow);
	for (int i = 0; i < 40; i++)
		if (flood[i] >= 0)
			close(flood[i]);
}

/* req (args its scratch) := request id: upload.chunk of chunk (1 MiB) to
 * upload 999, which does not exist: dcrd reads, decrypts and parses the
 * whole frame, then answers ENOTFOUND. */
static void chunk_request(dcr_buf *req, dcr_buf *args, uint64_t id, const uint8_t *chunk)
{
	dcr_mpw w;
	dcr_buf_reset(args);
	dcr_buf_reset(req);
	dcr_mpw_init(&w, args);
	dcr_mpw_map(&w, 2);
	dcr_mpw_str(&w, "data");
	dcr_mpw_bin(&w, chunk, DCR_CHUNK_BYTES);
	dcr_mpw_str(&w, "upload");
	dcr_mpw_uint(&w, 999);
	proto_request(req, id, "upload.chunk", args->data, args->len);
}

/* A figure, not a check: 1 MiB request frames through TLS (upload.chunk
 * of an upload that does not exist: dcrd reads, decrypts and parses the
 * whole frame, then answers ENOTFOUND), DMN_INFLIGHT_MAX in flight. */
static void measure_throughput(void)
{
	enum { FRAMES = 128 };
	tr t;
	uint8_t fp[32];
	char code[32], msg[DCR_ERR_MSG_BYTES];
	dcr_buf args, req, rb;
	uint8_t *chunk = dcr_calloc(1, DCR_CHUNK_BYTES);
	dcr_err err;
	uint64_t t0;
	int answered = 0, sent = 0;

	if (tls_open(&t, fp, &err) < 0) {
		CHECK(0, "throughput connection: %s", err.msg);
		free(chunk);
		return;
	}
	tr_auth(&t, T.anna, DCR_DOMAIN_AUTH_TLS, t.binding, code, msg);
	CHECK(code[0] == 0);
	dcr_buf_init(&args);
	dcr_buf_init(&req);
	dcr_buf_init(&rb);
	chunk_request(&req, &args, 1, chunk);
	t0 = dcr_mono_ms();
	while (answered < FRAMES) {
		dcr_mp_doc *d;
		while (sent < FRAMES && sent - answered < (int)DMN_INFLIGHT_MAX - 1) {
			if (tr_send(&t, req.data, req.len) < 0)
				break;
			sent++;
		}
		d = tr_read_doc(&t, &rb);
		if (!d)
			break;
		dcr_mp_doc_free(d);
		answered++;
	}
	CHECK(answered == FRAMES, "answered %d of %d", answered, FRAMES);
	fprintf(stderr, "TLS throughput: %d frames of 1 MiB in %llu ms (%.0f MB/s)\n", answered,
	        (unsigned long long)(dcr_mono_ms() - t0),
	        answered * 1.048576 * 1000.0 / (double)(dcr_mono_ms() - t0 + 1));
	tr_close(&t);
	dcr_buf_release(&args);
	dcr_buf_release(&req);
	dcr_buf_release(&rb);
	free(chunk);
}

/* A dataset of several MiB over TLS through the client library: the
 * upload's bytes reach dcrd intact (cl_provision compares dcrd's SHA-256
 * of the stored dataset with its own). */
static void test_big_upload(void)
{
	char srv[64], pin[DCR_TLS_FINGERPRINT_BYTES];
	cl_addr a = {0};
	cl_conn *c = NULL;
	char *json = td_room_json(&T, "tls-big");
	uint8_t room[ES_ROOM_ID_BYTES];
	dcr_buf csv;
	dcr_err err;

	snprintf(srv, sizeof srv, "127.0.0.1:%u", port);
	dcr_tls_fingerprint_format(server_fp, pin);
	a.server = srv;
	a.pin = pin;
	dcr_buf_init(&csv);
	dcr_buf_append_str(&csv, "email,city,age\n");
	for (unsigned i = 0; csv.len < (6u << 20) + 777; i++)
		dcr_buf_printf(&csv, "user%u@bank.example,City %u,%u\n", i, i % 97, 18 + i % 70);
	CHECK_OK(cl_connect_addr(&a, T.anna, &c, &err), &err);
	if (c) {
		CHECK_OK(td_room_publish(c, json, room, &err), &err);
		{
			td_src src = {(const char *)csv.data, csv.len, 0, 300000};
			CHECK_OK(cl_provision(c, room, "bank", "bank.csv", src.n, td_src_read, &src,
			                      NULL, NULL, &err),
			         &err);
		}
		cl_close(c);
	}
	/* a wrong pin: refused before anything of the upload is sent */
	pin[DCR_TLS_FINGERPRINT_CHARS - 1] = pin[DCR_TLS_FINGERPRINT_CHARS - 1] == '0' ? '1' : '0';
	c = NULL;
	CHECK(cl_connect_addr(&a, T.anna, &c, &err) < 0 && c == NULL, "a wrong pin is refused");
	dcr_buf_release(&csv);
	free(json);
}

/* Frames sent faster than dcrd takes them: 12 request frames of 1 MiB
 * before reading any answer; dcrd stops reading at DMN_INFLIGHT_MAX with
 * ciphertext of the next frames in its read (kept by the engine) and
 * resumes as it answers: 12 answers, ids in order. */
static void test_pipelined(void)
{
	enum { FRAMES = 12 };
	tr t;
	uint8_t fp[32];
	char code[32], msg[DCR_ERR_MSG_BYTES];
	uint8_t *chunk = dcr_malloc(DCR_CHUNK_BYTES);
	dcr_buf args, req, rb;
	dcr_err err;
	int answered = 0;

	if (tls_open(&t, fp, &err) < 0) {
		CHECK(0, "pipelined connection: %s", err.msg);
		free(chunk);
		return;
	}
	tr_auth(&t, T.anna, DCR_DOMAIN_AUTH_TLS, t.binding, code, msg);
	CHECK(code[0] == 0);
	for (size_t i = 0; i < DCR_CHUNK_BYTES; i++)
		chunk[i] = (uint8_t)(i * 31 + (i >> 9));
	dcr_buf_init(&args);
	dcr_buf_init(&req);
	dcr_buf_init(&rb);
	for (int i = 0; i < FRAMES; i++) {
		chunk_request(&req, &args, 100 + (uint64_t)i, chunk);
		CHECK(tr_send(&t, req.data, req.len) == 0, "frame %d sent", i);
	}
	for (; answered < FRAMES; answered++) {
		dcr_mp_doc *d = tr_read_doc(&t, &rb);
		uint64_t id = 0;
		const char *p;
		size_t pn;
		if (!d)
			break;
		CHECK(dcr_mp_get_u64(dcr_mp_root(d), "id", &id, &err) == 0 &&
		          id == 100 + (uint64_t)answered,
		      "answer %d has id %llu", answered, (unsigned long long)id);
		CHECK(dcr_mp_get_str(dcr_mp_root(d), "code", &p, &pn, &err) == 0 && pn == 9 &&
		          memcmp(p, "ENOTFOUND", 9) == 0,
		      "upload.chunk of no upload: ENOTFOUND");
		dcr_mp_doc_free(d);
	}
	CHECK(answered == FRAMES, "answered %d of %d", answered, FRAMES);
	CHECK(tr_whoami(&t, T.anna), "the connection still serves");
	tr_close(&t);
	dcr_buf_release(&args);
	dcr_buf_release(&req);
	dcr_buf_release(&rb);
	free(chunk);
}

/* A record that does not decrypt, after authentication: dcrd answers
 * with an alert, closes and logs it; the next client is served. */
static void test_bad_record(void)
{
	static const uint8_t junk_hdr[5] = {0x17, 0x03, 0x03, 0x00, 0x40};
	uint8_t junk[64];
	tr t;
	uint8_t fp[32];
	char code[32], msg[DCR_ERR_MSG_BYTES];
	dcr_buf rb;
	dcr_err err;

	if (tls_open(&t, fp, &err) < 0) {
		CHECK(0, "bad-record connection: %s", err.msg);
		return;
	}
	tr_auth(&t, T.anna, DCR_DOMAIN_AUTH_TLS, t.binding, code, msg);
	CHECK(code[0] == 0);
	memset(junk, 0x5a, sizeof junk);
	CHECK(send(t.fd, junk_hdr, sizeof junk_hdr, MSG_NOSIGNAL) == 5 &&
	      send(t.fd, junk, sizeof junk, MSG_NOSIGNAL) == (ssize_t)sizeof junk);
	dcr_buf_init(&rb);
	CHECK(tr_read_doc(&t, &rb) == NULL, "no answer: the connection is closed");
	dcr_buf_release(&rb);
	CHECK(td_log_wait(&T, "closed: reading from the TLS session", 10000),
	      "dcrd logs the bad record");
	tr_close(&t);
	CHECK(good_client("after a bad record"));
}

/* Bad --listen addresses stop dcrd at once, saying why. */
static void test_bad_listen(void)
{
	const char *bad_port[] = {"--listen", "127.0.0.1:99999", NULL};
	const char *no_brackets[] = {"--listen", "::1:4433", NULL};
	char spec[64];
	const char *in_use[] = {"--listen", spec, NULL};
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	int st = 0, fd;

	CHECK(td_spawn(&T, &st, bad_port, true) < 0 && WIFEXITED(st) && WEXITSTATUS(st) == 2,
	      "a bad port is a usage error (status %d)", st);
	CHECK(td_log_has(&T, "--listen 127.0.0.1:99999: the port must be a number"));
	CHECK(td_spawn(&T, &st, no_brackets, true) < 0 && WIFEXITED(st) && WEXITSTATUS(st) == 2);
	CHECK(td_log_has(&T, "an IPv6 address goes in brackets"));
	/* a port someone else listens on */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 1) == 0 &&
	      getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
	snprintf(spec, sizeof spec, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
	unlink(T.sock);
	CHECK(td_spawn(&T, &st, in_use, true) < 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1,
	      "a port in use stops the start (status %d)", st);
	CHECK(td_log_has(&T, "address already in use"), "and says so");
	CHECK(!td_can_connect(T.sock), "the socket is not left behind");
	close(fd);
}

int main(void)
{
	raise_nofile();
	td_init(&T);
	test_fingerprint_first();
	if (start(NULL) < 0)
		return 1;
	test_positive();
	test_tls12_refused();
	test_plain_text();
	test_relay();
	test_wrong_domain();
	test_slow_handshake();
	test_flood();
	test_big_upload();
	test_pipelined();
	test_bad_record();
	measure_throughput();
	test_restart_and_addr_limit();
	test_hs_fairness();
	CHECK(td_stop(&T, SIGTERM) == 0, "clean shutdown");
	test_bad_listen();
	CHECK(!td_log_has(&T, "runtime error") && !td_log_has(&T, "Sanitizer"),
	      "no sanitizer report");
	if (t_failures)
		fprintf(stderr, "%d checks failed\n", t_failures);
	return t_failures ? 1 : 0;
}
