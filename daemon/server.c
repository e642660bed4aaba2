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
 * of at most DMN_AUTH_FRAME_BYTES_MAX. Once authenticated, a connection
 * is admitted within the limits per key, per address (the peer's uid), of
 * keys in no room and in all, or an idle one gives way to it, or it is
 * refused (conn_admit, docs/daemon.md "Limits and quotas"); the socket is
 * created with its mode and group whatever the umask (listen_socket).
 * Shutdown (SIGTERM/SIGINT) closes the
 * listener and every connection, lets requests already running finish
 * (appends complete), stops the workers and closes the store.
 *
 * The only file that includes uv.h. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "dmn_int.h"
#include "../base/tls.h"

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
	/* The transport: the unix socket (pipe), or TCP with tls set. Reads,
	 * writes and closes go through conn_read_start/stop, conn_send and
	 * conn_close, so framing, authentication and requests are one code
	 * for both. */
	union {
		uv_handle_t h;
		uv_stream_t s;
		uv_pipe_t pipe;
		uv_tcp_t tcp;
	} io;
	dcr_tls_engine *tls;
	bool hs_done;    /* TLS handshake complete (always true on the pipe) */
	bool hs_counted; /* in srv->handshakes */
	bool tls_closed; /* close_notify queued: nothing more is sent */
	uint8_t binding[DCR_TLS_BINDING_BYTES]; /* RFC 9266, once hs_done */
	uv_timer_t timer;
	int handles_open;
	bool closing, authed, reading;
	bool doomed;    /* protocol violation answered: ignore further input */
	bool releasing; /* session release queued on the pool */
	uv_work_t release;
	uint8_t challenge[32];
	dmn_session sess;
	char who[24]; /* key prefix before a room names the caller */
	char addr[DMN_ADDR_BYTES]; /* the peer ("uid 1000"): conn_admit */
	bool admitted;             /* counted in srv->authed (and srv->strangers unless member) */
	bool member;               /* its key is a participant of some room; else a stranger's */
	uint64_t active;           /* srv->activity at its last bytes read or request answered */
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

/* Keys that are the creator or a participant of at least one room,
 * filled by a durable-event hook (at start from every room, then from
 * every room.* and request.* event); a key stays in until dcrd restarts.
 * Written under a room's mu (the hook), read by the loop thread: mu is a
 * leaf lock, held for one lookup or one room's participants. The slots'
 * hash is keyed by a random seed, so nobody can pick keys that collide. */
typedef struct member_set {
	pthread_mutex_t mu; /* guards slots, n, cap */
	struct member_slot {
		uint8_t key[32];
		bool used;
	} * slots;
	size_t n, cap; /* cap: 0 or a power of two, at most half full */
	uint64_t seed;
} member_set;

struct server {
	dmn *d;
	frame_budget budget;
	member_set members;
	unsigned unauthed; /* open connections not yet authenticated */
	/* admitted (authenticated, within the limits) and open; strangers:
	 * those of keys in no room. Limits: conn_admit. */
	unsigned authed, strangers;
	unsigned max_conns, max_per_key, max_per_addr, max_strangers;
	uint64_t stranger_idle_ms;
	uint64_t activity; /* counts activity: orders connections by their last */
	uv_loop_t *loop;
	uv_pipe_t listen;
	/* TLS listeners (--listen) and their key; handshakes: connections
	 * accepted on them whose handshake is not complete, at most
	 * max_handshakes (one more closes the oldest of the address holding
	 * the most, hs_victim), each closed after
	 * hs_timeout_ms; tls_rbuf: where their ciphertext is read (fed to
	 * the engine at once, so one buffer serves them all). */
	uv_tcp_t **tcp;
	size_t ntcp;
	dcr_tls_server *tls;
	unsigned handshakes, max_handshakes;
	uint64_t hs_timeout_ms, hs_evicted;
	uint8_t *tls_rbuf;
	uv_signal_t sig_term, sig_int, sig_hup;
	conn *conns;
	size_t nconns;
	bool stopping;
	uint64_t idle_ms;
	char *socket_path;
};

/* ---- keys that are in a room ----------------------------------------------------- */

static size_t members_slot(const member_set *m, const uint8_t key[32])
{
	uint64_t h;
	size_t i;

	memcpy(&h, key, sizeof h);
	h ^= m->seed; /* splitmix64's finalizer: every bit of h reaches the low ones */
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
	h ^= h >> 31;
	for (i = (size_t)h & (m->cap - 1); m->slots[i].used; i = (i + 1) & (m->cap - 1))
		if (memcmp(m->slots[i].key, key, 32) == 0)
			break;
	return i;
}

static void members_add_locked(member_set *m, const uint8_t key[32])
{
	size_t i;

	if (2 * (m->n + 1) > m->cap) {
		struct member_slot *old = m->slots;
		size_t oldcap = m->cap;
		m->cap = m->cap ? 2 * m->cap : 64;
		m->slots = dcr_calloc(m->cap, sizeof *m->slots);
		for (size_t k = 0; k < oldcap; k++)
			if (old[k].used)
				m->slots[members_slot(m, old[k].key)] = old[k];
		free(old);
	}
	i = members_slot(m, key);
	if (!m->slots[i].used) {
		memcpy(m->slots[i].key, key, 32);
		m->slots[i].used = true;
		m->n++;
	}
}

static bool members_has(member_set *m, const uint8_t key[32])
{
	bool hit;

	pthread_mutex_lock(&m->mu);
	hit = m->cap && m->slots[members_slot(m, key)].used;
	pthread_mutex_unlock(&m->mu);
	return hit;
}

/* The durable-event hook (under r->mu): participants come with the
 * definition (room.created, room.draft_saved) and may change with what
 * requests approve; other events change nobody. */
static void members_on_durable(void *ctx, dmn_room *r, const es_event *ev, uint64_t seq)
{
	member_set *m = ctx;

	(void)seq;
	DMN_ASSERT_HELD(&r->mu);
	if (ev && strncmp(ev->type, "room.", 5) != 0 && strncmp(ev->type, "request.", 8) != 0)
		return;
	if (r->st.status == RM_NONE)
		return;
	pthread_mutex_lock(&m->mu);
	members_add_locked(m, r->st.creator);
	for (size_t i = 0; r->st.def && i < r->st.def->nparticipants; i++)
		members_add_locked(m, r->st.def->participants[i].key);
	pthread_mutex_unlock(&m->mu);
}

/* ---- connections -------------------------------------------------------------- */

static void conn_close(conn *c);
static void conn_unadmit(conn *c);
static void pump(conn *c);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void feed(conn *c, const uint8_t *p, size_t n);
static int conn_read_start(conn *c);
static void conn_read_stop(conn *c);

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
		    (!c->authed || c->inflight < DMN_INFLIGHT_MAX))
			conn_read_start(c);
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

	DCR_ASSERT(!c->waiting && !c->hs_counted);
	dcr_tls_engine_free(c->tls);
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
	conn_unadmit(c);
	budget_unwait(c);
	c->pend_n = 0;
	if (c->unauth_counted) {
		c->unauth_counted = false;
		c->srv->unauthed--;
	}
	if (c->hs_counted) {
		c->hs_counted = false;
		c->srv->handshakes--;
	}
	uv_read_stop(&c->io.s);
	c->reading = false;
	uv_timer_stop(&c->timer);
	uv_close(&c->io.h, on_handle_closed);
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
			int e = conn_read_start(c);
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

/* TLS: replaces the plaintext frame in buf by the bytes to send: what the
 * engine holds (the rest of the handshake, an alert), the frame encrypted
 * and, with close_after, close_notify. Before the handshake is complete
 * there is no channel: the frame is dropped. */
static int tls_seal(conn *c, dcr_buf *buf, bool close_after)
{
	dcr_buf ct;
	dcr_err err;
	int rc = 0;

	dcr_buf_init(&ct);
	dcr_err_clear(&err);
	if (buf->len && c->hs_done && !c->tls_closed)
		rc = dcr_tls_engine_write(c->tls, buf->data, buf->len, &err);
	if (rc < 0)
		dmn__log(c->srv->d, DMN_LOG_WARN, "TLS connection from %s closed: %s", c->addr,
		         err.msg);
	if (close_after && c->hs_done && !c->tls_closed) {
		dcr_tls_engine_close(c->tls);
		c->tls_closed = true;
	}
	dcr_tls_engine_drain_all(c->tls, &ct);
	dcr_buf_release(buf);
	*buf = ct;
	return rc;
}

/* Sends a frame (takes buf's memory); on TLS encrypted (tls_seal). */
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
	if (c->tls && tls_seal(c, buf, close_after) < 0) {
		if (counts)
			c->inflight--;
		conn_close(c);
		return;
	}
	if (buf->len == 0) {
		/* TLS with nothing to send: a frame before the handshake (no
		 * channel yet) or after close_notify (the connection is
		 * closing) is dropped */
		DCR_ASSERT(c->tls);
		dcr_buf_release(buf);
		if (counts)
			c->inflight--;
		if (close_after)
			conn_close(c);
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
	rc = uv_write(&wr->w, &c->io.s, &b, 1, on_write);
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

/* ---- connection limits ------------------------------------------------------------- *
 *
 * Checked once a connection has authenticated (its key is known), in this
 * order: its key holds fewer than max_per_key connections (else refused:
 * the key's holder closes one); a stranger's (a key in no room) finds one
 * of max_strangers slots; its address (the peer's uid on the unix socket;
 * the peer's IP for a TCP listener) holds fewer than max_per_addr; and the
 * total stays within max_conns. At the last three an idle connection
 * (no request in flight, no frame half read) may give way to the newcomer
 * (pick_victim): a stranger's first, the least recently active; else the
 * least recently active of the key holding the most connections in the
 * scope, if it holds at least two more than the newcomer's key (so a key
 * holding one connection never loses it, and keys converge to equal
 * shares). As max_per_key and max_strangers are below max_conns, a
 * participant finds a slot unless every connection is busy or belongs to
 * a key holding no more than one more than the participant's key does.
 * Loop thread only. */

static void conn_unadmit(conn *c)
{
	server *s = c->srv;

	if (!c->admitted)
		return;
	c->admitted = false;
	DCR_ASSERT(s->authed > 0);
	s->authed--;
	if (!c->member) {
		DCR_ASSERT(s->strangers > 0);
		s->strangers--;
	}
}

static bool conn_idle(const conn *c)
{
	return c->admitted && !c->closing && !c->doomed && !c->busy && c->inflight == 0 &&
	       !c->waiting && c->hdr_have == 0;
}

static int conn_key_cmp(const void *a, const void *b)
{
	const conn *x = *(conn *const *)a, *y = *(conn *const *)b;
	int k = memcmp(x->sess.key, y->sess.key, 32);

	if (k)
		return k;
	return x->active < y->active ? -1 : x->active > y->active;
}

/* The idle connection that gives way to newcomer c among the admitted
 * connections of addr (NULL: all), only a stranger's if strangers_only,
 * or NULL (see above). */
static conn *pick_victim(server *s, const conn *c, const char *addr, bool strangers_only)
{
	conn **v, *o, *best = NULL;
	size_t n = 0, i, j, mine = 0, top = 0;

	for (o = s->conns; o; o = o->next)
		if (conn_idle(o) && !o->member && (!addr || strcmp(o->addr, addr) == 0) &&
		    (!best || o->active < best->active))
			best = o;
	if (best || strangers_only || s->authed == 0)
		return best;
	v = dcr_calloc(s->authed, sizeof *v);
	for (o = s->conns; o; o = o->next)
		if (o->admitted && (!addr || strcmp(o->addr, addr) == 0)) {
			DCR_ASSERT(n < s->authed);
			v[n++] = o;
		}
	qsort(v, n, sizeof *v, conn_key_cmp);
	for (i = 0; i < n; i = j) {
		conn *idle = NULL;
		for (j = i; j < n && memcmp(v[j]->sess.key, v[i]->sess.key, 32) == 0; j++)
			if (!idle && conn_idle(v[j]))
				idle = v[j]; /* the least recently active of the key's */
		if (memcmp(v[i]->sess.key, c->sess.key, 32) == 0)
			mine = j - i;
		else if (idle && j - i > top) {
			top = j - i;
			best = idle;
		}
	}
	free(v);
	return best && top >= mine + 2 ? best : NULL;
}

static void conn_evict(conn *v, const char *msg)
{
	conn_unadmit(v);
	dmn__log(v->srv->d, DMN_LOG_INFO, "%s connection closed: %s",
	         v->sess.who ? v->sess.who : v->who, msg);
	v->doomed = true;
	send_error(v, 0, DCR_ELIMIT, msg, true);
}

/* Idle timeout of an admitted connection: a stranger's is the shorter. */
static uint64_t conn_idle_ms(const conn *c)
{
	const server *s = c->srv;

	return c->member || s->stranger_idle_ms > s->idle_ms ? s->idle_ms : s->stranger_idle_ms;
}

/* Admits the authenticated connection c, or refuses it (ELIMIT naming the
 * limit, closed) and returns false. */
static bool conn_admit(conn *c)
{
	server *s = c->srv;
	unsigned nkey = 0, naddr = 0;
	char msg[384];
	conn *o, *v;

	c->member = members_has(&s->members, c->sess.key);
	for (o = s->conns; o; o = o->next) {
		if (!o->admitted)
			continue;
		nkey += memcmp(o->sess.key, c->sess.key, 32) == 0;
		naddr += strcmp(o->addr, c->addr) == 0;
	}
	if (nkey >= s->max_per_key) {
		snprintf(msg, sizeof msg,
		         "this key has %u connections open, the limit per key (dcrd "
		         "--max-conns-per-key %u): close one of them first",
		         nkey, s->max_per_key);
		goto refuse;
	}
	if (!c->member && s->strangers >= s->max_strangers) {
		v = pick_victim(s, c, NULL, true);
		if (!v) {
			snprintf(msg, sizeof msg,
			         "%u connections of keys that are in no room are open, the limit "
			         "(dcrd --max-stranger-conns %u), all busy: try again in a moment",
			         s->strangers, s->max_strangers);
			goto refuse;
		}
		snprintf(msg, sizeof msg,
		         "closed while idle: its key is in no room and %u such connections are "
		         "open, the limit (dcrd --max-stranger-conns %u); reconnect when needed",
		         s->strangers, s->max_strangers);
		naddr -= strcmp(v->addr, c->addr) == 0;
		conn_evict(v, msg);
	}
	if (naddr >= s->max_per_addr) {
		v = pick_victim(s, c, c->addr, false);
		if (!v) {
			snprintf(msg, sizeof msg,
			         "%s has %u connections open, the limit per address (dcrd "
			         "--max-conns-per-addr %u): close some of them first",
			         c->addr, naddr, s->max_per_addr);
			goto refuse;
		}
		snprintf(msg, sizeof msg,
		         "closed while idle for another connection from %s, which has %u "
		         "connections open, the limit per address (dcrd --max-conns-per-addr %u); "
		         "reconnect when needed",
		         c->addr, naddr, s->max_per_addr);
		conn_evict(v, msg);
	}
	if (s->authed >= s->max_conns) {
		v = pick_victim(s, c, NULL, false);
		if (!v) {
			snprintf(msg, sizeof msg,
			         "dcrd has %u connections open, its limit (dcrd --max-conns %u), "
			         "and none can give way to this one: try again later",
			         s->authed, s->max_conns);
			goto refuse;
		}
		snprintf(msg, sizeof msg,
		         "closed while idle for another connection: dcrd has %u connections "
		         "open, its limit (dcrd --max-conns %u); reconnect when needed",
		         s->authed, s->max_conns);
		conn_evict(v, msg);
	}
	c->admitted = true;
	s->authed++;
	if (!c->member)
		s->strangers++;
	c->active = ++s->activity;
	uv_timer_set_repeat(&c->timer, conn_idle_ms(c));
	return true;
refuse:
	dmn__log(s->d, DMN_LOG_INFO, "%s connection refused: %s", c->who, msg);
	c->doomed = true;
	send_error(c, 0, DCR_ELIMIT, msg, true);
	return false;
}

/* A stranger whose key joined a room (it created one, or was added to
 * one) becomes a member's connection: checked after each of its requests
 * and before it is closed as idle. */
static void conn_recheck_member(conn *c)
{
	server *s = c->srv;

	if (!c->admitted || c->member || !members_has(&s->members, c->sess.key))
		return;
	c->member = true;
	DCR_ASSERT(s->strangers > 0);
	s->strangers--;
	uv_timer_set_repeat(&c->timer, conn_idle_ms(c));
	uv_timer_again(&c->timer); /* the stranger's shorter timeout is pending */
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
	c->active = ++c->srv->activity;
	conn_recheck_member(c);
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
	uint8_t key[32], sig[64], msg[96];
	size_t msg_n = 64;
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
	/* On TLS the signature binds this connection's channel (RFC 9266
	 * exporter): one made for another connection, relayed or replayed
	 * here, does not verify. Each side knows its own transport. */
	memcpy(msg, c->challenge, 32);
	memcpy(msg + 32, s->d->pub, 32);
	if (c->tls) {
		DCR_ASSERT(c->hs_done);
		memcpy(msg + 64, c->binding, DCR_TLS_BINDING_BYTES);
		msg_n = 96;
	}
	rm_actor_name(NULL, s->d->pub, key, RM_ACTOR_SHORT, c->who, sizeof c->who);
	rc = dcr_verify(key, c->tls ? DCR_DOMAIN_AUTH_TLS : DCR_DOMAIN_AUTH, msg, msg_n, sig);
	if (rc < 0) {
		dmn__log(s->d, DMN_LOG_INFO, "%s connection%s%s refused: bad challenge signature%s",
		         c->who, c->tls ? " from " : "", c->tls ? c->addr : "",
		         c->tls ? " (not bound to this TLS connection)" : "");
		c->doomed = true;
		send_error(c, 0, DCR_ESIG,
		           c->tls ? "authentication failed: bad signature (over TLS, sign "
		                    "dcr.auth.tls.v1 over challenge, daemon_key and this "
		                    "connection's channel binding, RFC 9266 tls-exporter)"
		                  : "authentication failed: bad signature",
		           true);
		return;
	}
	c->authed = true;
	DCR_ASSERT(c->unauth_counted && s->unauthed > 0);
	c->unauth_counted = false;
	s->unauthed--;
	memcpy(c->sess.key, key, 32);
	if (!conn_admit(c))
		return;
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
	if (c->inflight >= DMN_INFLIGHT_MAX && c->reading)
		conn_read_stop(c);
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

/* Where the connection's next bytes of plaintext go: in the middle of a
 * frame straight into it, no further than its end; else rbuf. */
static void conn_inbuf(conn *c, uint8_t **p, size_t *cap)
{
	if (c->hdr_have == PROTO_HDR_BYTES && c->body && c->body_have < c->body_len &&
	    !c->doomed) {
		size_t room;
		if (c->body_have == c->body_cap && body_grow(c, c->body_have + 1) < 0)
			goto rbuf; /* refused: the rest is read and dropped */
		room = c->body_cap - c->body_have;
		if (room > c->body_len - c->body_have)
			room = c->body_len - c->body_have;
		*p = c->body + c->body_have;
		*cap = room;
		return;
	}
rbuf:
	DCR_ASSERT(c->pend_n == 0);
	*p = c->rbuf;
	*cap = sizeof c->rbuf;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	conn *c = h->data;
	uint8_t *p;
	size_t cap;

	(void)suggested;
	conn_inbuf(c, &p, &cap);
	*buf = uv_buf_init((char *)p, (unsigned)cap);
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
				if (c->reading)
					conn_read_stop(c);
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

/* n bytes of plaintext arrived at p, which conn_inbuf gave. */
static void conn_input(conn *c, const uint8_t *p, size_t n)
{
	if (n > 0 && c->authed) {
		uv_timer_again(&c->timer);
		c->active = ++c->srv->activity;
	}
	if (p != c->rbuf) {
		/* read into the frame itself (conn_inbuf) */
		if (c->closing || c->doomed || !c->body)
			return;
		c->body_have += n;
		if (c->body_have == c->body_len)
			body_done(c);
		return;
	}
	feed(c, p, n);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	conn *c = st->data;

	if (nread < 0) {
		if (nread != UV_EOF)
			dmn__log(c->srv->d, DMN_LOG_DEBUG, "%s read error: %s", c->who,
			         uv_strerror((int)nread));
		conn_close(c);
		return;
	}
	conn_input(c, (const uint8_t *)buf->base, (size_t)nread);
}

/* ---- TLS connections ------------------------------------------------------------- *
 *
 * A TCP connection's bytes go through its engine (base/tls.h): what the
 * socket gives is fed to it at once (one read buffer for all of them,
 * srv->tls_rbuf), plaintext is taken from it only while the connection
 * reads (tls_pull, through conn_inbuf and conn_input like the pipe's),
 * and what it has to send leaves with the next write (tls_seal). So a
 * connection that is not read holds at most one read of ciphertext, and
 * the frame, authentication and request code is the pipe's.
 *
 * Before the handshake is complete a connection is in srv->handshakes
 * (at most max_handshakes: one more closes the oldest of the address
 * holding the most) and has
 * hs_timeout_ms to finish it; then it is a connection waiting to
 * authenticate like any other (conn_hello), whose signature must bind
 * this connection's exporter (auth_frame). */

static void conn_hello(conn *c);

/* Sends what the engine holds (handshake messages, an alert). */
static void tls_flush(conn *c, bool close_after)
{
	dcr_buf none;

	dcr_buf_init(&none);
	conn_send(c, &none, close_after, false);
}

static void tls_pull(conn *c)
{
	dcr_err err;

	while (c->hs_done && c->reading && !c->closing && !c->doomed) {
		uint8_t *p;
		size_t cap;
		int n;

		conn_inbuf(c, &p, &cap);
		n = dcr_tls_engine_read(c->tls, p, cap, &err);
		if (n == 0)
			break;
		if (n < 0) {
			dmn__log(c->srv->d, n == -EPIPE ? DMN_LOG_DEBUG : DMN_LOG_INFO,
			         "%s TLS connection from %s closed: %s",
			         c->sess.who ? c->sess.who : c->who, c->addr, err.msg);
			/* a bad record: the engine's alert goes out first */
			c->doomed = true;
			tls_flush(c, true);
			return;
		}
		conn_input(c, p, (size_t)n);
	}
	if (!c->closing && dcr_tls_engine_pending(c->tls))
		tls_flush(c, false); /* a key update's answer */
}

static void on_tls_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	conn *c = h->data;

	(void)suggested;
	*buf = uv_buf_init((char *)c->srv->tls_rbuf, READ_BUF_BYTES);
}

/* The handshake just completed: the connection leaves the handshakes and
 * gets its challenge. */
static void tls_established(conn *c)
{
	server *s = c->srv;
	dcr_err err;

	c->hs_done = true;
	if (c->hs_counted) {
		c->hs_counted = false;
		s->handshakes--;
	}
	if (dcr_tls_engine_binding(c->tls, c->binding, &err) < 0) {
		dmn__log(s->d, DMN_LOG_WARN, "TLS connection from %s closed: %s", c->addr, err.msg);
		conn_close(c);
		return;
	}
	dmn__log(s->d, DMN_LOG_DEBUG, "TLS connection from %s: handshake complete", c->addr);
	conn_hello(c);
}

static void on_tls_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	conn *c = st->data;
	server *s = c->srv;
	dcr_err err;
	int rc;

	if (nread < 0) {
		if (!c->hs_done)
			dmn__log(s->d, DMN_LOG_DEBUG,
			         "TLS connection from %s closed during the handshake: %s", c->addr,
			         uv_strerror((int)nread));
		else if (nread != UV_EOF)
			dmn__log(s->d, DMN_LOG_DEBUG, "%s read error: %s", c->who,
			         uv_strerror((int)nread));
		conn_close(c);
		return;
	}
	if (nread == 0 || c->closing || c->doomed)
		return;
	/* the engine reads the ciphertext from srv->tls_rbuf (no copy) and
	 * keeps a copy of what it has not consumed when this returns */
	rc = dcr_tls_engine_feed_lent(c->tls, buf->base, (size_t)nread, &err);
	if (rc < 0) {
		/* not TLS, no TLS 1.3, an alert...: the engine's alert goes out,
		 * then the connection closes */
		dmn__log(s->d, DMN_LOG_INFO, "TLS connection from %s refused: %s", c->addr,
		         err.msg);
		c->doomed = true;
		tls_flush(c, true);
		goto out;
	}
	if (dcr_tls_engine_buffered(c->tls) > DMN_TLS_BUFFERED_BYTES_MAX) {
		dmn__log(s->d, DMN_LOG_WARN,
		         "TLS connection from %s closed: %zu bytes buffered, past the limit of %u",
		         c->addr, dcr_tls_engine_buffered(c->tls), DMN_TLS_BUFFERED_BYTES_MAX);
		conn_close(c);
		goto out;
	}
	if (!c->hs_done) {
		tls_flush(c, false); /* our part of the handshake */
		if (rc == 0 || c->closing)
			goto out;
		tls_established(c);
		if (c->closing)
			goto out;
	}
	tls_pull(c);
out:
	/* (the engine lives until the handle is closed, after this) */
	dcr_tls_engine_keep(c->tls);
}

/* Starts reading the connection (c->reading); 0 or a libuv error. On TLS
 * the plaintext its engine already holds is taken at once: nothing new may
 * come from the socket to trigger it. */
static int conn_read_start(conn *c)
{
	int e;

	if (c->reading)
		return 0;
	e = c->tls ? uv_read_start(&c->io.s, on_tls_alloc, on_tls_read)
	           : uv_read_start(&c->io.s, on_alloc, on_read);
	c->reading = e == 0;
	if (e == 0 && c->tls)
		tls_pull(c);
	return e;
}

static void conn_read_stop(conn *c)
{
	uv_read_stop(&c->io.s);
	c->reading = false;
}

static void on_timer(uv_timer_t *t)
{
	conn *c = t->data;

	if (!c->hs_done) {
		dmn__log(c->srv->d, DMN_LOG_INFO,
		         "TLS connection from %s closed: no TLS handshake within %llu ms (dcrd "
		         "--tls-handshake-timeout-ms)",
		         c->addr, (unsigned long long)c->srv->hs_timeout_ms);
		conn_close(c);
		return;
	}
	if (!c->authed) {
		dmn__log(c->srv->d, DMN_LOG_INFO,
		         "connection closed: no authentication within %u ms",
		         (unsigned)DMN_AUTH_TIMEOUT_MS);
		conn_close(c);
		return;
	}
	if (c->inflight > 0 || c->busy)
		return; /* uv_timer_again will rearm it on the next activity */
	if (!c->member) {
		/* its key may have joined a room since its last request */
		conn_recheck_member(c);
		if (c->member)
			return; /* rearmed with a member's timeout */
	}
	dmn__log(c->srv->d, DMN_LOG_INFO, "%s connection closed: idle for %llu ms%s",
	         c->sess.who ? c->sess.who : c->who, (unsigned long long)uv_timer_get_repeat(t),
	         c->member ? "" : " (its key is in no room: dcrd --stranger-idle-timeout-s)");
	conn_close(c);
}

/* The peer's address, what max_per_addr counts: on the unix socket its
 * uid (SO_PEERCRED); on TCP "ip " and its IP address, an IPv6 one as its
 * /64 (a host usually holds a whole /64), an IPv4-mapped one as IPv4. */
static void conn_peer(conn *c)
{
	uv_os_fd_t fd;
	struct ucred cr;
	socklen_t len = sizeof cr;

	if (uv_fileno(&c->io.h, &fd) == 0 &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && len == sizeof cr) {
		snprintf(c->addr, sizeof c->addr, "uid %u", (unsigned)cr.uid);
		/* who is on the other end, for the operator's operations (admin.c) */
		c->sess.peer_known = true;
		c->sess.peer_uid = (uint32_t)cr.uid;
	} else
		snprintf(c->addr, sizeof c->addr, "uid unknown");
}

static void conn_peer_ip(conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof ss;
	char ip[INET6_ADDRSTRLEN];

	snprintf(c->addr, sizeof c->addr, "ip unknown");
	if (uv_tcp_getpeername(&c->io.tcp, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		if (inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip))
			snprintf(c->addr, sizeof c->addr, "ip %s", ip);
	} else if (ss.ss_family == AF_INET6) {
		struct in6_addr a = ((const struct sockaddr_in6 *)&ss)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(&a)) {
			if (inet_ntop(AF_INET, &a.s6_addr[12], ip, sizeof ip))
				snprintf(c->addr, sizeof c->addr, "ip %s", ip);
		} else {
			memset(&a.s6_addr[8], 0, 8);
			if (inet_ntop(AF_INET6, &a, ip, sizeof ip))
				snprintf(c->addr, sizeof c->addr, "ip %s/64", ip);
		}
	}
}

/* A new connection on s's list (newest first), its handles initialised;
 * tcp: a TCP one (TLS), else the unix socket's. */
static conn *conn_new(server *s, bool tcp)
{
	conn *c = dcr_calloc(1, sizeof *c);

	c->srv = s;
	if (tcp)
		uv_tcp_init(s->loop, &c->io.tcp);
	else
		uv_pipe_init(s->loop, &c->io.pipe, 0);
	uv_timer_init(s->loop, &c->timer);
	c->io.h.data = c;
	c->timer.data = c;
	c->handles_open = 2;
	c->hs_done = !tcp;
	snprintf(c->who, sizeof c->who, "(unauthenticated)");
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	return c;
}

/* A backstop on descriptors: admitted connections are bounded by
 * max_conns (conn_admit), those authenticating by DMN_UNAUTH_CONNS_MAX
 * (conn_hello), those in the TLS handshake by max_handshakes; this leaves
 * as many again for connections still closing. false (msg set) when the
 * newest connection must go. */
static bool conn_backstop(server *s, char *msg, size_t cap)
{
	size_t max = (size_t)s->max_conns + 2 * DMN_UNAUTH_CONNS_MAX +
	             (s->tls ? 2 * (size_t)s->max_handshakes : 0);

	if (s->stopping) {
		snprintf(msg, cap, "dcrd is shutting down");
		return false;
	}
	if (s->nconns <= max)
		return true;
	snprintf(msg, cap,
	         "dcrd has %zu connections open or closing, the limit (dcrd --max-conns %u plus "
	         "%zu): try again later",
	         s->nconns - 1, s->max_conns, max - s->max_conns);
	return false;
}

/* The connection (the pipe's at accept, a TLS one once its handshake is
 * complete) waits to authenticate: the challenge, the authentication
 * timeout, reading. */
static void conn_hello(conn *c)
{
	server *s = c->srv;
	proto_map m;
	dcr_buf body, frame;
	int rc;

	if (s->unauthed >= DMN_UNAUTH_CONNS_MAX) {
		/* The oldest waiting gives way (the list is newest first): a
		 * client that answers at once always gets through, one that
		 * holds connections open without answering only pushes out
		 * its own. */
		conn *old = NULL, *o;
		for (o = s->conns; o; o = o->next)
			if (o != c && o->unauth_counted)
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
	if (c->closing)
		return;
	uv_timer_start(&c->timer, on_timer, DMN_AUTH_TIMEOUT_MS, s->idle_ms);
	rc = conn_read_start(c);
	if (rc < 0) {
		dmn__log(s->d, DMN_LOG_WARN, "connection closed: reading from it: %s",
		         uv_strerror(rc));
		conn_close(c);
	}
}

static void on_connection(uv_stream_t *listener, int status)
{
	server *s = listener->data;
	char msg[192];
	conn *c;

	if (status < 0) {
		dmn__log(s->d, DMN_LOG_WARN, "accept: %s", uv_strerror(status));
		return;
	}
	c = conn_new(s, false);
	if (uv_accept(listener, &c->io.s) < 0) {
		conn_close(c);
		return;
	}
	conn_peer(c);
	if (!conn_backstop(s, msg, sizeof msg)) {
		dmn__log(s->d, DMN_LOG_WARN, "connection from %s refused: %s", c->addr, msg);
		send_error(c, 0, DCR_ELIMIT, msg, true);
		return;
	}
	conn_hello(c);
}

/* The connection in the handshake that gives way to newcomer c: the
 * oldest of the address with the most connections in the handshake (a
 * tie: the address met last, newest first, so the one with the oldest
 * newest connection). At most max_handshakes of them: the count is
 * quadratic in a bounded number. */
static conn *hs_victim(conn *c)
{
	conn *best = NULL, *o, *p;
	unsigned best_n = 0;

	for (o = c->next; o; o = o->next) {
		conn *oldest = o;
		unsigned n = 0;
		bool first = true;
		if (!o->hs_counted)
			continue;
		/* only the newest of each address counts the address */
		for (p = c->next; p != o; p = p->next)
			if (p->hs_counted && strcmp(p->addr, o->addr) == 0) {
				first = false;
				break;
			}
		if (!first)
			continue;
		for (p = o; p; p = p->next)
			if (p->hs_counted && strcmp(p->addr, o->addr) == 0) {
				n++;
				oldest = p;
			}
		if (n >= best_n) {
			best_n = n;
			best = oldest;
		}
	}
	return best;
}

/* A connection on a TLS listener: the handshake first. */
static void on_tls_connection(uv_stream_t *listener, int status)
{
	server *s = listener->data;
	char msg[192];
	dcr_err err;
	conn *c;
	int rc;

	if (status < 0) {
		dmn__log(s->d, DMN_LOG_WARN, "accept (TLS): %s", uv_strerror(status));
		return;
	}
	c = conn_new(s, true);
	if (uv_accept(listener, &c->io.s) < 0) {
		conn_close(c);
		return;
	}
	conn_peer_ip(c);
	uv_tcp_nodelay(&c->io.tcp, 1); /* frames are answered at once */
	if (!conn_backstop(s, msg, sizeof msg)) {
		/* no channel yet for an error frame: just closed */
		dmn__log(s->d, DMN_LOG_WARN, "TLS connection from %s refused: %s", c->addr, msg);
		conn_close(c);
		return;
	}
	if (dcr_tls_engine_server(s->tls, &c->tls, &err) < 0) {
		dmn__log(s->d, DMN_LOG_WARN, "TLS connection from %s refused: %s", c->addr,
		         err.msg);
		conn_close(c);
		return;
	}
	if (s->handshakes >= s->max_handshakes) {
		/* A handshake gives way: the oldest of the address holding the
		 * most of them (the list is newest first). A client that
		 * completes its handshake at once always gets through; one
		 * that holds connections open without one pushes out its own
		 * first, never a slower client of another address while it
		 * holds more. Logged at 1, 10, 100, ... */
		conn *old = hs_victim(c);
		DCR_ASSERT(old != NULL);
		s->hs_evicted++;
		for (uint64_t k = 1; k <= s->hs_evicted; k *= 10)
			if (k == s->hs_evicted)
				dmn__log(s->d, DMN_LOG_INFO,
				         "TLS connection from %s closed: %u connections are in the "
				         "TLS handshake, the limit (dcrd --max-tls-handshakes %u); the "
				         "oldest of the address holding the most gives way (%llu so far)",
				         old->addr, s->handshakes, s->max_handshakes,
				         (unsigned long long)s->hs_evicted);
		conn_close(old);
	}
	s->handshakes++;
	c->hs_counted = true;
	uv_timer_start(&c->timer, on_timer, s->hs_timeout_ms, 0);
	rc = conn_read_start(c);
	if (rc < 0) {
		dmn__log(s->d, DMN_LOG_WARN, "TLS connection from %s closed: reading from it: %s",
		         c->addr, uv_strerror(rc));
		conn_close(c);
	}
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static void on_tcp_listener_closed(uv_handle_t *h)
{
	free(h);
}

static void tcp_close_all(server *s)
{
	for (size_t i = 0; i < s->ntcp; i++)
		uv_close((uv_handle_t *)s->tcp[i], on_tcp_listener_closed);
	s->ntcp = 0;
}

#define TCP_LISTENERS_MAX (DMN_LISTEN_MAX * 4) /* addresses of the --listen names */

uint64_t dmn_memory_bytes(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), pg = sysconf(_SC_PAGESIZE);
	uint64_t mem = pages > 0 && pg > 0 ? (uint64_t)pages * (uint64_t)pg : 0;
	FILE *f = fopen("/sys/fs/cgroup/memory.max", "re");
	if (f) {
		unsigned long long lim;
		/* "max" when unlimited: no number */
		if (fscanf(f, "%llu", &lim) == 1 && lim > 0 && (!mem || lim < mem))
			mem = lim;
		fclose(f);
	}
	return mem;
}

/* DMN_MEMORY_SHARE of the memory, in whole MiB, at least floor. */
static uint64_t memory_share(uint64_t floor)
{
	uint64_t m = dmn_memory_bytes() / DMN_MEMORY_SHARE;
	return m > floor ? m & ~((1ull << 20) - 1) : floor;
}

uint64_t dmn_default_image_cache_bytes(void)
{
	return memory_share(DMN_IMAGE_CACHE_BYTES);
}

uint64_t dmn_default_build_bytes(void)
{
	return memory_share(DMN_BUILD_MEMORY_BYTES);
}

int dmn_listen_parse(const char *spec, char host[256], char port[8], dcr_err *err)
{
	const char *h = spec, *he, *p;
	char *end;
	unsigned long v;

	if (*spec == '[') {
		h = spec + 1;
		he = strchr(h, ']');
		if (!he || he[1] != ':')
			return dcr_err_set(err, DCR_EINVALID,
			                   "--listen %s: expected [IPV6]:PORT, e.g. [::1]:4433", spec);
		p = he + 2;
	} else {
		he = strrchr(spec, ':');
		if (!he)
			return dcr_err_set(err, DCR_EINVALID,
			                   "--listen %s: expected HOST:PORT, e.g. 127.0.0.1:4433", spec);
		if (memchr(spec, ':', (size_t)(he - spec)))
			return dcr_err_set(err, DCR_EINVALID,
			                   "--listen %s: an IPv6 address goes in brackets: [ADDR]:PORT",
			                   spec);
		p = he + 1;
	}
	if (he == h)
		return dcr_err_set(err, DCR_EINVALID,
		                   "--listen %s: no host (0.0.0.0:PORT or [::]:PORT listen on every "
		                   "address)",
		                   spec);
	if ((size_t)(he - h) >= 256)
		return dcr_err_set(err, DCR_EINVALID, "--listen %.80s...: host name too long", spec);
	errno = 0;
	v = strtoul(p, &end, 10);
	if (!*p || *end || errno || v > 65535 || *p == '-' || *p == '+')
		return dcr_err_set(err, DCR_EINVALID,
		                   "--listen %s: the port must be a number from 0 to 65535 (0: any "
		                   "free port)",
		                   spec);
	memcpy(host, h, (size_t)(he - h));
	host[he - h] = 0;
	snprintf(port, 8, "%lu", v);
	return 0;
}

/* Listens with TLS on every address of spec; prints each ("dcrd:
 * listening on tls:ADDR:PORT ..."). The handles are in s->tcp. */
static int listen_tcp(server *s, const char *spec, const char *fingerprint, dcr_err *err)
{
	char host[256], port[8];
	struct addrinfo hints, *res = NULL, *ai;
	int rc, g;

	rc = dmn_listen_parse(spec, host, port, err);
	if (rc < 0)
		return rc;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	g = getaddrinfo(host, port, &hints, &res);
	if (g != 0)
		return dcr_err_set(err, DCR_EINVALID, "--listen %s: %s", spec, gai_strerror(g));
	for (ai = res; ai; ai = ai->ai_next) {
		struct sockaddr_storage ss;
		int len = sizeof ss;
		char ip[INET6_ADDRSTRLEN] = "?";
		unsigned bport = 0;
		uv_tcp_t *h;

		if (s->ntcp == TCP_LISTENERS_MAX) {
			rc = dcr_err_set(err, DCR_ELIMIT, "--listen: more than %u addresses",
			                 TCP_LISTENERS_MAX);
			goto out;
		}
		h = dcr_calloc(1, sizeof *h);
		uv_tcp_init(s->loop, h);
		h->data = s;
		s->tcp[s->ntcp++] = h;
		rc = uv_tcp_bind(h, ai->ai_addr, ai->ai_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
		if (rc == 0)
			rc = uv_listen((uv_stream_t *)h, 128, on_tls_connection);
		if (rc < 0) {
			rc = dcr_err_set(err, rc, "--listen %s: %s", spec, uv_strerror(rc));
			goto out;
		}
		if (uv_tcp_getsockname(h, (struct sockaddr *)&ss, &len) == 0) {
			if (ss.ss_family == AF_INET) {
				const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
				inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
				bport = ntohs(a->sin_port);
			} else if (ss.ss_family == AF_INET6) {
				const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
				inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
				bport = ntohs(a->sin6_port);
			}
		}
		fprintf(stderr, "dcrd: listening on tls:%s%s%s:%u (TLS 1.3, fingerprint %s)\n",
		        ss.ss_family == AF_INET6 ? "[" : "", ip, ss.ss_family == AF_INET6 ? "]" : "",
		        bport, fingerprint);
	}
	rc = 0;
out:
	freeaddrinfo(res);
	return rc;
}

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
	tcp_close_all(s);
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

/* The listening socket at path, created with mode 0600 (Linux gives the
 * file the mode of the socket's inode less the umask, and fchmod sets
 * that before bind), then given its group and its mode: at no moment is
 * it open to more than its final mode allows, whatever the umask. */
static int listen_socket(const char *path, unsigned mode, bool set_gid, uint32_t gid, int *fd_out,
                         dcr_err *err)
{
	struct sockaddr_un sa;
	bool bound = false;
	int fd, rc = 0;

	*fd_out = -1;
	if (strlen(path) >= sizeof sa.sun_path)
		return dcr_err_set(err, DCR_ELIMIT, "socket path longer than %zu bytes: %s",
		                   sizeof sa.sun_path - 1, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return dcr_err_set(err, -errno, "socket for %s: %s", path, strerror(errno));
	if (fchmod(fd, 0600) < 0) {
		rc = dcr_err_set(err, -errno, "socket for %s: fchmod: %s", path, strerror(errno));
		goto out;
	}
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		rc = dcr_err_set(err, -errno, "listening on %s: %s", path, strerror(errno));
		goto out;
	}
	bound = true;
	if (set_gid && chown(path, (uid_t)-1, (gid_t)gid) < 0) {
		rc = dcr_err_set(err, -errno, "socket %s: giving it group %u (--socket-group): %s",
		                 path, (unsigned)gid, strerror(errno));
		goto out;
	}
	if (chmod(path, mode) < 0) {
		rc = dcr_err_set(err, -errno, "socket %s: mode %03o (--socket-mode): %s", path,
		                 mode, strerror(errno));
		goto out;
	}
	if (listen(fd, 128) < 0) {
		rc = dcr_err_set(err, -errno, "listening on %s: %s", path, strerror(errno));
		goto out;
	}
	*fd_out = fd;
	fd = -1;
out:
	if (fd >= 0) {
		close(fd);
		if (bound)
			unlink(path);
	}
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
	char tls_fp[DCR_TLS_FINGERPRINT_BYTES] = "";
	const char *env;
	int lock_fd = -1, rc;

	memset(&s, 0, sizeof s);
	pthread_mutex_init(&s.members.mu, NULL);
	dcr_random(&s.members.seed, sizeof s.members.seed);
	d->opt = *opt;
	d->dir = dcr_strdup(opt->data_dir);
	d->start_mono_ms = dcr_mono_ms();
	/* Each part sets up its own state and lock; jobs subscribes to the
	 * rooms' durable events, so rooms come first. */
	dmn__rooms_init(d);
	dmn__waiters_init(d);
	dmn__uploads_init(d);
	dmn__quota_init(d);
	dmn__image_cache_init(d,
	                      opt->image_cache_bytes == DMN_IMAGE_CACHE_OFF ? 0
	                      : opt->image_cache_bytes ? opt->image_cache_bytes
	                                               : dmn_default_image_cache_bytes());
	dmn__jobs_init(d);
	dmn__rooms_on_durable(d, members_on_durable, &s.members);
	dmn__admit_init(d);
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
	if (opt->nlisten) {
		/* the TLS key and certificate, made at the first start with
		 * --listen (docs/daemon.md "TLS listeners") */
		char *tdir = dcr_asprintf("%s/%s", d->dir, DMN_TLS_DIR);
		bool made = false;
		uint8_t fp[DCR_SHA256_BYTES];
		rc = dcr_tls_server_open(tdir, &s.tls, &made, err);
		if (rc == 0) {
			dcr_tls_server_fingerprint(s.tls, fp);
			dcr_tls_fingerprint_format(fp, tls_fp);
			if (made)
				dmn__log(d, DMN_LOG_INFO, "created TLS key %s/%s, fingerprint %s", tdir,
				         DCR_TLS_KEY_FILE, tls_fp);
		}
		free(tdir);
		if (rc < 0)
			goto out;
	}
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
	if (rc == 0)
		rc = dmn__admit_start(d, err);
	if (rc < 0)
		goto out;
	rc = dmn__quota_start(d, err);
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
	s.max_conns = opt->max_conns ? (unsigned)opt->max_conns : DMN_CONNS_MAX;
	s.max_per_key =
	    opt->max_conns_per_key ? (unsigned)opt->max_conns_per_key : DMN_CONNS_PER_KEY_MAX;
	s.max_per_addr =
	    opt->max_conns_per_addr ? (unsigned)opt->max_conns_per_addr : DMN_CONNS_PER_ADDR_MAX;
	s.max_strangers =
	    opt->max_stranger_conns ? (unsigned)opt->max_stranger_conns : DMN_STRANGER_CONNS_MAX;
	s.stranger_idle_ms =
	    1000 * (opt->stranger_idle_s ? opt->stranger_idle_s : DMN_STRANGER_IDLE_S);
	s.max_handshakes = opt->max_tls_handshakes ? (unsigned)opt->max_tls_handshakes
	                                           : DMN_TLS_HANDSHAKES_MAX;
	s.hs_timeout_ms = opt->tls_handshake_timeout_ms ? opt->tls_handshake_timeout_ms
	                                                : DMN_TLS_HANDSHAKE_TIMEOUT_MS;
	if (s.tls) {
		s.tls_rbuf = dcr_malloc(READ_BUF_BYTES);
		s.tcp = dcr_calloc(TCP_LISTENERS_MAX, sizeof *s.tcp);
	}
	/* Defaults follow a lower --max-conns; values given must fit it. */
	if (s.max_per_addr > s.max_conns)
		s.max_per_addr = s.max_conns;
	if (!opt->max_conns_per_key && s.max_per_key >= s.max_conns)
		s.max_per_key = s.max_conns - 1;
	if (!opt->max_stranger_conns && s.max_strangers >= s.max_conns)
		s.max_strangers = s.max_conns / 2;
	if (s.max_per_key >= s.max_conns || s.max_strangers >= s.max_conns) {
		/* one key, or the keys in no room, could take every slot */
		rc = dcr_err_set(err, DCR_EINVALID,
		                 "--max-conns-per-key (%u) and --max-stranger-conns (%u) must be "
		                 "below --max-conns (%u)",
		                 s.max_per_key, s.max_strangers, s.max_conns);
		goto out;
	}
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
	{
		int fd = -1;
		rc = listen_socket(s.socket_path,
		                   opt->socket_mode ? opt->socket_mode : DMN_SOCKET_MODE,
		                   opt->socket_group_set, opt->socket_gid, &fd, err);
		if (rc < 0) {
			uv_close((uv_handle_t *)&s.listen, NULL);
			uv_run(&loop, UV_RUN_DEFAULT);
			goto out;
		}
		rc = uv_pipe_open(&s.listen, fd);
		if (rc < 0)
			close(fd); /* once opened, the handle owns it */
		else
			rc = uv_listen((uv_stream_t *)&s.listen, 128, on_connection);
		if (rc < 0) {
			rc = dcr_err_set(err, DCR_EINTERNAL, "listening on %s: %s", s.socket_path,
			                 uv_strerror(rc));
			uv_close((uv_handle_t *)&s.listen, NULL);
			uv_run(&loop, UV_RUN_DEFAULT);
			unlink(s.socket_path);
			goto out;
		}
	}
	for (unsigned i = 0; i < opt->nlisten; i++) {
		rc = listen_tcp(&s, opt->listen[i], tls_fp, err);
		if (rc < 0) {
			uv_close((uv_handle_t *)&s.listen, NULL);
			tcp_close_all(&s);
			uv_run(&loop, UV_RUN_DEFAULT);
			unlink(s.socket_path);
			goto out;
		}
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
		tcp_close_all(&s);
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
	DCR_ASSERT(s.budget.used_bytes == 0 && s.budget.wait_head == NULL && s.unauthed == 0 &&
	           s.handshakes == 0);
	dmn__log(d, DMN_LOG_INFO,
	         "frame budget: peak %llu of %llu bytes, %llu frames waited for it",
	         (unsigned long long)s.budget.peak_bytes, (unsigned long long)s.budget.max_bytes,
	         (unsigned long long)s.budget.waits);
	rc = 0;
out:
	dmn__admit_stop(d); /* no request waits for a check any more */
	if (started_jobs)
		dmn__jobs_stop(d);
	dmn__quota_stop(d);
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
	dmn__admit_release(d);
	dmn__image_cache_free(d);
	dmn__uploads_release(d);
	dmn__quota_release_all(d);
	dmn__waiters_release(d);
	dmn__rooms_free(d);
	dcr_key_free(d->key);
	free(s.members.slots);
	pthread_mutex_destroy(&s.members.mu);
	dcr_tls_server_free(s.tls);
	free(s.tls_rbuf);
	free(s.tcp);
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
