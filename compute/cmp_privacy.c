/* cmp_privacy.c: the statement-shape check and the privacy rewrite.
 *
 * With a privacy threshold k, the query must be in the filtered subset
 * (cmp_pquery.c, docs/privacy.md). The rewrite adds hidden columns just
 * before the outermost FROM: for each table the query reads, one
 * COUNT(DISTINCT alias.unit) per unit column it declares, or
 * COUNT(DISTINCT alias.rowid) when it declares none. Counting distinct
 * people (or distinct source rows) rather than joined rows makes the count
 * immune to anything that multiplies rows (joins, cross joins). The run
 * drops a row unless every hidden count reaches k, and strips the hidden
 * columns (cmp_sql.c). SELECT DISTINCT is kept, but the run removes
 * duplicate visible rows itself, since the hidden columns make otherwise
 * equal rows differ. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compute_sql.h"

struct toks {
	const char *q;
	cmp__tok *t;
	size_t n;
	int *depth;    /* paren depth before the token */
	size_t *match; /* for '(' the index of its ')' (n if unmatched) */
};

static int toks_init(struct toks *k, const char *q, dcr_err *err)
{
	memset(k, 0, sizeof(*k));
	k->q = q;
	size_t ql = strlen(q);
	if (ql > DCR_SQL_QUERY_BYTES_MAX)
		return dcr_err_set(err, DCR_ELIMIT, "query longer than %u bytes",
		                   DCR_SQL_QUERY_BYTES_MAX);
	int rc = cmp__sql_tokenize(q, ql, &k->t, &k->n, err);
	if (rc)
		return rc;
	k->depth = dcr_calloc(k->n + 1, sizeof(int));
	k->match = dcr_calloc(k->n + 1, sizeof(size_t));
	size_t *stack = dcr_calloc(k->n + 1, sizeof(size_t));
	size_t sp = 0;
	int d = 0;
	for (size_t i = 0; i < k->n; i++) {
		k->match[i] = k->n;
		if (cmp__tok_is(q, &k->t[i], ")")) {
			if (d == 0) {
				free(stack);
				return dcr_err_set(err, DCR_ESQL, "unbalanced ')' at offset %zu",
				                   k->t[i].off);
			}
			d--;
			k->match[stack[--sp]] = i;
		}
		k->depth[i] = d;
		if (cmp__tok_is(q, &k->t[i], "(")) {
			stack[sp++] = i;
			d++;
		}
	}
	free(stack);
	if (d != 0)
		return dcr_err_set(err, DCR_ESQL, "unbalanced '(' in the query");
	return 0;
}

static void toks_release(struct toks *k)
{
	free(k->t);
	free(k->depth);
	free(k->match);
}

static bool is(const struct toks *k, size_t i, const char *w)
{
	return i < k->n && cmp__tok_is(k->q, &k->t[i], w);
}

/* Index of the main statement's first keyword (after WITH ... ), or n. */
static size_t main_start(const struct toks *k)
{
	if (!is(k, 0, "WITH"))
		return 0;
	static const char *const heads[] = {"SELECT", "VALUES", "INSERT",
	                                    "UPDATE", "DELETE", "REPLACE"};
	for (size_t i = 1; i < k->n; i++) {
		if (k->depth[i] != 0)
			continue;
		for (size_t h = 0; h < sizeof(heads) / sizeof(heads[0]); h++)
			if (is(k, i, heads[h]))
				return i;
	}
	return k->n;
}

int cmp__sql_shape(const char *query, dcr_err *err)
{
	struct toks k;
	int rc = toks_init(&k, query, err);
	if (rc)
		goto out;
	size_t n = k.n;
	while (n > 0 && is(&k, n - 1, ";"))
		n--;
	if (n == 0) {
		rc = dcr_err_set(err, DCR_ESQL, "the query is empty");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (is(&k, i, ";")) {
			rc = dcr_err_set(err, DCR_ESQL,
			                 "only one statement is allowed (found ';' at offset %zu)",
			                 k.t[i].off);
			goto out;
		}
	size_t m = main_start(&k);
	if (m >= n || !(is(&k, m, "SELECT") || is(&k, m, "VALUES"))) {
		size_t at = m < n ? m : 0;
		rc = dcr_err_set(err, DCR_ESQL,
		                 "only a SELECT statement is allowed (the query starts with %.*s)",
		                 (int)(k.t[at].len > 32 ? 32 : k.t[at].len), query + k.t[at].off);
		goto out;
	}
out:
	toks_release(&k);
	return rc;
}

/* The row id of a source: the first of SQLite's names for it that no
 * column shadows (NULL if a table has columns named all three). */
static const char *rowid_name(const cmp_schema *s)
{
	static const char *const names[] = {"rowid", "_rowid_", "oid"};
	for (size_t k = 0; k < 3; k++) {
		bool taken = false;
		for (size_t c = 0; c < s->ncols; c++)
			taken = taken || strcasecmp(s->cols[c].name, names[k]) == 0;
		if (!taken)
			return names[k];
	}
	return NULL;
}

int cmp__privacy_rewrite(const char *query, const cmp_input *inputs, size_t ninputs,
                         cmp__rewrite *out, dcr_err *err)
{
	cmp_psource *src = dcr_calloc(ninputs + 1, sizeof *src);
	cmp_pcol **cols = dcr_calloc(ninputs + 1, sizeof *cols);
	cmp_pquery pq;
	dcr_buf b;
	int rc;
	memset(out, 0, sizeof(*out));
	memset(&pq, 0, sizeof pq);
	dcr_buf_init(&b);
	for (size_t k = 0; k < ninputs; k++) {
		if (inputs[k].priv) {
			src[k] = *inputs[k].priv;
		} else {
			/* no descriptor: every column allowed, rows counted */
			cols[k] = dcr_calloc(inputs[k].schema.ncols + 1, sizeof **cols);
			for (size_t c = 0; c < inputs[k].schema.ncols; c++) {
				cols[k][c].name = inputs[k].schema.cols[c].name;
				cols[k][c].allow = CMP_ALLOW_ALL;
			}
			src[k].kind = CMP_PSRC_TABLE;
			src[k].cols = cols[k];
			src[k].ncols = inputs[k].schema.ncols;
		}
		src[k].name = inputs[k].name;
		src[k].rowid = rowid_name(&inputs[k].schema);
	}
	if ((rc = cmp_pquery_parse(query, src, ninputs, false, &pq, err)))
		goto out;
	dcr_buf_append(&b, query, pq.from_off);
	for (size_t f = 0; f < pq.nfrom; f++) {
		const cmp_psource *s = &src[pq.from[f]];
		size_t nu = s->kind == CMP_PSRC_TABLE ? s->nunits : 0;
		for (size_t u = 0; u < (nu ? nu : 1); u++) {
			const char *col = nu ? s->units[u] : s->rowid;
			if (!col) {
				rc = dcr_err_set(err, DCR_EINVALID,
				                 "%s has columns named rowid, _rowid_ and oid and no "
				                 "unit: the privacy filter cannot count its rows",
				                 s->name);
				goto out;
			}
			dcr_buf_append_str(&b, ", COUNT(DISTINCT ");
			cmp__sql_ident(&b, pq.alias[f]);
			dcr_buf_append_u8(&b, '.');
			cmp__sql_ident(&b, col);
			dcr_buf_printf(&b, ") AS \"" CMP__HIDDEN_COL "%zu\" ", out->nhidden++);
		}
	}
	dcr_buf_append_str(&b, query + pq.from_off);
	out->sql = dcr_strdup(dcr_buf_cstr(&b));
	out->dedup = pq.distinct;
out:
	cmp_pquery_release(&pq);
	dcr_buf_release(&b);
	for (size_t k = 0; k < ninputs; k++)
		free(cols[k]);
	free(cols);
	free(src);
	return rc;
}

void cmp__rewrite_release(cmp__rewrite *r)
{
	free(r->sql);
	r->sql = NULL;
}
