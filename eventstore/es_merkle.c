/* es_merkle.c: RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their
 * verification, as pure functions.
 *
 * leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || left || right), the
 * empty tree hashes to SHA-256(""). Proof generation follows the recursive
 * definitions of RFC 6962 §2.1.1 (PATH) and §2.1.2 (SUBPROOF) over a
 * range-hash callback, so the array-based reference versions here and the
 * store (es_store.c, stored subtrees) share one definition. Verification
 * follows the iterative algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 and
 * never trusts a proof's length: it must match the sizes exactly.
 *
 * Tree sizes are capped at ES_TREE_SIZE_MAX so every proof fits in
 * ES_PROOF_HASHES_MAX hashes. */
#include <openssl/crypto.h>

#include "es_int.h"

void es_leaf_hash(const void *entry, size_t n, uint8_t out[32])
{
	static const uint8_t prefix = 0x00;
	uint8_t small[1025];
	dcr_sha256_ctx *c;

	if (n < sizeof(small)) { /* the common case, without an allocation */
		small[0] = prefix;
		if (n > 0)
			memcpy(small + 1, entry, n);
		dcr_sha256(small, n + 1, out);
		return;
	}
	c = dcr_sha256_new();
	dcr_sha256_update(c, &prefix, 1);
	dcr_sha256_update(c, entry, n);
	dcr_sha256_final(c, out);
	dcr_sha256_free(c);
}

void es_node_hash(const uint8_t l[32], const uint8_t r[32], uint8_t out[32])
{
	uint8_t m[65];

	m[0] = 0x01;
	memcpy(m + 1, l, 32);
	memcpy(m + 33, r, 32);
	dcr_sha256(m, sizeof(m), out);
}

uint64_t es__split(uint64_t n)
{
	uint64_t k = 1;

	DCR_ASSERT(n >= 2);
	while (k < n - k) /* k * 2 < n, without overflow */
		k <<= 1;
	return k;
}

uint64_t es__postorder(unsigned level, uint64_t index)
{
	/* The subtree completes when its last leaf m is appended; before leaf
	 * m, 2m - popcount(m) subtrees were completed; then come leaf m and
	 * its `level` newly completed ancestors. */
	uint64_t m = ((index + 1) << level) - 1;

	return 2 * m - (uint64_t)__builtin_popcountll(m) + level;
}

/* ---- reference: range hashes straight from the leaf array --------------- */

typedef struct {
	const uint8_t (*leaves)[32];
} array_ctx;

static void mth_array(const uint8_t (*leaves)[32], uint64_t lo, uint64_t hi, uint8_t out[32])
{
	uint8_t l[32], r[32];
	uint64_t k;

	if (hi - lo == 1) {
		memcpy(out, leaves[lo], 32);
		return;
	}
	k = es__split(hi - lo);
	mth_array(leaves, lo, lo + k, l);
	mth_array(leaves, lo + k, hi, r);
	es_node_hash(l, r, out);
}

static int range_array(void *ctx, uint64_t lo, uint64_t hi, uint8_t out[32])
{
	array_ctx *a = ctx;

	mth_array(a->leaves, lo, hi, out);
	return 0;
}

void es_merkle_root(const uint8_t (*leaves)[32], uint64_t n, uint8_t out[32])
{
	if (n == 0) {
		dcr_sha256("", 0, out);
		return;
	}
	mth_array(leaves, 0, n, out);
}

int es_merkle_inclusion(const uint8_t (*leaves)[32], uint64_t n, uint64_t index,
                        uint8_t (*proof)[32], size_t *proof_n)
{
	array_ctx a = {leaves};

	return es__inclusion(range_array, &a, index, n, proof, proof_n);
}

int es_merkle_consistency(const uint8_t (*leaves)[32], uint64_t n_old, uint64_t n_new,
                          uint8_t (*proof)[32], size_t *proof_n)
{
	array_ctx a = {leaves};

	return es__consistency(range_array, &a, n_old, n_new, proof, proof_n);
}

/* ---- proof generation (RFC 6962 §2.1.1, §2.1.2) -------------------------- */

static int path(es__range_fn fn, void *ctx, uint64_t m, uint64_t lo, uint64_t hi,
                uint8_t (*proof)[32], size_t *proof_n)
{
	uint64_t k;
	int rc;

	if (hi - lo == 1)
		return 0;
	k = es__split(hi - lo);
	if (m < k) {
		rc = path(fn, ctx, m, lo, lo + k, proof, proof_n);
		if (rc == 0)
			rc = fn(ctx, lo + k, hi, proof[*proof_n]);
	} else {
		rc = path(fn, ctx, m - k, lo + k, hi, proof, proof_n);
		if (rc == 0)
			rc = fn(ctx, lo, lo + k, proof[*proof_n]);
	}
	if (rc != 0)
		return rc;
	DCR_ASSERT(*proof_n < ES_PROOF_HASHES_MAX);
	(*proof_n)++;
	return 0;
}

int es__inclusion(es__range_fn fn, void *ctx, uint64_t index, uint64_t size, uint8_t (*proof)[32],
                  size_t *proof_n)
{
	*proof_n = 0;
	if (size > ES_TREE_SIZE_MAX || index >= size)
		return DCR_EINVALID;
	return path(fn, ctx, index, 0, size, proof, proof_n);
}

static int subproof(es__range_fn fn, void *ctx, uint64_t m, uint64_t lo, uint64_t hi, bool whole,
                    uint8_t (*proof)[32], size_t *proof_n)
{
	uint64_t n = hi - lo, k;
	int rc;

	if (m == n) {
		if (whole)
			return 0;
		rc = fn(ctx, lo, hi, proof[*proof_n]);
	} else {
		k = es__split(n);
		if (m <= k) {
			rc = subproof(fn, ctx, m, lo, lo + k, whole, proof, proof_n);
			if (rc == 0)
				rc = fn(ctx, lo + k, hi, proof[*proof_n]);
		} else {
			rc = subproof(fn, ctx, m - k, lo + k, hi, false, proof, proof_n);
			if (rc == 0)
				rc = fn(ctx, lo, lo + k, proof[*proof_n]);
		}
	}
	if (rc != 0)
		return rc;
	DCR_ASSERT(*proof_n < ES_PROOF_HASHES_MAX);
	(*proof_n)++;
	return 0;
}

int es__consistency(es__range_fn fn, void *ctx, uint64_t size_old, uint64_t size_new,
                    uint8_t (*proof)[32], size_t *proof_n)
{
	*proof_n = 0;
	if (size_new > ES_TREE_SIZE_MAX || size_old > size_new)
		return DCR_EINVALID;
	if (size_old == 0 || size_old == size_new)
		return 0; /* nothing to prove */
	return subproof(fn, ctx, size_old, 0, size_new, true, proof, proof_n);
}

/* ---- verification (RFC 9162 §2.1.3.2, §2.1.4.2) --------------------------- */

int es_verify_inclusion(uint64_t index, uint64_t size, const uint8_t leaf[32],
                        const uint8_t (*proof)[32], size_t proof_n, const uint8_t root[32])
{
	uint64_t fn = index, sn;
	uint8_t r[32];

	if (size == 0 || size > ES_TREE_SIZE_MAX || index >= size || proof_n > ES_PROOF_HASHES_MAX)
		return DCR_EINTEGRITY;
	sn = size - 1;
	memcpy(r, leaf, 32);
	for (size_t i = 0; i < proof_n; i++) {
		if (sn == 0)
			return DCR_EINTEGRITY; /* proof longer than the path */
		if ((fn & 1) || fn == sn) {
			es_node_hash(proof[i], r, r);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			es_node_hash(r, proof[i], r);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0 || dcr_ct_memcmp(r, root, 32) != 0)
		return DCR_EINTEGRITY;
	return 0;
}

int es_verify_consistency(uint64_t size_old, uint64_t size_new, const uint8_t root_old[32],
                          const uint8_t root_new[32], const uint8_t (*proof)[32], size_t proof_n)
{
	uint64_t fn, sn;
	uint8_t fr[32], sr[32];
	size_t i = 0;

	if (size_old > size_new || size_new > ES_TREE_SIZE_MAX || proof_n > ES_PROOF_HASHES_MAX)
		return DCR_EINTEGRITY;
	if (size_old == size_new)
		return proof_n == 0 && dcr_ct_memcmp(root_old, root_new, 32) == 0 ? 0
		                                                                  : DCR_EINTEGRITY;
	if (size_old == 0) /* the empty tree is a prefix of every tree */
		return proof_n == 0 ? 0 : DCR_EINTEGRITY;
	if (proof_n == 0)
		return DCR_EINTEGRITY;
	/* If size_old is a power of two, the old root is the first node of the
	 * path; otherwise the proof starts with it. */
	if ((size_old & (size_old - 1)) == 0) {
		memcpy(fr, root_old, 32);
	} else {
		memcpy(fr, proof[0], 32);
		i = 1;
	}
	memcpy(sr, fr, 32);
	fn = size_old - 1;
	sn = size_new - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	for (; i < proof_n; i++) {
		if (sn == 0)
			return DCR_EINTEGRITY;
		if ((fn & 1) || fn == sn) {
			es_node_hash(proof[i], fr, fr);
			es_node_hash(proof[i], sr, sr);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			es_node_hash(sr, proof[i], sr);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0 || dcr_ct_memcmp(fr, root_old, 32) != 0 || dcr_ct_memcmp(sr, root_new, 32) != 0)
		return DCR_EINTEGRITY;
	return 0;
}

/* ---- the frontier (roots of the perfect subtrees of a prefix) ------------- */

void es_frontier_init(es_frontier *f)
{
	memset(f, 0, sizeof *f);
}

void es_frontier_append(es_frontier *f, const uint8_t leaf[32])
{
	uint8_t h[32];
	uint64_t n = f->size;

	DCR_ASSERT(n < (UINT64_C(1) << 63));
	memcpy(h, leaf, 32);
	/* each trailing 1 bit of size is a perfect subtree of the new leaf's
	 * height: merge it, as a binary counter carries */
	while (n & 1) {
		DCR_ASSERT(f->n > 0);
		es_node_hash(f->h[--f->n], h, h);
		n >>= 1;
	}
	DCR_ASSERT(f->n < 64);
	memcpy(f->h[f->n++], h, 32);
	f->size++;
}

void es_frontier_root(const es_frontier *f, uint8_t out[32])
{
	uint8_t h[32];

	if (f->size == 0) {
		dcr_sha256("", 0, out);
		return;
	}
	/* RFC 6962 splits at the largest power of two below n: the subtrees
	 * folded from the smallest (rightmost) up give exactly that shape */
	memcpy(h, f->h[f->n - 1], 32);
	for (unsigned i = f->n - 1; i-- > 0;)
		es_node_hash(f->h[i], h, h);
	memcpy(out, h, 32);
}
