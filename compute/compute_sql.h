/* compute_sql.h: internals of the SQL side of compute/ (tokenizer, privacy
 * rewrite); private to compute/. */
#ifndef DCR_COMPUTE_SQL_H
#define DCR_COMPUTE_SQL_H

#include "compute_int.h"

enum { CMP__T_WORD, CMP__T_QID, CMP__T_STR, CMP__T_NUM, CMP__T_VAR, CMP__T_PUNCT };
typedef struct cmp__tok {
	int kind;
	size_t off, len;
} cmp__tok;

/* Tokens of q[0..n), comments and whitespace dropped. *out is heap. */
int cmp__sql_tokenize(const char *q, size_t n, cmp__tok **out, size_t *ntok, dcr_err *err);
/* Keyword (case-insensitive) or punctuation match. */
bool cmp__tok_is(const char *q, const cmp__tok *t, const char *word);
bool cmp__tok_ident(const char *q, const cmp__tok *t, char *buf, size_t cap);

/* Name of the hidden per-row input count added by the privacy rewrite. */
#define CMP__HIDDEN_COL "__dcr_units_"

typedef struct cmp__rewrite {
	char *sql;  /* the query with the hidden count columns at the end (heap) */
	size_t nhidden; /* how many: one per unit of each source read */
	bool dedup; /* DISTINCT: drop duplicate visible rows */
} cmp__rewrite;

/* The statement must be one SELECT (possibly WITH ..., compound): checked
 * at the token level here and by SQLite when prepared. */
int cmp__sql_shape(const char *query, dcr_err *err);
/* Rewrites a query for the privacy filter (cmp_pquery_parse on the
 * inputs' descriptors), or explains why it cannot. */
int cmp__privacy_rewrite(const char *query, const cmp_input *inputs, size_t ninputs,
                         cmp__rewrite *out, dcr_err *err);
void cmp__rewrite_release(cmp__rewrite *r);

/* Replaces printf() and format() on a connection with a bounded version
 * (cmp_printf.c). */
struct sqlite3;
int cmp__register_printf(struct sqlite3 *db);
/* instr, replace, trim, ltrim, rtrim in linear time (cmp_strfn.c). */
int cmp__register_strfns(struct sqlite3 *db);

/* Temporary files of SQL connections (cmp_tmpvfs.c). register: once,
 * from SQLite's set-up; vfs: the name to open connections with (NULL if
 * registering failed: then connections use the default VFS, uncounted).
 * begin makes a run's account current on this thread (limit 0: the
 * default of cmp_sql_tmp_setup) and charges it to the thread's
 * cmp_tmp_budget, if any; end restores prev and drops the run's hold. */
struct cmp__tmp_acct;
void cmp__tmp_register(void);
const char *cmp__tmp_vfs(void);
struct cmp__tmp_acct *cmp__tmp_begin(uint64_t limit_bytes, struct cmp__tmp_acct **prev);
void cmp__tmp_end(struct cmp__tmp_acct *a, struct cmp__tmp_acct *prev);
bool cmp__tmp_over(const struct cmp__tmp_acct *a);
uint64_t cmp__tmp_limit(const struct cmp__tmp_acct *a);

#endif
