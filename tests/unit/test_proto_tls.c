/* test_proto_tls.c: the client's TLS transport (proto/client.c) against a
 * fake dcrd on 127.0.0.1 (and ::1 when the machine has it) made of
 * base/tls's server engine: the server's key checked against the pin and
 * the caller's check before any byte of the protocol is sent (a wrong pin,
 * a refusing check and no pin at all: the fake server receives nothing
 * after the handshake), the login signed over the channel binding of that
 * connection ("dcr.auth.tls.v1", verified here as dcrd does), frames of
 * several MiB both ways and an upload chunk (the iovec path), the
 * connection's name and fingerprint, and the parser of HOST:PORT. */
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "../../base/tls.h"
#include "../../proto/proto.h"
#include "test.h"

static char tdir[64];
static dcr_tls_server *g_srv;
static char g_fp[DCR_TLS_FINGERPRINT_BYTES];

static int rm_cb(const char *p, const struct stat *st, int fl, struct FTW *f)
{
	(void)st;
	(void)fl;
	(void)f;
	return remove(p);
}

/* ---- the fake dcrd: one connection ------------------------------------------ */

typedef struct fake {
	int lfd;         /* listening */
	int port;
	size_t app_bytes; /* plaintext received from the client, in all */
	bool authed;      /* the login signature verified with the binding */
	bool bad_sig;     /* a login arrived and did not verify */
	uint64_t requests;
	uint64_t big_bytes; /* bytes of the largest request frame */
} fake;

static int flush_fd(int fd, dcr_tls_engine *e)
{
	uint8_t buf[16384];
	size_t n;

	while ((n = dcr_tls_engine_drain(e, buf, sizeof buf)) > 0)
		if (send(fd, buf, n, MSG_NOSIGNAL) != (ssize_t)n)
			return -1;
	return 0;
}

static int send_map(int fd, dcr_tls_engine *e, proto_map *m)
{
	dcr_buf body, fr;
	dcr_err err;
	int rc;

	dcr_buf_init(&body);
	dcr_buf_init(&fr);
	proto_map_encode(m, &body);
	proto_map_release(m);
	proto_frame_wrap(&fr, body.data, body.len);
	rc = dcr_tls_engine_write(e, fr.data, fr.len, &err);
	if (rc == 0)
		rc = flush_fd(fd, e);
	dcr_buf_release(&body);
	dcr_buf_release(&fr);
	return rc;
}

static void *fake_main(void *arg)
{
	fake *f = arg;
	dcr_tls_engine *e = NULL;
	uint8_t buf[65536], challenge[32], daemon_key[32], binding[32];
	dcr_buf in;
	dcr_err err;
	int fd, rc = 0;

	dcr_buf_init(&in);
	fd = accept(f->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	{
		struct timeval tv = {30, 0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	}
	if (dcr_tls_engine_server(g_srv, &e, &err) < 0)
		goto out;
	while (rc == 0) {
		ssize_t r = recv(fd, buf, sizeof buf, 0);
		if (r <= 0)
			goto out;
		rc = dcr_tls_engine_feed(e, buf, (size_t)r, &err);
		flush_fd(fd, e);
	}
	if (rc < 0)
		goto out;
	CHECK_OK(dcr_tls_engine_binding(e, binding, &err), &err);
	/* the hello, as dcrd sends it */
	dcr_random(challenge, sizeof challenge);
	dcr_random(daemon_key, sizeof daemon_key);
	{
		proto_map m;
		proto_map_init(&m);
		dcr_mpw_bin(proto_map_key(&m, "challenge"), challenge, 32);
		dcr_mpw_bin(proto_map_key(&m, "daemon_key"), daemon_key, 32);
		dcr_mpw_uint(proto_map_key(&m, "v"), 1);
		if (send_map(fd, e, &m) < 0)
			goto out;
	}
	for (;;) {
		int n = dcr_tls_engine_read(e, buf, sizeof buf, &err);
		if (n > 0) {
			f->app_bytes += (size_t)n;
			dcr_buf_append(&in, buf, (size_t)n);
		} else if (n < 0) {
			break;
		} else {
			ssize_t r = recv(fd, buf, sizeof buf, 0);
			if (r <= 0)
				break;
			if (dcr_tls_engine_feed(e, buf, (size_t)r, &err) < 0)
				break;
			flush_fd(fd, e);
			continue;
		}
		/* whole frames */
		while (in.len >= 4 && in.len >= 4 + (size_t)dcr_get_be32(in.data)) {
			size_t len = dcr_get_be32(in.data);
			dcr_mp_doc *d = NULL;
			proto_map m;
			if (proto_frame_parse(in.data + 4, len, &d, &err) < 0)
				goto out;
			proto_map_init(&m);
			if (!f->authed) {
				uint8_t key[32], sig[64], msg[96];
				CHECK_OK(dcr_mp_get_binn(dcr_mp_root(d), "key", key, 32, &err), &err);
				CHECK_OK(dcr_mp_get_binn(dcr_mp_root(d), "sig", sig, 64, &err), &err);
				memcpy(msg, challenge, 32);
				memcpy(msg + 32, daemon_key, 32);
				memcpy(msg + 64, binding, 32);
				if (dcr_verify(key, DCR_DOMAIN_AUTH_TLS, msg, sizeof msg, sig) != 0) {
					f->bad_sig = true;
					dcr_mp_doc_free(d);
					proto_map_release(&m);
					goto out;
				}
				f->authed = true;
			} else {
				uint64_t id = 0;
				const uint8_t *p;
				size_t pn = 0;
				const dcr_mpv *args = dcr_mp_get(dcr_mp_root(d), "args");
				dcr_mp_get_u64(dcr_mp_root(d), "id", &id, &err);
				f->requests++;
				if (len > f->big_bytes)
					f->big_bytes = len;
				dcr_mpw_uint(proto_map_key(&m, "id"), id);
				/* answer with as many bytes as the request's data had */
				if (args && dcr_mp_get_bin(args, "data", &p, &pn, NULL) == 0) {
					uint8_t *back = dcr_malloc(pn + 1);
					for (size_t i = 0; i < pn; i++)
						back[i] = (uint8_t)(p[i] ^ 0x5a);
					dcr_mpw_bin(proto_map_key(&m, "data"), back, pn);
					free(back);
				}
			}
			dcr_mpw_bool(proto_map_key(&m, "ok"), true);
			if (f->requests == 0)
				dcr_mpw_uint(proto_map_key(&m, "v"), 1);
			dcr_mp_doc_free(d);
			if (send_map(fd, e, &m) < 0)
				goto out;
			memmove(in.data, in.data + 4 + len, in.len - 4 - len);
			in.len -= 4 + len;
		}
	}
out:
	if (e)
		flush_fd(fd, e);
	dcr_tls_engine_free(e);
	dcr_buf_release(&in);
	close(fd);
	return NULL;
}

static bool fake_listen(fake *f, int family)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int one = 1;

	memset(f, 0, sizeof *f);
	memset(&ss, 0, sizeof ss);
	f->lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (f->lfd < 0)
		return false;
	setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof *a;
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		sl = sizeof *a;
	}
	if (bind(f->lfd, (struct sockaddr *)&ss, sl) < 0 || listen(f->lfd, 4) < 0 ||
	    getsockname(f->lfd, (struct sockaddr *)&ss, &sl) < 0) {
		close(f->lfd);
		return false;
	}
	f->port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
	                                  : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return true;
}

/* A check callback: counts its calls, accepts or refuses. */
typedef struct chk {
	int calls;
	bool refuse;
	char server[64], fp[DCR_TLS_FINGERPRINT_BYTES];
} chk;

static int check_cb(void *ctx, const char *server, const char *fp, dcr_err *err)
{
	chk *k = ctx;
	k->calls++;
	snprintf(k->server, sizeof k->server, "%s", server);
	snprintf(k->fp, sizeof k->fp, "%s", fp);
	return k->refuse ? dcr_err_set(err, DCR_EKEY, "refused by the test's check") : 0;
}

/* Runs one client connection against a fresh fake; returns cl_connect's rc. */
static int run_one(int family, const char *pin, chk *k, bool traffic, fake *f, dcr_key *id,
                   dcr_err *err)
{
	pthread_t th;
	char server[80];
	cl_addr a;
	cl_conn *c = NULL;
	int rc;

	if (!fake_listen(f, family))
		return -EAFNOSUPPORT;
	snprintf(server, sizeof server, family == AF_INET ? "127.0.0.1:%d" : "[::1]:%d", f->port);
	DCR_ASSERT(pthread_create(&th, NULL, fake_main, f) == 0);
	memset(&a, 0, sizeof a);
	a.server = server;
	a.pin = pin;
	if (k) {
		a.check = check_cb;
		a.check_ctx = k;
	}
	rc = cl_connect_addr(&a, id, &c, err);
	if (rc == 0) {
		CHECK(strcmp(cl_server_name(c), server) == 0, "name %s", cl_server_name(c));
		CHECK(strcmp(cl_server_fingerprint(c), g_fp) == 0, "fp %s", cl_server_fingerprint(c));
	}
	if (rc == 0 && traffic) {
		/* frames of several MiB both ways */
		size_t n = 3u << 20;
		uint8_t *data = dcr_malloc(n);
		dcr_buf args, rb;
		dcr_mpw w;
		dcr_mp_doc *d = NULL;
		const uint8_t *p = NULL;
		size_t pn = 0;
		dcr_random(data, n);
		dcr_buf_init(&args);
		dcr_buf_init(&rb);
		dcr_mpw_init(&w, &args);
		dcr_mpw_map(&w, 1);
		dcr_mpw_str(&w, "data");
		dcr_mpw_bin(&w, data, n);
		CHECK_OK(cl_call(c, "echo", args.data, args.len, &rb, &d, err), err);
		if (d)
			CHECK_OK(dcr_mp_get_bin(dcr_mp_root(d), "data", &p, &pn, err), err);
		CHECK(pn == n, "echoed %zu of %zu", pn, n);
		for (size_t i = 0; p && i < pn && i < n; i++)
			if (p[i] != (uint8_t)(data[i] ^ 0x5a)) {
				CHECK(false, "byte %zu differs", i);
				break;
			}
		dcr_mp_doc_free(d);
		dcr_buf_release(&rb);
		dcr_buf_release(&args);
		free(data);
	}
	cl_close(c);
	pthread_join(th, NULL);
	close(f->lfd);
	return rc;
}

static void test_connect(void)
{
	dcr_key *id = NULL;
	dcr_err err;
	fake f;
	chk k;
	char other[DCR_TLS_FINGERPRINT_BYTES];
	int rc;

	DCR_ASSERT(dcr_key_generate(&id) == 0);
	/* the pin: the login is bound to the channel, frames move */
	memset(&k, 0, sizeof k);
	CHECK_OK(run_one(AF_INET, g_fp, &k, true, &f, id, &err), &err);
	CHECK(f.authed && !f.bad_sig, "login over TLS verified with the binding");
	CHECK(f.requests == 1 && f.big_bytes > (3u << 20), "big frame: %llu",
	      (unsigned long long)f.big_bytes);
	CHECK(k.calls == 1 && strcmp(k.fp, g_fp) == 0, "the check saw the server's key");

	/* a check alone (known_servers) */
	memset(&k, 0, sizeof k);
	CHECK_OK(run_one(AF_INET, NULL, &k, false, &f, id, &err), &err);
	CHECK(f.authed && k.calls == 1, "check alone");
	CHECK(strncmp(k.server, "127.0.0.1:", 10) == 0, "server %s", k.server);

	/* a wrong pin: refused before anything of the protocol is sent */
	memcpy(other, g_fp, sizeof other);
	other[7] = other[7] == '0' ? '1' : '0';
	memset(&k, 0, sizeof k);
	rc = run_one(AF_INET, other, &k, false, &f, id, &err);
	CHECK_FAILS(rc, &err, "not the pinned", other, g_fp, "nothing was sent");
	CHECK(f.app_bytes == 0 && !f.authed, "%zu bytes reached the server", f.app_bytes);
	CHECK(k.calls == 0, "the check runs only after the pin matched");

	/* a pin in upper case is the same key */
	{
		char up[DCR_TLS_FINGERPRINT_BYTES];
		memcpy(up, g_fp, sizeof up);
		for (size_t i = 7; up[i]; i++)
			if (up[i] >= 'a' && up[i] <= 'f')
				up[i] = (char)(up[i] - 32);
		CHECK_OK(run_one(AF_INET, up, NULL, false, &f, id, &err), &err);
	}
	/* a malformed pin */
	rc = run_one(AF_INET, "sha256:abc", NULL, false, &f, id, &err);
	CHECK_FAILS(rc, &err, "--pin");
	CHECK(f.app_bytes == 0, "malformed pin: %zu bytes sent", f.app_bytes);

	/* the check refuses */
	memset(&k, 0, sizeof k);
	k.refuse = true;
	rc = run_one(AF_INET, NULL, &k, false, &f, id, &err);
	CHECK_ERR(rc, DCR_EKEY, &err, "refused by the test's check");
	CHECK(f.app_bytes == 0 && k.calls == 1, "%zu bytes after a refusal", f.app_bytes);

	/* neither a pin nor a check: never trusted by default */
	rc = run_one(AF_INET, NULL, NULL, false, &f, id, &err);
	CHECK_FAILS(rc, &err, "no pin", "nothing was sent");
	CHECK(f.app_bytes == 0, "unpinned: %zu bytes sent", f.app_bytes);

	/* IPv6 loopback, when there is one */
	rc = run_one(AF_INET6, g_fp, NULL, true, &f, id, &err);
	if (rc == -EAFNOSUPPORT)
		fprintf(stderr, "test_proto_tls: no ::1 here, IPv6 not checked\n");
	else
		CHECK_OK(rc, &err);
	dcr_key_free(id);
}

static void test_server_parse(void)
{
	static const struct {
		const char *in, *host, *port, *needle;
	} cases[] = {
	    {"127.0.0.1:7443", "127.0.0.1", "7443", NULL},
	    {"dcr.example.org:443", "dcr.example.org", "443", NULL},
	    {"[::1]:7443", "::1", "7443", NULL},
	    {"[fe80::1%eth0]:1", "fe80::1%eth0", "1", NULL},
	    {"::1:7443", NULL, NULL, "[ADDR]:PORT"},
	    {"host", NULL, NULL, "HOST:PORT"},
	    {":7443", NULL, NULL, "no host"},
	    {"host:0", NULL, NULL, "1 to 65535"},
	    {"host:65536", NULL, NULL, "1 to 65535"},
	    {"host:+1", NULL, NULL, "1 to 65535"},
	    {"host:", NULL, NULL, "1 to 65535"},
	    {"ho st:1", NULL, NULL, "byte 3"},
	    {"[::1]7443", NULL, NULL, "[ADDR]:PORT"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *h = NULL, *p = NULL;
		dcr_err err;
		int rc = cl_server_parse(cases[i].in, &h, &p, &err);
		if (cases[i].host) {
			CHECK_OK(rc, &err);
			CHECK(h && strcmp(h, cases[i].host) == 0, "%s: host %s", cases[i].in, h);
			CHECK(p && strcmp(p, cases[i].port) == 0, "%s: port %s", cases[i].in, p);
		} else {
			CHECK_FAILS(rc, &err, cases[i].needle, cases[i].in);
			CHECK(!h && !p, "nothing returned on error");
		}
		free(h);
		free(p);
	}
}

int main(void)
{
	uint8_t fp[DCR_SHA256_BYTES];
	dcr_err err;

	snprintf(tdir, sizeof tdir, "/tmp/dcr-remote-tls-XXXXXX");
	DCR_ASSERT(mkdtemp(tdir));
	if (dcr_tls_server_open(tdir, &g_srv, NULL, &err) < 0) {
		fprintf(stderr, "dcr_tls_server_open: %s\n", err.msg);
		nftw(tdir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
		return 1;
	}
	dcr_tls_server_fingerprint(g_srv, fp);
	dcr_tls_fingerprint_format(fp, g_fp);
	test_server_parse();
	test_connect();
	dcr_tls_server_free(g_srv);
	nftw(tdir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	return t_failures ? 1 : 0;
}
