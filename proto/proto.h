/* proto.h: the dcr wire protocol (docs/protocol.md) and its blocking client.
 *
 * Frames are a 4-byte big-endian length followed by one canonical msgpack
 * map, at most DCR_FRAME_BYTES_MAX. The daemon (libuv) uses the frame codec
 * here; the CLI and the mount use the client (plain blocking sockets, one
 * request at a time per connection; open several connections for
 * concurrency). Neither client opens LMDB or the blob store. */
#ifndef DCR_PROTO_H
#define DCR_PROTO_H

#include "../base/base.h"
#include "../eventstore/eventstore.h"

/* ---- frame codec (shared by both sides) ---------------------------------- */

#define PROTO_HDR_BYTES 4
/* Validates a frame body (canonical msgpack map within limits). */
int proto_frame_parse(const void *p, size_t n, dcr_mp_doc **out, dcr_err *err);
/* The check dcrd runs on a request frame before it queues or unpacks it:
 * proto_frame_parse's rules plus at most DCR_FRAME_REQUEST_OBJECTS_MAX
 * values. *objs (set on success) is the number of values, so unpacking
 * costs at most proto_unpacked_bytes(*objs). Never allocates. */
int proto_request_check(const void *p, size_t n, uint64_t *objs, dcr_err *err);
/* Upper bound of what unpacking objs values allocates. */
uint64_t proto_unpacked_bytes(uint64_t objs);
/* Appends header + body. */
void proto_frame_wrap(dcr_buf *out, const void *body, size_t n);

/* Canonical map builder: add keys in any order, each followed by exactly
 * one encoded value written through the returned writer (valid until the
 * next proto_map_key call); proto_map_encode writes the map with its keys
 * in canonical (bytewise) order. Keys must be distinct. Used for request
 * args and response bodies on both sides. */
typedef struct proto_map {
	struct proto__kv **kv;
	size_t n, cap;
} proto_map;
void proto_map_init(proto_map *m);
dcr_mpw *proto_map_key(proto_map *m, const char *key);
void proto_map_encode(const proto_map *m, dcr_buf *out);
void proto_map_release(proto_map *m);

/* Requests are {args: map, id: uint, op: str} (args may be absent);
 * responses {id, ok: true, ...results} or {code: str, error: str, id,
 * ok: false}. proto_request appends a whole frame (header + body). */
void proto_request(dcr_buf *out, uint64_t id, const char *op, const void *args, size_t args_n);
/* Project code for a dcr_errname() string ("ESIG"); DCR_EPROTO if unknown. */
int proto_code_parse(const char *name, size_t n);

/* ---- client --------------------------------------------------------------- */

typedef struct cl_conn cl_conn;

/* Default socket: $DCR_SOCKET, else the path given, else error. */
const char *cl_default_socket(void);

/* Where to connect: dcrd's unix socket, or a dcrd TLS listener
 * ("HOST:PORT", IPv6 as "[ADDR]:PORT"; docs/protocol.md "TLS"). Over TLS
 * the server's key fingerprint ("sha256:" + 64 lowercase hex digits, of
 * its certificate's SubjectPublicKeyInfo) is checked right after the
 * handshake, before any byte of the protocol is sent: it must equal pin
 * when pin is set, and check (when set) must accept it (returns 0, or
 * fills err: the connection is refused). Without pin and check a TLS
 * connection is refused: a server is never trusted by default. The
 * strings are borrowed for the call. */
typedef int (*cl_check_fn)(void *ctx, const char *server, const char *fingerprint,
                           dcr_err *err);
typedef struct cl_addr {
	const char *socket; /* unix socket path; used when server is NULL */
	const char *server; /* "HOST:PORT": TLS 1.3 */
	const char *pin;    /* "sha256:HEX", or NULL */
	cl_check_fn check;
	void *check_ctx;
} cl_addr;

/* Splits "HOST:PORT" / "[ADDR]:PORT" into host and port (heap strings,
 * free both), checking the port (1..65535) and the host's characters. */
int cl_server_parse(const char *server, char **host, char **port, dcr_err *err);

/* Connects and authenticates by signing the daemon's challenge with id
 * (over TLS, bound to the TLS session: "dcr.auth.tls.v1"). The daemon's
 * public key is returned by cl_daemon_key. cl_connect is
 * cl_connect_addr with the unix socket socket_path. */
int cl_connect_addr(const cl_addr *addr, const dcr_key *id, cl_conn **out, dcr_err *err);
int cl_connect(const char *socket_path, const dcr_key *id, cl_conn **out, dcr_err *err);
/* The server's key fingerprint of a TLS connection ("sha256:..."); NULL
 * on the unix socket. Valid until cl_close. */
const char *cl_server_fingerprint(const cl_conn *c);
void cl_close(cl_conn *c);
const uint8_t *cl_daemon_key(const cl_conn *c);
const dcr_key *cl_identity(const cl_conn *c);
/* The server this connection reached, as a stable name for per-server
 * client state (known keys, remembered checkpoints): "unix:/abs/path" for
 * the unix socket, "HOST:PORT" as given for TLS. Valid until cl_close. */
const char *cl_server_name(const cl_conn *c);

/* Generic call: op name, args as an encoded canonical msgpack map (NULL for
 * none). On success *resp is the response map (free with dcr_mp_doc_free;
 * *resp_bytes, if given, keeps the bytes alive: release with
 * dcr_buf_release after the doc). A daemon-side failure returns its code and
 * message in err. */
int cl_call(cl_conn *c, const char *op, const void *args, size_t args_n, dcr_buf *resp_bytes,
            dcr_mp_doc **resp, dcr_err *err);
/* cl_call with the arguments built in m (released here, whatever happens). */
int cl_call_map(cl_conn *c, const char *op, proto_map *m, dcr_buf *resp_bytes, dcr_mp_doc **resp,
                dcr_err *err);

/* Resolves ROOM (32-hex id or unique room name among rooms visible to the
 * caller). */
int cl_room_resolve(cl_conn *c, const char *room, uint8_t id[ES_ROOM_ID_BYTES], dcr_err *err);

/* Rooms where the caller is creator or participant. */
typedef struct cl_room_info {
	char id[ES_ROOM_HEX_BYTES];
	char *name;
	char *status; /* draft | published | stopped */
	uint64_t size;
} cl_room_info;
int cl_rooms(cl_conn *c, cl_room_info **rooms, size_t *n, dcr_err *err);
void cl_rooms_free(cl_room_info *rooms, size_t n);

/* Raw events [from, to) of a room (to = ES_SEQ_ANY: up to the end), in
 * chunks; fn gets each stored entry (envelope || sig). */
int cl_events(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t from, uint64_t to,
              int (*fn)(void *ctx, uint64_t seq, const void *entry, size_t n), void *ctx,
              dcr_err *err);

/* Long poll: returns as soon as the room has more than `size` events, or
 * after timeout_ms (capped at DMN_WAIT_MS_MAX) with the size unchanged;
 * *size_out is the room's size then. Cheap way to follow a room (mount,
 * `run --wait`) without polling in a loop. When many clients wait at once
 * the daemon may answer at once; callers just call again. */
int cl_wait(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t size, uint64_t timeout_ms,
            uint64_t *size_out, dcr_err *err);

/* Signs an event of type/body as the caller with the room's current size as
 * seq and submits it; on DCR_ESEQ (someone else appended first) refetches
 * the size and retries a few times. *seq_out may be NULL. */
int cl_submit(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *type, const void *body,
              size_t body_n, uint64_t *seq_out, dcr_err *err);

/* Creates a room (room.created at seq 0, new random id). */
int cl_room_create(cl_conn *c, const char *json, uint8_t id_out[ES_ROOM_ID_BYTES], dcr_err *err);

/* Uploads a dataset file and, once the daemon validated and stored it,
 * signs and submits dataset.provisioned. read() supplies the bytes;
 * progress (may be NULL) is called with bytes sent so far. On a validation
 * failure err holds the daemon's message (file line, column, reason) and
 * nothing is stored. */
typedef void (*cl_progress_fn)(void *ctx, uint64_t done, uint64_t total);
int cl_provision(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *dataset,
                 const char *file_name, uint64_t total_hint,
                 int (*read)(void *ctx, void *buf, size_t cap), void *rctx, cl_progress_fn progress,
                 void *pctx, dcr_err *err);

/* Requests a run (run.requested with a fresh id). */
int cl_run(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *computation,
           char run_id[33], dcr_err *err);
/* The same for a differentially private computation: epsilon is the
 * epsilon it spends, as the definition writes it (rm_epsilon_format); the
 * rules refuse a request without it or with another value. */
int cl_run_eps(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *computation,
               const char *epsilon, char run_id[33], dcr_err *err);

/* Status of the last run of a computation as the daemon sees it, including
 * the transient "running" state: state is one of none, queued, running,
 * done, failed. */
typedef struct cl_run_status {
	char run_id[33];
	char state[16];
	char *error;  /* a data-free class (docs/privacy.md, "Errors") */
	char *detail; /* the message behind it: analysts of unfiltered computations only */
	uint64_t rows, suppressed, duration_ms, result_bytes;
} cl_run_status;
int cl_run_status_get(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *computation,
                      cl_run_status *st, dcr_err *err);
/* The type and the call share a name: C cannot have both as identifiers,
 * so the call is a function-like macro (only `cl_run_status(` expands). */
#define cl_run_status(c, room, computation, st, err)                                               \
	cl_run_status_get(c, room, computation, st, err)
void cl_run_status_release(cl_run_status *st);

/* Records result.retrieved for the last completed run of computation and
 * returns its run id and size. Then read ranges with cl_result_read. */
int cl_result_open(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *computation,
                   char run_id[33], uint64_t *size, dcr_err *err);
/* Reads up to cap bytes of the result CSV of run at offset; returns bytes
 * read (0 at end) or a negative code. Analysts only. */
int cl_result_read(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *run_id,
                   uint64_t offset, void *buf, size_t cap, dcr_err *err);

/* Reads up to cap bytes of the logs of a python/r run (an archive of
 * stdout and stderr, docs/compute.md) at offset, and their size; as the
 * computation's "logs" allows (docs/protocol.md, logs.read). */
int cl_logs_read(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *run_id,
                 uint64_t offset, void *buf, size_t cap, uint64_t *size, dcr_err *err);
/* Reads up to cap bytes of the file provisioned for dataset (as uploaded)
 * at offset: owners only (rm_may_read_data). Returns bytes read (0 at the
 * end) or a negative code; *size (may be NULL) gets the file's size. With
 * sha256 (may be NULL) the read is pinned to that provision: DCR_ESTATE
 * once the dataset was provisioned again or withdrawn, so a reader never
 * mixes two files. */
int cl_data_read(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *dataset,
                 const uint8_t *sha256, uint64_t offset, void *buf, size_t cap, uint64_t *size,
                 dcr_err *err);
/* The same for one drop of an append dataset, by its file name; pinned by
 * sha256 (may be NULL) to that drop: DCR_ESTATE once it was dropped again
 * or withdrawn. */
int cl_drop_read(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *dataset,
                 const char *file, const uint8_t *sha256, uint64_t offset, void *buf, size_t cap,
                 uint64_t *size, dcr_err *err);

/* ---- development runs (docs/rules.md "Development runs") ----------------
 * cl_dev_run signs dev.requested with a fresh run id: language is "sql",
 * "python" or "r"; inputs are names of datasets the caller owns or
 * computations they are an analyst of, sorted here. */
int cl_dev_run(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *language,
               const char *script, const char *const *inputs, size_t ninputs, char run_id[33],
               dcr_err *err);
typedef struct cl_dev_status {
	char run_id[33];
	char state[16];   /* queued, running, done, failed */
	char language[8]; /* sql, python, r */
	char *error;      /* failed: a data-free class */
	char *detail;     /* failed: the message behind it (the requester's own) */
	char **inputs;
	size_t ninputs;
	bool logs; /* finished with logs (cl_dev_read "logs") */
	uint64_t duration_ms, result_bytes, requested_seq;
} cl_dev_status;
/* One development run of the caller (run_id), or all of theirs (run_id
 * NULL; oldest first). Free with cl_dev_status_free. */
int cl_dev_status_get(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *run_id,
                      cl_dev_status **out, size_t *n, dcr_err *err);
void cl_dev_status_free(cl_dev_status *st, size_t n);
/* Reads up to cap bytes at offset of a finished development run's result
 * CSV (what "result") or logs (what "logs"): its requester only. Returns
 * bytes read (0 at the end) or a negative code; *size (may be NULL) gets
 * the total. */
int cl_dev_read(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *run_id,
                const char *what, uint64_t offset, void *buf, size_t cap, uint64_t *size,
                dcr_err *err);

/* Statistics JSON of a provisioned dataset (owners, or everyone when the
 * definition shares them). */
int cl_stats(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *dataset, dcr_buf *json,
             dcr_err *err);

/* Runs every computation of the room on empty inputs; report is text, one
 * block per computation (columns and types, or the error). */
int cl_room_test(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], dcr_buf *report, dcr_err *err);

/* Everything the caller provisioned, across rooms, as JSON text. */
int cl_datasets(cl_conn *c, dcr_buf *json, dcr_err *err);

/* Latest signed checkpoint of the room, and an inclusion proof. */
int cl_checkpoint(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], es_checkpoint *cp,
                  dcr_err *err);
int cl_inclusion_proof(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t seq,
                       uint64_t size, uint8_t (*proof)[32], size_t *proof_n, dcr_err *err);
/* RFC 6962 consistency proof between the first size_old and size_new
 * events (proof holds ES_PROOF_HASHES_MAX hashes): check it against two
 * signed checkpoints with es_verify_consistency. */
int cl_consistency_proof(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t size_old,
                         uint64_t size_new, uint8_t (*proof)[32], size_t *proof_n, dcr_err *err);

/* Replays the room's events with rm_apply on the client side is done by the
 * caller (room module); the client only moves bytes. */

#endif
