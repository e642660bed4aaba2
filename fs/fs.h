/* fs.h: the mounted room (DESIGN §6) as a pure filesystem model.
 *
 * The core (fs_core.c, fs_nodes.c, fs_gen.c, fs_upload.c; shared types in
 * fs_int.h) maps inode numbers to nodes of one room as one
 * identity sees it: README, room.json, status, ctl, audit.log, test.out,
 * events/, datasets/NAME/, computations/NAME/, requests/, dev/. It knows
 * nothing of libfuse: every operation returns a value >= 0 or -errno, and
 * the adapter (fuse_ll.c, the only file that includes fuse_lowlevel.h)
 * translates to FUSE replies. The core talks to the daemon only through
 * the fs_backend vtable, so tests drive it with an in-memory fake
 * (tests/unit/test_fs_core.c) and the mount uses fs_proto (fs_proto.c, a small
 * pool of proto client connections).
 *
 * Room state is never stored: the core folds the room's events with
 * rm_apply (fs_refresh fetches new ones) and answers every question from
 * that state. Permissions come from the room module's predicates; the
 * daemon re-checks everything.
 *
 * Threads: every fs_* function is thread safe (one state mutex, released
 * around backend calls; uploads have their own lock). fs_refresh is meant
 * for one background thread; the changed inode numbers it reports should
 * be invalidated by the caller outside any request handler. */
#ifndef DCR_FS_H
#define DCR_FS_H

#include <sys/types.h>

#include "../base/base.h"
#include "../eventstore/eventstore.h"

#define FS_ROOT_INO           1
#define FS_BLKSIZE            (1024u * 1024) /* st_blksize: cp sizes its buffer on it */
#define FS_IO_BYTES_MAX       (1024u * 1024) /* max_read / max_write of the mount */
#define FS_ROOMJSON_BYTES_MAX (1024u * 1024)
#define FS_CTL_BYTES_MAX      256
#define FS_RUN_WAIT_MS_MAX    (15u * 60 * 1000) /* writing `run` waits at most this */
#define FS_SPOOL_FILES_MAX    256               /* temp files alive at once */
#define FS_NAME_BYTES_MAX     255
#define FS_RM_GRACE_MS        2000 /* rm of the provisioned file waits this for a new file */
#define FS_CHECK_BYTES_MAX    (8u * 1024 * 1024) /* first bytes of a file checked locally */
#define FS_DEV_RUNS_MAX       64                 /* named development runs kept by a mount */
#define FS_DEV_OUTPUT_BYTES_MAX (64u * 1024 * 1024) /* a dev run's result shown in dev/ */

/* Status of the last run of a computation as the daemon sees it (state:
 * none, queued, running, done, failed). */
typedef struct fs_run_status {
	char run_id[33];
	char state[16];
	char error[1024];
	char detail[1024]; /* analysts of unfiltered computations only */
	uint64_t rows, suppressed, duration_ms, result_bytes;
} fs_run_status;

/* Status of a development run as the daemon sees it (state: queued,
 * running, done, failed). */
typedef struct fs_dev_status {
	char state[16];
	char error[256];
	char detail[1024]; /* the message behind error: the requester's own */
	bool logs;         /* finished with logs */
} fs_dev_status;

/* ---- backend -------------------------------------------------------------
 * What the core needs from the daemon. Every function returns 0 (or bytes
 * for result_read) or a negative code with a message in err. ctx is the
 * backend's own. All functions may be called from several threads at once.
 */
typedef struct fs_backend {
	void *ctx;
	/* Entries (envelope || sig) of the room from seq `from` to the end. */
	int (*events)(void *ctx, uint64_t from,
	              int (*fn)(void *fctx, uint64_t seq, const void *entry, size_t n), void *fctx,
	              dcr_err *err);
	/* Signs type/body as the mounting identity and appends it. */
	int (*submit)(void *ctx, const char *type, const void *body, size_t n, dcr_err *err);
	/* A streaming upload of one dataset file. begin sets *up; write sends
	 * the next bytes (in order); end(commit=true) finishes it: the daemon
	 * validates, stores, and dataset.provisioned is appended; end(false)
	 * abandons it and nothing is stored. end always frees up. A write may
	 * fail early when the daemon already rejected the data. */
	int (*upload_begin)(void *ctx, const char *dataset, const char *file_name, void **up,
	                    dcr_err *err);
	int (*upload_write)(void *up, const void *p, size_t n, dcr_err *err);
	int (*upload_end)(void *up, bool commit, dcr_err *err);
	/* Requests a run (run.requested); run_id gets the new id. */
	int (*run)(void *ctx, const char *computation, char run_id[33], dcr_err *err);
	int (*run_status)(void *ctx, const char *computation, fs_run_status *st, dcr_err *err);
	/* Records result.retrieved, returns the run id and result size. */
	int (*result_open)(void *ctx, const char *computation, char run_id[33], uint64_t *size,
	                   dcr_err *err);
	/* Returns bytes read (0 at the end) or a negative code. */
	int (*result_read)(void *ctx, const char *run_id, uint64_t off, void *buf, size_t cap,
	                   dcr_err *err);
	/* The file provisioned for dataset, back to its owners: bytes read at
	 * off (0 at the end) or a negative code; DCR_ESTATE once the provision
	 * with this sha256 is no longer the current one. */
	int (*data_read)(void *ctx, const char *dataset, const uint8_t sha256[32], uint64_t off,
	                 void *buf, size_t cap, dcr_err *err);
	/* The same for one drop of an append dataset, by its file name. */
	int (*drop_read)(void *ctx, const char *dataset, const char *file,
	                 const uint8_t sha256[32], uint64_t off, void *buf, size_t cap,
	                 dcr_err *err);
	/* The logs of a python/r run (an archive, docs/compute.md): bytes read
	 * at off (0 at the end) and the total in *size; as "logs" allows.
	 * NULL: the backend has none. */
	int (*logs_read)(void *ctx, const char *run_id, uint64_t off, void *buf, size_t cap,
	                 uint64_t *size, dcr_err *err);
	int (*stats)(void *ctx, const char *dataset, dcr_buf *json, dcr_err *err);
	int (*room_test)(void *ctx, dcr_buf *report, dcr_err *err);
	/* Development runs (dev/): sign dev.requested (language "sql",
	 * "python" or "r"; inputs sorted or not), the run's status, and ranged
	 * reads of its "result" or "logs" (bytes, 0 at the end). NULL: the
	 * backend has none (dev/ refuses writes). */
	int (*dev_run)(void *ctx, const char *language, const char *script,
	               const char *const *inputs, size_t ninputs, char run_id[33], dcr_err *err);
	int (*dev_status)(void *ctx, const char *run_id, fs_dev_status *st, dcr_err *err);
	int (*dev_read)(void *ctx, const char *run_id, const char *what, uint64_t off, void *buf,
	                size_t cap, dcr_err *err);
} fs_backend;

/* ---- the core ------------------------------------------------------------ */

typedef struct fs fs;

typedef struct fs_options {
	uint8_t room[ES_ROOM_ID_BYTES];
	uint8_t me[DCR_ED25519_PUB_BYTES];     /* the mounting identity */
	uint8_t daemon[DCR_ED25519_PUB_BYTES]; /* daemon key (rm_state_init) */
	const char *mountpoint;                /* shown in README examples (may be NULL) */
	const char *spool_parent; /* where the private spool dir goes; NULL: $TMPDIR or /tmp */
	uid_t uid;
	gid_t gid;
	unsigned run_poll_ms; /* run status polling while `run` waits; 0 = 50 */
	unsigned rm_grace_ms; /* rm of a provisioned file takes effect after; 0 = FS_RM_GRACE_MS */
} fs_options;

typedef struct fs_attr {
	uint64_t ino;
	mode_t mode; /* type and permission bits as this identity may use them */
	uint32_t nlink;
	uint64_t size;
	uint64_t mtime_ms;
	uint64_t mtime_ns; /* when not 0: the exact mtime a tool set (ns since the epoch) */
	uid_t uid;
	gid_t gid;
	uint32_t blksize;
} fs_attr;

/* Creates the core and replays the room (fails with the backend's error,
 * e.g. when the daemon refuses the identity). The backend is copied; its
 * ctx must outlive the fs. */
int fs_new(const fs_options *opt, const fs_backend *be, fs **out, dcr_err *err);
/* Frees everything (aborts unfinished uploads, removes the spool). NULL ok. */
void fs_free(fs *f);

/* Fetches and applies new events. *changed (may be NULL) gets heap array
 * of inode numbers whose attributes or contents may have changed (free
 * with free()), *nchanged its length; both are 0/NULL when nothing
 * happened. Returns the number of new events or a negative code. */
int fs_refresh(fs *f, uint64_t **changed, size_t *nchanged, dcr_err *err);
/* Events applied so far. */
uint64_t fs_size(fs *f);

int fs_lookup(fs *f, uint64_t parent, const char *name, fs_attr *out);
int fs_getattr(fs *f, uint64_t ino, fs_attr *out);
/* Truncate (size >= 0) and/or keep the permission bits (mode >= 0) and
 * the modification time (mtime_ns >= 0, ns since the epoch) a tool sets:
 * they are kept for files being written and for the provisioned file (in
 * this mount), so `rsync -a` and `cp -p` find them again. fh may be NULL. */
typedef struct fs_file fs_file;
int fs_setattr(fs *f, uint64_t ino, fs_file *fh, int64_t size, int mode, int64_t mtime_ns,
               fs_attr *out);

/* Directory listing, snapshot at open. */
typedef struct fs_dirent {
	char *name;
	uint64_t ino;
	mode_t mode;
} fs_dirent;
typedef struct fs_dir {
	fs_dirent *ents;
	size_t n;
} fs_dir;
int fs_opendir(fs *f, uint64_t ino, fs_dir **out);
void fs_dir_free(fs_dir *d);

/* Files. flags are open(2) flags. */
int fs_open(fs *f, uint64_t ino, int flags, fs_file **out);
int fs_create(fs *f, uint64_t parent, const char *name, int flags, fs_attr *attr, fs_file **out);
/* Returns bytes read/written or -errno. */
ssize_t fs_read(fs *f, fs_file *h, uint64_t off, void *buf, size_t cap);
ssize_t fs_write(fs *f, fs_file *h, uint64_t off, const void *p, size_t n);
/* The process (thread group id) that opened h, for fs_flush; 0 unknown. */
void fs_file_set_opener(fs_file *h, uint64_t opener);
/* close(2): commits a written dataset file or room.json, when the closer
 * is the process that opened it (or either is unknown, 0): every close of
 * a descriptor shared with children flushes, and only the opener's close
 * ends the file. writer_killed: the closing process is dying of a signal
 * (the adapter knows), so the data is incomplete and is abandoned. */
int fs_flush(fs *f, fs_file *h, uint64_t closer, bool writer_killed);
/* Last close of the handle; frees h. */
int fs_release(fs *f, fs_file *h);
int fs_unlink(fs *f, uint64_t parent, const char *name);
int fs_rename(fs *f, uint64_t parent, const char *name, uint64_t newparent, const char *newname,
              unsigned flags);

/* The adapter's way to tell the core that the request being served was
 * interrupted (the caller got a signal): long waits (writing `run`) check
 * fn(arg) and give up with EINTR. Thread local: set before a call on the
 * serving thread, cleared (NULL) after it. */
void fs_set_interrupt(bool (*fn)(void *arg), void *arg);

/* Temporary and editor names (never ingested when written). */
bool fs_is_temp_name(const char *name);
/* errno for a dcr code (DCR_EDENIED -> EACCES, ...); -errno passes. */
int fs_errno(int code);

/* ---- backends ------------------------------------------------------------- */

/* Backend over the proto client: a pool of `conns` connections to addr
 * (its socket, server and pin are copied; its check callback is not
 * kept: a TLS server needs a pin here, so every reconnection demands the
 * key the first connection saw) authenticated as id (copied by reference:
 * id must outlive the backend), uploads on their own connection. */
typedef struct fs_proto fs_proto;
struct cl_addr;
int fs_proto_new(const struct cl_addr *addr, const dcr_key *id, const uint8_t room[ES_ROOM_ID_BYTES],
                 unsigned conns, fs_proto **out, dcr_err *err);
void fs_proto_free(fs_proto *p);
void fs_proto_backend(fs_proto *p, fs_backend *be);
const uint8_t *fs_proto_daemon_key(const fs_proto *p);

/* ---- the FUSE adapter (fuse_ll.c, library dcr_fs_fuse) -------------------- */

/* Mounts f on mountpoint and serves it until unmounted or signalled. When
 * the mount works, writes "ok\n" to ready_fd (if >= 0) and closes it; on
 * failure before that, returns the error (err says why). A background
 * thread polls the daemon every poll_ms and invalidates changed inodes. */
int fs_fuse_run(fs *f, const char *mountpoint, int ready_fd, unsigned poll_ms, bool debug,
                dcr_err *err);

#endif
