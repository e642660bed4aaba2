/* test_cmp_rows.c: the sort of a prepared table's rows (compute/cmp_rows.c)
 * against a plain reference: SQLite's ORDER BY on the key column (NULL
 * first, then numbers by value with -0 = 0, then text by the BINARY
 * collation: memcmp over the shorter length, then the shorter first), rows
 * with equal keys in file order. The reference is a plain top-down merge
 * sort of the row indexes with that comparison written out directly, so
 * the test does not share the sort's tricks (8-byte chunks, skipped common
 * prefixes, radix passes). Keys are made to hit them: NUL bytes and bytes
 * >= 0x80 (which must sort above ASCII), keys that are prefixes of each
 * other, lengths around 8 and 16, long shared prefixes, many duplicates,
 * groups above and below the radix threshold, and one key column that
 * mixes integers and floats (which the sort must refuse). test_cmp_sql
 * checks the same order against SQLite itself on CSV input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../compute/compute_int.h"

#include "test.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t below(uint64_t n)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return n ? z % n : 0;
}

struct key {
	int kind;
	int64_t i;
	double d;
	uint8_t *s;
	size_t n;
};

/* SQLite's ORDER BY order of two key values (numbers of one kind only). */
static int key_cmp(const struct key *a, const struct key *b)
{
	int ca = a->kind == CMP__NULL ? 0 : a->kind == CMP__TEXT ? 2 : 1;
	int cb = b->kind == CMP__NULL ? 0 : b->kind == CMP__TEXT ? 2 : 1;
	if (ca != cb)
		return ca < cb ? -1 : 1;
	if (ca == 0)
		return 0;
	if (a->kind == CMP__INT)
		return a->i < b->i ? -1 : a->i > b->i;
	if (a->kind == CMP__FLOAT)
		return a->d < b->d ? -1 : a->d > b->d; /* -0 == 0 */
	size_t m = a->n < b->n ? a->n : b->n;
	int c = m ? memcmp(a->s, b->s, m) : 0;
	if (c)
		return c < 0 ? -1 : 1;
	return a->n < b->n ? -1 : a->n > b->n;
}

/* The reference: a stable merge sort of row indexes (ties: the left
 * half's first, so file order). */
static void merge_sort(const struct key *keys, size_t *a, size_t *tmp, size_t n)
{
	if (n < 2)
		return;
	size_t h = n / 2, i = 0, j = h, o = 0;
	merge_sort(keys, a, tmp, h);
	merge_sort(keys, a + h, tmp, n - h);
	while (i < h && j < n)
		tmp[o++] = key_cmp(&keys[a[j]], &keys[a[i]]) < 0 ? a[j++] : a[i++];
	while (i < h)
		tmp[o++] = a[i++];
	while (j < n)
		tmp[o++] = a[j++];
	memcpy(a, tmp, n * sizeof *a);
}

/* Text keys over a small alphabet (so prefixes are shared) with NUL and
 * high bytes, of lengths around the sort's 8-byte chunks. */
static void gen_text(struct key *k, const uint8_t *stem, size_t stem_n)
{
	static const uint8_t alpha[] = {'a', 'b', 0, 0xff, 0x80, '@', '1', 'z'};
	size_t tail;
	switch (below(6)) {
	case 0:
		tail = 0;
		break;
	case 1:
		tail = 7 + below(3);
		break;
	case 2:
		tail = 15 + below(3);
		break;
	case 3:
		tail = 30 + below(60);
		break;
	default:
		tail = below(12);
		break;
	}
	k->kind = CMP__TEXT;
	k->n = stem_n + tail;
	k->s = malloc(k->n ? k->n : 1);
	memcpy(k->s, stem, stem_n);
	for (size_t j = 0; j < tail; j++)
		k->s[stem_n + j] = below(3) ? alpha[below(2)] : alpha[below(sizeof alpha)];
}

/* One table of nrows rows (key in column 1 of 3) through cmp__rows, its
 * sort checked against the reference; returns whether the sort ran. */
static bool check_sort(const char *what, struct key *keys, size_t nrows)
{
	cmp__rows *r = cmp__rows_new(3, 1);
	size_t *ref = malloc((nrows ? nrows : 1) * sizeof *ref);
	bool sorted;
	dcr_err err;

	for (size_t i = 0; i < nrows; i++) {
		cmp__value v[3] = {{.kind = CMP__INT, .i = (int64_t)i},
		                   {.kind = keys[i].kind,
		                    .i = keys[i].i,
		                    .d = keys[i].d,
		                    .s = (const char *)keys[i].s,
		                    .n = keys[i].n},
		                   {.kind = CMP__TEXT, .s = "tail", .n = 4}};
		CHECK_OK(cmp__rows_add(r, v, 3, &err), &err);
	}
	for (size_t i = 0; i < nrows; i++)
		ref[i] = i;
	size_t *tmp = malloc((nrows ? nrows : 1) * sizeof *tmp);
	merge_sort(keys, ref, tmp, nrows);
	free(tmp);
	sorted = cmp__rows_sort(r);
	if (sorted) {
		size_t bad = 0;
		CHECK(cmp__rows_count(r) == nrows, "%s: count", what);
		for (size_t i = 0; i < nrows; i++) {
			cmp__value v[3];
			if (cmp__rows_at(r, i) != ref[i]) {
				if (bad++ < 3)
					CHECK(cmp__rows_at(r, i) == ref[i], "%s: position %zu", what, i);
				continue;
			}
			cmp__rows_get(r, i, v);
			CHECK(v[0].kind == CMP__INT && (size_t)v[0].i == ref[i] && v[2].n == 4,
			      "%s: row %zu read back", what, i);
		}
		CHECK(bad == 0, "%s: %zu rows out of place", what, bad);
	}
	cmp__rows_free(r);
	free(ref);
	return sorted;
}

static void free_keys(struct key *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(keys[i].s);
	free(keys);
}

/* Mixed tables: NULLs, integers or floats (one kind per table), text with
 * one of a few stems (long shared prefixes), duplicates. */
static void test_random(void)
{
	static const char *const stems[] = {"", "user", "abcdefgh", "abcdefghabcdefgh",
	                                    "user1234567890@example.com/"};
	static const size_t sizes[] = {0, 1, 2, 7, 255, 256, 257, 1000, 5000, 40000};
	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
		for (int numkind = 0; numkind < 2; numkind++) {
			size_t n = sizes[s];
			struct key *keys = calloc(n ? n : 1, sizeof *keys);
			for (size_t i = 0; i < n; i++) {
				uint64_t c = below(10);
				if (c == 0) {
					keys[i].kind = CMP__NULL;
				} else if (c <= 2) {
					keys[i].kind = numkind ? CMP__FLOAT : CMP__INT;
					int64_t v = (int64_t)below(41) - 20;
					if (below(4) == 0)
						v *= INT64_C(100000000000);
					keys[i].i = below(50) ? v : (below(2) ? INT64_MIN : INT64_MAX);
					keys[i].d = below(9) ? (double)v / 4 : (below(2) ? -0.0 : 1e300);
				} else if (i && below(4) == 0) {
					/* a duplicate of an earlier key */
					size_t j = below(i);
					keys[i] = keys[j];
					if (keys[j].kind == CMP__TEXT) {
						keys[i].s = malloc(keys[j].n ? keys[j].n : 1);
						memcpy(keys[i].s, keys[j].s, keys[j].n);
					}
				} else {
					const char *st = stems[below(sizeof stems / sizeof stems[0])];
					gen_text(&keys[i], (const uint8_t *)st, strlen(st));
				}
			}
			char what[64];
			snprintf(what, sizeof what, "random %zu rows, %s", n,
			         numkind ? "floats" : "integers");
			CHECK(check_sort(what, keys, n), "%s: the sort refused", what);
			free_keys(keys, n);
		}
}

/* Keys each a prefix of the next ("a", "aa", ..., 3000 bytes) in reverse
 * file order, and the same with a NUL tail: the sort walks them 8 bytes at
 * a time without recursing once per level. */
static void test_prefix_chain(void)
{
	size_t n = 3000;
	struct key *keys = calloc(n, sizeof *keys);
	for (size_t i = 0; i < n; i++) {
		size_t len = n - i;
		keys[i].kind = CMP__TEXT;
		keys[i].n = len;
		keys[i].s = malloc(len);
		memset(keys[i].s, 'a', len);
		if (i % 3 == 0)
			keys[i].s[len - 1] = 0;
	}
	CHECK(check_sort("prefix chain", keys, n));
	free_keys(keys, n);
}

/* Emails as the benchmark writes them (userN@example.com in N order, so
 * not in string order), and every key equal. */
static void test_emails_and_equal(void)
{
	size_t n = 20000;
	struct key *keys = calloc(n, sizeof *keys);
	for (size_t i = 0; i < n; i++) {
		char b[64];
		int len = snprintf(b, sizeof b, "user%zu@example.com", i * 7919 % n);
		keys[i].kind = CMP__TEXT;
		keys[i].n = (size_t)len;
		keys[i].s = malloc((size_t)len);
		memcpy(keys[i].s, b, (size_t)len);
	}
	CHECK(check_sort("emails", keys, n));
	for (size_t i = 0; i < n; i++)
		memcpy(keys[i].s, "same", 4), keys[i].n = 4;
	CHECK(check_sort("all equal", keys, n));
	free_keys(keys, n);
}

/* A key column holding integers and floats: refused (the caller falls back
 * to SQLite's ORDER BY); and the negative control: a wrong reference must
 * be caught by check_sort's comparison. */
static void test_refusal_and_control(void)
{
	struct key keys[2] = {{.kind = CMP__INT, .i = 1}, {.kind = CMP__FLOAT, .d = 0.5}};
	CHECK(!check_sort("mixed numbers", keys, 2));

	cmp__rows *r = cmp__rows_new(1, 0);
	dcr_err err;
	cmp__value v[2] = {{.kind = CMP__TEXT, .s = "b", .n = 1}, {.kind = CMP__TEXT, .s = "a", .n = 1}};
	CHECK_OK(cmp__rows_add(r, &v[0], 1, &err), &err);
	CHECK_OK(cmp__rows_add(r, &v[1], 1, &err), &err);
	CHECK(cmp__rows_sort(r));
	/* "a" (row 1) first: the file order is not kept */
	CHECK(cmp__rows_at(r, 0) == 1 && cmp__rows_at(r, 1) == 0);
	cmp__rows_free(r);
}

int main(void)
{
	test_random();
	test_prefix_chain();
	test_emails_and_equal();
	test_refusal_and_control();
	return t_failures ? 1 : 0;
}
