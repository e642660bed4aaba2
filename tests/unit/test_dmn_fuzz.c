/* test_dmn_fuzz.c: hostile requests against a live dcrd (deterministic,
 * seeded). Two kinds:
 *   - well-formed frames whose args are random: every op, random subsets of
 *     every argument name with values of random types (uints near the
 *     limits, strings that are room ids or not, random bins, nested maps,
 *     nil), including real room ids and upload ids so that handlers get
 *     past their first checks;
 *   - valid requests with random byte flips, truncations and insertions.
 * Every request must get an answer with its id (ok or an error) or, for
 * a broken frame, an error and a close; the daemon must keep serving and,
 * under ASan, never touch memory it should not. The room's state must be
 * unchanged by all of it (no event appended). */
#include <sys/socket.h>

#include "test_dmn_common.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static const char *const ops[] = {
    "checkpoint",  "consistency",  "data.read",    "wait",         "datasets",   "events", "proof",
    "result.open", "result.read",  "room.test",    "rooms",        "run.status", "size",   "stats",
    "submit",      "upload.abort", "upload.begin", "upload.chunk", "upload.end", "whoami", "nope",
};

static const char *const keys[] = {"computation", "data", "dataset", "entry",  "file",
                                   "from",        "len",  "max",     "offset", "room",
                                   "run",         "seq",  "size",    "upload"};

static char room_hex[ES_ROOM_HEX_BYTES];

static void rand_value(dcr_mpw *w, int depth)
{
	switch (rnd() % 12) {
	case 0:
		dcr_mpw_uint(w, rnd() % 4);
		break;
	case 1:
		dcr_mpw_uint(w, UINT64_MAX - rnd() % 3);
		break;
	case 2:
		dcr_mpw_uint(w, (uint64_t)1 << (rnd() % 64));
		break;
	case 3:
		dcr_mpw_int(w, -(int64_t)(rnd() % 1000) - 1);
		break;
	case 4:
		dcr_mpw_str(w, room_hex);
		break;
	case 5:
		dcr_mpw_str(w, rnd() % 2 ? "overlap" : "bank");
		break;
	case 6: {
		char s[80];
		size_t n = rnd() % sizeof s;
		for (size_t i = 0; i < n; i++)
			s[i] = (char)(rnd() % 2 ? 'a' + rnd() % 26 : 1 + rnd() % 255);
		dcr_mpw_strn(w, s, n);
		break;
	}
	case 7: {
		uint8_t b[200];
		size_t n = rnd() % sizeof b;
		for (size_t i = 0; i < n; i++)
			b[i] = (uint8_t)rnd();
		dcr_mpw_bin(w, b, n);
		break;
	}
	case 8:
		dcr_mpw_nil(w);
		break;
	case 9:
		dcr_mpw_bool(w, rnd() % 2);
		break;
	case 10:
		if (depth < 3) {
			dcr_mpw_array(w, 2);
			rand_value(w, depth + 1);
			rand_value(w, depth + 1);
		} else {
			dcr_mpw_double(w, 1.5);
		}
		break;
	default:
		dcr_mpw_str(w, "00000000000000000000000000000000");
		break;
	}
}

/* A request with random args; returns its frame. */
static void rand_request(dcr_buf *frame, uint64_t id)
{
	proto_map m;
	dcr_buf args;
	bool used[sizeof keys / sizeof keys[0]] = {0};
	size_t k = rnd() % 6;

	proto_map_init(&m);
	dcr_buf_init(&args);
	for (size_t i = 0; i < k; i++) {
		size_t j = rnd() % (sizeof keys / sizeof keys[0]);
		if (used[j])
			continue;
		used[j] = true;
		rand_value(proto_map_key(&m, keys[j]), 0);
	}
	proto_map_encode(&m, &args);
	proto_map_release(&m);
	proto_request(frame, id, ops[rnd() % (sizeof ops / sizeof ops[0])],
	              rnd() % 8 ? args.data : NULL, args.len);
	dcr_buf_release(&args);
}

static int raw_auth(td *t, const dcr_key *k)
{
	cl_conn *dummy = NULL;
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	uint8_t hdr[4], body[256], msg[64], sig[64], pub[32];
	dcr_mp_doc *d = NULL;
	dcr_buf b, f;
	dcr_mpw w;
	uint32_t n;

	(void)dummy;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, t->sock, strlen(t->sock) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || read(fd, hdr, 4) != 4)
		goto fail;
	n = dcr_get_be32(hdr);
	if (n > sizeof body || read(fd, body, n) != (ssize_t)n ||
	    proto_frame_parse(body, n, &d, NULL) < 0 ||
	    dcr_mp_get_binn(dcr_mp_root(d), "challenge", msg, 32, NULL) < 0 ||
	    dcr_mp_get_binn(dcr_mp_root(d), "daemon_key", msg + 32, 32, NULL) < 0)
		goto fail;
	dcr_mp_doc_free(d);
	d = NULL;
	dcr_sign(k, DCR_DOMAIN_AUTH, msg, 64, sig);
	dcr_key_public(k, pub);
	dcr_buf_init(&b);
	dcr_buf_init(&f);
	dcr_mpw_init(&w, &b);
	dcr_mpw_map(&w, 2);
	dcr_mpw_str(&w, "key");
	dcr_mpw_bin(&w, pub, 32);
	dcr_mpw_str(&w, "sig");
	dcr_mpw_bin(&w, sig, 64);
	proto_frame_wrap(&f, b.data, b.len);
	if (send(fd, f.data, f.len, MSG_NOSIGNAL) != (ssize_t)f.len) {
		dcr_buf_release(&b);
		dcr_buf_release(&f);
		goto fail;
	}
	dcr_buf_release(&b);
	dcr_buf_release(&f);
	if (read(fd, hdr, 4) != 4)
		goto fail;
	n = dcr_get_be32(hdr);
	if (n > sizeof body || read(fd, body, n) != (ssize_t)n)
		goto fail;
	return fd;
fail:
	dcr_mp_doc_free(d);
	close(fd);
	return -1;
}

/* Reads one response; returns 1 with the id, 0 on EOF, -1 on a timeout or
 * garbage. */
static int read_resp(int fd, uint64_t *id, bool *ok)
{
	uint8_t hdr[4];
	size_t have = 0;
	uint32_t n;
	dcr_buf b;
	dcr_mp_doc *d = NULL;
	int rc = -1;

	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t r;
		if (poll(&p, 1, 20000) <= 0)
			return -1;
		r = read(fd, hdr + have, 4 - have);
		if (r <= 0)
			return 0;
		have += (size_t)r;
		if (have == 4)
			break;
	}
	n = dcr_get_be32(hdr);
	if (n > DCR_FRAME_BYTES_MAX)
		return -1;
	dcr_buf_init(&b);
	dcr_buf_reserve(&b, n);
	for (have = 0; have < n;) {
		ssize_t r = read(fd, b.data + have, n - have);
		if (r <= 0)
			goto out;
		have += (size_t)r;
	}
	b.len = n;
	if (proto_frame_parse(b.data, b.len, &d, NULL) == 0 &&
	    dcr_mp_u64(dcr_mp_get(dcr_mp_root(d), "id"), id) == 0 &&
	    dcr_mp_bool(dcr_mp_get(dcr_mp_root(d), "ok"), ok) == 0)
		rc = 1;
out:
	dcr_mp_doc_free(d);
	dcr_buf_release(&b);
	return rc;
}

int main(void)
{
	static td t; /* the atexit cleanup reads it after main returns */
	cl_conn *a = NULL;
	uint8_t room[ES_ROOM_ID_BYTES];
	char *json = NULL;
	uint64_t size0 = 0, answered = 0, errors = 0, closed = 0;
	dcr_buf frame;
	dcr_err err;
	int fd = -1, rounds = getenv("DCR_SANITIZED") ? 1500 : 4000;

	td_init(&t);
	dcr_buf_init(&frame);
	if (td_start(&t, NULL) < 0)
		return 1;
	a = td_connect(&t, t.anna);
	CHECK(a != NULL);
	if (!a)
		goto out;
	json = td_room_json(&t, "fuzz");
	CHECK_OK(td_room_publish(a, json, room, &err), &err);
	CHECK_OK(td_provision(a, room, "bank", "email,city,age\na@x,P,1\n", &err), &err);
	es_room_format(room, room_hex);
	{
		cl_room_info *r = NULL;
		size_t n = 0;
		CHECK_OK(cl_rooms(a, &r, &n, &err), &err);
		if (n == 1)
			size0 = r[0].size;
		cl_rooms_free(r, n);
	}

	/* 1. well-formed frames, random args */
	for (int i = 0; i < rounds; i++) {
		uint64_t id = (uint64_t)i + 1, got = 0;
		bool ok = false;
		int rc;
		if (fd < 0)
			fd = raw_auth(&t, rnd() % 2 ? t.anna : t.carl);
		CHECK(fd >= 0);
		if (fd < 0)
			break;
		dcr_buf_reset(&frame);
		rand_request(&frame, id);
		if (send(fd, frame.data, frame.len, MSG_NOSIGNAL) != (ssize_t)frame.len) {
			close(fd);
			fd = -1;
			closed++;
			continue;
		}
		rc = read_resp(fd, &got, &ok);
		CHECK(rc >= 0);
		if (rc == 1 && got == 0 && !ok) {
			/* refused as a frame (e.g. a str that is not UTF-8):
			 * the daemon closes the connection */
			CHECK(read_resp(fd, &got, &ok) == 0);
			close(fd);
			fd = -1;
			closed++;
		} else if (rc == 1) {
			CHECK(got == id);
			answered++;
			errors += !ok;
		} else {
			close(fd);
			fd = -1;
			closed++;
		}
	}
	/* 2. valid requests, mutated bytes */
	for (int i = 0; i < rounds / 2; i++) {
		uint64_t got = 0;
		bool ok;
		int rc;
		if (fd < 0)
			fd = raw_auth(&t, t.anna);
		if (fd < 0)
			break;
		dcr_buf_reset(&frame);
		rand_request(&frame, 7);
		switch (rnd() % 3) {
		case 0: /* flip a byte of the body (not the length) */
			frame.data[4 + rnd() % (frame.len - 4)] ^= (uint8_t)(1 + rnd() % 255);
			break;
		case 1: /* truncate the body, fix the length */
			if (frame.len > 5) {
				frame.len = 4 + 1 + rnd() % (frame.len - 5);
				dcr_put_be32(frame.data, (uint32_t)(frame.len - 4));
			}
			break;
		default: /* append a byte, fix the length */
			dcr_buf_append_u8(&frame, (uint8_t)rnd());
			dcr_put_be32(frame.data, (uint32_t)(frame.len - 4));
			break;
		}
		if (send(fd, frame.data, frame.len, MSG_NOSIGNAL) != (ssize_t)frame.len) {
			close(fd);
			fd = -1;
			continue;
		}
		rc = read_resp(fd, &got, &ok);
		CHECK(rc >= 0);
		if (rc != 1) {
			close(fd);
			fd = -1;
		} else if (!ok && got == 0) {
			/* a framing error: the daemon closes */
			CHECK(read_resp(fd, &got, &ok) == 0);
			close(fd);
			fd = -1;
		}
	}
	if (fd >= 0)
		close(fd);
	fprintf(stderr, "fuzz: %llu answered (%llu errors), %llu closed\n",
	        (unsigned long long)answered, (unsigned long long)errors,
	        (unsigned long long)closed);
	CHECK(answered > (uint64_t)rounds / 2);

	/* Still serving, and nothing was appended. */
	cl_close(a);
	a = td_connect(&t, t.anna);
	CHECK(a != NULL);
	if (a) {
		cl_room_info *r = NULL;
		size_t n = 0;
		CHECK_OK(cl_rooms(a, &r, &n, &err), &err);
		CHECK(n == 1 && r[0].size == size0);
		cl_rooms_free(r, n);
	}
	CHECK(td_stop(&t, SIGTERM) == 0);
out:
	cl_close(a);
	free(json);
	dcr_buf_release(&frame);
	if (t_failures) {
		char *log = td_log_text(&t);
		size_t n = strlen(log);
		fprintf(stderr, "---- dcrd log (tail) ----\n%s", n > 8000 ? log + n - 8000 : log);
		free(log);
	}
	td_cleanup();
	return t_failures ? 1 : 0;
}
