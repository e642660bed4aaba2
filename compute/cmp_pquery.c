/* cmp_pquery.c: the parser of the filtered SQL subset (docs/privacy.md,
 * "The filtered subset").
 *
 * A recursive-descent parser over the tokens of cmp_sqltok.c. It builds no
 * tree: it checks that the query is in the subset, resolves every column
 * reference to a source and checks the column's permission for the place
 * it is used (outside an aggregate, inside COUNT/SUM/AVG/TOTAL, inside
 * MIN/MAX, in a join constraint), refuses bare columns beside aggregates,
 * and records the sources, the aggregates and where FROM starts, which is
 * all the rewrite (cmp_privacy.c) and the DP aggregates need. Operator
 * precedence does not matter for any of these checks (column references,
 * calls and their parentheses are found the same way whatever the
 * precedence), so binary operators are parsed flat. Deterministic: the
 * verdict depends on the query text and the sources only. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute_sql.h"

#define PQ_NAME_MAX 256

/* Name comparisons fold A-Z only, whatever the locale: the verdict is a
 * rule of rm_apply and must be the same on every machine. */
static int a_ncasecmp(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		x = (unsigned char)(x >= 'A' && x <= 'Z' ? x + 32 : x);
		y = (unsigned char)(y >= 'A' && y <= 'Z' ? y + 32 : y);
		if (x != y)
			return x < y ? -1 : 1;
		if (!x)
			return 0;
	}
	return 0;
}

static int a_casecmp(const char *a, const char *b)
{
	return a_ncasecmp(a, b, SIZE_MAX);
}

enum ctx { C_SELECT, C_WHERE, C_ON, C_GROUP, C_HAVING, C_ORDER };

struct ref {
	size_t from; /* index into p->from */
	char col[PQ_NAME_MAX];
};

struct item { /* a select item */
	size_t s, e; /* tokens of the expression */
	char name[PQ_NAME_MAX];
	bool named;
	bool key;       /* a group key (GROUP BY names it) */
	bool plain;     /* one column reference */
	struct ref col; /* if plain */
	unsigned allow; /* projection: intersection of the permissions used */
	struct ref *out; /* column references outside aggregates */
	size_t nout;
	bool has_agg;
};

struct P {
	const char *q;
	cmp__tok *t;
	size_t n, i;
	dcr_err *err;
	const cmp_psource *src;
	size_t nsrc;
	bool proj;
	size_t from[DCR_SQL_INPUTS_MAX];
	char alias[DCR_SQL_INPUTS_MAX][PQ_NAME_MAX];
	size_t nfrom;
	enum ctx ctx;
	int agg;    /* inside an aggregate: 0, or 1 + enum cmp_aggfn */
	struct item *items;
	size_t nitems;
	/* collecting for the current clause */
	struct ref *refs;
	size_t nrefs, caprefs;
	bool saw_agg;
	unsigned allow_acc;
	struct ref *group; /* plain columns of GROUP BY */
	size_t ngroup;
	bool grouped;
	cmp_pquery *out;
};

static bool is(const struct P *p, size_t i, const char *w)
{
	return i < p->n && cmp__tok_is(p->q, &p->t[i], w);
}

static bool at(const struct P *p, const char *w)
{
	return is(p, p->i, w);
}

static size_t off(const struct P *p, size_t i)
{
	return i < p->n ? p->t[i].off : strlen(p->q);
}

static int fail(struct P *p, size_t i, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct P *p, size_t i, const char *fmt, ...)
{
	char msg[DCR_ERR_MSG_BYTES];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (i < p->n)
		return dcr_err_set(p->err, DCR_EDENIED,
		                   "privacy filter: offset %zu (near \"%.*s\"): %s", off(p, i),
		                   (int)(p->t[i].len > 24 ? 24 : p->t[i].len), p->q + p->t[i].off,
		                   msg);
	return dcr_err_set(p->err, DCR_EDENIED, "privacy filter: at the end of the query: %s",
	                   msg);
}

static const char *tok_text(const struct P *p, size_t i, char *buf, size_t cap)
{
	size_t l = p->t[i].len < cap - 1 ? p->t[i].len : cap - 1;
	memcpy(buf, p->q + p->t[i].off, l);
	buf[l] = 0;
	return buf;
}

/* Words that end an expression or start a clause: never a column name. */
static bool reserved(const struct P *p, size_t i)
{
	static const char *const w[] = {
	    "SELECT", "FROM",   "WHERE", "GROUP",  "HAVING",  "ORDER",     "LIMIT",   "OFFSET",
	    "UNION",  "EXCEPT", "INTERSECT", "JOIN", "INNER", "CROSS",     "LEFT",    "RIGHT",
	    "FULL",   "NATURAL", "OUTER", "ON",    "USING",   "AS",        "AND",     "OR",
	    "NOT",    "IS",     "IN",    "LIKE",   "GLOB",    "BETWEEN",   "CASE",    "WHEN",
	    "THEN",   "ELSE",   "END",   "WITH",   "WINDOW",  "VALUES",    "DISTINCT", "ALL",
	    "BY",     "ASC",    "DESC",  "COLLATE", "ESCAPE", "FILTER",    "OVER",    "EXISTS",
	    "NULLS",  "ISNULL", "NOTNULL", "REGEXP", "MATCH", NULL};
	if (i >= p->n || p->t[i].kind != CMP__T_WORD)
		return false;
	for (size_t k = 0; w[k]; k++)
		if (is(p, i, w[k]))
			return true;
	return false;
}

static bool ident(const struct P *p, size_t i, char *buf)
{
	if (i >= p->n || reserved(p, i))
		return false;
	return cmp__tok_ident(p->q, &p->t[i], buf, PQ_NAME_MAX);
}

static const cmp_pcol *src_col(const cmp_psource *s, const char *name)
{
	for (size_t c = 0; c < s->ncols; c++)
		if (a_casecmp(s->cols[c].name, name) == 0)
			return &s->cols[c];
	return NULL;
}

static const char *agg_word(int agg)
{
	static const char *const n[] = {"COUNT", "SUM", "AVG", "TOTAL", "MIN", "MAX"};
	return agg ? n[agg - 1] : "";
}

/* A column used at token i: resolve, check the permission for the place. */
static int use_column(struct P *p, size_t i, const char *qual, const char *col)
{
	size_t f = p->nfrom, hits = 0;
	if (qual) {
		for (size_t k = 0; k < p->nfrom; k++)
			if (a_casecmp(p->alias[k], qual) == 0)
				f = k;
		if (f == p->nfrom)
			return fail(p, i, "no table or alias \"%s\" in FROM", qual);
		const cmp_psource *s = &p->src[p->from[f]];
		if (s->kind == CMP_PSRC_TABLE && !src_col(s, col))
			return fail(p, i, "%s has no column \"%s\"", s->name, col);
	} else {
		for (size_t k = 0; k < p->nfrom; k++) {
			const cmp_psource *s = &p->src[p->from[k]];
			if (s->kind == CMP_PSRC_TABLE && src_col(s, col)) {
				f = k;
				hits++;
			}
		}
		if (hits > 1)
			return fail(p, i, "column \"%s\" is ambiguous: qualify it with its table",
			            col);
		if (hits == 0) {
			/* a filtered upstream's columns are not listed */
			for (size_t k = 0; k < p->nfrom; k++)
				if (p->src[p->from[k]].kind != CMP_PSRC_TABLE) {
					f = k;
					hits++;
				}
			if (hits > 1)
				return fail(p, i,
				            "column \"%s\" is ambiguous: qualify it with its table",
				            col);
		}
		if (hits == 0) {
			/* an output alias, in HAVING or ORDER BY */
			if (p->ctx == C_HAVING || p->ctx == C_ORDER)
				for (size_t k = 0; k < p->nitems; k++)
					if (p->items[k].named && a_casecmp(p->items[k].name, col) == 0)
						return 0;
			return fail(p, i, "no such column \"%s\"", col);
		}
	}
	const cmp_psource *s = &p->src[p->from[f]];
	const cmp_pcol *pc = s->kind == CMP_PSRC_TABLE ? src_col(s, col) : NULL;
	unsigned allow = pc ? pc->allow : CMP_ALLOW_ALL;
	unsigned need;
	const char *what;
	if (p->ctx == C_ON) {
		need = CMP_ALLOW_JOIN, what = "join";
	} else if (p->agg == 1 + CMP_AGG_MIN || p->agg == 1 + CMP_AGG_MAX) {
		need = CMP_ALLOW_MINMAX, what = "minmax";
	} else if (p->agg) {
		need = CMP_ALLOW_AGGREGATE, what = "aggregate";
	} else {
		need = CMP_ALLOW_GROUP, what = "group";
	}
	if (p->proj) {
		p->allow_acc &= allow;
	} else if (!(allow & need)) {
		if (p->agg)
			return fail(p, i,
			            "column %s.%s may not be used in %s() in a filtered query (its "
			            "\"allow\" list lacks \"%s\")",
			            s->name, col, agg_word(p->agg), what);
		return fail(p, i,
		            "column %s.%s may not be used %s in a filtered query (its \"allow\" "
		            "list lacks \"%s\")",
		            s->name, col,
		            need == CMP_ALLOW_JOIN ? "in a join constraint" : "outside an aggregate",
		            what);
	}
	if (!p->agg && p->ctx != C_ON && p->ctx != C_WHERE) {
		if (p->nrefs == p->caprefs) {
			p->caprefs = p->caprefs ? 2 * p->caprefs : 8;
			p->refs = dcr_realloc(p->refs, p->caprefs * sizeof *p->refs);
		}
		p->refs[p->nrefs].from = f;
		snprintf(p->refs[p->nrefs].col, PQ_NAME_MAX, "%s", pc ? pc->name : col);
		p->nrefs++;
	}
	return 0;
}

static int expr(struct P *p);

static int expr_list_paren(struct P *p)
{
	/* at '(' */
	size_t open = p->i++;
	if (at(p, "SELECT") || at(p, "WITH") || at(p, "VALUES"))
		return fail(p, p->i, "subqueries are not allowed in a filtered query");
	if (at(p, ")"))
		return fail(p, p->i, "an empty list");
	for (;;) {
		int rc = expr(p);
		if (rc)
			return rc;
		if (at(p, ",")) {
			p->i++;
			continue;
		}
		if (!at(p, ")"))
			return fail(p, p->i, "')' expected to close the '(' at offset %zu",
			            off(p, open));
		p->i++;
		return 0;
	}
}

static bool word_in(const struct P *p, size_t i, const char *const *list)
{
	for (size_t k = 0; list[k]; k++)
		if (is(p, i, list[k]))
			return true;
	return false;
}

static int call(struct P *p)
{
	static const char *const scalar[] = {
	    "abs",      "coalesce", "ifnull", "nullif", "iif",      "lower",   "upper",  "length",
	    "substr",   "substring", "trim",  "ltrim",  "rtrim",    "round",   "replace", "instr",
	    "sign",     "date",     "time",   "datetime", "julianday", "strftime", "unixepoch",
	    "floor",    "ceil",     "ceiling", "trunc",  "typeof",  "min", "max", NULL};
	static const char *const refused_aggs[] = {"group_concat", "string_agg", "json_group_array",
	                                           "json_group_object", NULL};
	static const char *const aggs[] = {"count", "sum", "avg", "total", "min", "max", NULL};
	size_t name = p->i;
	char nm[PQ_NAME_MAX];
	tok_text(p, name, nm, sizeof nm);
	size_t open = p->i + 1;
	size_t close = open, depth = 0;
	int rc;
	/* one argument or several (min(a, b) is a scalar function) */
	size_t commas = 0;
	for (close = open; close < p->n; close++) {
		if (is(p, close, "("))
			depth++;
		else if (is(p, close, ")") && --depth == 0)
			break;
		else if (depth == 1 && is(p, close, ","))
			commas++;
	}
	int fn = -1;
	for (int k = 0; aggs[k]; k++)
		if (is(p, name, aggs[k]))
			fn = k;
	if ((fn == CMP_AGG_MIN || fn == CMP_AGG_MAX) && commas > 0)
		fn = -1;
	if (word_in(p, name, refused_aggs))
		return fail(p, name,
		            "%s() is not allowed in a filtered query (it shows single values; "
		            "allowed aggregates: COUNT, SUM, AVG, TOTAL, and MIN/MAX on columns "
		            "allowed \"minmax\")",
		            nm);
	if (fn < 0 && !word_in(p, name, scalar))
		return fail(p, name, "function %s() is not allowed in a filtered query", nm);
	if (fn >= 0) {
		if (p->proj)
			return fail(p, name, "aggregate %s() in a row projection", nm);
		if (p->agg)
			return fail(p, name, "an aggregate inside an aggregate");
		if (p->ctx != C_SELECT && p->ctx != C_HAVING && p->ctx != C_ORDER)
			return fail(p, name, "aggregate %s() is not allowed in %s", nm,
			            p->ctx == C_WHERE ? "WHERE" : p->ctx == C_ON ? "ON" : "GROUP BY");
		cmp_pquery *o = p->out;
		o->aggs = dcr_realloc(o->aggs, (o->naggs + 1) * sizeof *o->aggs);
		cmp_pagg *a = &o->aggs[o->naggs++];
		memset(a, 0, sizeof *a);
		a->fn = (enum cmp_aggfn)fn;
		a->source = -1;
		a->off = off(p, name);
		a->len = close < p->n ? p->t[close].off + 1 - a->off : 0;
		p->saw_agg = true;
		p->i = open + 1;
		if (at(p, "DISTINCT")) {
			a->distinct = true;
			p->i++;
		} else if (at(p, "ALL")) {
			p->i++;
		}
		if (at(p, "*") && fn == CMP_AGG_COUNT && !a->distinct) {
			a->star = true;
			p->i++;
		} else {
			size_t s = p->i;
			size_t before = p->nrefs;
			p->agg = fn + 1;
			char q1[PQ_NAME_MAX], c1[PQ_NAME_MAX];
			/* The argument is one column: [qual .] col ). Anything
			 * else could weigh rows by a condition (SUM(CASE WHEN
			 * age > 90 THEN balance END) is FILTER in disguise). */
			if (ident(p, s, c1) && is(p, s + 1, ")")) {
				a->column = dcr_strdup(c1);
			} else if (ident(p, s, q1) && is(p, s + 1, ".") && ident(p, s + 2, c1) &&
			           is(p, s + 3, ")")) {
				a->column = dcr_strdup(c1);
				for (size_t k = 0; k < p->nfrom; k++)
					if (a_casecmp(p->alias[k], q1) == 0)
						a->source = (int)p->from[k];
			} else if (is(p, s, "(") &&
			           (is(p, s + 1, "SELECT") || is(p, s + 1, "WITH") ||
			            is(p, s + 1, "VALUES"))) {
				return fail(p, s + 1, "subqueries are not allowed in a filtered query");
			} else {
				return fail(p, s,
				            "the argument of %s() must be one column in a filtered "
				            "query (an expression could weigh rows by a condition; "
				            "filter with WHERE, compute outside the aggregate)",
				            nm);
			}
			rc = expr(p);
			p->agg = 0;
			if (rc)
				return rc;
			(void)before;
			if (a->column && a->source < 0) {
				/* unqualified: the one table that has it */
				for (size_t k = 0; k < p->nfrom; k++) {
					const cmp_psource *sc = &p->src[p->from[k]];
					if (sc->kind == CMP_PSRC_TABLE && src_col(sc, a->column))
						a->source = (int)p->from[k];
				}
			}
			if (commas > 0)
				return fail(p, name, "%s() takes one argument here", nm);
		}
		if (!at(p, ")"))
			return fail(p, p->i, "')' expected to close %s(", nm);
		p->i++;
	} else {
		p->i = open;
		if (is(p, open + 1, ")"))
			p->i = open + 2;
		else if ((rc = expr_list_paren(p)))
			return rc;
	}
	if (at(p, "FILTER"))
		return fail(p, p->i, "the FILTER clause is not allowed in a filtered query");
	if (at(p, "OVER"))
		return fail(p, p->i, "window functions (OVER) are not allowed in a filtered query");
	return 0;
}

static int primary(struct P *p)
{
	char a[PQ_NAME_MAX], b[PQ_NAME_MAX];
	int rc;
	if (p->i >= p->n)
		return fail(p, p->i, "an expression is missing");
	const cmp__tok *t = &p->t[p->i];
	if (at(p, "-") || at(p, "+") || at(p, "~") || at(p, "NOT")) {
		p->i++;
		return primary(p);
	}
	if (t->kind == CMP__T_NUM || t->kind == CMP__T_STR || at(p, "NULL") || at(p, "TRUE") ||
	    at(p, "FALSE")) {
		p->i++;
		return 0;
	}
	if (t->kind == CMP__T_VAR)
		return fail(p, p->i, "parameters are not allowed");
	if (at(p, "(")) {
		size_t open = p->i++;
		if (at(p, "SELECT") || at(p, "WITH") || at(p, "VALUES"))
			return fail(p, p->i, "subqueries are not allowed in a filtered query");
		if ((rc = expr(p)))
			return rc;
		if (at(p, ","))
			return fail(p, p->i, "row values are not allowed in a filtered query");
		if (!at(p, ")"))
			return fail(p, p->i, "')' expected to close the '(' at offset %zu",
			            off(p, open));
		p->i++;
		return 0;
	}
	if (at(p, "EXISTS"))
		return fail(p, p->i, "subqueries (EXISTS) are not allowed in a filtered query");
	if (at(p, "CASE")) {
		p->i++;
		if (!at(p, "WHEN") && (rc = expr(p)))
			return rc;
		if (!at(p, "WHEN"))
			return fail(p, p->i, "WHEN expected in CASE");
		while (at(p, "WHEN")) {
			p->i++;
			if ((rc = expr(p)))
				return rc;
			if (!at(p, "THEN"))
				return fail(p, p->i, "THEN expected in CASE");
			p->i++;
			if ((rc = expr(p)))
				return rc;
		}
		if (at(p, "ELSE")) {
			p->i++;
			if ((rc = expr(p)))
				return rc;
		}
		if (!at(p, "END"))
			return fail(p, p->i, "END expected to close CASE");
		p->i++;
		return 0;
	}
	if (at(p, "CAST")) {
		static const char *const types[] = {"INTEGER", "INT",  "REAL", "TEXT",
		                                    "NUMERIC", "FLOAT", NULL};
		p->i++;
		if (!at(p, "("))
			return fail(p, p->i, "'(' expected after CAST");
		size_t open = p->i++;
		if ((rc = expr(p)))
			return rc;
		if (!at(p, "AS"))
			return fail(p, p->i, "AS expected in CAST");
		p->i++;
		if (!word_in(p, p->i, types) || !is(p, p->i + 1, ")"))
			return fail(p, p->i,
			            "CAST takes one type name here: INTEGER, INT, REAL, TEXT, "
			            "NUMERIC or FLOAT (the '(' at offset %zu)",
			            off(p, open));
		p->i += 2;
		return 0;
	}
	if (ident(p, p->i, a) && is(p, p->i + 1, "(") && p->t[p->i].kind == CMP__T_WORD)
		return call(p);
	if (ident(p, p->i, a) && is(p, p->i + 1, ".")) {
		if (is(p, p->i + 2, "*"))
			return fail(p, p->i, "%s.* is not allowed in a filtered query", a);
		if (!ident(p, p->i + 2, b))
			return fail(p, p->i + 2, "a column name expected after \"%s.\"", a);
		if (is(p, p->i + 3, "."))
			return fail(p, p->i, "schema-qualified names are not allowed");
		size_t at_i = p->i;
		p->i += 3;
		return use_column(p, at_i, a, b);
	}
	if (ident(p, p->i, a)) {
		size_t at_i = p->i++;
		return use_column(p, at_i, NULL, a);
	}
	if (at(p, "*"))
		return fail(p, p->i, "SELECT * is not allowed in a filtered query: list the columns");
	return fail(p, p->i, "an expression expected");
}

/* Binary and postfix operators, parsed flat (see the top of the file). */
static int expr(struct P *p)
{
	static const char *const binops[] = {"OR", "AND", "=",  "==", "!=", "<>", "<",   "<=",
	                                     ">",  ">=",  "||", "+",  "-",  "*",  "/",   "%",
	                                     "&",  "|",   "<<", ">>", "LIKE", "GLOB", "BETWEEN",
	                                     "ESCAPE", NULL};
	int rc = primary(p);
	for (;;) {
		if (rc)
			return rc;
		if (at(p, "->") || at(p, "->>"))
			return fail(p, p->i, "JSON operators are not allowed in a filtered query");
		if (at(p, "COLLATE")) {
			if (!is(p, p->i + 1, "NOCASE") && !is(p, p->i + 1, "BINARY") &&
			    !is(p, p->i + 1, "RTRIM"))
				return fail(p, p->i, "COLLATE takes NOCASE, BINARY or RTRIM");
			p->i += 2;
			continue;
		}
		if (at(p, "ISNULL") || at(p, "NOTNULL")) {
			p->i++;
			continue;
		}
		if (at(p, "NOT") && is(p, p->i + 1, "NULL")) {
			p->i += 2;
			continue;
		}
		if (at(p, "NOT") && (is(p, p->i + 1, "LIKE") || is(p, p->i + 1, "GLOB") ||
		                     is(p, p->i + 1, "BETWEEN") || is(p, p->i + 1, "IN")))
			p->i++;
		if (at(p, "IS")) {
			p->i++;
			if (at(p, "NOT"))
				p->i++;
			if (at(p, "DISTINCT")) {
				if (!is(p, p->i + 1, "FROM"))
					return fail(p, p->i, "IS DISTINCT FROM expected");
				p->i += 2;
			}
			rc = primary(p);
			continue;
		}
		if (at(p, "IN")) {
			p->i++;
			if (!at(p, "("))
				return fail(p, p->i,
				            "IN takes a parenthesised list of values in a filtered query");
			rc = expr_list_paren(p);
			continue;
		}
		if (at(p, "REGEXP") || at(p, "MATCH"))
			return fail(p, p->i, "REGEXP and MATCH are not allowed");
		if (word_in(p, p->i, binops)) {
			p->i++;
			rc = primary(p);
			continue;
		}
		return 0;
	}
}

/* Starts collecting the column references of one clause part. */
static void collect_start(struct P *p)
{
	p->nrefs = 0;
	p->saw_agg = false;
	p->allow_acc = CMP_ALLOW_ALL;
}

static bool tokens_equal(const struct P *p, size_t a, size_t ae, size_t b, size_t be)
{
	if (ae - a != be - b)
		return false;
	for (size_t k = 0; k < ae - a; k++) {
		const cmp__tok *x = &p->t[a + k], *y = &p->t[b + k];
		if (x->kind != y->kind || x->len != y->len ||
		    a_ncasecmp(p->q + x->off, p->q + y->off, x->len) != 0)
			return false;
	}
	return true;
}

static bool in_group(const struct P *p, const struct ref *r)
{
	for (size_t k = 0; k < p->ngroup; k++)
		if (p->group[k].from == r->from && a_casecmp(p->group[k].col, r->col) == 0)
			return true;
	return false;
}

/* Every column outside aggregates must be a group key. */
static int check_bare(struct P *p, const struct ref *refs, size_t n, size_t tok, const char *where)
{
	if (p->proj)
		return 0;
	for (size_t k = 0; k < n; k++)
		if (!in_group(p, &refs[k]))
			return fail(p, tok,
			            "column %s.%s %s is neither aggregated nor a GROUP BY key (bare "
			            "columns beside aggregates show one row's value)",
			            p->alias[refs[k].from], refs[k].col, where);
	return 0;
}

static int parse_from(struct P *p)
{
	char nm[PQ_NAME_MAX], al[PQ_NAME_MAX];
	int rc;
	for (;;) {
		if (at(p, "("))
			return fail(p, p->i, "subqueries are not allowed in FROM of a filtered query");
		if (!ident(p, p->i, nm))
			return fail(p, p->i, "a table name expected");
		size_t nt = p->i++;
		if (at(p, "("))
			return fail(p, nt, "table-valued functions are not allowed");
		if (at(p, "."))
			return fail(p, nt, "schema-qualified names are not allowed");
		size_t s;
		for (s = 0; s < p->nsrc; s++)
			if (a_casecmp(p->src[s].name, nm) == 0)
				break;
		if (s == p->nsrc)
			return fail(p, nt, "%s is not a dataset or computation of the room", nm);
		for (size_t k = 0; k < p->nfrom; k++)
			if (p->from[k] == s)
				return fail(p, nt,
				            "%s is read twice (a self-join multiplies rows; each table "
				            "may appear once in a filtered query)",
				            nm);
		if (p->src[s].kind == CMP_PSRC_OPAQUE)
			return fail(p, nt,
			            "%s is an unfiltered computation that is not a row projection "
			            "exposing its datasets' units; a filtered query cannot count the "
			            "people behind its rows",
			            nm);
		if (p->proj && p->src[s].kind == CMP_PSRC_AGGREGATE)
			return fail(p, nt, "a row projection read by a filtered query may not read "
			                   "a filtered computation");
		if (p->nfrom == DCR_SQL_INPUTS_MAX)
			return fail(p, nt, "too many tables");
		snprintf(al, sizeof al, "%s", nm);
		if (at(p, "AS")) {
			p->i++;
			if (!ident(p, p->i, al))
				return fail(p, p->i, "an alias expected after AS");
			p->i++;
		} else if (ident(p, p->i, al)) {
			p->i++;
		}
		for (size_t k = 0; k < p->nfrom; k++)
			if (a_casecmp(p->alias[k], al) == 0)
				return fail(p, nt, "alias %s is used twice", al);
		p->from[p->nfrom] = s;
		snprintf(p->alias[p->nfrom], PQ_NAME_MAX, "%s", al);
		p->nfrom++;
		/* join constraint of this table */
		if (p->nfrom > 1 && at(p, "ON")) {
			p->i++;
			p->ctx = C_ON;
			if ((rc = expr(p)))
				return rc;
		} else if (p->nfrom > 1 && at(p, "USING")) {
			p->i++;
			if (!at(p, "("))
				return fail(p, p->i, "'(' expected after USING");
			p->i++;
			p->ctx = C_ON;
			for (;;) {
				char c[PQ_NAME_MAX];
				if (!ident(p, p->i, c))
					return fail(p, p->i, "a column name expected in USING");
				/* the column of the new table and of one earlier table */
				if ((rc = use_column(p, p->i, p->alias[p->nfrom - 1], c)))
					return rc;
				size_t found = 0;
				for (size_t k = 0; k + 1 < p->nfrom && !found; k++) {
					const cmp_psource *sk = &p->src[p->from[k]];
					if (sk->kind != CMP_PSRC_TABLE || src_col(sk, c)) {
						if ((rc = use_column(p, p->i, p->alias[k], c)))
							return rc;
						found = 1;
					}
				}
				if (!found)
					return fail(p, p->i, "no earlier table has column \"%s\"", c);
				p->i++;
				if (at(p, ",")) {
					p->i++;
					continue;
				}
				break;
			}
			if (!at(p, ")"))
				return fail(p, p->i, "')' expected to close USING");
			p->i++;
		}
		if (at(p, ",")) {
			p->i++;
			continue;
		}
		if (at(p, "LEFT") || at(p, "RIGHT") || at(p, "FULL") || at(p, "NATURAL"))
			return fail(p, p->i,
			            "only inner joins (JOIN, INNER JOIN, CROSS JOIN) are allowed in "
			            "a filtered query");
		if (at(p, "INNER") || at(p, "CROSS"))
			p->i++;
		if (at(p, "JOIN")) {
			p->i++;
			continue;
		}
		return 0;
	}
}

static int parse_select_list(struct P *p, size_t end)
{
	int rc;
	for (;;) {
		if (p->nitems == DCR_SQL_COLS_MAX)
			return fail(p, p->i, "too many result columns");
		p->items = dcr_realloc(p->items, (p->nitems + 1) * sizeof *p->items);
		struct item *it = &p->items[p->nitems];
		memset(it, 0, sizeof *it);
		it->s = p->i;
		collect_start(p);
		p->ctx = C_SELECT;
		if ((rc = expr(p)))
			return rc;
		it->e = p->i;
		it->has_agg = p->saw_agg;
		it->allow = p->allow_acc;
		it->out = p->nrefs ? dcr_malloc(p->nrefs * sizeof *p->refs) : NULL;
		if (p->nrefs)
			memcpy(it->out, p->refs, p->nrefs * sizeof *p->refs);
		it->nout = p->nrefs;
		char a[PQ_NAME_MAX], b[PQ_NAME_MAX];
		if (it->e - it->s == 1 && ident(p, it->s, a) && p->nrefs == 1) {
			it->plain = true;
			it->col = p->refs[0];
			snprintf(it->name, sizeof it->name, "%s", a);
		} else if (it->e - it->s == 3 && ident(p, it->s, a) && is(p, it->s + 1, ".") &&
		           ident(p, it->s + 2, b) &&
		           p->nrefs == 1) {
			it->plain = true;
			it->col = p->refs[0];
			snprintf(it->name, sizeof it->name, "%s", b);
		}
		if (at(p, "AS")) {
			p->i++;
			if (!ident(p, p->i, it->name) && p->t[p->i].kind != CMP__T_STR)
				return fail(p, p->i, "a column alias expected after AS");
			if (p->t[p->i].kind == CMP__T_STR)
				tok_text(p, p->i, it->name, sizeof it->name);
			it->named = true;
			p->i++;
		} else if (p->i < end && ident(p, p->i, it->name)) {
			it->named = true;
			p->i++;
		}
		p->nitems++;
		if (at(p, ",")) {
			p->i++;
			continue;
		}
		if (p->i != end)
			return fail(p, p->i, "',' or FROM expected");
		return 0;
	}
}

static int parse_terms(struct P *p, enum ctx ctx, bool order)
{
	int rc;
	for (;;) {
		size_t s = p->i;
		collect_start(p);
		p->ctx = ctx;
		bool position = p->i < p->n && p->t[p->i].kind == CMP__T_NUM &&
		                (is(p, p->i + 1, ",") || p->i + 1 >= p->n || !is(p, p->i + 1, "."));
		if ((rc = expr(p)))
			return rc;
		size_t e = p->i;
		if (position && e == s + 1) {
			char num[32];
			tok_text(p, s, num, sizeof num);
			char *end;
			unsigned long v = strtoul(num, &end, 10);
			if (*end || v < 1 || v > p->nitems)
				return fail(p, s, "%s is not a result column position (1 to %zu)", num,
				            p->nitems);
			if (ctx == C_GROUP) {
				struct item *it = &p->items[v - 1];
				if (it->has_agg)
					return fail(p, s, "GROUP BY %lu names an aggregate", v);
				it->key = true;
				if (it->plain) {
					p->group = dcr_realloc(p->group,
					                       (p->ngroup + 1) * sizeof *p->group);
					p->group[p->ngroup++] = it->col;
				}
			}
		} else if (ctx == C_GROUP) {
			/* a plain column (col or t.col) is a key; in an expression
			 * (GROUP BY age / 10) the column itself is not */
			if (p->nrefs == 1 && (e - s == 1 || (e - s == 3 && is(p, s + 1, ".")))) {
				p->group = dcr_realloc(p->group, (p->ngroup + 1) * sizeof *p->group);
				p->group[p->ngroup++] = p->refs[0];
			}
			for (size_t k = 0; k < p->nitems; k++)
				if (tokens_equal(p, s, e, p->items[k].s, p->items[k].e))
					p->items[k].key = true;
		} else {
			/* ORDER BY: an output column by expression or alias, or
			 * columns that are group keys */
			bool item = false;
			for (size_t k = 0; k < p->nitems; k++)
				item = item || tokens_equal(p, s, e, p->items[k].s, p->items[k].e);
			if (!item && (rc = check_bare(p, p->refs, p->nrefs, s, "in ORDER BY")))
				return rc;
		}
		if (order && (at(p, "ASC") || at(p, "DESC")))
			p->i++;
		if (order && at(p, "NULLS")) {
			if (!is(p, p->i + 1, "FIRST") && !is(p, p->i + 1, "LAST"))
				return fail(p, p->i, "NULLS FIRST or NULLS LAST expected");
			p->i += 2;
		}
		if (at(p, ",")) {
			p->i++;
			continue;
		}
		return 0;
	}
}

static int parse(struct P *p)
{
	int rc;
	size_t n = p->n;
	while (n > 0 && is(p, n - 1, ";"))
		n--;
	for (size_t k = 0; k < n; k++)
		if (is(p, k, ";"))
			return fail(p, k, "only one statement is allowed");
	p->n = n;
	if (at(p, "WITH"))
		return fail(p, p->i, "WITH (common table expressions) is not allowed in a %s",
		            p->proj ? "row projection read by a filtered query" : "filtered query");
	if (at(p, "VALUES"))
		return fail(p, p->i, "VALUES is not allowed in a filtered query");
	if (!at(p, "SELECT"))
		return fail(p, p->i, "a filtered query must start with SELECT");
	p->i++;
	if (at(p, "DISTINCT")) {
		p->out->distinct = true;
		p->i++;
	} else if (at(p, "ALL")) {
		p->i++;
	}
	size_t list = p->i;
	/* FROM first (columns resolve against it): the first FROM at depth 0 */
	size_t fr = p->n;
	int depth = 0;
	for (size_t k = list; k < p->n; k++) {
		if (is(p, k, "("))
			depth++;
		else if (is(p, k, ")"))
			depth--;
		else if (depth == 0 && is(p, k, "FROM") &&
		         !(k >= 2 && is(p, k - 1, "DISTINCT") &&
		           (is(p, k - 2, "IS") || is(p, k - 2, "NOT")))) {
			fr = k;
			break;
		}
	}
	if (fr == p->n)
		return fail(p, list, "a filtered query reads its tables with FROM");
	p->out->from_off = off(p, fr);
	p->i = fr + 1;
	if ((rc = parse_from(p)))
		return rc;
	size_t after_from = p->i;
	p->i = list;
	if ((rc = parse_select_list(p, fr)))
		return rc;
	p->i = after_from;
	if (at(p, "WHERE")) {
		p->i++;
		collect_start(p);
		p->ctx = C_WHERE;
		if ((rc = expr(p)))
			return rc;
	}
	if (at(p, "GROUP")) {
		if (p->proj)
			return fail(p, p->i, "GROUP BY in a row projection");
		if (!is(p, p->i + 1, "BY"))
			return fail(p, p->i, "BY expected after GROUP");
		p->i += 2;
		p->grouped = true;
		if ((rc = parse_terms(p, C_GROUP, false)))
			return rc;
	}
	/* the select list: no bare columns beside aggregates */
	bool any_agg = false;
	for (size_t k = 0; k < p->nitems; k++)
		any_agg = any_agg || p->items[k].has_agg;
	if (!p->proj) {
		if (!p->grouped && !any_agg)
			return fail(p, list,
			            "a filtered query must aggregate (GROUP BY, or aggregates such as "
			            "COUNT, SUM or AVG in the select list)");
		for (size_t k = 0; k < p->nitems; k++)
			if (!p->items[k].key &&
			    (rc = check_bare(p, p->items[k].out, p->items[k].nout, p->items[k].s,
			                     "in the select list")))
				return rc;
	}
	if (at(p, "HAVING")) {
		if (p->proj)
			return fail(p, p->i, "HAVING in a row projection");
		size_t s = ++p->i;
		collect_start(p);
		p->ctx = C_HAVING;
		if ((rc = expr(p)))
			return rc;
		if ((rc = check_bare(p, p->refs, p->nrefs, s, "in HAVING")))
			return rc;
	}
	if (at(p, "WINDOW"))
		return fail(p, p->i, "WINDOW is not allowed in a filtered query");
	if (at(p, "UNION") || at(p, "INTERSECT") || at(p, "EXCEPT"))
		return fail(p, p->i,
		            "compound queries (UNION, INTERSECT, EXCEPT) are not allowed in a "
		            "filtered query");
	if (at(p, "ORDER")) {
		if (!is(p, p->i + 1, "BY"))
			return fail(p, p->i, "BY expected after ORDER");
		p->i += 2;
		if (p->proj) {
			/* a projection's order does not matter downstream */
			collect_start(p);
		}
		if ((rc = parse_terms(p, C_ORDER, true)))
			return rc;
	}
	if (at(p, "LIMIT")) {
		p->i++;
		if (p->i >= p->n || p->t[p->i].kind != CMP__T_NUM)
			return fail(p, p->i, "LIMIT takes a number in a filtered query");
		p->i++;
		if (at(p, "OFFSET") || at(p, ",")) {
			p->i++;
			if (p->i >= p->n || p->t[p->i].kind != CMP__T_NUM)
				return fail(p, p->i, "OFFSET takes a number in a filtered query");
			p->i++;
		}
	}
	if (p->i < p->n)
		return fail(p, p->i, "unexpected text in a filtered query");
	return 0;
}

/* Projection: output columns, their permissions and the units exposed. */
static int projection_out(struct P *p)
{
	cmp_pquery *o = p->out;
	o->out = dcr_calloc(p->nitems + 1, sizeof *o->out);
	o->nout = p->nitems;
	for (size_t k = 0; k < p->nitems; k++) {
		struct item *it = &p->items[k];
		if (!it->named && !it->plain)
			return fail(p, it->s,
			            "name every computed column of a row projection with AS");
		for (size_t j = 0; j < k; j++)
			if (a_casecmp(o->out[j].name, it->name) == 0)
				return fail(p, it->s, "two result columns are named %s", it->name);
		o->out[k].name = dcr_strdup(it->name);
		o->out[k].allow = it->allow;
	}
	for (size_t f = 0; f < p->nfrom; f++) {
		const cmp_psource *s = &p->src[p->from[f]];
		if (s->nunits == 0)
			return fail(p, 0,
			            "%s declares no unit: a filtered query cannot count the people "
			            "behind the rows of a projection of it",
			            s->name);
		for (size_t u = 0; u < s->nunits; u++) {
			size_t k;
			for (k = 0; k < p->nitems; k++)
				if (p->items[k].plain && p->items[k].col.from == f &&
				    a_casecmp(p->items[k].col.col, s->units[u]) == 0)
					break;
			if (k == p->nitems)
				return fail(p, 0,
				            "a row projection read by a filtered query must show the "
				            "unit column %s.%s as a plain column",
				            p->alias[f], s->units[u]);
			o->units = dcr_realloc(o->units, (o->nunits + 1) * sizeof *o->units);
			o->units[o->nunits++] = dcr_strdup(p->items[k].name);
		}
	}
	return 0;
}

int cmp_pquery_parse(const char *query, const cmp_psource *src, size_t nsrc, bool projection,
                     cmp_pquery *out, dcr_err *err)
{
	struct P p;
	memset(&p, 0, sizeof p);
	memset(out, 0, sizeof *out);
	size_t ql = strlen(query);
	if (ql > DCR_SQL_QUERY_BYTES_MAX)
		return dcr_err_set(err, DCR_ELIMIT, "query longer than %u bytes",
		                   DCR_SQL_QUERY_BYTES_MAX);
	int rc = cmp__sql_tokenize(query, ql, &p.t, &p.n, err);
	if (rc)
		return rc;
	p.q = query;
	p.err = err;
	p.src = src;
	p.nsrc = nsrc;
	p.proj = projection;
	p.out = out;
	rc = parse(&p);
	if (!rc && projection)
		rc = projection_out(&p);
	if (!rc) {
		out->nfrom = p.nfrom;
		out->from = dcr_calloc(p.nfrom + 1, sizeof *out->from);
		out->alias = dcr_calloc(p.nfrom + 1, sizeof *out->alias);
		for (size_t k = 0; k < p.nfrom; k++) {
			out->from[k] = p.from[k];
			out->alias[k] = dcr_strdup(p.alias[k]);
		}
	}
	for (size_t k = 0; k < p.nitems; k++)
		free(p.items[k].out);
	free(p.items);
	free(p.refs);
	free(p.group);
	free(p.t);
	if (rc)
		cmp_pquery_release(out);
	return rc;
}

void cmp_pquery_release(cmp_pquery *q)
{
	for (size_t k = 0; k < q->nfrom && q->alias; k++)
		free(q->alias[k]);
	free(q->alias);
	free(q->from);
	for (size_t k = 0; k < q->naggs; k++)
		free(q->aggs[k].column);
	free(q->aggs);
	for (size_t k = 0; k < q->nout; k++)
		free((char *)q->out[k].name);
	free(q->out);
	for (size_t k = 0; k < q->nunits; k++)
		free(q->units[k]);
	free(q->units);
	memset(q, 0, sizeof *q);
}

void cmp_psource_copy(cmp_psource *dst, const cmp_psource *src)
{
	memset(dst, 0, sizeof *dst);
	dst->name = src->name ? dcr_strdup(src->name) : NULL;
	dst->kind = src->kind;
	dst->rowid = src->rowid ? dcr_strdup(src->rowid) : NULL;
	cmp_pcol *cols = dcr_calloc(src->ncols + 1, sizeof *cols);
	for (size_t k = 0; k < src->ncols; k++) {
		cols[k].name = dcr_strdup(src->cols[k].name);
		cols[k].allow = src->cols[k].allow;
	}
	dst->cols = cols;
	dst->ncols = src->ncols;
	char **units = dcr_calloc(src->nunits + 1, sizeof *units);
	for (size_t k = 0; k < src->nunits; k++)
		units[k] = dcr_strdup(src->units[k]);
	dst->units = (const char *const *)units;
	dst->nunits = src->nunits;
}

void cmp_psource_release(cmp_psource *s)
{
	if (!s)
		return;
	free((char *)s->name);
	free((char *)s->rowid);
	for (size_t k = 0; k < s->ncols; k++)
		free((char *)s->cols[k].name);
	free((cmp_pcol *)s->cols);
	for (size_t k = 0; k < s->nunits; k++)
		free((char *)s->units[k]);
	free((char **)s->units);
	memset(s, 0, sizeof *s);
}
