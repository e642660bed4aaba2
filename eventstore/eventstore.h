/* eventstore.h: signed events, their canonical encoding, the per-room
 * Merkle log and its LMDB storage.
 *
 * An event is an envelope (canonical msgpack map; byte-level spec in
 * docs/event-format.md, storage and transactions in docs/eventstore.md)
 * plus a detached Ed25519 signature over DCR_DOMAIN_EVENT || 0x00 ||
 * envelope bytes. The stored entry of an event is the envelope bytes
 * followed by the 64 signature bytes; the Merkle leaf is
 * SHA-256(0x00 || entry). Nothing is ever re-encoded to verify or hash.
 *
 * Envelope keys (sorted): actor (bin 32, Ed25519 public key), body (map),
 * room (str, 32 lowercase hex chars), seq (uint, the exact position the
 * signer expects the event to take: replay protection), ts (uint, unix ms),
 * type (str), v (uint, 1). */
#ifndef DCR_EVENTSTORE_H
#define DCR_EVENTSTORE_H

#include "../base/base.h"

#define ES_ROOM_ID_BYTES  16 /* raw; 32 hex chars in envelopes */
#define ES_ROOM_HEX_BYTES 33
#define ES_TYPE_BYTES_MAX 64 /* including the NUL: types are 1..63 chars of [a-z._] */
#define ES_EVENT_VERSION  1

/* Limits of this module (the msgpack limits come from base/limits.h). */
#define ES_ENTRY_BYTES_MAX      (DCR_EVENT_BYTES_MAX + DCR_ED25519_SIG_BYTES)
#define ES_TREE_SIZE_MAX        (UINT64_C(1) << 62) /* events per room */
#define ES_PROOF_HASHES_MAX     64                  /* any proof of a tree <= ES_TREE_SIZE_MAX */
#define ES_CHECKPOINT_BYTES_MAX 512                 /* serialized checkpoint */
#define ES_QUEUE_DEPTH_MAX      65536               /* pending writes; more callers wait */
#define ES_BATCH_REQS_MAX       4096                /* writes in one transaction */
#define ES_DISK_FULL_BYTES      (16u * 1024 * 1024) /* less free: a failed write is a full disk */
#define ES_BATCH_BYTES_MAX      (64u * 1024 * 1024) /* bytes in one transaction (>= 1 write) */
#define ES_FOLD_CHUNK_EVENTS    1024                /* events copied per read transaction */
#define ES_FOLD_CHUNK_BYTES     (8u * 1024 * 1024)  /* bytes per chunk (>= 1 event) */
#define ES_META_KEY_BYTES_MAX   256
#define ES_META_VALUE_BYTES_MAX (1024u * 1024)

/* ---- envelopes ---------------------------------------------------------- */

/* A decoded, structurally valid envelope. Pointers refer into the bytes
 * passed to es_event_decode and into ev->doc; valid until es_event_release. */
typedef struct es_event {
	const uint8_t *env; /* envelope bytes */
	size_t env_n;
	uint8_t sig[DCR_ED25519_SIG_BYTES];
	uint8_t actor[DCR_ED25519_PUB_BYTES];
	uint8_t room[ES_ROOM_ID_BYTES];
	char room_hex[ES_ROOM_HEX_BYTES];
	uint64_t seq;
	uint64_t ts_ms;
	char type[ES_TYPE_BYTES_MAX];
	const dcr_mpv *body; /* a map */
	dcr_mp_doc *doc;
} es_event;

/* Builds and signs an envelope. body_mp is an already encoded canonical
 * msgpack map (e.g. from dcr_mpw). Appends entry = envelope || sig to out. */
int es_event_build(const dcr_key *k, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t seq,
                   uint64_t ts_ms, const char *type, const void *body_mp, size_t body_n,
                   dcr_buf *out, dcr_err *err);

/* Decodes an entry (envelope || sig) from untrusted bytes: limits,
 * canonical form, required fields and their types, no trailing bytes. Does
 * NOT verify the signature (see es_event_verify). The entry bytes must
 * outlive ev. */
int es_event_decode(const void *entry, size_t n, es_event *ev, dcr_err *err);
/* Verifies ev->sig by ev->actor over the stored envelope bytes: 0,
 * DCR_ESIG, or DCR_EKEY (not a point, or of small order: see below). */
int es_event_verify(const es_event *ev, dcr_err *err);
/* True for the public keys of small order (0, identity, order 2, 4, 8 and
 * their non-canonical encodings): OpenSSL accepts them, and signatures
 * under them can be forged without the private key. Reject such keys
 * wherever a key enters the system (room definitions, authentication). */
bool es_key_is_weak(const uint8_t pub[DCR_ED25519_PUB_BYTES]);
void es_event_release(es_event *ev);

/* Room id helpers. */
void es_room_new(uint8_t room[ES_ROOM_ID_BYTES]);
int es_room_parse(const char *hex, uint8_t room[ES_ROOM_ID_BYTES]);
void es_room_format(const uint8_t room[ES_ROOM_ID_BYTES], char hex[ES_ROOM_HEX_BYTES]);

/* ---- Merkle tree (RFC 6962), pure functions ------------------------------ */

void es_leaf_hash(const void *entry, size_t n, uint8_t out[32]);
void es_node_hash(const uint8_t l[32], const uint8_t r[32], uint8_t out[32]);
/* Root of leaves[0..n) given leaf hashes (n may be 0: SHA-256 of ""). */
void es_merkle_root(const uint8_t (*leaves)[32], uint64_t n, uint8_t out[32]);
/* Proofs from an array of leaf hashes (reference implementation; the store
 * has faster versions). proof must hold 64 hashes; *proof_n is set. */
int es_merkle_inclusion(const uint8_t (*leaves)[32], uint64_t n, uint64_t index,
                        uint8_t (*proof)[32], size_t *proof_n);
int es_merkle_consistency(const uint8_t (*leaves)[32], uint64_t n_old, uint64_t n_new,
                          uint8_t (*proof)[32], size_t *proof_n);
/* A Merkle frontier: the roots of the perfect subtrees that make up the
 * first `size` leaves (one per set bit of size, largest first), enough to
 * append leaves and compute the root in O(log n) time and 2 KiB, without
 * keeping the leaves. A client that follows a log verifies each new batch
 * of events against a signed root with it. es_frontier_root gives exactly
 * es_merkle_root of the same leaves. */
typedef struct es_frontier {
	uint64_t size;
	unsigned n; /* hashes in use: popcount(size) */
	uint8_t h[64][32];
} es_frontier;
void es_frontier_init(es_frontier *f);
void es_frontier_append(es_frontier *f, const uint8_t leaf[32]); /* size < 2^63 */
void es_frontier_root(const es_frontier *f, uint8_t out[32]);

/* Verification (RFC 9162 §2.1.3.2 / §2.1.4.2). 0 or DCR_EINTEGRITY. */
int es_verify_inclusion(uint64_t index, uint64_t size, const uint8_t leaf[32],
                        const uint8_t (*proof)[32], size_t proof_n, const uint8_t root[32]);
int es_verify_consistency(uint64_t size_old, uint64_t size_new, const uint8_t root_old[32],
                          const uint8_t root_new[32], const uint8_t (*proof)[32], size_t proof_n);

/* ---- checkpoints ------------------------------------------------------- */

/* A signed statement "room R has size N and root H" by the daemon key.
 * Signed message: DCR_DOMAIN_CHECKPOINT || 0x00 || body, where body is the
 * canonical msgpack map {room: str hex, root: bin 32, size: uint, ts: uint}. */
typedef struct es_checkpoint {
	uint8_t room[ES_ROOM_ID_BYTES];
	uint64_t size;
	uint8_t root[32];
	uint64_t ts_ms;
	uint8_t key[DCR_ED25519_PUB_BYTES]; /* signer */
	uint8_t sig[DCR_ED25519_SIG_BYTES];
} es_checkpoint;

/* Sets cp->key and cp->sig over the caller's room, size, root, ts_ms. */
int es_checkpoint_sign(es_checkpoint *cp, const dcr_key *k);
/* Checks cp->sig under cp->key (DCR_ESIG/DCR_EKEY). The caller must also
 * check that cp->key is the key it trusts (the daemon's). */
int es_checkpoint_verify(const es_checkpoint *cp, dcr_err *err);
/* Serialized form (canonical msgpack map with key and sig). */
void es_checkpoint_encode(const es_checkpoint *cp, dcr_buf *out);
int es_checkpoint_decode(const void *p, size_t n, es_checkpoint *cp, dcr_err *err);

/* ---- the store (LMDB) --------------------------------------------------- */

typedef struct es_store es_store;

typedef struct es_options {
	size_t map_size_bytes; /* initial map size; 0 = default (1 GiB); grows */
	bool no_sync;          /* tests/benchmarks only; default full sync */
	/* Daemon key; signs a checkpoint per touched room per commit. Borrowed:
	 * must outlive the store. NULL: no checkpoints are signed or stored. */
	const dcr_key *checkpoint_key;
} es_options;

/* Opens (creating dir, mode 0700, if needed) the store in directory dir.
 * opt may be NULL (defaults). Clears stale reader slots. A directory can be
 * open once per process (DCR_EEXIST otherwise); a forked child must not use
 * the parent's store (its descriptors are close-on-exec). All functions
 * below are thread safe; es_close must not race with them. */
int es_open(es_store **out, const char *dir, const es_options *opt, dcr_err *err);
void es_close(es_store *s); /* NULL ok; waits for the writer to drain */

/* Counters, for tests and benchmarks. */
typedef struct es_stats {
	uint64_t commits;        /* write transactions committed */
	uint64_t appends;        /* entries appended since open */
	uint64_t map_grows;      /* times the map was grown after MDB_MAP_FULL */
	uint64_t map_size_bytes; /* current map size */
	uint64_t env_reopens;    /* times LMDB was reopened after a failed commit */
	uint64_t read_retries;   /* read transactions begun again: a commit ended and
	                          * another began during mdb_txn_begin (es_store.c) */
} es_stats;
void es_stats_get(es_store *s, es_stats *out);

/* Appends one entry (already validated by the caller: the store does not
 * decode it) to room. Blocks until the entry is durable; concurrent
 * callers share one commit (group commit). expect_seq must equal the
 * room's current size, else DCR_ESEQ (use ES_SEQ_ANY to skip the check).
 * On success *seq_out is the entry's sequence and cp_out (may be NULL) the
 * checkpoint signed for that commit: it covers the whole room after the
 * commit (cp_out->size > seq), and is already stored as the room's latest.
 * Without a checkpoint key cp_out has room, size, root and ts but a zero
 * key and signature. Entries are 65..ES_ENTRY_BYTES_MAX bytes (DCR_ELIMIT).
 * Thread safe. */
#define ES_SEQ_ANY UINT64_MAX
int es_append(es_store *s, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t expect_seq,
              const void *entry, size_t n, uint64_t *seq_out, es_checkpoint *cp_out, dcr_err *err);

/* es_append in two halves, so that a caller can fix the order of its
 * appends under its own lock and wait for durability outside it:
 * es_append_start copies the entry, queues it and returns at once (it
 * blocks only while ES_QUEUE_DEPTH_MAX requests are pending); appends are
 * applied in the order they were queued, so appends of one room queued
 * with expect_seq n, n+1, ... (and no other writer of that room) all
 * succeed or, from the first failure on, fail with DCR_ESEQ. es_append_wait blocks until the append
 * is durable (or failed), returns what es_append would, and frees p. Call it exactly once for every
 * started append, before es_close. */
typedef struct es_pending es_pending;
int es_append_start(es_store *s, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t expect_seq,
                    const void *entry, size_t n, es_pending **out, dcr_err *err);
int es_append_wait(es_pending *p, uint64_t *seq_out, es_checkpoint *cp_out, dcr_err *err);

/* Number of events in room (0 if unknown room). */
int es_room_size(es_store *s, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t *size);
/* Latest checkpoint of room (DCR_ENOTFOUND if none): the one stored by the
 * last commit that touched the room, signed by the store's checkpoint key
 * (at the first read: commits store it unsigned). A store opened without
 * that key returns it with a zero signature (es_checkpoint_verify fails). */
int es_latest_checkpoint(es_store *s, const uint8_t room[ES_ROOM_ID_BYTES], es_checkpoint *cp);
/* Lists rooms (those with at least one event), in id order: calls fn for
 * each, outside any transaction; a non-zero return stops and is returned. */
int es_rooms(es_store *s, int (*fn)(void *ctx, const uint8_t room[ES_ROOM_ID_BYTES]), void *ctx);

/* Copies entry seq of room into out (appends). DCR_ENOTFOUND if absent. */
int es_get(es_store *s, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t seq, dcr_buf *out);

/* Streams events [from, to) of room (to = ES_SEQ_ANY for the end) to fn in
 * bounded chunks (32 events / 256 KiB at first, doubling up to
 * ES_FOLD_CHUNK_EVENTS / ES_FOLD_CHUNK_BYTES; at least one event), each chunk
 * copied out of its own short read transaction; fn runs with no
 * transaction open, so it may call any es_ function (even es_append). The
 * entry pointer is valid only during the call. A non-zero return from fn
 * stops the fold and is returned. Events appended meanwhile are included
 * when to = ES_SEQ_ANY. Other errors: DCR_ESTORE, DCR_EINTEGRITY (a gap in
 * the sequence: a damaged file). This is replay: fold(apply, events). */
typedef int (*es_fold_fn)(void *ctx, uint64_t seq, const void *entry, size_t n);
int es_fold(es_store *s, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t from, uint64_t to,
            es_fold_fn fn, void *ctx);

/* Root of the first `size` leaves of room, and proofs against it, from the
 * stored complete subtrees (O(log^2 n) lookups, one read transaction).
 * DCR_EINVALID if a size exceeds the room's size or index >= size. proof
 * holds ES_PROOF_HASHES_MAX hashes. */
int es_root(es_store *s, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t size, uint8_t root[32]);
int es_inclusion_proof(es_store *s, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t index,
                       uint64_t size, uint8_t (*proof)[32], size_t *proof_n);
int es_consistency_proof(es_store *s, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t size_old,
                         uint64_t size_new, uint8_t (*proof)[32], size_t *proof_n);

/* Writes a compacted copy of the whole store (LMDB's data.mdb, free pages
 * left out: mdb_env_copyfd2 with MDB_CP_COMPACT) to fd, from one read
 * transaction: the copy is the state of one commit, taken while appends go
 * on. A map resize waits until the copy is written. Opening a directory
 * holding the copy as data.mdb gives that state. Thread safe. */
int es_copy(es_store *s, int fd, dcr_err *err);

/* Small key-value side table in the same environment for daemon metadata
 * (blob index, upload records). Keys are 1..ES_META_KEY_BYTES_MAX bytes,
 * values up to ES_META_VALUE_BYTES_MAX (else DCR_ELIMIT). Writes go through
 * the writer thread (group commit with appends) and are durable on return;
 * deleting a missing key returns 0. A failed write returns -errno when the
 * system said why (-EIO, -ENOSPC), else DCR_ESTORE. */
int es_meta_put(es_store *s, const char *key, const void *v, size_t n);
int es_meta_get(es_store *s, const char *key, dcr_buf *out); /* DCR_ENOTFOUND */
int es_meta_del(es_store *s, const char *key);

#endif
