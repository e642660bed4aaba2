/* es_int.h: private pieces shared by the eventstore sources.
 *
 * The RFC 6962 proof recursions are written once, over a callback that
 * returns MTH(D[lo:hi]) for a range of leaves: the pure reference versions
 * (es_merkle_*) compute it from an array of leaf hashes, the store looks up
 * stored complete subtrees. Only this module sees this header. */
#ifndef DCR_ES_INT_H
#define DCR_ES_INT_H

#include "eventstore.h"

/* Hash of leaves [lo, hi) (hi > lo) into out; 0 or a negative code. */
typedef int (*es__range_fn)(void *ctx, uint64_t lo, uint64_t hi, uint8_t out[32]);

/* Largest power of two strictly smaller than n (n >= 2). */
uint64_t es__split(uint64_t n);

/* RFC 6962 §2.1.1 PATH(index, D[0:size]) and §2.1.2 PROOF(old, D[0:new]).
 * proof holds ES_PROOF_HASHES_MAX hashes. */
int es__inclusion(es__range_fn fn, void *ctx, uint64_t index, uint64_t size, uint8_t (*proof)[32],
                  size_t *proof_n);
int es__consistency(es__range_fn fn, void *ctx, uint64_t size_old, uint64_t size_new,
                    uint8_t (*proof)[32], size_t *proof_n);

/* Position of the complete subtree (level, index) in post-order, i.e. the
 * order in which an append-only log completes its subtrees. Keys built from
 * it increase as the log grows (see docs/eventstore.md). */
uint64_t es__postorder(unsigned level, uint64_t index);

#endif
