/* test_es_merkle.c: RFC 6962 hashing, proofs and verification (pure
 * functions of eventstore/es_merkle.c).
 *
 * Known answers: the Certificate Transparency / transparency-dev test
 * vectors (8 leaves, the roots of sizes 0..8, and the published inclusion
 * and consistency proofs), cross-checked with an independent Python
 * implementation before being written here. Then every inclusion and
 * consistency proof of every tree size up to 64 is generated and verified,
 * and tampered variants (a flipped bit in each element, one hash more or
 * less, wrong index or size, swapped roots) must all be rejected. */
#include <inttypes.h>

#include "../../eventstore/eventstore.h"

#include "test.h"

static void unhex(const char *s, uint8_t *out, size_t n)
{
	DCR_ASSERT(strlen(s) == 2 * n);
	DCR_ASSERT(dcr_hex_decode(s, 2 * n, out, n) == 0);
}

static const char *const leaves_hex[8] = {
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
};

/* roots[n] is the root of the first n leaves. */
static const char *const roots_hex[9] = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

typedef struct {
	uint64_t a, b; /* inclusion: index (0-based), size; consistency: old, new */
	size_t n;
	const char *h[4];
} vector;

static const vector inclusion_vectors[] = {
    {0,
     8,
     3,
     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {5,
     8,
     3,
     {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2, 3, 1, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
    {1,
     5,
     3,
     {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
    {0, 1, 0, {NULL}},
};

static const vector consistency_vectors[] = {
    {1, 1, 0, {NULL}},
    {1,
     8,
     3,
     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {6,
     8,
     3,
     {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2,
     5,
     2,
     {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
    {6,
     7,
     3,
     {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
};

static void test_vectors(void)
{
	uint8_t leaves[8][32], root[32], want[32], proof[ES_PROOF_HASHES_MAX][32], h[32];
	size_t proof_n;

	for (int i = 0; i < 8; i++) {
		uint8_t d[16];
		size_t n = strlen(leaves_hex[i]) / 2;

		unhex(leaves_hex[i], d, n);
		es_leaf_hash(d, n, leaves[i]);
	}
	/* A one-leaf tree's root is the leaf hash; the empty tree's is SHA-256(""). */
	for (uint64_t n = 0; n <= 8; n++) {
		es_merkle_root((const uint8_t(*)[32])leaves, n, root);
		unhex(roots_hex[n], want, 32);
		CHECK(memcmp(root, want, 32) == 0, "root of size %" PRIu64, n);
	}
	for (size_t v = 0; v < sizeof(inclusion_vectors) / sizeof(inclusion_vectors[0]); v++) {
		const vector *t = &inclusion_vectors[v];

		CHECK(es_merkle_inclusion((const uint8_t(*)[32])leaves, t->b, t->a, proof,
		                          &proof_n) == 0,
		      "inclusion %" PRIu64 "/%" PRIu64, t->a, t->b);
		CHECK(proof_n == t->n, "inclusion %" PRIu64 "/%" PRIu64 " has %zu hashes", t->a,
		      t->b, proof_n);
		for (size_t i = 0; i < t->n && i < proof_n; i++) {
			unhex(t->h[i], h, 32);
			CHECK(memcmp(proof[i], h, 32) == 0,
			      "inclusion %" PRIu64 "/%" PRIu64 " hash %zu", t->a, t->b, i);
		}
		unhex(roots_hex[t->b], root, 32);
		CHECK(es_verify_inclusion(t->a, t->b, leaves[t->a], (const uint8_t(*)[32])proof,
		                          proof_n, root) == 0,
		      "published inclusion proof %zu verifies", v);
	}
	for (size_t v = 0; v < sizeof(consistency_vectors) / sizeof(consistency_vectors[0]); v++) {
		const vector *t = &consistency_vectors[v];
		uint8_t r1[32];

		CHECK(es_merkle_consistency((const uint8_t(*)[32])leaves, t->a, t->b, proof,
		                            &proof_n) == 0,
		      "consistency %" PRIu64 "->%" PRIu64, t->a, t->b);
		CHECK(proof_n == t->n, "consistency %" PRIu64 "->%" PRIu64 " has %zu hashes", t->a,
		      t->b, proof_n);
		for (size_t i = 0; i < t->n && i < proof_n; i++) {
			unhex(t->h[i], h, 32);
			CHECK(memcmp(proof[i], h, 32) == 0,
			      "consistency %" PRIu64 "->%" PRIu64 " hash %zu", t->a, t->b, i);
		}
		unhex(roots_hex[t->a], r1, 32);
		unhex(roots_hex[t->b], root, 32);
		CHECK(es_verify_consistency(t->a, t->b, r1, root, (const uint8_t(*)[32])proof,
		                            proof_n) == 0,
		      "published consistency proof %zu verifies", v);
	}
}

/* Leaf hashes for the exhaustive tests: leaf i is the entry "leaf-<i>". */
#define N_MAX 64
static uint8_t big[N_MAX][32];
static uint8_t roots[N_MAX + 1][32];

static void setup_big(void)
{
	for (int i = 0; i < N_MAX; i++) {
		char s[32];
		int n = snprintf(s, sizeof(s), "leaf-%d", i);

		es_leaf_hash(s, (size_t)n, big[i]);
	}
	for (uint64_t n = 0; n <= N_MAX; n++)
		es_merkle_root((const uint8_t(*)[32])big, n, roots[n]);
}

static int verify_inc(uint64_t index, uint64_t size, const uint8_t leaf[32], uint8_t (*proof)[32],
                      size_t n, const uint8_t root[32])
{
	return es_verify_inclusion(index, size, leaf, (const uint8_t(*)[32])proof, n, root);
}

static void test_inclusion_all(void)
{
	uint8_t proof[ES_PROOF_HASHES_MAX + 2][32], leaf[32];
	size_t n;

	for (uint64_t size = 1; size <= N_MAX; size++) {
		for (uint64_t i = 0; i < size; i++) {
			CHECK(es_merkle_inclusion((const uint8_t(*)[32])big, size, i, proof, &n) ==
			          0,
			      "proof %" PRIu64 "/%" PRIu64, i, size);
			CHECK(verify_inc(i, size, big[i], proof, n, roots[size]) == 0,
			      "inclusion %" PRIu64 "/%" PRIu64 " verifies", i, size);
			/* A flipped bit anywhere. */
			for (size_t k = 0; k < n; k++) {
				proof[k][k % 32] ^= 0x08;
				CHECK(verify_inc(i, size, big[i], proof, n, roots[size]) ==
				          DCR_EINTEGRITY,
				      "inclusion %" PRIu64 "/%" PRIu64 " with hash %zu flipped", i,
				      size, k);
				proof[k][k % 32] ^= 0x08;
			}
			memcpy(leaf, big[i], 32);
			leaf[31] ^= 1;
			CHECK(verify_inc(i, size, leaf, proof, n, roots[size]) == DCR_EINTEGRITY,
			      "wrong leaf");
			CHECK(verify_inc(i, size, big[i], proof, n, roots[size - 1]) != 0,
			      "root of another size");
			/* One hash more (the root, or zeros), one less. */
			memcpy(proof[n], roots[size], 32);
			CHECK(verify_inc(i, size, big[i], proof, n + 1, roots[size]) != 0,
			      "inclusion %" PRIu64 "/%" PRIu64 " + root", i, size);
			memset(proof[n], 0, 32);
			CHECK(verify_inc(i, size, big[i], proof, n + 1, roots[size]) != 0,
			      "inclusion %" PRIu64 "/%" PRIu64 " + zeros", i, size);
			if (n > 0)
				CHECK(verify_inc(i, size, big[i], proof, n - 1, roots[size]) != 0,
				      "inclusion %" PRIu64 "/%" PRIu64 " - 1 hash", i, size);
			/* Wrong index. */
			if (i > 0)
				CHECK(verify_inc(i - 1, size, big[i], proof, n, roots[size]) != 0,
				      "index %" PRIu64 " - 1 of %" PRIu64, i, size);
			if (i + 1 < size)
				CHECK(verify_inc(i + 1, size, big[i], proof, n, roots[size]) != 0,
				      "index %" PRIu64 " + 1 of %" PRIu64, i, size);
			if ((i ^ 2) < size)
				CHECK(verify_inc(i ^ 2, size, big[i], proof, n, roots[size]) != 0,
				      "index %" PRIu64 " ^ 2 of %" PRIu64, i, size);
			CHECK(verify_inc(size, size, big[i], proof, n, roots[size]) != 0,
			      "index == size");
			/* Wrong size, with the root of that size (an inclusion proof
			 * alone does not bind the size: the signed checkpoint binds
			 * size and root together). */
			for (uint64_t s2 = size > 8 ? size - 8 : 1; s2 <= size + 8 && s2 <= N_MAX;
			     s2++) {
				if (s2 == size || i >= s2)
					continue;
				CHECK(verify_inc(i, s2, big[i], proof, n, roots[s2]) != 0,
				      "inclusion %" PRIu64 "/%" PRIu64 " as size %" PRIu64, i, size,
				      s2);
			}
			CHECK(verify_inc(i, 0, big[i], proof, n, roots[0]) != 0, "size 0");
		}
		CHECK(es_merkle_inclusion((const uint8_t(*)[32])big, size, size, proof, &n) ==
		          DCR_EINVALID,
		      "index == size is refused");
	}
}

static int verify_cons(uint64_t m, uint64_t n, const uint8_t *r1, const uint8_t *r2,
                       uint8_t (*proof)[32], size_t pn)
{
	return es_verify_consistency(m, n, r1, r2, (const uint8_t(*)[32])proof, pn);
}

static void test_consistency_all(void)
{
	uint8_t proof[ES_PROOF_HASHES_MAX + 2][32], tmp[ES_PROOF_HASHES_MAX + 2][32];
	size_t pn;

	for (uint64_t n = 0; n <= N_MAX; n++) {
		for (uint64_t m = 0; m <= n; m++) {
			CHECK(es_merkle_consistency((const uint8_t(*)[32])big, m, n, proof, &pn) ==
			          0,
			      "proof %" PRIu64 "->%" PRIu64, m, n);
			CHECK(verify_cons(m, n, roots[m], roots[n], proof, pn) == 0,
			      "consistency %" PRIu64 "->%" PRIu64 " verifies", m, n);
			if (m == 0 || m == n) {
				CHECK(pn == 0, "trivial proof is empty");
				memcpy(proof[0], roots[n], 32);
				CHECK(verify_cons(m, n, roots[m], roots[n], proof, 1) != 0,
				      "non-empty trivial proof %" PRIu64 "->%" PRIu64, m, n);
				if (m == n && n > 0)
					CHECK(verify_cons(m, n, roots[m], roots[n - 1], proof, 0) !=
					          0,
					      "equal sizes, different roots");
				continue;
			}
			CHECK(pn > 0, "non-trivial proof is not empty");
			for (size_t k = 0; k < pn; k++) {
				proof[k][(k * 7) % 32] ^= 0x10;
				CHECK(verify_cons(m, n, roots[m], roots[n], proof, pn) != 0,
				      "consistency %" PRIu64 "->%" PRIu64 " hash %zu flipped", m, n,
				      k);
				proof[k][(k * 7) % 32] ^= 0x10;
			}
			CHECK(verify_cons(m, n, roots[m], roots[n], proof, pn - 1) != 0,
			      "consistency %" PRIu64 "->%" PRIu64 " - 1 hash", m, n);
			CHECK(verify_cons(m, n, roots[m], roots[n], proof, 0) != 0, "empty proof");
			memcpy(proof[pn], roots[m], 32);
			CHECK(verify_cons(m, n, roots[m], roots[n], proof, pn + 1) != 0,
			      "consistency %" PRIu64 "->%" PRIu64 " + root1", m, n);
			memcpy(proof[pn], roots[n], 32);
			CHECK(verify_cons(m, n, roots[m], roots[n], proof, pn + 1) != 0,
			      "consistency %" PRIu64 "->%" PRIu64 " + root2", m, n);
			/* Preceding garbage. */
			memcpy(tmp[0], roots[m], 32);
			memcpy(tmp + 1, proof, pn * 32);
			CHECK(verify_cons(m, n, roots[m], roots[n], tmp, pn + 1) != 0,
			      "consistency %" PRIu64 "->%" PRIu64 " root1 + proof", m, n);
			CHECK(verify_cons(m, n, roots[n], roots[m], proof, pn) != 0,
			      "swapped roots");
			CHECK(verify_cons(m, n, roots[m], roots[n - 1], proof, pn) != 0,
			      "wrong new root");
			CHECK(verify_cons(m, n, roots[m - 1], roots[n], proof, pn) != 0,
			      "wrong old root");
			/* Wrong sizes, each with its own root. */
			if (m + 1 < n)
				CHECK(verify_cons(m + 1, n, roots[m + 1], roots[n], proof, pn) != 0,
				      "old size %" PRIu64 " + 1 -> %" PRIu64, m, n);
			if (m > 1)
				CHECK(verify_cons(m - 1, n, roots[m - 1], roots[n], proof, pn) != 0,
				      "old size %" PRIu64 " - 1 -> %" PRIu64, m, n);
			if (n + 1 <= N_MAX)
				CHECK(verify_cons(m, n + 1, roots[m], roots[n + 1], proof, pn) != 0,
				      "%" PRIu64 " -> new size %" PRIu64 " + 1", m, n);
			if (n - 1 > m)
				CHECK(verify_cons(m, n - 1, roots[m], roots[n - 1], proof, pn) != 0,
				      "%" PRIu64 " -> new size %" PRIu64 " - 1", m, n);
			CHECK(verify_cons(n, m, roots[n], roots[m], proof, pn) != 0,
			      "time travel %" PRIu64 " -> %" PRIu64, n, m);
		}
	}
	CHECK(es_merkle_consistency((const uint8_t(*)[32])big, 5, 4, proof, &pn) == DCR_EINVALID,
	      "old > new is refused");
}

static void test_hash_prefixes(void)
{
	uint8_t buf[5000 + 1], a[32], b[32], l[32], r[32], m[65];

	/* Both code paths of es_leaf_hash (short entries on the stack). */
	for (size_t n = 0; n <= 5000; n += 997) {
		buf[0] = 0x00;
		for (size_t i = 0; i < n; i++)
			buf[1 + i] = (uint8_t)(i * 31 + 7);
		es_leaf_hash(buf + 1, n, a);
		dcr_sha256(buf, n + 1, b);
		CHECK(memcmp(a, b, 32) == 0, "leaf hash of %zu bytes", n);
	}
	memset(buf + 1, 0xab, 1024);
	es_leaf_hash(buf + 1, 1024, a);
	dcr_sha256(buf, 1025, b);
	CHECK(memcmp(a, b, 32) == 0, "leaf hash of 1024 bytes");
	memset(l, 1, 32);
	memset(r, 2, 32);
	es_node_hash(l, r, a);
	m[0] = 0x01;
	memcpy(m + 1, l, 32);
	memcpy(m + 33, r, 32);
	dcr_sha256(m, 65, b);
	CHECK(memcmp(a, b, 32) == 0, "node hash");
}

/* The frontier gives es_merkle_root's root at every size, and a frontier
 * fed one wrong leaf gives another root. */
static void test_frontier(void)
{
	es_frontier f, g;
	uint8_t r[32], bad[32];

	es_frontier_init(&f);
	es_frontier_root(&f, r);
	CHECK(memcmp(r, roots[0], 32) == 0);
	for (uint64_t n = 1; n <= N_MAX; n++) {
		es_frontier_append(&f, big[n - 1]);
		es_frontier_root(&f, r);
		CHECK(f.size == n);
		CHECK(memcmp(r, roots[n], 32) == 0);
	}
	for (uint64_t k = 0; k < 13; k++) {
		es_frontier_init(&g);
		for (uint64_t i = 0; i < 13; i++) {
			memcpy(bad, big[i], 32);
			if (i == k)
				bad[0] ^= 1;
			es_frontier_append(&g, bad);
		}
		es_frontier_root(&g, r);
		CHECK(memcmp(r, roots[13], 32) != 0);
	}
}

int main(void)
{
	test_vectors();
	setup_big();
	test_inclusion_all();
	test_consistency_all();
	test_hash_prefixes();
	test_frontier();
	if (t_failures) {
		fprintf(stderr, "%d failures\n", t_failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
