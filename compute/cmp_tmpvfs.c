/* cmp_tmpvfs.c: a bounded place for the temporary files of SQL runs.
 *
 * A run's connection keeps temp data (sorter runs, materialised views,
 * temp tables) in memory up to its temp cache, then spills it to temporary
 * files (temp_store=FILE, see open_inputs in cmp_sql.c). Unbounded, one
 * ORDER BY filled 300 MiB of /tmp in 2 s. Every connection of compute is
 * therefore opened on the VFS "dcr-tmp", a thin shim over the default one
 * (unix) that:
 *
 *   - puts temporary files (SQLite gives no name) into the directory set by
 *     cmp_sql_tmp_setup (dcrd: DIR/sqltmp, emptied at start), named
 *     sql-<random hex>; the unix VFS unlinks each at once (DELETEONCLOSE),
 *     so a crash leaves nothing but what the next start removes;
 *   - counts the bytes of every file opened through it against the account
 *     of the run whose thread opened it (cmp__tmp_begin: thread-local, as
 *     the memory accounting of cmp_sql.c) and against the run's shared
 *     budget if it has one (a key's disk quota, cmp_tmp_budget); a write
 *     that would grow the files past either answers SQLITE_FULL, the
 *     statement fails, and cmp_sql.c reports "temporary disk limit"
 *     (class `temp disk limit`).
 *
 * Sizes are logical (the highest byte written), never the blocks the file
 * system allocated: a run cannot pass its quota with sparse writes. Memory
 * mapping of temp files is refused (io methods version 1), so every byte
 * goes through xWrite. */
#include <dirent.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compute_sql.h"

#define TMP_VFS_NAME "dcr-tmp"

struct cmp_tmp_budget {
	uint64_t used;  /* atomic */
	uint64_t limit; /* atomic */
	uint64_t refs;  /* atomic */
};

struct cmp__tmp_acct {
	uint64_t used; /* atomic: files of one run can close on any thread */
	uint64_t limit;
	uint64_t refs; /* atomic: open files + 1 while the run holds it */
	int over;      /* atomic: a write was refused */
	cmp_tmp_budget *budget; /* shared (a key's), may be NULL; one ref */
};

struct tfile {
	sqlite3_file base;
	sqlite3_file *real; /* the default VFS's file, right after this struct */
	struct cmp__tmp_acct *acct;
	sqlite3_int64 size; /* highest byte written, counted in acct */
	char name[512 + 2]; /* our temp name, double-NUL terminated; the unix
	                       VFS keeps a pointer to it while the file is open */
};

#define TFILE_HDR ((sizeof(struct tfile) + 7) & ~(size_t)7)

static sqlite3_vfs *real_vfs;
static sqlite3_vfs shim;
static char *tmp_dir;                /* set at start (cmp_sql_tmp_setup), read-only after */
static uint64_t tmp_run_bytes_default = DCR_SQL_TMP_BYTES_DEFAULT;
static __thread struct cmp__tmp_acct *tmp_cur;
static __thread cmp_tmp_budget *tmp_budget_cur;

/* ---- budgets and accounts ---------------------------------------------------- */

cmp_tmp_budget *cmp_tmp_budget_new(uint64_t limit_bytes)
{
	cmp_tmp_budget *b = dcr_calloc(1, sizeof *b);
	b->limit = limit_bytes;
	b->refs = 1;
	return b;
}

void cmp_tmp_budget_set_limit(cmp_tmp_budget *b, uint64_t limit_bytes)
{
	__atomic_store_n(&b->limit, limit_bytes, __ATOMIC_RELAXED);
}

uint64_t cmp_tmp_budget_used(const cmp_tmp_budget *b)
{
	return __atomic_load_n(&b->used, __ATOMIC_RELAXED);
}

static void budget_ref(cmp_tmp_budget *b)
{
	__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
}

void cmp_tmp_budget_unref(cmp_tmp_budget *b)
{
	if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(b);
}

cmp_tmp_budget *cmp_tmp_budget_enter(cmp_tmp_budget *b)
{
	cmp_tmp_budget *prev = tmp_budget_cur;
	tmp_budget_cur = b;
	return prev;
}

static void acct_unref(struct cmp__tmp_acct *a)
{
	if (__atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		cmp_tmp_budget_unref(a->budget);
		free(a);
	}
}

struct cmp__tmp_acct *cmp__tmp_begin(uint64_t limit_bytes, struct cmp__tmp_acct **prev)
{
	struct cmp__tmp_acct *a = dcr_calloc(1, sizeof *a);
	a->limit = limit_bytes ? limit_bytes : tmp_run_bytes_default;
	a->refs = 1;
	a->budget = tmp_budget_cur;
	if (a->budget)
		budget_ref(a->budget);
	*prev = tmp_cur;
	tmp_cur = a;
	return a;
}

void cmp__tmp_end(struct cmp__tmp_acct *a, struct cmp__tmp_acct *prev)
{
	tmp_cur = prev;
	if (a)
		acct_unref(a);
}

bool cmp__tmp_over(const struct cmp__tmp_acct *a)
{
	return a && __atomic_load_n(&a->over, __ATOMIC_RELAXED);
}

uint64_t cmp__tmp_limit(const struct cmp__tmp_acct *a)
{
	return a ? a->limit : 0;
}

/* Charges n more bytes; false (and the account marked over) past a limit. */
static bool charge(struct cmp__tmp_acct *a, uint64_t n)
{
	cmp_tmp_budget *b = a->budget;
	if (__atomic_add_fetch(&a->used, n, __ATOMIC_RELAXED) > a->limit)
		goto refuse_run;
	if (b && __atomic_add_fetch(&b->used, n, __ATOMIC_RELAXED) >
	             __atomic_load_n(&b->limit, __ATOMIC_RELAXED)) {
		__atomic_sub_fetch(&b->used, n, __ATOMIC_RELAXED);
		goto refuse_run;
	}
	return true;
refuse_run:
	__atomic_sub_fetch(&a->used, n, __ATOMIC_RELAXED);
	__atomic_store_n(&a->over, 1, __ATOMIC_RELAXED);
	return false;
}

static void credit(struct cmp__tmp_acct *a, uint64_t n)
{
	__atomic_sub_fetch(&a->used, n, __ATOMIC_RELAXED);
	if (a->budget)
		__atomic_sub_fetch(&a->budget->used, n, __ATOMIC_RELAXED);
}

/* ---- io methods ------------------------------------------------------------- */

static int t_close(sqlite3_file *f)
{
	struct tfile *t = (struct tfile *)f;
	int rc = t->real->pMethods ? t->real->pMethods->xClose(t->real) : SQLITE_OK;
	if (t->acct) {
		credit(t->acct, (uint64_t)t->size);
		acct_unref(t->acct);
		t->acct = NULL;
	}
	return rc;
}

static int t_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
	struct tfile *t = (struct tfile *)f;
	return t->real->pMethods->xRead(t->real, p, n, off);
}

static int t_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
	struct tfile *t = (struct tfile *)f;
	sqlite3_int64 end = off + n, grow = 0;
	int rc;
	if (t->acct && end > t->size) {
		grow = end - t->size;
		if (!charge(t->acct, (uint64_t)grow))
			return SQLITE_FULL;
	}
	rc = t->real->pMethods->xWrite(t->real, p, n, off);
	if (rc != SQLITE_OK) {
		if (grow)
			credit(t->acct, (uint64_t)grow);
		return rc;
	}
	if (end > t->size)
		t->size = end;
	return SQLITE_OK;
}

static int t_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct tfile *t = (struct tfile *)f;
	int rc = t->real->pMethods->xTruncate(t->real, size);
	if (rc == SQLITE_OK && size < t->size) {
		if (t->acct)
			credit(t->acct, (uint64_t)(t->size - size));
		t->size = size;
	}
	return rc;
}

static int t_sync(sqlite3_file *f, int flags)
{
	struct tfile *t = (struct tfile *)f;
	return t->real->pMethods->xSync(t->real, flags);
}

static int t_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	struct tfile *t = (struct tfile *)f;
	return t->real->pMethods->xFileSize(t->real, size);
}

static int t_lock(sqlite3_file *f, int lvl)
{
	struct tfile *t = (struct tfile *)f;
	return t->real->pMethods->xLock(t->real, lvl);
}

static int t_unlock(sqlite3_file *f, int lvl)
{
	struct tfile *t = (struct tfile *)f;
	return t->real->pMethods->xUnlock(t->real, lvl);
}

static int t_check_lock(sqlite3_file *f, int *out)
{
	struct tfile *t = (struct tfile *)f;
	return t->real->pMethods->xCheckReservedLock(t->real, out);
}

static int t_file_control(sqlite3_file *f, int op, void *arg)
{
	struct tfile *t = (struct tfile *)f;
	/* A size hint grows the file outside xWrite (sparse, but past our
	 * count); memory mapping would bypass xWrite: ignore both. */
	if (op == SQLITE_FCNTL_SIZE_HINT)
		return SQLITE_OK;
	if (op == SQLITE_FCNTL_MMAP_SIZE) {
		*(sqlite3_int64 *)arg = 0;
		return SQLITE_OK;
	}
	return t->real->pMethods->xFileControl(t->real, op, arg);
}

static int t_sector_size(sqlite3_file *f)
{
	struct tfile *t = (struct tfile *)f;
	return t->real->pMethods->xSectorSize(t->real);
}

static int t_device_chars(sqlite3_file *f)
{
	struct tfile *t = (struct tfile *)f;
	return t->real->pMethods->xDeviceCharacteristics(t->real);
}

/* Version 1: no shared memory (temp files have no WAL) and no xFetch. */
static const sqlite3_io_methods tfile_methods = {
    1,       t_close,        t_read,         t_write,       t_truncate,
    t_sync,  t_file_size,    t_lock,         t_unlock,      t_check_lock,
    t_file_control, t_sector_size, t_device_chars, NULL, NULL, NULL, NULL, NULL, NULL,
};

/* ---- the VFS ---------------------------------------------------------------------- */

static int v_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags,
                  int *out_flags)
{
	struct tfile *t = (struct tfile *)f;
	int rc;
	(void)vfs;
	memset(t, 0, sizeof *t);
	t->real = (sqlite3_file *)((char *)f + TFILE_HDR);
	if (!name && tmp_dir) {
		uint8_t rnd[12];
		char hex[2 * sizeof rnd + 1];
		int k;
		dcr_random(rnd, sizeof rnd);
		dcr_hex_encode(rnd, sizeof rnd, hex);
		k = snprintf(t->name, sizeof t->name - 1, "%s/sql-%s", tmp_dir, hex);
		if (k < 0 || (size_t)k >= sizeof t->name - 1)
			return SQLITE_CANTOPEN;
		t->name[k + 1] = 0; /* double NUL, as sqlite3_uri_parameter expects */
		name = t->name;
		flags |= SQLITE_OPEN_DELETEONCLOSE | SQLITE_OPEN_CREATE | SQLITE_OPEN_EXCLUSIVE;
	}
	rc = real_vfs->xOpen(real_vfs, name, t->real, flags, out_flags);
	if (rc != SQLITE_OK) {
		if (t->real->pMethods)
			t->real->pMethods->xClose(t->real);
		t->base.pMethods = NULL;
		return rc;
	}
	t->acct = tmp_cur;
	if (t->acct)
		__atomic_add_fetch(&t->acct->refs, 1, __ATOMIC_RELAXED);
	t->base.pMethods = &tfile_methods;
	return SQLITE_OK;
}

static int v_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	(void)vfs;
	return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int v_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *v_dl_open(sqlite3_vfs *vfs, const char *name)
{
	(void)vfs;
	(void)name;
	return NULL; /* extensions are never loaded */
}

static void v_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
	(void)vfs;
	if (n > 0)
		snprintf(msg, (size_t)n, "extensions are not loaded");
}

static void (*v_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	(void)vfs;
	(void)h;
	(void)sym;
	return NULL;
}

static void v_dl_close(sqlite3_vfs *vfs, void *h)
{
	(void)vfs;
	(void)h;
}

static int v_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs->xRandomness(real_vfs, n, out);
}

static int v_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return real_vfs->xSleep(real_vfs, us);
}

static int v_current_time(sqlite3_vfs *vfs, double *out)
{
	(void)vfs;
	return real_vfs->xCurrentTime(real_vfs, out);
}

static int v_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, n, out) : 0;
}

static int v_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	(void)vfs;
	if (real_vfs->iVersion >= 2 && real_vfs->xCurrentTimeInt64)
		return real_vfs->xCurrentTimeInt64(real_vfs, out);
	double d;
	int rc = real_vfs->xCurrentTime(real_vfs, &d);
	*out = (sqlite3_int64)(d * 86400000.0);
	return rc;
}

void cmp__tmp_register(void)
{
	real_vfs = sqlite3_vfs_find(NULL);
	if (!real_vfs)
		return;
	shim.iVersion = 2;
	shim.szOsFile = (int)TFILE_HDR + real_vfs->szOsFile;
	shim.mxPathname = real_vfs->mxPathname;
	shim.zName = TMP_VFS_NAME;
	shim.xOpen = v_open;
	shim.xDelete = v_delete;
	shim.xAccess = v_access;
	shim.xFullPathname = v_full_pathname;
	shim.xDlOpen = v_dl_open;
	shim.xDlError = v_dl_error;
	shim.xDlSym = v_dl_sym;
	shim.xDlClose = v_dl_close;
	shim.xRandomness = v_randomness;
	shim.xSleep = v_sleep;
	shim.xCurrentTime = v_current_time;
	shim.xGetLastError = v_last_error;
	shim.xCurrentTimeInt64 = v_current_time64;
	if (sqlite3_vfs_register(&shim, 0) != SQLITE_OK)
		real_vfs = NULL;
}

const char *cmp__tmp_vfs(void)
{
	return real_vfs ? TMP_VFS_NAME : NULL;
}

int cmp_sql_tmp_setup(const char *dir, uint64_t run_bytes_max, dcr_err *err)
{
	DIR *dp;
	struct dirent *de;

	if (run_bytes_max)
		tmp_run_bytes_default = run_bytes_max;
	if (!dir)
		return 0;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return dcr_err_set(err, -errno, "mkdir %s: %s", dir, strerror(errno));
	/* Leftovers of a crash between a temp file's creation and its unlink. */
	dp = opendir(dir);
	if (!dp)
		return dcr_err_set(err, -errno, "opendir %s: %s", dir, strerror(errno));
	while ((de = readdir(dp)) != NULL) {
		char *p;
		if (de->d_name[0] == '.')
			continue;
		p = dcr_asprintf("%s/%s", dir, de->d_name);
		unlink(p);
		free(p);
	}
	closedir(dp);
	free(tmp_dir);
	tmp_dir = dcr_strdup(dir);
	return 0;
}
