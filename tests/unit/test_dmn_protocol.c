/* test_dmn_protocol.c: dcrd's connection handling against hostile and
 * broken clients: authentication (good, bad signature, garbage before
 * auth), an oversize length header, a garbage frame after auth, an unknown
 * op, pipelining beyond the in-flight limit, the idle timeout; the daemon
 * must answer with an error frame where it can, close, and keep serving
 * everyone else. Also --help and a second dcrd on the same directory.
 * The limit on connections waiting to authenticate runs against a second
 * dcrd with the default idle timeout (the limits on authenticated
 * connections, per key, per address and in all, are test_dmn_conns's).
 * Last, the frame-memory attack of issue 9 against a dcrd with a small
 * --frame-budget-mb: its peak RSS stays within the budget (plus a fixed
 * allowance) and a legitimate client keeps being served; and a frame that
 * waits for the budget resumes where it was left. */
#include <pthread.h>

#include "test_dmn_common.h"

/* Under ASan (freed memory kept in quarantine) and TSan (shadow memory)
 * dcrd's RSS is not the program's own: the RSS bound is checked only in
 * the plain build. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

static int raw_connect(const char *sock)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(sock) >= sizeof sa.sun_path) {
		close(fd);
		return -1;
	}
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void raw_send(int fd, const void *p, size_t n)
{
	if (send(fd, p, n, MSG_NOSIGNAL) != (ssize_t)n)
		fprintf(stderr, "raw_send: short write\n");
}

/* Reads one frame with a timeout; returns the parsed doc or NULL (EOF,
 * timeout, or bad frame). *eof is set when the peer closed. */
static dcr_mp_doc *raw_frame(int fd, dcr_buf *buf, int timeout_ms, bool *eof)
{
	uint8_t hdr[4];
	size_t have = 0, need = 4;
	dcr_mp_doc *doc = NULL;
	dcr_err err;
	bool in_body = false;

	*eof = false;
	dcr_buf_reset(buf);
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t r;
		if (poll(&p, 1, timeout_ms) <= 0)
			return NULL;
		r = read(fd, in_body ? buf->data + have : hdr + have, need - have);
		if (r <= 0) {
			*eof = true;
			return NULL;
		}
		have += (size_t)r;
		if (have < need)
			continue;
		if (in_body)
			break;
		need = dcr_get_be32(hdr);
		if (need > DCR_FRAME_BYTES_MAX)
			return NULL;
		dcr_buf_reserve(buf, need);
		have = 0;
		in_body = true;
		if (need == 0)
			break;
	}
	buf->len = need;
	if (proto_frame_parse(buf->data, buf->len, &doc, &err) < 0)
		return NULL;
	return doc;
}

/* True once the peer has closed (reads EOF within timeout_ms, discarding
 * any frames). */
static bool raw_closed(int fd, int timeout_ms)
{
	dcr_buf b;
	bool eof = false;

	dcr_buf_init(&b);
	for (int i = 0; i < 8 && !eof; i++) {
		dcr_mp_doc *d = raw_frame(fd, &b, timeout_ms, &eof);
		if (!d && !eof)
			break;
		dcr_mp_doc_free(d);
	}
	dcr_buf_release(&b);
	return eof;
}

static bool has_code(const dcr_mp_doc *d, const char *code)
{
	const char *s;
	size_t n;

	return d && dcr_mp_str(dcr_mp_get(dcr_mp_root(d), "code"), &s, &n) == 0 &&
	       n == strlen(code) && memcmp(s, code, n) == 0;
}

/* Answers the challenge in hello (freed) as k on fd; true if accepted. */
static bool raw_answer(int fd, dcr_mp_doc *hello, const dcr_key *k, bool corrupt_sig)
{
	dcr_buf b, body, frame;
	dcr_mp_doc *ok;
	uint8_t msg[64], sig[64], pub[32];
	bool eof, good = false;
	dcr_mpw w;

	dcr_buf_init(&b);
	dcr_buf_init(&body);
	dcr_buf_init(&frame);
	CHECK(hello != NULL);
	if (!hello)
		goto out;
	CHECK(dcr_mp_get_binn(dcr_mp_root(hello), "challenge", msg, 32, NULL) == 0);
	CHECK(dcr_mp_get_binn(dcr_mp_root(hello), "daemon_key", msg + 32, 32, NULL) == 0);
	dcr_mp_doc_free(hello);
	dcr_sign(k, DCR_DOMAIN_AUTH, msg, sizeof msg, sig);
	if (corrupt_sig)
		sig[10] ^= 1;
	dcr_key_public(k, pub);
	dcr_mpw_init(&w, &body);
	dcr_mpw_map(&w, 2);
	dcr_mpw_str(&w, "key");
	dcr_mpw_bin(&w, pub, 32);
	dcr_mpw_str(&w, "sig");
	dcr_mpw_bin(&w, sig, 64);
	proto_frame_wrap(&frame, body.data, body.len);
	raw_send(fd, frame.data, frame.len);
	ok = raw_frame(fd, &b, 5000, &eof);
	if (ok)
		dcr_mp_bool(dcr_mp_get(dcr_mp_root(ok), "ok"), &good);
	if (corrupt_sig)
		CHECK(has_code(ok, "ESIG"));
	dcr_mp_doc_free(ok);
out:
	dcr_buf_release(&b);
	dcr_buf_release(&body);
	dcr_buf_release(&frame);
	return good;
}

/* Authenticates a raw connection as k; returns the fd or -1. */
static int raw_auth(td *t, const dcr_key *k, bool corrupt_sig)
{
	int fd = raw_connect(t->sock);
	dcr_buf b;
	bool eof, good;

	if (fd < 0)
		return -1;
	dcr_buf_init(&b);
	good = raw_answer(fd, raw_frame(fd, &b, 5000, &eof), k, corrupt_sig);
	dcr_buf_release(&b);
	if (!good && !corrupt_sig) {
		close(fd);
		return -1;
	}
	return fd;
}

static void test_auth(td *t)
{
	cl_conn *c = td_connect(t, t->anna);
	dcr_mp_doc *d = NULL;
	dcr_buf rb;
	dcr_err err;
	uint8_t k[32];
	int fd;

	CHECK(c != NULL);
	if (!c)
		return;
	dcr_buf_init(&rb);
	CHECK_OK(cl_call(c, "whoami", NULL, 0, &rb, &d, &err), &err);
	if (d) {
		CHECK(dcr_mp_get_binn(dcr_mp_root(d), "key", k, 32, NULL) == 0);
		CHECK(memcmp(k, t->anna_pub, 32) == 0);
		CHECK(dcr_mp_get_binn(dcr_mp_root(d), "daemon_key", k, 32, NULL) == 0);
		CHECK(memcmp(k, cl_daemon_key(c), 32) == 0);
	}
	dcr_mp_doc_free(d);
	dcr_buf_release(&rb);
	cl_close(c);

	/* A bad signature: ESIG, then the connection is closed. */
	fd = raw_auth(t, t->ian, true);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK(raw_closed(fd, 5000));
		close(fd);
	}
	CHECK(td_log_wait(t, "bad challenge signature", 5000));

	/* Garbage instead of the answer: closed. */
	fd = raw_connect(t->sock);
	CHECK(fd >= 0);
	if (fd >= 0) {
		static const uint8_t junk[] = {0, 0, 0, 3, 0xc1, 0xc1, 0xc1};
		raw_send(fd, junk, sizeof junk);
		CHECK(raw_closed(fd, 5000));
		close(fd);
	}
	/* A request before authenticating: closed, not served. */
	fd = raw_connect(t->sock);
	if (fd >= 0) {
		dcr_buf f;
		dcr_buf_init(&f);
		proto_request(&f, 1, "rooms", NULL, 0);
		raw_send(fd, f.data, f.len);
		CHECK(raw_closed(fd, 5000));
		dcr_buf_release(&f);
		close(fd);
	}
}

static void test_oversize(td *t)
{
	/* A length header claiming 4 GiB, and one more byte. */
	static const uint8_t big[] = {0xff, 0xff, 0xff, 0xff, 0x00};
	dcr_buf b;
	dcr_mp_doc *d;
	bool eof;
	int fd;

	dcr_buf_init(&b);
	/* Before authentication. */
	fd = raw_connect(t->sock);
	CHECK(fd >= 0);
	if (fd >= 0) {
		d = raw_frame(fd, &b, 5000, &eof); /* hello */
		dcr_mp_doc_free(d);
		raw_send(fd, big, sizeof big);
		d = raw_frame(fd, &b, 5000, &eof);
		CHECK(has_code(d, "ELIMIT"));
		dcr_mp_doc_free(d);
		CHECK(raw_closed(fd, 5000));
		close(fd);
	}
	/* After authentication: the same. */
	fd = raw_auth(t, t->anna, false);
	CHECK(fd >= 0);
	if (fd >= 0) {
		raw_send(fd, big, sizeof big);
		d = raw_frame(fd, &b, 5000, &eof);
		CHECK(has_code(d, "ELIMIT"));
		dcr_mp_doc_free(d);
		CHECK(raw_closed(fd, 5000));
		close(fd);
	}
	/* One byte over the limit. */
	fd = raw_auth(t, t->anna, false);
	if (fd >= 0) {
		uint8_t hdr[5];
		dcr_put_be32(hdr, DCR_FRAME_BYTES_MAX + 1u);
		hdr[4] = 0x80;
		raw_send(fd, hdr, sizeof hdr);
		d = raw_frame(fd, &b, 5000, &eof);
		CHECK(has_code(d, "ELIMIT"));
		dcr_mp_doc_free(d);
		CHECK(raw_closed(fd, 5000));
		close(fd);
	}
	dcr_buf_release(&b);
}

static void test_garbage(td *t)
{
	dcr_buf b, f;
	dcr_mp_doc *d;
	bool eof;
	int fd;

	dcr_buf_init(&b);
	dcr_buf_init(&f);
	/* Not msgpack at all. */
	fd = raw_auth(t, t->anna, false);
	CHECK(fd >= 0);
	if (fd >= 0) {
		static const uint8_t junk[] = {0, 0, 0, 6, 'h', 'e', 'l', 'l', 'o', '!'};
		raw_send(fd, junk, sizeof junk);
		d = raw_frame(fd, &b, 5000, &eof);
		CHECK(d != NULL);
		CHECK(has_code(d, "ETRAILING") || has_code(d, "EFORMAT") || has_code(d, "EPROTO") ||
		      has_code(d, "ETRUNC") || has_code(d, "ENONCANON"));
		dcr_mp_doc_free(d);
		CHECK(raw_closed(fd, 5000));
		close(fd);
	}
	/* Non-canonical msgpack (a map with unsorted keys). */
	fd = raw_auth(t, t->anna, false);
	if (fd >= 0) {
		static const uint8_t bad[] = {0x82, 0xa2, 'o', 'p',  0xa5, 'r', 'o',
		                              'o',  'm',  's', 0xa2, 'i',  'd', 0x01};
		dcr_buf_reset(&f);
		proto_frame_wrap(&f, bad, sizeof bad);
		raw_send(fd, f.data, f.len);
		d = raw_frame(fd, &b, 5000, &eof);
		CHECK(has_code(d, "ENONCANON"));
		dcr_mp_doc_free(d);
		CHECK(raw_closed(fd, 5000));
		close(fd);
	}
	/* An unknown op is an ordinary error: the connection stays usable. */
	fd = raw_auth(t, t->anna, false);
	if (fd >= 0) {
		uint64_t id = 0;
		dcr_buf_reset(&f);
		proto_request(&f, 7, "no.such.op", NULL, 0);
		proto_request(&f, 8, "rooms", NULL, 0);
		raw_send(fd, f.data, f.len);
		d = raw_frame(fd, &b, 5000, &eof);
		CHECK(has_code(d, "EINVALID"));
		if (d)
			dcr_mp_u64(dcr_mp_get(dcr_mp_root(d), "id"), &id);
		CHECK(id == 7);
		dcr_mp_doc_free(d);
		d = raw_frame(fd, &b, 5000, &eof);
		CHECK(d && dcr_mp_get(dcr_mp_root(d), "rooms") != NULL);
		dcr_mp_doc_free(d);
		close(fd);
	}
	/* Pipelining far beyond the in-flight limit: refused, closed. */
	fd = raw_auth(t, t->anna, false);
	if (fd >= 0) {
		dcr_buf_reset(&f);
		for (int i = 0; i < 64; i++)
			proto_request(&f, (uint64_t)i + 1, "rooms", NULL, 0);
		raw_send(fd, f.data, f.len);
		CHECK(raw_closed(fd, 10000));
		close(fd);
	}
	dcr_buf_release(&b);
	dcr_buf_release(&f);
}

/* A burst of exactly DMN_INFLIGHT_MAX requests is allowed: the daemon stops
 * reading while they are unanswered, and must resume once it answered
 * (uploads keep several chunks in flight and hit this all the time). */
static void test_inflight_resume(td *t)
{
	dcr_buf b, f;
	dcr_mp_doc *d;
	bool eof;
	int fd = raw_auth(t, t->anna, false);

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	dcr_buf_init(&b);
	dcr_buf_init(&f);
	for (int round = 0; round < 3; round++) {
		dcr_buf_reset(&f);
		for (unsigned i = 0; i < DMN_INFLIGHT_MAX; i++)
			proto_request(&f, (uint64_t)round * 100 + i + 1, "rooms", NULL, 0);
		raw_send(fd, f.data, f.len);
		for (unsigned i = 0; i < DMN_INFLIGHT_MAX; i++) {
			d = raw_frame(fd, &b, 5000, &eof);
			CHECK(d && dcr_mp_get(dcr_mp_root(d), "rooms") != NULL);
			dcr_mp_doc_free(d);
		}
	}
	close(fd);
	dcr_buf_release(&b);
	dcr_buf_release(&f);
}

static void test_idle(td *t)
{
	cl_conn *c = td_connect(t, t->anna);
	cl_room_info *rooms = NULL;
	size_t n = 0;
	dcr_err err;

	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_OK(cl_rooms(c, &rooms, &n, &err), &err);
	cl_rooms_free(rooms, n);
	usleep(1500 * 1000); /* idle timeout is 500 ms */
	CHECK(cl_rooms(c, &rooms, &n, &err) < 0);
	cl_close(c);
	CHECK(td_log_has(t, "idle for 500 ms"));
}

static void test_second_daemon(td *t)
{
	int st = 0;
	pid_t p = td_spawn(t, &st, NULL, true);

	CHECK(p < 0);
	if (p > 0) {
		kill(p, SIGKILL);
		waitpid(p, &st, 0);
	} else {
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
		CHECK(td_log_has(t, "another dcrd (pid"));
	}
}

/* At most DMN_UNAUTH_CONNS_MAX connections wait to authenticate: one
 * more pushes out the oldest (ELIMIT, closed); the others, and the
 * newcomer, can still authenticate. */
static void test_unauth_max(td *t)
{
	int fds[DMN_UNAUTH_CONNS_MAX];
	dcr_buf b, b1;
	dcr_mp_doc *d, *hello1 = NULL;
	bool eof;
	cl_conn *c;
	int n;

	dcr_buf_init(&b);
	dcr_buf_init(&b1);
	for (n = 0; n < (int)DMN_UNAUTH_CONNS_MAX; n++) {
		fds[n] = raw_connect(t->sock);
		CHECK(fds[n] >= 0);
		if (fds[n] < 0)
			break;
		d = raw_frame(fds[n], n == 1 ? &b1 : &b, 5000, &eof);
		CHECK(d && dcr_mp_get(dcr_mp_root(d), "challenge"));
		if (n == 1)
			hello1 = d;
		else
			dcr_mp_doc_free(d);
	}
	/* one more, a real client: it gets through */
	c = td_connect(t, t->anna);
	CHECK(c != NULL);
	cl_close(c);
	if (n == (int)DMN_UNAUTH_CONNS_MAX) {
		/* the oldest was told why and closed */
		d = raw_frame(fds[0], &b, 5000, &eof);
		CHECK(has_code(d, "ELIMIT"));
		CHECK(d && memmem(b.data, b.len, "waiting to authenticate", 23) != NULL);
		dcr_mp_doc_free(d);
		CHECK(raw_closed(fds[0], 5000));
		/* the next one still answers its challenge and is in */
		CHECK(raw_answer(fds[1], hello1, t->ian, false));
		hello1 = NULL;
	}
	dcr_mp_doc_free(hello1);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	CHECK(td_log_has(t, "too many connections waiting to authenticate"));
	dcr_buf_release(&b);
	dcr_buf_release(&b1);
}

/* Another data directory, the same socket: refused, the first daemon
 * keeps its socket. */
static void test_socket_in_use(td *t)
{
	char *exe = td_dcrd_path(), *other = dcr_asprintf("%s/other", t->dir);
	char *cmd = dcr_asprintf("%s --data %s --socket %s 2>>%s", exe, other, t->sock, t->log);
	int st = system(cmd);
	cl_conn *c;

	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	CHECK(td_log_has(t, "is in use by another process"));
	c = td_connect(t, t->anna);
	CHECK(c != NULL);
	cl_close(c);
	free(cmd);
	free(other);
	free(exe);
}

/* ---- the frame-memory attack ---------------------------------------------------- */

#define ATK_AUTHED 16     /* authenticated attackers */
#define ATK_UNAUTHED 8    /* attackers that never authenticate */
/* --frame-budget-mb of the attacked dcrd; $DCR_ATTACK_BUDGET_MB sets
 * another (docs/benchmarks.md), the bound follows it */
#define ATK_BUDGET_MB 32u
/* RSS that is not frames: the connections' read buffers, threads, malloc's
 * slack. Without the budget the attack queues ATK_AUTHED x 4 x 4.1 MB =
 * 262 MB, and unpacking one map of arrays alone costs 98 MB. */
#define ATK_RSS_SLACK_MB 32u

typedef struct atk_conn {
	int fd;
	const dcr_buf *out; /* shared: the same bytes for every attacker */
	size_t sent;
	dcr_buf in; /* everything dcrd answered */
	bool eof;
} atk_conn;

typedef struct atk {
	atk_conn c[ATK_AUTHED + ATK_UNAUTHED];
	int n;
	_Atomic bool done;
	bool timed_out;
} atk;

/* Writes the attack into every connection (non-blocking: dcrd stops
 * reading the ones past its budget) and reads whatever comes back, until
 * dcrd closed them all. */
static void *atk_main(void *arg)
{
	atk *a = arg;
	uint64_t t0 = dcr_mono_ms();

	for (;;) {
		struct pollfd p[ATK_AUTHED + ATK_UNAUTHED];
		int live = 0;
		for (int i = 0; i < a->n; i++) {
			atk_conn *c = &a->c[i];
			p[i].fd = c->eof ? -1 : c->fd;
			p[i].events = POLLIN | (c->sent < c->out->len ? POLLOUT : 0);
			p[i].revents = 0;
			live += !c->eof;
		}
		if (!live)
			break;
		if (dcr_mono_ms() - t0 > 120000) {
			a->timed_out = true;
			break;
		}
		if (poll(p, (nfds_t)a->n, 1000) < 0)
			continue;
		for (int i = 0; i < a->n; i++) {
			atk_conn *c = &a->c[i];
			if (c->eof)
				continue;
			if ((p[i].revents & POLLOUT) && c->sent < c->out->len) {
				ssize_t k = send(c->fd, c->out->data + c->sent, c->out->len - c->sent,
				                 MSG_NOSIGNAL | MSG_DONTWAIT);
				if (k > 0)
					c->sent += (size_t)k;
				else if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
					c->sent = c->out->len; /* closed by dcrd: stop writing */
			}
			if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) {
				uint8_t buf[4096];
				ssize_t k = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
				if (k > 0)
					dcr_buf_append(&c->in, buf, (size_t)k);
				else if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
					c->eof = true;
			}
		}
	}
	a->done = true;
	return NULL;
}

/* The codes of the frames in an attacker's input, in order ("EINVALID
 * EINVALID ... ELIMIT"), skipping the challenge and the auth answer. */
static void atk_codes(const dcr_buf *in, char *out, size_t cap)
{
	size_t at = 0;

	out[0] = 0;
	while (in->len - at >= 4) {
		uint32_t len = dcr_get_be32(in->data + at);
		dcr_mp_doc *d = NULL;
		const char *code;
		size_t code_n;

		if (len > in->len - at - 4)
			break;
		if (proto_frame_parse(in->data + at + 4, len, &d, NULL) == 0 &&
		    dcr_mp_str(dcr_mp_get(dcr_mp_root(d), "code"), &code, &code_n) == 0 &&
		    strlen(out) + code_n + 2 < cap) {
			strncat(out, code, code_n);
			strncat(out, " ", 2);
		}
		dcr_mp_doc_free(d);
		at += 4 + len;
	}
}

static uint64_t proc_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	uint64_t v = 0;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, field, strlen(field)) == 0 && line[strlen(field)] == ':')
			v = strtoull(line + strlen(field) + 1, NULL, 10);
	fclose(f);
	return v;
}

/* ATK_AUTHED connections (any key may authenticate) each queue
 * DMN_INFLIGHT_MAX valid requests of 4.1 MB (the first a submit of a 4 MB
 * event whose body is a map of arrays of small integers, the others an
 * unknown op) and then the 4.2 MB map of arrays of small integers as a
 * frame; ATK_UNAUTHED more send that frame without authenticating.
 * Meanwhile a legitimate client keeps calling. dcrd must answer every
 * valid request (the event refused before it is unpacked, ELIMIT; unknown
 * op), refuse the map of arrays before unpacking it (ELIMIT, more than
 * 4096 values, closed), refuse the unauthenticated
 * frames on their header, keep its peak RSS under its budget plus
 * ATK_RSS_SLACK_MB, and still serve. */
static void test_frame_memory(td *t, unsigned budget_mb)
{
	static atk a;
	dcr_buf pad, args, one, flood, attack;
	dcr_mpw w;
	pthread_t th;
	cl_conn *legit;
	dcr_err err;
	uint64_t hwm0, hwm, calls = 0;
	int fails = 0;

	dcr_buf_init(&pad);
	dcr_buf_init(&args);
	dcr_buf_init(&one);
	dcr_buf_init(&flood);
	dcr_buf_init(&attack);
	/* a valid request of 4.1 MB: an op dcrd does not know, a large bin */
	dcr_buf_reserve(&pad, 4100000);
	memset(pad.data, 0x5a, 4100000);
	pad.len = 4100000;
	dcr_mpw_init(&w, &args);
	dcr_mpw_map(&w, 1);
	dcr_mpw_str(&w, "pad");
	dcr_mpw_bin(&w, pad.data, pad.len);
	/* first the attack as an event (submit): a 4 MB envelope whose body is
	 * a map of arrays of small integers, refused before it is unpacked */
	{
		dcr_buf entry, sargs;
		uint8_t zero[64] = {0};
		dcr_buf_init(&entry);
		dcr_buf_init(&sargs);
		dcr_mpw_init(&w, &entry);
		dcr_mpw_map(&w, 7);
		dcr_mpw_str(&w, "actor");
		dcr_mpw_bin(&w, t->ian_pub, 32);
		dcr_mpw_str(&w, "body");
		dcr_mpw_map(&w, 40);
		for (uint32_t i = 0; i < 40; i++) {
			char k[16];
			snprintf(k, sizeof k, "k%02u", i);
			dcr_mpw_str(&w, k);
			dcr_mpw_array(&w, 100000);
			for (uint32_t j = 0; j < 100000; j++)
				dcr_mpw_uint(&w, j % 128);
		}
		dcr_mpw_str(&w, "room");
		dcr_mpw_str(&w, "0123456789abcdef0123456789abcdef");
		dcr_mpw_str(&w, "seq");
		dcr_mpw_uint(&w, 1);
		dcr_mpw_str(&w, "ts");
		dcr_mpw_uint(&w, dcr_now_ms());
		dcr_mpw_str(&w, "type");
		dcr_mpw_str(&w, "room.stopped");
		dcr_mpw_str(&w, "v");
		dcr_mpw_uint(&w, 1);
		dcr_buf_append(&entry, zero, sizeof zero); /* never checked */
		CHECK(entry.len > 4000000 && entry.len <= DCR_EVENT_BYTES_MAX + 64);
		dcr_mpw_init(&w, &sargs);
		dcr_mpw_map(&w, 2);
		dcr_mpw_str(&w, "entry");
		dcr_mpw_bin(&w, entry.data, entry.len);
		dcr_mpw_str(&w, "room");
		dcr_mpw_str(&w, "0123456789abcdef0123456789abcdef");
		proto_request(&flood, 1, "submit", sargs.data, sargs.len);
		dcr_buf_release(&entry);
		dcr_buf_release(&sargs);
	}
	for (uint64_t i = 2; i <= DMN_INFLIGHT_MAX; i++)
		proto_request(&flood, i, "attack.nop", args.data, args.len);
	/* the map of arrays of small integers: 42 x 100000 values, 4.2 MB */
	dcr_buf_reset(&one);
	dcr_mpw_init(&w, &one);
	dcr_mpw_map(&w, 42);
	for (uint32_t i = 0; i < 42; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%02u", i);
		dcr_mpw_str(&w, k);
		dcr_mpw_array(&w, 100000);
		for (uint32_t j = 0; j < 100000; j++)
			dcr_mpw_uint(&w, j % 128);
	}
	CHECK(one.len > 4200000 && one.len <= DCR_FRAME_BYTES_MAX);
	proto_frame_wrap(&attack, one.data, one.len);
	dcr_buf_append(&flood, attack.data, attack.len);

	legit = td_connect(t, t->anna);
	CHECK(legit != NULL);
	hwm0 = proc_kb(t->pid, "VmHWM");
	CHECK(hwm0 > 0);
	memset(&a, 0, sizeof a);
	for (int i = 0; i < ATK_AUTHED + ATK_UNAUTHED; i++) {
		atk_conn *c = &a.c[a.n];
		dcr_buf_init(&c->in);
		if (i < ATK_AUTHED) {
			c->fd = raw_auth(t, i % 2 ? t->ian : t->carl, false);
			c->out = &flood;
		} else {
			c->fd = raw_connect(t->sock);
			c->out = &attack;
		}
		CHECK(c->fd >= 0);
		if (c->fd < 0)
			break;
		a.n++;
	}
	pthread_create(&th, NULL, atk_main, &a);
	/* the legitimate client, all through the attack */
	do {
		dcr_buf rb;
		dcr_mp_doc *d = NULL;
		dcr_buf_init(&rb);
		if (cl_call(legit, "whoami", NULL, 0, &rb, &d, &err) == 0)
			calls++;
		else
			fails++;
		dcr_mp_doc_free(d);
		dcr_buf_release(&rb);
	} while (!a.done && fails == 0);
	pthread_join(th, NULL);
	CHECK(!a.timed_out);
	CHECK(fails == 0);
	CHECK(calls >= 1);
	hwm = proc_kb(t->pid, "VmHWM");
	fprintf(stderr,
	        "frame-memory attack: %d connections, %llu legitimate calls; dcrd VmHWM %llu kB "
	        "before, %llu kB after (budget %u MiB)\n",
	        a.n, (unsigned long long)calls, (unsigned long long)hwm0,
	        (unsigned long long)hwm, budget_mb);
#ifndef UNDER_SANITIZER
	CHECK(hwm <= hwm0 + ((uint64_t)budget_mb + ATK_RSS_SLACK_MB) * 1024);
#endif
	for (int i = 0; i < a.n; i++) {
		char codes[256], want[256] = "";
		atk_codes(&a.c[i].in, codes, sizeof codes);
		if (i < ATK_AUTHED) {
			strncat(want, "ELIMIT ", sizeof want - strlen(want) - 1); /* submit */
			for (unsigned k = 1; k < DMN_INFLIGHT_MAX; k++)
				strncat(want, "EINVALID ", sizeof want - strlen(want) - 1);
		}
		strncat(want, "ELIMIT ", sizeof want - strlen(want) - 1);
		if (strcmp(codes, want) != 0)
			fprintf(stderr, "attacker %d got \"%s\", expected \"%s\"\n", i, codes, want);
		CHECK(strcmp(codes, want) == 0);
		CHECK(a.c[i].eof);
		close(a.c[i].fd);
		dcr_buf_release(&a.c[i].in);
	}
	CHECK(td_log_has(t, "more than 4096 values"));
	CHECK(td_log_has(t, "ELIMIT: event: envelope: offset"));
	CHECK(td_log_has(t, "exceeds the limit of 256"));
	/* still serving, the legitimate connection and a new one */
	{
		dcr_buf rb;
		dcr_mp_doc *d = NULL;
		cl_conn *c2 = td_connect(t, t->ian);
		dcr_buf_init(&rb);
		CHECK_OK(cl_call(legit, "whoami", NULL, 0, &rb, &d, &err), &err);
		CHECK(c2 != NULL);
		cl_close(c2);
		dcr_mp_doc_free(d);
		dcr_buf_release(&rb);
	}
	cl_close(legit);
	dcr_buf_release(&pad);
	dcr_buf_release(&args);
	dcr_buf_release(&one);
	dcr_buf_release(&flood);
	dcr_buf_release(&attack);
}

/* Two 4.1 MB frames cannot both hold a budget of 8 MiB: two connections
 * each send the start of one (header and 1000 bytes in one write) and
 * stall; whichever came second waits, unread (logged). Then both send the
 * rest and a whoami behind it: the first frame is handled, gives its
 * budget back, the waiter's frame starts, the bytes it had already
 * received are parsed where they were left, and both get both answers in
 * order. Run against --frame-budget-mb 8 --log-level debug. */
static void test_frame_wait(td *t)
{
	dcr_buf pad, args, big, rest, in[2];
	dcr_mpw w;
	int fd[2] = {-1, -1};
	size_t sent[2] = {0, 0}, start = PROTO_HDR_BYTES + 1000;
	uint64_t t0;
	bool complete = false;

	dcr_buf_init(&pad);
	dcr_buf_init(&args);
	dcr_buf_init(&big);
	dcr_buf_init(&rest);
	dcr_buf_reserve(&pad, 4100000);
	memset(pad.data, 0xa5, 4100000);
	pad.len = 4100000;
	dcr_mpw_init(&w, &args);
	dcr_mpw_map(&w, 1);
	dcr_mpw_str(&w, "pad");
	dcr_mpw_bin(&w, pad.data, pad.len);
	proto_request(&big, 1, "attack.nop", args.data, args.len);
	dcr_buf_append(&rest, big.data + start, big.len - start);
	proto_request(&rest, 2, "whoami", NULL, 0);
	dcr_buf_init(&in[0]);
	dcr_buf_init(&in[1]);
	for (int i = 0; i < 2; i++) {
		fd[i] = raw_auth(t, i ? t->ian : t->anna, false);
		CHECK(fd[i] >= 0);
		if (fd[i] < 0)
			goto out;
		raw_send(fd[i], big.data, start);
	}
	CHECK(td_log_wait(t, "waits for the frame budget", 10000));
	t0 = dcr_mono_ms();
	while (!complete && dcr_mono_ms() - t0 < 60000) {
		struct pollfd p[2];
		complete = true;
		for (int i = 0; i < 2; i++) {
			p[i].fd = fd[i];
			p[i].events = POLLIN | (sent[i] < rest.len ? POLLOUT : 0);
			p[i].revents = 0;
		}
		if (poll(p, 2, 1000) < 0)
			continue;
		for (int i = 0; i < 2; i++) {
			size_t at = 0, frames = 0;
			if ((p[i].revents & POLLOUT) && sent[i] < rest.len) {
				ssize_t k = send(fd[i], rest.data + sent[i], rest.len - sent[i],
				                 MSG_NOSIGNAL | MSG_DONTWAIT);
				if (k > 0)
					sent[i] += (size_t)k;
			}
			if (p[i].revents & POLLIN) {
				uint8_t buf[4096];
				ssize_t k = recv(fd[i], buf, sizeof buf, MSG_DONTWAIT);
				if (k > 0)
					dcr_buf_append(&in[i], buf, (size_t)k);
			}
			while (in[i].len - at >= 4 &&
			       in[i].len - at - 4 >= dcr_get_be32(in[i].data + at)) {
				at += 4 + dcr_get_be32(in[i].data + at);
				frames++;
			}
			if (frames < 2)
				complete = false;
		}
	}
	CHECK(complete);
	for (int i = 0; i < 2; i++) {
		char codes[64];
		dcr_mp_doc *d = NULL;
		uint32_t len0 = in[i].len >= 4 ? dcr_get_be32(in[i].data) : 0;
		uint64_t id = 0;
		bool ok = false;
		atk_codes(&in[i], codes, sizeof codes);
		CHECK(strcmp(codes, "EINVALID ") == 0); /* then the whoami: no code */
		if (in[i].len >= 8 + len0 &&
		    proto_frame_parse(in[i].data + 8 + len0, dcr_get_be32(in[i].data + 4 + len0), &d,
		                      NULL) == 0) {
			dcr_mp_u64(dcr_mp_get(dcr_mp_root(d), "id"), &id);
			dcr_mp_bool(dcr_mp_get(dcr_mp_root(d), "ok"), &ok);
		}
		CHECK(id == 2 && ok);
		dcr_mp_doc_free(d);
	}
out:
	for (int i = 0; i < 2; i++) {
		if (fd[i] >= 0)
			close(fd[i]);
		dcr_buf_release(&in[i]);
	}
	dcr_buf_release(&pad);
	dcr_buf_release(&args);
	dcr_buf_release(&big);
	dcr_buf_release(&rest);
}

static void test_help(void)
{
	char *exe = td_dcrd_path();
	char *cmd = dcr_asprintf("%s --help", exe);
	FILE *f = popen(cmd, "r");
	char buf[4096];
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;

	buf[n] = 0;
	CHECK(f && pclose(f) == 0);
	CHECK(strstr(buf, "--data") && strstr(buf, "--socket") &&
	      strstr(buf, "--idle-timeout-ms") && strstr(buf, "--log-level"));
	free(cmd);
	free(exe);
}

int main(void)
{
	static const char *const args[] = {"--idle-timeout-ms", "500", NULL};
	static td t; /* the atexit cleanup reads it after main returns */

	td_init(&t);
	test_help();
	if (td_start(&t, args) < 0)
		return 1;
	test_auth(&t);
	test_oversize(&t);
	test_garbage(&t);
	test_inflight_resume(&t);
	test_idle(&t);
	test_second_daemon(&t);
	test_socket_in_use(&t);
	CHECK(td_stop(&t, SIGTERM) == 0);
	CHECK(td_log_has(&t, "clean shutdown"));
	/* The limit of connections authenticating, against a dcrd with the
	 * default idle timeout. */
	if (td_start(&t, NULL) < 0)
		return 1;
	test_unauth_max(&t);
	/* Still serving after all of that. */
	{
		cl_conn *c = td_connect(&t, t.ian);
		CHECK(c != NULL);
		cl_close(c);
	}
	CHECK(td_stop(&t, SIGTERM) == 0);
	CHECK(td_log_has(&t, "clean shutdown"));
	{
		const char *env = getenv("DCR_ATTACK_BUDGET_MB");
		unsigned mb = env && *env ? (unsigned)strtoul(env, NULL, 10) : ATK_BUDGET_MB;
		char mbs[16];
		const char *atk_args[] = {"--frame-budget-mb", mbs, NULL};
		snprintf(mbs, sizeof mbs, "%u", mb);
		if (td_start(&t, atk_args) < 0)
			return 1;
		test_frame_memory(&t, mb);
		CHECK(td_stop(&t, SIGTERM) == 0);
		CHECK(td_log_has(&t, "frame budget: peak"));
	}
	{
		static const char *const wait_args[] = {"--frame-budget-mb", "8", "--log-level",
		                                        "debug", NULL};
		if (td_start(&t, wait_args) < 0)
			return 1;
		test_frame_wait(&t);
		CHECK(td_stop(&t, SIGTERM) == 0);
		CHECK(td_log_has(&t, "frames waited for it"));
	}
	if (t_failures) {
		char *log = td_log_text(&t);
		fprintf(stderr, "---- dcrd log ----\n%s", log);
		free(log);
	}
	td_cleanup();
	return t_failures ? 1 : 0;
}
