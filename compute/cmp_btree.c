/* cmp_btree.c: a prepared table's b-trees written directly in SQLite's file
 * format, instead of one sqlite3_step per row and a CREATE INDEX.
 *
 * cmp_prepare_image builds the schema with SQLite itself (CREATE TABLE and,
 * with a join key, CREATE INDEX on the empty table) and hands over its
 * database header and sqlite_schema rows. This file writes the table's
 * pages, and the index's, from the rows held in memory (cmp_rows.c, in the
 * order they would have been inserted: rowid i + 1 is row i). Bottom-up
 * bulk load: every level keeps one page being filled; a full page goes to
 * the image and a divider cell goes up one level (a table tree's divider
 * is the largest rowid of the page's subtree; an index tree's is the last
 * entry of the page, taken out of it, so that every entry is stored once
 * and no page is left empty); a tree's top page, written last, is its
 * root. Two passes: the first only lays the pages out (the page count and
 * the root page numbers that page 1 holds); the second writes page 1, then
 * every page in page number order, so the image can stream to the blob
 * store without ever being held whole (issue 16: memory at 10M rows).
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

/* SQLite versions whose record encoding test_cmp_btree_diff compared byte
 * for byte with this writer's (3.40.x, Debian bookworm's). */
#define CMP_BTREE_SQLITE_MIN 3040000
#define CMP_BTREE_SQLITE_MAX 3040999

#define LEVELS_MAX 16   /* b-tree depth: fan-out >= 4 per level */
#define PAGE_MAX   8192 /* larger pages: the SQL path (cell buffers on the stack) */

struct level {
	uint8_t *pg;
	unsigned ncell, top;
	unsigned last_off, last_len;
};

struct tree {
	bool index;
	uint32_t root; /* the page number of its top page, once finished */
	unsigned nlv;
	struct level lv[LEVELS_MAX];
	int64_t leaf_last_rowid;
};

/* Where pages go. The first pass (dry) only counts them: it gives the
 * page count and the root page numbers, which page 1 must hold before any
 * other page is written. The second either keeps them, in page number
 * order, in one buffer (keep), or writes them through write, BATCH_PAGES
 * at a time. */
#define BATCH_PAGES 256
struct out {
	unsigned U; /* page size */
	bool dry;
	uint32_t npages;
	cmp_write_fn write; /* the pages' writer; NULL while they are kept */
	cmp_write_fn poll;  /* the caller's writer, asked with no bytes */
	void *wctx;
	uint8_t *batch; /* without keep */
	size_t nbatch;  /* pages not yet written */
	uint8_t *keep; /* sqlite3_malloc'd: npages * U once done */
	int rc;        /* a write failed, or out of memory */
};

/* Between pieces of work the writer asks whether to go on (write with no
 * bytes): a build is stopped within POLL_ROWS rows when the daemon stops. */
#define POLL_ROWS 65536
static int poll_write(cmp_write_fn write, void *wctx)
{
	return write ? write(wctx, NULL, 0) : 0;
}

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* SQLite's varint: big-endian groups of 7 bits, a 9th byte of 8. */
static inline unsigned put_varint(uint8_t *p, uint64_t v)
{
	uint8_t b[10];
	unsigned n = 0;
	if (v <= 0x7f) {
		p[0] = (uint8_t)v;
		return 1;
	}
	if (v <= 0x3fff) {
		p[0] = (uint8_t)(v >> 7 | 0x80);
		p[1] = (uint8_t)(v & 0x7f);
		return 2;
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

/* put_varint's length, without writing: 7 bits a byte up to 8 bytes (56
 * bits), 9 bytes beyond. */
static inline unsigned varint_len(uint64_t v)
{
	unsigned n = 1;
	if (v & (0xff000000ull << 32))
		return 9;
	while (v > 0x7f) {
		v >>= 7;
		n++;
	}
	return n;
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

static inline unsigned int_serial(int64_t i, unsigned *len)
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
static inline bool encode(const cmp__value *v, enum cmp_type t, struct enc *e)
{
	unsigned len = 0;
	*e = (struct enc){0};
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
		if (t == CMP_FLOAT && e->st == 6) {
			/* REAL affinity makes it a MEM_IntReal, which OP_MakeRecord
			 * stores as the real it is when the integer takes 8 bytes. */
			double d = (double)v->i;
			memcpy(&e->i, &d, 8);
			e->real = true;
			e->st = 7;
		}
		return true;
	case CMP__FLOAT: {
		double d = v->d;
		if (t != CMP_FLOAT || isnan(d))
			return false;
		/* REAL affinity: an integral value in range is stored as that
		 * integer (sqlite3VdbeIntegerAffinity, then MEM_IntReal). */
		if (d > -9223372036854775808.0 && d < 9223372036854775808.0) {
			int64_t ix = (int64_t)d;
			/* ... unless that integer would take 8 bytes: then as the
			 * real (type 7), as OP_MakeRecord does. */
			if ((double)ix == d && ix > INT64_MIN && ix < INT64_MAX &&
			    int_serial(ix, &len) != 6) {
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

static inline uint8_t *put_body(uint8_t *p, const struct enc *e)
{
	if (e->s) {
		memcpy(p, e->s, e->len);
		return p + e->len;
	}
	if (e->len) {
		/* the low len bytes of i, big-endian */
		uint64_t be = __builtin_bswap64((uint64_t)e->i << (8 * (8 - e->len)));
		memcpy(p, &be, e->len);
	}
	return p + e->len;
}

/* Header size of a record whose serial types take types bytes (it
 * counts its own varint), as OP_MakeRecord sizes it. */
static uint64_t header_size(uint64_t types)
{
	uint64_t h = types;
	unsigned nv;
	if (h <= 126)
		return h + 1;
	nv = varint_len(h);
	h += nv;
	if (nv < varint_len(h))
		h++;
	return h;
}

/* Header size of a record with these types. */
static uint64_t header_len(const struct enc *e, size_t n)
{
	uint64_t h = 0;
	for (size_t k = 0; k < n; k++)
		h += varint_len(e[k].st);
	return header_size(h);
}

static uint64_t record_len(const struct enc *e, size_t n)
{
	uint64_t len = header_len(e, n);
	for (size_t k = 0; k < n; k++)
		len += e[k].len;
	return len;
}

/* The record at p; its end. The serial types go after a 1-byte header
 * size, the common case (a header of up to 127 bytes); a longer one is
 * written again after its longer size. */
static uint8_t *put_record(uint8_t *p, const struct enc *e, size_t n)
{
	uint8_t *q = p + 1;
	for (size_t k = 0; k < n; k++)
		q += put_varint(q, e[k].st);
	if (q - p <= 127) {
		p[0] = (uint8_t)(q - p);
	} else {
		uint64_t h = header_len(e, n);
		q = p + put_varint(p, h);
		for (size_t k = 0; k < n; k++)
			q += put_varint(q, e[k].st);
	}
	for (size_t k = 0; k < n; k++)
		q = put_body(q, &e[k]);
	return q;
}

/* ---- pages ------------------------------------------------------------------- */

/* A page is not cleared when it starts: every byte of it is written by
 * the time it goes to the image (its cells, their pointers, the header,
 * and finish_page zeroes the free space between them). The dry pass
 * writes no byte at all: only the counts and offsets move. */
static void page_init(struct out *o, struct level *l)
{
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

/* Room for a cell of len bytes (its pointer set): where its bytes go. */
static inline uint8_t *add_cell(const struct out *o, struct level *l, unsigned hdr, size_t len)
{
	DCR_ASSERT(fits(l, hdr, len));
	l->top -= (unsigned)len;
	if (!o->dry)
		put16(l->pg + hdr + 2 * l->ncell, l->top);
	l->ncell++;
	l->last_off = l->top;
	l->last_len = (unsigned)len;
	return l->pg + l->top;
}

/* Takes the last cell out (copied by the caller first); its bytes and its
 * pointer become free space, zeroed by finish_page. */
static void remove_last(struct level *l)
{
	DCR_ASSERT(l->ncell >= 2 && l->last_len && l->last_off == l->top);
	l->ncell--;
	l->top += l->last_len;
	l->last_len = 0;
}

static void finish_page(const struct out *o, const struct tree *t, struct level *l, unsigned lv,
                        uint32_t right)
{
	uint8_t leaf = t->index ? 0x0a : 0x0d, interior = t->index ? 0x02 : 0x05;
	unsigned end = hdr_len(lv) + 2 * l->ncell;
	if (o->dry)
		return;
	l->pg[0] = lv ? interior : leaf;
	put16(l->pg + 1, 0);
	put16(l->pg + 3, l->ncell);
	put16(l->pg + 5, l->top == 65536 ? 0 : l->top);
	l->pg[7] = 0;
	if (lv)
		put32(l->pg + 8, right);
	DCR_ASSERT(end <= l->top);
	memset(l->pg + end, 0, l->top - end);
}

/* The last nbatch pages, in batch, to write. */
static void flush_batch(struct out *o)
{
	if (o->nbatch && o->write && o->rc == 0)
		o->rc = o->write(o->wctx, o->batch, o->nbatch * o->U);
	o->nbatch = 0;
}

/* The next page of the image; its number (1-based). */
static uint32_t append_page(struct out *o, const uint8_t *pg)
{
	uint32_t n = ++o->npages;
	if (o->dry || o->rc)
		return n;
	if (o->keep)
		memcpy(o->keep + (size_t)(n - 1) * o->U, pg, o->U);
	else if (o->write)
		memcpy(o->batch + o->nbatch * o->U, pg, o->U);
	if (o->write && ++o->nbatch == BATCH_PAGES)
		flush_batch(o);
	return n;
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
		uplen = l->last_len - skip;
		if (!o->dry) {
			if (lv)
				right = get32(l->pg + l->last_off);
			memcpy(up, l->pg + l->last_off + skip, uplen);
		}
		remove_last(l);
	}
	finish_page(o, t, l, lv, right);
	pg = append_page(o, l->pg);
	page_init(o, l);
	push(o, t, lv + 1, pg, up, uplen);
}

/* A child page and its divider into level lv (interior). */
static void push(struct out *o, struct tree *t, unsigned lv, uint32_t child, const uint8_t *body,
                 size_t blen)
{
	struct level *l;
	uint8_t *cell;
	if (o->rc)
		return;
	DCR_ASSERT(lv < LEVELS_MAX && blen + 4 <= PAGE_MAX + 32);
	if (lv == t->nlv) {
		if (!t->lv[lv].pg)
			t->lv[lv].pg = sqlite3_malloc64(o->U);
		if (!t->lv[lv].pg) {
			o->rc = -ENOMEM;
			return;
		}
		page_init(o, &t->lv[lv]);
		t->nlv++;
	}
	l = &t->lv[lv];
	if (!fits(l, 12, blen + 4)) {
		spill(o, t, lv);
		if (o->rc)
			return;
	}
	cell = add_cell(o, l, 12, blen + 4);
	if (!o->dry) {
		put32(cell, child);
		memcpy(cell + 4, body, blen);
	}
}

/* The tree's last pages: each level's page goes to the image and becomes
 * the right pointer of the level above; the top one is the root. */
static void finish_tree(struct out *o, struct tree *t)
{
	uint32_t child = 0;
	for (unsigned lv = 0; lv < t->nlv && !o->rc; lv++) {
		finish_page(o, t, &t->lv[lv], lv, child);
		child = append_page(o, t->lv[lv].pg);
	}
	t->root = child;
}

static int tree_reset(struct out *o, struct tree *t, bool index)
{
	t->index = index;
	t->root = 0;
	t->nlv = 1;
	t->leaf_last_rowid = 0;
	if (!t->lv[0].pg)
		t->lv[0].pg = sqlite3_malloc64(o->U);
	if (!t->lv[0].pg)
		return -ENOMEM;
	page_init(o, &t->lv[0]);
	return 0;
}

static void tree_free(const struct out *o, struct tree *t)
{
	for (unsigned lv = 0; lv < LEVELS_MAX; lv++)
		if (t->lv[lv].pg) {
			dcr_wipe(t->lv[lv].pg, o->U);
			sqlite3_free(t->lv[lv].pg);
		}
}

/* Sizes of each row's records, found in file order (the arena read in
 * order, not at random as in key order): the table record's length and
 * the index key's part of its entry (serial type varint and body; the
 * rowid's part depends on the row's place). The dry pass needs only
 * these. CMP__BTREE_FALLBACK: a row this writer leaves to SQLite. */
struct sizes {
	uint16_t rec, key;
};

static int measure(const cmp__rows *rows, const cmp_schema *schema, size_t key, bool with_index,
                   unsigned U, cmp__value *v, struct enc *e, struct sizes *sz, cmp_write_fn write,
                   void *wctx)
{
	unsigned X_table = U - 35, X_index = ((U - 12) * 64 / 255) - 23;
	size_t ncols = schema->ncols, n = cmp__rows_count(rows);
	for (size_t row = 0; row < n; row++) {
		uint64_t len, types = 0, body = 0;
		int rc;
		if (row % POLL_ROWS == POLL_ROWS - 1 && (rc = poll_write(write, wctx)) < 0)
			return rc;
		cmp__rows_get_raw(rows, row, v);
		/* record_len, in the same loop as the encoding */
		for (size_t c = 0; c < ncols; c++) {
			if (!encode(&v[c], schema->cols[c].type, &e[c]))
				return CMP__BTREE_FALLBACK;
			types += varint_len(e[c].st);
			body += e[c].len;
		}
		len = header_size(types) + body;
		if (len > X_table)
			return CMP__BTREE_FALLBACK;
		sz[row].rec = (uint16_t)len;
		if (with_index) {
			/* the largest entry: header 1 + key type + 1 rowid type
			 * byte (<= 9 bytes), key, 8 rowid bytes */
			uint64_t k = varint_len(e[key].st) + e[key].len;
			if (1 + k + 1 + 8 > X_index)
				return CMP__BTREE_FALLBACK;
			sz[row].key = (uint16_t)k;
		}
	}
	return 0;
}

/* One pass over the rows in key order: both trees, then their last pages
 * (the table's first). The dry pass takes the sizes and touches no page
 * byte; the other encodes each cell in place, in its page (and checks
 * that the sizes were right). */
static int run_pass(struct out *o, struct tree *tt, struct tree *ti, bool with_index,
                    const cmp__rows *rows, const cmp_schema *schema, size_t key, cmp__value *v,
                    struct enc *e, const struct sizes *sz)
{
	size_t ncols = schema->ncols, n = cmp__rows_count(rows);
	int rc;
	if ((rc = tree_reset(o, tt, false)) || (rc = tree_reset(o, ti, true)))
		return rc;
	for (size_t i = 0; i < n && !o->rc; i++) {
		int64_t rowid = (int64_t)i + 1;
		size_t row = cmp__rows_at(rows, i), m;
		uint64_t len = sz[row].rec;
		unsigned rlen;
		unsigned rst = int_serial(rowid, &rlen);
		uint8_t *p, *end;
		/* sz is read at random too: a miss a row, unless asked early */
		if (i + 16 < n)
			__builtin_prefetch(&sz[cmp__rows_at(rows, i + 16)]);
		if ((o->dry || !o->write) && i % POLL_ROWS == POLL_ROWS - 1 &&
		    (rc = poll_write(o->poll, o->wctx)) < 0)
			return rc;
		if (!o->dry) {
			uint64_t types = 0, body = 0;
			/* rows come at random from the arena in key order */
			cmp__rows_prefetch(rows, i);
			cmp__rows_get(rows, i, v);
			for (size_t c = 0; c < ncols; c++) {
				bool ok = encode(&v[c], schema->cols[c].type, &e[c]);
				DCR_ASSERT(ok); /* measure saw the same values */
				types += varint_len(e[c].st);
				body += e[c].len;
			}
			/* the cell is written in place: its size is checked first */
			DCR_ASSERT(header_size(types) + body == len);
		}
		m = varint_len(len) + varint_len((uint64_t)rowid) + len;
		if (!fits(&tt->lv[0], 8, m))
			spill(o, tt, 0);
		if (o->rc)
			break;
		p = add_cell(o, &tt->lv[0], 8, m);
		if (!o->dry) {
			p += put_varint(p, len);
			p += put_varint(p, (uint64_t)rowid);
			end = put_record(p, e, ncols);
			DCR_ASSERT((uint64_t)(end - p) == len);
		}
		tt->leaf_last_rowid = rowid;
		if (!with_index)
			continue;
		/* the index entry: (key, rowid) */
		len = 1 + sz[row].key + varint_len(rst) + rlen;
		m = varint_len(len) + len;
		if (!fits(&ti->lv[0], 8, m))
			spill(o, ti, 0);
		if (o->rc)
			break;
		p = add_cell(o, &ti->lv[0], 8, m);
		if (!o->dry) {
			struct enc ie[2];
			ie[0] = e[key];
			memset(&ie[1], 0, sizeof ie[1]);
			ie[1].i = rowid;
			ie[1].st = rst;
			ie[1].len = rlen;
			DCR_ASSERT(1 + varint_len(ie[0].st) + ie[0].len + varint_len(rst) + rlen == len);
			p += put_varint(p, len);
			end = put_record(p, ie, 2);
			DCR_ASSERT((uint64_t)(end - p) == len);
		}
	}
	if (!o->rc) {
		finish_tree(o, tt);
		if (with_index)
			finish_tree(o, ti);
	}
	return o->rc;
}

/* Page 1: SQLite's database header (the page count set) and sqlite_schema
 * with the root pages of this layout. false: it does not fit one page. */
static bool page1(const struct out *o, uint8_t *pg, const uint8_t hdr[100],
                  const cmp__schema_row *rows, size_t nrows, uint32_t troot, uint32_t iroot)
{
	struct level l = {pg, 0, o->U, 0, 0};
	uint8_t cell[PAGE_MAX + 32];
	memset(pg, 0, o->U);
	memcpy(pg, hdr, 100);
	put32(pg + 28, o->npages);
	for (size_t r = 0; r < nrows; r++) {
		struct enc e[5];
		cmp__value v[5] = {{0}};
		const char *txt[5] = {rows[r].type, rows[r].name, rows[r].tbl_name, NULL,
		                      rows[r].sql};
		enum cmp_type ty[5] = {CMP_STRING, CMP_STRING, CMP_STRING, CMP_INTEGER, CMP_STRING};
		uint64_t len;
		size_t m;
		for (int c = 0; c < 5; c++) {
			if (c == 3) {
				v[c].kind = CMP__INT;
				v[c].i = rows[r].is_index ? iroot : troot;
			} else if (txt[c]) {
				v[c].kind = CMP__TEXT;
				v[c].s = txt[c];
				v[c].n = strlen(txt[c]);
			}
			if (!encode(&v[c], ty[c], &e[c]))
				return false;
		}
		len = record_len(e, 5);
		if (len > o->U - 35)
			return false;
		m = put_varint(cell, len);
		m += put_varint(cell + m, (uint64_t)rows[r].rowid);
		put_record(cell + m, e, 5);
		m += len;
		if (!fits(&l, 108, m))
			return false;
		l.top -= (unsigned)m;
		memcpy(pg + l.top, cell, m);
		put16(pg + 108 + 2 * l.ncell, l.top);
		l.ncell++;
	}
	pg[100] = 0x0d;
	put16(pg + 103, l.ncell);
	put16(pg + 105, l.top == 65536 ? 0 : l.top);
	return true;
}

int cmp__btree_write(const uint8_t hdr[100], const cmp__schema_row *srows, size_t nsrows,
                     const cmp__rows *rows, const cmp_schema *schema, size_t key,
                     cmp_write_fn write, void *wctx, size_t keep_max, void **image, size_t *image_n,
                     size_t *total_n)
{
	struct out o = {0};
	struct tree tt = {0}, ti = {0};
	size_t ncols = schema->ncols;
	cmp__value *v = NULL;
	struct enc *e = NULL;
	uint8_t *p1 = NULL;
	struct sizes *sz = NULL;
	bool with_index = false;
	uint32_t troot, iroot, total = 0;
	unsigned ntables = 0;
	int rc = CMP__BTREE_FALLBACK;

	*image = NULL;
	*image_n = 0;
	*total_n = 0;
	if (memcmp(hdr, "SQLite format 3", 16) != 0)
		return CMP__BTREE_FALLBACK;
	o.U = (unsigned)hdr[16] << 8 | hdr[17];
	if (o.U == 1)
		o.U = 65536;
	/* reserved bytes, auto-vacuum, a freelist: not this writer's */
	/* Records as this file writes them need schema format 4 (0 and 1 as
	 * types 8 and 9) and UTF-8 text; and the storage choices copied here
	 * are those of the SQLite versions test_cmp_btree_diff was run
	 * against (CMP_BTREE_SQLITE_MIN..MAX): any other takes the SQL path. */
	if (get32(hdr + 44) != 4 || get32(hdr + 56) != 1 ||
	    sqlite3_libversion_number() < CMP_BTREE_SQLITE_MIN ||
	    sqlite3_libversion_number() > CMP_BTREE_SQLITE_MAX)
		return CMP__BTREE_FALLBACK;
	if (o.U < 512 || o.U > PAGE_MAX || hdr[20] != 0 || hdr[52] || hdr[53] || hdr[54] ||
	    hdr[55] || hdr[36] || hdr[37] || hdr[38] || hdr[39] ||
	    (uint64_t)cmp__rows_count(rows) >= (1ull << 62))
		return CMP__BTREE_FALLBACK;
	for (size_t r = 0; r < nsrows; r++) {
		ntables += !srows[r].is_index;
		with_index = with_index || srows[r].is_index;
	}
	if (ntables != 1 || nsrows > 2 || (with_index && key >= ncols))
		return CMP__BTREE_FALLBACK;
	v = dcr_calloc(ncols + 1, sizeof *v);
	e = dcr_calloc(ncols + 2, sizeof *e);
	p1 = dcr_malloc(o.U);
	sz = dcr_calloc(cmp__rows_count(rows) + 1, sizeof *sz);
	rc = measure(rows, schema, key, with_index, o.U, v, e, sz, write, wctx);
	if (rc)
		goto out;
	/* pass 1: the layout (write only to poll) */
	o.dry = true;
	o.poll = write;
	o.wctx = wctx;
	o.npages = 1; /* page 1 comes first */
	rc = run_pass(&o, &tt, &ti, with_index, rows, schema, key, v, e, sz);
	if (rc)
		goto out;
	total = o.npages;
	/* the SQL path's ceiling (open_build): an image no run could load */
	if ((uint64_t)total * o.U > DMN_IMAGE_BYTES_MAX) {
		rc = DCR_ELIMIT;
		goto out;
	}
	troot = tt.root;
	iroot = with_index ? ti.root : 0;
	if (!page1(&o, p1, hdr, srows, nsrows, troot, iroot)) {
		rc = CMP__BTREE_FALLBACK;
		goto out;
	}
	/* pass 2: the pages, in order: kept whole (and not written: the
	 * caller stores them when it likes) or written as they come */
	o.dry = false;
	o.npages = 0;
	if (!write || (size_t)total * o.U <= keep_max) {
		o.keep = sqlite3_malloc64((sqlite3_uint64)total * o.U);
		if (!o.keep) {
			rc = -ENOMEM;
			goto out;
		}
	} else {
		o.write = write;
		o.batch = dcr_malloc((size_t)BATCH_PAGES * o.U);
	}
	append_page(&o, p1);
	rc = run_pass(&o, &tt, &ti, with_index, rows, schema, key, v, e, sz);
	flush_batch(&o);
	if (!rc)
		rc = o.rc;
	if (rc)
		goto out;
	/* the same layout twice: the same rows, the same code */
	DCR_ASSERT(o.npages == total && tt.root == troot && (!with_index || ti.root == iroot));
	*total_n = (size_t)total * o.U;
	if (o.keep) {
		*image = o.keep;
		*image_n = *total_n;
		o.keep = NULL;
	}
out:
	if (o.keep) {
		dcr_wipe(o.keep, (size_t)total * o.U);
		sqlite3_free(o.keep);
	}
	if (o.batch) {
		dcr_wipe(o.batch, (size_t)BATCH_PAGES * o.U);
		free(o.batch);
	}
	tree_free(&o, &tt);
	tree_free(&o, &ti);
	free(p1);
	free(sz);
	free(v);
	free(e);
	return rc;
}
