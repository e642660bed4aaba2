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
 * the caller then falls back. */
#include <stdlib.h>
#include <string.h>

#include "compute_int.h"

struct cmp__rows {
	size_t ncols, key;
	dcr_buf arena;
	uint64_t *off; /* row -> offset of its first value in arena */
	size_t n, cap;
	bool saw_int, saw_float;
	struct ent *ents;   /* while sorting */
	uint32_t *perm;     /* after sorting: rows in key order */
	const uint8_t **kp; /* text keys: bytes and length, per row */
	size_t *kn;
};

/* What the sort moves: 16 bytes per row. pre orders numbers completely
 * (an order-preserving encoding of the integer or the double) and text by
 * its first 8 bytes; text ties look at the rest of the key (keys[row]). */
struct ent {
	uint64_t pre;
	uint32_t row;
	uint32_t cls; /* 0 NULL, 1 number, 2 text */
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
		dcr_wipe(r->arena.data, r->arena.len);
	dcr_buf_release(&r->arena);
	free(r->off);
	free(r->ents);
	free(r->perm);
	free(r->kp);
	free(r->kn);
	free(r);
}

int cmp__rows_add(void *ctx, const cmp__value *v, size_t n, dcr_err *err)
{
	cmp__rows *r = ctx;
	(void)err;
	DCR_ASSERT(n == r->ncols);
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 65536;
		r->off = dcr_realloc(r->off, r->cap * sizeof(*r->off));
	}
	r->off[r->n++] = r->arena.len;
	for (size_t c = 0; c < n; c++) {
		uint8_t kind = (uint8_t)v[c].kind;
		dcr_buf_append_u8(&r->arena, kind);
		switch (v[c].kind) {
		case CMP__INT: {
			/* zigzag, then LEB128: small integers take a byte or two */
			uint8_t var[10];
			size_t nv = 0;
			uint64_t z = ((uint64_t)v[c].i << 1) ^ (uint64_t)(v[c].i >> 63);
			do {
				var[nv++] = (uint8_t)((z & 0x7f) | (z > 0x7f ? 0x80 : 0));
				z >>= 7;
			} while (z);
			dcr_buf_append(&r->arena, var, nv);
			r->saw_int = r->saw_int || c == r->key;
			break;
		}
		case CMP__FLOAT:
			dcr_buf_append(&r->arena, &v[c].d, 8);
			r->saw_float = r->saw_float || c == r->key;
			break;
		case CMP__TEXT: {
			uint8_t var[10];
			size_t nv = 0;
			uint64_t len = v[c].n;
			do {
				var[nv++] = (uint8_t)((len & 0x7f) | (len > 0x7f ? 0x80 : 0));
				len >>= 7;
			} while (len);
			dcr_buf_append(&r->arena, var, nv);
			dcr_buf_append(&r->arena, v[c].s, v[c].n);
			break;
		}
		default:
			break;
		}
	}
	return 0;
}

size_t cmp__rows_count(const cmp__rows *r)
{
	return r->n;
}

/* Decodes row (its arena index) into v (ncols values; text points into
 * the arena). */
static void decode(const cmp__rows *r, uint64_t row, cmp__value *v)
{
	const uint8_t *p = r->arena.data + r->off[row];
	for (size_t c = 0; c < r->ncols; c++) {
		v[c].kind = *p++;
		switch (v[c].kind) {
		case CMP__INT: {
			uint64_t z = 0;
			unsigned shift = 0;
			uint8_t b;
			do {
				b = *p++;
				z |= (uint64_t)(b & 0x7f) << shift;
				shift += 7;
			} while (b & 0x80);
			v[c].i = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
			break;
		}
		case CMP__FLOAT:
			memcpy(&v[c].d, p, 8);
			p += 8;
			break;
		case CMP__TEXT: {
			uint64_t len = 0;
			unsigned shift = 0;
			uint8_t b;
			do {
				b = *p++;
				len |= (uint64_t)(b & 0x7f) << shift;
				shift += 7;
			} while (b & 0x80);
			v[c].s = (const char *)p;
			v[c].n = (size_t)len;
			p += len;
			break;
		}
		default:
			break;
		}
	}
}

/* qsort has no context argument: the rows being sorted (one sort at a
 * time per thread). */
static __thread const cmp__rows *sorting;

static int ent_cmp(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;
	if (x->cls != y->cls)
		return x->cls < y->cls ? -1 : 1;
	if (x->pre != y->pre)
		return x->pre < y->pre ? -1 : 1;
	if (x->cls == 2) {
		const cmp__rows *r = sorting;
		size_t xn = r->kn[x->row], yn = r->kn[y->row];
		size_t m = xn < yn ? xn : yn;
		int c = m > 8 ? memcmp(r->kp[x->row] + 8, r->kp[y->row] + 8, m - 8) : 0;
		if (c)
			return c;
		if (xn != yn)
			return xn < yn ? -1 : 1;
	}
	/* equal keys: file order (a stable sort) */
	return x->row < y->row ? -1 : x->row > y->row;
}

bool cmp__rows_sort(cmp__rows *r)
{
	cmp__value *v;
	if ((r->saw_int && r->saw_float) || r->n >= UINT32_MAX)
		return false;
	v = dcr_calloc(r->ncols, sizeof(*v));
	r->ents = dcr_calloc(r->n ? r->n : 1, sizeof(*r->ents));
	r->kp = dcr_calloc(r->n ? r->n : 1, sizeof(*r->kp));
	r->kn = dcr_calloc(r->n ? r->n : 1, sizeof(*r->kn));
	for (uint64_t i = 0; i < r->n; i++) {
		struct ent *e = &r->ents[i];
		decode(r, i, v);
		const cmp__value *k = &v[r->key];
		e->row = (uint32_t)i;
		switch (k->kind) {
		case CMP__INT:
			e->cls = 1;
			e->pre = (uint64_t)k->i ^ (1ull << 63);
			break;
		case CMP__FLOAT: {
			/* -0 and 0 compare equal in SQLite */
			double d = k->d == 0 ? 0.0 : k->d;
			uint64_t bits;
			memcpy(&bits, &d, 8);
			e->cls = 1;
			e->pre = bits >> 63 ? ~bits : bits | (1ull << 63);
			break;
		}
		case CMP__TEXT: {
			uint8_t b[8] = {0};
			e->cls = 2;
			r->kp[i] = (const uint8_t *)k->s;
			r->kn[i] = k->n;
			memcpy(b, k->s, k->n < 8 ? k->n : 8);
			for (int j = 0; j < 8; j++)
				e->pre = e->pre << 8 | b[j];
			break;
		}
		default:
			e->cls = 0;
			break;
		}
	}
	free(v);
	sorting = r;
	qsort(r->ents, r->n, sizeof(*r->ents), ent_cmp);
	sorting = NULL;
	free(r->kp);
	free(r->kn);
	r->kp = NULL;
	r->kn = NULL;
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

void cmp__rows_get_raw(const cmp__rows *r, size_t row, cmp__value *v)
{
	decode(r, row, v);
}

void cmp__rows_get(const cmp__rows *r, size_t i, cmp__value *v)
{
	decode(r, r->perm ? r->perm[i] : i, v);
}
