/* cmp_rows.c: the rows of a prepared table held in memory and sorted by
 * its first indexed column, so that they go into the table once, in key
 * order (written directly by cmp_btree.c, or inserted through SQLite),
 * instead of loading a staging table and copying it with ORDER BY
 * (docs/compute.md, "Prepared tables").
 *
 * Each row is appended to one arena as it is validated: per column a kind
 * byte, then an integer as a zigzag LEB128 varint, a float's 8 bytes, or a
 * text's length as a LEB128 varint and its bytes. The varints keep the
 * arena near the CSV's own size (a 20-byte email costs 22 bytes, not 29):
 * at 10M rows the arena is most of what a build holds (docs/benchmarks.md,
 * issue 16). The sort is that of SQLite's ORDER BY on the key column: NULL
 * first, then numbers by value, then text by the BINARY collation (memcmp
 * over the shorter length, then the shorter first); rows with equal keys
 * keep their file order (SQLite's sorter is stable, so the table is row for
 * row the one the staging path built; test_cmp_sql compares them). After
 * the sort only the order is kept (4 bytes a row). A key column holding
 * both integers and floats (it cannot, given the typed columns, but the
 * comparison would need SQLite's mixed rules) makes cmp__rows_sort refuse;
 * the caller then falls back.
 *
 * The rows are filled by the build's own validation of the CSV, or, held
 * since the upload, by the upload's (cmp_ingest_keep_rows): on two threads
 * each thread fills its own rows and the second part is appended to the
 * first (cmp__rows_append), so the order is the file's either way. */
#include <stdlib.h>
#include <string.h>

#include "compute_int.h"

struct cmp__rows {
	size_t ncols, key;
	dcr_buf arena;
	size_t used;    /* the most of arena ever filled (wiped at free) */
	uint64_t *off; /* row -> offset of its first value in arena */
	size_t n, cap;
	struct ent *ents;   /* while sorting */
	uint32_t *perm;     /* after sorting: rows in key order */
};

/* What the sort moves: 16 bytes per row. pre orders numbers completely
 * (an order-preserving encoding of the integer or the double) and text by
 * 8 of its bytes at a time (sort_text, the key itself read from the row). */
struct ent {
	uint64_t pre;
	uint32_t row;
	uint8_t cls; /* 0 NULL, 1 number, 2 text */
	uint8_t sec; /* text: where the key ends within pre (sort_text) */
};

cmp__rows *cmp__rows_new(size_t ncols, size_t key)
{
	cmp__rows *r = dcr_calloc(1, sizeof(*r));
	r->ncols = ncols;
	r->key = key;
	dcr_buf_init(&r->arena);
	return r;
}

void cmp__rows_free(cmp__rows *r)
{
	if (!r)
		return;
	/* Rows of private data: wiped before the memory is reused. */
	if (r->arena.data)
		dcr_wipe(r->arena.data, r->arena.len > r->used ? r->arena.len : r->used);
	dcr_buf_release(&r->arena);
	free(r->off);
	free(r->ents);
	free(r->perm);
	free(r);
}

/* LEB128 of x at p; returns the byte after it. */
static inline uint8_t *put_leb(uint8_t *p, uint64_t x)
{
	while (x > 0x7f) {
		*p++ = (uint8_t)(x | 0x80);
		x >>= 7;
	}
	*p++ = (uint8_t)x;
	return p;
}

/* One reservation per row (at most 11 bytes per value besides text), then
 * plain stores: this runs for every row an upload validates
 * (cmp_ingest_keep_rows), on the upload's own critical path. The arena is
 * ordinary pages: huge pages (MADV_HUGEPAGE) were asked for until a
 * measure on a virtual machine whose host takes back the guest's free 2
 * MiB blocks showed a fresh huge page costing 2.2-5.7 s per GB against
 * 0.5-3.4 s for small pages, and 10M-row builds 1-1.6 s slower with them
 * (docs/benchmarks.md, issue 16, fifth pass). */
int cmp__rows_add(void *ctx, const cmp__value *v, size_t n, dcr_err *err)
{
	cmp__rows *r = ctx;
	size_t max = 11 * n;
	uint8_t *p;
	(void)err;
	DCR_ASSERT(n == r->ncols);
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 65536;
		r->off = dcr_realloc(r->off, r->cap * sizeof(*r->off));
	}
	for (size_t c = 0; c < n; c++)
		if (v[c].kind == CMP__TEXT)
			max += v[c].n;
	dcr_buf_reserve(&r->arena, max);
	r->off[r->n++] = r->arena.len;
	p = r->arena.data + r->arena.len;
	for (size_t c = 0; c < n; c++) {
		*p++ = (uint8_t)v[c].kind;
		switch (v[c].kind) {
		case CMP__INT:
			/* zigzag, then LEB128: small integers take a byte or two */
			p = put_leb(p, ((uint64_t)v[c].i << 1) ^ (uint64_t)(v[c].i >> 63));
			break;
		case CMP__FLOAT:
			memcpy(p, &v[c].d, 8);
			p += 8;
			break;
		case CMP__TEXT:
			p = put_leb(p, v[c].n);
			memcpy(p, v[c].s, v[c].n);
			p += v[c].n;
			break;
		default:
			break;
		}
	}
	r->arena.len = (size_t)(p - r->arena.data);
	return 0;
}

size_t cmp__rows_count(const cmp__rows *r)
{
	return r->n;
}

size_t cmp__rows_ncols(const cmp__rows *r)
{
	return r->ncols;
}

void cmp__rows_reserve(cmp__rows *r, size_t bytes)
{
	dcr_buf_reserve(&r->arena, bytes);
}

void cmp__rows_set_key(cmp__rows *r, size_t key)
{
	DCR_ASSERT(key < r->ncols && !r->perm);
	r->key = key;
}

size_t cmp__rows_bytes(const cmp__rows *r)
{
	return r->arena.cap + r->cap * sizeof(*r->off);
}

void cmp__rows_reset(cmp__rows *r)
{
	DCR_ASSERT(!r->perm);
	/* not wiped now (the next rows overwrite them; the two-thread
	 * validation resets its worker's rows after every piece): at free */
	if (r->arena.len > r->used)
		r->used = r->arena.len;
	r->arena.len = 0;
	r->n = 0;
}

void cmp__rows_append(cmp__rows *dst, cmp__rows *src)
{
	uint64_t base = dst->arena.len;
	DCR_ASSERT(dst->ncols == src->ncols && !dst->perm && !src->perm);
	if (dst->n + src->n > dst->cap) {
		dst->cap = dst->n + src->n > 2 * dst->cap ? dst->n + src->n : 2 * dst->cap;
		dst->off = dcr_realloc(dst->off, dst->cap * sizeof(*dst->off));
	}
	for (size_t i = 0; i < src->n; i++)
		dst->off[dst->n + i] = base + src->off[i];
	dst->n += src->n;
	dcr_buf_append(&dst->arena, src->arena.data, src->arena.len);
	cmp__rows_reset(src);
}

/* The LEB128 varint at *pp (put_leb's); moves *pp past it. */
static inline uint64_t get_leb(const uint8_t **pp)
{
	const uint8_t *p = *pp;
	uint64_t x = 0;
	unsigned shift = 0;
	uint8_t b;
	do {
		b = *p++;
		x |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
	} while (b & 0x80);
	*pp = p;
	return x;
}

/* Decodes the value at *pp into v and moves *pp past it (text points into
 * the arena). */
static inline void decode_one(const uint8_t **pp, cmp__value *v)
{
	const uint8_t *p = *pp;
	v->kind = *p++;
	switch (v->kind) {
	case CMP__INT: {
		uint64_t z = get_leb(&p);
		v->i = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
		break;
	}
	case CMP__FLOAT:
		memcpy(&v->d, p, 8);
		p += 8;
		break;
	case CMP__TEXT:
		v->n = (size_t)get_leb(&p);
		v->s = (const char *)p;
		p += v->n;
		break;
	default:
		break;
	}
	*pp = p;
}

/* Decodes row (its arena index) into v (ncols values). */
static void decode(const cmp__rows *r, uint64_t row, cmp__value *v)
{
	const uint8_t *p = r->arena.data + r->off[row];
	for (size_t c = 0; c < r->ncols; c++)
		decode_one(&p, &v[c]);
}

/* The key column of row alone (the columns before it skipped). */
static void decode_key(const cmp__rows *r, uint64_t row, cmp__value *k)
{
	const uint8_t *p = r->arena.data + r->off[row];
	*k = (cmp__value){0};
	for (size_t c = 0; c <= r->key; c++)
		decode_one(&p, k);
}

/* The text key of row: its bytes, and *n its length. Read from the row
 * each time (the sort's arrays stay at 32 bytes a row: no pointer and
 * length per row, 160 MB less at 10M rows). */
static inline const uint8_t *key_text(const cmp__rows *r, uint32_t row, size_t *n)
{
	cmp__value k;
	decode_key(r, row, &k);
	*n = k.n;
	return (const uint8_t *)k.s;
}

/* Stable LSD radix sort of e[0..n) by (pre, sec), a byte at a time, tmp
 * holding n entries: rows with equal (pre, sec) keep the order they came
 * in. A byte that is the same in every entry costs no pass (counted for
 * all nine bytes in one pass first). */
static void radix_sort(struct ent *e, struct ent *tmp, size_t n)
{
	size_t cnt[9][256];
	struct ent *src = e, *dst = tmp;

	memset(cnt, 0, sizeof cnt);
	for (size_t i = 0; i < n; i++) {
		cnt[0][e[i].sec & 0xff]++;
		for (unsigned b = 0; b < 8; b++)
			cnt[1 + b][(e[i].pre >> (8 * b)) & 0xff]++;
	}
	for (unsigned d = 0; d < 9; d++) {
		size_t *c = cnt[d], sum = 0;
		unsigned shift = d ? 8 * (d - 1) : 0;
#define DIGIT(x) (d ? (unsigned)(((x).pre >> shift) & 0xff) : (unsigned)((x).sec & 0xff))
		if (c[DIGIT(src[0])] == n)
			continue;
		for (unsigned v = 0; v < 256; v++) {
			size_t k = c[v];
			c[v] = sum;
			sum += k;
		}
		for (size_t i = 0; i < n; i++)
			dst[c[DIGIT(src[i])]++] = src[i];
#undef DIGIT
		struct ent *t = src;
		src = dst;
		dst = t;
	}
	if (src != e)
		memcpy(e, src, n * sizeof *e);
}

static int ent_cmp(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;
	if (x->pre != y->pre)
		return x->pre < y->pre ? -1 : 1;
	if (x->sec != y->sec)
		return x->sec < y->sec ? -1 : 1;
	return x->row < y->row ? -1 : x->row > y->row;
}

/* Sorts e[0..n) by (pre, sec), equal entries in the order they came in
 * (which is row order: every caller passes them so). */
static void sort_ents(struct ent *e, struct ent *tmp, size_t n)
{
	if (n < 256)
		qsort(e, n, sizeof *e, ent_cmp); /* total order: row breaks ties */
	else
		radix_sort(e, tmp, n);
}

/* A group of text keys equal in their first depth bytes, still to sort. */
struct group {
	size_t lo, n, depth;
};

/* Sorts the text keys e[0..n) (in row order) by the BINARY collation:
 * bytes, then the shorter first; equal keys in row order. An MSD sort 8
 * bytes at a time: a group's common prefix is skipped, its entries sorted
 * by their next 8 bytes (pre, zero-padded) and by sec (a key ending within
 * those 8 bytes sorts by its length, before the keys that go on: it is
 * their prefix); each run of equal pre whose keys go on is a group again.
 * An explicit stack, not recursion: a long run of keys each a prefix of
 * the next must not deepen the thread's stack. */
static void sort_text(const cmp__rows *r, struct ent *e, struct ent *tmp, size_t n)
{
	struct group *st = NULL;
	size_t nst = 0, cap = 0;

	if (n < 2)
		return;
	cap = 64;
	st = dcr_malloc(cap * sizeof *st);
	st[nst++] = (struct group){0, n, 0};
	while (nst) {
		struct group g = st[--nst];
		struct ent *ge = e + g.lo;
		size_t l, d;
		const uint8_t *k0 = key_text(r, ge[0].row, &l) + g.depth;
		l -= g.depth;

		/* the group's common prefix beyond depth */
		for (size_t i = 1; i < g.n && l; i++) {
			size_t m, j = 0;
			const uint8_t *k = key_text(r, ge[i].row, &m) + g.depth;
			m -= g.depth;
			if (m < l)
				l = m;
			while (j < l && k[j] == k0[j])
				j++;
			l = j;
		}
		d = g.depth + l;
		for (size_t i = 0; i < g.n; i++) {
			size_t rem;
			const uint8_t *k = key_text(r, ge[i].row, &rem) + d;
			rem -= d;
			uint64_t pre = 0;
			if (rem >= 8) {
				memcpy(&pre, k, 8);
				pre = __builtin_bswap64(pre);
			} else {
				for (size_t j = 0; j < 8; j++)
					pre = pre << 8 | (j < rem ? k[j] : 0);
			}
			ge[i].pre = pre;
			ge[i].sec = (uint8_t)(rem <= 8 ? rem : 9);
		}
		sort_ents(ge, tmp, g.n);
		for (size_t i = 0; i < g.n;) {
			size_t j = i + 1;
			while (j < g.n && ge[j].pre == ge[i].pre && ge[j].sec == ge[i].sec)
				j++;
			if (ge[i].sec == 9 && j - i > 1) {
				if (nst == cap) {
					cap *= 2;
					st = dcr_realloc(st, cap * sizeof *st);
				}
				st[nst++] = (struct group){g.lo + i, j - i, d + 8};
			}
			i = j;
		}
	}
	free(st);
}

bool cmp__rows_sort(cmp__rows *r)
{
	size_t nclass[3] = {0}, at[3];
	bool saw_int = false, saw_float = false;
	struct ent *tmp;
	if (r->n >= UINT32_MAX)
		return false;
	r->ents = dcr_calloc(r->n ? r->n : 1, sizeof(*r->ents));
	tmp = dcr_calloc(r->n ? r->n : 1, sizeof(*tmp));
	/* Each row's key, in file order, into tmp; then by class (NULL,
	 * numbers, text: SQLite's order of storage classes), stably, into
	 * ents. */
	for (uint64_t i = 0; i < r->n; i++) {
		struct ent *e = &tmp[i];
		cmp__value k;
		decode_key(r, i, &k);
		e->row = (uint32_t)i;
		e->sec = 0;
		e->pre = 0;
		switch (k.kind) {
		case CMP__INT:
			e->cls = 1;
			e->pre = (uint64_t)k.i ^ (1ull << 63);
			saw_int = true;
			break;
		case CMP__FLOAT: {
			/* -0 and 0 compare equal in SQLite */
			double dv = k.d == 0 ? 0.0 : k.d;
			uint64_t bits;
			memcpy(&bits, &dv, 8);
			e->cls = 1;
			e->pre = bits >> 63 ? ~bits : bits | (1ull << 63);
			saw_float = true;
			break;
		}
		case CMP__TEXT:
			e->cls = 2;
			break;
		default:
			e->cls = 0;
			break;
		}
		nclass[e->cls]++;
	}
	if (saw_int && saw_float) {
		/* SQLite's mixed integer/real comparison is not this one: not
		 * sorted here (the caller falls back to ORDER BY) */
		free(tmp);
		free(r->ents);
		r->ents = NULL;
		return false;
	}
	at[0] = 0;
	at[1] = nclass[0];
	at[2] = nclass[0] + nclass[1];
	for (size_t i = 0; i < r->n; i++)
		r->ents[at[tmp[i].cls]++] = tmp[i];
	/* NULLs stay in file order; numbers by value (pre orders them
	 * completely); text by bytes. */
	sort_ents(r->ents + nclass[0], tmp, nclass[1]);
	sort_text(r, r->ents + nclass[0] + nclass[1], tmp, nclass[2]);
	free(tmp);
	/* Only the order is kept: 4 bytes a row instead of 16 (the entries'
	 * array is reused in place, then shrunk: at 10M rows 120 MB less
	 * while the table is written). */
	for (size_t i = 0; i < r->n; i++) {
		uint32_t row = r->ents[i].row; /* entry i is read before byte 4i is written */
		memcpy((char *)r->ents + 4 * i, &row, 4);
	}
	r->perm = dcr_realloc(r->ents, (r->n ? r->n : 1) * sizeof *r->perm);
	r->ents = NULL;
	return true;
}

size_t cmp__rows_at(const cmp__rows *r, size_t i)
{
	return r->perm ? r->perm[i] : i;
}

void cmp__rows_prefetch(const cmp__rows *r, size_t i)
{
	/* two steps ahead: row i + 16's offset, then row i + 8's bytes (the
	 * offset read by now); a row of up to 128 bytes is two lines */
	if (!r->perm)
		return;
	if (i + 16 < r->n)
		__builtin_prefetch(&r->off[r->perm[i + 16]]);
	if (i + 8 < r->n) {
		const uint8_t *p = r->arena.data + r->off[r->perm[i + 8]];
		__builtin_prefetch(p);
		__builtin_prefetch(p + 64);
	}
}

void cmp__rows_get_raw(const cmp__rows *r, size_t row, cmp__value *v)
{
	decode(r, row, v);
}

void cmp__rows_get(const cmp__rows *r, size_t i, cmp__value *v)
{
	decode(r, r->perm ? r->perm[i] : i, v);
}
