/* cmp_btree.c: a prepared table's b-trees written directly in SQLite's file
 * format, instead of one sqlite3_step per row and a CREATE INDEX.
 *
 * cmp_prepare_image builds the schema with SQLite itself (CREATE TABLE and,
 * with a join key, CREATE INDEX on the empty table) and hands over that
 * database image (the schema page and the empty root pages). This file
 * appends the table's pages, and the index's, from the rows held in memory
 * (cmp_rows.c, in the order they would have been inserted: rowid i + 1 is
 * row i), and writes each tree's top page into its root page. Bottom-up
 * bulk load: every level keeps one page being filled; a full page is
 * appended to the image and a divider cell goes up one level (a table
 * tree's divider is the largest rowid of the page's subtree; an index
 * tree's is the last entry of the page, taken out of it, so that every
 * entry is stored once and no page is left empty).
 *
 * Records are encoded as SQLite's OP_MakeRecord encodes them under the
 * columns' affinities: integers in the smallest serial type (0 and 1 as
 * types 8 and 9, schema format 4), text as is, and a REAL column's floats
 * that hold an integer value as that integer (SQLite's own space saving;
 * it reads them back as REAL, and -0.0 comes back as 0.0, exactly as from
 * a table SQLite filled). The database is row for row and entry for entry
 * the one the SQL path builds, so every query gives the same result; only
 * the fill of the pages differs. test_cmp_sql compares the two paths on
 * every value class and runs PRAGMA integrity_check on the result.
 *
 * What this writer does not do, it refuses before writing anything
 * (CMP__BTREE_FALLBACK, and the caller takes the SQL path): a record that
 * would need overflow pages, a NaN (SQLite stores NULL), a value whose kind
 * is not its column's, an auto-vacuum database or reserved page bytes. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <sqlite3.h>

#include "compute_int.h"

#define LEVELS_MAX 16 /* b-tree depth: fan-out >= 4 per level */
#define PAGE_MAX 8192 /* larger pages: the SQL path (cell buffers on the stack) */

struct level {
	uint8_t *pg;
	unsigned ncell, top;
	unsigned last_off, last_len;
};

struct tree {
	bool index;
	unsigned root, nlv;
	struct level lv[LEVELS_MAX];
	int64_t leaf_last_rowid;
};

struct out {
	unsigned U; /* page size */
	uint8_t *p; /* sqlite3_malloc'd image */
	size_t npages, cap;
	bool oom;
};

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* SQLite's varint: big-endian groups of 7 bits, a 9th byte of 8. */
static unsigned put_varint(uint8_t *p, uint64_t v)
{
	uint8_t b[10];
	unsigned n = 0;
	if (v <= 0x7f) {
		p[0] = (uint8_t)v;
		return 1;
	}
	if (v & (0xff000000ull << 32)) {
		p[8] = (uint8_t)v;
		v >>= 8;
		for (int i = 7; i >= 0; i--) {
			p[i] = (uint8_t)((v & 0x7f) | 0x80);
			v >>= 7;
		}
		return 9;
	}
	do {
		b[n++] = (uint8_t)((v & 0x7f) | 0x80);
		v >>= 7;
	} while (v);
	b[0] &= 0x7f;
	for (unsigned i = 0; i < n; i++)
		p[i] = b[n - 1 - i];
	return n;
}

static unsigned varint_len(uint64_t v)
{
	uint8_t b[10];
	return put_varint(b, v);
}

/* ---- records ---------------------------------------------------------------- */

/* One value as OP_MakeRecord stores it: serial type, then len bytes of
 * body (the integer, big-endian, in i; or the double's bits; or text). */
struct enc {
	uint64_t st;
	unsigned len;
	int64_t i;
	const char *s;
	bool real; /* i holds a double's bits */
};

static unsigned int_serial(int64_t i, unsigned *len)
{
	uint64_t u;
	if (i == 0 || i == 1) {
		*len = 0;
		return 8 + (unsigned)i;
	}
	u = i < 0 ? ~(uint64_t)i : (uint64_t)i;
	if (u <= 127)
		return *len = 1, 1;
	if (u <= 32767)
		return *len = 2, 2;
	if (u <= 8388607)
		return *len = 3, 3;
	if (u <= 2147483647)
		return *len = 4, 4;
	if (u <= 0x7fffffffffffull)
		return *len = 6, 5;
	return *len = 8, 6;
}

/* false: not a value this writer stores as SQLite would (fall back). */
static bool encode(const cmp__value *v, enum cmp_type t, struct enc *e)
{
	unsigned len = 0;
	memset(e, 0, sizeof *e);
	switch (v->kind) {
	case CMP__NULL:
		e->st = 0;
		return true;
	case CMP__TEXT:
		if (t != CMP_STRING)
			return false;
		e->st = 13 + 2 * (uint64_t)v->n;
		e->len = (unsigned)v->n;
		e->s = v->s;
		return v->n <= UINT32_MAX / 4;
	case CMP__INT:
		if (t == CMP_STRING)
			return false;
		e->i = v->i;
		e->st = int_serial(v->i, &len);
		e->len = len;
		return true;
	case CMP__FLOAT: {
		double d = v->d;
		if (t != CMP_FLOAT || isnan(d))
			return false;
		/* REAL affinity: an integral value in range is stored as that
		 * integer (sqlite3VdbeIntegerAffinity, then MEM_IntReal). */
		if (d > -9223372036854775808.0 && d < 9223372036854775808.0) {
			int64_t ix = (int64_t)d;
			if ((double)ix == d && ix > INT64_MIN && ix < INT64_MAX) {
				e->i = ix;
				e->st = int_serial(ix, &len);
				e->len = len;
				return true;
			}
		}
		memcpy(&e->i, &d, 8);
		e->real = true;
		e->st = 7;
		e->len = 8;
		return true;
	}
	}
	return false;
}

static uint8_t *put_body(uint8_t *p, const struct enc *e)
{
	if (e->s) {
		memcpy(p, e->s, e->len);
		return p + e->len;
	}
	for (unsigned k = 0; k < e->len; k++)
		p[k] = (uint8_t)((uint64_t)e->i >> (8 * (e->len - 1 - k)));
	return p + e->len;
}

/* Header size (it counts its own varint) of a record with these types. */
static uint64_t header_len(const struct enc *e, size_t n)
{
	uint64_t h = 0;
	unsigned nv;
	for (size_t k = 0; k < n; k++)
		h += varint_len(e[k].st);
	/* as OP_MakeRecord sizes it */
	if (h <= 126)
		return h + 1;
	nv = varint_len(h);
	h += nv;
	if (nv < varint_len(h))
		h++;
	return h;
}

static uint64_t record_len(const struct enc *e, size_t n)
{
	uint64_t len = header_len(e, n);
	for (size_t k = 0; k < n; k++)
		len += e[k].len;
	return len;
}

static void put_record(uint8_t *p, const struct enc *e, size_t n)
{
	uint64_t h = header_len(e, n);
	p += put_varint(p, h);
	for (size_t k = 0; k < n; k++)
		p += put_varint(p, e[k].st);
	for (size_t k = 0; k < n; k++)
		p = put_body(p, &e[k]);
}

/* ---- pages ------------------------------------------------------------------- */

static void page_init(struct out *o, struct level *l)
{
	memset(l->pg, 0, o->U);
	l->ncell = 0;
	l->top = o->U;
	l->last_off = l->last_len = 0;
}

static unsigned hdr_len(unsigned lv)
{
	return lv ? 12 : 8;
}

static bool fits(const struct level *l, unsigned hdr, size_t len)
{
	return hdr + 2 * (l->ncell + 1) + len <= l->top;
}

static void add_cell(struct level *l, unsigned hdr, const uint8_t *cell, size_t len)
{
	DCR_ASSERT(fits(l, hdr, len));
	l->top -= (unsigned)len;
	memcpy(l->pg + l->top, cell, len);
	put16(l->pg + hdr + 2 * l->ncell, l->top);
	l->ncell++;
	l->last_off = l->top;
	l->last_len = (unsigned)len;
}

/* Takes the last cell out (copied to cell first by the caller). */
static void remove_last(struct level *l, unsigned hdr)
{
	DCR_ASSERT(l->ncell >= 2 && l->last_len && l->last_off == l->top);
	l->ncell--;
	memset(l->pg + l->last_off, 0, l->last_len);
	memset(l->pg + hdr + 2 * l->ncell, 0, 2);
	l->top += l->last_len;
	l->last_len = 0;
}

static void finish_page(struct out *o, const struct tree *t, struct level *l, unsigned lv,
                        uint32_t right)
{
	uint8_t leaf = t->index ? 0x0a : 0x0d, interior = t->index ? 0x02 : 0x05;
	l->pg[0] = lv ? interior : leaf;
	put16(l->pg + 1, 0);
	put16(l->pg + 3, l->ncell);
	put16(l->pg + 5, l->top == 65536 ? 0 : l->top);
	l->pg[7] = 0;
	if (lv)
		put32(l->pg + 8, right);
	(void)o;
}

/* Appends a page to the image; its number (1-based). */
static uint32_t append_page(struct out *o, const uint8_t *pg)
{
	if (o->npages == o->cap) {
		size_t cap = o->cap * 2;
		uint8_t *p = sqlite3_realloc64(o->p, (sqlite3_uint64)cap * o->U);
		if (!p) {
			o->oom = true;
			return 0;
		}
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->npages * o->U, pg, o->U);
	return (uint32_t)++o->npages;
}

static void push(struct out *o, struct tree *t, unsigned lv, uint32_t child, const uint8_t *body,
                 size_t blen);

/* A full page at level lv goes to the image; a divider goes up. */
static void spill(struct out *o, struct tree *t, unsigned lv)
{
	struct level *l = &t->lv[lv];
	uint8_t up[PAGE_MAX + 32];
	size_t uplen;
	uint32_t right = 0, pg;
	if (lv == 0 && !t->index) {
		/* table leaf: the divider is the page's largest rowid */
		uplen = put_varint(up, (uint64_t)t->leaf_last_rowid);
	} else {
		/* the last cell leaves the page: an index entry goes up whole;
		 * an interior cell's child becomes the right pointer */
		unsigned skip = lv ? 4 : 0;
		DCR_ASSERT(l->last_len - skip <= sizeof up);
		if (lv)
			right = (uint32_t)l->pg[l->last_off] << 24 | (uint32_t)l->pg[l->last_off + 1] << 16 |
			        (uint32_t)l->pg[l->last_off + 2] << 8 | l->pg[l->last_off + 3];
		uplen = l->last_len - skip;
		memcpy(up, l->pg + l->last_off + skip, uplen);
		remove_last(l, hdr_len(lv));
	}
	finish_page(o, t, l, lv, right);
	pg = append_page(o, l->pg);
	page_init(o, l);
	if (!o->oom)
		push(o, t, lv + 1, pg, up, uplen);
}

/* A child page and its divider into level lv (interior). */
static void push(struct out *o, struct tree *t, unsigned lv, uint32_t child, const uint8_t *body,
                 size_t blen)
{
	uint8_t cell[PAGE_MAX + 32];
	struct level *l;
	DCR_ASSERT(lv < LEVELS_MAX && blen + 4 <= sizeof cell);
	if (lv == t->nlv) {
		t->lv[lv].pg = sqlite3_malloc64(o->U);
		if (!t->lv[lv].pg) {
			o->oom = true;
			return;
		}
		page_init(o, &t->lv[lv]);
		t->nlv++;
	}
	l = &t->lv[lv];
	put32(cell, child);
	memcpy(cell + 4, body, blen);
	if (!fits(l, 12, blen + 4)) {
		spill(o, t, lv);
		if (o->oom)
			return;
	}
	add_cell(l, 12, cell, blen + 4);
}

/* The tree's last pages: each level's page goes to the image and becomes
 * the right pointer of the level above; the top one into the root page. */
static void finish_tree(struct out *o, struct tree *t)
{
	uint32_t child = 0;
	for (unsigned lv = 0; lv < t->nlv && !o->oom; lv++) {
		struct level *l = &t->lv[lv];
		finish_page(o, t, l, lv, child);
		if (lv + 1 == t->nlv)
			memcpy(o->p + (size_t)(t->root - 1) * o->U, l->pg, o->U);
		else
			child = append_page(o, l->pg);
	}
}

static void tree_free(struct tree *t)
{
	for (unsigned lv = 0; lv < LEVELS_MAX; lv++)
		sqlite3_free(t->lv[lv].pg);
}

int cmp__btree_write(const unsigned char *empty, size_t empty_n, unsigned table_root,
                     unsigned index_root, const cmp__rows *rows, const cmp_schema *schema,
                     size_t key, void **image, size_t *image_n)
{
	struct out o = {0};
	struct tree tt = {0}, ti = {0};
	size_t ncols = schema->ncols, n = cmp__rows_count(rows);
	cmp__value *v = NULL;
	struct enc *e = NULL;
	uint8_t *cell = NULL;
	unsigned U, X_table, X_index;
	int rc = CMP__BTREE_FALLBACK;

	*image = NULL;
	*image_n = 0;
	if (empty_n < 100 || memcmp(empty, "SQLite format 3", 16) != 0)
		return CMP__BTREE_FALLBACK;
	U = (unsigned)empty[16] << 8 | empty[17];
	if (U == 1)
		U = 65536;
	/* reserved bytes, auto-vacuum, a freelist: not this writer's */
	if (U < 512 || U > PAGE_MAX || empty_n % U || empty[20] != 0 || empty[52] || empty[53] || empty[54] ||
	    empty[55] || empty[36] || empty[37] || empty[38] || empty[39] || table_root < 2 ||
	    table_root > empty_n / U || (index_root && (index_root < 2 || index_root > empty_n / U)) ||
	    table_root == index_root || (uint64_t)n >= (1ull << 62))
		return CMP__BTREE_FALLBACK;
	X_table = U - 35;
	X_index = ((U - 12) * 64 / 255) - 23;
	o.U = U;
	o.npages = empty_n / U;
	o.cap = o.npages < 64 ? 64 : o.npages;
	o.p = sqlite3_malloc64((sqlite3_uint64)o.cap * U);
	v = dcr_calloc(ncols + 1, sizeof *v);
	e = dcr_calloc(ncols + 2, sizeof *e);
	cell = dcr_malloc(U + 64);
	tt.root = table_root;
	ti.root = index_root;
	ti.index = true;
	tt.lv[0].pg = sqlite3_malloc64(U);
	ti.lv[0].pg = sqlite3_malloc64(U);
	if (!o.p || !tt.lv[0].pg || !ti.lv[0].pg) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(o.p, empty, empty_n);
	tt.nlv = ti.nlv = 1;
	page_init(&o, &tt.lv[0]);
	page_init(&o, &ti.lv[0]);
	for (size_t i = 0; i < n && !o.oom; i++) {
		int64_t rowid = (int64_t)i + 1;
		uint64_t len;
		size_t c;
		cmp__rows_get(rows, i, v);
		for (c = 0; c < ncols; c++)
			if (!encode(&v[c], schema->cols[c].type, &e[c]))
				goto out; /* fall back */
		len = record_len(e, ncols);
		if (len > X_table)
			goto out;
		{
			size_t m = put_varint(cell, len);
			m += put_varint(cell + m, (uint64_t)rowid);
			put_record(cell + m, e, ncols);
			m += len;
			if (!fits(&tt.lv[0], 8, m))
				spill(&o, &tt, 0);
			if (o.oom)
				break;
			add_cell(&tt.lv[0], 8, cell, m);
			tt.leaf_last_rowid = rowid;
		}
		if (!index_root)
			continue;
		/* the index entry: (key, rowid) */
		{
			struct enc ie[2];
			ie[0] = e[key];
			memset(&ie[1], 0, sizeof ie[1]);
			unsigned l2;
			ie[1].i = rowid;
			ie[1].st = int_serial(rowid, &l2);
			ie[1].len = l2;
			len = record_len(ie, 2);
			if (len > X_index)
				goto out;
			size_t m = put_varint(cell, len);
			put_record(cell + m, ie, 2);
			m += len;
			if (!fits(&ti.lv[0], 8, m))
				spill(&o, &ti, 0);
			if (o.oom)
				break;
			add_cell(&ti.lv[0], 8, cell, m);
		}
	}
	if (!o.oom) {
		finish_tree(&o, &tt);
		if (index_root)
			finish_tree(&o, &ti);
	}
	if (o.oom) {
		rc = -ENOMEM;
		goto out;
	}
	/* the header's page count (valid: change counter == version-valid-for,
	 * both as SQLite left them) */
	put32(o.p + 28, (uint32_t)o.npages);
	*image = o.p;
	*image_n = o.npages * U;
	o.p = NULL;
	rc = 0;
out:
	if (o.p) {
		dcr_wipe(o.p, o.npages * U);
		sqlite3_free(o.p);
	}
	for (unsigned lv = 0; lv < LEVELS_MAX; lv++) {
		if (tt.lv[lv].pg)
			dcr_wipe(tt.lv[lv].pg, o.U);
		if (ti.lv[lv].pg)
			dcr_wipe(ti.lv[lv].pg, o.U);
	}
	tree_free(&tt);
	tree_free(&ti);
	if (cell)
		dcr_wipe(cell, o.U + 64);
	free(cell);
	free(v);
	free(e);
	return rc;
}
