/* audit_core.h: the offline auditor's core, shared by `dcr audit`, its
 * tests and bench/bench_audit.c.
 *
 * An export file (docs/event-format.md, "Export file") holds a room's whole
 * log as stored (entry = envelope || sig), the daemon's public key, the
 * participants' keys as the definition declares them and the latest signed
 * checkpoint. au_verify checks everything a participant can check without
 * the daemon: every signature (in parallel), every event's right to happen
 * (replaying the room module's rm_apply, never a copy of its rules), the
 * Merkle root against the signed checkpoint and, given an older checkpoint,
 * that the log is an append-only extension of it.
 *
 * A proof file holds one entry, its inclusion proof and the checkpoint the
 * proof is against; au_proof_verify checks it offline.
 *
 * Everything here is pure computation over bytes in memory: no sockets, no
 * daemon. Decoded structures point into the caller's bytes, which must
 * outlive them. */
#ifndef DCR_AUDIT_CORE_H
#define DCR_AUDIT_CORE_H

#include "../base/base.h"
#include "../eventstore/eventstore.h"

struct rm_state;

#define AU_EXPORT_FORMAT "dcr.audit-export/1"
#define AU_PROOF_FORMAT  "dcr.audit-proof/1"

/* Limits on export files (they come from outside). An export is read into
 * memory whole; entries are bounded by the event limit. */
#define AU_EXPORT_BYTES_MAX     ((size_t)2 * 1024 * 1024 * 1024 - 1)
#define AU_EVENTS_MAX           8000000u
#define AU_PARTICIPANTS_MAX     10000u
#define AU_PROOF_BYTES_MAX      (DCR_EVENT_BYTES_MAX + 64u * 1024)
#define AU_PROOF_HASHES_MAX     64u
#define AU_CHECKPOINT_BYTES_MAX 4096u
#define AU_THREADS_MAX          64u

typedef struct au_participant {
	char *email;
	uint8_t key[DCR_ED25519_PUB_BYTES];
} au_participant;

/* A decoded export. entry[i] points into the file bytes given to
 * au_export_decode; participants' emails are heap copies. */
typedef struct au_export {
	uint8_t room[ES_ROOM_ID_BYTES];
	uint8_t daemon_key[DCR_ED25519_PUB_BYTES];
	es_checkpoint cp;
	uint64_t n;
	const uint8_t **entry;
	size_t *entry_n;
	au_participant *participants;
	size_t nparticipants;
	dcr_mp_doc *doc; /* the parsed file (entries point into the bytes) */
} au_export;

/* Appends a canonical export file to out. entries/entry_n hold the n stored
 * entries in log order; final is the state after replaying all of them
 * (its definition's participants are listed), may be NULL for none. */
void au_export_encode(dcr_buf *out, const uint8_t room[ES_ROOM_ID_BYTES],
                      const uint8_t daemon_key[DCR_ED25519_PUB_BYTES], const es_checkpoint *cp,
                      const uint8_t *const *entries, const size_t *entry_n, uint64_t n,
                      const struct rm_state *final);
/* Decodes an export file (structure, canonical form, limits; no signature
 * or rule checks: see au_verify). bytes must outlive x. */
int au_export_decode(const void *bytes, size_t n, au_export *x, dcr_err *err);
void au_export_release(au_export *x);

/* Reads a checkpoint from a file's bytes: either a checkpoint file (the
 * bytes of es_checkpoint_encode, as `dcr audit checkpoint` writes) or an
 * export file (its checkpoint is used). Verifies its signature. */
int au_checkpoint_load(const void *bytes, size_t n, es_checkpoint *cp, dcr_err *err);

typedef struct au_verify_opts {
	/* If not NULL, the daemon key the caller trusts: the export's must be
	 * equal. */
	const uint8_t *daemon_key;
	/* If not NULL, an older checkpoint the log must extend. */
	const es_checkpoint *old_cp;
	unsigned threads; /* signature threads; 0 = one per online CPU */
} au_verify_opts;

typedef struct au_report {
	uint64_t events;
	uint8_t root[32];
	char name[128]; /* room name from the definition (truncated) */
	/* When invalid: the position of the first bad event, or UINT64_MAX if
	 * the failure is not about one event (checkpoint, root, header). */
	uint64_t bad_seq;
	/* The differential-privacy budget ledger after the replay, one
	 * "dataset: S of B spent, L left" per dataset with a budget, "; "
	 * between them (empty when no dataset has a budget; truncated). */
	char budgets[1024];
	/* Timings, for the bench. */
	uint64_t verify_ms;
} au_report;

/* Verifies an export. Returns 0 when valid; DCR_EINTEGRITY (or the
 * failing check's code) when not, with err->msg the reason, naming the
 * first bad event as "seq 17 (dataset.provisioned): bad signature". The
 * report is filled in both cases. */
int au_verify(const au_export *x, const au_verify_opts *opt, au_report *rep, dcr_err *err);

/* Decodes entry (the event at position seq of room) into ev and checks
 * what does not need the room's state: structure, room id, seq field equal
 * to the position, and the actor's signature. On error ev is released and
 * err names the event ("seq 17 (dataset.provisioned): bad signature"). On
 * success release ev with es_event_release. */
int au_check_entry(const uint8_t room[ES_ROOM_ID_BYTES], uint64_t seq, const void *entry, size_t n,
                   es_event *ev, dcr_err *err);

/* rm_apply with its error worded "seq N (type): reason". */
int au_apply(struct rm_state *st, const es_event *ev, uint64_t seq, dcr_err *err);

/* Called by au_replay for each event, before (state before the event) and
 * after (state after it) rm_apply. A non-zero return stops the replay and is
 * returned. */
typedef int (*au_event_fn)(void *ctx, uint64_t seq, const es_event *ev, const struct rm_state *st);
/* Replays entries [0, upto) of x sequentially (au_check_entry, au_apply),
 * calling the callbacks (each may be NULL). st must be initialised by the
 * caller (rm_state_init with the daemon key); on return it holds the state
 * after the last applied event. Stops at the first failure, with err naming
 * the event. */
int au_replay(const au_export *x, uint64_t upto, struct rm_state *st, au_event_fn before,
              au_event_fn after, void *ctx, dcr_err *err);

/* ---- proof files ------------------------------------------------------- */

typedef struct au_proof {
	es_checkpoint cp;
	const uint8_t *entry; /* points into the file bytes */
	size_t entry_n;
	uint64_t index;
	uint8_t hashes[AU_PROOF_HASHES_MAX][32];
	size_t nhashes;
} au_proof;

void au_proof_encode(dcr_buf *out, const au_proof *p);
int au_proof_decode(const void *bytes, size_t n, au_proof *p, dcr_err *err);
/* Checks the checkpoint signature (and signer == daemon_key if not NULL),
 * the entry's signature, that the entry belongs to the checkpoint's room at
 * position index, and the inclusion proof. ev_type (if not NULL, 64 bytes)
 * receives the event type. */
int au_proof_verify(const au_proof *p, const uint8_t *daemon_key, char *ev_type, dcr_err *err);

#endif
