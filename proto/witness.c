/* witness.c: the client's witness of a host's room logs (witness.h).
 *
 * Files, in the checkpoints directory (docs/event-format.md 8.3, 8.4):
 *   S-ROOM           the remembered checkpoint of ROOM on server S, where S
 *                    is the first 8 bytes of SHA-256(server name) in hex
 *                    (a server name may hold '/' and be long); the file
 *                    holds the name itself
 *   S-ROOM.lock      flock'ed around check and update
 *   evidence/ROOM-H.evidence   two signed checkpoints that disagree; H is
 *                    the first 8 bytes of SHA-256(remembered || presented),
 *                    so the same lie seen again names the same file
 *
 * Every rule is the eventstore's: es_checkpoint_verify,
 * es_verify_consistency, es_leaf_hash and the frontier. The witness only
 * decides which checkpoint to compare with which. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "witness.h"

#define WIT_FORMAT      "dcr.witness/1"
#define WIT_EV_FORMAT   "dcr.witness-evidence/1"
#define WIT_SID_BYTES   8

struct cl_witness {
	char *dir, *server, *path, *lock_path;
	uint8_t room[ES_ROOM_ID_BYTES];
	char room_hex[ES_ROOM_HEX_BYTES];
	bool have_last; /* last: the newest checkpoint this object verified */
	es_checkpoint last;
	/* the remembered file as the last full check left it (exists, inode,
	 * size, mtime), for the fast path of cl_witness_checkpoint */
	bool file_known, file_exists;
	struct stat file_st;
	es_frontier front; /* the events verified, front.size of them */
};

static void hex32(const uint8_t h[32], char out[65])
{
	dcr_hex_encode(h, 32, out);
}

char *cl_witness_dir(bool create, dcr_err *err)
{
	char *base = dcr_config_dir(create, err), *dir;

	if (!base)
		return NULL;
	dir = dcr_asprintf("%s/checkpoints", base);
	free(base);
	if (create && mkdir(dir, 0700) != 0 && errno != EEXIST) {
		dcr_err_set(err, -errno, "cannot create %s: %s", dir, strerror(errno));
		free(dir);
		return NULL;
	}
	return dir;
}

static char *record_path(const char *dir, const char *server, const uint8_t room[ES_ROOM_ID_BYTES])
{
	uint8_t h[DCR_SHA256_BYTES];
	char sid[2 * WIT_SID_BYTES + 1], hex[ES_ROOM_HEX_BYTES];

	dcr_sha256(server, strlen(server), h);
	dcr_hex_encode(h, WIT_SID_BYTES, sid);
	es_room_format(room, hex);
	return dcr_asprintf("%s/%s-%s", dir, sid, hex);
}

int cl_witness_new(const char *server, const uint8_t room[ES_ROOM_ID_BYTES], const char *dir,
                   cl_witness **out, dcr_err *err)
{
	cl_witness *w;

	*out = NULL;
	w = dcr_calloc(1, sizeof *w);
	w->dir = dir ? dcr_strdup(dir) : cl_witness_dir(false, err);
	if (!w->dir) {
		free(w);
		return err && err->code ? err->code : DCR_EINVALID;
	}
	w->server = dcr_strdup(server);
	memcpy(w->room, room, ES_ROOM_ID_BYTES);
	es_room_format(room, w->room_hex);
	w->path = record_path(w->dir, server, room);
	w->lock_path = dcr_asprintf("%s.lock", w->path);
	es_frontier_init(&w->front);
	*out = w;
	return 0;
}

void cl_witness_free(cl_witness *w)
{
	if (!w)
		return;
	free(w->dir);
	free(w->server);
	free(w->path);
	free(w->lock_path);
	free(w);
}

uint64_t cl_witness_size(const cl_witness *w)
{
	return w->front.size;
}

/* ---- the remembered file --------------------------------------------------- */

static void record_encode(dcr_buf *out, const char *server, const es_checkpoint *cp)
{
	dcr_buf cpb;
	dcr_mpw w;

	dcr_buf_init(&cpb);
	es_checkpoint_encode(cp, &cpb);
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 3);
	dcr_mpw_str(&w, "checkpoint");
	dcr_mpw_bin(&w, cpb.data, cpb.len);
	dcr_mpw_str(&w, "format");
	dcr_mpw_str(&w, WIT_FORMAT);
	dcr_mpw_str(&w, "server");
	dcr_mpw_str(&w, server);
	dcr_buf_release(&cpb);
}

/* Reads and checks the file at path: exactly the three keys, a checkpoint
 * whose signature verifies. */
static int record_read(const char *path, cl_witness_record *r, dcr_err *err)
{
	dcr_buf b;
	dcr_mp_doc *d = NULL;
	const dcr_mpv *root;
	const uint8_t *p;
	const char *s;
	size_t n;
	int rc;

	memset(r, 0, sizeof *r);
	dcr_buf_init(&b);
	if (access(path, F_OK) != 0 && errno == ENOENT) {
		rc = DCR_ENOTFOUND;
		goto out;
	}
	rc = dcr_read_file(path, CL_WITNESS_FILE_BYTES_MAX, &b, err);
	if (rc < 0)
		goto out;
	rc = dcr_mp_parse(b.data, b.len, &dcr_mp_limits_default, &d, err);
	if (rc < 0)
		goto bad;
	root = dcr_mp_root(d);
	if (dcr_mp_type(root) != DCR_MP_MAP || dcr_mp_len(root) != 3) {
		rc = dcr_err_set(err, DCR_EFORMAT, "not a map of checkpoint, format, server");
		goto bad;
	}
	if ((rc = dcr_mp_get_str(root, "format", &s, &n, err)) < 0)
		goto bad;
	if (n != strlen(WIT_FORMAT) || memcmp(s, WIT_FORMAT, n) != 0) {
		rc = dcr_err_set(err, DCR_EFORMAT, "format is not %s", WIT_FORMAT);
		goto bad;
	}
	if ((rc = dcr_mp_strdup(dcr_mp_get(root, "server"), &r->server)) < 0) {
		dcr_err_set(err, rc, "no server");
		goto bad;
	}
	if ((rc = dcr_mp_get_bin(root, "checkpoint", &p, &n, err)) < 0 ||
	    (rc = es_checkpoint_decode(p, n, &r->cp, err)) < 0 ||
	    (rc = es_checkpoint_verify(&r->cp, err)) < 0)
		goto bad;
	r->path = dcr_strdup(path);
	rc = 0;
	goto out;
bad:
	dcr_err_prefix(err, "the remembered checkpoint %s is damaged (remove it with `dcr audit "
	                    "witness ROOM --forget` to trust the host anew)",
	               path);
	free(r->server);
	r->server = NULL;
out:
	dcr_mp_doc_free(d);
	dcr_buf_release(&b);
	return rc;
}

void cl_witness_record_release(cl_witness_record *r)
{
	if (!r)
		return;
	free(r->server);
	free(r->path);
	r->server = r->path = NULL;
}

void cl_witness_records_free(cl_witness_record *r, size_t n)
{
	for (size_t i = 0; r && i < n; i++)
		cl_witness_record_release(&r[i]);
	free(r);
}

int cl_witness_load(const char *dir, const char *server, const uint8_t room[ES_ROOM_ID_BYTES],
                    cl_witness_record *out, dcr_err *err)
{
	char *path = record_path(dir, server, room);
	int rc = record_read(path, out, err);

	if (rc == DCR_ENOTFOUND)
		dcr_err_set(err, rc, "no checkpoint of this room remembered for %s", server);
	free(path);
	return rc;
}

static bool is_record_name(const char *s)
{
	size_t n = strlen(s);

	if (n != 2 * WIT_SID_BYTES + 1 + 32 || s[2 * WIT_SID_BYTES] != '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (i != 2 * WIT_SID_BYTES && !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int cl_witness_list(const char *dir, cl_witness_record **out, size_t *nout, dcr_err *err)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	cl_witness_record *v = NULL;
	size_t n = 0, cap = 0;

	*out = NULL;
	*nout = 0;
	if (!dp) {
		if (errno == ENOENT)
			return 0;
		return dcr_err_set(err, -errno, "%s: %s", dir, strerror(errno));
	}
	while ((e = readdir(dp)) != NULL) {
		char *path;
		dcr_err e2;
		if (!is_record_name(e->d_name))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			v = dcr_realloc(v, cap * sizeof *v);
		}
		path = dcr_asprintf("%s/%s", dir, e->d_name);
		dcr_err_clear(&e2);
		if (record_read(path, &v[n], &e2) == 0)
			n++;
		else
			fprintf(stderr, "dcr: skipping %s\n", e2.msg);
		free(path);
	}
	closedir(dp);
	*out = v;
	*nout = n;
	return 0;
}

/* The per-room lock: an exclusive flock on S-ROOM.lock (made if absent).
 * Returns the fd or a negative code. */
static int lock_take(const char *lock_path, dcr_err *err)
{
	int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return dcr_err_set(err, -errno, "%s: %s", lock_path, strerror(errno));
	while (flock(fd, LOCK_EX) != 0) {
		if (errno == EINTR)
			continue;
		int rc = dcr_err_set(err, -errno, "locking %s: %s", lock_path, strerror(errno));
		close(fd);
		return rc;
	}
	return fd;
}

static void lock_drop(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

int cl_witness_forget(const char *dir, const char *server, const uint8_t room[ES_ROOM_ID_BYTES],
                      dcr_err *err)
{
	char *path = record_path(dir, server, room);
	char *lock_path = dcr_asprintf("%s.lock", path);
	int fd = -1, rc;

	if (access(path, F_OK) != 0) {
		rc = dcr_err_set(err, DCR_ENOTFOUND, "no checkpoint of this room remembered for %s",
		                 server);
		goto out;
	}
	fd = lock_take(lock_path, err);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	rc = unlink(path) == 0 ? 0 : dcr_err_set(err, -errno, "%s: %s", path, strerror(errno));
out:
	lock_drop(fd);
	free(lock_path);
	free(path);
	return rc;
}

/* ---- evidence ----------------------------------------------------------------- */

static void evidence_encode(dcr_buf *out, const char *kind, const char *server,
                            const char *room_hex, const es_checkpoint *rem,
                            const es_checkpoint *pre, const uint8_t (*proof)[32], size_t proof_n)
{
	dcr_buf a, b;
	dcr_mpw w;

	dcr_buf_init(&a);
	dcr_buf_init(&b);
	es_checkpoint_encode(rem, &a);
	es_checkpoint_encode(pre, &b);
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 8);
	dcr_mpw_str(&w, "detected_ms");
	dcr_mpw_uint(&w, dcr_now_ms());
	dcr_mpw_str(&w, "format");
	dcr_mpw_str(&w, WIT_EV_FORMAT);
	dcr_mpw_str(&w, "kind");
	dcr_mpw_str(&w, kind);
	dcr_mpw_str(&w, "presented");
	dcr_mpw_bin(&w, b.data, b.len);
	dcr_mpw_str(&w, "proof");
	dcr_mpw_array(&w, (uint32_t)proof_n);
	for (size_t i = 0; i < proof_n; i++)
		dcr_mpw_bin(&w, proof[i], 32);
	dcr_mpw_str(&w, "remembered");
	dcr_mpw_bin(&w, a.data, a.len);
	dcr_mpw_str(&w, "room");
	dcr_mpw_str(&w, room_hex);
	dcr_mpw_str(&w, "server");
	dcr_mpw_str(&w, server);
	dcr_buf_release(&a);
	dcr_buf_release(&b);
}

/* Writes the evidence file (once per pair of checkpoints) and returns its
 * path (heap), or NULL when it could not be written (why in *why). */
static char *evidence_write(cl_witness *w, const char *kind, const es_checkpoint *rem,
                            const es_checkpoint *pre, const uint8_t (*proof)[32], size_t proof_n,
                            dcr_err *why)
{
	dcr_buf out, pair;
	uint8_t h[DCR_SHA256_BYTES];
	char hx[2 * WIT_SID_BYTES + 1];
	char *evdir = dcr_asprintf("%s/evidence", w->dir), *path = NULL;

	dcr_buf_init(&out);
	dcr_buf_init(&pair);
	es_checkpoint_encode(rem, &pair);
	es_checkpoint_encode(pre, &pair);
	dcr_sha256(pair.data, pair.len, h);
	dcr_hex_encode(h, WIT_SID_BYTES, hx);
	if (mkdir(evdir, 0700) != 0 && errno != EEXIST) {
		dcr_err_set(why, -errno, "%s: %s", evdir, strerror(errno));
		goto out;
	}
	path = dcr_asprintf("%s/%s-%s.evidence", evdir, w->room_hex, hx);
	if (access(path, F_OK) == 0)
		goto out; /* the same two checkpoints, kept already */
	evidence_encode(&out, kind, w->server, w->room_hex, rem, pre, proof, proof_n);
	if (dcr_write_file_atomic(path, out.data, out.len, 0644, why) != 0) {
		free(path);
		path = NULL;
	}
out:
	free(evdir);
	dcr_buf_release(&out);
	dcr_buf_release(&pair);
	return path;
}

/* Refuses the host: evidence file, then the message. */
static int refuse(cl_witness *w, const char *kind, const char *what, const es_checkpoint *rem,
                  const es_checkpoint *pre, const uint8_t (*proof)[32], size_t proof_n,
                  dcr_err *err)
{
	char a[65], b[65];
	dcr_err why;
	char *path;
	int rc;

	dcr_err_clear(&why);
	path = evidence_write(w, kind, rem, pre, proof, proof_n, &why);
	hex32(rem->root, a);
	hex32(pre->root, b);
	rc = dcr_err_set(err, DCR_EINTEGRITY,
	                 "room %s: the host %s: it signed %llu events with root %s, now %llu "
	                 "with root %s; refused; both signed checkpoints are in %s",
	                 w->room_hex, what, (unsigned long long)rem->size, a,
	                 (unsigned long long)pre->size, b,
	                 path ? path : why.msg[0] ? why.msg : "(no evidence file)");
	free(path);
	return rc;
}

static int refuse_key(cl_witness *w, const es_checkpoint *rem, const es_checkpoint *pre,
                      dcr_err *err)
{
	char *k1 = dcr_pub_format(rem->key), *k2 = dcr_pub_format(pre->key);
	dcr_err why;
	char *path;
	int rc;

	dcr_err_clear(&why);
	path = evidence_write(w, "key", rem, pre, NULL, 0, &why);
	rc = dcr_err_set(err, DCR_EINTEGRITY,
	                 "room %s: the host signs with daemon key %s, this client saw the room "
	                 "signed by %s (%llu events); refused; both checkpoints are in %s (after "
	                 "checking a key change with the host: dcr audit witness ROOM --forget)",
	                 w->room_hex, k2, k1, (unsigned long long)rem->size,
	                 path ? path : why.msg[0] ? why.msg : "(no evidence file)");
	free(path);
	free(k1);
	free(k2);
	return rc;
}

/* ---- the check ------------------------------------------------------------------- */

/* Is cp (verified, new) an honest successor of base (remembered)? 0,
 * DCR_EINTEGRITY (refused), or the error fetching a proof. */
static int check_against(cl_conn *c, cl_witness *w, const es_checkpoint *base,
                         const es_checkpoint *cp, dcr_err *err)
{
	uint8_t proof[ES_PROOF_HASHES_MAX][32];
	size_t proof_n = 0;
	int rc;

	if (memcmp(base->key, cp->key, 32) != 0)
		return refuse_key(w, base, cp, err);
	if (cp->size < base->size)
		return refuse(w, "shorter", "shows a shorter log than before", base, cp, NULL, 0,
		              err);
	if (cp->size == base->size) {
		if (memcmp(cp->root, base->root, 32) == 0)
			return 0;
		return refuse(w, "fork", "shows another log of the same size", base, cp, NULL, 0,
		              err);
	}
	if (base->size == 0) /* the empty tree is a prefix of every tree */
		return 0;
	rc = cl_consistency_proof(c, w->room, base->size, cp->size, proof, &proof_n, err);
	if (rc < 0) {
		dcr_err_prefix(err, "room %s: consistency proof from %llu to %llu events",
		               w->room_hex, (unsigned long long)base->size,
		               (unsigned long long)cp->size);
		return rc;
	}
	if (es_verify_consistency(base->size, cp->size, base->root, cp->root,
	                          (const uint8_t(*)[32])proof, proof_n) != 0)
		return refuse(w, "inconsistent", "rewrote the log it signed before", base, cp,
		              (const uint8_t(*)[32])proof, proof_n, err);
	return 0;
}

static bool cp_equal(const es_checkpoint *a, const es_checkpoint *b)
{
	return a->size == b->size && a->ts_ms == b->ts_ms &&
	       memcmp(a->room, b->room, sizeof a->room) == 0 &&
	       memcmp(a->root, b->root, sizeof a->root) == 0 &&
	       memcmp(a->key, b->key, sizeof a->key) == 0 &&
	       memcmp(a->sig, b->sig, sizeof a->sig) == 0;
}

static void file_note(cl_witness *w)
{
	w->file_exists = stat(w->path, &w->file_st) == 0;
	w->file_known = true;
}

static bool file_unchanged(const cl_witness *w)
{
	struct stat st;
	bool exists = stat(w->path, &st) == 0;

	if (!w->file_known || exists != w->file_exists)
		return false;
	return !exists ||
	       (st.st_ino == w->file_st.st_ino && st.st_dev == w->file_st.st_dev &&
	        st.st_size == w->file_st.st_size &&
	        st.st_mtim.tv_sec == w->file_st.st_mtim.tv_sec &&
	        st.st_mtim.tv_nsec == w->file_st.st_mtim.tv_nsec);
}

static int checkpoint_full(cl_conn *c, cl_witness *w, es_checkpoint *cp_out, dcr_err *err);

int cl_witness_checkpoint(cl_conn *c, cl_witness *w, es_checkpoint *cp_out, dcr_err *err)
{
	es_checkpoint cp;
	int rc;

	DCR_ASSERT(strcmp(cl_server_name(c), w->server) == 0);
	/* Fast path of a follower (the mount, every 200 ms): the host's latest
	 * is byte for byte the checkpoint this object verified last, and no
	 * client changed the remembered file since: nothing new to check. */
	if (w->have_last) {
		rc = cl_checkpoint(c, w->room, &cp, err);
		if (rc < 0)
			return rc;
		if (cp_equal(&cp, &w->last) && file_unchanged(w)) {
			if (cp_out)
				*cp_out = cp;
			return 0;
		}
	}
	return checkpoint_full(c, w, cp_out, err);
}

/* The full check, under the room's lock. */
static int checkpoint_full(cl_conn *c, cl_witness *w, es_checkpoint *cp_out, dcr_err *err)
{
	cl_witness_record rem;
	const es_checkpoint *base = NULL;
	es_checkpoint cp;
	bool have_rem = false;
	int fd = -1, rc;

	memset(&rem, 0, sizeof rem);
	if (mkdir(w->dir, 0700) != 0 && errno != EEXIST) {
		/* the configuration directory itself may be missing */
		char *d = cl_witness_dir(true, err);
		if (!d)
			return err && err->code ? err->code : DCR_EINVALID;
		free(d);
	}
	fd = lock_take(w->lock_path, err);
	if (fd < 0)
		return fd;
	/* Fetched under the lock: a checkpoint another client remembered
	 * meanwhile is never newer than the host's latest, if it is honest. */
	rc = cl_checkpoint(c, w->room, &cp, err);
	if (rc < 0)
		goto out;
	if ((rc = es_checkpoint_verify(&cp, err)) < 0) {
		dcr_err_prefix(err, "room %s: the host's checkpoint", w->room_hex);
		goto out;
	}
	if (memcmp(cp.room, w->room, ES_ROOM_ID_BYTES) != 0 ||
	    memcmp(cp.key, cl_daemon_key(c), 32) != 0) {
		rc = dcr_err_set(err, DCR_EINTEGRITY,
		                 "room %s: the host's checkpoint is not signed by its key for this "
		                 "room",
		                 w->room_hex);
		goto out;
	}
	rc = record_read(w->path, &rem, err);
	if (rc < 0 && rc != DCR_ENOTFOUND)
		goto out;
	have_rem = rc == 0;
	if (have_rem)
		base = &rem.cp;
	if (w->have_last && (!base || base->size < w->last.size || memcmp(base->key, w->last.key, 32)))
		base = &w->last; /* what this object verified is never given up */
	if (base && (rc = check_against(c, w, base, &cp, err)) < 0)
		goto out;
	if (base == &w->last && have_rem && (rc = check_against(c, w, &rem.cp, &cp, err)) < 0)
		goto out;
	if (!have_rem || cp.size > rem.cp.size) {
		dcr_buf b;
		dcr_buf_init(&b);
		record_encode(&b, w->server, &cp);
		rc = dcr_write_file_atomic(w->path, b.data, b.len, 0600, err);
		dcr_buf_release(&b);
		if (rc < 0)
			goto out;
	}
	if (!w->have_last || cp.size >= w->last.size) {
		w->last = cp;
		w->have_last = true;
	}
	file_note(w);
	if (cp_out)
		*cp_out = cp;
	rc = 0;
out:
	lock_drop(fd);
	cl_witness_record_release(&rem);
	return rc;
}

typedef struct fetch_ctx {
	cl_witness *w;
	es_frontier f;
	uint64_t next;
	es_fold_fn fn;
	void *ctx;
	dcr_err *err;
} fetch_ctx;

static int fetch_one(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	fetch_ctx *x = ctx;
	uint8_t leaf[32];

	if (seq != x->next)
		return dcr_err_set(x->err, DCR_EPROTO, "room %s: the host sent event %llu for %llu",
		                   x->w->room_hex, (unsigned long long)seq,
		                   (unsigned long long)x->next);
	es_leaf_hash(entry, n, leaf);
	es_frontier_append(&x->f, leaf);
	x->next++;
	return x->fn(x->ctx, seq, entry, n);
}

int cl_witness_events(cl_conn *c, cl_witness *w, es_fold_fn fn, void *ctx, es_checkpoint *cp_out,
                      dcr_err *err)
{
	es_checkpoint cp;
	fetch_ctx *x = NULL;
	uint8_t root[32];
	int rc;

	rc = cl_witness_checkpoint(c, w, &cp, err);
	if (rc < 0)
		return rc;
	/* cl_witness_checkpoint refused anything shorter than what we verified */
	DCR_ASSERT(cp.size >= w->front.size);
	x = dcr_calloc(1, sizeof *x);
	x->w = w;
	x->f = w->front;
	x->next = w->front.size;
	x->fn = fn;
	x->ctx = ctx;
	x->err = err;
	if (cp.size > x->next) {
		rc = cl_events(c, w->room, x->next, cp.size, fetch_one, x, err);
		if (rc != 0)
			goto out;
	}
	if (x->next != cp.size) {
		rc = dcr_err_set(err, DCR_EINTEGRITY,
		                 "room %s: the host signed %llu events but served %llu", w->room_hex,
		                 (unsigned long long)cp.size, (unsigned long long)x->next);
		goto out;
	}
	es_frontier_root(&x->f, root);
	if (memcmp(root, cp.root, 32) != 0) {
		char a[65], b[65];
		hex32(cp.root, a);
		hex32(root, b);
		rc = dcr_err_set(err, DCR_EINTEGRITY,
		                 "room %s: the %llu events the host served do not hash to the root "
		                 "it signed (%s; computed %s): refused",
		                 w->room_hex, (unsigned long long)cp.size, a, b);
		goto out;
	}
	w->front = x->f;
	if (cp_out)
		*cp_out = cp;
	rc = 0;
out:
	free(x);
	return rc;
}

/* ---- evidence files, read back ----------------------------------------------------- */

void cl_witness_evidence_release(cl_witness_evidence *ev)
{
	if (!ev)
		return;
	free(ev->server);
	ev->server = NULL;
}

static int get_cp(const dcr_mpv *root, const char *key, es_checkpoint *cp, dcr_err *err)
{
	const uint8_t *p;
	size_t n;
	int rc;

	if ((rc = dcr_mp_get_bin(root, key, &p, &n, err)) < 0 ||
	    (rc = es_checkpoint_decode(p, n, cp, err)) < 0 || (rc = es_checkpoint_verify(cp, err)) < 0)
		dcr_err_prefix(err, "%s checkpoint", key);
	return rc;
}

int cl_witness_evidence_check(const void *p, size_t n, cl_witness_evidence *ev, bool *conclusive,
                              dcr_err *err)
{
	dcr_mp_doc *d = NULL;
	const dcr_mpv *root, *arr;
	const es_checkpoint *a = &ev->remembered, *b = &ev->presented;
	const char *s;
	size_t sn;
	int rc;

	memset(ev, 0, sizeof *ev);
	*conclusive = false;
	if (n > CL_WITNESS_EVIDENCE_BYTES_MAX)
		return dcr_err_set(err, DCR_ELIMIT, "more than %u bytes",
		                   (unsigned)CL_WITNESS_EVIDENCE_BYTES_MAX);
	if ((rc = dcr_mp_parse(p, n, &dcr_mp_limits_default, &d, err)) < 0)
		goto out;
	root = dcr_mp_root(d);
	if (dcr_mp_type(root) != DCR_MP_MAP || dcr_mp_len(root) != 8) {
		rc = dcr_err_set(err, DCR_EFORMAT, "not a map of the 8 evidence fields");
		goto out;
	}
	if ((rc = dcr_mp_get_str(root, "format", &s, &sn, err)) < 0)
		goto out;
	if (sn != strlen(WIT_EV_FORMAT) || memcmp(s, WIT_EV_FORMAT, sn) != 0) {
		rc = dcr_err_set(err, DCR_EFORMAT, "format is not %s", WIT_EV_FORMAT);
		goto out;
	}
	if ((rc = dcr_mp_get_str(root, "kind", &s, &sn, err)) < 0)
		goto out;
	if (sn == 0 || sn >= sizeof ev->kind) {
		rc = dcr_err_set(err, DCR_EFORMAT, "kind: unknown");
		goto out;
	}
	memcpy(ev->kind, s, sn);
	if ((rc = dcr_mp_get_u64(root, "detected_ms", &ev->detected_ms, err)) < 0)
		goto out;
	if ((rc = dcr_mp_strdup(dcr_mp_get(root, "server"), &ev->server)) < 0) {
		dcr_err_set(err, rc, "server: not a string");
		goto out;
	}
	if ((rc = dcr_mp_get_str(root, "room", &s, &sn, err)) < 0)
		goto out;
	{
		char hex[ES_ROOM_HEX_BYTES];
		if (sn != 32) {
			rc = dcr_err_set(err, DCR_EFORMAT, "room: not 32 hex digits");
			goto out;
		}
		memcpy(hex, s, 32);
		hex[32] = 0;
		if ((rc = es_room_parse(hex, ev->room)) < 0) {
			dcr_err_set(err, rc, "room: not 32 hex digits");
			goto out;
		}
	}
	arr = dcr_mp_get(root, "proof");
	if (dcr_mp_type(arr) != DCR_MP_ARRAY || dcr_mp_len(arr) > ES_PROOF_HASHES_MAX) {
		rc = dcr_err_set(err, DCR_EFORMAT, "proof: not an array of at most %d hashes",
		                 ES_PROOF_HASHES_MAX);
		goto out;
	}
	for (uint32_t i = 0; i < dcr_mp_len(arr); i++) {
		const uint8_t *h;
		if (dcr_mp_bin(dcr_mp_at(arr, i), &h, &sn) < 0 || sn != 32) {
			rc = dcr_err_set(err, DCR_EFORMAT, "proof[%u]: not a 32-byte hash", i);
			goto out;
		}
		memcpy(ev->proof[i], h, 32);
	}
	ev->proof_n = dcr_mp_len(arr);
	if ((rc = get_cp(root, "remembered", &ev->remembered, err)) < 0 ||
	    (rc = get_cp(root, "presented", &ev->presented, err)) < 0)
		goto out;
	if (memcmp(a->room, ev->room, ES_ROOM_ID_BYTES) || memcmp(b->room, ev->room, ES_ROOM_ID_BYTES)) {
		rc = dcr_err_set(err, DCR_EINVALID, "the checkpoints are not of the file's room");
		goto out;
	}
	rc = dcr_err_set(err, DCR_EINVALID, "the checkpoints do not show what kind \"%s\" claims",
	                 ev->kind);
	if (strcmp(ev->kind, "key") == 0) {
		if (memcmp(a->key, b->key, 32) != 0)
			rc = 0;
		goto out;
	}
	if (memcmp(a->key, b->key, 32) != 0)
		goto out;
	if (strcmp(ev->kind, "fork") == 0) {
		if (a->size == b->size && memcmp(a->root, b->root, 32) != 0) {
			rc = 0;
			*conclusive = true;
		}
	} else if (strcmp(ev->kind, "shorter") == 0) {
		if (b->size < a->size) {
			rc = 0;
			*conclusive = b->ts_ms > a->ts_ms;
		}
	} else if (strcmp(ev->kind, "inconsistent") == 0) {
		if (a->size < b->size && a->size > 0 &&
		    es_verify_consistency(a->size, b->size, a->root, b->root,
		                          (const uint8_t(*)[32])ev->proof, ev->proof_n) != 0)
			rc = 0;
	}
	if (rc == 0)
		dcr_err_clear(err);
out:
	if (rc < 0)
		cl_witness_evidence_release(ev);
	dcr_mp_doc_free(d);
	return rc;
}
