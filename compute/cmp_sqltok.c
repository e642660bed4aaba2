/* cmp_sqltok.c: a small SQL tokenizer, enough to find identifiers and the
 * outer structure of a query without a full parser: string literals,
 * quoted identifiers ("x", [x], `x`), blob literals, numbers, variables,
 * comments and punctuation are told apart the way SQLite's own tokenizer
 * does (tokenize.c), so a keyword inside a string or comment is never taken
 * for structure. Used by cmp_sql_refs and the privacy rewrite. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compute_sql.h"

/* ASCII classes, spelled out: the tokenizer decides which names a query
 * reads, a rule of replay (docs/room-format.md), so it must not depend on
 * the C library's locale. */
static bool a_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool a_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool a_alnum(unsigned char c)
{
	return a_alpha(c) || a_digit(c);
}

static bool a_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static bool id_start(unsigned char c)
{
	return a_alpha(c) || c == '_' || c >= 0x80;
}

static bool id_char(unsigned char c)
{
	return a_alnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* strcasecmp folding A-Z only, whatever the locale. */
static bool a_caseeq(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
		x = (unsigned char)(x >= 'A' && x <= 'Z' ? x + 32 : x);
		y = (unsigned char)(y >= 'A' && y <= 'Z' ? y + 32 : y);
		if (x != y)
			return false;
		if (!x)
			return true;
	}
}

int cmp__sql_tokenize(const char *q, size_t n, cmp__tok **out, size_t *ntok, dcr_err *err)
{
	size_t cap = 64, nt = 0, i = 0;
	cmp__tok *t = dcr_malloc(cap * sizeof(*t));
	int rc = 0;
	while (i < n) {
		unsigned char c = (unsigned char)q[i];
		size_t s = i;
		int kind;
		if (a_space(c)) {
			i++;
			continue;
		}
		if (c == '-' && i + 1 < n && q[i + 1] == '-') {
			while (i < n && q[i] != '\n')
				i++;
			continue;
		}
		if (c == '/' && i + 1 < n && q[i + 1] == '*') {
			i += 2;
			while (i + 1 < n && !(q[i] == '*' && q[i + 1] == '/'))
				i++;
			i = i + 1 < n ? i + 2
			              : n; /* SQLite accepts an unclosed comment at the end */
			continue;
		}
		if ((c == 'x' || c == 'X') && i + 1 < n && q[i + 1] == '\'') {
			i += 2;
			while (i < n && q[i] != '\'')
				i++;
			if (i == n) {
				rc = dcr_err_set(err, DCR_ESQL,
				                 "unterminated blob literal at offset %zu", s);
				goto out;
			}
			i++;
			kind = CMP__T_STR;
		} else if (c == '\'' || c == '"' || c == '`' || c == '[') {
			char close = c == '[' ? ']' : (char)c;
			i++;
			for (;;) {
				if (i >= n) {
					rc = dcr_err_set(
					    err, DCR_ESQL, "unterminated %s at offset %zu",
					    c == '\'' ? "string literal" : "quoted identifier", s);
					goto out;
				}
				if (q[i] == close) {
					if (close != ']' && i + 1 < n && q[i + 1] == close) {
						i += 2;
						continue;
					}
					i++;
					break;
				}
				i++;
			}
			kind = c == '\'' ? CMP__T_STR : CMP__T_QID;
		} else if (id_start(c)) {
			while (i < n && id_char((unsigned char)q[i]))
				i++;
			kind = CMP__T_WORD;
		} else if (a_digit(c) ||
		           (c == '.' && i + 1 < n && a_digit((unsigned char)q[i + 1]))) {
			while (i < n &&
			       (a_alnum((unsigned char)q[i]) || q[i] == '.' || q[i] == '_' ||
			        ((q[i] == '+' || q[i] == '-') &&
			         (q[i - 1] == 'e' || q[i - 1] == 'E'))))
				i++;
			kind = CMP__T_NUM;
		} else if (c == '?' || c == ':' || c == '@' || c == '$' || c == '#') {
			i++;
			while (i < n && id_char((unsigned char)q[i]))
				i++;
			kind = CMP__T_VAR;
		} else {
			/* Multi-character operators matter only as non-structure. */
			static const char *const ops[] = {
			    "->>", "->", "||", "<=", ">=", "<>", "!=", "==", "<<", ">>"};
			i++;
			for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
				size_t l = strlen(ops[k]);
				if (s + l <= n && memcmp(q + s, ops[k], l) == 0) {
					i = s + l;
					break;
				}
			}
			kind = CMP__T_PUNCT;
		}
		if (nt == cap) {
			cap *= 2;
			t = dcr_realloc(t, cap * sizeof(*t));
		}
		t[nt].kind = kind;
		t[nt].off = s;
		t[nt].len = i - s;
		nt++;
	}
out:
	if (rc) {
		free(t);
		return rc;
	}
	*out = t;
	*ntok = nt;
	return 0;
}

bool cmp__tok_is(const char *q, const cmp__tok *t, const char *word)
{
	size_t l = strlen(word);
	if (t->kind == CMP__T_PUNCT)
		return t->len == l && memcmp(q + t->off, word, l) == 0;
	return t->kind == CMP__T_WORD && t->len == l && strncasecmp(q + t->off, word, l) == 0;
}

/* The identifier a token names, unquoted, into buf (NUL-terminated);
 * false if the token is not an identifier or does not fit. */
bool cmp__tok_ident(const char *q, const cmp__tok *t, char *buf, size_t cap)
{
	size_t o = 0;
	if (t->kind == CMP__T_WORD) {
		if (t->len >= cap)
			return false;
		memcpy(buf, q + t->off, t->len);
		buf[t->len] = 0;
		return true;
	}
	if (t->kind != CMP__T_QID || t->len < 2)
		return false;
	char open = q[t->off];
	char close = open == '[' ? ']' : open;
	for (size_t i = t->off + 1; i < t->off + t->len - 1; i++) {
		if (q[i] == close && close != ']')
			i++; /* doubled quote */
		if (o + 1 >= cap)
			return false;
		buf[o++] = q[i];
	}
	buf[o] = 0;
	return true;
}

int cmp_sql_refs(const char *query, const char *const *names, size_t n, bool *used, dcr_err *err)
{
	cmp__tok *t;
	size_t nt;
	for (size_t i = 0; i < n; i++)
		used[i] = false;
	size_t ql = strlen(query);
	if (ql > DCR_SQL_QUERY_BYTES_MAX)
		return dcr_err_set(err, DCR_ELIMIT, "query longer than %u bytes",
		                   DCR_SQL_QUERY_BYTES_MAX);
	int rc = cmp__sql_tokenize(query, ql, &t, &nt, err);
	if (rc)
		return rc;
	char id[256];
	for (size_t k = 0; k < nt; k++) {
		if (!cmp__tok_ident(query, &t[k], id, sizeof(id)))
			continue;
		for (size_t i = 0; i < n; i++)
			if (!used[i] && a_caseeq(id, names[i]))
				used[i] = true;
	}
	free(t);
	return 0;
}

/* Join keys, for choosing indexes at prepare time: a column counts when
 * its name appears between ON and the end of that join constraint, or
 * inside USING (...). Names are matched without resolving tables or
 * aliases, so a hint may name a column of another table too; an index is
 * only an optimisation, never a change of results. */
int cmp_sql_join_columns(const char *query, const cmp_schema *schema, bool *used, dcr_err *err)
{
	cmp__tok *t;
	size_t nt;
	for (size_t i = 0; i < schema->ncols; i++)
		used[i] = false;
	size_t ql = strlen(query);
	if (ql > DCR_SQL_QUERY_BYTES_MAX)
		return dcr_err_set(err, DCR_ELIMIT, "query longer than %u bytes",
		                   DCR_SQL_QUERY_BYTES_MAX);
	int rc = cmp__sql_tokenize(query, ql, &t, &nt, err);
	if (rc)
		return rc;
	static const char *const ends[] = {"JOIN",    "WHERE", "GROUP",     "ORDER",  "HAVING",
	                                   "LIMIT",   "UNION", "INTERSECT", "EXCEPT", "WINDOW",
	                                   "LEFT",    "RIGHT", "INNER",     "CROSS",  "FULL",
	                                   "NATURAL", ")",     ";",         ","};
	bool in_on = false;
	int depth = 0, using_depth = -1;
	char id[256];
	for (size_t k = 0; k < nt; k++) {
		if (cmp__tok_is(query, &t[k], "(")) {
			depth++;
		} else if (cmp__tok_is(query, &t[k], ")")) {
			if (depth == using_depth)
				using_depth = -1;
			depth--;
		}
		if (cmp__tok_is(query, &t[k], "ON")) {
			in_on = true;
			continue;
		}
		if (cmp__tok_is(query, &t[k], "USING") && k + 1 < nt &&
		    cmp__tok_is(query, &t[k + 1], "(")) {
			using_depth = depth + 1;
			continue;
		}
		if (in_on) {
			for (size_t e = 0; e < sizeof(ends) / sizeof(ends[0]); e++)
				if (cmp__tok_is(query, &t[k], ends[e]))
					in_on = false;
		}
		if ((in_on || using_depth >= 0) && cmp__tok_ident(query, &t[k], id, sizeof(id)))
			for (size_t c = 0; c < schema->ncols; c++)
				if (strcasecmp(id, schema->cols[c].name) == 0)
					used[c] = true;
	}
	free(t);
	return 0;
}
