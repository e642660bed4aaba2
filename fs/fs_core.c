/* fs_core.c: the mounted room as a pure model (no libfuse; see fs.h).
 *
 * Nodes: every path ever looked up gets an inode number for the life of
 * the mount (never reused), kept in a table of (parent, name). What a node
 * *is* is decided on each use by resolving its name against the current
 * room state, so a dataset dropped by a new draft simply stops resolving
 * (ENOENT) and no cache of the state can go stale.
 *
 * Local files ("lfiles") are the only mutable things: files being written
 * into datasets/NAME/ (and temporary files at the root, for editors of
 * room.json). Final names stream to the daemon as they are written and are
 * committed at flush (close); temporary and editor names (fs_is_temp_name)
 * are spooled to a private local directory (0700, files 0600) and are
 * ingested only if renamed to a final name. Memory stays bounded: nothing
 * holds a whole dataset file.
 *
 * Locking: f->mu protects the state, the node table and the lfile list.
 * It is never held across a backend call. lf->mu serialises the I/O of one
 * lfile and is taken before f->mu when both are needed. f->refresh_mu
 * serialises fetching and applying events. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "../compute/compute.h"
#include "../room/room.h"

enum kind {
	K_NONE,
	K_ROOT,
	K_README,
	K_ROOMJSON,
	K_STATUS,
	K_CTL,
	K_AUDIT,
	K_TESTOUT,
	K_EVENTS,
	K_EVENT,
	K_DATASETS,
	K_DS,
	K_DS_SCHEMA,
	K_DS_STATUS,
	K_DS_STATS,
	K_DS_DATA, /* the provisioned file, by its original name */
	K_COMPS,
	K_COMP,
	K_COMP_SOURCE, /* query.sql | script.py | script.R | synthetic.json */
	K_COMP_RUN,
	K_COMP_STATUS,
	K_COMP_RESULT,
	K_REQUESTS,
	K_DEV,
	K_LFILE,
};

enum lf_state { LF_IDLE, LF_STREAM, LF_DONE, LF_FAILED };

typedef struct lfile {
	uint64_t ino;
	uint64_t dir; /* parent inode */
	char *name;
	char *dataset; /* NULL at the root */
	bool temp;
	int fd; /* spool file (temp only) */
	char *spool;
	_Atomic uint64_t size; /* written under mu, read under f->mu */
	_Atomic int state;     /* enum lf_state; as size */
	void *up;              /* backend upload while LF_STREAM */
	int opens;
	bool linked; /* in f->lfiles (not unlinked/renamed away) */
	_Atomic uint64_t mtime_ms;
	uint64_t mtime_ns; /* set by a tool (utimens), 0: none */
	int mode;          /* permission bits set by a tool (chmod), -1: none */
	bool holds;        /* this upload holds a pending rm of the dataset's file */
	uint64_t writer;   /* process writing it (for the refusal of a second one) */
	/* Local check of the first FS_CHECK_BYTES_MAX bytes (table datasets),
	 * so a bad row fails the write(2) that carries it. */
	cmp_ingest *chk;
	uint64_t chk_bytes;
	pthread_mutex_t mu;
	struct lfile *next;
} lfile;

/* An rm of the provisioned file, applied after a grace period unless a new
 * file for the dataset is written first (install, tar -x, rsync --delete
 * delete before they write): a rejected new file then leaves the earlier
 * data as it was. */
typedef struct pdep {
	char *dataset, *file;
	uint8_t sha256[32];
	uint64_t due_ms; /* monotonic */
	uint64_t at_ms;  /* wall clock of the rm */
	int uploads;     /* uploads of the dataset begun since the rm */
	struct pdep *next;
} pdep;

/* Mode and mtime a tool set on a provisioned file (rsync -a, cp -p), kept
 * by this mount for as long as that provision is the current one. */
typedef struct pmeta {
	char *dataset;
	uint8_t sha256[32];
	int mode;          /* -1: none */
	uint64_t mtime_ns; /* 0: none */
	struct pmeta *next;
} pmeta;

typedef struct node {
	uint64_t parent;
	char *name;         /* NULL once renamed away */
	uint64_t hnext;     /* next ino in the hash chain, 0 = end */
	uint64_t last_size; /* size of the last backend-made content */
	uint64_t size_gen;  /* events applied + 1 when last_size was made; 0: never */
} node;

typedef struct dserr {
	char *dataset;
	char *msg;
	struct dserr *next;
} dserr;

struct fs {
	fs_options opt;
	char *mountpoint;
	fs_backend be;
	pthread_mutex_t mu;
	pthread_mutex_t refresh_mu;
	rm_state st;
	/* events as applied */
	dcr_buf *entries;
	uint8_t (*leaves)[32];
	size_t nentries, cap_entries;
	dcr_buf audit;
	char *fatal; /* an event the room rules refused: replay stopped */
	uint64_t reported_size;
	bool force_inval;
	uint64_t fetched_ms; /* monotonic time of the last fetch */
	uint8_t root_hash[32];
	uint64_t root_size;
	/* nodes: ino i is nodes[i - 1] */
	node *nodes;
	size_t nnodes, cap_nodes;
	uint64_t *buckets;
	size_t nbuckets;
	lfile *lfiles;
	size_t nlfiles;
	char *spool_dir;
	uint64_t spool_seq;
	dserr *dserrs;
	char *last_error; /* last failed action through this mount */
	dcr_buf test_out;
	bool have_test_out;
	uint64_t mount_ms;
	pdep *pending;     /* rm of provisioned files not yet applied */
	pmeta *metas;      /* mode/mtime of provisioned files */
	char *daemon_err;  /* the daemon does not answer: why (NULL: it does) */
	uint64_t daemon_down_ms;
};

struct fs_file {
	enum kind kind;
	uint64_t ino;
	int flags;
	dcr_buf buf; /* read snapshot, or room.json being written */
	bool dirty;
	lfile *lf;
	char *name; /* dataset or computation */
	char run_id[33];
	uint64_t size;
	uint8_t sha256[DCR_SHA256_BYTES]; /* K_DS_DATA: the provision being read */
	uint64_t opener; /* process that opened it (0: unknown) */
	bool ran;        /* `run`: this open already requested its run */
};

struct desc {
	enum kind kind;
	const char *ds;
	const char *comp;
	uint64_t seq;
	lfile *lf;
	const rm_provision *prov;
};

/* ---- small helpers ------------------------------------------------------- */

int fs_errno(int code)
{
	if (code >= 0)
		return 0;
	if (code <= DCR__ERR_BASE || code >= DCR__ERR_END)
		return -code; /* already -errno */
	switch (code) {
	case DCR_EDENIED:
		return EACCES;
	case DCR_ENOTFOUND:
		return ENOENT;
	case DCR_EEXIST:
		return EEXIST;
	case DCR_ESTATE:
		return EPERM;
	case DCR_ELIMIT:
		return EFBIG;
	case DCR_ETIMEOUT:
		return ETIMEDOUT;
	case DCR_ESEQ:
		return EAGAIN;
	case DCR_EINVALID:
	case DCR_EFORMAT:
	case DCR_ECSV:
	case DCR_ESQL:
	case DCR_ETRUNC:
	case DCR_ETRAILING:
	case DCR_ENONCANON:
		return EINVAL;
	default:
		return EIO;
	}
}

static bool has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);
	return n >= m && memcmp(s + n - m, suf, m) == 0;
}

bool fs_is_temp_name(const char *name)
{
	static const char *const sufs[] = {".swp",  ".swo", ".swx",       "~",
	                                   ".part", ".tmp", ".crdownload"};
	if (name[0] == '.') /* .x.XXXXXX (rsync, mkstemp), ._*, .DS_Store, .fuse_hidden* */
		return true;
	for (size_t i = 0; i < sizeof sufs / sizeof sufs[0]; i++)
		if (has_suffix(name, sufs[i]))
			return true;
	return false;
}

static bool key_eq(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, 32) == 0;
}

static void iso_time(uint64_t ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void json_str(dcr_buf *b, const char *s)
{
	dcr_json_str(b, s, strlen(s));
}

/* The actor's name (rm_actor_name, full key), in a compound literal. */
#define ACTOR_NAME(f, key)                                                                         \
	rm_actor_name((f)->st.def, (f)->st.daemon_key, (key), RM_ACTOR_FULL,                       \
	              (char[RM_ACTOR_NAME_BYTES]){0}, RM_ACTOR_NAME_BYTES)

static void set_last_error(fs *f, const char *what, const dcr_err *err)
{
	char ts[32];
	iso_time(dcr_now_ms(), ts);
	pthread_mutex_lock(&f->mu);
	free(f->last_error);
	f->last_error =
	    dcr_asprintf("%s %s: %s", ts, what, err->msg[0] ? err->msg : dcr_strerror(err->code));
	pthread_mutex_unlock(&f->mu);
}

/* Per-dataset upload message (shown in datasets/NAME/status); f->mu held. */
static void set_dserr_locked(fs *f, const char *dataset, char *msg)
{
	dserr *e;
	for (e = f->dserrs; e; e = e->next)
		if (strcmp(e->dataset, dataset) == 0)
			break;
	if (!e) {
		e = dcr_calloc(1, sizeof *e);
		e->dataset = dcr_strdup(dataset);
		e->next = f->dserrs;
		f->dserrs = e;
	}
	free(e->msg);
	e->msg = msg;
}

static void set_dserr(fs *f, const char *dataset, char *msg)
{
	pthread_mutex_lock(&f->mu);
	set_dserr_locked(f, dataset, msg);
	pthread_mutex_unlock(&f->mu);
}

static const char *get_dserr(const fs *f, const char *dataset)
{
	for (const dserr *e = f->dserrs; e; e = e->next)
		if (strcmp(e->dataset, dataset) == 0)
			return e->msg;
	return NULL;
}

/* ---- interrupts ------------------------------------------------------------ */

static _Thread_local bool (*tl_interrupted)(void *);
static _Thread_local void *tl_interrupted_arg;

void fs_set_interrupt(bool (*fn)(void *arg), void *arg)
{
	tl_interrupted = fn;
	tl_interrupted_arg = arg;
}

static bool interrupted(void)
{
	return tl_interrupted && tl_interrupted(tl_interrupted_arg);
}

/* ---- pending rm and kept modes (f->mu held) -------------------------------- */

static pdep *pdep_find(fs *f, const char *ds)
{
	for (pdep *p = f->pending; p; p = p->next)
		if (strcmp(p->dataset, ds) == 0)
			return p;
	return NULL;
}

static void pdep_remove(fs *f, pdep *p)
{
	for (pdep **pp = &f->pending; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	free(p->dataset);
	free(p->file);
	free(p);
	f->force_inval = true;
}

/* Is this provision hidden by a pending rm? */
static bool pdep_hides(fs *f, const char *ds, const uint8_t sha256[32])
{
	pdep *p = pdep_find(f, ds);
	return p && memcmp(p->sha256, sha256, 32) == 0;
}

static pmeta *pmeta_find(fs *f, const char *ds, const uint8_t sha256[32], bool create)
{
	for (pmeta *m = f->metas; m; m = m->next)
		if (strcmp(m->dataset, ds) == 0) {
			if (memcmp(m->sha256, sha256, 32) != 0) { /* another provision now */
				if (!create)
					return NULL;
				memcpy(m->sha256, sha256, 32);
				m->mode = -1;
				m->mtime_ns = 0;
			}
			return m;
		}
	if (!create)
		return NULL;
	pmeta *m = dcr_calloc(1, sizeof *m);
	m->dataset = dcr_strdup(ds);
	memcpy(m->sha256, sha256, 32);
	m->mode = -1;
	m->next = f->metas;
	f->metas = m;
	return m;
}

/* ---- node table ------------------------------------------------------------ */

static uint64_t name_hash(uint64_t parent, const char *name)
{
	uint64_t h = 1469598103934665603ull ^ parent;
	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 1099511628211ull;
	return h;
}

static node *node_at(fs *f, uint64_t ino)
{
	if (ino == 0 || ino > f->nnodes)
		return NULL;
	return &f->nodes[ino - 1];
}

static void bucket_insert(fs *f, uint64_t ino)
{
	node *n = node_at(f, ino);
	size_t b = name_hash(n->parent, n->name) & (f->nbuckets - 1);
	n->hnext = f->buckets[b];
	f->buckets[b] = ino;
}

static void bucket_remove(fs *f, uint64_t ino)
{
	node *n = node_at(f, ino);
	size_t b = name_hash(n->parent, n->name) & (f->nbuckets - 1);
	uint64_t *pp = &f->buckets[b];
	while (*pp && *pp != ino)
		pp = &node_at(f, *pp)->hnext;
	if (*pp)
		*pp = n->hnext;
	n->hnext = 0;
}

static uint64_t node_find(fs *f, uint64_t parent, const char *name)
{
	size_t b = name_hash(parent, name) & (f->nbuckets - 1);
	for (uint64_t i = f->buckets[b]; i; i = node_at(f, i)->hnext) {
		node *n = node_at(f, i);
		if (n->parent == parent && strcmp(n->name, name) == 0)
			return i;
	}
	return 0;
}

static uint64_t node_get(fs *f, uint64_t parent, const char *name)
{
	uint64_t ino = node_find(f, parent, name);
	if (ino)
		return ino;
	if (f->nnodes == f->cap_nodes) {
		f->cap_nodes = f->cap_nodes ? f->cap_nodes * 2 : 64;
		f->nodes = dcr_realloc(f->nodes, f->cap_nodes * sizeof *f->nodes);
	}
	if (f->nnodes + 1 > f->nbuckets) { /* keep load <= 1 */
		size_t nb = f->nbuckets ? f->nbuckets * 2 : 64;
		free(f->buckets);
		f->buckets = dcr_calloc(nb, sizeof *f->buckets);
		f->nbuckets = nb;
		for (size_t i = 0; i < f->nnodes; i++)
			if (f->nodes[i].name)
				bucket_insert(f, i + 1);
	}
	node *n = &f->nodes[f->nnodes++];
	memset(n, 0, sizeof *n);
	n->parent = parent;
	n->name = dcr_strdup(name);
	ino = f->nnodes;
	bucket_insert(f, ino);
	return ino;
}

/* Moves inode ino to (parent, name); whatever held that name loses it. */
static void node_move(fs *f, uint64_t ino, uint64_t parent, const char *name)
{
	uint64_t old = node_find(f, parent, name);
	if (old == ino)
		return;
	if (old) {
		bucket_remove(f, old);
		free(node_at(f, old)->name);
		node_at(f, old)->name = NULL;
	}
	node *n = node_at(f, ino);
	bucket_remove(f, ino);
	free(n->name);
	n->parent = parent;
	n->name = dcr_strdup(name);
	bucket_insert(f, ino);
}

/* ---- resolution ------------------------------------------------------------ */

static lfile *lfile_find(fs *f, uint64_t dir, const char *name)
{
	for (lfile *l = f->lfiles; l; l = l->next)
		if (l->dir == dir && strcmp(l->name, name) == 0)
			return l;
	return NULL;
}

static bool is_participant(const fs *f)
{
	return rm_may_read_room(&f->st, f->opt.me);
}

static bool is_creator(const fs *f)
{
	return f->st.status != RM_NONE && key_eq(f->st.creator, f->opt.me);
}

static const char *comp_source_name(const rm_computation *c)
{
	switch (c->kind) {
	case RM_COMP_PYTHON:
		return "script.py";
	case RM_COMP_R:
		return "script.R";
	case RM_COMP_SYNTHETIC:
		return "synthetic.json";
	default:
		return "query.sql";
	}
}

static const rm_run *last_done_run(const fs *f, const char *comp)
{
	for (size_t i = f->st.nruns; i-- > 0;) {
		const rm_run *r = &f->st.runs[i];
		if (strcmp(r->computation, comp) == 0 && r->state == RM_RUN_DONE)
			return r;
	}
	return NULL;
}

static bool parse_event_name(const char *name, uint64_t *seq)
{
	if (strlen(name) != 18 || strcmp(name + 12, ".event") != 0)
		return false;
	uint64_t v = 0;
	for (int i = 0; i < 12; i++) {
		if (name[i] < '0' || name[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	*seq = v;
	return true;
}

/* Resolves a child name of a resolved directory. f->mu held. */
static int resolve_child(fs *f, uint64_t dir, const struct desc *pd, const char *name,
                         struct desc *d)
{
	memset(d, 0, sizeof *d);
	const rm_def *def = f->st.def;
	if (strlen(name) > FS_NAME_BYTES_MAX)
		return -ENAMETOOLONG;
	lfile *lf = lfile_find(f, dir, name);
	if (lf) {
		d->kind = K_LFILE;
		d->lf = lf;
		d->ds = pd->ds;
		return 0;
	}
	switch (pd->kind) {
	case K_ROOT: {
		static const struct {
			const char *name;
			enum kind kind;
		} top[] = {
		    {"README", K_README},
		    {"room.json", K_ROOMJSON},
		    {"status", K_STATUS},
		    {"ctl", K_CTL},
		    {"audit.log", K_AUDIT},
		    {"test.out", K_TESTOUT},
		    {"events", K_EVENTS},
		    {"datasets", K_DATASETS},
		    {"computations", K_COMPS},
		    {"requests", K_REQUESTS},
		    {"dev", K_DEV},
		};
		for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
			if (strcmp(name, top[i].name) != 0)
				continue;
			if (top[i].kind == K_TESTOUT && !f->have_test_out)
				return -ENOENT;
			d->kind = top[i].kind;
			return 0;
		}
		return -ENOENT;
	}
	case K_EVENTS:
		if (!parse_event_name(name, &d->seq) || d->seq >= f->nentries)
			return -ENOENT;
		d->kind = K_EVENT;
		return 0;
	case K_DATASETS: {
		const rm_dataset *ds = def ? rm_def_dataset(def, name) : NULL;
		if (!ds)
			return -ENOENT;
		d->kind = K_DS;
		d->ds = ds->name;
		return 0;
	}
	case K_DS: {
		d->ds = pd->ds;
		const rm_provision *p = rm_state_provision(&f->st, pd->ds);
		if (strcmp(name, "schema.json") == 0) {
			d->kind = K_DS_SCHEMA;
			return 0;
		}
		if (strcmp(name, "status") == 0) {
			d->kind = K_DS_STATUS;
			return 0;
		}
		if (strcmp(name, "stats.json") == 0) {
			if (!p || !rm_may_read_stats(&f->st, f->opt.me, pd->ds))
				return -ENOENT;
			d->kind = K_DS_STATS;
			return 0;
		}
		if (p && p->file && strcmp(p->file, name) == 0 &&
		    rm_may_read_data(&f->st, f->opt.me, pd->ds) &&
		    !pdep_hides(f, pd->ds, p->sha256)) {
			d->kind = K_DS_DATA;
			d->prov = p;
			return 0;
		}
		return -ENOENT;
	}
	case K_COMPS: {
		const rm_computation *c = def ? rm_def_computation(def, name) : NULL;
		if (!c)
			return -ENOENT;
		d->kind = K_COMP;
		d->comp = c->name;
		return 0;
	}
	case K_COMP: {
		const rm_computation *c = rm_def_computation(def, pd->comp);
		d->comp = pd->comp;
		if (strcmp(name, comp_source_name(c)) == 0)
			d->kind = K_COMP_SOURCE;
		else if (strcmp(name, "run") == 0)
			d->kind = K_COMP_RUN;
		else if (strcmp(name, "status") == 0)
			d->kind = K_COMP_STATUS;
		else if (strcmp(name, "result.csv") == 0 && last_done_run(f, pd->comp))
			d->kind = K_COMP_RESULT;
		else
			return -ENOENT;
		return 0;
	}
	default:
		return -ENOENT;
	}
}

/* Resolves an inode by walking up to the root (depth <= 3). f->mu held. */
static int resolve(fs *f, uint64_t ino, struct desc *d)
{
	uint64_t chain[8];
	int depth = 0;
	memset(d, 0, sizeof *d);
	for (uint64_t i = ino; i != FS_ROOT_INO; i = node_at(f, i)->parent) {
		node *n = node_at(f, i);
		if (!n || !n->name || depth == 8)
			return -ENOENT;
		chain[depth++] = i;
	}
	d->kind = K_ROOT;
	uint64_t dir = FS_ROOT_INO;
	while (depth-- > 0) {
		struct desc pd = *d;
		int rc = resolve_child(f, dir, &pd, node_at(f, chain[depth])->name, d);
		if (rc < 0)
			return rc;
		dir = chain[depth];
	}
	return 0;
}

static bool is_dir_kind(enum kind k)
{
	return k == K_ROOT || k == K_EVENTS || k == K_DATASETS || k == K_DS || k == K_COMPS ||
	       k == K_COMP || k == K_REQUESTS || k == K_DEV;
}

/* ---- generated contents (f->mu held) --------------------------------------- */

static void gen_roles(fs *f, dcr_buf *b, const char *indent)
{
	const rm_def *def = f->st.def;
	const rm_participant *me = def ? rm_def_participant(def, f->opt.me) : NULL;
	bool any = false;
	if (is_creator(f)) {
		dcr_buf_printf(b, "%screator of the room (you edit the draft and publish it)\n",
		               indent);
		any = true;
	}
	if (me) {
		for (size_t i = 0; i < me->nowner_of; i++)
			dcr_buf_printf(b, "%sdata owner of dataset %s\n", indent, me->owner_of[i]);
		for (size_t i = 0; i < me->nanalyst_of; i++)
			dcr_buf_printf(b, "%sanalyst of computation %s\n", indent,
			               me->analyst_of[i]);
		dcr_buf_printf(b,
		               "%sparticipant and auditor (you read the definition, the log "
		               "and the shared statistics)\n",
		               indent);
		any = true;
	}
	if (!any)
		dcr_buf_printf(b, "%snone: you are not a participant of this room\n", indent);
}

static void gen_readme(fs *f, dcr_buf *b)
{
	const rm_def *def = f->st.def;
	const char *m = f->mountpoint ? f->mountpoint : ".";
	const rm_participant *me = def ? rm_def_participant(def, f->opt.me) : NULL;
	char hex[ES_ROOM_HEX_BYTES];
	es_room_format(f->opt.room, hex);
	dcr_buf_printf(b, "DATA CLEAN ROOM %s\n\n", def ? def->name : hex);
	if (def && def->description && def->description[0])
		dcr_buf_printf(b, "%s\n\n", def->description);
	dcr_buf_printf(b, "Room id %s, %s, %llu events.\n", hex, rm_status_name(f->st.status),
	               (unsigned long long)f->st.size);
	if (f->daemon_err) {
		char ts[32];
		iso_time(f->daemon_down_ms, ts);
		dcr_buf_printf(b,
		               "\nWARNING: the daemon does not answer since %s (%s).\n"
		               "Everything here is the room as of event %llu; nothing can be\n"
		               "provisioned or run until it is back (cat %s/status).\n\n",
		               ts, f->daemon_err, (unsigned long long)f->nentries, m);
	}
	if (f->st.status == RM_STOPPED)
		dcr_buf_printf(b, "The room is stopped: nothing more can be provisioned or run; the "
		                  "log, the statistics\nand the results stay readable.\n");
	dcr_buf_printf(b, "You are %s. Your roles:\n", me ? me->email : "(not a participant)");
	gen_roles(f, b, "  - ");
	dcr_buf_append_str(b, "\nWHAT IS HERE\n"
	                      "  README        this text\n"
	                      "  room.json     the room definition (the contract)\n"
	                      "  status        draft | published | stopped, events, Merkle root, "
	                      "last error\n"
	                      "  ctl           write publish, stop or test (the creator)\n"
	                      "  audit.log     one line per event: time, who, what\n"
	                      "  events/       every signed event as a raw file, for auditors\n"
	                      "  datasets/     one folder per dataset: schema.json, status, "
	                      "stats.json\n"
	                      "  computations/ one folder per computation: its source, run, "
	                      "status, result.csv\n"
	                      "  requests/     (coming later) proposals of new computations and "
	                      "their approvals\n"
	                      "  dev/          (coming later) development runs on data you may "
	                      "see\n");
	dcr_buf_append_str(b, "\nWHAT YOU CAN DO\n");
	dcr_buf_printf(b, "  cat %s/audit.log                 who did what, when\n", m);
	if (is_creator(f) && f->st.status == RM_DRAFT) {
		dcr_buf_printf(b,
		               "  cp room.json %s/room.json        save a new draft "
		               "(errors: cat %s/status)\n",
		               m, m);
		dcr_buf_printf(b,
		               "  echo test > %s/ctl; cat %s/test.out   test every "
		               "computation on empty inputs\n",
		               m, m);
		dcr_buf_printf(b, "  echo publish > %s/ctl            freeze the contract\n", m);
	}
	if (is_creator(f) && f->st.status != RM_STOPPED)
		dcr_buf_printf(b, "  echo stop > %s/ctl               stop the room\n", m);
	if (me && f->st.status != RM_STOPPED) {
		for (size_t i = 0; i < me->nowner_of; i++) {
			const char *ds = me->owner_of[i];
			dcr_buf_printf(b,
			               "  cp %s.csv %s/datasets/%s/   provision %s (rsync and "
			               "temp-then-rename drops work too;\n"
			               "      a bad file makes cp fail: cat "
			               "%s/datasets/%s/status)\n",
			               ds, m, ds, ds, m, ds);
			dcr_buf_printf(b, "  rm %s/datasets/%s/FILE           deprovision %s\n", m,
			               ds, ds);
		}
		for (size_t i = 0; i < me->nanalyst_of; i++) {
			const char *c = me->analyst_of[i];
			dcr_buf_printf(b,
			               "  echo > %s/computations/%s/run && cat "
			               "%s/computations/%s/result.csv\n",
			               m, c, m, c);
		}
	}
	if (def) {
		dcr_buf_append_str(b, "\nDATASETS\n");
		for (size_t i = 0; i < def->ndatasets; i++) {
			const rm_dataset *ds = &def->datasets[i];
			const rm_provision *p = rm_state_provision(&f->st, ds->name);
			dcr_buf_printf(b, "  %-24s %s", ds->name,
			               p ? "provisioned" : "not provisioned");
			if (p)
				dcr_buf_printf(b, " by %s", ACTOR_NAME(f, p->by));
			dcr_buf_append_str(b, "\n");
		}
		dcr_buf_append_str(b, "\nCOMPUTATIONS\n");
		for (size_t i = 0; i < def->ncomputations; i++) {
			const rm_computation *c = &def->computations[i];
			dcr_buf_printf(b, "  %-24s %s%s\n", c->name, rm_compkind_name(c->kind),
			               rm_may_read_result(&f->st, f->opt.me, c->name)
			                   ? " (you run it and read its results)"
			                   : "");
		}
	}
	dcr_buf_append_str(b, "\nWhat your roles do not allow fails with \"Permission denied\" "
	                      "(EACCES);\nother parties' rows are never shown here.\n");
}

static void gen_status(fs *f, dcr_buf *b)
{
	char hex[65];
	if (f->root_size != f->nentries) {
		es_merkle_root((const uint8_t(*)[32])f->leaves, f->nentries, f->root_hash);
		f->root_size = f->nentries;
	}
	dcr_buf_printf(b, "status: %s\n", rm_status_name(f->st.status));
	if (f->daemon_err) {
		char ts[32];
		iso_time(f->daemon_down_ms, ts);
		dcr_buf_printf(b, "daemon: unreachable since %s: %s (shown: the room as of the "
		                  "events below)\n",
		               ts, f->daemon_err);
	} else {
		dcr_buf_append_str(b, "daemon: connected\n");
	}
	dcr_buf_printf(b, "events: %llu\n", (unsigned long long)f->nentries);
	dcr_hex_encode(f->root_hash, 32, hex);
	dcr_buf_printf(b, "merkle_root: %s\n", hex);
	if (f->st.def) {
		dcr_hex_encode(f->st.def_sha256, 32, hex);
		dcr_buf_printf(b, "definition_sha256: %s\n", hex);
	}
	if (f->st.stop_reason)
		dcr_buf_printf(b, "stop_reason: %s\n", f->st.stop_reason);
	if (f->fatal)
		dcr_buf_printf(b, "replay_error: %s\n", f->fatal);
	if (f->last_error)
		dcr_buf_printf(b, "last_error: %s\n", f->last_error);
}

static void gen_schema(fs *f, const char *dsname, dcr_buf *b)
{
	const rm_dataset *ds = rm_def_dataset(f->st.def, dsname);
	dcr_buf_append_str(b, "{\n  \"name\": ");
	json_str(b, ds->name);
	dcr_buf_printf(b, ",\n  \"kind\": \"%s\",\n  \"required\": %s,\n  \"share_statistics\": %s",
	               rm_dskind_name(ds->kind), ds->required ? "true" : "false",
	               ds->share_statistics ? "true" : "false");
	dcr_buf_append_str(b, ",\n  \"columns\": [");
	for (size_t i = 0; i < ds->ncolumns; i++) {
		const rm_column *c = &ds->columns[i];
		dcr_buf_append_str(b, i ? ",\n    {\"name\": " : "\n    {\"name\": ");
		json_str(b, c->name);
		dcr_buf_printf(b, ", \"type\": \"%s\"", cmp_type_name(c->type));
		if (c->format != CMP_FMT_NONE)
			dcr_buf_printf(b, ", \"format\": \"%s\"", cmp_format_name(c->format));
		dcr_buf_printf(b, ", \"nullable\": %s}", c->nullable ? "true" : "false");
	}
	dcr_buf_append_str(b, ds->ncolumns ? "\n  ]\n}\n" : "]\n}\n");
}

static void gen_ds_status(fs *f, const char *dsname, dcr_buf *b)
{
	const rm_def *def = f->st.def;
	const rm_provision *p = rm_state_provision(&f->st, dsname);
	char ts[32], hex[65];
	dcr_buf_printf(b, "dataset: %s\nowners:", dsname);
	for (size_t i = 0; i < def->nparticipants; i++)
		if (rm_is_owner(def, def->participants[i].key, dsname))
			dcr_buf_printf(b, " %s", def->participants[i].email);
	dcr_buf_append_str(b, "\n");
	if (p) {
		iso_time(p->ts_ms, ts);
		dcr_hex_encode(p->sha256, 32, hex);
		dcr_buf_printf(b,
		               "state: provisioned\nby: %s\nat: %s (event %llu)\nrows: %llu\n"
		               "bytes: %llu\nsha256: %s\nfile: %s\n",
		               ACTOR_NAME(f, p->by), ts, (unsigned long long)p->seq,
		               (unsigned long long)p->rows, (unsigned long long)p->bytes, hex,
		               p->file ? p->file : "");
	} else {
		dcr_buf_append_str(b, "state: not provisioned\n");
	}
	const pdep *pd = pdep_find(f, dsname);
	if (pd && p && memcmp(pd->sha256, p->sha256, 32) == 0) {
		iso_time(pd->at_ms, ts);
		dcr_buf_printf(b, "pending_rm: %s removed at %s; %s\n", pd->file, ts,
		               pd->uploads ? "a new file is being written: it replaces this "
		                             "one if accepted, otherwise this data stays"
		                           : "deprovisioned in a moment unless a new file is "
		                             "written first (a rejected one keeps this data)");
	}
	for (lfile *l = f->lfiles; l; l = l->next)
		if (l->dataset && strcmp(l->dataset, dsname) == 0 && !l->temp &&
		    l->state == LF_STREAM)
			dcr_buf_printf(b, "uploading: %s (%llu bytes so far)\n", l->name,
			               (unsigned long long)l->size);
	const char *e = get_dserr(f, dsname);
	if (e)
		dcr_buf_printf(b, "last_upload: %s\n", e);
}

static void gen_comp_source(fs *f, const char *comp, dcr_buf *b)
{
	const rm_computation *c = rm_def_computation(f->st.def, comp);
	if (c->kind == RM_COMP_SQL && c->query) {
		dcr_buf_append_str(b, c->query);
	} else if ((c->kind == RM_COMP_PYTHON || c->kind == RM_COMP_R) && c->script) {
		dcr_buf_append_str(b, c->script);
	} else if (c->kind == RM_COMP_SYNTHETIC) {
		dcr_buf_append_str(b, "{\"input\": ");
		json_str(b, c->input ? c->input : "");
		dcr_buf_append_str(b, ", \"mask\": [");
		for (size_t i = 0; i < c->nmask; i++) {
			if (i)
				dcr_buf_append_str(b, ", ");
			json_str(b, c->mask[i]);
		}
		dcr_buf_printf(b, "], \"epsilon\": %g}", c->epsilon);
	}
	if (b->len && b->data[b->len - 1] != '\n')
		dcr_buf_append_u8(b, '\n');
}

/* The part of a computation's status known from the log. */
static void gen_comp_status(fs *f, const char *comp, const fs_run_status *live, dcr_buf *b)
{
	const rm_run *r = rm_state_last_run(&f->st, comp);
	char ts[32];
	dcr_buf_printf(b, "computation: %s\n", comp);
	const char *state = r ? (r->state == RM_RUN_DONE     ? "done"
	                         : r->state == RM_RUN_FAILED ? "failed"
	                                                     : "queued")
	                      : "none";
	if (live && live->state[0] && r && strcmp(live->run_id, r->id) == 0)
		state = live->state; /* adds "running" */
	dcr_buf_printf(b, "state: %s\n", state);
	if (!r)
		return;
	iso_time(r->requested_ts_ms, ts);
	dcr_buf_printf(b, "run: %s\nrequested_by: %s\nrequested_at: %s\n", r->id,
	               ACTOR_NAME(f, r->by), ts);
	if (r->state == RM_RUN_DONE) {
		dcr_buf_printf(b,
		               "rows: %llu\nsuppressed: %llu\nresult_bytes: %llu\n"
		               "duration_ms: %llu\n",
		               (unsigned long long)r->rows, (unsigned long long)r->suppressed,
		               (unsigned long long)r->result_bytes,
		               (unsigned long long)r->duration_ms);
		if (r->suppressed)
			dcr_buf_printf(b,
			               "note: %llu output rows aggregated fewer input rows than "
			               "the privacy threshold and were suppressed\n",
			               (unsigned long long)r->suppressed);
	} else if (r->state == RM_RUN_FAILED) {
		dcr_buf_printf(b, "error: %s\n", r->error ? r->error : "");
	}
	const rm_run *d = last_done_run(f, comp);
	if (d && d != r)
		dcr_buf_printf(b, "result.csv: from run %s\n", d->id);
}

/* Content of a file generated from the state alone; -ENOSYS for kinds
 * whose content needs the backend. f->mu held. */
static int gen_local(fs *f, const struct desc *d, dcr_buf *b)
{
	switch (d->kind) {
	case K_README:
		gen_readme(f, b);
		return 0;
	case K_ROOMJSON:
		if (f->st.def_json)
			dcr_buf_append_str(b, f->st.def_json);
		return 0;
	case K_STATUS:
		gen_status(f, b);
		return 0;
	case K_AUDIT:
		dcr_buf_append(b, f->audit.data, f->audit.len);
		return 0;
	case K_TESTOUT:
		dcr_buf_append(b, f->test_out.data, f->test_out.len);
		return 0;
	case K_EVENT:
		dcr_buf_append(b, f->entries[d->seq].data, f->entries[d->seq].len);
		return 0;
	case K_DS_SCHEMA:
		gen_schema(f, d->ds, b);
		return 0;
	case K_DS_STATUS:
		gen_ds_status(f, d->ds, b);
		return 0;
	case K_COMP_SOURCE:
		gen_comp_source(f, d->comp, b);
		return 0;
	default:
		return -ENOSYS;
	}
}

/* May this identity read the node? f->mu held. */
static bool may_read(fs *f, const struct desc *d)
{
	switch (d->kind) {
	case K_README:
	case K_STATUS:
		return true;
	case K_ROOMJSON:
	case K_AUDIT:
	case K_EVENT:
	case K_DS_SCHEMA:
	case K_DS_STATUS:
	case K_COMP_SOURCE:
	case K_COMP_STATUS:
		return is_participant(f);
	case K_TESTOUT:
		return is_creator(f) || is_participant(f);
	case K_DS_STATS:
		return rm_may_read_stats(&f->st, f->opt.me, d->ds);
	case K_COMP_RESULT:
		return rm_may_read_result(&f->st, f->opt.me, d->comp);
	case K_LFILE:
		return d->lf->temp;
	case K_DS_DATA:
		return rm_may_read_data(&f->st, f->opt.me, d->ds);
	default:
		return false;
	}
}

/* What this identity may write: a stopped room takes no more actions, so
 * its files do not advertise writing. */
static bool may_write(fs *f, const struct desc *d)
{
	bool live = f->st.status != RM_STOPPED;
	switch (d->kind) {
	case K_ROOMJSON:
		return rm_may_edit(&f->st, f->opt.me);
	case K_CTL:
		return is_creator(f) && live;
	case K_COMP_RUN:
		return rm_is_analyst(f->st.def, f->opt.me, d->comp) && live;
	case K_DS_DATA:
	case K_LFILE:
		if (d->kind == K_LFILE && d->lf->temp)
			return d->ds == NULL || rm_is_owner(f->st.def, f->opt.me, d->ds);
		return d->ds == NULL || (rm_is_owner(f->st.def, f->opt.me, d->ds) && live);
	default:
		return false;
	}
}

static int fill_attr(fs *f, uint64_t ino, const struct desc *d, fs_attr *a)
{
	memset(a, 0, sizeof *a);
	a->ino = ino;
	a->uid = f->opt.uid;
	a->gid = f->opt.gid;
	a->blksize = FS_BLKSIZE;
	a->mtime_ms = f->st.last_ts_ms ? f->st.last_ts_ms : f->mount_ms;
	if (is_dir_kind(d->kind)) {
		a->mode = S_IFDIR | 0555;
		if (d->kind == K_DS && rm_is_owner(f->st.def, f->opt.me, d->ds) &&
		    f->st.status != RM_STOPPED)
			a->mode = S_IFDIR | 0755;
		if (d->kind == K_ROOT && is_creator(f))
			a->mode = S_IFDIR | 0755; /* editors' swap files next to room.json */
		a->nlink = 2;
		return 0;
	}
	a->nlink = 1;
	mode_t m = 0;
	if (may_read(f, d))
		m |= 0444;
	if (may_write(f, d))
		m |= 0200;
	a->mode = S_IFREG | m;
	dcr_buf b;
	dcr_buf_init(&b);
	switch (d->kind) {
	case K_LFILE:
		a->size = d->lf->size;
		a->mtime_ms = d->lf->mtime_ms;
		a->mtime_ns = d->lf->mtime_ns;
		if (d->lf->mode >= 0)
			a->mode = S_IFREG | (m & (mode_t)d->lf->mode);
		break;
	case K_DS_DATA: {
		a->size = d->prov->bytes;
		a->mtime_ms = d->prov->ts_ms;
		const pmeta *pm = pmeta_find(f, d->ds, d->prov->sha256, false);
		if (pm && pm->mtime_ns)
			a->mtime_ns = pm->mtime_ns;
		if (pm && pm->mode >= 0)
			a->mode = S_IFREG | (m & (mode_t)pm->mode);
		break;
	}
	case K_COMP_RESULT: {
		const rm_run *r = last_done_run(f, d->comp);
		a->size = r ? r->result_bytes : 0;
		a->mtime_ms = r && r->finished_ts_ms ? r->finished_ts_ms : a->mtime_ms;
		break;
	}
	case K_CTL:
	case K_COMP_RUN:
		break;
	case K_EVENT:
		a->size = f->entries[d->seq].len;
		break;
	case K_AUDIT:
		a->size = f->audit.len;
		break;
	default:
		if (gen_local(f, d, &b) == 0)
			a->size = b.len;
		else
			a->size = node_at(f, ino)->last_size;
		break;
	}
	if (a->mtime_ns)
		a->mtime_ms = a->mtime_ns / 1000000;
	dcr_buf_release(&b);
	return 0;
}

/* ---- events ------------------------------------------------------------------ */

typedef struct fetched {
	dcr_buf *v;
	size_t n, cap;
	uint64_t next;
	bool gap;
} fetched;

static int fetch_cb(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	fetched *fe = ctx;
	if (seq != fe->next) {
		fe->gap = true;
		return DCR_EPROTO;
	}
	if (fe->n == fe->cap) {
		fe->cap = fe->cap ? fe->cap * 2 : 16;
		fe->v = dcr_realloc(fe->v, fe->cap * sizeof *fe->v);
	}
	dcr_buf_init(&fe->v[fe->n]);
	dcr_buf_append(&fe->v[fe->n], entry, n);
	fe->n++;
	fe->next++;
	return 0;
}

/* rm_replay_step's hook: the audit line is worded from the state before. */
static int describe_before(void *ctx, const rm_state *before, const es_event *ev, dcr_err *err)
{
	char **line = ctx;
	(void)err;
	*line = rm_describe(before, ev);
	return 0;
}

/* Applies one fetched entry (taking ownership of it). f->mu held. */
static int apply_entry(fs *f, dcr_buf *entry, dcr_err *err)
{
	char *line = NULL;
	rm_step step;
	int rc = rm_replay_step(&f->st, entry->data, entry->len, describe_before, &line, &step);
	if (rc < 0) {
		rm_step_err(&step, err);
		goto out;
	}
	dcr_buf_append_str(&f->audit, line);
	dcr_buf_append_u8(&f->audit, '\n');
	if (f->nentries == f->cap_entries) {
		f->cap_entries = f->cap_entries ? f->cap_entries * 2 : 64;
		f->entries = dcr_realloc(f->entries, f->cap_entries * sizeof *f->entries);
		f->leaves = dcr_realloc(f->leaves, f->cap_entries * sizeof *f->leaves);
	}
	es_leaf_hash(entry->data, entry->len, f->leaves[f->nentries]);
	f->entries[f->nentries++] = *entry;
	dcr_buf_init(entry);
out:
	free(line);
	return rc;
}

/* Fetches and applies whatever is new; returns the number applied. */
static int fetch_apply(fs *f, dcr_err *err)
{
	fetched fe = {0};
	int rc, applied = 0;
	pthread_mutex_lock(&f->refresh_mu);
	pthread_mutex_lock(&f->mu);
	fe.next = f->nentries;
	bool stopped = f->fatal != NULL;
	pthread_mutex_unlock(&f->mu);
	if (stopped) {
		rc = 0;
		goto out;
	}
	rc = f->be.events(f->be.ctx, fe.next, fetch_cb, &fe, err);
	if (rc < 0 && !(fe.gap && fe.n > 0)) {
		/* The daemon does not answer: say so (status, README) rather
		 * than serve the last state as if it were current. */
		pthread_mutex_lock(&f->mu);
		if (!f->daemon_err) {
			f->daemon_down_ms = dcr_now_ms();
			f->force_inval = true;
		}
		free(f->daemon_err);
		f->daemon_err = dcr_strdup(err && err->msg[0] ? err->msg : dcr_strerror(rc));
		f->fetched_ms = dcr_mono_ms();
		pthread_mutex_unlock(&f->mu);
		goto out;
	}
	rc = 0;
	pthread_mutex_lock(&f->mu);
	if (f->daemon_err) {
		free(f->daemon_err);
		f->daemon_err = NULL;
		f->force_inval = true;
	}
	for (size_t i = 0; i < fe.n; i++) {
		dcr_err aerr = {0};
		int arc = apply_entry(f, &fe.v[i], &aerr);
		if (arc < 0) {
			f->fatal = dcr_asprintf("event %llu: %s", (unsigned long long)f->nentries,
			                        aerr.msg);
			break;
		}
		applied++;
	}
	f->fetched_ms = dcr_mono_ms();
	pthread_mutex_unlock(&f->mu);
	rc = applied;
out:
	for (size_t i = 0; i < fe.n; i++)
		dcr_buf_release(&fe.v[i]);
	free(fe.v);
	pthread_mutex_unlock(&f->refresh_mu);
	return rc;
}

/* Applies the rm of provisioned files whose grace period is over (all of
 * them when `all`, at unmount). f->mu not held. */
static void pending_apply(fs *f, bool all)
{
	for (;;) {
		char *ds = NULL, *file = NULL;
		bool found = false;
		pthread_mutex_lock(&f->mu);
		uint64_t now = dcr_mono_ms();
		for (pdep *p = f->pending; p; p = p->next) {
			if (p->uploads > 0 || (!all && now < p->due_ms))
				continue;
			/* Replaced meanwhile (a new file was provisioned): nothing to do. */
			const rm_provision *cur = rm_state_provision(&f->st, p->dataset);
			if (cur && memcmp(cur->sha256, p->sha256, 32) == 0) {
				ds = dcr_strdup(p->dataset);
				file = dcr_strdup(p->file);
			}
			pdep_remove(f, p);
			found = true;
			break;
		}
		pthread_mutex_unlock(&f->mu);
		if (!found)
			return;
		if (!ds)
			continue;
		dcr_err err = {0};
		dcr_buf body;
		dcr_buf_init(&body);
		rm_body_deprovisioned(&body, ds);
		int rc = f->be.submit(f->be.ctx, RM_EV_DEPROVISIONED, body.data, body.len, &err);
		dcr_buf_release(&body);
		if (rc < 0) {
			char *what = dcr_asprintf("rm %s/%s", ds, file);
			set_last_error(f, what, &err);
			free(what);
		} else {
			fetch_apply(f, &err);
		}
		free(ds);
		free(file);
	}
}

int fs_refresh(fs *f, uint64_t **changed, size_t *nchanged, dcr_err *err)
{
	if (changed)
		*changed = NULL;
	if (nchanged)
		*nchanged = 0;
	pending_apply(f, false);
	int rc = fetch_apply(f, err);
	pthread_mutex_lock(&f->mu);
	if (f->nentries != f->reported_size || f->force_inval) {
		if (rc >= 0)
			rc = (int)(f->nentries - f->reported_size);
		f->reported_size = f->nentries;
		f->force_inval = false;
		if (changed && nchanged) {
			/* Everything but the immutable event files. */
			uint64_t events = node_find(f, FS_ROOT_INO, "events");
			uint64_t *v = dcr_malloc((f->nnodes + 1) * sizeof *v);
			size_t n = 0;
			for (size_t i = 0; i < f->nnodes; i++)
				if (f->nodes[i].name &&
				    (f->nodes[i].parent != events || events == 0))
					v[n++] = i + 1;
			*changed = v;
			*nchanged = n;
		}
	}
	pthread_mutex_unlock(&f->mu);
	return rc;
}

/* Reading a file or a listing, or missing a name, shows the log as it is
 * now, not as of the last poll: a person who ran something in another
 * mount and looks here sees it. At most one fetch per FS_FRESH_MS. f->mu
 * not held. */
#define FS_FRESH_MS 20
static void maybe_refresh(fs *f)
{
	pending_apply(f, false);
	pthread_mutex_lock(&f->mu);
	bool stale = dcr_mono_ms() - f->fetched_ms > FS_FRESH_MS;
	pthread_mutex_unlock(&f->mu);
	if (stale) {
		dcr_err err = {0};
		fetch_apply(f, &err);
	}
}

uint64_t fs_size(fs *f)
{
	pthread_mutex_lock(&f->mu);
	uint64_t n = f->nentries;
	pthread_mutex_unlock(&f->mu);
	return n;
}

/* ---- lifecycle ---------------------------------------------------------------- */

int fs_new(const fs_options *opt, const fs_backend *be, fs **out, dcr_err *err)
{
	int rc;
	fs *f = dcr_calloc(1, sizeof *f);
	f->opt = *opt;
	f->mountpoint = opt->mountpoint ? dcr_strdup(opt->mountpoint) : NULL;
	f->opt.mountpoint = f->mountpoint;
	f->opt.spool_parent = NULL;
	if (!f->opt.run_poll_ms)
		f->opt.run_poll_ms = 50;
	f->be = *be;
	f->mount_ms = dcr_now_ms();
	pthread_mutex_init(&f->mu, NULL);
	pthread_mutex_init(&f->refresh_mu, NULL);
	rm_state_init(&f->st, opt->daemon);
	dcr_buf_init(&f->audit);
	dcr_buf_init(&f->test_out);
	/* ino 1: the root */
	f->cap_nodes = 64;
	f->nodes = dcr_calloc(f->cap_nodes, sizeof *f->nodes);
	f->nnodes = 1;
	f->nodes[0].name = dcr_strdup("");
	f->nbuckets = 64;
	f->buckets = dcr_calloc(f->nbuckets, sizeof *f->buckets);

	const char *parent = opt->spool_parent;
	if (!parent)
		parent = getenv("TMPDIR");
	if (!parent || !parent[0])
		parent = "/tmp";
	f->spool_dir = dcr_asprintf("%s/dcr-spool-XXXXXX", parent);
	if (!mkdtemp(f->spool_dir)) { /* mode 0700 */
		rc = dcr_err_set(err, -errno, "spool directory %s: %s", f->spool_dir,
		                 strerror(errno));
		free(f->spool_dir);
		f->spool_dir = NULL;
		goto out;
	}
	rc = fetch_apply(f, err);
	if (rc < 0)
		goto out;
	if (f->fatal) {
		rc = dcr_err_set(err, DCR_EINTEGRITY, "replay of the room failed: %s", f->fatal);
		goto out;
	}
	if (f->nentries == 0) {
		rc = dcr_err_set(err, DCR_ENOTFOUND, "the room has no events");
		goto out;
	}
	f->reported_size = f->nentries;
	rc = 0;
out:
	if (rc < 0) {
		fs_free(f);
		f = NULL;
	}
	*out = f;
	return rc;
}

static void lfile_free(fs *f, lfile *l)
{
	if (l->up)
		f->be.upload_end(l->up, false, NULL);
	cmp_ingest_free(l->chk);
	if (l->fd >= 0)
		close(l->fd);
	if (l->spool) {
		unlink(l->spool);
		free(l->spool);
	}
	pthread_mutex_destroy(&l->mu);
	free(l->name);
	free(l->dataset);
	free(l);
}

void fs_free(fs *f)
{
	if (!f)
		return;
	pending_apply(f, true); /* an rm done before the unmount stands */
	while (f->lfiles) {
		lfile *l = f->lfiles;
		f->lfiles = l->next;
		lfile_free(f, l);
	}
	if (f->spool_dir) {
		rmdir(f->spool_dir);
		free(f->spool_dir);
	}
	while (f->dserrs) {
		dserr *e = f->dserrs;
		f->dserrs = e->next;
		free(e->dataset);
		free(e->msg);
		free(e);
	}
	for (size_t i = 0; i < f->nentries; i++)
		dcr_buf_release(&f->entries[i]);
	free(f->entries);
	free(f->leaves);
	for (size_t i = 0; i < f->nnodes; i++)
		free(f->nodes[i].name);
	free(f->nodes);
	free(f->buckets);
	rm_state_release(&f->st);
	dcr_buf_release(&f->audit);
	dcr_buf_release(&f->test_out);
	while (f->pending)
		pdep_remove(f, f->pending);
	while (f->metas) {
		pmeta *m = f->metas;
		f->metas = m->next;
		free(m->dataset);
		free(m);
	}
	free(f->daemon_err);
	free(f->fatal);
	free(f->last_error);
	free(f->mountpoint);
	pthread_mutex_destroy(&f->mu);
	pthread_mutex_destroy(&f->refresh_mu);
	free(f);
}

/* ---- lookup, getattr, readdir --------------------------------------------------- */

static void backend_size(fs *f, fs_attr *a);

static int lookup_once(fs *f, uint64_t parent, const char *name, fs_attr *out)
{
	struct desc pd, d;
	int rc;
	pthread_mutex_lock(&f->mu);
	rc = resolve(f, parent, &pd);
	if (rc < 0)
		goto out;
	if (!is_dir_kind(pd.kind)) {
		rc = -ENOTDIR;
		goto out;
	}
	rc = resolve_child(f, parent, &pd, name, &d);
	if (rc < 0)
		goto out;
	uint64_t ino = d.kind == K_LFILE ? d.lf->ino : node_get(f, parent, name);
	rc = fill_attr(f, ino, &d, out);
out:
	pthread_mutex_unlock(&f->mu);
	return rc;
}

int fs_lookup(fs *f, uint64_t parent, const char *name, fs_attr *out)
{
	int rc = lookup_once(f, parent, name, out);
	if (rc == -ENOENT && !fs_is_temp_name(name)) {
		maybe_refresh(f); /* a result or dataset that just appeared */
		rc = lookup_once(f, parent, name, out);
	}
	if (rc == 0)
		backend_size(f, out);
	return rc;
}

int fs_getattr(fs *f, uint64_t ino, fs_attr *out)
{
	struct desc d;
	pthread_mutex_lock(&f->mu);
	int rc = resolve(f, ino, &d);
	if (rc == 0)
		rc = fill_attr(f, ino, &d, out);
	pthread_mutex_unlock(&f->mu);
	if (rc == 0)
		backend_size(f, out);
	return rc;
}

static void dir_add(fs *f, fs_dir *dir, size_t *cap, uint64_t parent, const char *name)
{
	struct desc pd, d;
	if (resolve(f, parent, &pd) < 0 || resolve_child(f, parent, &pd, name, &d) < 0)
		return;
	if (dir->n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		dir->ents = dcr_realloc(dir->ents, *cap * sizeof *dir->ents);
	}
	fs_dirent *e = &dir->ents[dir->n++];
	e->name = dcr_strdup(name);
	e->ino = d.kind == K_LFILE ? d.lf->ino : node_get(f, parent, name);
	e->mode = is_dir_kind(d.kind) ? S_IFDIR : S_IFREG;
}

int fs_opendir(fs *f, uint64_t ino, fs_dir **out)
{
	struct desc d;
	size_t cap = 0;
	maybe_refresh(f);
	fs_dir *dir = dcr_calloc(1, sizeof *dir);
	pthread_mutex_lock(&f->mu);
	int rc = resolve(f, ino, &d);
	if (rc < 0)
		goto out;
	if (!is_dir_kind(d.kind)) {
		rc = -ENOTDIR;
		goto out;
	}
	const rm_def *def = f->st.def;
	switch (d.kind) {
	case K_ROOT: {
		static const char *const top[] = {"README",       "room.json", "status", "ctl",
		                                  "audit.log",    "test.out",  "events", "datasets",
		                                  "computations", "requests",  "dev"};
		for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
			dir_add(f, dir, &cap, ino, top[i]);
		break;
	}
	case K_EVENTS:
		if (!is_participant(f))
			break;
		for (size_t i = 0; i < f->nentries; i++) {
			char name[32];
			snprintf(name, sizeof name, "%012llu.event", (unsigned long long)i);
			dir_add(f, dir, &cap, ino, name);
		}
		break;
	case K_DATASETS:
		for (size_t i = 0; def && i < def->ndatasets; i++)
			dir_add(f, dir, &cap, ino, def->datasets[i].name);
		break;
	case K_DS: {
		dir_add(f, dir, &cap, ino, "schema.json");
		dir_add(f, dir, &cap, ino, "status");
		dir_add(f, dir, &cap, ino, "stats.json");
		const rm_provision *p = rm_state_provision(&f->st, d.ds);
		if (p && p->file && !lfile_find(f, ino, p->file))
			dir_add(f, dir, &cap, ino, p->file);
		break;
	}
	case K_COMPS:
		for (size_t i = 0; def && i < def->ncomputations; i++)
			dir_add(f, dir, &cap, ino, def->computations[i].name);
		break;
	case K_COMP: {
		const rm_computation *c = rm_def_computation(def, d.comp);
		dir_add(f, dir, &cap, ino, comp_source_name(c));
		dir_add(f, dir, &cap, ino, "run");
		dir_add(f, dir, &cap, ino, "status");
		dir_add(f, dir, &cap, ino, "result.csv");
		break;
	}
	default:
		break;
	}
	for (lfile *l = f->lfiles; l; l = l->next)
		if (l->dir == ino)
			dir_add(f, dir, &cap, ino, l->name);
	rc = 0;
out:
	pthread_mutex_unlock(&f->mu);
	if (rc < 0) {
		fs_dir_free(dir);
		dir = NULL;
	}
	*out = dir;
	return rc;
}

void fs_dir_free(fs_dir *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->ents[i].name);
	free(d->ents);
	free(d);
}

/* ---- local files ----------------------------------------------------------------- */

/* New lfile at (dir, name); f->mu held. */
static int lfile_new(fs *f, uint64_t dir, const char *name, const char *dataset, lfile **out)
{
	if (f->nlfiles >= FS_SPOOL_FILES_MAX)
		return -EMFILE;
	lfile *l = dcr_calloc(1, sizeof *l);
	l->dir = dir;
	l->name = dcr_strdup(name);
	l->dataset = dataset ? dcr_strdup(dataset) : NULL;
	l->temp = fs_is_temp_name(name);
	l->fd = -1;
	l->mode = -1;
	l->mtime_ms = dcr_now_ms();
	pthread_mutex_init(&l->mu, NULL);
	if (l->temp) {
		l->spool =
		    dcr_asprintf("%s/%llu", f->spool_dir, (unsigned long long)++f->spool_seq);
		l->fd = open(l->spool, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (l->fd < 0) {
			int e = errno ? errno : EIO;
			free(l->spool);
			l->spool = NULL;
			lfile_free(f, l);
			return -e;
		}
	}
	l->ino = node_get(f, dir, name);
	l->linked = true;
	l->next = f->lfiles;
	f->lfiles = l;
	f->nlfiles++;
	*out = l;
	return 0;
}

/* Takes l out of the directory (it lives on while open). f->mu held. */
static void lfile_unlink(fs *f, lfile *l)
{
	for (lfile **pp = &f->lfiles; *pp; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			f->nlfiles--;
			break;
		}
	}
	l->linked = false;
	l->next = NULL;
	if (l->opens == 0)
		lfile_free(f, l);
}

/* errno for a failed upload: the writer sees EINVAL for bad data. */
static int upload_errno(int code)
{
	int e = fs_errno(code);
	if (e == EIO || e == EACCES || e == EPERM || e == ENOSPC || e == EFBIG || e == ENOENT)
		return e;
	return EINVAL;
}

static char *upload_msg(const char *file, const dcr_err *err)
{
	char ts[32];
	iso_time(dcr_now_ms(), ts);
	return dcr_asprintf("%s rejected %s: %s", ts, file,
	                    err->msg[0] ? err->msg : dcr_strerror(err->code));
}

/* An upload of dataset ds begins: it holds a pending rm of the dataset's
 * file, if any. Returns whether it does. f->mu not held. */
static bool hold_begin(fs *f, const char *ds)
{
	pthread_mutex_lock(&f->mu);
	pdep *p = pdep_find(f, ds);
	if (p)
		p->uploads++;
	pthread_mutex_unlock(&f->mu);
	return p != NULL;
}

/* The upload that held a pending rm ended. Accepted: the new file replaced
 * the old one, the rm has nothing left to do. Not accepted: the rm is
 * dropped, because a bad file must never cost the data already there. */
static void hold_end(fs *f, const char *ds, bool accepted)
{
	pthread_mutex_lock(&f->mu);
	pdep *p = pdep_find(f, ds);
	if (p && (accepted || --p->uploads <= 0)) {
		if (!accepted) {
			const char *prev = get_dserr(f, ds);
			set_dserr_locked(f, ds,
			                 dcr_asprintf("%s; the earlier rm of %s is undone: its "
			                              "data stays provisioned",
			                              prev ? prev : "upload abandoned", p->file));
		}
		pdep_remove(f, p);
	}
	pthread_mutex_unlock(&f->mu);
}

static void lfile_unhold(fs *f, lfile *l, bool accepted)
{
	if (l->holds) {
		l->holds = false;
		hold_end(f, l->dataset, accepted);
	}
}

/* A temporary file of ds is being written (rsync's .NAME.XXXXXX, a drop's
 * x.tmp): a pending rm waits for it to be renamed, however long the
 * transfer, as long as it keeps being written. f->mu not held. */
static void pending_extend(fs *f, const char *ds)
{
	pthread_mutex_lock(&f->mu);
	pdep *p = pdep_find(f, ds);
	if (p) {
		uint64_t due = dcr_mono_ms() + (f->opt.rm_grace_ms ? f->opt.rm_grace_ms : FS_RM_GRACE_MS);
		if (due > p->due_ms)
			p->due_ms = due;
	}
	pthread_mutex_unlock(&f->mu);
}

/* Abandons the upload of l, if any: nothing is provisioned (lf->mu held). */
static void lfile_abandon(fs *f, lfile *l)
{
	if (l->up) {
		f->be.upload_end(l->up, false, NULL);
		l->up = NULL;
	}
	cmp_ingest_free(l->chk);
	l->chk = NULL;
	lfile_unhold(f, l, false);
}

/* The local check of a table dataset's file: the same validation as the
 * daemon's (compute's ingest, same schema, same label), over the first
 * FS_CHECK_BYTES_MAX bytes, so that the write(2) carrying a bad row fails
 * (shells ignore errors at close). NULL for file datasets. f->mu not held. */
static cmp_ingest *check_new(fs *f, const char *ds, const char *file)
{
	cmp_ingest *in = NULL;
	pthread_mutex_lock(&f->mu);
	const rm_dataset *d = f->st.def ? rm_def_dataset(f->st.def, ds) : NULL;
	if (d && d->kind == RM_DS_TABLE && d->ncolumns > 0) {
		cmp_column *c = dcr_calloc(d->ncolumns, sizeof *c);
		for (size_t i = 0; i < d->ncolumns; i++) {
			c[i].name = d->columns[i].name;
			c[i].type = d->columns[i].type;
			c[i].format = d->columns[i].format;
			c[i].nullable = d->columns[i].nullable;
		}
		cmp_schema sc = {c, d->ncolumns};
		if (cmp_ingest_new(&sc, file, &in) < 0)
			in = NULL; /* the daemon checks anyway */
		free(c);
	}
	pthread_mutex_unlock(&f->mu);
	return in;
}

/* Marks a streaming lfile failed (lf->mu held). Returns -errno. */
static int lfile_fail(fs *f, lfile *l, int code, const dcr_err *err)
{
	l->state = LF_FAILED;
	set_dserr(f, l->dataset, upload_msg(l->name, err));
	set_last_error(f, l->dataset, err);
	lfile_abandon(f, l); /* after: may add that a pending rm is undone */
	return -upload_errno(code);
}

/* Streams n bytes to the upload of l (lf->mu held). */
static int lfile_stream(fs *f, lfile *l, const void *p, size_t n)
{
	dcr_err err = {0};
	int rc;
	if (l->state == LF_IDLE) {
		l->holds = hold_begin(f, l->dataset);
		rc = f->be.upload_begin(f->be.ctx, l->dataset, l->name, &l->up, &err);
		if (rc < 0) {
			l->up = NULL;
			return lfile_fail(f, l, rc, &err);
		}
		l->state = LF_STREAM;
		l->chk = check_new(f, l->dataset, l->name);
		l->chk_bytes = 0;
	}
	if (l->chk) {
		rc = cmp_ingest_feed(l->chk, p, n, &err);
		if (rc < 0)
			return lfile_fail(f, l, rc, &err);
		l->chk_bytes += n;
		if (l->chk_bytes >= FS_CHECK_BYTES_MAX) {
			cmp_ingest_free(l->chk);
			l->chk = NULL;
		}
	}
	rc = f->be.upload_write(l->up, p, n, &err);
	if (rc < 0)
		return lfile_fail(f, l, rc, &err);
	return 0;
}

/* Keeps the mode and mtime a tool set on a file for the provision it just
 * became (the current one of ds). f->mu not held. */
static void keep_meta(fs *f, const char *ds, int mode, uint64_t mtime_ns)
{
	if (mode < 0 && !mtime_ns)
		return;
	pthread_mutex_lock(&f->mu);
	const rm_provision *p = rm_state_provision(&f->st, ds);
	if (p) {
		pmeta *m = pmeta_find(f, ds, p->sha256, true);
		if (mode >= 0)
			m->mode = mode;
		if (mtime_ns)
			m->mtime_ns = mtime_ns;
	}
	pthread_mutex_unlock(&f->mu);
}

/* Commits a streaming lfile (lf->mu held). */
static int lfile_commit(fs *f, lfile *l)
{
	dcr_err err = {0};
	void *up = l->up;
	l->up = NULL;
	int rc = f->be.upload_end(up, true, &err);
	if (rc < 0)
		return lfile_fail(f, l, rc, &err);
	l->state = LF_DONE;
	cmp_ingest_free(l->chk);
	l->chk = NULL;
	char ts[32];
	iso_time(dcr_now_ms(), ts);
	set_dserr(f, l->dataset,
	          dcr_asprintf("%s provisioned from %s (%llu bytes)", ts, l->name,
	                       (unsigned long long)l->size));
	fetch_apply(f, &err);
	lfile_unhold(f, l, true);
	keep_meta(f, l->dataset, l->mode, l->mtime_ns);
	return 0;
}

/* Is the spooled file l, renamed to `name`, the provisioned file itself
 * (same name, same SHA-256)? Then there is nothing to upload and no event
 * to sign: `rsync -a` of an unchanged file (after a remount, which forgets
 * the kept mtime) changes nothing. Returns 1 (unchanged, the mode and
 * mtime set on l are kept), 0 (upload it) or -errno. buf: FS_IO_BYTES_MAX
 * bytes of scratch. lf->mu held. */
static int spool_unchanged(fs *f, lfile *l, const char *name, uint8_t *buf)
{
	uint8_t cur[32], sha[32];
	bool have = false;
	pthread_mutex_lock(&f->mu);
	const rm_provision *p = rm_state_provision(&f->st, l->dataset);
	if (p && p->file && strcmp(p->file, name) == 0 && p->bytes == l->size) {
		memcpy(cur, p->sha256, 32);
		have = true;
	}
	pthread_mutex_unlock(&f->mu);
	if (!have)
		return 0;
	dcr_sha256_ctx *c = dcr_sha256_new();
	uint64_t off = 0;
	for (;;) {
		ssize_t r = pread(l->fd, buf, FS_IO_BYTES_MAX, (off_t)off);
		if (r < 0) {
			int e = errno;
			dcr_sha256_free(c);
			return -e;
		}
		if (r == 0)
			break;
		dcr_sha256_update(c, buf, (size_t)r);
		off += (uint64_t)r;
	}
	dcr_sha256_final(c, sha);
	dcr_sha256_free(c);
	if (memcmp(sha, cur, 32) != 0)
		return 0;
	char ts[32];
	iso_time(dcr_now_ms(), ts);
	set_dserr(f, l->dataset,
	          dcr_asprintf("%s %s unchanged (renamed from %s, same SHA-256 as the "
	                       "provisioned file): nothing uploaded",
	                       ts, name, l->name));
	keep_meta(f, l->dataset, l->mode, l->mtime_ns);
	return 1;
}

/* Uploads a spooled temp file under the final name `name` (lf->mu held). */
static int lfile_ingest_spool(fs *f, lfile *l, const char *name)
{
	dcr_err err = {0};
	void *up = NULL;
	uint8_t *buf = dcr_malloc(FS_IO_BYTES_MAX);
	uint64_t off = 0;
	bool holds = hold_begin(f, l->dataset);
	int rc = spool_unchanged(f, l, name, buf);
	if (rc != 0) {
		free(buf);
		if (holds)
			hold_end(f, l->dataset, rc > 0);
		return rc > 0 ? 0 : rc;
	}
	rc = f->be.upload_begin(f->be.ctx, l->dataset, name, &up, &err);
	if (rc < 0)
		goto out;
	for (;;) {
		ssize_t r = pread(l->fd, buf, FS_IO_BYTES_MAX, (off_t)off);
		if (r < 0) {
			rc = dcr_err_set(&err, -errno, "spool read: %s", strerror(errno));
			break;
		}
		if (r == 0)
			break;
		rc = f->be.upload_write(up, buf, (size_t)r, &err);
		if (rc < 0)
			break;
		off += (uint64_t)r;
	}
	if (rc < 0)
		f->be.upload_end(up, false, NULL);
	else
		rc = f->be.upload_end(up, true, &err);
	up = NULL;
out:
	free(buf);
	char ts[32];
	iso_time(dcr_now_ms(), ts);
	if (rc < 0) {
		set_dserr(f, l->dataset, upload_msg(name, &err));
		set_last_error(f, l->dataset, &err);
		if (holds)
			hold_end(f, l->dataset, false);
		return -upload_errno(rc);
	}
	set_dserr(f, l->dataset,
	          dcr_asprintf("%s provisioned from %s (renamed from %s, %llu bytes)", ts, name,
	                       l->name, (unsigned long long)off));
	fetch_apply(f, &err);
	if (holds)
		hold_end(f, l->dataset, true);
	keep_meta(f, l->dataset, l->mode, l->mtime_ns);
	return 0;
}

/* ---- room.json, ctl, run ------------------------------------------------------------ */

static int save_draft(fs *f, const char *json, size_t n)
{
	dcr_err err = {0};
	rm_def *def = NULL;
	dcr_buf body;
	dcr_buf_init(&body);
	char *text = dcr_strndup(json, n);
	/* Checked here first so the reason is local and precise; the daemon
	 * checks again with the same rules. */
	int rc = rm_def_parse(text, n, &def, &err);
	if (rc < 0) {
		dcr_err_prefix(&err, "room.json");
		goto out;
	}
	rm_body_definition(&body, text);
	rc = f->be.submit(f->be.ctx, RM_EV_SAVED, body.data, body.len, &err);
	if (rc < 0)
		goto out;
	fetch_apply(f, &err);
	rc = 0;
out:
	if (rc < 0)
		set_last_error(f, "save draft", &err);
	rm_def_free(def);
	free(text);
	dcr_buf_release(&body);
	return rc < 0 ? -fs_errno(rc) : 0;
}

static int ctl_command(fs *f, const char *cmd)
{
	dcr_err err = {0};
	dcr_buf body;
	int rc;
	dcr_buf_init(&body);
	if (strcmp(cmd, "publish") == 0) {
		uint8_t h[32];
		pthread_mutex_lock(&f->mu);
		memcpy(h, f->st.def_sha256, 32);
		pthread_mutex_unlock(&f->mu);
		rm_body_published(&body, h);
		rc = f->be.submit(f->be.ctx, RM_EV_PUBLISHED, body.data, body.len, &err);
	} else if (strcmp(cmd, "stop") == 0) {
		rm_body_stopped(&body, "stopped through the mount");
		rc = f->be.submit(f->be.ctx, RM_EV_STOPPED, body.data, body.len, &err);
	} else if (strcmp(cmd, "test") == 0) {
		dcr_buf rep;
		dcr_buf_init(&rep);
		rc = f->be.room_test(f->be.ctx, &rep, &err);
		if (rc == 0) {
			pthread_mutex_lock(&f->mu);
			dcr_buf_reset(&f->test_out);
			dcr_buf_append(&f->test_out, rep.data, rep.len);
			if (rep.len && rep.data[rep.len - 1] != '\n')
				dcr_buf_append_u8(&f->test_out, '\n');
			f->have_test_out = true;
			f->force_inval = true; /* let the poller invalidate */
			pthread_mutex_unlock(&f->mu);
		}
		dcr_buf_release(&rep);
	} else {
		rc = dcr_err_set(&err, DCR_EINVALID,
		                 "unknown command \"%s\" (publish, stop or test)", cmd);
	}
	dcr_buf_release(&body);
	if (rc < 0) {
		char *what = dcr_asprintf("ctl %s", cmd);
		set_last_error(f, what, &err);
		free(what);
		return -fs_errno(rc);
	}
	fetch_apply(f, &err);
	return 0;
}

static int ctl_write(fs *f, const char *p, size_t n)
{
	char line[FS_CTL_BYTES_MAX + 1];
	size_t i = 0;
	if (n > FS_CTL_BYTES_MAX)
		return -EINVAL;
	while (i < n) {
		size_t j = i;
		while (j < n && p[j] != '\n')
			j++;
		size_t a = i, b = j;
		while (a < b && (p[a] == ' ' || p[a] == '\t' || p[a] == '\r'))
			a++;
		while (b > a && (p[b - 1] == ' ' || p[b - 1] == '\t' || p[b - 1] == '\r'))
			b--;
		if (b > a) {
			memcpy(line, p + a, b - a);
			line[b - a] = 0;
			int rc = ctl_command(f, line);
			if (rc < 0)
				return rc;
		}
		i = j + 1;
	}
	return 0;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Requests a run and waits until it is done or failed. */
static int run_and_wait(fs *f, const char *comp)
{
	dcr_err err = {0};
	char run_id[33];
	fs_run_status st;
	uint64_t t0 = dcr_mono_ms();
	int rc = f->be.run(f->be.ctx, comp, run_id, &err);
	if (rc < 0)
		goto fail;
	for (;;) {
		memset(&st, 0, sizeof st);
		rc = f->be.run_status(f->be.ctx, comp, &st, &err);
		if (rc < 0)
			goto fail;
		bool mine = strcmp(st.run_id, run_id) == 0;
		bool done = mine && strcmp(st.state, "done") == 0;
		bool failed = mine && strcmp(st.state, "failed") == 0;
		if (failed)
			dcr_err_set(&err, DCR_EINVALID, "run %s of %s failed: %s", run_id, comp,
			            st.error);
		if (done)
			break;
		if (failed) {
			dcr_err ferr = {0};
			set_last_error(f, comp, &err);
			fetch_apply(f, &ferr);
			return -EIO;
		}
		if (dcr_mono_ms() - t0 > FS_RUN_WAIT_MS_MAX) {
			rc = dcr_err_set(&err, DCR_ETIMEOUT, "run %s still not finished", run_id);
			goto fail;
		}
		if (interrupted()) {
			/* The writer got a signal: it stops waiting; the run goes on. */
			dcr_err_set(&err, -EINTR,
			            "waiting for run %s interrupted by a signal; the run goes on "
			            "(computations/%s/status)",
			            run_id, comp);
			set_last_error(f, comp, &err);
			return -EINTR;
		}
		sleep_ms(f->opt.run_poll_ms);
	}
	fetch_apply(f, &err);
	return 0;
fail:
	set_last_error(f, comp, &err);
	return -fs_errno(rc);
}

/* ---- open, read, write, flush, release ------------------------------------------------- */

static fs_file *file_new(enum kind k, uint64_t ino, int flags)
{
	fs_file *h = dcr_calloc(1, sizeof *h);
	h->kind = k;
	h->ino = ino;
	h->flags = flags;
	dcr_buf_init(&h->buf);
	return h;
}

static void file_free(fs_file *h)
{
	dcr_buf_release(&h->buf);
	free(h->name);
	free(h);
}

static bool wants_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY;
}

/* Opens an lfile (f->mu held): pins it, applies O_TRUNC. */
static int lfile_open(fs *f, lfile *l, int flags, fs_file *h)
{
	if (!l->temp && (flags & O_ACCMODE) == O_RDONLY)
		return -EACCES; /* a dataset file being written is write-only */
	if (!l->temp && wants_write(flags) && l->opens > 0) {
		/* A second writer would cut the first one's file: refused at
		 * open; the first goes on. */
		dcr_err err;
		dcr_err_set(&err, DCR_EEXIST,
		            "%s is being written by another process; a second writer is "
		            "refused (wait for the first to close it)",
		            l->name);
		char ts[32];
		iso_time(dcr_now_ms(), ts);
		set_dserr_locked(f, l->dataset, dcr_asprintf("%s refused a second writer of %s: %s", ts, l->name, err.msg));
		free(f->last_error);
		f->last_error = dcr_asprintf("%s %s: %s", ts, l->dataset, err.msg);
		return -EBUSY;
	}
	if (!l->temp && wants_write(flags) && !(flags & O_TRUNC) && l->state != LF_IDLE &&
	    l->size > 0)
		return -EINVAL; /* no appending: write the whole file */
	l->opens++;
	h->lf = l;
	h->kind = K_LFILE;
	return 0;
}

static int lfile_truncate(fs *f, lfile *l, uint64_t size)
{
	int rc = 0;
	pthread_mutex_lock(&l->mu);
	if (l->temp) {
		if (ftruncate(l->fd, (off_t)size) < 0)
			rc = -errno;
		else
			l->size = size;
	} else if (size == l->size) {
		rc = 0;
	} else if (size == 0) {
		lfile_abandon(f, l);
		l->state = LF_IDLE;
		l->size = 0;
	} else {
		rc = -EINVAL;
	}
	l->mtime_ms = dcr_now_ms();
	pthread_mutex_unlock(&l->mu);
	return rc;
}

static bool reserved_ds_name(const char *name)
{
	return strcmp(name, "schema.json") == 0 || strcmp(name, "status") == 0 ||
	       strcmp(name, "stats.json") == 0;
}

/* The kernel keeps a name for up to FS_ENTRY_TIMEOUT after the file went
 * away (`touch x.csv` closed empty, a rejected upload): opening it for
 * writing then is creating it anew, as in a local folder. f->mu held. */
static int reopen_gone(fs *f, uint64_t ino, struct desc *d)
{
	node *n = node_at(f, ino);
	struct desc pd;
	lfile *l;
	if (!n || !n->name || resolve(f, n->parent, &pd) < 0 || pd.kind != K_DS ||
	    reserved_ds_name(n->name))
		return -ENOENT;
	if (!rm_is_owner(f->st.def, f->opt.me, pd.ds))
		return -EACCES;
	int rc = lfile_new(f, n->parent, n->name, pd.ds, &l);
	if (rc < 0)
		return rc;
	memset(d, 0, sizeof *d);
	d->kind = K_LFILE;
	d->lf = l;
	d->ds = l->dataset;
	return 0;
}

/* Content of stats.json or of a computation's status: both need the
 * daemon. Records its size for getattr. f->mu not held. */
static int gen_backend(fs *f, uint64_t ino, enum kind kind, const char *name, dcr_buf *out,
                       dcr_err *err)
{
	int rc = 0;
	if (kind == K_DS_STATS) {
		rc = f->be.stats(f->be.ctx, name, out, err);
	} else {
		fs_run_status live;
		memset(&live, 0, sizeof live);
		dcr_err lerr = {0};
		int lrc = f->be.run_status(f->be.ctx, name, &live, &lerr);
		if (lrc == 0 && live.run_id[0]) {
			/* the log may already say more than our last poll */
			dcr_err ferr = {0};
			fetch_apply(f, &ferr);
		}
		struct desc d;
		pthread_mutex_lock(&f->mu);
		if (resolve(f, ino, &d) == 0)
			gen_comp_status(f, name, lrc == 0 ? &live : NULL, out);
		pthread_mutex_unlock(&f->mu);
	}
	if (rc == 0) {
		pthread_mutex_lock(&f->mu);
		node_at(f, ino)->last_size = out->len;
		node_at(f, ino)->size_gen = f->nentries + 1;
		pthread_mutex_unlock(&f->mu);
	}
	return rc;
}

/* The true size of a file made by the daemon (stats.json, a computation's
 * status), made when the log changed since it was last made: `tar -c`,
 * `rsync` and backups copy st_size bytes. f->mu not held. */
static void backend_size(fs *f, fs_attr *a)
{
	struct desc d;
	char *name = NULL;
	enum kind k = K_NONE;
	pthread_mutex_lock(&f->mu);
	if (resolve(f, a->ino, &d) == 0 && (d.kind == K_DS_STATS || d.kind == K_COMP_STATUS) &&
	    may_read(f, &d) && node_at(f, a->ino)->size_gen != f->nentries + 1) {
		k = d.kind;
		name = dcr_strdup(d.ds ? d.ds : d.comp);
	}
	pthread_mutex_unlock(&f->mu);
	if (!name)
		return;
	dcr_buf b;
	dcr_buf_init(&b);
	dcr_err err = {0};
	if (gen_backend(f, a->ino, k, name, &b, &err) == 0)
		a->size = b.len;
	dcr_buf_release(&b);
	free(name);
}

int fs_open(fs *f, uint64_t ino, int flags, fs_file **out)
{
	struct desc d;
	fs_file *h = NULL;
	bool trunc_lf = false;
	int rc;
	*out = NULL;
	if ((flags & O_ACCMODE) == O_RDONLY)
		maybe_refresh(f);
	pthread_mutex_lock(&f->mu);
	rc = resolve(f, ino, &d);
	if (rc == -ENOENT && wants_write(flags))
		rc = reopen_gone(f, ino, &d);
	if (rc < 0)
		goto out_locked;
	if (is_dir_kind(d.kind)) {
		rc = -EISDIR;
		goto out_locked;
	}
	h = file_new(d.kind, ino, flags);
	if (wants_write(flags) && !may_write(f, &d)) {
		rc = -EACCES;
		goto out_locked;
	}
	/* O_RDWR on a dataset file is for writing (python's "w+"); its reads
	 * fail in fs_read */
	bool rdwr_data = (flags & O_ACCMODE) == O_RDWR &&
	                 (d.kind == K_DS_DATA || (d.kind == K_LFILE && !d.lf->temp));
	if ((flags & O_ACCMODE) != O_WRONLY && !rdwr_data && !may_read(f, &d)) {
		rc = -EACCES;
		goto out_locked;
	}
	switch (d.kind) {
	case K_LFILE:
		rc = lfile_open(f, d.lf, flags, h);
		trunc_lf = rc == 0 && (flags & O_TRUNC);
		break;
	case K_DS_DATA: {
		if (!wants_write(flags)) {
			/* Reading it back: ranged reads from the daemon, pinned to
			 * this provision (a new one fails the read, never mixes). */
			h->name = dcr_strdup(d.ds);
			memcpy(h->sha256, d.prov->sha256, sizeof h->sha256);
			break;
		}
		/* Rewriting the provisioned file: a new upload under its name. */
		lfile *l;
		rc = lfile_new(f, node_at(f, ino)->parent, node_at(f, ino)->name, d.ds, &l);
		if (rc == 0)
			rc = lfile_open(f, l, flags | O_TRUNC, h);
		break;
	}
	case K_ROOMJSON:
		if (!(flags & O_TRUNC) && f->st.def_json)
			dcr_buf_append_str(&h->buf, f->st.def_json);
		break;
	case K_CTL:
	case K_COMP_RUN:
		h->name = d.comp ? dcr_strdup(d.comp) : NULL;
		break;
	case K_DS_STATS:
	case K_COMP_STATUS:
	case K_COMP_RESULT:
		h->name = dcr_strdup(d.ds ? d.ds : d.comp);
		break;
	case K_AUDIT:
		break; /* read live (fs_read) */
	default:
		rc = gen_local(f, &d, &h->buf);
		break;
	}
out_locked:
	pthread_mutex_unlock(&f->mu);
	if (rc < 0)
		goto out;
	if (trunc_lf)
		lfile_truncate(f, h->lf, 0);
	/* Contents that need the daemon, fetched once per open. */
	dcr_err err = {0};
	if (h->kind == K_DS_STATS || h->kind == K_COMP_STATUS) {
		rc = gen_backend(f, ino, h->kind, h->name, &h->buf, &err);
	} else if (h->kind == K_COMP_RESULT) {
		/* Records result.retrieved (once per open). */
		rc = f->be.result_open(f->be.ctx, h->name, h->run_id, &h->size, &err);
		if (rc == 0) {
			dcr_err ferr = {0};
			fetch_apply(f, &ferr); /* our own event shows at once */
		}
	}
	if (rc < 0) {
		set_last_error(f, h->name, &err);
		rc = -fs_errno(rc);
		goto out;
	}
out:
	if (rc < 0) {
		if (h && h->lf) {
			pthread_mutex_lock(&f->mu);
			if (--h->lf->opens == 0 && !h->lf->linked)
				lfile_free(f, h->lf);
			pthread_mutex_unlock(&f->mu);
		}
		if (h)
			file_free(h);
		return rc;
	}
	*out = h;
	return 0;
}

int fs_create(fs *f, uint64_t parent, const char *name, int flags, fs_attr *attr, fs_file **out)
{
	struct desc pd, d;
	lfile *l = NULL;
	int rc;
	*out = NULL;
	if (strlen(name) > FS_NAME_BYTES_MAX)
		return -ENAMETOOLONG;
	pthread_mutex_lock(&f->mu);
	rc = resolve(f, parent, &pd);
	if (rc < 0)
		goto out;
	rc = resolve_child(f, parent, &pd, name, &d);
	if (rc == 0) {
		uint64_t ino = d.kind == K_LFILE ? d.lf->ino : node_get(f, parent, name);
		pthread_mutex_unlock(&f->mu);
		if (flags & O_EXCL)
			return -EEXIST;
		rc = fs_open(f, ino, flags, out);
		if (rc == 0)
			rc = fs_getattr(f, ino, attr);
		if (rc < 0 && *out) {
			fs_release(f, *out);
			*out = NULL;
		}
		return rc;
	}
	if (rc != -ENOENT)
		goto out;
	if (pd.kind == K_DS) {
		if (!rm_is_owner(f->st.def, f->opt.me, pd.ds)) {
			rc = -EACCES;
			goto out;
		}
	} else if (pd.kind == K_ROOT) {
		if (!fs_is_temp_name(name) || !is_creator(f)) {
			rc = -EACCES;
			goto out;
		}
	} else {
		rc = -EACCES;
		goto out;
	}
	if (strcmp(name, "schema.json") == 0 || strcmp(name, "status") == 0 ||
	    strcmp(name, "stats.json") == 0) {
		rc = -EACCES;
		goto out;
	}
	rc = lfile_new(f, parent, name, pd.kind == K_DS ? pd.ds : NULL, &l);
	if (rc < 0)
		goto out;
	fs_file *h = file_new(K_LFILE, l->ino, flags);
	l->opens++;
	h->lf = l;
	d.kind = K_LFILE;
	d.lf = l;
	d.ds = l->dataset;
	fill_attr(f, l->ino, &d, attr);
	*out = h;
out:
	pthread_mutex_unlock(&f->mu);
	return rc;
}

ssize_t fs_read(fs *f, fs_file *h, uint64_t off, void *buf, size_t cap)
{
	if ((h->flags & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	if (h->kind == K_LFILE) {
		lfile *l = h->lf;
		if (!l->temp)
			return -EACCES;
		pthread_mutex_lock(&l->mu);
		ssize_t r = pread(l->fd, buf, cap, (off_t)off);
		pthread_mutex_unlock(&l->mu);
		return r < 0 ? -errno : r;
	}
	if (h->kind == K_COMP_RESULT || h->kind == K_DS_DATA) {
		dcr_err err = {0};
		size_t got = 0;
		while (got < cap) {
			int r = h->kind == K_DS_DATA
			            ? f->be.data_read(f->be.ctx, h->name, h->sha256, off + got,
			                              (uint8_t *)buf + got, cap - got, &err)
			            : f->be.result_read(f->be.ctx, h->run_id, off + got,
			                                (uint8_t *)buf + got, cap - got, &err);
			if (r == DCR_ESTATE && h->kind == K_DS_DATA)
				return -ESTALE; /* provisioned again since the open */
			if (r < 0)
				return -fs_errno(r);
			if (r == 0)
				break;
			got += (size_t)r;
		}
		return (ssize_t)got;
	}
	if (h->kind == K_AUDIT) {
		/* Append-only: read as it is now, so `tail -f` sees new lines. */
		pthread_mutex_lock(&f->mu);
		size_t n = off >= f->audit.len ? 0 : f->audit.len - off < cap ? f->audit.len - off : cap;
		if (n)
			memcpy(buf, f->audit.data + off, n);
		pthread_mutex_unlock(&f->mu);
		return (ssize_t)n;
	}
	if (off >= h->buf.len)
		return 0;
	size_t n = h->buf.len - off < cap ? h->buf.len - off : cap;
	memcpy(buf, h->buf.data + off, n);
	return (ssize_t)n;
}

ssize_t fs_write(fs *f, fs_file *h, uint64_t off, const void *p, size_t n)
{
	int rc;
	if ((h->flags & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	switch (h->kind) {
	case K_LFILE: {
		lfile *l = h->lf;
		pthread_mutex_lock(&l->mu);
		if (l->temp) {
			ssize_t w = pwrite(l->fd, p, n, (off_t)off);
			rc = w < 0 ? -errno : 0;
			if (w > 0 && off + (uint64_t)w > l->size)
				l->size = off + (uint64_t)w;
			if (l->dataset)
				pending_extend(f, l->dataset);
		} else if (l->state == LF_FAILED || l->state == LF_DONE) {
			rc = -EINVAL;
		} else if (off != l->size) {
			dcr_err err;
			dcr_err_set(&err, DCR_EINVALID,
			            "write at offset %llu after %llu bytes: dataset files are "
			            "written from start to end",
			            (unsigned long long)off, (unsigned long long)l->size);
			rc = lfile_fail(f, l, DCR_EINVALID, &err);
		} else {
			rc = lfile_stream(f, l, p, n);
			if (rc == 0)
				l->size += n;
		}
		l->mtime_ms = dcr_now_ms();
		pthread_mutex_unlock(&l->mu);
		return rc < 0 ? rc : (ssize_t)n;
	}
	case K_ROOMJSON:
		if (off + n > FS_ROOMJSON_BYTES_MAX)
			return -EFBIG;
		if (h->buf.len < off + n) {
			dcr_buf_reserve(&h->buf, off + n - h->buf.len);
			memset(h->buf.data + h->buf.len, ' ', off + n - h->buf.len);
			h->buf.len = off + n;
		}
		memcpy(h->buf.data + off, p, n);
		h->dirty = true;
		return (ssize_t)n;
	case K_CTL:
		rc = ctl_write(f, p, n);
		return rc < 0 ? rc : (ssize_t)n;
	case K_COMP_RUN:
		/* One open-write-close is one run, however the bytes arrive
		 * (printf writes per line, head per 8 KiB). */
		if (h->ran)
			return (ssize_t)n;
		h->ran = true;
		rc = run_and_wait(f, h->name);
		return rc < 0 ? rc : (ssize_t)n;
	default:
		return -EACCES;
	}
}

void fs_file_set_opener(fs_file *h, uint64_t opener)
{
	h->opener = opener;
}

int fs_flush(fs *f, fs_file *h, uint64_t closer, bool writer_killed)
{
	int rc = 0;
	/* Every close of a shared descriptor flushes; only the opener's close
	 * ends the file (`(cat a; cat b) > x.csv`: cat a's exit is not it). */
	if (h->opener && closer && closer != h->opener &&
	    (h->kind == K_LFILE || h->kind == K_ROOMJSON))
		return 0;
	if (writer_killed && h->kind == K_LFILE && !h->lf->temp) {
		/* A writer killed by a signal closed the file: what arrived is
		 * not the whole file, so nothing is ingested. */
		lfile *l = h->lf;
		pthread_mutex_lock(&l->mu);
		if (l->state == LF_STREAM) {
			lfile_abandon(f, l);
			l->state = LF_FAILED;
			char ts[32];
			iso_time(dcr_now_ms(), ts);
			set_dserr(f, l->dataset,
			          dcr_asprintf("%s abandoned %s: the writer was killed after %llu "
			                       "bytes; nothing was provisioned",
			                       ts, l->name, (unsigned long long)l->size));
		}
		pthread_mutex_unlock(&l->mu);
		return 0;
	}
	if (writer_killed && h->kind == K_ROOMJSON) {
		h->dirty = false;
		return 0;
	}
	if (h->kind == K_ROOMJSON && h->dirty) {
		h->dirty = false;
		rc = save_draft(f, (const char *)h->buf.data, h->buf.len);
	} else if (h->kind == K_LFILE && !h->lf->temp) {
		lfile *l = h->lf;
		pthread_mutex_lock(&l->mu);
		pthread_mutex_lock(&f->mu);
		bool linked = l->linked;
		pthread_mutex_unlock(&f->mu);
		if (l->state == LF_STREAM) {
			if (linked) {
				rc = lfile_commit(f, l);
			} else {
				lfile_abandon(f, l);
				l->state = LF_IDLE;
			}
		}
		pthread_mutex_unlock(&l->mu);
	}
	return rc;
}

int fs_release(fs *f, fs_file *h)
{
	if (!h)
		return 0;
	if (h->lf) {
		lfile *l = h->lf;
		pthread_mutex_lock(&l->mu);
		if (!l->temp && l->state == LF_STREAM && l->up) {
			/* closed without a flush (killed writer): nothing ingested */
			lfile_abandon(f, l);
			l->state = LF_IDLE;
		}
		pthread_mutex_unlock(&l->mu);
		pthread_mutex_lock(&f->mu);
		l->opens--;
		if (l->opens == 0 && !l->temp && l->linked)
			lfile_unlink(f, l); /* committed, failed or empty: the name goes back
			                       to the provisioned file, if any */
		else if (l->opens == 0 && !l->linked)
			lfile_free(f, l);
		pthread_mutex_unlock(&f->mu);
	}
	file_free(h);
	return 0;
}

/* ---- unlink, rename, setattr -------------------------------------------------------- */

int fs_unlink(fs *f, uint64_t parent, const char *name)
{
	struct desc pd, d;
	dcr_err err = {0};
	pthread_mutex_lock(&f->mu);
	int rc = resolve(f, parent, &pd);
	if (rc == 0)
		rc = resolve_child(f, parent, &pd, name, &d);
	if (rc < 0)
		goto out;
	if (d.kind == K_LFILE) {
		uint64_t ino = d.lf->ino;
		lfile_unlink(f, d.lf);
		bucket_remove(f, ino);
		free(node_at(f, ino)->name);
		node_at(f, ino)->name = NULL;
		rc = 0;
	} else if (d.kind == K_DS_DATA && rm_is_owner(f->st.def, f->opt.me, d.ds)) {
		/* rm of the provisioned file deprovisions the dataset, after a
		 * grace period: tools that delete before they write (install,
		 * tar -x, rsync --delete) must not cost the data when the new
		 * file is rejected (pending_apply, hold_end). */
		rc = rm_check_deprovision(&f->st, f->opt.me, d.ds, &err);
		if (rc < 0) {
			pthread_mutex_unlock(&f->mu);
			set_last_error(f, name, &err);
			return -fs_errno(rc);
		}
		pdep *p = pdep_find(f, d.ds);
		if (!p) {
			p = dcr_calloc(1, sizeof *p);
			p->dataset = dcr_strdup(d.ds);
			p->next = f->pending;
			f->pending = p;
		}
		free(p->file);
		p->file = dcr_strdup(name);
		memcpy(p->sha256, d.prov->sha256, 32);
		p->at_ms = dcr_now_ms();
		p->due_ms = dcr_mono_ms() + (f->opt.rm_grace_ms ? f->opt.rm_grace_ms : FS_RM_GRACE_MS);
		f->force_inval = true;
		rc = 0;
	} else {
		rc = is_dir_kind(d.kind) ? -EISDIR : -EACCES;
	}
out:
	pthread_mutex_unlock(&f->mu);
	return rc;
}

/* Renames the provisioned file of ds (pinned by sha256) to a final name:
 * the file is read back from the daemon and provisioned under the new
 * name (the log names every provisioned file; there is no rename event).
 * This is how `sed -i` and `perl -pi` finish: their work file, provisioned
 * at its close, is renamed over the real name. f->mu not held. */
static int reprovision_as(fs *f, const char *ds, const uint8_t sha256[32], const char *name)
{
	dcr_err err = {0};
	void *up = NULL;
	uint8_t *buf = dcr_malloc(FS_IO_BYTES_MAX);
	uint64_t off = 0;
	bool holds = hold_begin(f, ds);
	int rc = f->be.upload_begin(f->be.ctx, ds, name, &up, &err);
	if (rc < 0)
		goto out;
	for (;;) {
		int r = f->be.data_read(f->be.ctx, ds, sha256, off, buf, FS_IO_BYTES_MAX, &err);
		if (r < 0) {
			rc = r;
			break;
		}
		if (r == 0)
			break;
		rc = f->be.upload_write(up, buf, (size_t)r, &err);
		if (rc < 0)
			break;
		off += (uint64_t)r;
	}
	if (rc < 0)
		f->be.upload_end(up, false, NULL);
	else
		rc = f->be.upload_end(up, true, &err);
out:
	free(buf);
	if (rc < 0) {
		set_dserr(f, ds, upload_msg(name, &err));
		set_last_error(f, ds, &err);
		if (holds)
			hold_end(f, ds, false);
		return rc == DCR_ESTATE ? -ESTALE : -upload_errno(rc);
	}
	char ts[32];
	iso_time(dcr_now_ms(), ts);
	set_dserr(f, ds,
	          dcr_asprintf("%s provisioned from %s (renamed, %llu bytes)", ts, name,
	                       (unsigned long long)off));
	fetch_apply(f, &err);
	if (holds)
		hold_end(f, ds, true);
	return 0;
}

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE 1
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE 2
#endif

int fs_rename(fs *f, uint64_t parent, const char *name, uint64_t newparent, const char *newname,
              unsigned flags)
{
	struct desc pd, d, nd;
	lfile *l = NULL;
	int rc;
	if (flags & RENAME_EXCHANGE)
		return -EINVAL;
	if (strlen(newname) > FS_NAME_BYTES_MAX)
		return -ENAMETOOLONG;
	pthread_mutex_lock(&f->mu);
	rc = resolve(f, parent, &pd);
	if (rc == 0)
		rc = resolve_child(f, parent, &pd, name, &d);
	if (rc < 0)
		goto out_locked;
	if (parent != newparent) {
		rc = -EXDEV;
		goto out_locked;
	}
	int exists = resolve_child(f, parent, &pd, newname, &nd);
	if (d.kind == K_DS_DATA && pd.kind == K_DS && !fs_is_temp_name(newname) &&
	    may_write(f, &d) && !(exists == 0 && (flags & RENAME_NOREPLACE)) &&
	    !reserved_ds_name(newname)) {
		if (exists == 0 && nd.kind == K_LFILE) {
			rc = -EBUSY; /* a file of that name is being written */
			goto out_locked;
		}
		uint8_t sha[32];
		uint64_t ino = node_find(f, parent, name);
		char *ds = dcr_strdup(d.ds);
		memcpy(sha, d.prov->sha256, 32);
		pthread_mutex_unlock(&f->mu);
		rc = reprovision_as(f, ds, sha, newname);
		free(ds);
		pthread_mutex_lock(&f->mu);
		if (rc == 0 && ino)
			node_move(f, ino, parent, newname);
		goto out_locked;
	}
	if (d.kind != K_LFILE || !d.lf->temp) {
		rc = d.kind == K_LFILE || d.kind == K_DS_DATA ? -EPERM : -EACCES;
		goto out_locked;
	}
	if (exists == 0 && (flags & RENAME_NOREPLACE)) {
		rc = -EEXIST;
		goto out_locked;
	}
	l = d.lf;
	l->opens++; /* pinned while we work without f->mu */
	if (fs_is_temp_name(newname)) {
		/* temp to temp: just a new name */
		if (exists == 0 && nd.kind == K_LFILE && nd.lf != l)
			lfile_unlink(f, nd.lf);
		else if (exists == 0 && nd.kind != K_LFILE) {
			rc = -EACCES;
			goto unpin_locked;
		}
		free(l->name);
		l->name = dcr_strdup(newname);
		node_move(f, l->ino, parent, newname);
		rc = 0;
		goto unpin_locked;
	}
	if (pd.kind == K_ROOT && strcmp(newname, "room.json") != 0) {
		rc = -EACCES;
		goto unpin_locked;
	}
	if (exists == 0 && nd.kind == K_LFILE) {
		rc = -EBUSY; /* a file of that name is being written */
		goto unpin_locked;
	}
	pthread_mutex_unlock(&f->mu);

	/* temp to final name: ingest now; on failure the temp file stays */
	pthread_mutex_lock(&l->mu);
	if (pd.kind == K_ROOT) {
		dcr_buf b;
		dcr_buf_init(&b);
		if (l->size > FS_ROOMJSON_BYTES_MAX) {
			rc = -EFBIG;
		} else {
			dcr_buf_reserve(&b, l->size + 1);
			ssize_t r = pread(l->fd, b.data, l->size, 0);
			rc = r < 0 ? -errno : 0;
			if (r >= 0)
				b.len = (size_t)r;
		}
		if (rc == 0)
			rc = save_draft(f, (const char *)b.data, b.len);
		dcr_buf_release(&b);
	} else {
		rc = lfile_ingest_spool(f, l, newname);
	}
	pthread_mutex_unlock(&l->mu);
	pthread_mutex_lock(&f->mu);
	if (rc == 0 && l->linked) {
		/* The inode now names the final file. */
		node_move(f, l->ino, parent, newname);
		lfile_unlink(f, l); /* pinned: freed at the unpin below */
	}
unpin_locked:
	if (--l->opens == 0 && !l->linked)
		lfile_free(f, l);
out_locked:
	pthread_mutex_unlock(&f->mu);
	return rc;
}

int fs_setattr(fs *f, uint64_t ino, fs_file *fh, int64_t size, int mode, int64_t mtime_ns,
               fs_attr *out)
{
	struct desc d;
	int rc;
	lfile *l = NULL;
	pthread_mutex_lock(&f->mu);
	rc = resolve(f, ino, &d);
	if (rc < 0)
		goto out_locked;
	if (mode >= 0 || mtime_ns >= 0) {
		/* Kept where a tool will look for them again (rsync -a's quick
		 * check, cp -p); elsewhere accepted and without effect. */
		if (d.kind == K_LFILE) {
			if (mode >= 0)
				d.lf->mode = mode & 07777;
			if (mtime_ns >= 0)
				d.lf->mtime_ns = (uint64_t)mtime_ns ? (uint64_t)mtime_ns : 1;
		} else if (d.kind == K_DS_DATA) {
			if (!may_write(f, &d)) {
				rc = -EPERM;
				goto out_locked;
			}
			pmeta *m = pmeta_find(f, d.ds, d.prov->sha256, true);
			if (mode >= 0)
				m->mode = mode & 07777;
			if (mtime_ns >= 0)
				m->mtime_ns = (uint64_t)mtime_ns ? (uint64_t)mtime_ns : 1;
		}
	}
	if (size >= 0) {
		if (d.kind == K_LFILE) {
			l = d.lf;
			l->opens++;
		} else if (d.kind == K_ROOMJSON && fh && fh->kind == K_ROOMJSON) {
			if ((uint64_t)size <= fh->buf.len) {
				fh->buf.len = (size_t)size;
				fh->dirty = true;
			} else {
				rc = -EINVAL;
			}
		} else if ((d.kind == K_ROOMJSON || d.kind == K_CTL || d.kind == K_COMP_RUN) &&
		           size == 0 && may_write(f, &d)) {
			rc = 0; /* open(O_TRUNC) without atomic truncation */
		} else if (d.kind == K_DS_DATA && may_write(f, &d)) {
			rc = -EPERM; /* rewrite it with cp or > instead */
		} else {
			rc = -EACCES;
		}
	}
out_locked:
	pthread_mutex_unlock(&f->mu);
	if (rc == 0 && l)
		rc = lfile_truncate(f, l, (uint64_t)size);
	if (l) {
		pthread_mutex_lock(&f->mu);
		if (--l->opens == 0 && !l->linked)
			lfile_free(f, l);
		pthread_mutex_unlock(&f->mu);
	}
	if (rc == 0)
		rc = fs_getattr(f, ino, out);
	return rc;
}
