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
	/* decrypted images kept between runs, bytes; 0:
	 * dmn_default_image_cache_bytes(), DMN_IMAGE_CACHE_OFF: none */
	uint64_t image_cache_bytes;
	/* memory estimates of the prepared-table builds run at once, bytes
	 * in all; 0: dmn_default_build_bytes() */
	uint64_t build_memory_bytes;
	/* rows validated at upload and held for their prepared tables'
	 * builds, bytes in all; 0: DMN_UPLOAD_ROWS_BYTES, DMN_UPLOAD_ROWS_OFF:
	 * none (every build reads its file back) */
	uint64_t upload_rows_bytes;
	/* request frames buffered, queued or being handled, with what
	 * unpacking them may cost, bytes; 0: DMN_FRAME_BUDGET_BYTES */
	uint64_t frame_budget_bytes;
	/* The host's maxima of python/r limits (--script-max-*): a
	 * definition asking for more fails its runs, naming the limit; the
	 * defaults (docs/compute.md) are lowered to them. 0: the absolute cap
	 * of docs/room-format.md. */
	uint64_t script_max_wall_s, script_max_cpu_s, script_max_memory_mb, script_max_processes,
	    script_max_output_mb, script_max_tmp_mb;
	/* Connection limits (docs/daemon.md "Limits and quotas"); 0: the
	 * DMN_* default of base/limits.h. max_conns: authenticated connections
	 * in all; per key; per address (the peer's uid on the unix socket);
	 * of keys that are a participant of no room ("strangers"), whose idle
	 * timeout is stranger_idle_s (never longer than idle_timeout_ms). */
	uint64_t max_conns, max_conns_per_key, max_conns_per_addr, max_stranger_conns;
	uint64_t stranger_idle_s;
	/* The socket's mode (0: DMN_SOCKET_MODE) and group (socket_group_set:
	 * chown it to socket_gid), whatever the umask. */
	uint32_t socket_mode;
	bool socket_group_set;
	uint32_t socket_gid;
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
	/* Disk quotas (docs/daemon.md "Limits and quotas"), MiB; 0: the
	 * defaults DMN_QUOTA_* of base/limits.h */
	uint64_t max_room_blob_mb, max_key_blob_mb, max_key_disk_mb, max_run_tmp_mb;
	uint64_t upload_expiry_s; /* unsigned uploads expire; 0: DMN_UPLOAD_EXPIRY_S */
	/* Scheduling (docs/daemon.md, "Scheduling"); 0: the default of
	 * base/limits.h. job_workers: threads computing jobs; the running
	 * caps must be below it (so other rooms and keys always get a
	 * worker) unless it is 1; queued_runs_max: per room, refused at
	 * submit. */
	unsigned job_workers, room_running_max, key_running_max, room_queued_runs_max;
	/* Limits and quotas (docs/daemon.md): a key's budget of admission
	 * check CPU time, s (0: DMN_ADMIT_CPU_S); definition text stored per
	 * key, KiB (0: DMN_DEF_BYTES_PER_KEY); rooms created per key (0:
	 * DMN_ROOMS_PER_KEY). */
	uint64_t max_check_cpu_s, max_definition_kb, max_rooms_per_key;
	/* TLS listeners (--listen, docs/daemon.md "TLS listeners"): the same
	 * protocol inside TLS 1.3 on each "HOST:PORT" ("[v6]:PORT"; port 0:
	 * any free one, logged), the key and certificate in DATA_DIR/tls/
	 * (DMN_TLS_DIR), made at the first start with one. Handshakes: at most
	 * max_tls_handshakes at once (0: DMN_TLS_HANDSHAKES_MAX; one more
	 * closes the oldest of the address holding the most), each within
	 * tls_handshake_timeout_ms (0:
	 * DMN_TLS_HANDSHAKE_TIMEOUT_MS). */
	const char *listen[DMN_LISTEN_MAX];
	unsigned nlisten;
	uint64_t tls_handshake_timeout_ms, max_tls_handshakes;
} dmn_options;

#define DMN_TLS_DIR "tls" /* in the data directory */

#define DMN_IMAGE_CACHE_OFF UINT64_MAX
#define DMN_UPLOAD_ROWS_OFF UINT64_MAX

/* Runs the daemon in the foreground. Returns 0 after a clean shutdown, or a
 * negative code with err set (e.g. another dcrd holds the directory).
 * Every thread it started is joined when it returns, libuv's pool too
 * (uv_library_shutdown): call it once per process. */
int dmn_run(const dmn_options *opt, dcr_err *err);

/* `dcrd restore --data DIR [--keys KEYDIR] BACKUP` (admin.c): argv[0] is
 * "restore". Returns the exit status. */
int dmn_restore_main(int argc, char **argv);

/* Splits a --listen address, "HOST:PORT" or "[IPV6]:PORT" (port 0 to
 * 65535), into host and port; DCR_EINVALID saying what is wrong. */
int dmn_listen_parse(const char *spec, char host[256], char port[8], dcr_err *err);

/* The machine's memory as dcrd sizes its defaults by: the smaller of the
 * physical memory and the cgroup's memory.max (v2), bytes. */
uint64_t dmn_memory_bytes(void);
/* Defaults that follow it (docs/daemon.md, "Memory"): an eighth
 * (DMN_MEMORY_SHARE) of it for the image cache, at least
 * DMN_IMAGE_CACHE_BYTES; an eighth for table builds at once, at least
 * DMN_BUILD_MEMORY_BYTES. */
uint64_t dmn_default_image_cache_bytes(void);
uint64_t dmn_default_build_bytes(void);

/* Parses "error|warn|info|debug"; -1 if unknown. */
int dmn_log_level_parse(const char *s);

#endif
