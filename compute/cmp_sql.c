/* cmp_sql.c: prepared tables and SQL runs on SQLite.
 *
 * A prepared table is a serialized SQLite database with one table, built at
 * provisioning (one transaction, one prepared INSERT, no journal). A run
 * opens a fresh in-memory connection, attaches one empty schema per input
 * ("in_<name>") and deserializes the input's image into it read-only and
 * without copying, so the table is found by its unqualified name. Only then
 * is the connection locked down: limits lowered, extension loading and
 * triggers off, defensive mode on, an authorizer that allows reading and
 * the built-in functions on a list (nothing that touches files), and denies
 * every write outside the temp schema, ATTACH, DETACH, PRAGMA and the rest.
 * The watchdog (cmp_cancel.c) interrupts the connection at the deadline
 * and a progress handler every 100 VM steps backs it up (the time limit);
 * the length limit bounds what one step can cost; an accounting allocator
 * enforces the memory limit per run (see mem_* below); row and byte caps
 * are checked while stepping.
 *
 * With min_rows_aggregated the query runs in the form cmp_privacy.c
 * rewrote it to, and rows whose hidden count is below k are dropped here.
 *
 * The result is written as CSV (header row, RFC 4180 quoting; NULL is an
 * empty field, the empty string is "") and as a prepared table named
 * "result" for downstream computations, with a schema taken from the
 * columns' declared types or, for expressions, from the values. */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compute_sql.h"

/* ---- memory accounting ------------------------------------------------------
 * SQLite's heap limits are process-wide, but runs happen in parallel. The
 * allocator below wraps SQLite's default one with a 16-byte header naming
 * the run (struct mem_acct) that allocated the block; the run is found
 * through a thread-local pointer set while the run's thread uses its
 * connections. A block remembers its owner, so a free on any thread
 * credits the right run. The accounting struct is reference counted by its
 * live blocks plus one for the run itself. */

struct mem_acct {
	uint64_t used; /* atomic */
	uint64_t limit;
	uint64_t refs; /* atomic: live blocks + 1 while the run holds it */
	int over;      /* atomic: an allocation was refused */
};

#define MEM_HDR 16
static sqlite3_mem_methods mem_orig;
static bool mem_on;
static __thread struct mem_acct *mem_cur;

static void acct_unref(struct mem_acct *a)
{
	if (__atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(a);
}

static void *mem_malloc(int n)
{
	struct mem_acct *a = mem_cur;
	if (a && __atomic_load_n(&a->used, __ATOMIC_RELAXED) + (uint64_t)n > a->limit) {
		__atomic_store_n(&a->over, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	uint8_t *p = mem_orig.xMalloc(n + MEM_HDR);
	if (!p)
		return NULL;
	memcpy(p, &a, sizeof(a));
	if (a) {
		__atomic_add_fetch(&a->used, (uint64_t)mem_orig.xSize(p), __ATOMIC_RELAXED);
		__atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED);
	}
	return p + MEM_HDR;
}

static void mem_free(void *v)
{
	if (!v)
		return;
	uint8_t *p = (uint8_t *)v - MEM_HDR;
	struct mem_acct *a;
	memcpy(&a, p, sizeof(a));
	if (a)
		__atomic_sub_fetch(&a->used, (uint64_t)mem_orig.xSize(p), __ATOMIC_RELAXED);
	mem_orig.xFree(p);
	if (a)
		acct_unref(a);
}

static int mem_size(void *v)
{
	return v ? mem_orig.xSize((uint8_t *)v - MEM_HDR) - MEM_HDR : 0;
}

static void *mem_realloc(void *v, int n)
{
	if (!v)
		return mem_malloc(n);
	uint8_t *p = (uint8_t *)v - MEM_HDR;
	struct mem_acct *a;
	memcpy(&a, p, sizeof(a));
	int old = mem_orig.xSize(p);
	if (a && n + MEM_HDR > old &&
	    __atomic_load_n(&a->used, __ATOMIC_RELAXED) + (uint64_t)(n + MEM_HDR - old) >
	        a->limit) {
		__atomic_store_n(&a->over, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	uint8_t *np = mem_orig.xRealloc(p, n + MEM_HDR);
	if (!np)
		return NULL;
	if (a) {
		int now = mem_orig.xSize(np);
		if (now >= old)
			__atomic_add_fetch(&a->used, (uint64_t)(now - old), __ATOMIC_RELAXED);
		else
			__atomic_sub_fetch(&a->used, (uint64_t)(old - now), __ATOMIC_RELAXED);
	}
	return np + MEM_HDR;
}

static int mem_roundup(int n)
{
	return mem_orig.xRoundup(n + MEM_HDR) - MEM_HDR;
}

static int mem_init(void *p)
{
	return mem_orig.xInit(p);
}

static void mem_shutdown(void *p)
{
	mem_orig.xShutdown(p);
}

static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

static void sqlite_setup(void)
{
	static sqlite3_mem_methods wrap = {mem_malloc,  mem_free, mem_realloc,  mem_size,
	                                   mem_roundup, mem_init, mem_shutdown, NULL};
	if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &mem_orig) == SQLITE_OK &&
	    sqlite3_config(SQLITE_CONFIG_MALLOC, &wrap) == SQLITE_OK)
		mem_on = true;
	/* The global memory statistics take a mutex on every allocation. */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	sqlite3_initialize();
	cmp__tmp_register(); /* every connection's temp files: cmp_tmpvfs.c */
}

static void sqlite_once_init(void)
{
	pthread_once(&sqlite_once, sqlite_setup);
}

/* ---- helpers ---------------------------------------------------------------- */

static int sql_err(sqlite3 *db, dcr_err *err, const char *what)
{
	return dcr_err_set(err, DCR_ESQL, "%s: %s", what,
	                   db ? sqlite3_errmsg(db) : "out of memory");
}

static int exec(sqlite3 *db, const char *sql, dcr_err *err)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int rc = dcr_err_set(err, DCR_ESQL, "%s", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return rc;
	}
	return 0;
}

static bool name_ok(const char *name)
{
	size_t n = strlen(name);
	return n > 0 && n <= 128 && strncasecmp(name, "sqlite_", 7) != 0 &&
	       cmp__utf8_valid_prefix((const uint8_t *)name, n) == n;
}

static void create_table_sql(dcr_buf *b, const char *schema, const char *table, const cmp_schema *s)
{
	dcr_buf_append_str(b, "CREATE TABLE ");
	if (schema) {
		cmp__sql_ident(b, schema);
		dcr_buf_append_u8(b, '.');
	}
	cmp__sql_ident(b, table);
	dcr_buf_append_u8(b, '(');
	for (size_t i = 0; i < s->ncols; i++) {
		if (i)
			dcr_buf_append_u8(b, ',');
		cmp__sql_ident(b, s->cols[i].name);
		dcr_buf_printf(b, " %s", cmp__sql_decltype(s->cols[i].type));
	}
	dcr_buf_append_u8(b, ')');
}

static int image_out(sqlite3 *db, dcr_buf *image, dcr_err *err)
{
	sqlite3_int64 n = 0;
	unsigned char *p = sqlite3_serialize(db, "main", &n, 0);
	if (!p)
		return dcr_err_set(err, DCR_ESQL, "cannot serialize the database");
	dcr_buf_reset(image);
	dcr_buf_append(image, p, (size_t)n);
	sqlite3_free(p);
	return 0;
}

static int open_plain(sqlite3 **db, dcr_err *err)
{
	if (sqlite3_open_v2(":memory:", db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
	                        SQLITE_OPEN_EXRESCODE,
	                    cmp__tmp_vfs()) != SQLITE_OK) {
		int rc = sql_err(*db, err, "cannot open SQLite");
		sqlite3_close(*db);
		*db = NULL;
		return rc;
	}
	sqlite3_db_config(*db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
	sqlite3_db_config(*db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(*db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	sqlite3_db_config(*db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL);
	sqlite3_db_config(*db, SQLITE_DBCONFIG_DQS_DML, 0, NULL);
	sqlite3_db_config(*db, SQLITE_DBCONFIG_DQS_DDL, 0, NULL);
	return 0;
}

/* ---- prepared tables -------------------------------------------------------- */

struct prep {
	sqlite3 *db;
	sqlite3_stmt *ins;
};

static int prep_row(void *ctx, const cmp__value *v, size_t n, dcr_err *err)
{
	struct prep *p = ctx;
	for (size_t i = 0; i < n; i++) {
		int c = (int)i + 1;
		switch (v[i].kind) {
		case CMP__NULL:
			sqlite3_bind_null(p->ins, c);
			break;
		case CMP__INT:
			sqlite3_bind_int64(p->ins, c, v[i].i);
			break;
		case CMP__FLOAT:
			sqlite3_bind_double(p->ins, c, v[i].d);
			break;
		case CMP__TEXT:
			sqlite3_bind_text64(p->ins, c, v[i].s, v[i].n, SQLITE_STATIC, SQLITE_UTF8);
			break;
		}
	}
	if (sqlite3_step(p->ins) != SQLITE_DONE)
		return sql_err(p->db, err, "insert");
	sqlite3_reset(p->ins);
	return 0;
}

int cmp_prepare(const cmp_schema *schema, const char *table, cmp_read_fn read, void *ctx,
                dcr_buf *image, dcr_err *err)
{
	return cmp_prepare_ex(schema, table, NULL, 0, read, ctx, image, err);
}

/* "<table>_<col>_idx", quoted */
static void index_name(dcr_buf *sql, const char *table, const char *col)
{
	char *iname = dcr_asprintf("%s_%s_idx", table, col);
	cmp__sql_ident(sql, iname);
	free(iname);
}

/* CREATE INDEX "<table>_<col>_idx" ON "<table>"("<col>") */
static int create_index(sqlite3 *db, const char *table, const char *col, dcr_err *err)
{
	dcr_buf sql;
	dcr_buf_init(&sql);
	dcr_buf_append_str(&sql, "CREATE INDEX ");
	index_name(&sql, table, col);
	dcr_buf_append_str(&sql, " ON ");
	cmp__sql_ident(&sql, table);
	dcr_buf_append_u8(&sql, '(');
	cmp__sql_ident(&sql, col);
	dcr_buf_append_u8(&sql, ')');
	int rc = exec(db, dcr_buf_cstr(&sql), err);
	dcr_buf_release(&sql);
	return rc;
}

/* Prepares p->ins as INSERT INTO target VALUES(?, ...). */
static int prepare_insert(struct prep *p, const char *target, const cmp_schema *schema,
                          dcr_err *err)
{
	dcr_buf sql;
	dcr_buf_init(&sql);
	sqlite3_finalize(p->ins);
	p->ins = NULL;
	dcr_buf_append_str(&sql, "INSERT INTO ");
	dcr_buf_append_str(&sql, target);
	dcr_buf_append_str(&sql, " VALUES(");
	for (size_t i = 0; i < schema->ncols; i++)
		dcr_buf_append_str(&sql, i ? ",?" : "?");
	dcr_buf_append_u8(&sql, ')');
	int rc = 0;
	if (sqlite3_prepare_v2(p->db, dcr_buf_cstr(&sql), -1, &p->ins, NULL) != SQLITE_OK)
		rc = sql_err(p->db, err, "prepare insert");
	dcr_buf_release(&sql);
	return rc;
}

/* Inserts the held rows (in key order when sorted) through p->ins. */
static int insert_rows(struct prep *p, const cmp__rows *rows, size_t ncols, dcr_err *err)
{
	cmp__value *v = dcr_calloc(ncols, sizeof(*v));
	int rc = 0;
	for (size_t i = 0, n = cmp__rows_count(rows); i < n && rc == 0; i++) {
		cmp__rows_get(rows, i, v);
		rc = prep_row(p, v, ncols, err);
	}
	free(v);
	return rc;
}

/* The build's database: in one buffer of SQLite's (memdb, resizeable),
 * which becomes the image without a copy. An ordinary in-memory database
 * keeps its pages in the page cache and sqlite3_serialize copies them out,
 * so a build held its table twice at the end (issue 16: 4.6 GB at 10M x
 * 10M rows). The page cache is only a window over the buffer here
 * (BUILD_CACHE_KIB); pages beyond it are written to the buffer. */
#define BUILD_CACHE_KIB 65536
static int open_build(sqlite3 **db, dcr_err *err)
{
	sqlite3_int64 limit = (sqlite3_int64)DMN_IMAGE_BYTES_MAX;
	int rc = open_plain(db, err);
	if (rc)
		return rc;
	if (sqlite3_deserialize(*db, "main", NULL, 0, 0, SQLITE_DESERIALIZE_RESIZEABLE) !=
	    SQLITE_OK)
		return sql_err(*db, err, "cannot open the build's database");
	/* memdb's default ceiling is 1 GiB; an image may be larger. */
	if (sqlite3_file_control(*db, "main", SQLITE_FCNTL_SIZE_LIMIT, &limit) != SQLITE_OK)
		return sql_err(*db, err, "cannot size the build's database");
	return 0;
}

/* Closes the build's database; its buffer (the image) is returned, or
 * wiped and freed when image is NULL. */
static void close_build(sqlite3 *db, void **image, size_t *image_n)
{
	sqlite3_int64 n = 0;
	unsigned char *p = db ? sqlite3_serialize(db, "main", &n, SQLITE_SERIALIZE_NOCOPY) : NULL;
	sqlite3_close(db);
	if (image) {
		*image = p;
		*image_n = p ? (size_t)n : 0;
	} else {
		cmp_image_free(p, (size_t)n);
	}
}

void cmp_image_free(void *image, size_t n)
{
	if (!image)
		return;
	dcr_wipe(image, n); /* rows of private data */
	sqlite3_free(image);
}

/* Whether prepared tables are written directly (cmp_btree.c); tests
 * switch it off to run the SQL path too. */
static atomic_int direct_mode = 0; /* 0 unset: read DCR_PREPARE_SQL; 1 on; 2 off */
static atomic_uint_fast64_t direct_count;

uint64_t cmp__prepare_direct_count(void)
{
	return atomic_load(&direct_count);
}

int cmp__image_check(const void *image, size_t n, dcr_err *err)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	unsigned char *copy = sqlite3_malloc64(n ? n : 1);
	int rc = 0;
	if (!copy)
		return dcr_err_set(err, -ENOMEM, "integrity check: out of memory");
	memcpy(copy, image, n);
	if ((rc = open_plain(&db, err)))
		goto out;
	if (sqlite3_deserialize(db, "main", copy, (sqlite3_int64)n, (sqlite3_int64)n,
	                        SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_READONLY) !=
	    SQLITE_OK) {
		copy = NULL;
		rc = sql_err(db, err, "integrity check: deserialize");
		goto out;
	}
	copy = NULL;
	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
		rc = sql_err(db, err, "integrity check");
		goto out;
	}
	if (sqlite3_step(st) != SQLITE_ROW) {
		rc = sql_err(db, err, "integrity check");
		goto out;
	}
	if (strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0)
		rc = dcr_err_set(err, DCR_EINTEGRITY, "integrity check: %s",
		                 (const char *)sqlite3_column_text(st, 0));
out:
	sqlite3_free(copy);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

void cmp__prepare_set_direct(bool on)
{
	atomic_store(&direct_mode, on ? 1 : 2);
}

bool cmp__prepare_direct_on(void)
{
	int m = atomic_load(&direct_mode);
	if (m == 0) {
		const char *e = getenv("DCR_PREPARE_SQL");
		m = e && strcmp(e, "1") == 0 ? 2 : 1;
		atomic_store(&direct_mode, m);
	}
	return m == 1;
}

/* The direct path: SQLite makes the schema on the empty table (the open
 * transaction, committed here), cmp__btree_write the b-trees and the
 * image. 0: done, the build's database is closed; CMP__BTREE_FALLBACK:
 * nothing written, the schema committed (the index, if any, to drop); or
 * a negative code. */
static int prepare_direct(struct prep *p, const cmp_schema *schema, const char *table,
                          const char *const *index, size_t nindex, const cmp__rows *rows,
                          size_t key, cmp_write_fn write, void *wctx, size_t keep_max,
                          void **image, size_t *image_n, size_t *total_n, dcr_err *err)
{
	sqlite3_int64 n = 0;
	unsigned char *empty;
	uint8_t hdr[100];
	cmp__schema_row srows[3];
	size_t nsrows = 0;
	sqlite3_stmt *st = NULL;
	int rc;
	memset(srows, 0, sizeof srows);
	if (nindex && (rc = create_index(p->db, table, index[0], err)))
		return rc;
	if ((rc = exec(p->db, "COMMIT", err)))
		return rc;
	empty = sqlite3_serialize(p->db, "main", &n, SQLITE_SERIALIZE_NOCOPY);
	if (!empty || n < 100)
		return CMP__BTREE_FALLBACK;
	memcpy(hdr, empty, 100);
	if (sqlite3_prepare_v2(p->db,
	                       "SELECT rowid, type, name, tbl_name, sql FROM main.sqlite_schema "
	                       "ORDER BY rowid",
	                       -1, &st, NULL) != SQLITE_OK)
		return sql_err(p->db, err, "reading the build's schema");
	rc = CMP__BTREE_FALLBACK;
	while (sqlite3_step(st) == SQLITE_ROW) {
		cmp__schema_row *r = &srows[nsrows];
		const char *txt[4];
		if (nsrows == 3)
			goto out;
		for (int c = 0; c < 4; c++) {
			txt[c] = (const char *)sqlite3_column_text(st, c + 1);
			if (!txt[c])
				goto out;
		}
		r->rowid = sqlite3_column_int64(st, 0);
		r->type = dcr_strdup(txt[0]);
		r->name = dcr_strdup(txt[1]);
		r->tbl_name = dcr_strdup(txt[2]);
		r->sql = dcr_strdup(txt[3]);
		r->is_index = strcmp(txt[0], "index") == 0;
		nsrows++;
		if (!r->is_index && strcmp(txt[0], "table") != 0)
			goto out;
	}
	rc = cmp__btree_write(hdr, srows, nsrows, rows, schema, key, write, wctx, keep_max, image,
	                      image_n, total_n);
	if (rc == DCR_ELIMIT)
		rc = dcr_err_set(err, rc, "the prepared table would exceed %llu MiB",
		                 (unsigned long long)(DMN_IMAGE_BYTES_MAX >> 20));
	else if (rc < 0)
		rc = dcr_err_set(err, rc, "writing the prepared table: %s", dcr_strerror(rc));
	if (rc == 0) {
		sqlite3_finalize(p->ins);
		p->ins = NULL;
		sqlite3_finalize(st);
		st = NULL;
		close_build(p->db, NULL, NULL);
		p->db = NULL;
		atomic_fetch_add(&direct_count, 1);
	}
out:
	sqlite3_finalize(st);
	for (size_t i = 0; i < nsrows; i++) {
		free((char *)srows[i].type);
		free((char *)srows[i].name);
		free((char *)srows[i].tbl_name);
		free((char *)srows[i].sql);
	}
	return rc;
}

int cmp_prepare_image(const cmp_schema *schema, const char *table, const char *const *index,
                      size_t nindex, cmp_read_fn read, void *ctx, void **image, size_t *image_n,
                      dcr_err *err)
{
	size_t total = 0;
	return cmp_prepare_stream(schema, table, index, nindex, read, ctx, NULL, NULL, SIZE_MAX,
	                          image, image_n, &total, err);
}

int cmp_prepare_ex(const cmp_schema *schema, const char *table, const char *const *index,
                   size_t nindex, cmp_read_fn read, void *ctx, dcr_buf *image, dcr_err *err)
{
	void *p = NULL;
	size_t n = 0;
	int rc = cmp_prepare_image(schema, table, index, nindex, read, ctx, &p, &n, err);
	if (rc == 0) {
		dcr_buf_reset(image);
		dcr_buf_append(image, p, n);
	}
	cmp_image_free(p, n);
	return rc;
}

/* cmp_prepare_stream (read set, held NULL) and cmp_prepare_rows (the rows
 * held, consumed): the one build. */
static int prepare_any(const cmp_schema *schema, const char *table, const char *const *index,
                       size_t nindex, cmp_read_fn read, void *ctx, cmp__rows *held,
                       cmp_write_fn write, void *wctx, size_t keep_max, void **image,
                       size_t *image_n, size_t *total_n, dcr_err *err)
{
	struct prep p = {0};
	cmp_ingest *in = NULL;
	cmp__rows *rows = held; /* owned from here */
	size_t key = 0;
	dcr_buf sql, target;
	dcr_buf_init(&sql);
	dcr_buf_init(&target);
	char *buf = NULL;
	int rc;
	bool direct = cmp__prepare_direct_on() && nindex <= 1;
	*image = NULL;
	*image_n = 0;
	*total_n = 0;
	sqlite_once_init();
	if (!name_ok(table)) {
		rc = dcr_err_set(err, DCR_EINVALID, "invalid table name \"%s\"", table);
		goto out;
	}
	if (held && cmp__rows_ncols(held) != schema->ncols) {
		rc = dcr_err_set(err, DCR_EINVALID, "rows of %zu columns for a table of %zu",
		                 cmp__rows_ncols(held), schema->ncols);
		goto out;
	}
	for (size_t i = 0; i < nindex; i++) {
		size_t c;
		for (c = 0; c < schema->ncols; c++)
			if (strcmp(schema->cols[c].name, index[i]) == 0)
				break;
		if (c == schema->ncols) {
			rc = dcr_err_set(err, DCR_EINVALID, "index on unknown column \"%s\"",
			                 index[i]);
			goto out;
		}
		if (i == 0)
			key = c;
	}
	if ((rc = open_build(&p.db, err)))
		goto out;
	dcr_buf_printf(&sql,
	               "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; "
	               "PRAGMA locking_mode=EXCLUSIVE; PRAGMA cache_size=-%d; "
	               "PRAGMA temp_store=MEMORY",
	               BUILD_CACHE_KIB);
	if ((rc = exec(p.db, dcr_buf_cstr(&sql), err)))
		goto out;
	dcr_buf_reset(&sql);
	create_table_sql(&sql, NULL, table, schema);
	if ((rc = exec(p.db, dcr_buf_cstr(&sql), err)))
		goto out;
	/* With indexes, rows are stored in the order of the first indexed
	 * column: a join on that key then walks both tables and the index in
	 * key order (cache-friendly), instead of jumping around 100 MB of
	 * pages once per row. They are held in memory as validated, sorted
	 * (cmp_rows.c) and inserted once, in that order. */
	cmp__sql_ident(&target, table);
	if (!direct && !nindex && (rc = prepare_insert(&p, dcr_buf_cstr(&target), schema, err)))
		goto out;
	if ((rc = exec(p.db, "BEGIN", err)))
		goto out;
	if (held) {
		/* validated at upload: straight to the sort, or (no index, not
		 * written directly) into the table in file order */
		if (nindex)
			cmp__rows_set_key(rows, key);
		if (!direct && !nindex && (rc = insert_rows(&p, rows, schema->ncols, err)))
			goto out;
		goto loaded;
	}
	if ((rc = cmp_ingest_new(schema, table, &in)))
		goto out;
	cmp__ingest_no_stats(in);
	if (nindex || direct) {
		rows = cmp__rows_new(schema->ncols, key);
		cmp__ingest_set_sink(in, cmp__rows_add, rows);
	} else {
		cmp__ingest_set_sink(in, prep_row, &p);
	}
	buf = dcr_malloc(DCR_CHUNK_BYTES);
	for (;;) {
		int got = read(ctx, buf, DCR_CHUNK_BYTES);
		if (got < 0) {
			rc = dcr_err_set(err, got, "reading the table data failed");
			goto out;
		}
		if (got == 0)
			break;
		if (got == CMP_READ_NEXT_FILE) {
			if ((rc = cmp_ingest_next_file(in, NULL, err)))
				goto out;
			continue;
		}
		if ((rc = cmp_ingest_feed(in, buf, (size_t)got, err)))
			goto out;
	}
	if ((rc = cmp_ingest_finish(in, NULL, NULL, err)))
		goto out;
loaded:
	if (direct && (nindex == 0 || cmp__rows_sort(rows))) {
		rc = prepare_direct(&p, schema, table, index, nindex, rows, key, write, wctx,
		                    keep_max, image, image_n, total_n, err);
		if (rc <= 0)
			goto out; /* done, or failed */
		/* not for this writer: the rows go in through SQLite */
		rc = 0;
		if (nindex) {
			dcr_buf_reset(&sql);
			dcr_buf_append_str(&sql, "BEGIN; DROP INDEX ");
			index_name(&sql, table, index[0]);
			if ((rc = exec(p.db, dcr_buf_cstr(&sql), err)))
				goto out;
		} else if ((rc = exec(p.db, "BEGIN", err))) {
			goto out;
		}
		if ((rc = prepare_insert(&p, dcr_buf_cstr(&target), schema, err)) ||
		    (rc = insert_rows(&p, rows, schema->ncols, err)))
			goto out;
	} else if (nindex && cmp__rows_sort(rows)) {
		if ((rc = prepare_insert(&p, dcr_buf_cstr(&target), schema, err)) ||
		    (rc = insert_rows(&p, rows, schema->ncols, err)))
			goto out;
	} else if (nindex) {
		/* Not sortable here: through a staging table and SQLite's
		 * ORDER BY. */
		dcr_buf_reset(&sql);
		create_table_sql(&sql, "temp", "stage", schema);
		if ((rc = exec(p.db, dcr_buf_cstr(&sql), err)) ||
		    (rc = prepare_insert(&p, "temp.stage", schema, err)) ||
		    (rc = insert_rows(&p, rows, schema->ncols, err)))
			goto out;
		sqlite3_finalize(p.ins);
		p.ins = NULL;
		dcr_buf_reset(&sql);
		dcr_buf_append_str(&sql, "INSERT INTO main.");
		cmp__sql_ident(&sql, table);
		dcr_buf_append_str(&sql, " SELECT * FROM temp.stage ORDER BY ");
		cmp__sql_ident(&sql, index[0]);
		dcr_buf_append_str(&sql, "; DROP TABLE temp.stage");
		if ((rc = exec(p.db, dcr_buf_cstr(&sql), err)))
			goto out;
	}
	cmp__rows_free(rows);
	rows = NULL;
	for (size_t i = 0; i < nindex; i++)
		if ((rc = create_index(p.db, table, index[i], err)))
			goto out;
	if ((rc = exec(p.db, "COMMIT", err)))
		goto out;
	sqlite3_finalize(p.ins);
	p.ins = NULL;
	close_build(p.db, image, image_n);
	p.db = NULL;
	if (!*image) {
		rc = dcr_err_set(err, DCR_ESQL, "cannot serialize the database");
		goto out;
	}
	*total_n = *image_n;
	if (*image_n > keep_max && write && (rc = write(wctx, *image, *image_n)) < 0)
		dcr_err_set(err, rc, "writing the prepared table: %s", dcr_strerror(rc));
	if (rc < 0 || *image_n > keep_max) {
		cmp_image_free(*image, *image_n);
		*image = NULL;
		*image_n = 0;
	}
out:
	free(buf);
	cmp_ingest_free(in);
	cmp__rows_free(rows);
	sqlite3_finalize(p.ins);
	close_build(p.db, NULL, NULL);
	dcr_buf_release(&sql);
	dcr_buf_release(&target);
	return rc;
}

int cmp_prepare_stream(const cmp_schema *schema, const char *table, const char *const *index,
                       size_t nindex, cmp_read_fn read, void *ctx, cmp_write_fn write,
                       void *wctx, size_t keep_max, void **image, size_t *image_n,
                       size_t *total_n, dcr_err *err)
{
	return prepare_any(schema, table, index, nindex, read, ctx, NULL, write, wctx, keep_max,
	                   image, image_n, total_n, err);
}

int cmp_prepare_rows(const cmp_schema *schema, const char *table, const char *const *index,
                     size_t nindex, cmp_rows *rows, cmp_write_fn write, void *wctx,
                     size_t keep_max, void **image, size_t *image_n, size_t *total_n,
                     dcr_err *err)
{
	DCR_ASSERT(rows);
	return prepare_any(schema, table, index, nindex, NULL, NULL, rows, write, wctx, keep_max,
	                   image, image_n, total_n, err);
}

/* ---- the locked-down connection ---------------------------------------------- */

static const char *const allowed_fns[] = {
    /* core scalar */
    "abs", "char", "coalesce", "format", "glob", "hex", "ifnull", "iif", "instr", "length", "like",
    "likelihood", "likely", "lower", "ltrim", "max", "min", "nullif", "printf", "quote", "random",
    "randomblob", "replace", "round", "rtrim", "sign", "soundex", "substr", "substring", "trim",
    "typeof", "unicode", "unlikely", "upper", "zeroblob", "octet_length", "unhex", "concat",
    "concat_ws",
    /* date and time */
    "date", "time", "datetime", "julianday", "strftime", "unixepoch", "timediff",
    /* aggregate */
    "avg", "count", "group_concat", "string_agg", "sum", "total",
    /* window */
    "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
    "first_value", "last_value", "nth_value",
    /* math */
    "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "ceiling", "cos", "cosh",
    "degrees", "exp", "floor", "ln", "log", "log10", "log2", "mod", "pi", "pow", "power", "radians",
    "sin", "sinh", "sqrt", "tan", "tanh", "trunc",
    /* JSON */
    "json", "json_array", "json_array_length", "json_extract", "json_insert", "json_object",
    "json_patch", "json_remove", "json_replace", "json_set", "json_type", "json_valid",
    "json_quote", "json_group_array", "json_group_object", "->", "->>", "json_each", "json_tree"};

enum { FILL_IMAGES, FILL_EMPTY, FILL_PROBE };

struct run {
	sqlite3 *db;
	struct cmp__tmp_acct *tmp; /* its temp files (cmp_tmpvfs.c) */
	bool *known; /* per result column: type from a declaration or values */
	uint64_t deadline_ms;
	uint64_t time_ms;
	bool timed_out;
	uint64_t steps;     /* progress callbacks (every PROGRESS_STEPS VM steps) */
	uint64_t steps_max; /* thousands of VM steps, 0: no limit */
	cmp__watch watch;   /* the deadline, enforced by the watchdog */
	bool watched;       /* the watchdog has it: no clock reads here */
	bool stepped_out;
	cmp_cancel *cancel; /* may be NULL */
	bool cancelled;
	char denied[160]; /* what the authorizer refused, for the message */
};

static int authorizer(void *ud, int action, const char *a1, const char *a2, const char *db,
                      const char *trigger)
{
	struct run *r = ud;
	(void)trigger;
	if (r->denied[0] && action != SQLITE_SELECT && action != SQLITE_READ)
		return SQLITE_DENY; /* keep the first reason */
	switch (action) {
	case SQLITE_SELECT:
	case SQLITE_READ:
	case SQLITE_RECURSIVE:
		return SQLITE_OK;
	case SQLITE_FUNCTION:
		for (size_t i = 0; i < sizeof(allowed_fns) / sizeof(allowed_fns[0]); i++)
			if (a2 && strcasecmp(a2, allowed_fns[i]) == 0)
				return SQLITE_OK;
		snprintf(r->denied, sizeof(r->denied), "function %s() is not allowed",
		         a2 ? a2 : "?");
		return SQLITE_DENY;
	case SQLITE_INSERT:
	case SQLITE_UPDATE:
	case SQLITE_DELETE:
		if (db && strcmp(db, "temp") == 0)
			return SQLITE_OK;
		snprintf(r->denied, sizeof(r->denied), "writing to %s is not allowed",
		         a1 ? a1 : "a table");
		return SQLITE_DENY;
	case SQLITE_CREATE_TEMP_TABLE:
	case SQLITE_CREATE_TEMP_VIEW:
	case SQLITE_CREATE_TEMP_INDEX:
	case SQLITE_DROP_TEMP_TABLE:
	case SQLITE_DROP_TEMP_VIEW:
	case SQLITE_DROP_TEMP_INDEX:
		return SQLITE_OK;
	case SQLITE_PRAGMA:
		snprintf(r->denied, sizeof(r->denied), "PRAGMA %s is not allowed", a1 ? a1 : "");
		return SQLITE_DENY;
	case SQLITE_ATTACH:
	case SQLITE_DETACH:
		snprintf(r->denied, sizeof(r->denied), "ATTACH and DETACH are not allowed");
		return SQLITE_DENY;
	default:
		snprintf(r->denied, sizeof(r->denied), "this operation is not allowed (code %d)",
		         action);
		return SQLITE_DENY;
	}
}

/* VM steps between two calls of the progress handler. SQLite calls it only
 * at jumps; the watchdog's interrupt is what stops a run at its deadline,
 * the handler catches an interrupt SQLite dropped between two statements
 * and counts the steps of admission checks. */
#define PROGRESS_STEPS 100

static int progress(void *ud)
{
	struct run *r = ud;
	if (cmp_cancel_fired(r->cancel)) {
		r->cancelled = true;
		return 1;
	}
	/* steps_max is in thousands: the check fails at the same step as when
	 * the handler ran every 1000 steps */
	if (r->steps_max && ++r->steps >= (r->steps_max + 1) * (1000 / PROGRESS_STEPS)) {
		r->stepped_out = true;
		return 1;
	}
	/* the clock only without a watchdog: read every 100 steps it made a
	 * simple query 50-65% slower on the development host, where
	 * clock_gettime is slow (a flag is an atomic load) */
	if (cmp__watch_fired(&r->watch) || (!r->watched && dcr_mono_ms() >= r->deadline_ms)) {
		r->timed_out = true;
		return 1;
	}
	return 0;
}

static void lock_down(struct run *r, size_t ninputs)
{
	sqlite3 *db = r->db;
	sqlite3_limit(db, SQLITE_LIMIT_LENGTH, (int)DCR_SQL_VALUE_BYTES_MAX);
	sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, (int)(2 * DCR_SQL_QUERY_BYTES_MAX));
	sqlite3_limit(db, SQLITE_LIMIT_COLUMN, 1000);
	sqlite3_limit(db, SQLITE_LIMIT_EXPR_DEPTH, 200);
	sqlite3_limit(db, SQLITE_LIMIT_COMPOUND_SELECT, 64);
	sqlite3_limit(db, SQLITE_LIMIT_VDBE_OP, 1000000);
	sqlite3_limit(db, SQLITE_LIMIT_FUNCTION_ARG, 64);
	sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, (int)ninputs);
	sqlite3_limit(db, SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 100);
	sqlite3_limit(db, SQLITE_LIMIT_VARIABLE_NUMBER, 0);
	sqlite3_limit(db, SQLITE_LIMIT_TRIGGER_DEPTH, 1);
	sqlite3_limit(db, SQLITE_LIMIT_WORKER_THREADS, 0);
	sqlite3_set_authorizer(db, authorizer, r);
	sqlite3_progress_handler(db, PROGRESS_STEPS, progress, r);
}

/* Opens the run's connection with the inputs in place, not yet locked
 * down: the images (an empty table where image is NULL), or empty tables
 * (FILL_EMPTY), or tables of one made-up row (FILL_PROBE: 1, 1.5, 'a') to
 * learn the types of computed result columns. */
static int open_inputs(struct run *r, const cmp_input *inputs, size_t ninputs, int fill,
                       uint64_t cache_kib, dcr_err *err)
{
	int rc;
	bool empty = fill != FILL_IMAGES;
	dcr_buf sql;
	dcr_buf_init(&sql);
	if (ninputs > DCR_SQL_INPUTS_MAX)
		return dcr_err_set(err, DCR_ELIMIT, "at most %u inputs per query",
		                   DCR_SQL_INPUTS_MAX);
	if ((rc = open_plain(&r->db, err)))
		return rc;
	char **tables = dcr_calloc(ninputs + 1, sizeof(char *)); /* table name in each image */
	if ((rc = cmp__register_printf(r->db))) {
		rc = sql_err(r->db, err, "registering printf");
		goto out;
	}
	if ((rc = cmp__register_strfns(r->db))) {
		rc = sql_err(r->db, err, "registering instr, replace and trim");
		goto out;
	}
	/* temp_store=FILE: SQLite's sorter then sorts in one bulk buffer
	 * (with MEMORY it mallocs every record, about 1.5x slower for a
	 * GROUP BY over 300k rows); temp data stays in memory up to the
	 * cache size and only then spills to an unlinked file in
	 * SQLITE_TMPDIR/TMPDIR (docs/compute.md). The sorter sorts runs of
	 * the main schema's cache size (which holds no data: the inputs are
	 * attached and read through mmap); 1 MiB runs fit the CPU caches and
	 * make a GROUP BY over 300k rows ~30% cheaper than 64 MiB ones. The
	 * temp schema (temp tables, materialised views) gets the rest. */
	char pragmas[160];
	snprintf(pragmas, sizeof(pragmas),
	         "PRAGMA temp_store=FILE; PRAGMA main.cache_size=-1024; "
	         "PRAGMA temp.cache_size=-%llu",
	         (unsigned long long)(cache_kib ? cache_kib : 65536));
	if ((rc = exec(r->db, pragmas, err)))
		goto out;
	for (size_t i = 0; i < ninputs; i++) {
		const cmp_input *in = &inputs[i];
		if (!name_ok(in->name)) {
			rc = dcr_err_set(err, DCR_EINVALID, "invalid input name \"%s\"", in->name);
			goto out;
		}
		for (size_t j = 0; j < i; j++)
			if (strcasecmp(inputs[j].name, in->name) == 0) {
				rc = dcr_err_set(err, DCR_EINVALID, "input \"%s\" given twice",
				                 in->name);
				goto out;
			}
		char *schema = dcr_asprintf("in_%s", in->name);
		dcr_buf_reset(&sql);
		dcr_buf_append_str(&sql, "ATTACH ':memory:' AS ");
		cmp__sql_ident(&sql, schema);
		rc = exec(r->db, dcr_buf_cstr(&sql), err);
		if (!rc && (empty || !in->image || in->image_n == 0)) {
			dcr_buf_reset(&sql);
			create_table_sql(&sql, schema, in->name, &in->schema);
			if (fill == FILL_PROBE) {
				dcr_buf_append_str(&sql, "; INSERT INTO ");
				cmp__sql_ident(&sql, schema);
				dcr_buf_append_u8(&sql, '.');
				cmp__sql_ident(&sql, in->name);
				dcr_buf_append_str(&sql, " VALUES(");
				for (size_t c = 0; c < in->schema.ncols; c++) {
					enum cmp_type t = in->schema.cols[c].type;
					dcr_buf_append_str(&sql, c ? "," : "");
					dcr_buf_append_str(&sql, t == CMP_INTEGER ? "1"
					                         : t == CMP_FLOAT ? "1.5"
					                                          : "'a'");
				}
				dcr_buf_append_u8(&sql, ')');
			}
			rc = exec(r->db, dcr_buf_cstr(&sql), err);
		} else if (!rc) {
			rc = sqlite3_deserialize(
			    r->db, schema, (unsigned char *)in->image, (sqlite3_int64)in->image_n,
			    (sqlite3_int64)in->image_n, SQLITE_DESERIALIZE_READONLY);
			if (rc != SQLITE_OK) {
				rc = sql_err(r->db, err, "loading an input");
			} else {
				/* Read pages in place (memdb's xFetch) instead of
				 * copying each into the page cache. */
				dcr_buf_reset(&sql);
				dcr_buf_append_str(&sql, "PRAGMA ");
				cmp__sql_ident(&sql, schema);
				dcr_buf_append_str(&sql, ".mmap_size=2147418112");
				rc = exec(r->db, dcr_buf_cstr(&sql), err);
			}
		}
		if (!rc && !empty && in->image && in->image_n) {
			/* The image's one table; a view gives it the input's name. */
			dcr_buf_reset(&sql);
			dcr_buf_append_str(&sql, "SELECT name FROM ");
			cmp__sql_ident(&sql, schema);
			dcr_buf_append_str(&sql, ".sqlite_schema WHERE type='table'");
			sqlite3_stmt *st = NULL;
			char *tname = NULL;
			int ntables = 0;
			if (sqlite3_prepare_v2(r->db, dcr_buf_cstr(&sql), -1, &st, NULL) !=
			    SQLITE_OK) {
				rc = dcr_err_set(err, DCR_EFORMAT,
				                 "input \"%s\": not a prepared table: %s", in->name,
				                 sqlite3_errmsg(r->db));
			} else {
				while (sqlite3_step(st) == SQLITE_ROW) {
					ntables++;
					free(tname);
					tname =
					    dcr_strdup((const char *)sqlite3_column_text(st, 0));
				}
				if (ntables != 1)
					rc = dcr_err_set(
					    err, DCR_EFORMAT,
					    "input \"%s\": the image holds %d tables, not one",
					    in->name, ntables);
			}
			sqlite3_finalize(st);
			if (!rc)
				tables[i] = tname;
			else
				free(tname);
		} else if (!rc) {
			tables[i] = dcr_strdup(in->name);
		}
		free(schema);
		if (rc)
			goto out;
	}
	/* SQLite finds an unqualified name in temp, then main, then the
	 * attached schemas in order. A temp view named after the input gives
	 * it its name when the image's table is named otherwise (results are
	 * "result"), and also when another input's table carries this input's
	 * name (it would otherwise be found first). */
	for (size_t i = 0; i < ninputs; i++) {
		bool view = strcasecmp(tables[i], inputs[i].name) != 0;
		for (size_t j = 0; j < ninputs && !view; j++)
			view = j != i && strcasecmp(tables[j], inputs[i].name) == 0;
		if (!view)
			continue;
		char *schema = dcr_asprintf("in_%s", inputs[i].name);
		dcr_buf_reset(&sql);
		dcr_buf_append_str(&sql, "CREATE TEMP VIEW ");
		cmp__sql_ident(&sql, inputs[i].name);
		dcr_buf_append_str(&sql, " AS SELECT * FROM ");
		cmp__sql_ident(&sql, schema);
		dcr_buf_append_u8(&sql, '.');
		cmp__sql_ident(&sql, tables[i]);
		free(schema);
		if ((rc = exec(r->db, dcr_buf_cstr(&sql), err)))
			goto out;
	}
out:
	for (size_t i = 0; i < ninputs; i++)
		free(tables[i]);
	free(tables);
	dcr_buf_release(&sql);
	return rc;
}

/* ---- results ------------------------------------------------------------------ */

void cmp_result_init(cmp_result *r)
{
	memset(r, 0, sizeof(*r));
	dcr_buf_init(&r->csv);
	dcr_buf_init(&r->image);
}

void cmp_result_release(cmp_result *r)
{
	if (!r)
		return;
	dcr_buf_release(&r->csv);
	dcr_buf_release(&r->image);
	for (size_t i = 0; i < r->ncols; i++)
		free((char *)r->cols[i].name);
	free(r->cols);
	memset(r, 0, sizeof(*r));
}

static void csv_field(dcr_buf *b, const char *s, size_t n)
{
	bool q = n == 0 || memchr(s, ',', n) || memchr(s, '"', n) || memchr(s, '\n', n) ||
	         memchr(s, '\r', n);
	if (!q) {
		dcr_buf_append(b, s, n);
		return;
	}
	dcr_buf_append_u8(b, '"');
	const char *e = s + n;
	while (s < e) {
		const char *qq = memchr(s, '"', (size_t)(e - s));
		size_t l = qq ? (size_t)(qq - s) + 1 : (size_t)(e - s);
		dcr_buf_append(b, s, l);
		if (qq)
			dcr_buf_append_u8(b, '"');
		s += l;
	}
	dcr_buf_append_u8(b, '"');
}

static enum cmp_type type_from_decl(const char *d, bool *known)
{
	*known = true;
	if (d) {
		/* SQLite's affinity rules (datatype3.html, 3.1). */
		char u[64];
		size_t i;
		for (i = 0; d[i] && i + 1 < sizeof(u); i++)
			u[i] = (char)((d[i] >= 'a' && d[i] <= 'z') ? d[i] - 32 : d[i]);
		u[i] = 0;
		if (strstr(u, "INT"))
			return CMP_INTEGER;
		if (strstr(u, "CHAR") || strstr(u, "CLOB") || strstr(u, "TEXT"))
			return CMP_STRING;
		if (strstr(u, "REAL") || strstr(u, "FLOA") || strstr(u, "DOUB"))
			return CMP_FLOAT;
	}
	*known = false;
	return CMP_STRING;
}

/* Type of a result column with no values to go by: from the function the
 * expression starts with (COUNT(...) is an integer, AVG(...) a float). */
static enum cmp_type type_from_expr(const char *name, bool *known)
{
	static const char *const ints[] = {"count(",      "length(", "row_number(", "rank(",
	                                   "dense_rank(", "ntile(",  "instr(",      "unicode("};
	static const char *const flts[] = {"avg(", "total(", "julianday(", "percent_rank(",
	                                   "cume_dist("};
	*known = true;
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
		if (name && strncasecmp(name, ints[i], strlen(ints[i])) == 0)
			return CMP_INTEGER;
	for (size_t i = 0; i < sizeof(flts) / sizeof(flts[0]); i++)
		if (name && strncasecmp(name, flts[i], strlen(flts[i])) == 0)
			return CMP_FLOAT;
	*known = false;
	return CMP_STRING;
}

struct colinfo {
	bool saw_int, saw_float, saw_text;
	enum cmp_type decl;
	bool decl_known;
};

/* Set of visible rows already output (UNION / DISTINCT under the privacy
 * filter): keys are type-tagged encodings, compared exactly. */
struct rowset {
	dcr_buf keys;
	size_t *off; /* slot -> key offset + 1 (0 = empty) */
	size_t cap, n;
	uint64_t *hash;
};

static bool rowset_add(struct rowset *s, const uint8_t *k, size_t n)
{
	if (s->n * 2 >= s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 1024;
		size_t *no = dcr_calloc(ncap, sizeof(size_t));
		uint64_t *nh = dcr_calloc(ncap, sizeof(uint64_t));
		for (size_t i = 0; i < s->cap; i++) {
			if (!s->off[i])
				continue;
			size_t j = s->hash[i] & (ncap - 1);
			while (no[j])
				j = (j + 1) & (ncap - 1);
			no[j] = s->off[i];
			nh[j] = s->hash[i];
		}
		free(s->off);
		free(s->hash);
		s->off = no;
		s->hash = nh;
		s->cap = ncap;
	}
	uint64_t h = cmp__hash(k, n);
	size_t j = h & (s->cap - 1);
	while (s->off[j]) {
		if (s->hash[j] == h) {
			size_t o = s->off[j] - 1, l;
			memcpy(&l, s->keys.data + o, sizeof(l));
			if (l == n && memcmp(s->keys.data + o + sizeof(l), k, n) == 0)
				return false;
		}
		j = (j + 1) & (s->cap - 1);
	}
	s->off[j] = s->keys.len + 1;
	s->hash[j] = h;
	dcr_buf_append(&s->keys, &n, sizeof(n));
	dcr_buf_append(&s->keys, k, n);
	s->n++;
	return true;
}

static void rowset_release(struct rowset *s)
{
	dcr_buf_release(&s->keys);
	free(s->off);
	free(s->hash);
}

/* The run's temporary files reached their quota (or their key's). */
static int tmp_error(const struct run *r, dcr_err *err)
{
	return dcr_err_set(err, DCR_ELIMIT,
	                   "query exceeded its temporary disk limit of %llu bytes (sorts and "
	                   "temporary tables that spill to disk), or its owner's disk quota",
	                   (unsigned long long)cmp__tmp_limit(r->tmp));
}

static int step_error(struct run *r, int src, const cmp_sql_limits *lim, struct mem_acct *a,
                      dcr_err *err)
{
	if (r->cancelled || cmp_cancel_fired(r->cancel))
		return dcr_err_set(err, DCR_ECANCELED, "the computation was cancelled");
	if (r->stepped_out)
		return dcr_err_set(err, DCR_ETIMEOUT,
		                   "query exceeded the work limit of %llu thousand steps "
		                   "on the check's tiny inputs",
		                   (unsigned long long)r->steps_max);
	if (r->timed_out || cmp__watch_fired(&r->watch))
		return dcr_err_set(err, DCR_ETIMEOUT, "query exceeded the time limit of %llu ms",
		                   (unsigned long long)r->time_ms);
	if (cmp__tmp_over(r->tmp))
		return tmp_error(r, err);
	if (a && __atomic_load_n(&a->over, __ATOMIC_RELAXED))
		return dcr_err_set(err, DCR_ELIMIT, "query exceeded the memory limit of %llu bytes",
		                   (unsigned long long)a->limit);
	if (src == SQLITE_NOMEM)
		return dcr_err_set(err, DCR_ELIMIT, "query ran out of memory");
	(void)lim;
	return dcr_err_set(err, DCR_ESQL, "%s", sqlite3_errmsg(r->db));
}

/* Steps stmt and writes the result. The last nhidden columns are the
 * privacy counts; a row is dropped unless every one of them reaches k. */
static int collect(struct run *r, sqlite3_stmt *st, size_t nhidden, long long k, bool dedup,
                   const cmp_sql_limits *lim, struct mem_acct *acct, bool want_image,
                   cmp_result *res, dcr_err *err)
{
	int rc = 0;
	int nall = sqlite3_column_count(st);
	int nc = nall - (int)nhidden;
	sqlite3 *out = NULL;
	sqlite3_stmt *ins = NULL;
	struct colinfo *ci = NULL;
	struct rowset seen = {0};
	dcr_buf key, sql;
	dcr_buf_init(&key);
	dcr_buf_init(&sql);
	if (nc <= 0 || nc > (int)DCR_SQL_COLS_MAX) {
		rc = dcr_err_set(err, DCR_ELIMIT, "the result has %d columns (at most %u)", nc,
		                 DCR_SQL_COLS_MAX);
		goto out;
	}
	ci = dcr_calloc((size_t)nc, sizeof(*ci));
	res->cols = dcr_calloc((size_t)nc, sizeof(cmp_column));
	res->ncols = (size_t)nc;
	for (int c = 0; c < nc; c++) {
		const char *nm = sqlite3_column_name(st, c);
		char *name = dcr_strdup(nm && *nm ? nm : "column");
		/* Unique names: downstream they are table columns. */
		for (int suffix = 2;; suffix++) {
			bool dup = false;
			for (int j = 0; j < c; j++)
				dup = dup || strcasecmp(res->cols[j].name, name) == 0;
			if (!dup)
				break;
			free(name);
			name = dcr_asprintf("%s_%d", nm && *nm ? nm : "column", suffix);
		}
		res->cols[c].name = name;
		res->cols[c].nullable = true;
		ci[c].decl = type_from_decl(sqlite3_column_decltype(st, c), &ci[c].decl_known);
		if (!ci[c].decl_known)
			ci[c].decl = type_from_expr(nm, &ci[c].decl_known);
		if (c)
			dcr_buf_append_u8(&res->csv, ',');
		csv_field(&res->csv, name, strlen(name));
	}
	dcr_buf_append_str(&res->csv, "\r\n");
	if (want_image) {
		if ((rc = open_plain(&out, err)))
			goto out;
		dcr_buf_append_str(&sql, "PRAGMA journal_mode=OFF; CREATE TABLE raw(");
		for (int c = 0; c < nc; c++)
			dcr_buf_printf(&sql, "%sc%d", c ? "," : "", c);
		dcr_buf_append_str(&sql, "); BEGIN");
		if ((rc = exec(out, dcr_buf_cstr(&sql), err)))
			goto out;
		dcr_buf_reset(&sql);
		dcr_buf_append_str(&sql, "INSERT INTO raw VALUES(");
		for (int c = 0; c < nc; c++)
			dcr_buf_append_str(&sql, c ? ",?" : "?");
		dcr_buf_append_u8(&sql, ')');
		if (sqlite3_prepare_v2(out, dcr_buf_cstr(&sql), -1, &ins, NULL) != SQLITE_OK) {
			rc = sql_err(out, err, "result table");
			goto out;
		}
	}
	for (;;) {
		int s = sqlite3_step(st);
		if (s == SQLITE_DONE)
			break;
		if (s != SQLITE_ROW) {
			rc = step_error(r, s, lim, acct, err);
			goto out;
		}
		bool small = false;
		for (size_t h = 0; h < nhidden; h++)
			small = small || sqlite3_column_int64(st, nc + (int)h) < k;
		if (small) {
			res->suppressed++;
			continue;
		}
		if (dedup) {
			dcr_buf_reset(&key);
			for (int c = 0; c < nc; c++) {
				int t = sqlite3_column_type(st, c);
				dcr_buf_append_u8(&key, (uint8_t)t);
				if (t == SQLITE_INTEGER) {
					int64_t v = sqlite3_column_int64(st, c);
					dcr_buf_append(&key, &v, sizeof(v));
				} else if (t == SQLITE_FLOAT) {
					double v = sqlite3_column_double(st, c);
					dcr_buf_append(&key, &v, sizeof(v));
				} else if (t != SQLITE_NULL) {
					const void *p = sqlite3_column_blob(st, c);
					size_t l = (size_t)sqlite3_column_bytes(st, c);
					dcr_buf_append(&key, &l, sizeof(l));
					dcr_buf_append(&key, p, l);
				}
			}
			if (!rowset_add(&seen, key.data, key.len))
				continue;
		}
		if (res->rows >= lim->rows_max) {
			rc = dcr_err_set(err, DCR_ELIMIT,
			                 "query result exceeded the row limit of %llu rows",
			                 (unsigned long long)lim->rows_max);
			goto out;
		}
		res->rows++;
		for (int c = 0; c < nc; c++) {
			if (c)
				dcr_buf_append_u8(&res->csv, ',');
			int t = sqlite3_column_type(st, c);
			if (t == SQLITE_INTEGER) {
				ci[c].saw_int = true;
				dcr_buf_printf(&res->csv, "%lld",
				               (long long)sqlite3_column_int64(st, c));
			} else if (t == SQLITE_FLOAT) {
				ci[c].saw_float = true;
				const char *txt = (const char *)sqlite3_column_text(st, c);
				dcr_buf_append_str(&res->csv, txt ? txt : "");
			} else if (t == SQLITE_TEXT) {
				ci[c].saw_text = true;
				const char *txt = (const char *)sqlite3_column_text(st, c);
				size_t l = (size_t)sqlite3_column_bytes(st, c);
				if (cmp__utf8_valid_prefix((const uint8_t *)txt, l) != l) {
					rc = dcr_err_set(
					    err, DCR_ESQL,
					    "result column \"%s\" holds text that is not "
					    "valid UTF-8",
					    res->cols[c].name);
					goto out;
				}
				csv_field(&res->csv, txt, l);
			} else if (t == SQLITE_BLOB) {
				ci[c].saw_text = true;
				const uint8_t *p = sqlite3_column_blob(st, c);
				size_t l = (size_t)sqlite3_column_bytes(st, c);
				char *hx = dcr_malloc(2 * l + 1);
				dcr_hex_encode(p, l, hx);
				dcr_buf_append(&res->csv, hx, 2 * l);
				free(hx);
			}
			if (ins) {
				if (t == SQLITE_BLOB) {
					const uint8_t *p = sqlite3_column_blob(st, c);
					size_t l = (size_t)sqlite3_column_bytes(st, c);
					char *hx = dcr_malloc(2 * l + 1);
					dcr_hex_encode(p, l, hx);
					sqlite3_bind_text64(ins, c + 1, hx, 2 * l, free,
					                    SQLITE_UTF8);
				} else {
					sqlite3_bind_value(ins, c + 1, sqlite3_column_value(st, c));
				}
			}
		}
		dcr_buf_append_str(&res->csv, "\r\n");
		if (res->csv.len > lim->bytes_max) {
			rc = dcr_err_set(err, DCR_ELIMIT,
			                 "query result exceeded the size limit of %llu bytes",
			                 (unsigned long long)lim->bytes_max);
			goto out;
		}
		if (ins) {
			if (sqlite3_step(ins) != SQLITE_DONE) {
				rc = step_error(r, SQLITE_ERROR, lim, acct, err);
				if (!r->timed_out && !cmp__watch_fired(&r->watch) &&
				    !(acct && acct->over))
					rc = sql_err(out, err, "result table");
				goto out;
			}
			sqlite3_reset(ins);
		}
	}
	for (int c = 0; c < nc; c++) {
		enum cmp_type t;
		if (ci[c].saw_text)
			t = CMP_STRING;
		else if (ci[c].saw_float)
			t = CMP_FLOAT;
		else if (ci[c].saw_int)
			t = ci[c].decl_known && ci[c].decl == CMP_FLOAT ? CMP_FLOAT : CMP_INTEGER;
		else
			t = ci[c].decl;
		res->cols[c].type = t;
		if (r->known)
			r->known[c] =
			    ci[c].saw_text || ci[c].saw_float || ci[c].saw_int || ci[c].decl_known;
	}
	if (out) {
		sqlite3_finalize(ins);
		ins = NULL;
		cmp_schema rs = {res->cols, res->ncols};
		dcr_buf_reset(&sql);
		create_table_sql(&sql, NULL, "result", &rs);
		dcr_buf_append_str(
		    &sql, "; INSERT INTO result SELECT * FROM raw; DROP TABLE raw; COMMIT; VACUUM");
		if ((rc = exec(out, dcr_buf_cstr(&sql), err)))
			goto out;
		rc = image_out(out, &res->image, err);
	}
out:
	sqlite3_finalize(ins);
	sqlite3_close(out);
	rowset_release(&seen);
	dcr_buf_release(&key);
	dcr_buf_release(&sql);
	free(ci);
	return rc;
}

static void limits_default(const cmp_sql_limits *in, cmp_sql_limits *out)
{
	cmp_sql_limits z = {0};
	if (!in)
		in = &z;
	out->time_ms = in->time_ms ? in->time_ms : DCR_SQL_TIME_MS_DEFAULT;
	out->memory_bytes = in->memory_bytes ? in->memory_bytes : DCR_SQL_MEMORY_BYTES_DEFAULT;
	out->rows_max = in->rows_max ? in->rows_max : DCR_SQL_ROWS_MAX_DEFAULT;
	out->bytes_max = in->bytes_max ? in->bytes_max : DCR_SQL_BYTES_MAX_DEFAULT;
	out->steps_max = in->steps_max;
	out->cancel = in->cancel;
	out->tmp_bytes = in->tmp_bytes;
}

static bool tail_empty(const char *tail, dcr_err *err)
{
	cmp__tok *t = NULL;
	size_t nt = 0;
	if (!tail)
		return true;
	if (cmp__sql_tokenize(tail, strlen(tail), &t, &nt, err))
		return false;
	bool empty = true;
	for (size_t i = 0; i < nt; i++)
		empty = empty && cmp__tok_is(tail, &t[i], ";");
	free(t);
	return empty;
}

/* Shared by check and run: opens, locks down, prepares, collects. */
static int sql_do(const char *query, const cmp_input *inputs, size_t ninputs, long long min_rows,
                  const cmp_sql_limits *lim_in, int fill, bool *known, cmp_result *res,
                  dcr_err *err)
{
	struct run r;
	memset(&r, 0, sizeof(r));
	r.known = known;
	cmp_sql_limits lim;
	limits_default(lim_in, &lim);
	cmp__rewrite rw = {0};
	sqlite3_stmt *st = NULL;
	struct mem_acct *acct = NULL;
	struct mem_acct *prev = mem_cur;
	struct cmp__tmp_acct *tmp_prev = NULL;
	cmp_result local;
	cmp_result_init(&local);
	int rc;
	sqlite_once_init();
	if ((rc = cmp__sql_shape(query, err)))
		goto out;
	if (min_rows > 0 && (rc = cmp__privacy_rewrite(query, inputs, ninputs, &rw, err)))
		goto out;
	if (!mem_on) {
		/* Fail closed: without the allocator hook nothing bounds a run's
		 * memory (SQLite was initialised before compute could hook it). */
		rc = dcr_err_set(err, DCR_EINTERNAL,
		                 "the SQL memory limit cannot be enforced (SQLite refused "
		                 "the accounting allocator: it was initialised before "
		                 "compute); refusing to run the query");
		goto out;
	}
	{
		acct = calloc(1, sizeof(*acct));
		if (!acct)
			abort();
		acct->limit = lim.memory_bytes;
		acct->refs = 1;
		mem_cur = acct;
	}
	r.tmp = cmp__tmp_begin(lim.tmp_bytes, &tmp_prev);
	r.time_ms = lim.time_ms;
	r.deadline_ms = dcr_mono_ms() + lim.time_ms;
	r.steps_max = lim.steps_max;
	r.cancel = lim.cancel;
	/* Page cache: a quarter of the memory limit, at most 64 MiB. */
	uint64_t cache_kib = lim.memory_bytes / 4 / 1024;
	if (cache_kib > 65536)
		cache_kib = 65536;
	if ((rc = open_inputs(&r, inputs, ninputs, fill, cache_kib, err)))
		goto out;
	lock_down(&r, ninputs);
	cmp__cancel_attach(r.cancel, r.db);
	r.watched = cmp__watch_start(&r.watch, r.db, r.deadline_ms);
	const char *sql = rw.sql ? rw.sql : query;
	const char *tail = NULL;
	if (sqlite3_prepare_v3(r.db, sql, -1, 0, &st, &tail) != SQLITE_OK) {
		if (r.denied[0])
			rc = dcr_err_set(err, DCR_EDENIED, "%s", r.denied);
		else if (r.timed_out || cmp__watch_fired(&r.watch) || r.cancelled ||
		         (acct && acct->over))
			rc = step_error(&r, SQLITE_ERROR, &lim, acct, err);
		else
			rc = dcr_err_set(err, DCR_ESQL, "%s", sqlite3_errmsg(r.db));
		goto out;
	}
	if (!st) {
		rc = dcr_err_set(err, DCR_ESQL, "the query is empty");
		goto out;
	}
	if (!tail_empty(tail, err)) {
		rc = dcr_err_set(err, DCR_ESQL, "only one statement is allowed");
		goto out;
	}
	if (!sqlite3_stmt_readonly(st)) {
		rc = dcr_err_set(err, DCR_ESQL, "only a SELECT statement is allowed");
		goto out;
	}
	rc = collect(&r, st, rw.nhidden, min_rows, rw.dedup, &lim, acct, fill == FILL_IMAGES,
	             &local, err);
	if (rc)
		goto out;
	if (res) {
		cmp_result_release(res);
		*res = local;
		cmp_result_init(&local);
	}
out:
	/* A full temp quota can surface as any SQLite error (a write of the
	 * result table, a VACUUM): name the quota, whatever failed. */
	if (rc && cmp__tmp_over(r.tmp) && rc != DCR_ECANCELED && rc != DCR_ETIMEOUT)
		rc = tmp_error(&r, err);
	cmp__watch_stop(&r.watch); /* before the connection closes */
	cmp__cancel_detach(r.cancel);
	sqlite3_finalize(st);
	sqlite3_close(r.db);
	cmp_result_release(&local);
	cmp__rewrite_release(&rw);
	mem_cur = prev;
	if (acct)
		acct_unref(acct);
	if (r.tmp)
		cmp__tmp_end(r.tmp, tmp_prev);
	return rc;
}

int cmp_sql_check(const char *query, const cmp_input *inputs, size_t ninputs, long long min_rows,
                  cmp_result *res, dcr_err *err)
{
	cmp_result local, probe;
	cmp_result_init(&local);
	cmp_result_init(&probe);
	bool known[DCR_SQL_COLS_MAX], pknown[DCR_SQL_COLS_MAX];
	/* On empty tables a query takes no time, unless it makes up its own
	 * data (an endless recursive CTE): a short limit keeps saving a room
	 * definition quick. */
	cmp_sql_limits lim = {.time_ms = DCR_SQL_CHECK_TIME_MS, .steps_max = DCR_SQL_CHECK_STEPS};
	int rc = sql_do(query, inputs, ninputs, min_rows, &lim, FILL_EMPTY, known, &local, err);
	if (rc)
		goto out;
	bool all = true;
	for (size_t c = 0; c < local.ncols; c++)
		all = all && known[c];
	/* Computed columns on empty tables give no values (a GROUP BY has no
	 * groups): learn their types from a run on one made-up row per input
	 * (without the privacy filter; its result is only types). */
	dcr_err perr;
	if (!all &&
	    sql_do(query, inputs, ninputs, 0, &lim, FILL_PROBE, pknown, &probe, &perr) == 0 &&
	    probe.ncols == local.ncols)
		for (size_t c = 0; c < local.ncols; c++)
			if (!known[c] && pknown[c])
				local.cols[c].type = probe.cols[c].type;
	if (res) {
		cmp_result_release(res);
		*res = local;
		cmp_result_init(&local);
	}
out:
	cmp_result_release(&local);
	cmp_result_release(&probe);
	return rc;
}

int cmp_sql_run(const char *query, const cmp_input *inputs, size_t ninputs, long long min_rows,
                const cmp_sql_limits *lim, cmp_result *res, dcr_err *err)
{
	return sql_do(query, inputs, ninputs, min_rows, lim, FILL_IMAGES, NULL, res, err);
}
