/* daemon.h: dcrd, the clean room host, as seen by its main().
 *
 * dmn_run opens (creating) the data directory, replays every room, serves
 * the protocol of docs/protocol.md on a unix socket until SIGTERM/SIGINT,
 * then shuts down cleanly; SIGHUP reloads (dmn_options.reload). See docs/daemon.md for the data directory. */
#ifndef DCR_DAEMON_H
#define DCR_DAEMON_H

#include "../base/base.h"

enum dmn_log_level { DMN_LOG_ERROR, DMN_LOG_WARN, DMN_LOG_INFO, DMN_LOG_DEBUG };

typedef struct dmn_options {
	const char *data_dir;     /* required */
	const char *socket_path;  /* NULL: $DCR_SOCKET, else DATA_DIR/dcr.sock */
	uint64_t idle_timeout_ms; /* 0: DMN_IDLE_TIMEOUT_MS */
	enum dmn_log_level log_level;
	bool no_sync; /* tests only: LMDB without fsync */
	/* --hold-auto-approvals: record no request.auto_approved; those due
	 * are recorded at the next start without it (docs/rules.md) */
	bool hold_auto_approvals;
	/* decrypted images kept between runs, bytes; 0: DMN_IMAGE_CACHE_BYTES,
	 * DMN_IMAGE_CACHE_OFF: none */
	uint64_t image_cache_bytes;
	/* request frames buffered, queued or being handled, with what
	 * unpacking them may cost, bytes; 0: DMN_FRAME_BUDGET_BYTES */
	uint64_t frame_budget_bytes;
	/* The host's maxima of python/r limits (--script-max-*): a
	 * definition asking for more fails its runs, naming the limit; the
	 * defaults (docs/compute.md) are lowered to them. 0: the absolute cap
	 * of docs/room-format.md. */
	uint64_t script_max_wall_s, script_max_cpu_s, script_max_memory_mb, script_max_processes,
	    script_max_output_mb, script_max_tmp_mb;
	/* The program the sandbox re-executes (compute_sandbox.h); NULL:
	 * /proc/self/exe (dcrd itself; tests that run dmn_run in-process give
	 * the dcrd binary). */
	const char *sandbox_exe;
	/* SIGHUP: the options as they would be read now (main.c: the
	 * configuration file and the command line again). Fills
	 * next->log_level and next->idle_timeout_ms, which dmn_run applies at
	 * once, and msg with what changed but needs a restart (may be empty);
	 * -1 with msg saying why: nothing is applied. NULL: SIGHUP is logged
	 * and ignored. Called on the loop thread. */
	int (*reload)(void *arg, struct dmn_options *next, char *msg, size_t cap);
	void *reload_arg;
} dmn_options;

#define DMN_IMAGE_CACHE_OFF UINT64_MAX

/* Runs the daemon in the foreground. Returns 0 after a clean shutdown, or a
 * negative code with err set (e.g. another dcrd holds the directory).
 * Every thread it started is joined when it returns, libuv's pool too
 * (uv_library_shutdown): call it once per process. */
int dmn_run(const dmn_options *opt, dcr_err *err);

/* `dcrd restore --data DIR [--keys KEYDIR] BACKUP` (admin.c): argv[0] is
 * "restore". Returns the exit status. */
int dmn_restore_main(int argc, char **argv);

/* Parses "error|warn|info|debug"; -1 if unknown. */
int dmn_log_level_parse(const char *s);

#endif
