/* fs_proto.c: the mount's backend over the proto client (see fs.h).
 *
 * The client does one request at a time per connection, and FUSE serves
 * requests from several threads, so calls take a connection from a small
 * pool (blocking while all are busy). A connection that failed at the
 * transport level is closed and reopened on next use.
 *
 * Uploads: cl_provision pulls the file through a read callback, while
 * FUSE pushes writes. Each upload therefore runs cl_provision on its own
 * thread and its own connection, fed by a bounded ring (FS_RING_BYTES): a
 * write blocks while the ring is full, so memory stays bounded whatever
 * the file size. end(commit) marks the end of the data and waits for the
 * daemon's verdict; end(abort) makes the read callback fail, so nothing is
 * provisioned.
 *
 * Events go through one witness of the room (proto/witness.h, under
 * wmu): each fetch checks the host's latest checkpoint against the one
 * remembered and the new events against its root, with a Merkle frontier,
 * so following a room costs O(log n) per batch of new events. */
#include <pthread.h>
#include <unistd.h>

#include "fs.h"
#include "../proto/proto.h"
#include "../proto/witness.h"

#define FS_RING_BYTES (8u * 1024 * 1024)

typedef struct pconn {
	cl_conn *c;
	bool busy;
} pconn;

struct fs_proto {
	char *socket, *server, *pin; /* where to connect (cl_addr) */
	cl_addr addr;                /* points into the three above */
	const char *name;            /* the server or the socket, for messages */
	const dcr_key *id;
	uint8_t room[ES_ROOM_ID_BYTES];
	uint8_t daemon[32];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pconn *conns;
	unsigned nconns;
	pthread_mutex_t wmu; /* guards wit */
	cl_witness *wit;
};

typedef struct upload {
	fs_proto *p;
	cl_conn *c;
	char *dataset, *file;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t *ring;
	size_t head, len; /* ring: bytes [head, head+len) mod size */
	bool eof, abort, done;
	int rc;
	dcr_err err;
} upload;

static bool transport_error(int rc)
{
	return rc == DCR_EPROTO || (rc < 0 && rc > -4096 && rc != -ENOENT && rc != -EACCES);
}

/* The daemon is unreachable (socket gone, refused, ...): EIO for the file
 * tools, not the connect's own errno (ENOENT would read as "no such file"). */
static int connect_fail(fs_proto *p, int rc, dcr_err *err)
{
	if (rc < 0 && rc > -4096) {
		dcr_err_prefix(err, "daemon at %s unreachable", p->name);
		if (err)
			err->code = -EIO;
		return -EIO;
	}
	return rc;
}

static int pool_get(fs_proto *p, pconn **out, bool *fresh, dcr_err *err)
{
	pconn *pc = NULL;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		for (unsigned i = 0; i < p->nconns; i++)
			if (!p->conns[i].busy) {
				pc = &p->conns[i];
				break;
			}
		if (pc)
			break;
		pthread_cond_wait(&p->cv, &p->mu);
	}
	pc->busy = true;
	pthread_mutex_unlock(&p->mu);
	*fresh = !pc->c;
	if (!pc->c) {
		int rc = cl_connect_addr(&p->addr, p->id, &pc->c, err);
		if (rc < 0) {
			rc = connect_fail(p, rc, err);
			pc->c = NULL;
			pthread_mutex_lock(&p->mu);
			pc->busy = false;
			pthread_cond_signal(&p->cv);
			pthread_mutex_unlock(&p->mu);
			return rc;
		}
	}
	*out = pc;
	return 0;
}

static void pool_put(fs_proto *p, pconn *pc, int rc)
{
	if (transport_error(rc)) {
		cl_close(pc->c);
		pc->c = NULL;
	}
	pthread_mutex_lock(&p->mu);
	pc->busy = false;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* One call on a pooled connection. A connection kept from before may be
 * dead (the daemon restarted since it was last used): a transport error on
 * it is retried once on a new connection, which is safe because a request
 * to a daemon that is gone was never handled, and a repeated submit or run
 * would be refused (its seq or run id is taken), never applied twice. */
#define WITH_CONN(p, err, call)                                                                    \
	do {                                                                                       \
		for (int try_ = 0;; try_++) {                                                      \
			pconn *pc_;                                                                \
			bool fresh_;                                                               \
			int rc_ = pool_get((p), &pc_, &fresh_, (err));                             \
			if (rc_ < 0)                                                               \
				return rc_;                                                        \
			cl_conn *c = pc_->c;                                                       \
			rc_ = (call);                                                              \
			pool_put((p), pc_, rc_);                                                   \
			if (fresh_ || try_ > 0 || !transport_error(rc_))                           \
				return rc_;                                                        \
			dcr_err_clear(err);                                                        \
		}                                                                                  \
	} while (0)

/* The events after `from` (what the fs applied so far), checked by the
 * witness, which has verified exactly those `from` events before. */
static int witness_events(fs_proto *p, cl_conn *c, uint64_t from,
                          int (*fn)(void *fctx, uint64_t seq, const void *entry, size_t n),
                          void *fctx, dcr_err *err)
{
	int rc;

	pthread_mutex_lock(&p->wmu);
	if (from != cl_witness_size(p->wit))
		rc = dcr_err_set(err, DCR_EINTERNAL,
		                 "the mount asked for events from %llu, its witness verified %llu",
		                 (unsigned long long)from,
		                 (unsigned long long)cl_witness_size(p->wit));
	else
		rc = cl_witness_events(c, p->wit, fn, fctx, NULL, err);
	pthread_mutex_unlock(&p->wmu);
	return rc;
}

static int pb_events(void *ctx, uint64_t from,
                     int (*fn)(void *fctx, uint64_t seq, const void *entry, size_t n), void *fctx,
                     dcr_err *err)
{
	fs_proto *p = ctx;
	WITH_CONN(p, err, witness_events(p, c, from, fn, fctx, err));
}

static int pb_submit(void *ctx, const char *type, const void *body, size_t n, dcr_err *err)
{
	fs_proto *p = ctx;
	WITH_CONN(p, err, cl_submit(c, p->room, type, body, n, NULL, err));
}

static int pb_run(void *ctx, const char *comp, char run_id[33], dcr_err *err)
{
	fs_proto *p = ctx;
	WITH_CONN(p, err, cl_run(c, p->room, comp, run_id, err));
}

static int run_status_conv(cl_conn *c, const uint8_t *room, const char *comp, fs_run_status *out,
                           dcr_err *err)
{
	cl_run_status st;
	memset(&st, 0, sizeof st);
	int rc = cl_run_status(c, room, comp, &st, err);
	if (rc < 0)
		return rc;
	memset(out, 0, sizeof *out);
	memcpy(out->run_id, st.run_id, sizeof out->run_id);
	memcpy(out->state, st.state, sizeof out->state);
	out->run_id[sizeof out->run_id - 1] = 0;
	out->state[sizeof out->state - 1] = 0;
	snprintf(out->error, sizeof out->error, "%s", st.error ? st.error : "");
	snprintf(out->detail, sizeof out->detail, "%s", st.detail ? st.detail : "");
	out->rows = st.rows;
	out->suppressed = st.suppressed;
	out->duration_ms = st.duration_ms;
	out->result_bytes = st.result_bytes;
	cl_run_status_release(&st);
	return 0;
}

static int pb_run_status(void *ctx, const char *comp, fs_run_status *st, dcr_err *err)
{
	fs_proto *p = ctx;
	WITH_CONN(p, err, run_status_conv(c, p->room, comp, st, err));
}

static int pb_result_open(void *ctx, const char *comp, char run_id[33], uint64_t *size,
                          dcr_err *err)
{
	fs_proto *p = ctx;
	WITH_CONN(p, err, cl_result_open(c, p->room, comp, run_id, size, err));
}

static int pb_result_read(void *ctx, const char *run_id, uint64_t off, void *buf, size_t cap,
                          dcr_err *err)
{
	fs_proto *p = ctx;
	WITH_CONN(p, err, cl_result_read(c, p->room, run_id, off, buf, cap, err));
}

static int pb_logs_read(void *ctx, const char *run_id, uint64_t off, void *buf, size_t cap,
                        uint64_t *size, dcr_err *err)
{
	fs_proto *p = ctx;
	WITH_CONN(p, err, cl_logs_read(c, p->room, run_id, off, buf, cap, size, err));
}

static int pb_data_read(void *ctx, const char *dataset, const uint8_t sha256[32], uint64_t off,
                        void *buf, size_t cap, dcr_err *err)
{
	fs_proto *p = ctx;
	WITH_CONN(p, err, cl_data_read(c, p->room, dataset, sha256, off, buf, cap, NULL, err));
}

static int pb_drop_read(void *ctx, const char *dataset, const char *file,
                        const uint8_t sha256[32], uint64_t off, void *buf, size_t cap,
                        dcr_err *err)
{
	fs_proto *p = ctx;
	WITH_CONN(p, err,
	          cl_drop_read(c, p->room, dataset, file, sha256, off, buf, cap, NULL, err));
}

static int pb_stats(void *ctx, const char *dataset, dcr_buf *json, dcr_err *err)
{
	fs_proto *p = ctx;
	WITH_CONN(p, err, cl_stats(c, p->room, dataset, json, err));
}

static int pb_room_test(void *ctx, dcr_buf *report, dcr_err *err)
{
	fs_proto *p = ctx;
	WITH_CONN(p, err, cl_room_test(c, p->room, report, err));
}

/* ---- uploads ------------------------------------------------------------------ */

/* cl_provision's read callback: blocks for data; 0 at the end. */
static int up_read(void *ctx, void *buf, size_t cap)
{
	upload *u = ctx;
	size_t n = 0;
	pthread_mutex_lock(&u->mu);
	while (u->len == 0 && !u->eof && !u->abort)
		pthread_cond_wait(&u->cv, &u->mu);
	if (u->abort) {
		pthread_mutex_unlock(&u->mu);
		return -ECANCELED;
	}
	while (n < cap && u->len > 0) {
		size_t run = FS_RING_BYTES - u->head;
		if (run > u->len)
			run = u->len;
		if (run > cap - n)
			run = cap - n;
		memcpy((uint8_t *)buf + n, u->ring + u->head, run);
		u->head = (u->head + run) % FS_RING_BYTES;
		u->len -= run;
		n += run;
	}
	pthread_cond_broadcast(&u->cv);
	pthread_mutex_unlock(&u->mu);
	return (int)n;
}

static void *up_thread(void *arg)
{
	upload *u = arg;
	dcr_err err = {0};
	int rc =
	    cl_provision(u->c, u->p->room, u->dataset, u->file, 0, up_read, u, NULL, NULL, &err);
	pthread_mutex_lock(&u->mu);
	u->rc = rc;
	u->err = err;
	u->done = true;
	pthread_cond_broadcast(&u->cv);
	pthread_mutex_unlock(&u->mu);
	return NULL;
}

static void up_free(upload *u)
{
	if (u->c)
		cl_close(u->c);
	pthread_mutex_destroy(&u->mu);
	pthread_cond_destroy(&u->cv);
	free(u->ring);
	free(u->dataset);
	free(u->file);
	free(u);
}

static int pb_upload_begin(void *ctx, const char *dataset, const char *file_name, void **up,
                           dcr_err *err)
{
	fs_proto *p = ctx;
	upload *u = dcr_calloc(1, sizeof *u);
	u->p = p;
	u->dataset = dcr_strdup(dataset);
	u->file = dcr_strdup(file_name);
	pthread_mutex_init(&u->mu, NULL);
	pthread_cond_init(&u->cv, NULL);
	u->ring = dcr_malloc(FS_RING_BYTES);
	int rc = cl_connect_addr(&p->addr, p->id, &u->c, err);
	if (rc < 0) {
		u->c = NULL;
		up_free(u);
		return connect_fail(p, rc, err);
	}
	if (pthread_create(&u->th, NULL, up_thread, u) != 0) {
		up_free(u);
		return dcr_err_set(err, -EAGAIN, "cannot start the upload thread");
	}
	*up = u;
	return 0;
}

static int pb_upload_write(void *up, const void *data, size_t n, dcr_err *err)
{
	upload *u = up;
	const uint8_t *s = data;
	int rc = 0;
	pthread_mutex_lock(&u->mu);
	while (n > 0) {
		while (u->len == FS_RING_BYTES && !u->done)
			pthread_cond_wait(&u->cv, &u->mu);
		if (u->done) {
			/* The daemon already answered (a rejection) before the end. */
			rc = u->rc < 0 ? u->rc : DCR_EPROTO;
			if (err)
				*err = u->err;
			if (u->rc >= 0)
				dcr_err_set(err, DCR_EPROTO, "upload ended before the data");
			break;
		}
		size_t tail = (u->head + u->len) % FS_RING_BYTES;
		size_t run = FS_RING_BYTES - u->len;
		if (run > FS_RING_BYTES - tail)
			run = FS_RING_BYTES - tail;
		if (run > n)
			run = n;
		memcpy(u->ring + tail, s, run);
		u->len += run;
		s += run;
		n -= run;
		pthread_cond_broadcast(&u->cv);
	}
	pthread_mutex_unlock(&u->mu);
	return rc;
}

static int pb_upload_end(void *up, bool commit, dcr_err *err)
{
	upload *u = up;
	pthread_mutex_lock(&u->mu);
	if (commit)
		u->eof = true;
	else
		u->abort = true;
	pthread_cond_broadcast(&u->cv);
	pthread_mutex_unlock(&u->mu);
	pthread_join(u->th, NULL);
	int rc = u->rc;
	if (commit && rc < 0 && err)
		*err = u->err;
	if (!commit)
		rc = 0;
	up_free(u);
	return rc;
}

/* ---- lifecycle ------------------------------------------------------------------ */

int fs_proto_new(const struct cl_addr *addr, const dcr_key *id, const uint8_t room[ES_ROOM_ID_BYTES],
                 unsigned conns, fs_proto **out, dcr_err *err)
{
	fs_proto *p = dcr_calloc(1, sizeof *p);
	p->socket = addr->socket ? dcr_strdup(addr->socket) : NULL;
	p->server = addr->server ? dcr_strdup(addr->server) : NULL;
	p->pin = addr->pin ? dcr_strdup(addr->pin) : NULL;
	p->addr.socket = p->socket;
	p->addr.server = p->server;
	p->addr.pin = p->pin;
	p->name = p->server ? p->server : p->socket ? p->socket : "$DCR_SOCKET";
	p->id = id;
	memcpy(p->room, room, ES_ROOM_ID_BYTES);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	pthread_mutex_init(&p->wmu, NULL);
	p->nconns = conns ? conns : 4;
	p->conns = dcr_calloc(p->nconns, sizeof *p->conns);
	/* the first connection now: fails early, and gives the daemon key */
	int rc = cl_connect_addr(&p->addr, p->id, &p->conns[0].c, err);
	if (rc < 0) {
		p->conns[0].c = NULL;
		fs_proto_free(p);
		*out = NULL;
		return rc;
	}
	memcpy(p->daemon, cl_daemon_key(p->conns[0].c), 32);
	rc = cl_witness_new(cl_server_name(p->conns[0].c), room, NULL, &p->wit, err);
	if (rc < 0) {
		fs_proto_free(p);
		*out = NULL;
		return rc;
	}
	*out = p;
	return 0;
}

void fs_proto_free(fs_proto *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->nconns; i++)
		cl_close(p->conns[i].c);
	free(p->conns);
	cl_witness_free(p->wit);
	pthread_mutex_destroy(&p->wmu);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->socket);
	free(p->server);
	free(p->pin);
	free(p);
}

static int pb_dev_run(void *ctx, const char *language, const char *script,
                      const char *const *inputs, size_t ninputs, char run_id[33], dcr_err *err)
{
	fs_proto *p = ctx;
	WITH_CONN(p, err, cl_dev_run(c, p->room, language, script, inputs, ninputs, run_id, err));
}

static int dev_status_conv(cl_conn *c, const uint8_t *room, const char *run_id,
                           fs_dev_status *out, dcr_err *err)
{
	cl_dev_status *st = NULL;
	size_t n = 0;
	int rc = cl_dev_status_get(c, room, run_id, &st, &n, err);
	if (rc == 0 && n != 1)
		rc = dcr_err_set(err, DCR_EPROTO, "dev.status: %zu runs for one id", n);
	if (rc == 0) {
		memset(out, 0, sizeof *out);
		snprintf(out->state, sizeof out->state, "%s", st->state);
		snprintf(out->error, sizeof out->error, "%s", st->error ? st->error : "");
		snprintf(out->detail, sizeof out->detail, "%s", st->detail ? st->detail : "");
		out->logs = st->logs;
	}
	cl_dev_status_free(st, n);
	return rc;
}

static int pb_dev_status(void *ctx, const char *run_id, fs_dev_status *st, dcr_err *err)
{
	fs_proto *p = ctx;
	WITH_CONN(p, err, dev_status_conv(c, p->room, run_id, st, err));
}

static int pb_dev_read(void *ctx, const char *run_id, const char *what, uint64_t off, void *buf,
                       size_t cap, dcr_err *err)
{
	fs_proto *p = ctx;
	WITH_CONN(p, err, cl_dev_read(c, p->room, run_id, what, off, buf, cap, NULL, err));
}

const uint8_t *fs_proto_daemon_key(const fs_proto *p)
{
	return p->daemon;
}

void fs_proto_backend(fs_proto *p, fs_backend *be)
{
	memset(be, 0, sizeof *be);
	be->ctx = p;
	be->events = pb_events;
	be->submit = pb_submit;
	be->upload_begin = pb_upload_begin;
	be->upload_write = pb_upload_write;
	be->upload_end = pb_upload_end;
	be->run = pb_run;
	be->run_status = pb_run_status;
	be->result_open = pb_result_open;
	be->result_read = pb_result_read;
	be->logs_read = pb_logs_read;
	be->data_read = pb_data_read;
	be->drop_read = pb_drop_read;
	be->stats = pb_stats;
	be->room_test = pb_room_test;
	be->dev_run = pb_dev_run;
	be->dev_status = pb_dev_status;
	be->dev_read = pb_dev_read;
}
