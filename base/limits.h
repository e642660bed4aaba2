/* limits.h: every limit on what comes from outside, in one place.
 * Each module keeps its own section; units are last in names. */
#ifndef DCR_LIMITS_H
#define DCR_LIMITS_H

/* base */
#define DCR_ERR_MSG_BYTES 512

/* msgpack / events */
#define DCR_EVENT_BYTES_MAX (4u * 1024 * 1024) /* one envelope */
#define DCR_MP_DEPTH_MAX 16u
#define DCR_MP_ELEMS_MAX 100000u
/* Values in one envelope (every valid event has fewer than 40: its body
 * holds scalars only), so decoding one never costs more than about
 * DCR_EVENT_OBJECTS_MAX x DCR_MP_UNPACKED_BYTES_PER_OBJECT. */
#define DCR_EVENT_OBJECTS_MAX 4096u
/* What msgpack-c's unpacker allocates per value, at most (a 24-byte
 * msgpack_object, zone chunk slack, malloc overhead): dcrd charges its
 * frame budget this much per value of a request before unpacking it. */
#define DCR_MP_UNPACKED_BYTES_PER_OBJECT 64u

/* protocol */
#define DCR_FRAME_BYTES_MAX (DCR_EVENT_BYTES_MAX + 64u * 1024)
#define DCR_CHUNK_BYTES (1024u * 1024)
/* Values in one request frame (requests carry a few scalars and one bin or
 * str; a map of arrays of small integers would unpack to 24x its bytes):
 * checked by dcrd before it unpacks, see proto_request_check. */
#define DCR_FRAME_REQUEST_OBJECTS_MAX 4096u

/* daemon/protocol (docs/protocol.md, docs/daemon.md) */
#define DMN_CONNS_MAX 256u                  /* default --max-conns: authenticated connections */
#define DMN_INFLIGHT_MAX 4u                 /* requests queued per connection */
#define DMN_AUTH_FRAME_BYTES_MAX 256u       /* frames before authentication */
#define DMN_AUTH_TIMEOUT_MS 10000u          /* to answer the challenge */
#define DMN_UNAUTH_CONNS_MAX 64u            /* connections still to answer it */
/* Default --frame-budget-mb: request frames buffered or queued, plus what
 * their unpacking may cost, across all connections (docs/daemon.md). */
#define DMN_FRAME_BUDGET_BYTES (256ull * 1024 * 1024)
#define DMN_FRAME_BUDGET_MB_MAX (1024u * 1024) /* --frame-budget-mb: 1 TiB */
#define DMN_IDLE_TIMEOUT_MS (10u * 60 * 1000) /* default --idle-timeout-ms */
#define DMN_CONFIG_BYTES_MAX (64u * 1024)   /* --config FILE */
#define DMN_CONFIG_LINES_MAX 256u           /* options in it */
#define DMN_UPLOADS_MAX 4u                  /* open uploads per connection */
#define DMN_EVENT_CLOCK_SKEW_MS (5u * 60 * 1000) /* |ts - now| of user events */
#define DMN_EVENTS_PER_REPLY_MAX 4096u      /* events in one `events` reply */
#define DMN_RESULT_READ_BYTES_MAX DCR_CHUNK_BYTES /* one result.read */
#define DCR_PREVIEW_BYTES_MAX (1024ull << 20) /* dcr request preview holds it in memory */
#define DMN_RUN_TIME_MS (60u * 1000)        /* SQL time limit of one computation */
#define DMN_DEV_RESULT_INPUT_BYTES_MAX (256u * 1024 * 1024) /* a result a dev run reads */
#define DMN_RUN_QUEUE_MAX 65536u            /* runs queued or running on the host (submit refused past it) */
#define DMN_BLOB_CHUNK_BYTES (1024u * 1024) /* encryption chunk at rest */
#define DMN_STATS_BYTES_MAX (16u * 1024 * 1024) /* statistics JSON of a dataset */
#define DMN_IMAGE_BYTES_MAX (4ull * 1024 * 1024 * 1024) /* prepared table loaded for a run */
#define DMN_IMAGE_CACHE_BYTES (1024ull * 1024 * 1024) /* decrypted images kept between runs: at least */
#define DMN_BUILD_MEMORY_BYTES (1024ull * 1024 * 1024) /* table builds at once, their estimates' sum: at least */
#define DMN_MEMORY_SHARE 8u /* image cache and builds: each this fraction of memory by default */
#define DMN_BUILD_BYTES_PER_ROW 48u   /* a build's estimate: 1.25x its CSV + this a row */
#define DMN_BUILD_MEMORY_PER_BYTE 3u  /* ...or, its rows unknown, this per byte of its CSV */
#define DMN_IMAGE_STORE_PIECE (16u << 20) /* a kept image is stored in pieces of this */
#define DMN_UPLOAD_ROWS_BYTES (512ull * 1024 * 1024) /* default --upload-rows-mb: rows held from uploads */
#define DMN_UPLOAD_ROWS_UNSIZED_BYTES (64ull * 1024 * 1024) /* ...by one upload of unknown size */
#define DMN_SUBMIT_RETRIES 16u              /* cl_submit retries on ESEQ (jittered backoff) */
#define DMN_UPLOAD_BYTES_MAX (64ull * 1024 * 1024 * 1024) /* one dataset file */
#define DMN_UPLOADS_PENDING_MAX 1024u       /* finished uploads awaiting their signed event */
#define DMN_UPLOAD_PENDING_MS (60u * 60 * 1000) /* ...forgotten after this long */
#define DMN_CLIENT_TIMEOUT_MS (5u * 60 * 1000) /* client: longest wait for one answer */
#define DMN_WAIT_MS_MAX 30000u              /* one `wait` (long poll) */
#define DMN_WAITERS_MAX 8u                  /* `wait`s blocking pool threads at once */

/* admission checks and definition quotas (daemon/admit.c, docs/daemon.md "Limits and quotas") */
#define DMN_ADMIT_THREADS 2u                /* threads running admission checks */
#define DMN_ADMIT_PENDING_PER_KEY 2u        /* definitions of one key queued or being checked */
#define DMN_ADMIT_PENDING_MAX 16u           /* ... of all keys (request threads they hold) */
#define DMN_ADMIT_PENDING_NEW 8u            /* ... of keys that created no room here */
#define DMN_ADMIT_CPU_S 20u                 /* default --max-check-cpu-s: a key's check budget */
#define DMN_ADMIT_CPU_S_MAX 86400u
#define DMN_ADMIT_REFILL_S 100u             /* the budget refills in full over this long */
#define DMN_ADMIT_CACHE_ENTRIES 1024u       /* verdicts kept by hash of what was checked */
#define DMN_DEF_BYTES_PER_KEY (16ull * 1024 * 1024) /* default --max-definition-mb */
#define DMN_DEF_MB_MAX (1024u * 1024)       /* --max-definition-mb: 1 TiB */
#define DMN_ROOMS_PER_KEY 1000u             /* default --max-rooms-per-key */
#define DMN_ROOMS_PER_KEY_MAX 100000000u
#define CL_UPLOAD_WINDOW 3                  /* client: upload chunks in flight (< DMN_INFLIGHT_MAX) */
#define CL_CONNECT_TIMEOUT_MS 30000u        /* client: TCP connect and TLS handshake to a --server */
#define CL_KNOWN_LINE_BYTES 1024u           /* client: one line of known_servers, rooms, an invitation */
#define CL_KNOWN_FILE_BYTES (1u << 20)      /* client: known_servers, rooms, an invitation */

/* connections (issue 14: many tenants on one host; daemon/server.c,
 * docs/daemon.md "Limits and quotas") */
#define DMN_CONNS_PER_KEY_MAX 32u           /* default --max-conns-per-key */
#define DMN_CONNS_PER_ADDR_MAX 128u         /* default --max-conns-per-addr (a uid, an IP) */
#define DMN_STRANGER_CONNS_MAX 64u          /* default --max-stranger-conns (keys in no room) */
#define DMN_STRANGER_IDLE_S 10u             /* default --stranger-idle-timeout-s */
#define DMN_CONNS_OPTION_MAX 16384u         /* largest --max-conns (file descriptors) */
#define DMN_ADDR_BYTES 64u                  /* "uid 1000", "ip 192.0.2.1", "ip 2001:db8::/64" */
#define DMN_SOCKET_MODE 0660u               /* default --socket-mode */

/* TLS over TCP (dcrd --listen; daemon/server.c, base/tls.h, docs/daemon.md
 * "TLS listeners") */
#define DMN_LISTEN_MAX 16u                  /* --listen addresses */
#define DMN_TLS_HANDSHAKE_TIMEOUT_MS 10000u /* default --tls-handshake-timeout-ms */
#define DMN_TLS_HANDSHAKE_TIMEOUT_MS_MAX 600000u
#define DMN_TLS_HANDSHAKES_MAX 64u          /* default --max-tls-handshakes: one more closes the oldest of the busiest address */
/* Ciphertext one TLS connection may hold in dcrd between two reads of its
 * socket (received, not yet decrypted; to send, not yet handed to the
 * socket): one read (64 KiB) and a record's slack; never reached, dcrd
 * stops reading a connection whose plaintext it does not take. */
#define DMN_TLS_BUFFERED_BYTES_MAX (128u * 1024)

/* scheduling of jobs (daemon/jobs.c, docs/daemon.md "Scheduling"): workers,
 * what one room or one requesting key may hold of them, queued runs */
#define DMN_JOB_WORKERS 4u                  /* default --job-workers */
#define DMN_JOB_WORKERS_MAX 256u
#define DMN_ROOM_RUNNING_MAX 2u             /* default --max-running-per-room */
#define DMN_KEY_RUNNING_MAX 2u              /* default --max-running-per-key */
#define DMN_ROOM_QUEUED_RUNS_MAX 64u        /* default --max-queued-runs (per room) */
#define DMN_ROOM_QUEUED_RUNS_CAP 65536u     /* largest --max-queued-runs */

/* room (definitions and event bodies, room/) */
#define DCR_RM_DEF_BYTES_MAX (1024u * 1024)       /* definition JSON text */
#define DCR_RM_DEF_DEPTH_MAX 32u                  /* its nesting of [ and { */
#define DCR_RM_ROOM_NAME_BYTES_MAX 128u
#define DCR_RM_NAME_BYTES_MAX 63u                 /* dataset/column/computation */
#define DCR_RM_DESCRIPTION_BYTES_MAX 4096u
#define DCR_RM_EMAIL_BYTES_MAX 254u
#define DCR_RM_PARTICIPANTS_MAX 64u
#define DCR_RM_DATASETS_MAX 64u
#define DCR_RM_COMPUTATIONS_MAX 64u
#define DCR_RM_COLUMNS_MAX 256u                   /* per dataset */
#define DCR_RM_LIST_MAX 256u                      /* owner_of, inputs, mask, ... */
#define DCR_RM_QUERY_BYTES_MAX (64u * 1024)
#define DCR_RM_SCRIPT_BYTES_MAX (256u * 1024)
/* The result archive of a python/r run (base/archive.c): files, name
 * bytes, whole archive (the largest output a host may allow, plus the
 * framing). */
#define DCR_ARCHIVE_FILES_MAX 65536u
#define DCR_ARCHIVE_NAME_BYTES_MAX 4096u
#define DCR_ARCHIVE_BYTES_MAX                                                                     \
	(((size_t)DCR_RM_LIMIT_OUTPUT_MB_MAX << 20) + (size_t)DCR_ARCHIVE_FILES_MAX * 8192u)
/* Absolute caps of a python/r computation's "limits" (room-format.md). */
#define DCR_RM_LIMIT_WALL_SECONDS_MAX (24u * 3600)
#define DCR_RM_LIMIT_CPU_SECONDS_MAX (24u * 3600)
#define DCR_RM_LIMIT_MEMORY_MB_MAX (256u * 1024)
#define DCR_RM_LIMIT_MEMORY_MB_MIN 16u
#define DCR_RM_LIMIT_PROCESSES_MAX 4096u
#define DCR_RM_LIMIT_OUTPUT_MB_MAX (64u * 1024)
#define DCR_RM_LIMIT_TMP_MB_MAX (64u * 1024)
#define DCR_RM_MIN_ROWS_MAX 1000000000LL          /* privacy.min_rows_aggregated */
#define DCR_RM_EPSILON_MAX 100.0                  /* synthetic epsilon */
#define DCR_RM_REASON_BYTES_MAX 1024u             /* room.stopped reason */
#define DCR_RM_ERROR_BYTES_MAX 4096u              /* run.failed error */
#define DCR_RM_BLOB_ID_BYTES_MAX 128u
#define DCR_RM_FILE_NAME_BYTES_MAX 255u
#define DCR_RM_DROPS_MAX 4096u                    /* drops in an append dataset */
#define DCR_RM_RESULT_COL_BYTES_MAX 1024u         /* run.completed schema column name */
#define DCR_RM_RUNS_MAX 10000000u                 /* runs per room */
#define DCR_RM_DEVS_MAX 10000000u                 /* development runs per room */
#define DCR_RM_DEV_INPUTS_MAX 32u                 /* inputs of one development run */
#define DCR_RM_REQUESTS_MAX 100000u               /* requests per room */
#define DCR_RM_REQUEST_COMPUTATIONS_MAX 16u       /* new computations per request */
#define DCR_RM_TITLE_BYTES_MAX 200u               /* request title */

/* compute (compute/): CSV ingest, prepared tables, SQL runs */
#define DCR_CSV_FIELD_BYTES_MAX (64u * 1024)      /* one field, after unquoting */
#define DCR_CSV_LINE_BYTES_MAX (1024u * 1024)     /* one record (may span lines) */
#define DCR_CSV_COLS_MAX 1024u                    /* fields per record */
#define DCR_CSV_ERR_VALUE_BYTES 40u               /* value shown in an error */
#define DCR_CMP_DISTINCT_EXACT_MAX 65536u         /* then HyperLogLog */
#define DCR_CMP_DISTINCT_SETS_BYTES_MAX (16u * 1024 * 1024) /* all exact sets of one ingest */
#define DCR_SQL_INPUTS_MAX 10u                    /* SQLite's attach limit */
#define DCR_SQL_TIME_MS_DEFAULT 30000u
#define DCR_SQL_CHECK_STEPS 5000u /* x1000 VM steps per check run (deterministic) */
#define DCR_SQL_CHECK_TIME_MS 2000u               /* cmp_sql_check, on empty tables */
#define DCR_SQL_MEMORY_BYTES_DEFAULT (512ull * 1024 * 1024)
#define DCR_SQL_ROWS_MAX_DEFAULT 1000000u         /* result rows */
#define DCR_SQL_BYTES_MAX_DEFAULT (256ull * 1024 * 1024) /* result CSV bytes */
#define DCR_SQL_QUERY_BYTES_MAX (64u * 1024)
#define DCR_SQL_COLS_MAX 256u                     /* result columns */

/* quotas: disk per room, per key and per run (issue 14; docs/daemon.md
 * "Limits and quotas", docs/compute.md "Temporary disk") */
#define DCR_SQL_TMP_BYTES_DEFAULT (1024ull * 1024 * 1024) /* temp files of one SQL run */
#define DMN_QUOTA_RUN_TMP_MB (DCR_SQL_TMP_BYTES_DEFAULT >> 20) /* --max-run-tmp-mb */
#define DMN_QUOTA_ROOM_BLOB_MB (256ull * 1024)    /* --max-room-blob-mb: uploads in one room */
#define DMN_QUOTA_KEY_BLOB_MB (128ull * 1024)     /* --max-key-blob-mb: one key's uploads */
#define DMN_QUOTA_KEY_DISK_MB (160ull * 1024)     /* --max-key-disk-mb: uploads + runs' temp */
#define DMN_QUOTA_MB_MAX (1ull << 30)             /* any of them: 1 PiB */
#define DMN_UPLOAD_EXPIRY_S (DMN_UPLOAD_PENDING_MS / 1000) /* --upload-expiry-s */
#define DMN_UPLOAD_EXPIRY_S_MAX (30u * 24 * 3600)

/* differential privacy (compute/cmp_noise.c, docs/privacy.md) */
#define DCR_NOISE_PARAM_MAX (1ull << 62)          /* discrete Laplace s and t */
#define DCR_NOISE_SCALE_MAX (1ull << 40)          /* discrete Laplace scale t/s */
#define DCR_NOISE_SIGMA_NUM_MAX (1ull << 40)      /* discrete Gaussian sigma^2 numerator */
#define DCR_NOISE_SIGMA_DEN_MAX (1ull << 20)      /* ... and denominator */
#define DCR_DP_EPSILON_SCALE 1000000u             /* epsilon is kept in millionths */
#define DCR_DP_EPSILON_MAX 100000000u             /* a computation's epsilon: at most 100 */
#define DCR_DP_BUDGET_MAX 1000000000000ull        /* a dataset's budget: at most 10^6 */
#define DCR_DP_BOUND_DECIMALS_MAX 6u              /* fraction digits of a declared bound */
#define DCR_DP_BOUND_STEPS_MAX 1000000000000ll    /* |bound| in grid steps: at most 10^12 */
#define DCR_DP_AGGREGATES_MAX 64u                 /* noised aggregates per computation */

/* synthetic data (compute/cmp_synth.c, docs/privacy.md "Synthetic data") */
#define DCR_SYNTH_DELTA 1e-9                      /* the delta of the (epsilon, delta) guarantee */
#define DCR_SYNTH_ROWS_MIN 50u                    /* fewer input rows: the run is refused */
#define DCR_SYNTH_ROWS_MAX 100000000ull           /* input rows read */
#define DCR_SYNTH_ROWS_OUT_MAX 10000000ull        /* rows written */
#define DCR_SYNTH_BINS_DEFAULT 16u                /* bins of a numeric column */
#define DCR_SYNTH_BINS_MAX 256u
#define DCR_SYNTH_CATEGORIES_MAX 254u             /* released values of a string column */
#define DCR_SYNTH_DISTINCT_MAX 1000000u           /* distinct values of a string column read */
#define DCR_SYNTH_NUMBER_BYTES_MAX 64u            /* a numeric field's text */
/* One string or blob, and one row of a temporary table (SQLITE_LIMIT_LENGTH):
 * above a CSV record (1 MiB); it bounds one function call, which nothing
 * interrupts (a LIKE over it: about a second; docs/compute.md). */
#define DCR_SQL_VALUE_BYTES_MAX (4u * 1024 * 1024)

/* python/r sandbox (compute/cmp_sandbox.c, docs/compute.md): the defaults
 * of cmp_sandbox_limits, and bounds on the job a sandbox child accepts */
#define CMP_SANDBOX_WALL_MS_DEFAULT (10u * 60 * 1000)
#define CMP_SANDBOX_CPU_MS_DEFAULT (10u * 60 * 1000)
#define CMP_SANDBOX_MEMORY_BYTES_DEFAULT (2ull * 1024 * 1024 * 1024)
#define CMP_SANDBOX_PROCS_DEFAULT 64u
#define CMP_SANDBOX_OUTPUT_BYTES_DEFAULT (256ull * 1024 * 1024)
#define CMP_SANDBOX_OUTPUT_FILES_DEFAULT 4096u
#define CMP_SANDBOX_OUTPUT_DEPTH_DEFAULT 8u
#define CMP_SANDBOX_TMP_BYTES_DEFAULT (256ull * 1024 * 1024)
#define CMP_SANDBOX_LOG_BYTES_DEFAULT (1024u * 1024)
#define CMP_SANDBOX_INPUTS_MAX 65536u          /* input files of one run */
#define CMP_SANDBOX_PATH_BYTES_MAX 4096u       /* an input or output path */
#define CMP_SANDBOX_NAME_BYTES_MAX 255u        /* one component of it */
#define CMP_SANDBOX_SCRIPT_BYTES_MAX (16u * 1024 * 1024)
#define CMP_SANDBOX_OUTPUT_FILES_MAX 1000000u  /* any output_files limit */
#define CMP_SANDBOX_OUTPUT_DEPTH_MAX 64u       /* any output_depth limit */
#define CMP_SANDBOX_NOFILE 1024u               /* RLIMIT_NOFILE inside */
/* host uids of runs when dcrd is root: base + the sandbox child's pid
 * (pid_max is at most 2^22), see compute/cmp_sandbox.c */
#define CMP_SANDBOX_UID_BASE 0x70000000u
#define CMP_SANDBOX_KILL_GRACE_MS 5000u        /* caller's backstop past wall_ms */

#endif
