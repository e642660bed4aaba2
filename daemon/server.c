/* server.c: dcrd's event loop: the listening socket, connections,
 * authentication, framing, and the lifecycle of the whole daemon.
 *
 * The loop thread never blocks: it reads frames (4-byte length + body,
 * never allocating more than the frame limit, and rejecting an oversize
 * length before allocating), answers the authentication challenge, and
 * hands each request to the thread pool (ops.c). A connection runs one
 * request at a time, in order; it stops reading while DMN_INFLIGHT_MAX
 * requests are received but not yet answered, so its memory is bounded. A
 * connection is freed only when both its handles are closed and no request
 * of it is running on the pool.
 *
 * Memory for request frames is one global budget (frame_budget below):
 * a connection whose next frame does not fit stops being read until
 * handled frames give memory back; a frame is checked (proto_request_check:
 * canonical, at most DCR_FRAME_REQUEST_OBJECTS_MAX values) before it is
 * queued, so unpacking it costs a bounded amount. At most
 * DMN_UNAUTH_CONNS_MAX connections wait to authenticate, each with frames
 * of at most DMN_AUTH_FRAME_BYTES_MAX. Shutdown (SIGTERM/SIGINT) closes the
 * listener and every connection, lets requests already running finish
 * (appends complete), stops the workers and closes the store.
 *
 * The only file that includes uv.h. */
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "dmn_int.h"

#define READ_BUF_BYTES (64u * 1024)

typedef struct server server;
typedef struct conn conn;

typedef struct req {
	struct req *next;
	conn *c;
	uint8_t *frame;
	size_t n, cap;
	uv_work_t work;
	dcr_buf resp;
	dcr_buf outcome;
	int fatal;
	uint64_t t0_ms;
	uint64_t charge; /* frame budget held: cap + proto_unpacked_bytes */
} req;

typedef struct wreq {
	uv_write_t w;
	dcr_buf buf;
	conn *c;
	bool close_after;
	bool counts; /* answers a request (inflight) */
} wreq;

struct conn {
	server *srv;
	conn *prev, *next;
	uv_pipe_t pipe;
	uv_timer_t timer;
	int handles_open;
	bool closing, authed, reading;
	bool doomed;    /* protocol violation answered: ignore further input */
	bool releasing; /* session release queued on the pool */
	uv_work_t release;
	uint8_t challenge[32];
	dmn_session sess;
	char who[24]; /* key prefix before a room names the caller */
	/* frame being read */
	uint8_t hdr[PROTO_HDR_BYTES];
	size_t hdr_have;
	uint8_t *body;
	uint32_t body_len;
	size_t body_have, body_cap;
	/* A large frame's buffer, kept for the next large frame (uploads send
	 * one 1 MiB chunk after another): no allocation, no page faults. */
	uint8_t *spare;
	size_t spare_cap;
	/* frame budget: held by the frame being read, by the spare buffer;
	 * while waiting for budget the connection is not read and pend_n
	 * bytes of rbuf at pend_off are still to be parsed */
	uint64_t body_charge, spare_charge;
	bool waiting, unauth_counted;
	conn *wait_next;
	size_t pend_off, pend_n;
	/* requests */
	req *q_head, *q_tail;
	bool busy;         /* a request is on the pool */
	unsigned inflight; /* received, not yet answered */
	uint8_t rbuf[READ_BUF_BYTES];
};

/* The frame budget: memory for request frames from the moment their
 * header arrives until their handler returns: the frame's buffer (its
 * capacity) plus proto_unpacked_bytes of its values -- at the header, of as
 * many values as its length allows (one per byte, at most
 * DCR_FRAME_REQUEST_OBJECTS_MAX); once the frame is complete and checked,
 * of the values it really has. The whole charge is taken at the header, so
 * a frame that started arriving can always finish. A frame that does not
 * fit waits: its connection stops being read, in arrival order (FIFO, no
 * overtaking), until enough is given back; one that could never fit is
 * refused. Loop thread only: no lock. */
typedef struct frame_budget {
	uint64_t max_bytes, used_bytes, peak_bytes;
	uint64_t waits; /* frames that had to wait (logged at shutdown) */
	conn *wait_head, *wait_tail;
	bool waking;
} frame_budget;

struct server {
	dmn *d;
	frame_budget budget;
	unsigned unauthed; /* open connections not yet authenticated */
	uv_loop_t *loop;
	uv_pipe_t listen;
	uv_signal_t sig_term, sig_int, sig_hup;
	conn *conns;
	size_t nconns;
	bool stopping;
	uint64_t idle_ms;
	char *socket_path;
};

/* ---- connections -------------------------------------------------------------- */

static void conn_close(conn *c);
static void pump(conn *c);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void feed(conn *c, const uint8_t *p, size_t n);

/* ---- frame budget ------------------------------------------------------------- */

/* Budget a frame of len bytes needs at its header; *use_spare: it will be
 * read into the connection's spare buffer (already charged). */
static uint64_t frame_need(const conn *c, uint32_t len, bool *use_spare)
{
	uint64_t objs = len < DCR_FRAME_REQUEST_OBJECTS_MAX ? len : DCR_FRAME_REQUEST_OBJECTS_MAX;
	uint64_t need = proto_unpacked_bytes(objs);

	*use_spare = len > READ_BUF_BYTES && c->spare && c->spare_cap >= len;
	if (!*use_spare)
		need += len ? len : 1;
	return need;
}

static void budget_take(frame_budget *b, uint64_t n)
{
	DCR_ASSERT(b->used_bytes + n <= b->max_bytes);
	b->used_bytes += n;
	if (b->used_bytes > b->peak_bytes)
		b->peak_bytes = b->used_bytes;
}

static void budget_wake(server *s);

static void budget_give(server *s, uint64_t n)
{
	DCR_ASSERT(s->budget.used_bytes >= n);
	s->budget.used_bytes -= n;
	if (n)
		budget_wake(s);
}

static void budget_unwait(conn *c)
{
	frame_budget *b = &c->srv->budget;
	conn **pp, *prev = NULL;

	if (!c->waiting)
		return;
	for (pp = &b->wait_head; *pp && *pp != c; pp = &(*pp)->wait_next)
		prev = *pp;
	DCR_ASSERT(*pp == c);
	*pp = c->wait_next;
	if (b->wait_tail == c)
		b->wait_tail = prev;
	c->wait_next = NULL;
	c->waiting = false;
}

/* Refuses the frame whose header was just read and closes the
 * connection once the error is written. */
static void frame_refuse(conn *c, int code, const char *msg);

/* Takes the budget for the frame whose header was just read and sets up
 * its buffer. 1: started; 0: does not fit now (the caller waits); -1:
 * refused (never fits, or out of memory). `jump`: the caller is the
 * waiter at the head, the one whose turn it is. */
static int frame_start(conn *c, bool jump)
{
	frame_budget *b = &c->srv->budget;
	bool use_spare;
	uint64_t need = frame_need(c, c->body_len, &use_spare);
	char msg[160];

	if (need > b->max_bytes) {
		snprintf(msg, sizeof msg,
		         "frame of %u bytes needs %llu bytes of dcrd's frame budget of %llu",
		         c->body_len, (unsigned long long)need,
		         (unsigned long long)b->max_bytes);
		frame_refuse(c, DCR_ELIMIT, msg);
		return -1;
	}
	if ((!jump && b->wait_head) || b->used_bytes + need > b->max_bytes)
		return 0;
	budget_take(b, need);
	c->body_have = 0;
	if (use_spare) {
		c->body = c->spare;
		c->body_cap = c->spare_cap;
		c->body_charge = need + c->spare_charge;
		c->spare = NULL;
		c->spare_charge = 0;
		return 1;
	}
	c->body_cap = c->body_len < READ_BUF_BYTES ? (c->body_len ? c->body_len : 1)
	                                           : READ_BUF_BYTES;
	c->body = malloc(c->body_cap);
	if (!c->body) {
		budget_give(c->srv, need);
		snprintf(msg, sizeof msg, "out of memory for a frame of %u bytes", c->body_len);
		frame_refuse(c, -ENOMEM, msg);
		return -1;
	}
	c->body_charge = need;
	return 1;
}

/* Starts the frames of waiting connections, in order, while they fit. */
static void budget_wake(server *s)
{
	frame_budget *b = &s->budget;
	conn *c;

	if (b->waking)
		return; /* the loop below is running further up the stack */
	b->waking = true;
	while ((c = b->wait_head) != NULL) {
		bool use_spare;
		const uint8_t *p;
		size_t n;

		if (b->used_bytes + frame_need(c, c->body_len, &use_spare) > b->max_bytes)
			break;
		budget_unwait(c);
		p = c->rbuf + c->pend_off;
		n = c->pend_n;
		c->pend_n = 0;
		if (frame_start(c, true) > 0)
			feed(c, p, n);
		if (!c->closing && !c->doomed && !c->waiting && !c->reading &&
		    (!c->authed || c->inflight < DMN_INFLIGHT_MAX)) {
			c->reading = true;
			uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
		}
	}
	b->waking = false;
}

/* ---- connections -------------------------------------------------------------- */

static void req_free(req *r)
{
	server *s;
	uint64_t charge;

	if (!r)
		return;
	s = r->c->srv;
	charge = r->charge;
	free(r->frame);
	dcr_buf_release(&r->resp);
	dcr_buf_release(&r->outcome);
	free(r);
	budget_give(s, charge); /* may start other connections' frames */
}

static void conn_free(conn *c)
{
	server *s = c->srv;
	uint64_t charge = c->body_charge + c->spare_charge;

	DCR_ASSERT(!c->waiting);
	free(c->body);
	free(c->spare);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	free(c);
	budget_give(s, charge); /* may start other connections' frames */
}

/* Dropping a session's uploads touches files and room locks: not on the
 * loop thread. */
static void release_work(uv_work_t *w)
{
	conn *c = w->data;

	dmn__session_release(c->srv->d, &c->sess);
}

static void release_done(uv_work_t *w, int status)
{
	(void)status;
	conn_free(w->data);
}

static void conn_maybe_free(conn *c)
{
	if (c->handles_open > 0 || c->busy || c->releasing)
		return;
	while (c->q_head) {
		req *r = c->q_head;
		c->q_head = r->next;
		req_free(r);
	}
	c->releasing = true;
	c->release.data = c;
	if (uv_queue_work(c->srv->loop, &c->release, release_work, release_done) < 0) {
		dmn__session_release(c->srv->d, &c->sess);
		conn_free(c);
	}
}

static void on_handle_closed(uv_handle_t *h)
{
	conn *c = h->data;

	c->handles_open--;
	conn_maybe_free(c);
}

static void conn_close(conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	budget_unwait(c);
	c->pend_n = 0;
	if (c->unauth_counted) {
		c->unauth_counted = false;
		c->srv->unauthed--;
	}
	uv_read_stop((uv_stream_t *)&c->pipe);
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->pipe, on_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_write(uv_write_t *w, int status)
{
	wreq *wr = w->data;
	conn *c = wr->c;

	if (wr->counts) {
		c->inflight--;
		if (!c->closing && c->authed && !c->reading && !c->waiting &&
		    c->inflight < DMN_INFLIGHT_MAX) {
			/* (libuv refuses a NULL alloc callback: reading would
			 * never resume and the connection would hang) */
			int e = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
			c->reading = e == 0;
			if (e < 0) {
				dmn__log(c->srv->d, DMN_LOG_WARN, "%s: resuming reads: %s; closing",
				         c->sess.who ? c->sess.who : c->who, uv_strerror(e));
				conn_close(c);
			}
		}
	}
	if (status < 0 || wr->close_after)
		conn_close(c);
	dcr_buf_release(&wr->buf);
	free(wr);
}

/* Sends a frame (takes buf's memory). */
static void conn_send(conn *c, dcr_buf *buf, bool close_after, bool counts)
{
	wreq *wr;
	uv_buf_t b;
	int rc;

	if (c->closing) {
		dcr_buf_release(buf);
		if (counts)
			c->inflight--;
		return;
	}
	wr = dcr_calloc(1, sizeof *wr);
	wr->buf = *buf;
	dcr_buf_init(buf);
	wr->c = c;
	wr->close_after = close_after;
	wr->counts = counts;
	wr->w.data = wr;
	b = uv_buf_init((char *)wr->buf.data, (unsigned)wr->buf.len);
	rc = uv_write(&wr->w, (uv_stream_t *)&c->pipe, &b, 1, on_write);
	if (rc < 0) {
		if (counts)
			c->inflight--;
		dcr_buf_release(&wr->buf);
		free(wr);
		conn_close(c);
	}
}

static void send_error(conn *c, uint64_t id, int code, const char *msg, bool close_after)
{
	dcr_buf b;

	dcr_buf_init(&b);
	dmn__error_frame(&b, id, code, msg);
	conn_send(c, &b, close_after, false);
}

static void frame_refuse(conn *c, int code, const char *msg)
{
	dmn__log(c->srv->d, DMN_LOG_INFO, "%s connection closed: %s", c->who, msg);
	c->doomed = true;
	send_error(c, 0, code, msg, true);
}

static void log_request(conn *c, req *r)
{
	dmn *d = c->srv->d;
	const char *who = c->sess.who ? c->sess.who : c->who;

	dmn__log(d, DMN_LOG_INFO, "%s %s%s%s %s %llu ms", who, c->sess.op[0] ? c->sess.op : "?",
	         c->sess.room[0] ? " room=" : "", c->sess.room, dcr_buf_cstr(&r->outcome),
	         (unsigned long long)(dcr_mono_ms() - r->t0_ms));
}

static void work_cb(uv_work_t *w)
{
	req *r = w->data;
	conn *c = r->c;

	r->fatal = dmn__handle(c->srv->d, &c->sess, r->frame, r->n, &r->resp, &r->outcome);
}

static void after_work_cb(uv_work_t *w, int status)
{
	req *r = w->data;
	conn *c = r->c;

	c->busy = false;
	if (!c->spare && !c->closing && r->cap > READ_BUF_BYTES &&
	    r->cap <= DCR_CHUNK_BYTES + READ_BUF_BYTES) {
		/* the buffer keeps its share of the budget */
		DCR_ASSERT(r->charge >= r->cap);
		c->spare = r->frame;
		c->spare_cap = r->cap;
		c->spare_charge = r->cap;
		r->charge -= r->cap;
	} else {
		free(r->frame);
	}
	r->frame = NULL;
	if (status == 0)
		log_request(c, r);
	if (c->closing) {
		c->inflight--;
		req_free(r);
		conn_maybe_free(c);
		return;
	}
	if (r->fatal < 0)
		c->doomed = true;
	conn_send(c, &r->resp, r->fatal < 0, true);
	req_free(r);
	pump(c);
}

/* Starts the next queued request if none is running. */
static void pump(conn *c)
{
	req *r;

	if (c->busy || c->closing || c->doomed || !c->q_head)
		return;
	r = c->q_head;
	c->q_head = r->next;
	if (!c->q_head)
		c->q_tail = NULL;
	c->busy = true;
	r->work.data = r;
	r->t0_ms = dcr_mono_ms();
	if (uv_queue_work(c->srv->loop, &r->work, work_cb, after_work_cb) < 0) {
		c->busy = false;
		c->inflight--;
		req_free(r);
		conn_close(c);
	}
}

static void auth_frame(conn *c, const uint8_t *p, size_t n)
{
	server *s = c->srv;
	dcr_mp_doc *doc = NULL;
	uint8_t key[32], sig[64], msg[64];
	dcr_err err;
	int rc;

	dcr_err_clear(&err);
	rc = proto_frame_parse(p, n, &doc, &err);
	if (rc == 0)
		rc = dcr_mp_get_binn(dcr_mp_root(doc), "key", key, 32, &err);
	if (rc == 0)
		rc = dcr_mp_get_binn(dcr_mp_root(doc), "sig", sig, 64, &err);
	dcr_mp_doc_free(doc);
	if (rc < 0) {
		dmn__log(s->d, DMN_LOG_INFO, "connection refused: bad authentication frame: %s",
		         err.msg);
		c->doomed = true;
		send_error(c, 0, DCR_EPROTO, "expected {key, sig} answering the challenge", true);
		return;
	}
	memcpy(msg, c->challenge, 32);
	memcpy(msg + 32, s->d->pub, 32);
	rm_actor_name(NULL, s->d->pub, key, RM_ACTOR_SHORT, c->who, sizeof c->who);
	rc = dcr_verify(key, DCR_DOMAIN_AUTH, msg, sizeof msg, sig);
	if (rc < 0) {
		dmn__log(s->d, DMN_LOG_INFO, "%s connection refused: bad challenge signature",
		         c->who);
		c->doomed = true;
		send_error(c, 0, DCR_ESIG, "authentication failed: bad signature", true);
		return;
	}
	c->authed = true;
	DCR_ASSERT(c->unauth_counted && s->unauthed > 0);
	c->unauth_counted = false;
	s->unauthed--;
	memcpy(c->sess.key, key, 32);
	{
		proto_map m;
		dcr_buf body, frame;
		proto_map_init(&m);
		dcr_buf_init(&body);
		dcr_buf_init(&frame);
		dcr_mpw_bool(proto_map_key(&m, "ok"), true);
		dcr_mpw_uint(proto_map_key(&m, "v"), 1);
		proto_map_encode(&m, &body);
		proto_map_release(&m);
		proto_frame_wrap(&frame, body.data, body.len);
		dcr_buf_release(&body);
		conn_send(c, &frame, false, false);
	}
	dmn__log(s->d, DMN_LOG_DEBUG, "%s authenticated", c->who);
	uv_timer_again(&c->timer);
}

/* A complete frame: body and the budget it holds (charge) are the
 * caller's to hand over. */
static void on_frame(conn *c, uint8_t *body, size_t n, uint64_t charge)
{
	server *s = c->srv;
	uint64_t objs = 0, keep;
	dcr_err err;
	req *r;
	int rc;

	dcr_err_clear(&err);
	rc = proto_request_check(body, n, &objs, &err);
	if (rc < 0 && c->authed) {
		free(body);
		budget_give(s, charge);
		dmn__log(s->d, DMN_LOG_INFO, "%s connection closed: bad frame: %s", c->who,
		         err.msg);
		c->doomed = true;
		send_error(c, 0, rc, err.msg, true);
		return;
	}
	if (!c->authed) {
		auth_frame(c, body, n); /* its own error for a bad frame */
		free(body);
		budget_give(s, charge);
		return;
	}
	/* The real cost of unpacking, now that the values are counted. */
	keep = c->body_cap + proto_unpacked_bytes(objs);
	DCR_ASSERT(keep <= charge);
	budget_give(s, charge - keep);
	charge = keep;
	if (c->inflight >= DMN_INFLIGHT_MAX) {
		free(body);
		budget_give(s, charge);
		c->doomed = true;
		send_error(c, 0, DCR_ELIMIT, "too many requests in flight (the limit is 4)", true);
		return;
	}
	r = calloc(1, sizeof *r);
	if (!r) {
		free(body);
		budget_give(s, charge);
		frame_refuse(c, -ENOMEM, "out of memory queuing a request");
		return;
	}
	r->c = c;
	r->frame = body;
	r->n = n;
	r->cap = c->body_cap;
	r->charge = charge;
	dcr_buf_init(&r->resp);
	dcr_buf_init(&r->outcome);
	if (c->q_tail)
		c->q_tail->next = r;
	else
		c->q_head = r;
	c->q_tail = r;
	c->inflight++;
	if (c->inflight >= DMN_INFLIGHT_MAX && c->reading) {
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->reading = false;
	}
	pump(c);
}

/* Grows the frame being read once it is full: memory follows the bytes
 * received, not the length announced (a peer that claims 4 MiB and sends
 * nothing costs 64 KiB). */
static int body_grow(conn *c, size_t want)
{
	size_t cap = c->body_cap;
	uint8_t *p;

	if (want <= cap)
		return 0;
	while (cap < want)
		cap *= 2;
	if (cap > c->body_len)
		cap = c->body_len;
	DCR_ASSERT(cap >= want);
	p = realloc(c->body, cap);
	if (!p) {
		char msg[96];
		snprintf(msg, sizeof msg, "out of memory reading a frame of %u bytes",
		         c->body_len);
		frame_refuse(c, -ENOMEM, msg);
		return -ENOMEM;
	}
	c->body = p;
	c->body_cap = cap;
	return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	conn *c = h->data;

	(void)suggested;
	if (c->hdr_have == PROTO_HDR_BYTES && c->body && c->body_have < c->body_len &&
	    !c->doomed) {
		/* In the middle of a frame: read straight into it, no further
		 * than its end. */
		size_t room;
		if (c->body_have == c->body_cap && body_grow(c, c->body_have + 1) < 0)
			goto rbuf; /* refused: the rest is read and dropped */
		room = c->body_cap - c->body_have;
		if (room > c->body_len - c->body_have)
			room = c->body_len - c->body_have;
		*buf = uv_buf_init((char *)c->body + c->body_have, (unsigned)room);
		return;
	}
rbuf:
	DCR_ASSERT(c->pend_n == 0);
	*buf = uv_buf_init((char *)c->rbuf, sizeof c->rbuf);
}

static void body_done(conn *c)
{
	uint8_t *body = c->body;
	uint64_t charge = c->body_charge;

	c->body = NULL;
	c->body_charge = 0;
	c->hdr_have = 0;
	on_frame(c, body, c->body_len, charge);
}

/* Parses n bytes of rbuf at p: headers, and bodies up to their end. Stops
 * (and remembers where) when a frame must wait for the budget. */
static void feed(conn *c, const uint8_t *p, size_t n)
{
	while (n > 0 && !c->closing && !c->doomed) {
		if (c->hdr_have < PROTO_HDR_BYTES) {
			size_t k = PROTO_HDR_BYTES - c->hdr_have;
			uint32_t len, max;
			int rc;
			if (k > n)
				k = n;
			memcpy(c->hdr + c->hdr_have, p, k);
			c->hdr_have += k;
			p += k;
			n -= k;
			if (c->hdr_have < PROTO_HDR_BYTES)
				break;
			len = dcr_get_be32(c->hdr);
			max = c->authed ? DCR_FRAME_BYTES_MAX : DMN_AUTH_FRAME_BYTES_MAX;
			if (len > max) {
				char msg[128];
				snprintf(msg, sizeof msg,
				         "frame of %u bytes exceeds the limit of %u", len, max);
				frame_refuse(c, DCR_ELIMIT, msg);
				return;
			}
			c->body_len = len;
			rc = frame_start(c, false);
			if (rc < 0)
				return;
			if (rc == 0) {
				/* Wait for the budget, not reading; the rest of
				 * rbuf is parsed when this frame's turn comes. */
				frame_budget *b = &c->srv->budget;
				DCR_ASSERT(p >= c->rbuf && p + n <= c->rbuf + sizeof c->rbuf);
				c->pend_off = (size_t)(p - c->rbuf);
				c->pend_n = n;
				c->waiting = true;
				c->wait_next = NULL;
				if (b->wait_tail)
					b->wait_tail->wait_next = c;
				else
					b->wait_head = c;
				b->wait_tail = c;
				b->waits++;
				if (c->reading) {
					uv_read_stop((uv_stream_t *)&c->pipe);
					c->reading = false;
				}
				dmn__log(c->srv->d, DMN_LOG_DEBUG,
				         "%s frame of %u bytes waits for the frame budget (%llu of "
				         "%llu bytes in use)",
				         c->who, len, (unsigned long long)b->used_bytes,
				         (unsigned long long)b->max_bytes);
				return;
			}
		}
		if (c->body_have < c->body_len) {
			size_t k = c->body_len - c->body_have;
			if (k > n)
				k = n;
			/* Memory follows the bytes received (body_grow). */
			if (body_grow(c, c->body_have + k) < 0)
				return;
			memcpy(c->body + c->body_have, p, k);
			c->body_have += k;
			p += k;
			n -= k;
		}
		if (c->body_have == c->body_len)
			body_done(c);
	}
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	conn *c = st->data;
	size_t n;

	if (nread < 0) {
		if (nread != UV_EOF)
			dmn__log(c->srv->d, DMN_LOG_DEBUG, "%s read error: %s", c->who,
			         uv_strerror((int)nread));
		conn_close(c);
		return;
	}
	n = (size_t)nread;
	if (n > 0 && c->authed)
		uv_timer_again(&c->timer);
	if (buf->base != (char *)c->rbuf) {
		/* read into the frame itself (on_alloc) */
		if (c->closing || c->doomed || !c->body)
			return;
		c->body_have += n;
		if (c->body_have == c->body_len)
			body_done(c);
		return;
	}
	feed(c, (const uint8_t *)buf->base, n);
}

static void on_timer(uv_timer_t *t)
{
	conn *c = t->data;

	if (!c->authed) {
		dmn__log(c->srv->d, DMN_LOG_INFO,
		         "connection closed: no authentication within %u ms",
		         (unsigned)DMN_AUTH_TIMEOUT_MS);
		conn_close(c);
		return;
	}
	if (c->inflight > 0 || c->busy)
		return; /* uv_timer_again will rearm it on the next activity */
	dmn__log(c->srv->d, DMN_LOG_INFO, "%s connection closed: idle for %llu ms",
	         c->sess.who ? c->sess.who : c->who, (unsigned long long)c->srv->idle_ms);
	conn_close(c);
}

static void on_connection(uv_stream_t *listener, int status)
{
	server *s = listener->data;
	conn *c;
	proto_map m;
	dcr_buf body, frame;
	int rc;

	if (status < 0) {
		dmn__log(s->d, DMN_LOG_WARN, "accept: %s", uv_strerror(status));
		return;
	}
	c = dcr_calloc(1, sizeof *c);
	c->srv = s;
	uv_pipe_init(s->loop, &c->pipe, 0);
	uv_timer_init(s->loop, &c->timer);
	c->pipe.data = c;
	c->timer.data = c;
	c->handles_open = 2;
	snprintf(c->who, sizeof c->who, "(unauthenticated)");
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	if (uv_accept(listener, (uv_stream_t *)&c->pipe) < 0) {
		conn_close(c);
		return;
	}
	{ /* who is on the other end, for the operator's operations (admin.c) */
		uv_os_fd_t fd;
		struct ucred cr;
		socklen_t crn = sizeof cr;
		if (uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0 &&
		    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crn) == 0 && crn == sizeof cr) {
			c->sess.peer_known = true;
			c->sess.peer_uid = (uint32_t)cr.uid;
		}
	}
	if (s->nconns > DMN_CONNS_MAX || s->stopping) {
		dmn__log(s->d, DMN_LOG_WARN, "connection refused: %s",
		         s->stopping ? "shutting down" : "too many connections");
		send_error(c, 0, DCR_ELIMIT,
		           s->stopping ? "dcrd is shutting down" : "too many connections", true);
		return;
	}
	if (s->unauthed >= DMN_UNAUTH_CONNS_MAX) {
		/* The oldest handshake gives way (the list is newest first): a
		 * client that answers at once always gets through, one that
		 * holds connections open without answering only pushes out
		 * its own. */
		conn *old = NULL, *o;
		for (o = c->next; o; o = o->next)
			if (o->unauth_counted)
				old = o;
		DCR_ASSERT(old != NULL);
		old->unauth_counted = false;
		s->unauthed--;
		frame_refuse(old, DCR_ELIMIT,
		             "too many connections waiting to authenticate: the oldest is closed");
	}
	s->unauthed++;
	c->unauth_counted = true;
	dcr_random(c->challenge, sizeof c->challenge);
	proto_map_init(&m);
	dcr_buf_init(&body);
	dcr_buf_init(&frame);
	dcr_mpw_bin(proto_map_key(&m, "challenge"), c->challenge, 32);
	dcr_mpw_bin(proto_map_key(&m, "daemon_key"), s->d->pub, 32);
	dcr_mpw_uint(proto_map_key(&m, "v"), 1);
	proto_map_encode(&m, &body);
	proto_map_release(&m);
	proto_frame_wrap(&frame, body.data, body.len);
	dcr_buf_release(&body);
	conn_send(c, &frame, false, false);
	uv_timer_start(&c->timer, on_timer, DMN_AUTH_TIMEOUT_MS, s->idle_ms);
	rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
	c->reading = rc == 0;
	if (rc < 0) {
		dmn__log(s->d, DMN_LOG_WARN, "connection closed: reading from it: %s",
		         uv_strerror(rc));
		conn_close(c);
	}
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static void on_signal(uv_signal_t *h, int signum)
{
	server *s = h->data;
	conn *c;

	if (s->stopping)
		return;
	s->stopping = true;
	dmn__log(s->d, DMN_LOG_INFO, "signal %d: shutting down", signum);
	dmn__wake_waiters(s->d, true); /* long polls return now */
	uv_close((uv_handle_t *)&s->listen, NULL);
	for (c = s->conns; c; c = c->next)
		conn_close(c);
	uv_close((uv_handle_t *)&s->sig_term, NULL);
	uv_close((uv_handle_t *)&s->sig_int, NULL);
	uv_close((uv_handle_t *)&s->sig_hup, NULL);
}

/* SIGHUP: the options read again (dmn_options.reload); the live ones
 * apply now: the log level, and the idle timeout of every connection
 * from its next activity on. */
static void on_hup(uv_signal_t *h, int signum)
{
	server *s = h->data;
	dmn_options next;
	char msg[512];
	conn *c;

	(void)signum;
	if (s->stopping)
		return;
	if (!s->d->opt.reload) {
		dmn__log(s->d, DMN_LOG_WARN, "SIGHUP: no configuration to reload");
		return;
	}
	if (s->d->opt.reload(s->d->opt.reload_arg, &next, msg, sizeof msg) < 0) {
		dmn__log(s->d, DMN_LOG_ERROR, "reload: %s", msg);
		return;
	}
	__atomic_store_n(&s->d->opt.log_level, next.log_level, __ATOMIC_RELAXED);
	s->idle_ms = next.idle_timeout_ms ? next.idle_timeout_ms : DMN_IDLE_TIMEOUT_MS;
	for (c = s->conns; c; c = c->next)
		if (c->authed)
			uv_timer_set_repeat(&c->timer, s->idle_ms);
	dmn__log(s->d, DMN_LOG_WARN, "reloaded: log-level %s, idle-timeout-ms %llu%s%s",
	         next.log_level == DMN_LOG_ERROR  ? "error"
	         : next.log_level == DMN_LOG_WARN ? "warn"
	         : next.log_level == DMN_LOG_INFO ? "info"
	                                          : "debug",
	         (unsigned long long)s->idle_ms, msg[0] ? "; " : "", msg);
}

static int take_lock(const char *dir, int *fd_out, dcr_err *err)
{
	char *path = dcr_asprintf("%s/lock", dir);
	char pid[32];
	int fd, rc = 0;

	*fd_out = -1;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = dcr_err_set(err, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		ssize_t k = pread(fd, pid, sizeof pid - 1, 0);
		pid[k > 0 ? k : 0] = 0;
		pid[strcspn(pid, "\n")] = 0;
		rc = dcr_err_set(err, DCR_EEXIST, "another dcrd (pid %s) is using %s",
		                 *pid ? pid : "unknown", dir);
		close(fd);
		goto out;
	}
	snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, strlen(pid), 0) < 0) {
		rc = dcr_err_set(err, -errno, "%s: %s", path, strerror(errno));
		close(fd);
		goto out;
	}
	*fd_out = fd;
out:
	free(path);
	return rc;
}

static int load_keys(dmn *d, uint8_t master[DCR_AES_KEY_BYTES], dcr_err *err)
{
	char *kp = dcr_asprintf("%s/daemon.pem", d->dir);
	char *mp = dcr_asprintf("%s/master.key", d->dir);
	dcr_buf mk;
	struct stat st;
	int rc;

	dcr_buf_init(&mk);
	if (stat(kp, &st) == 0) {
		rc = dcr_key_load(kp, &d->key, err);
	} else {
		rc = dcr_key_generate(&d->key);
		if (rc == 0)
			rc = dcr_key_save(d->key, kp, false, err);
		if (rc == 0)
			dmn__log(d, DMN_LOG_INFO, "created daemon key %s", kp);
	}
	if (rc < 0)
		goto out;
	dcr_key_public(d->key, d->pub);
	if (stat(kp, &st) == 0 && (st.st_mode & 077))
		dmn__log(d, DMN_LOG_WARN, "%s is readable by others (mode %03o): chmod 600 it", kp,
		         (unsigned)(st.st_mode & 0777));
	if (stat(mp, &st) == 0) {
		if (st.st_mode & 077)
			dmn__log(d, DMN_LOG_WARN,
			         "%s is readable by others (mode %03o): chmod 600 it", mp,
			         (unsigned)(st.st_mode & 0777));
		rc = dcr_read_file(mp, 64, &mk, err);
		if (rc == 0 && mk.len != DCR_AES_KEY_BYTES)
			rc = dcr_err_set(err, DCR_EKEY, "%s: expected %u bytes, found %zu", mp,
			                 (unsigned)DCR_AES_KEY_BYTES, mk.len);
		if (rc == 0)
			memcpy(master, mk.data, DCR_AES_KEY_BYTES);
	} else {
		dcr_random(master, DCR_AES_KEY_BYTES);
		rc = dcr_write_file_atomic(mp, master, DCR_AES_KEY_BYTES, 0600, err);
		if (rc == 0)
			dmn__log(d, DMN_LOG_INFO, "created master key %s", mp);
	}
out:
	if (mk.data)
		dcr_wipe(mk.data, mk.len);
	dcr_buf_release(&mk);
	free(kp);
	free(mp);
	return rc;
}

static bool socket_live(const char *path)
{
	struct sockaddr_un sa;
	int fd;
	bool live;

	if (strlen(path) >= sizeof sa.sun_path)
		return false;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	live = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	close(fd);
	return live;
}

int dmn_run(const dmn_options *opt, dcr_err *err)
{
	dmn *d = dcr_calloc(1, sizeof *d);
	server s;
	uv_loop_t loop;
	bool loop_ok = false, started_jobs = false;
	uint8_t master[DCR_AES_KEY_BYTES];
	char *events_dir = NULL;
	const char *env;
	int lock_fd = -1, rc;

	memset(&s, 0, sizeof s);
	d->opt = *opt;
	d->dir = dcr_strdup(opt->data_dir);
	d->start_mono_ms = dcr_mono_ms();
	/* Each part sets up its own state and lock; jobs subscribes to the
	 * rooms' durable events, so rooms come first. */
	dmn__rooms_init(d);
	dmn__waiters_init(d);
	dmn__uploads_init(d);
	dmn__image_cache_init(d,
	                      opt->image_cache_bytes == DMN_IMAGE_CACHE_OFF ? 0
	                      : opt->image_cache_bytes ? opt->image_cache_bytes
	                                               : DMN_IMAGE_CACHE_BYTES);
	dmn__jobs_init(d);
	signal(SIGPIPE, SIG_IGN);
	/* Requests spend most of their time waiting for fsync (group commit
	 * gathers the appends of concurrent requests): give the pool many
	 * more threads than cores (the caller's setting wins). */
	setenv("UV_THREADPOOL_SIZE", "32", 0);

	if (mkdir(d->dir, 0700) < 0 && errno != EEXIST) {
		rc = dcr_err_set(err, -errno, "creating %s: %s", d->dir, strerror(errno));
		goto out;
	}
	rc = take_lock(d->dir, &lock_fd, err);
	if (rc < 0)
		goto out;
	rc = load_keys(d, master, err);
	if (rc < 0)
		goto out;
	{
		es_options eo = {0};
		eo.no_sync = opt->no_sync;
		eo.checkpoint_key = d->key;
		events_dir = dcr_asprintf("%s/events", d->dir);
		rc = es_open(&d->store, events_dir, &eo, err);
		if (rc < 0)
			goto out;
	}
	rc = dmn__blobs_open(&d->blobs, d->dir, master, err);
	dcr_wipe(master, sizeof master);
	if (rc < 0)
		goto out;
	rc = dmn__rooms_load(d, err);
	if (rc == 0)
		rc = dmn__blobs_gc(d, err);
	if (rc < 0)
		goto out;
	rc = dmn__jobs_start(d, err);
	started_jobs = true;
	if (rc < 0)
		goto out;
	{ /* the automatic approvals due when dcrd stopped (docs/rules.md) */
		size_t n;
		dmn_room **rl = dmn__rooms_list(d, &n);
		for (size_t i = 0; i < n; i++)
			dmn__auto_approve(d, rl[i]->id);
		free(rl);
	}

	s.d = d;
	s.budget.max_bytes = opt->frame_budget_bytes ? opt->frame_budget_bytes
	                                             : DMN_FRAME_BUDGET_BYTES;
	s.idle_ms = opt->idle_timeout_ms ? opt->idle_timeout_ms : DMN_IDLE_TIMEOUT_MS;
	env = getenv("DCR_SOCKET");
	if (opt->socket_path)
		s.socket_path = dcr_strdup(opt->socket_path);
	else if (env && *env)
		s.socket_path = dcr_strdup(env);
	else
		s.socket_path = dcr_asprintf("%s/dcr.sock", d->dir);
	/* We hold the directory lock, so no dcrd of this directory listens
	 * there; but another directory's dcrd might (same --socket): a socket
	 * that accepts is live and is not ours to remove. */
	if (socket_live(s.socket_path)) {
		rc = dcr_err_set(err, DCR_EEXIST, "%s is in use by another process (another dcrd?)",
		                 s.socket_path);
		goto out;
	}
	rc = uv_loop_init(&loop);
	if (rc < 0) {
		rc = dcr_err_set(err, DCR_EINTERNAL, "uv_loop_init: %s", uv_strerror(rc));
		goto out;
	}
	loop_ok = true;
	s.loop = &loop;
	uv_pipe_init(&loop, &s.listen, 0);
	s.listen.data = &s;
	unlink(s.socket_path);
	rc = uv_pipe_bind(&s.listen, s.socket_path);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&s.listen, 128, on_connection);
	if (rc < 0) {
		rc = dcr_err_set(err, DCR_EINTERNAL, "listening on %s: %s", s.socket_path,
		                 uv_strerror(rc));
		uv_close((uv_handle_t *)&s.listen, NULL);
		uv_run(&loop, UV_RUN_DEFAULT);
		goto out;
	}
	uv_signal_init(&loop, &s.sig_term);
	uv_signal_init(&loop, &s.sig_int);
	uv_signal_init(&loop, &s.sig_hup);
	s.sig_term.data = s.sig_int.data = s.sig_hup.data = &s;
	rc = uv_signal_start(&s.sig_term, on_signal, SIGTERM);
	if (rc == 0)
		rc = uv_signal_start(&s.sig_int, on_signal, SIGINT);
	if (rc == 0)
		rc = uv_signal_start(&s.sig_hup, on_hup, SIGHUP);
	if (rc < 0) {
		/* Without them dcrd could not be stopped cleanly: refuse to run. */
		rc = dcr_err_set(err, DCR_EINTERNAL, "handling SIGTERM, SIGINT and SIGHUP: %s",
		                 uv_strerror(rc));
		uv_close((uv_handle_t *)&s.listen, NULL);
		uv_close((uv_handle_t *)&s.sig_term, NULL);
		uv_close((uv_handle_t *)&s.sig_int, NULL);
		uv_close((uv_handle_t *)&s.sig_hup, NULL);
		uv_run(&loop, UV_RUN_DEFAULT);
		unlink(s.socket_path);
		goto out;
	}
	fprintf(stderr, "dcrd: listening on %s\n", s.socket_path);
	fflush(stderr);
	uv_run(&loop, UV_RUN_DEFAULT);
	unlink(s.socket_path);
	dmn__log(d, DMN_LOG_INFO, "stopped accepting; requests finished");
	/* every connection is freed: every frame gave its budget back */
	DCR_ASSERT(s.budget.used_bytes == 0 && s.budget.wait_head == NULL && s.unauthed == 0);
	dmn__log(d, DMN_LOG_INFO,
	         "frame budget: peak %llu of %llu bytes, %llu frames waited for it",
	         (unsigned long long)s.budget.peak_bytes, (unsigned long long)s.budget.max_bytes,
	         (unsigned long long)s.budget.waits);
	rc = 0;
out:
	if (started_jobs)
		dmn__jobs_stop(d);
	if (loop_ok) {
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
	}
	/* Joins libuv's thread pool (idle now: every request finished), so
	 * no thread of ours outlives the state freed below. */
	uv_library_shutdown();
	es_close(d->store);
	dmn__blobs_close(d->blobs);
	dmn__jobs_release(d);
	dmn__image_cache_free(d);
	dmn__uploads_release(d);
	dmn__waiters_release(d);
	dmn__rooms_free(d);
	dcr_key_free(d->key);
	if (rc == 0)
		dmn__log(d, DMN_LOG_INFO, "clean shutdown");
	free(events_dir);
	free(s.socket_path);
	free(d->dir);
	free(d);
	if (lock_fd >= 0)
		close(lock_fd);
	return rc;
}
