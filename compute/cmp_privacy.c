/* cmp_privacy.c: the statement-shape check and the privacy rewrite.
 *
 * With min_rows_aggregated = k, every output row must aggregate at least k
 * rows of the outermost query's input (the rows of its FROM clause after
 * joins and WHERE, i.e. the rows that feed each group). The rewrite adds one
 * hidden column, COUNT(*), to the select list of the outermost SELECT (to
 * each arm of a compound), just before its FROM. COUNT(*) in an aggregate
 * query counts exactly the rows of each group, so the run can drop rows
 * whose hidden count is below k and strip the column (cmp_sql.c). The
 * check and the rewrite work on tokens (cmp_sqltok.c), never on raw text,
 * so keywords in strings, comments or quoted identifiers do not count, and
 * nested parentheses (subqueries, calls) are skipped as a whole.
 *
 * Refused rather than rewritten: an outermost SELECT that does not
 * aggregate (adding COUNT(*) would turn it into a one-row aggregate that
 * leaks a bare value), window functions in its select list, VALUES arms,
 * INTERSECT and EXCEPT (a hidden column would change which rows match),
 * and a mix of UNION and UNION ALL. UNION and SELECT DISTINCT are kept but
 * the run removes duplicate visible rows itself, since the hidden column
 * makes otherwise-equal rows differ. What this does not protect against is
 * written in docs/privacy.md. */
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

static bool agg_name(const struct toks *k, size_t i, bool *minmax)
{
	static const char *const names[] = {"count",
	                                    "sum",
	                                    "avg",
	                                    "total",
	                                    "group_concat",
	                                    "string_agg",
	                                    "json_group_array",
	                                    "json_group_object"};
	*minmax = is(k, i, "min") || is(k, i, "max");
	if (*minmax)
		return true;
	for (size_t j = 0; j < sizeof(names) / sizeof(names[0]); j++)
		if (is(k, i, names[j]))
			return true;
	return false;
}

struct arm {
	size_t s, e; /* tokens [s, e) */
	size_t ins;  /* token index to insert before (e = at the end) */
};

static int check_arm(const struct toks *k, struct arm *a, bool *distinct, dcr_err *err)
{
	if (is(k, a->s, "VALUES"))
		return dcr_err_set(err, DCR_ESQL,
		                   "a VALUES list in the outermost query does not aggregate input "
		                   "rows; not allowed with min_rows_aggregated");
	if (!is(k, a->s, "SELECT"))
		return dcr_err_set(err, DCR_ESQL, "cannot find the outermost SELECT");
	size_t i = a->s + 1;
	if (is(k, i, "DISTINCT")) {
		*distinct = true;
		i++;
	} else if (is(k, i, "ALL")) {
		i++;
	}
	size_t list = i;
	bool group = false;
	a->ins = a->e;
	for (size_t j = list; j < a->e; j++) {
		if (k->depth[j] != 0)
			continue;
		if (is(k, j, "FROM") && !(j >= 2 && is(k, j - 1, "DISTINCT") &&
		                          (is(k, j - 2, "IS") || is(k, j - 2, "NOT")))) {
			if (a->ins == a->e)
				a->ins = j;
		} else if (is(k, j, "WHERE") || is(k, j, "HAVING") || is(k, j, "WINDOW")) {
			if (a->ins == a->e)
				a->ins = j;
		} else if (is(k, j, "GROUP") && is(k, j + 1, "BY")) {
			if (a->ins == a->e)
				a->ins = j;
			group = true;
		}
	}
	/* Aggregate calls and window functions in the select list, outside
	 * subqueries. sub[d] says whether depth d is inside a subquery. */
	bool agg = false;
	bool *sub = dcr_calloc(k->n + 2, sizeof(bool));
	int rc = 0;
	for (size_t j = list; j < a->ins; j++) {
		int d = k->depth[j];
		if (is(k, j, "(")) {
			sub[d + 1] = sub[d] || is(k, j + 1, "SELECT") || is(k, j + 1, "WITH") ||
			             is(k, j + 1, "VALUES");
			continue;
		}
		if (sub[d] || k->t[j].kind != CMP__T_WORD)
			continue;
		if (is(k, j, "OVER")) {
			rc = dcr_err_set(err, DCR_ESQL,
			                 "window functions (OVER) are not allowed in the outermost "
			                 "SELECT with min_rows_aggregated");
			goto out;
		}
		bool minmax;
		if (!is(k, j + 1, "(") || !agg_name(k, j, &minmax))
			continue;
		if (minmax) {
			/* min(x) aggregates; min(x, y) is a scalar function. */
			size_t close = k->match[j + 1], commas = 0;
			for (size_t c = j + 2; c < close; c++)
				commas += k->depth[c] == d + 1 && is(k, c, ",");
			if (commas)
				continue;
		}
		agg = true;
	}
	if (!group && !agg)
		rc = dcr_err_set(
		    err, DCR_ESQL,
		    "the outermost SELECT must aggregate (GROUP BY, or only aggregate "
		    "functions such as COUNT, SUM or AVG) when min_rows_aggregated is set");
out:
	free(sub);
	return rc;
}

int cmp__privacy_rewrite(const char *query, cmp__rewrite *out, dcr_err *err)
{
	struct toks k;
	struct arm *arms = NULL;
	size_t narms = 0;
	memset(out, 0, sizeof(*out));
	int rc = toks_init(&k, query, err);
	if (rc)
		goto out;
	if ((rc = cmp__sql_shape(query, err)))
		goto out;
	size_t m = main_start(&k);
	arms = dcr_calloc(k.n + 1, sizeof(*arms));
	bool unions = false, union_all = false, distinct = false;
	size_t s = m, i;
	for (i = m; i < k.n; i++) {
		if (k.depth[i] != 0)
			continue;
		if (is(&k, i, "INTERSECT") || is(&k, i, "EXCEPT")) {
			rc = dcr_err_set(
			    err, DCR_ESQL,
			    "INTERSECT and EXCEPT are not allowed in the outermost query "
			    "with min_rows_aggregated (use UNION or UNION ALL)");
			goto out;
		}
		if (is(&k, i, "UNION")) {
			arms[narms].s = s;
			arms[narms++].e = i;
			if (is(&k, i + 1, "ALL")) {
				union_all = true;
				i++;
			} else {
				unions = true;
			}
			s = i + 1;
			continue;
		}
		if ((is(&k, i, "ORDER") && is(&k, i + 1, "BY")) || is(&k, i, "LIMIT") ||
		    is(&k, i, ";"))
			break;
	}
	arms[narms].s = s;
	arms[narms++].e = i;
	if (unions && union_all) {
		rc = dcr_err_set(err, DCR_ESQL,
		                 "mixing UNION and UNION ALL in the outermost query is not allowed "
		                 "with min_rows_aggregated");
		goto out;
	}
	for (size_t a = 0; a < narms; a++)
		if ((rc = check_arm(&k, &arms[a], &distinct, err)))
			goto out;
	dcr_buf b;
	dcr_buf_init(&b);
	size_t pos = 0;
	for (size_t a = 0; a < narms; a++) {
		size_t at;
		if (arms[a].ins < arms[a].e)
			at = k.t[arms[a].ins].off;
		else
			at = k.t[arms[a].e - 1].off + k.t[arms[a].e - 1].len;
		dcr_buf_append(&b, query + pos, at - pos);
		dcr_buf_append_str(&b, " , COUNT(*) AS \"" CMP__HIDDEN_COL "\" ");
		pos = at;
	}
	dcr_buf_append_str(&b, query + pos);
	out->sql = dcr_strdup(dcr_buf_cstr(&b));
	dcr_buf_release(&b);
	out->dedup = unions || distinct;
out:
	free(arms);
	toks_release(&k);
	return rc;
}

void cmp__rewrite_release(cmp__rewrite *r)
{
	free(r->sql);
	r->sql = NULL;
}
