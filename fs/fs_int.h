/* fs_int.h: what the parts of the filesystem core share (fs_core.c,
 * fs_nodes.c, fs_gen.c, fs_upload.c): the node kinds, local files, the
 * core's state, open files, and the fs__ functions one part calls in
 * another. Not for use outside fs/. */
#ifndef DCR_FS_INT_H
#define DCR_FS_INT_H

#include <pthread.h>

#include <stdatomic.h>

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
	K_COMP_RESDIR,  /* python/r: result/, the output files */
	K_COMP_RESSUB,  /* a directory under result/ */
	K_COMP_RESFILE, /* a file under result/ */
	K_COMP_LOG,     /* python/r: stdout and stderr, as "logs" allows */
	K_REQUESTS,
	K_REQ,          /* requests/ID/ (fs_requests.c) */
	K_REQ_TEXT,     /* requests/ID/request.json */
	K_REQ_STATUS,   /* requests/ID/status */
	K_REQ_APPROVE,  /* requests/ID/approve */
	K_REQ_REJECT,   /* requests/ID/reject */
	K_REQ_WITHDRAW, /* requests/ID/withdraw */
	K_REQ_NEW,      /* requests/NAME: a proposal being written */
	K_REQ_PREVIEW,  /* requests/ID/preview/ */
	K_REQ_PREVIEW_RUN,    /* requests/ID/preview/run */
	K_REQ_PREVIEW_RESULT, /* requests/ID/preview/NAME.csv */
	K_DEV,
	K_DEV_SCRIPT, /* dev/NAME.sql|.py|.R (fs_dev.c) */
	K_DEV_OUT,    /* dev/NAME.out/ */
	K_DEV_STATUS, /* dev/NAME.out/status */
	K_DEV_FILE,   /* dev/NAME.out/FILE: an output file, stdout or stderr */
	K_LFILE,
};

typedef struct fs_dev fs_dev;

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
	bool drop; /* the rm of one drop of an append dataset (file: its name) */
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
	char *file; /* the drop of an append dataset; NULL: the provisioned file */
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
	/* the witness refused the host (a log that does not extend what it
	 * signed before, proto/witness.h): no more fetches, and every file
	 * but status and README answers EIO. Read without f->mu by the file
	 * operations' first check: set once, never cleared. */
	_Atomic(char *) refused;
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
	pdep *pending;    /* rm of provisioned files not yet applied */
	pmeta *metas;     /* mode/mtime of provisioned files */
	char *daemon_err; /* the daemon does not answer: why (NULL: it does) */
	uint64_t daemon_down_ms;
	/* Every open handle. FUSE does not promise a release for a file still
	 * open when the mount goes away (a lazy unmount, a release in flight
	 * at the unmount): fs_free releases what is left. */
	pthread_mutex_t files_mu;
	fs_file *files;
	fs_dev *devs; /* named development runs of this mount (fs_dev.c), under mu */
	size_t ndevs;
	struct rcache *rcache; /* python/r results and logs (f->mu) */
	struct fs_rqfile *rqfiles; /* proposals being written (fs_requests.c) */
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
	char *drop;                       /* K_DS_DATA of an append dataset: the drop's file */
	uint64_t opener;                  /* process that opened it (0: unknown) */
	bool ran;                         /* `run`: this open already requested its run */
	bool membuf; /* K_COMP_RESULT of a python/r computation: read from buf */
	struct fs_file *prev, *next;      /* fs.files, under fs.files_mu */
};

/* Path of a node under computations/NAME/result/ (longer ones are not
 * shown). */
#define FS_RPATH_BYTES 1024

struct desc {
	enum kind kind;
	const char *ds;
	const char *comp;
	uint64_t seq;
	lfile *lf;
	const rm_provision *prov;
	const char *req; /* request id (K_REQ...) */
	const rm_drop *drop; /* K_DS_DATA of an append dataset: the drop */
	fs_dev *dev;          /* K_DEV_SCRIPT, K_DEV_OUT, K_DEV_STATUS, K_DEV_FILE */
	const char *dev_file; /* K_DEV_FILE: its name */
	char rpath[FS_RPATH_BYTES]; /* K_COMP_RESSUB, K_COMP_RESFILE: path in result/ */
};

/* The output files (or logs) of a python/r run, fetched once per run and
 * kept while that run is the computation's last (f->mu guards the list;
 * fetching happens outside it). Fetching the files records
 * result.retrieved once. */
typedef struct rcache {
	char *comp;
	bool logs;
	char run_id[33];
	dcr_buf bytes;
	dcr_archive a;
	struct rcache *next;
} rcache;

/* The actor's name (rm_actor_name, full key), in a compound literal. */
#define ACTOR_NAME(f, key)                                                                         \
	rm_actor_name((f)->st.def, (f)->st.daemon_key, (key), RM_ACTOR_FULL,                       \
	              (char[RM_ACTOR_NAME_BYTES]){0}, RM_ACTOR_NAME_BYTES)

#define FS_FRESH_MS 20 /* fs__maybe_refresh fetches at most this often */

/* ---- fs_core.c: helpers, events ------------------------------------------ */

bool fs__key_eq(const uint8_t *a, const uint8_t *b);

void fs__iso_time(uint64_t ms, char out[32]);

void fs__json_str(dcr_buf *b, const char *s);

void fs__set_last_error(fs *f, const char *what, const dcr_err *err);

/* Per-dataset upload message (shown in datasets/NAME/status); f->mu held. */
void fs__set_dserr_locked(fs *f, const char *dataset, char *msg);

void fs__set_dserr(fs *f, const char *dataset, char *msg);

const char *fs__get_dserr(const fs *f, const char *dataset);

/* Fetches and applies whatever is new; returns the number applied. */
int fs__fetch_apply(fs *f, dcr_err *err);

/* Reading a file or a listing, or missing a name, shows the log as it is
 * now, not as of the last poll: a person who ran something in another
 * mount and looks here sees it. At most one fetch per FS_FRESH_MS. f->mu
 * not held. */
void fs__maybe_refresh(fs *f);

bool fs__wants_write(int flags);

/* ---- fs_nodes.c: inode table, resolution, permissions, attributes -------- */

node *fs__node_at(fs *f, uint64_t ino);

void fs__bucket_remove(fs *f, uint64_t ino);

uint64_t fs__node_find(fs *f, uint64_t parent, const char *name);

uint64_t fs__node_get(fs *f, uint64_t parent, const char *name);

/* Moves inode ino to (parent, name); whatever held that name loses it. */
void fs__node_move(fs *f, uint64_t ino, uint64_t parent, const char *name);

bool fs__is_creator(const fs *f);

const rm_run *fs__last_done_run(const fs *f, const char *comp);
/* The last done or failed run (the one `log` shows). */
const rm_run *fs__last_finished_run(const fs *f, const char *comp);
/* Is the result of comp an archive of files (python, r, synthetic)? */
bool fs__result_files(const fs *f, const char *comp);

/* ---- fs_core.c: python/r results and logs -------------------------------- */

/* Makes sure the files (logs: the logs) of comp's last run are cached;
 * a no-op when they are, or the identity may not read them. f->mu not
 * held. */
void fs__rcache_ensure(fs *f, const char *comp, bool logs);
/* The cached entry of comp's current last run, or NULL. f->mu held. */
const rcache *fs__rcache_get(fs *f, const char *comp, bool logs);
/* fs__rcache_ensure for what looking up NAME in directory ino (or opening
 * ino, name NULL) shows, when it is a python/r computation's. */
void fs__rcache_prefetch(fs *f, uint64_t ino, const char *name);
/* The content of `log` from a cached logs archive. */
void fs__log_text(const rcache *c, dcr_buf *out);

/* Resolves a child name of a resolved directory. f->mu held. */
int fs__resolve_child(fs *f, uint64_t dir, const struct desc *pd, const char *name, struct desc *d);

/* Resolves an inode by walking up to the root (depth <= 3). f->mu held. */
int fs__resolve(fs *f, uint64_t ino, struct desc *d);

bool fs__is_dir_kind(enum kind k);
/* The witness refused the host (f->refused set). */
static inline bool fs__refused(fs *f)
{
	return atomic_load(&f->refused) != NULL;
}

/* May this identity read the node? f->mu held. */
bool fs__may_read(fs *f, const struct desc *d);

/* What this identity may write: a stopped room takes no more actions, so
 * its files do not advertise writing. */
bool fs__may_write(fs *f, const struct desc *d);

int fs__fill_attr(fs *f, uint64_t ino, const struct desc *d, fs_attr *a);

bool fs__reserved_ds_name(const char *name);
/* 0 when name may be provisioned into dataset (rm_file_name_check); else
 * records why in datasets/NAME/status and the last error (never quoting
 * the name) and returns -EINVAL. f->mu held. */
int fs__file_name_refused(fs *f, const char *dataset, const char *name);

/* ---- fs_gen.c: generated files ------------------------------------------- */

/* Content of a file generated from the state alone; -ENOSYS for kinds
 * whose content needs the backend. f->mu held. */
int fs__gen_local(fs *f, const struct desc *d, dcr_buf *b);

/* Content of stats.json or of a computation's status: both need the
 * daemon. Records its size for getattr. f->mu not held. */
int fs__gen_backend(fs *f, uint64_t ino, enum kind kind, const char *name, dcr_buf *out,
                    dcr_err *err);

/* The true size of a file made by the daemon (stats.json, a computation's
 * status), made when the log changed since it was last made: `tar -c`,
 * `rsync` and backups copy st_size bytes. f->mu not held. */
void fs__backend_size(fs *f, fs_attr *a);

/* ---- fs_upload.c: pending rm, kept modes, local files and uploads -------- */

pdep *fs__pdep_find(fs *f, const char *ds);
/* The pending rm an upload of `name` into ds holds: of the drop `name` in
 * an append dataset, else the dataset's (fs__pdep_find). f->mu held. */
pdep *fs__pdep_for(fs *f, const char *ds, const char *name);

void fs__pdep_remove(fs *f, pdep *p);

/* Is this provision hidden by a pending rm? */
bool fs__pdep_hides(fs *f, const char *ds, const uint8_t sha256[32]);

/* file: the drop of an append dataset, NULL for the provisioned file. */
pmeta *fs__pmeta_find(fs *f, const char *ds, const char *file, const uint8_t sha256[32],
                      bool create);

/* Applies the rm of provisioned files whose grace period is over (all of
 * them when `all`, at unmount). f->mu not held. */
void fs__pending_apply(fs *f, bool all);

void fs__lfile_free(fs *f, lfile *l);

/* New lfile at (dir, name); f->mu held. */
int fs__lfile_new(fs *f, uint64_t dir, const char *name, const char *dataset, lfile **out);

/* Takes l out of the directory (it lives on while open). f->mu held. */
void fs__lfile_unlink(fs *f, lfile *l);

/* The upload that held a pending rm ended. Accepted: the new file replaced
 * the old one, the rm has nothing left to do. Not accepted: the rm is
 * dropped, because a bad file must never cost the data already there. */
void fs__hold_end(fs *f, const char *ds, const char *name, bool accepted);

/* A temporary file of ds is being written (rsync's .NAME.XXXXXX, a drop's
 * x.tmp): a pending rm waits for it to be renamed, however long the
 * transfer, as long as it keeps being written. f->mu not held. */
void fs__pending_extend(fs *f, const char *ds);

/* Abandons the upload of l, if any: nothing is provisioned (lf->mu held). */
void fs__lfile_abandon(fs *f, lfile *l);

/* Marks a streaming lfile failed (lf->mu held). Returns -errno. */
int fs__lfile_fail(fs *f, lfile *l, int code, const dcr_err *err);

/* Streams n bytes to the upload of l (lf->mu held). */
int fs__lfile_stream(fs *f, lfile *l, const void *p, size_t n);

/* Commits a streaming lfile (lf->mu held). */
int fs__lfile_commit(fs *f, lfile *l);

/* Uploads a spooled temp file under the final name `name` (lf->mu held). */
int fs__lfile_ingest_spool(fs *f, lfile *l, const char *name);

/* Opens an lfile (f->mu held): pins it, applies O_TRUNC. */
int fs__lfile_open(fs *f, lfile *l, int flags, fs_file *h);

int fs__lfile_truncate(fs *f, lfile *l, uint64_t size);

/* The kernel keeps a name for up to FS_ENTRY_TIMEOUT after the file went
 * away (`touch x.csv` closed empty, a rejected upload): opening it for
 * writing then is creating it anew, as in a local folder. f->mu held. */
int fs__reopen_gone(fs *f, uint64_t ino, struct desc *d);

/* Renames the provisioned file of ds (pinned by sha256) to a final name:
 * the file is read back from the daemon and provisioned under the new
 * name (the log names every provisioned file; there is no rename event).
 * This is how `sed -i` and `perl -pi` finish: their work file, provisioned
 * at its close, is renamed over the real name. f->mu not held. */
int fs__reprovision_as(fs *f, const char *ds, const uint8_t sha256[32], const char *name);
/* The same from the drop `file` of an append dataset (NULL: as above). */
int fs__reprovision_from(fs *f, const char *ds, const char *file, const uint8_t sha256[32],
                         const char *name);

/* ---- fs_drops.c: drops of append datasets (docs/mount.md "Drop folders") -- */

/* The K_DS_DATA child `name` of an append dataset's folder: a drop. f->mu
 * held. */
int fs__drop_resolve(fs *f, const char *ds, const char *name, struct desc *d);
/* rm of a drop: withdraws it (a signed dataset.deprovisioned naming the
 * file). f->mu held on entry and on return (released while it submits). */
int fs__drop_withdraw(fs *f, const char *ds, const char *file);
/* rm of a drop in the mount: the withdrawal waits for the grace period,
 * as the rm of a replace dataset's file does (a pending rm, held by an
 * upload of the same name). f->mu held. */
int fs__drop_rm(fs *f, const char *ds, const rm_drop *d);
/* mv of a drop within its folder: dropped again under newname (read back
 * from dcrd), then the old name withdrawn. f->mu not held. */
int fs__drop_rename(fs *f, const char *ds, const char *file, const uint8_t sha256[32],
                    const char *newname);
/* Is ds an append dataset? f->mu held. */
bool fs__is_append(const fs *f, const char *ds);
/* name NULL: is ds an append dataset; else: has ds a drop named name?
 * f->mu not held. */
bool fs__drop_known(fs *f, const char *ds, const char *name);
/* The spooled file l renamed to `name` is the drop of that name already
 * (same bytes)? Fills cur with the drop's sha256. f->mu held. */
bool fs__drop_same_size(fs *f, const char *ds, const char *name, uint64_t size,
                        uint8_t cur[32]);

/* ---- fs_dev.c: development runs (dev/) ------------------------------------ */

/* Name resolution under dev/ and dev/NAME.out/ (f->mu held). */
int fs__dev_resolve(fs *f, const struct desc *pd, const char *name, struct desc *d);
/* Names listed in dev/ or dev/NAME.out/ (f->mu held): calls add for each. */
void fs__dev_list(fs *f, const struct desc *d, void (*add)(void *ctx, const char *name),
                  void *ctx);
/* dev/ is writable: a participant, development on, published (f->mu held). */
bool fs__dev_may_create(fs *f);
/* Starts writing dev/NAME (f->mu held): checks the name and the rule,
 * makes or resets its entry; -EACCES / -EINVAL with last_error set. */
int fs__dev_create(fs *f, const char *name, struct desc *d);
/* Content of a dev/ file (f->mu held). */
int fs__dev_content(fs *f, const struct desc *d, dcr_buf *out);
uint64_t fs__dev_size(fs *f, const struct desc *d);
uint64_t fs__dev_mtime_ms(const struct desc *d);
/* The close of a written script: signs dev.requested with its text,
 * waits for the outcome, keeps its status, output files and logs for
 * dev/NAME.out/. f->mu not held. */
int fs__dev_submit(fs *f, const char *name, const void *script, size_t n);
void fs__dev_free_all(fs *f);

/* ---- fs_requests.c: requests/ ----------------------------------------------- */

/* Children of requests/ and requests/ID/. f->mu held. */
int fs__req_resolve_child(fs *f, uint64_t dir, const struct desc *pd, const char *name,
                          struct desc *d);
/* The names of requests/ or requests/ID/ for readdir. f->mu held. */
void fs__req_names(fs *f, const struct desc *d, void (*add)(void *ctx, const char *name),
                   void *ctx);
bool fs__req_may_read(fs *f, const struct desc *d);
bool fs__req_may_write(fs *f, const struct desc *d);
/* request.json and status. f->mu held. */
int fs__req_gen(fs *f, const struct desc *d, dcr_buf *b);
/* A proposal file created in requests/ (dir): its inode. f->mu held. */
int fs__req_create(fs *f, uint64_t dir, const char *name, uint64_t *ino);
/* At close: submits the proposal, approval, rejection or withdrawal
 * written; a refusal is -errno and `status` says why. f->mu not held. */
int fs__req_flush(fs *f, fs_file *h);
void fs__req_release(fs *f, fs_file *h); /* f->mu not held */
/* Opening for writing a requests/NAME the kernel still knows after its
 * proposal was closed: a new proposal (-ENOENT: not in requests/). f->mu
 * held. */
int fs__req_reopen(fs *f, uint64_t ino, struct desc *d);
void fs__req_free_all(fs *f);
/* preview/run: the sole affected owner runs a requested computation (the
 * text written names it; empty: the request's first) and the write waits
 * for it. f->mu not held. */
int fs__req_preview_run(fs *f, const char *req, const char *text, size_t n);
/* preview/NAME.csv: the newest finished preview run of NAME by this
 * identity (NULL: none). f->mu held. */
const rm_run *fs__req_preview_of(fs *f, const char *req, const char *comp);
/* Opening preview/NAME.csv records result.retrieved; sets h->run_id and
 * h->size. f->mu not held. */
int fs__req_preview_open(fs *f, fs_file *h, const char *req, const char *comp);

#endif
