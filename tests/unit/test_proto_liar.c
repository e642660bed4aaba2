/* test_proto_liar.c: the uploader signs only what it sent, whatever the
 * daemon says.
 *
 * A fake dcrd runs in a thread of this test, on a unix socket in a temp
 * dir. It speaks the real protocol (docs/protocol.md) with the project's
 * own codec: it sends the challenge, verifies the client's auth signature
 * with dcr_verify, and answers upload.begin, upload.chunk, upload.end, size
 * and submit, logging every op it was asked for. Each case runs
 * cl_provision against it once:
 *   (a) upload.end reports a wrong sha256: EINTEGRITY naming the dataset,
 *       the file and both hashes, and no submit is ever sent;
 *   (b) the right sha256 but a wrong size: the same, naming both sizes;
 *   (c) honest answers (the control): a submit arrives whose event verifies,
 *       is signed by the client's key and carries the sha256 of the bytes
 *       the test generated (computed here independently);
 *   (d) the daemon closes the connection after the second chunk, and
 *   (e) instead of answering upload.end: a prompt transport error naming
 *       the dataset, no submit.
 * The file is 3.5 chunks, so the client's window of chunks in flight is
 * exercised. alarm() turns a hang into a failure (the handler removes the
 * socket dir); the fake's socket has a receive timeout and its accept a
 * poll deadline, so its thread always ends and is joined. */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../proto/proto.h"
#include "../../room/room.h"

#include "test.h"

#ifndef GUARD_S
#define GUARD_S 60 /* whole test; a hang fails instead of blocking ctest */
#endif
#define FAKE_WAIT_MS   5000 /* the fake's accept and read deadlines */
#define CASE_MS_MAX    5000 /* one cl_provision against the fake */
#define FAKE_OPS_MAX   64
#define FAKE_UPLOAD_ID 42
#define FAKE_SIZE      7 /* the room's size the fake reports */
#define FAKE_ROWS      3
#define FAKE_BLOB      "b0c1d2e3f4a5b6c7d8e9fa0b1c2d3e4f"
#define DATA_BYTES     (3 * DCR_CHUNK_BYTES + DCR_CHUNK_BYTES / 2)

enum fake_mode {
	FAKE_HONEST,
	FAKE_LIE_SHA256,
	FAKE_LIE_SIZE,
	FAKE_CLOSE_MID_UPLOAD,
	FAKE_CLOSE_AT_END,
};

typedef struct fake {
	int lfd;
	enum fake_mode mode;
	uint8_t pub[DCR_ED25519_PUB_BYTES];
	uint8_t client_key[DCR_ED25519_PUB_BYTES]; /* the key that authenticated */
	char room_hex[ES_ROOM_HEX_BYTES];
	uint8_t stats_sha256[32];
	/* what happened, read by the test after the join */
	bool accepted, auth_ok;
	char ops[FAKE_OPS_MAX][24];
	size_t nops;
	uint64_t bytes, chunks;
	uint8_t got_sha256[32]; /* of the chunk bytes received */
	dcr_buf entry;          /* the submitted entry */
	bool submitted;
	char fail[256]; /* the fake's own complaint about the client, if any */
} fake;

/* ---- alarm guard ------------------------------------------------------------ */

static char g_dir[64];
static char g_sock[128];

static void on_alarm(int sig)
{
	static const char msg[] = "test_proto_liar: timed out (a hang), cleaning up\n";
	ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);

	(void)sig;
	(void)w;
	unlink(g_sock);
	rmdir(g_dir);
	_exit(1);
}

/* ---- the fake daemon ----------------------------------------------------------- */

static void fake_fail(fake *f, const char *what)
{
	size_t n = strlen(what);

	if (f->fail[0])
		return; /* keep the first complaint */
	if (n >= sizeof f->fail)
		n = sizeof f->fail - 1;
	memcpy(f->fail, what, n);
	f->fail[n] = '\0';
}

/* 1 read, 0 EOF (or a timeout or error: the client is gone either way). */
static int fake_read_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;

	while (n > 0) {
		ssize_t r = read(fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		b += r;
		n -= (size_t)r;
	}
	return 1;
}

/* Reads one frame into buf and parses it: 1, or 0 at EOF; a bad frame is
 * a complaint and ends the connection like EOF. */
static int fake_read_frame(fake *f, int fd, dcr_buf *buf, dcr_mp_doc **doc)
{
	uint8_t hdr[PROTO_HDR_BYTES];
	uint32_t n;
	dcr_err err;

	*doc = NULL;
	dcr_buf_reset(buf);
	if (!fake_read_all(fd, hdr, sizeof hdr))
		return 0;
	n = dcr_get_be32(hdr);
	if (n > DCR_FRAME_BYTES_MAX) {
		fake_fail(f, "client sent an oversize frame");
		return 0;
	}
	dcr_buf_reserve(buf, n);
	if (!fake_read_all(fd, buf->data, n)) {
		fake_fail(f, "client sent a truncated frame");
		return 0;
	}
	buf->len = n;
	if (proto_frame_parse(buf->data, buf->len, doc, &err) < 0) {
		fake_fail(f, err.msg);
		return 0;
	}
	return 1;
}

static void fake_send_map(int fd, proto_map *m)
{
	dcr_buf body, frame;
	size_t off = 0;

	dcr_buf_init(&body);
	dcr_buf_init(&frame);
	proto_map_encode(m, &body);
	proto_map_release(m);
	proto_frame_wrap(&frame, body.data, body.len);
	while (off < frame.len) {
		ssize_t w = send(fd, frame.data + off, frame.len - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break; /* the client is gone; the test sees it from its side */
		off += (size_t)w;
	}
	dcr_buf_release(&body);
	dcr_buf_release(&frame);
}

/* Starts a {id, ok: true, ...} response; the caller adds results. */
static void fake_ok(proto_map *m, uint64_t id)
{
	proto_map_init(m);
	dcr_mpw_uint(proto_map_key(m, "id"), id);
	dcr_mpw_bool(proto_map_key(m, "ok"), true);
}

static void fake_error(int fd, uint64_t id, const char *code, const char *msg)
{
	proto_map m;

	proto_map_init(&m);
	dcr_mpw_str(proto_map_key(&m, "code"), code);
	dcr_mpw_str(proto_map_key(&m, "error"), msg);
	dcr_mpw_uint(proto_map_key(&m, "id"), id);
	dcr_mpw_bool(proto_map_key(&m, "ok"), false);
	fake_send_map(fd, &m);
}

/* Challenge, response, {ok, v}: 1 if the client authenticated. */
static int fake_auth(fake *f, int fd, dcr_buf *buf)
{
	uint8_t challenge[32], msg[64], key[32], sig[DCR_ED25519_SIG_BYTES];
	dcr_mp_doc *d = NULL;
	proto_map m;
	dcr_err err;
	int ok = 0;

	dcr_random(challenge, sizeof challenge);
	proto_map_init(&m);
	dcr_mpw_bin(proto_map_key(&m, "challenge"), challenge, sizeof challenge);
	dcr_mpw_bin(proto_map_key(&m, "daemon_key"), f->pub, sizeof f->pub);
	dcr_mpw_uint(proto_map_key(&m, "v"), 1);
	fake_send_map(fd, &m);
	if (!fake_read_frame(f, fd, buf, &d))
		goto out;
	if (buf->len > DMN_AUTH_FRAME_BYTES_MAX || dcr_mp_len(dcr_mp_root(d)) != 2 ||
	    dcr_mp_get_binn(dcr_mp_root(d), "key", key, sizeof key, &err) < 0 ||
	    dcr_mp_get_binn(dcr_mp_root(d), "sig", sig, sizeof sig, &err) < 0) {
		fake_fail(f, "auth frame is not {key: bin 32, sig: bin 64}");
		goto out;
	}
	memcpy(msg, challenge, 32);
	memcpy(msg + 32, f->pub, 32);
	if (dcr_verify(key, DCR_DOMAIN_AUTH, msg, sizeof msg, sig) != 0) {
		fake_fail(f, "the client's auth signature does not verify");
		fake_error(fd, 0, "ESIG", "bad signature");
		goto out;
	}
	memcpy(f->client_key, key, sizeof key);
	proto_map_init(&m);
	dcr_mpw_bool(proto_map_key(&m, "ok"), true);
	dcr_mpw_uint(proto_map_key(&m, "v"), 1);
	fake_send_map(fd, &m);
	ok = 1;
out:
	dcr_mp_doc_free(d);
	return ok;
}

/* Serves one request; 0 when the fake hangs up (by mode, or on a
 * complaint). */
static int fake_serve(fake *f, int fd, const dcr_mpv *req, dcr_sha256_ctx *h)
{
	const dcr_mpv *args = dcr_mp_get(req, "args");
	const char *op, *s;
	size_t op_n, n;
	uint64_t id, up;
	proto_map m;
	dcr_err err;

	if (dcr_mp_get_u64(req, "id", &id, &err) < 0 ||
	    dcr_mp_get_str(req, "op", &op, &op_n, &err) < 0) {
		fake_fail(f, "request without id or op");
		return 0;
	}
	if (f->nops < FAKE_OPS_MAX)
		snprintf(f->ops[f->nops++], sizeof f->ops[0], "%.*s", (int)op_n, op);
#define IS(name) (op_n == strlen(name) && memcmp(op, name, op_n) == 0)
	if (IS("upload.begin")) {
		if (dcr_mp_get_str(args, "room", &s, &n, &err) < 0 || n != 32 ||
		    memcmp(s, f->room_hex, 32) != 0) {
			fake_fail(f, "upload.begin: not our room");
			return 0;
		}
		fake_ok(&m, id);
		dcr_mpw_uint(proto_map_key(&m, "upload"), FAKE_UPLOAD_ID);
		fake_send_map(fd, &m);
		return 1;
	}
	if (IS("upload.chunk")) {
		const uint8_t *data;
		if (dcr_mp_get_u64(args, "upload", &up, &err) < 0 || up != FAKE_UPLOAD_ID ||
		    dcr_mp_get_bin(args, "data", &data, &n, &err) < 0 || n > DCR_CHUNK_BYTES) {
			fake_fail(f, "upload.chunk: bad args");
			return 0;
		}
		dcr_sha256_update(h, data, n);
		f->bytes += n;
		f->chunks++;
		if (f->mode == FAKE_CLOSE_MID_UPLOAD && f->chunks == 2)
			return 0; /* hang up without answering */
		fake_ok(&m, id);
		fake_send_map(fd, &m);
		return 1;
	}
	if (IS("upload.end")) {
		uint8_t sha[32];
		uint64_t bytes = f->bytes;
		if (dcr_mp_get_u64(args, "upload", &up, &err) < 0 || up != FAKE_UPLOAD_ID) {
			fake_fail(f, "upload.end: bad args");
			return 0;
		}
		if (f->mode == FAKE_CLOSE_AT_END)
			return 0;
		dcr_sha256_final(h, f->got_sha256);
		memcpy(sha, f->got_sha256, sizeof sha);
		if (f->mode == FAKE_LIE_SHA256)
			sha[31] ^= 0x01;
		if (f->mode == FAKE_LIE_SIZE)
			bytes += 1;
		fake_ok(&m, id);
		dcr_mpw_str(proto_map_key(&m, "blob"), FAKE_BLOB);
		dcr_mpw_uint(proto_map_key(&m, "bytes"), bytes);
		dcr_mpw_uint(proto_map_key(&m, "rows"), FAKE_ROWS);
		dcr_mpw_bin(proto_map_key(&m, "sha256"), sha, sizeof sha);
		dcr_mpw_bin(proto_map_key(&m, "stats_sha256"), f->stats_sha256,
		            sizeof f->stats_sha256);
		fake_send_map(fd, &m);
		return 1;
	}
	if (IS("size")) {
		fake_ok(&m, id);
		dcr_mpw_uint(proto_map_key(&m, "size"), FAKE_SIZE);
		fake_send_map(fd, &m);
		return 1;
	}
	if (IS("submit")) {
		const uint8_t *e;
		if (dcr_mp_get_bin(args, "entry", &e, &n, &err) < 0) {
			fake_fail(f, "submit without entry");
			return 0;
		}
		dcr_buf_reset(&f->entry);
		dcr_buf_append(&f->entry, e, n);
		f->submitted = true;
		fake_ok(&m, id);
		dcr_mpw_uint(proto_map_key(&m, "seq"), FAKE_SIZE);
		fake_send_map(fd, &m);
		return 1;
	}
	if (IS("upload.abort")) {
		fake_ok(&m, id);
		fake_send_map(fd, &m);
		return 1;
	}
#undef IS
	fake_error(fd, id, "ENOTFOUND", "the fake daemon does not know this op");
	return 1;
}

static void *fake_main(void *arg)
{
	fake *f = arg;
	struct pollfd pfd = {.fd = f->lfd, .events = POLLIN};
	struct timeval tv = {FAKE_WAIT_MS / 1000, 0};
	dcr_sha256_ctx *h = NULL;
	dcr_buf buf;
	int fd = -1;

	dcr_buf_init(&buf);
	if (poll(&pfd, 1, FAKE_WAIT_MS) != 1) {
		fake_fail(f, "the client never connected");
		goto out;
	}
	fd = accept(f->lfd, NULL, NULL);
	if (fd < 0) {
		fake_fail(f, "accept failed");
		goto out;
	}
	f->accepted = true;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (!fake_auth(f, fd, &buf))
		goto out;
	f->auth_ok = true;
	h = dcr_sha256_new();
	for (;;) {
		dcr_mp_doc *d = NULL;
		int more;
		if (!fake_read_frame(f, fd, &buf, &d))
			break; /* the client hung up */
		more = fake_serve(f, fd, dcr_mp_root(d), h);
		dcr_mp_doc_free(d);
		if (!more)
			break;
	}
out:
	if (fd >= 0)
		close(fd);
	dcr_sha256_free(h);
	dcr_buf_release(&buf);
	return NULL;
}

/* ---- the client side ------------------------------------------------------------- */

typedef struct src {
	const uint8_t *p;
	size_t n, off;
} src;

/* Hands out odd-sized pieces, so cl_provision has to fill its chunks. */
static int src_read(void *ctx, void *buf, size_t cap)
{
	src *s = ctx;
	size_t k = s->n - s->off;

	if (k > cap)
		k = cap;
	if (k > 300007)
		k = 300007;
	memcpy(buf, s->p + s->off, k);
	s->off += k;
	return (int)k;
}

static bool has(const char *msg, const char *needle)
{
	if (strstr(msg, needle))
		return true;
	fprintf(stderr, "  message lacks \"%s\": %s\n", needle, msg);
	return false;
}

/* Whether the fake's op log is exactly begin, chunks, then the given tail. */
static bool ops_are(const fake *f, uint64_t chunks, const char *const *tail, size_t tail_n)
{
	size_t i, k = 0;

	if (f->nops != 1 + chunks + tail_n || strcmp(f->ops[k++], "upload.begin") != 0)
		goto bad;
	for (i = 0; i < chunks; i++)
		if (strcmp(f->ops[k++], "upload.chunk") != 0)
			goto bad;
	for (i = 0; i < tail_n; i++)
		if (strcmp(f->ops[k++], tail[i]) != 0)
			goto bad;
	return true;
bad:
	fprintf(stderr, "  ops the fake saw:");
	for (i = 0; i < f->nops; i++)
		fprintf(stderr, " %s", f->ops[i]);
	fprintf(stderr, "\n");
	return false;
}

/* Runs one cl_provision against a fake in the given mode; the fake's
 * record is in *f after the join (release f->entry). */
static int run_case(int lfd, enum fake_mode mode, const dcr_key *daemon, const dcr_key *me,
                    const uint8_t room[ES_ROOM_ID_BYTES], const uint8_t *data, size_t n, fake *f,
                    dcr_err *err, uint64_t *ms)
{
	pthread_t th;
	cl_conn *c = NULL;
	src s = {data, n, 0};
	uint64_t t0;
	int rc;

	memset(f, 0, sizeof *f);
	f->lfd = lfd;
	f->mode = mode;
	dcr_key_public(daemon, f->pub);
	es_room_format(room, f->room_hex);
	dcr_random(f->stats_sha256, sizeof f->stats_sha256);
	dcr_buf_init(&f->entry);
	memset(err, 0, sizeof *err);
	if (pthread_create(&th, NULL, fake_main, f) != 0) {
		fprintf(stderr, "pthread_create failed\n");
		return -1;
	}
	t0 = dcr_mono_ms();
	rc = cl_connect(g_sock, me, &c, err);
	if (rc == 0) {
		CHECK(memcmp(cl_daemon_key(c), f->pub, 32) == 0);
		rc = cl_provision(c, room, "sales", "sales.csv", n, src_read, &s, NULL, NULL, err);
	} else {
		fprintf(stderr, "  cl_connect: %s\n", err->msg);
		t_failures++;
	}
	*ms = dcr_mono_ms() - t0;
	cl_close(c); /* the fake reads EOF and ends */
	pthread_join(th, NULL);
	CHECK(f->accepted);
	CHECK(f->auth_ok); /* the fake verified the client's auth signature */
	{
		uint8_t pub[DCR_ED25519_PUB_BYTES];
		dcr_key_public(me, pub);
		CHECK(memcmp(f->client_key, pub, sizeof pub) == 0);
	}
	if (f->fail[0]) {
		fprintf(stderr, "  the fake daemon complains: %s\n", f->fail);
		t_failures++;
	}
	return rc;
}

static void check_event(const fake *f, const dcr_key *me, const uint8_t room[ES_ROOM_ID_BYTES],
                        const uint8_t want_sha[32], size_t n)
{
	uint8_t pub[32], sha[32], stats[32];
	es_event ev;
	dcr_err err;
	const char *s;
	size_t sn;
	uint64_t v;

	memset(&ev, 0, sizeof ev);
	if (es_event_decode(f->entry.data, f->entry.len, &ev, &err) < 0) {
		fprintf(stderr, "  submitted entry does not decode: %s\n", err.msg);
		t_failures++;
		return;
	}
	dcr_key_public(me, pub);
	CHECK(es_event_verify(&ev, &err) == 0);
	CHECK(memcmp(ev.actor, pub, 32) == 0);
	CHECK(memcmp(ev.room, room, ES_ROOM_ID_BYTES) == 0);
	CHECK(ev.seq == FAKE_SIZE);
	CHECK(strcmp(ev.type, RM_EV_PROVISIONED) == 0);
	CHECK(dcr_mp_len(ev.body) == 7);
	/* the hash the client computed, which is also the true one */
	CHECK(dcr_mp_get_binn(ev.body, "sha256", sha, 32, &err) == 0);
	CHECK(memcmp(sha, want_sha, 32) == 0);
	CHECK(dcr_mp_get_u64(ev.body, "bytes", &v, &err) == 0 && v == n);
	CHECK(dcr_mp_get_u64(ev.body, "rows", &v, &err) == 0 && v == FAKE_ROWS);
	CHECK(dcr_mp_get_binn(ev.body, "stats_sha256", stats, 32, &err) == 0);
	CHECK(memcmp(stats, f->stats_sha256, 32) == 0);
	CHECK(dcr_mp_get_str(ev.body, "blob", &s, &sn, &err) == 0 && sn == strlen(FAKE_BLOB) &&
	      memcmp(s, FAKE_BLOB, sn) == 0);
	CHECK(dcr_mp_get_str(ev.body, "dataset", &s, &sn, &err) == 0 && sn == 5 &&
	      memcmp(s, "sales", 5) == 0);
	CHECK(dcr_mp_get_str(ev.body, "file", &s, &sn, &err) == 0 && sn == 9 &&
	      memcmp(s, "sales.csv", 9) == 0);
	es_event_release(&ev);
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	if (strlen(path) >= sizeof sa.sun_path)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int main(void)
{
	static const char *const refused[] = {"upload.end"};
	static const char *const honest[] = {"upload.end", "size", "submit"};
	static const char *const end_only[] = {"upload.end"};
	dcr_key *daemon = NULL, *me = NULL;
	uint8_t room[ES_ROOM_ID_BYTES], want[32];
	char want_hex[65], lie_hex[65], buf[64];
	uint8_t *data = NULL;
	dcr_err err;
	uint64_t ms;
	fake f;
	size_t i;
	int lfd = -1, rc;

	signal(SIGPIPE, SIG_IGN);
	snprintf(g_dir, sizeof g_dir, "/tmp/dcr-liar-XXXXXX");
	if (!mkdtemp(g_dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(g_sock, sizeof g_sock, "%s/dcr.sock", g_dir);
	signal(SIGALRM, on_alarm);
	alarm(GUARD_S);
	lfd = listen_on(g_sock);
	if (lfd < 0) {
		perror("listen");
		t_failures++;
		goto out;
	}
	if (dcr_key_generate(&daemon) < 0 || dcr_key_generate(&me) < 0) {
		fprintf(stderr, "key generation failed\n");
		t_failures++;
		goto out;
	}
	es_room_new(room);
	/* a CSV-looking file of 3.5 chunks */
	data = dcr_malloc(DATA_BYTES);
	for (i = 0; i < DATA_BYTES; i++)
		data[i] = (uint8_t)(i % 61 == 60 ? '\n' : '0' + (i * 7 + i / 61) % 10);
	dcr_sha256(data, DATA_BYTES, want);
	dcr_hex_encode(want, 32, want_hex);
	want[31] ^= 0x01;
	dcr_hex_encode(want, 32, lie_hex);
	want[31] ^= 0x01;

	/* (a) a wrong sha256: refused, named, nothing signed */
	rc = run_case(lfd, FAKE_LIE_SHA256, daemon, me, room, data, DATA_BYTES, &f, &err, &ms);
	fprintf(stderr, "(a) wrong sha256: rc %d in %llu ms: %s\n", rc, (unsigned long long)ms,
	        err.msg);
	CHECK(rc == DCR_EINTEGRITY && err.code == DCR_EINTEGRITY);
	CHECK(has(err.msg, "dataset sales"));
	CHECK(has(err.msg, "sales.csv"));
	CHECK(has(err.msg, "sha256"));
	CHECK(has(err.msg, "differs"));
	CHECK(has(err.msg, want_hex)); /* what was sent */
	CHECK(has(err.msg, lie_hex));  /* what the daemon claims */
	CHECK(has(err.msg, "not signing"));
	CHECK(!f.submitted);
	CHECK(ops_are(&f, 4, refused, 1));
	CHECK(memcmp(f.got_sha256, want, 32) == 0);
	dcr_buf_release(&f.entry);

	/* (b) the right sha256, a wrong size */
	rc = run_case(lfd, FAKE_LIE_SIZE, daemon, me, room, data, DATA_BYTES, &f, &err, &ms);
	fprintf(stderr, "(b) wrong size: rc %d in %llu ms: %s\n", rc, (unsigned long long)ms,
	        err.msg);
	CHECK(rc == DCR_EINTEGRITY && err.code == DCR_EINTEGRITY);
	CHECK(has(err.msg, "dataset sales"));
	CHECK(has(err.msg, "sales.csv"));
	CHECK(has(err.msg, "size"));
	CHECK(has(err.msg, "differs"));
	snprintf(buf, sizeof buf, "%llu bytes sent", (unsigned long long)DATA_BYTES);
	CHECK(has(err.msg, buf));
	snprintf(buf, sizeof buf, "%llu", (unsigned long long)DATA_BYTES + 1);
	CHECK(has(err.msg, buf));
	CHECK(has(err.msg, "not signing"));
	CHECK(!f.submitted);
	CHECK(ops_are(&f, 4, refused, 1));
	dcr_buf_release(&f.entry);

	/* (c) honest: the signed event carries the client's own hash */
	rc = run_case(lfd, FAKE_HONEST, daemon, me, room, data, DATA_BYTES, &f, &err, &ms);
	fprintf(stderr, "(c) honest: rc %d in %llu ms%s%s\n", rc, (unsigned long long)ms,
	        rc ? ": " : "", rc ? err.msg : "");
	CHECK(rc == 0);
	CHECK(f.submitted);
	CHECK(ops_are(&f, 4, honest, 3));
	CHECK(f.bytes == DATA_BYTES && memcmp(f.got_sha256, want, 32) == 0);
	if (f.submitted)
		check_event(&f, me, room, want, DATA_BYTES);
	dcr_buf_release(&f.entry);

	/* (d) the daemon hangs up after the second chunk */
	rc =
	    run_case(lfd, FAKE_CLOSE_MID_UPLOAD, daemon, me, room, data, DATA_BYTES, &f, &err, &ms);
	fprintf(stderr, "(d) close mid-upload: rc %d in %llu ms: %s\n", rc, (unsigned long long)ms,
	        err.msg);
	CHECK(rc == -EPIPE || rc == -ECONNRESET);
	CHECK(err.code == rc);
	CHECK(has(err.msg, "dataset sales"));
	CHECK(has(err.msg, "dcrd"));
	CHECK(ms < CASE_MS_MAX);
	CHECK(!f.submitted);
	CHECK(f.chunks == 2);
	dcr_buf_release(&f.entry);

	/* (e) the daemon hangs up instead of answering upload.end */
	rc = run_case(lfd, FAKE_CLOSE_AT_END, daemon, me, room, data, DATA_BYTES, &f, &err, &ms);
	fprintf(stderr, "(e) close at upload.end: rc %d in %llu ms: %s\n", rc,
	        (unsigned long long)ms, err.msg);
	CHECK(rc == -EPIPE || rc == -ECONNRESET);
	CHECK(err.code == rc);
	CHECK(has(err.msg, "dataset sales"));
	CHECK(has(err.msg, "dcrd closed the connection"));
	CHECK(ms < CASE_MS_MAX);
	CHECK(!f.submitted);
	CHECK(ops_are(&f, 4, end_only, 1));
	dcr_buf_release(&f.entry);
out:
	alarm(0);
	if (lfd >= 0)
		close(lfd);
	unlink(g_sock);
	rmdir(g_dir);
	free(data);
	dcr_key_free(daemon);
	dcr_key_free(me);
	if (t_failures)
		fprintf(stderr, "test_proto_liar: %d failure(s)\n", t_failures);
	return t_failures ? 1 : 0;
}
