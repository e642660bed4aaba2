/* witness.h: clients that keep the host honest (docs/security.md, "A
 * lying host"; file formats in docs/event-format.md section 8.3).
 *
 * Each client remembers, per server (cl_server_name) and room, the last
 * checkpoint the host signed that it has seen, in
 * dcr_config_dir()/checkpoints/. Every fetch of a room's log goes through
 * a witness: it fetches the host's latest signed checkpoint, checks its
 * signature and key, and asks for an RFC 6962 consistency proof from the
 * remembered checkpoint (es_verify_consistency); then it fetches the
 * events up to that checkpoint and checks that they hash to its root (a
 * Merkle frontier, es_frontier, so a follower pays O(log n) per batch).
 * A host whose log does not extend what it signed before (truncated,
 * rewritten, forked), or that signs with another key, is refused with
 * DCR_EINTEGRITY and a message naming the room, both sizes and both
 * roots; both signed checkpoints go into an evidence file.
 *
 * The per-room lock file serialises clients sharing a configuration
 * directory (flock, so threads of one process too): the remembered
 * checkpoint never regresses and is replaced atomically. A cl_witness
 * object is not thread safe: one caller at a time (the mount holds a
 * mutex around it). */
#ifndef DCR_WITNESS_H
#define DCR_WITNESS_H

#include "proto.h"

#define CL_WITNESS_FILE_BYTES_MAX     1024 /* a remembered-checkpoint file */
#define CL_WITNESS_EVIDENCE_BYTES_MAX 8192 /* an evidence file */

typedef struct cl_witness cl_witness;

/* The checkpoints directory: dcr_config_dir()/checkpoints (heap string;
 * made, mode 0700, when create). NULL and err on failure. */
char *cl_witness_dir(bool create, dcr_err *err);

/* A witness of room on server (cl_server_name of the connections it will
 * be used with). dir: the checkpoints directory, NULL for
 * cl_witness_dir(). Nothing is fetched or written yet. */
int cl_witness_new(const char *server, const uint8_t room[ES_ROOM_ID_BYTES], const char *dir,
                   cl_witness **out, dcr_err *err);
void cl_witness_free(cl_witness *w); /* NULL ok */

/* Fetches the host's latest checkpoint of the room over c and checks it:
 * signature, signed by c's daemon key, this room, and consistent with the
 * remembered checkpoint (and with the last one this object verified);
 * then remembers it if it is newer. *cp (may be NULL) gets it. Returns 0,
 * DCR_EINTEGRITY for a lying host (message, evidence file written), or
 * the transport's / daemon's error. */
int cl_witness_checkpoint(cl_conn *c, cl_witness *w, es_checkpoint *cp, dcr_err *err);

/* cl_witness_checkpoint, then the events from cl_witness_size(w) up to the
 * checkpoint's size, each passed to fn (seq, entry) as it arrives; at the
 * end they must hash, with those verified before by this object, to the
 * checkpoint's root (else DCR_EINTEGRITY: the caller must drop what fn
 * built). On success the witness has verified cp->size events. A non-zero
 * return of fn stops and is returned. */
int cl_witness_events(cl_conn *c, cl_witness *w, es_fold_fn fn, void *ctx, es_checkpoint *cp,
                      dcr_err *err);

/* Events verified so far by this object. */
uint64_t cl_witness_size(const cl_witness *w);

/* ---- the remembered checkpoints, for `dcr audit witness` ------------------ */

typedef struct cl_witness_record {
	char *server;     /* as recorded in the file */
	char *path;       /* the file */
	es_checkpoint cp; /* signature checked */
} cl_witness_record;

/* The remembered checkpoint of room on server: 0, DCR_ENOTFOUND (none), or
 * an error for a damaged file. Release with cl_witness_record_release. */
int cl_witness_load(const char *dir, const char *server, const uint8_t room[ES_ROOM_ID_BYTES],
                    cl_witness_record *out, dcr_err *err);
/* Every remembered checkpoint in dir (damaged files are skipped with a
 * line on stderr). Free with cl_witness_records_free. */
int cl_witness_list(const char *dir, cl_witness_record **out, size_t *n, dcr_err *err);
void cl_witness_record_release(cl_witness_record *r);
void cl_witness_records_free(cl_witness_record *r, size_t n);
/* Forgets the remembered checkpoint of room on server (under its lock):
 * the next fetch trusts the host's checkpoint as if first seen. 0 or
 * DCR_ENOTFOUND. */
int cl_witness_forget(const char *dir, const char *server, const uint8_t room[ES_ROOM_ID_BYTES],
                      dcr_err *err);

/* An evidence file (docs/event-format.md 8.4), decoded and checked. */
typedef struct cl_witness_evidence {
	char kind[16]; /* fork, inconsistent, shorter, key */
	char *server;
	uint8_t room[ES_ROOM_ID_BYTES];
	es_checkpoint remembered, presented; /* signatures checked */
	uint8_t proof[ES_PROOF_HASHES_MAX][32];
	size_t proof_n;
	uint64_t detected_ms;
} cl_witness_evidence;
/* Decodes an evidence file and checks what it claims: both signatures, the
 * same room, and for kind: fork (same size and key, other roots: proof on
 * its own), shorter (the presented checkpoint has fewer events; proof on
 * its own when it was also signed later, *conclusive set accordingly),
 * inconsistent (more events, and the proof the host gave does not verify;
 * *conclusive false: an honest host can always prove consistency, so ask
 * it, or check an export with `dcr audit verify --checkpoint`), key (two
 * daemon keys; *conclusive false). DCR_EFORMAT/DCR_EINVALID otherwise. */
int cl_witness_evidence_check(const void *p, size_t n, cl_witness_evidence *ev, bool *conclusive,
                              dcr_err *err);
void cl_witness_evidence_release(cl_witness_evidence *ev);

#endif
