/* cmp_dp.c: differentially private aggregates (docs/privacy.md,
 * "Differential privacy").
 *
 * Two layers. cmp_dp_noise is the mechanism: given the exact aggregates of
 * one output row (row counts, and sums of values already clamped to the
 * declared bounds and put on the integer grid of the bounds), it adds
 * discrete Laplace noise (cmp_noise.c) calibrated to epsilon and to each
 * aggregate's sensitivity, and formats the released values. It knows no
 * SQL, so a fuller query analysis can feed it later.
 *
 * cmp_dp_check / cmp_dp_run accept the query shape whose sensitivity is
 * known without trusting anything about the data:
 *
 *     SELECT agg [[AS] name], ... FROM dataset [[AS] alias] [WHERE condition]
 *
 * with agg one of COUNT(*), COUNT(col), SUM(col), AVG(col) on a bare
 * column, the condition without subqueries, no GROUP BY (the set of groups
 * would itself be data), no joins (one person's row could match any number
 * of rows), nothing after the WHERE. Adding or removing one input row then
 * changes a count by at most 1 and a clamped sum by at most
 * max(|lower|, |upper|) steps. The run rewrites the select list into the
 * exact hidden aggregates (clamping and rounding inside SQLite), reads the
 * single row, noises it, and releases the noisy values as a one-row result
 * built by SQLite from literals, so the CSV, image and schema come from
 * the same code as every other result. */
#include <math.h>
#include <strings.h>

#include "compute_sql.h"

/* ---- the mechanism -------------------------------------------------------- */

static uint64_t pow10u(unsigned d)
{
	uint64_t p = 1;
	while (d--)
		p *= 10;
	return p;
}

static uint64_t mag(int64_t v)
{
	return v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
}

/* A value in steps of 10^-decimals as an SQL literal. */
static void steps_literal(int64_t v, unsigned decimals, char *out, size_t cap)
{
	uint64_t a = mag(v), p = pow10u(decimals);
	if (decimals)
		snprintf(out, cap, "%s%llu.%0*llu", v < 0 ? "-" : "", (unsigned long long)(a / p),
		         (int)decimals, (unsigned long long)(a % p));
	else
		snprintf(out, cap, "%s%llu", v < 0 ? "-" : "", (unsigned long long)a);
}

/* Noise of sensitivity delta under epsilon/share (epsilon in millionths):
 * Lap_Z(delta * share / epsilon) = Lap_Z(t/s), s = epsilon, t = delta * share
 * * 10^6. */
static int noise(cmp_rng *r, uint64_t epsilon, uint64_t share, uint64_t delta, int64_t *out,
                 dcr_err *err)
{
	unsigned __int128 t = (unsigned __int128)delta * share * DCR_DP_EPSILON_SCALE;
	if (delta == 0) {
		*out = 0;
		return 0;
	}
	if (t > DCR_NOISE_PARAM_MAX || t / epsilon >= DCR_NOISE_SCALE_MAX)
		return dcr_err_set(err, DCR_EINVALID,
		                   "differential privacy: the noise for bounds of %llu steps at "
		                   "this epsilon is beyond the sampler's range (narrow the bounds "
		                   "or use fewer decimals)",
		                   (unsigned long long)delta);
	return cmp_noise_dlaplace(r, epsilon, (uint64_t)t, out, err);
}

static int64_t add_sat(int64_t a, int64_t b)
{
	int64_t c;
	if (__builtin_add_overflow(a, b, &c))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return c;
}

int cmp_dp_noise(cmp_rng *r, uint64_t epsilon, const cmp_dp_agg *aggs, size_t n,
                 const cmp_dp_exact *exact, cmp_dp_value *out, dcr_err *err)
{
	uint64_t share = 0;
	int rc;
	if (epsilon == 0 || n == 0 || n > DCR_DP_AGGREGATES_MAX)
		return dcr_err_set(err, DCR_EINVALID, "differential privacy: epsilon %llu, %zu "
		                                      "aggregates",
		                   (unsigned long long)epsilon, n);
	for (size_t i = 0; i < n; i++)
		share += aggs[i].fn == CMP_DP_AVG ? 2 : 1;
	for (size_t i = 0; i < n; i++) {
		const cmp_dp_agg *a = &aggs[i];
		uint64_t delta = mag(a->lo) > mag(a->hi) ? mag(a->lo) : mag(a->hi);
		int64_t nc = 0, ns = 0;
		memset(&out[i], 0, sizeof out[i]);
		if (a->fn != CMP_DP_SUM &&
		    (rc = noise(r, epsilon, share, 1, &nc, err)))
			return rc;
		if (a->fn != CMP_DP_COUNT &&
		    (rc = noise(r, epsilon, share, delta, &ns, err)))
			return rc;
		int64_t count = add_sat((int64_t)(exact[i].count > INT64_MAX ? INT64_MAX
		                                                              : exact[i].count),
		                        nc);
		int64_t sum = add_sat(exact[i].sum, ns);
		switch (a->fn) {
		case CMP_DP_COUNT:
			/* a negative count is only noise: clamping is post-processing */
			out[i].type = CMP_INTEGER;
			out[i].i = count < 0 ? 0 : count;
			snprintf(out[i].text, sizeof out[i].text, "%lld", (long long)out[i].i);
			break;
		case CMP_DP_SUM:
			out[i].type = a->decimals ? CMP_FLOAT : CMP_INTEGER;
			out[i].i = sum;
			steps_literal(sum, a->decimals, out[i].text, sizeof out[i].text);
			break;
		case CMP_DP_AVG: {
			double avg = (double)sum / (double)(count < 1 ? 1 : count);
			double lo = (double)a->lo, hi = (double)a->hi;
			avg = avg < lo ? lo : avg > hi ? hi : avg;
			out[i].type = CMP_FLOAT;
			out[i].d = avg / (double)pow10u(a->decimals);
			snprintf(out[i].text, sizeof out[i].text, "%.17g", out[i].d);
			if (!strpbrk(out[i].text, ".eEn"))
				strncat(out[i].text, ".0", sizeof out[i].text - strlen(out[i].text) - 1);
			break;
		}
		}
	}
	return 0;
}

/* ---- the query shape ------------------------------------------------------- */

struct item {
	cmp_dp_fn fn;
	bool star;                /* COUNT(*) */
	size_t col_off, col_len;  /* the column reference, as written */
	char col[DCR_RM_NAME_BYTES_MAX + 1];
	char name[256];           /* output column name */
	const cmp_dp_bound *bound;
};

struct shape {
	struct item *items;
	size_t n;
	size_t from_off; /* offset of FROM in the query */
};

static bool is_ident(const char *q, const cmp__tok *t)
{
	(void)q;
	return t->kind == CMP__T_WORD || t->kind == CMP__T_QID;
}

static const char *const reserved[] = {"FROM",  "WHERE",     "GROUP",  "HAVING", "ORDER",
                                       "LIMIT", "UNION",     "EXCEPT", "WINDOW", "JOIN",
                                       "ON",    "INTERSECT", "USING",  "AS",     NULL};

static bool is_reserved(const char *q, const cmp__tok *t)
{
	for (size_t i = 0; reserved[i]; i++)
		if (t->kind == CMP__T_WORD && cmp__tok_is(q, t, reserved[i]))
			return true;
	return false;
}

#define SHAPE_HINT                                                                                 \
	" (a differentially private query is SELECT COUNT(*), COUNT(col), SUM(col) or AVG(col), "  \
	"... FROM one dataset [WHERE condition without subqueries])"

static int shape_parse(const char *q, const cmp_input *inputs, size_t ninputs, const cmp_dp *dp,
                       struct shape *sh, dcr_err *err)
{
	cmp__tok *t = NULL;
	size_t nt = 0, i = 0;
	int rc = cmp__sql_tokenize(q, strlen(q), &t, &nt, err);
	char buf[256];
	memset(sh, 0, sizeof *sh);
	if (rc)
		return rc;
	sh->items = dcr_calloc(DCR_DP_AGGREGATES_MAX + 1, sizeof(struct item));
#define BAD(...)                                                                                   \
	do {                                                                                       \
		rc = dcr_err_set(err, DCR_EINVALID, __VA_ARGS__);                                  \
		goto out;                                                                          \
	} while (0)
	if (nt == 0 || !cmp__tok_is(q, &t[0], "SELECT"))
		BAD("the query must start with SELECT" SHAPE_HINT);
	/* One table: a second one, even only in the condition (x IN other),
	 * could let one of its rows change any number of counted rows. */
	if (ninputs != 1)
		BAD("a differentially private query reads exactly one dataset; this one names "
		    "%zu tables" SHAPE_HINT,
		    ninputs);
	i = 1;
	for (;;) {
		struct item *it = &sh->items[sh->n];
		size_t start;
		if (sh->n == DCR_DP_AGGREGATES_MAX)
			BAD("more than %u aggregates", DCR_DP_AGGREGATES_MAX);
		if (i >= nt)
			BAD("the select list does not end with FROM" SHAPE_HINT);
		start = t[i].off;
		if (cmp__tok_is(q, &t[i], "COUNT"))
			it->fn = CMP_DP_COUNT;
		else if (cmp__tok_is(q, &t[i], "SUM"))
			it->fn = CMP_DP_SUM;
		else if (cmp__tok_is(q, &t[i], "AVG"))
			it->fn = CMP_DP_AVG;
		else
			BAD("select list item %zu: \"%.*s\" is not COUNT, SUM or AVG" SHAPE_HINT,
			    sh->n + 1, (int)(t[i].len > 40 ? 40 : t[i].len), q + t[i].off);
		if (i + 1 >= nt || !cmp__tok_is(q, &t[i + 1], "("))
			BAD("select list item %zu: expected '(' after the aggregate" SHAPE_HINT,
			    sh->n + 1);
		i += 2;
		if (it->fn == CMP_DP_COUNT && i < nt && cmp__tok_is(q, &t[i], "*")) {
			it->star = true;
			i++;
		} else {
			/* [qualifier .] column */
			size_t c0 = i;
			if (i < nt && is_ident(q, &t[i]) && !is_reserved(q, &t[i]) &&
			    !cmp__tok_is(q, &t[i], "DISTINCT") && !cmp__tok_is(q, &t[i], "ALL")) {
				i++;
				if (i + 1 < nt && cmp__tok_is(q, &t[i], ".") && is_ident(q, &t[i + 1]))
					i += 2;
			}
			if (i == c0 || !cmp__tok_ident(q, &t[i - 1], it->col, sizeof it->col))
				BAD("select list item %zu: the aggregate's argument must be a column "
				    "name" SHAPE_HINT,
				    sh->n + 1);
			it->col_off = t[c0].off;
			it->col_len = t[i - 1].off + t[i - 1].len - t[c0].off;
		}
		if (i >= nt || !cmp__tok_is(q, &t[i], ")"))
			BAD("select list item %zu: the aggregate's argument must be one column "
			    "name" SHAPE_HINT,
			    sh->n + 1);
		i++;
		size_t end = t[i - 1].off + t[i - 1].len;
		/* [[AS] name] */
		bool as = i < nt && cmp__tok_is(q, &t[i], "AS");
		if (as)
			i++;
		if (i < nt && is_ident(q, &t[i]) && !is_reserved(q, &t[i])) {
			if (!cmp__tok_ident(q, &t[i], it->name, sizeof it->name))
				BAD("select list item %zu: name too long", sh->n + 1);
			i++;
		} else if (as) {
			BAD("select list item %zu: expected a name after AS", sh->n + 1);
		} else {
			snprintf(it->name, sizeof it->name, "%.*s", (int)(end - start), q + start);
		}
		if (it->fn != CMP_DP_COUNT) {
			for (size_t b = 0; b < dp->nbounds && !it->bound; b++)
				if (strcasecmp(dp->bounds[b].column, it->col) == 0)
					it->bound = &dp->bounds[b];
			if (!it->bound)
				BAD("select list item %zu: %s(%s) needs declared bounds: "
				    "privacy.bounds.%s",
				    sh->n + 1, it->fn == CMP_DP_SUM ? "SUM" : "AVG", it->col, it->col);
		}
		sh->n++;
		if (i < nt && cmp__tok_is(q, &t[i], ",")) {
			i++;
			continue;
		}
		if (i < nt && cmp__tok_is(q, &t[i], "FROM"))
			break;
		BAD("select list item %zu: expected ',' or FROM after it" SHAPE_HINT, sh->n);
	}
	sh->from_off = t[i].off;
	i++;
	/* FROM dataset [[AS] alias] */
	if (i >= nt || !cmp__tok_ident(q, &t[i], buf, sizeof buf))
		BAD("expected a dataset name after FROM" SHAPE_HINT);
	{
		bool known = false;
		for (size_t k = 0; k < ninputs && !known; k++)
			known = strcasecmp(inputs[k].name, buf) == 0;
		if (!known)
			BAD("FROM %s: not a dataset of this room" SHAPE_HINT, buf);
	}
	i++;
	if (i < nt && cmp__tok_is(q, &t[i], "AS"))
		i++;
	if (i < nt && is_ident(q, &t[i]) && !is_reserved(q, &t[i]))
		i++;
	if (i < nt && cmp__tok_is(q, &t[i], "WHERE")) {
		for (size_t k = i + 1; k < nt; k++) {
			if (cmp__tok_is(q, &t[k], "SELECT"))
				BAD("the WHERE condition may not contain a subquery" SHAPE_HINT);
			for (size_t r = 0; reserved[r]; r++)
				if (strcmp(reserved[r], "AS") != 0 && cmp__tok_is(q, &t[k], reserved[r]))
					BAD("the WHERE condition may not contain %s" SHAPE_HINT,
					    reserved[r]);
			if (cmp__tok_is(q, &t[k], ";") && k + 1 < nt)
				BAD("one statement only");
		}
		i = nt;
	}
	if (i < nt && !(cmp__tok_is(q, &t[i], ";") && i + 1 == nt))
		BAD("\"%.*s\" after the FROM clause: only a WHERE condition may follow the "
		    "dataset" SHAPE_HINT,
		    (int)(t[i].len > 40 ? 40 : t[i].len), q + t[i].off);
	rc = 0;
out:
#undef BAD
	free(t);
	if (rc) {
		free(sh->items);
		sh->items = NULL;
	}
	return rc;
}

static void append_ident(dcr_buf *b, const char *s)
{
	dcr_buf_append_str(b, "\"");
	for (; *s; s++) {
		if (*s == '"')
			dcr_buf_append_str(b, "\"");
		dcr_buf_append(b, s, 1);
	}
	dcr_buf_append_str(b, "\"");
}

/* The exact aggregates: per item, __dcr_c<i> (the count) and/or __dcr_s<i>
 * (the sum of clamped values in steps), then the FROM clause as written. */
static void shape_rewrite(const char *q, const struct shape *sh, dcr_buf *out)
{
	dcr_buf_append_str(out, "SELECT ");
	for (size_t i = 0; i < sh->n; i++) {
		const struct item *it = &sh->items[i];
		const char *sep = i ? ", " : "";
		if (it->fn == CMP_DP_COUNT) {
			if (it->star)
				dcr_buf_printf(out, "%sCOUNT(*) AS __dcr_c%zu", sep, i);
			else
				dcr_buf_printf(out, "%sCOUNT(%.*s) AS __dcr_c%zu", sep,
				               (int)it->col_len, q + it->col_off, i);
			dcr_buf_printf(out, ", 0 AS __dcr_s%zu", i);
			continue;
		}
		dcr_buf_printf(out,
		               "%sCOUNT(%.*s) AS __dcr_c%zu, "
		               "SUM(MAX(%lld, MIN(%lld, CAST(ROUND((%.*s) * %llu.0) AS INTEGER)))) "
		               "AS __dcr_s%zu",
		               sep, (int)it->col_len, q + it->col_off, i, (long long)it->bound->lo,
		               (long long)it->bound->hi, (int)it->col_len, q + it->col_off,
		               (unsigned long long)pow10u(it->bound->decimals), i);
	}
	dcr_buf_append_str(out, " ");
	dcr_buf_append_str(out, q + sh->from_off);
}

static void aggs_of(const struct shape *sh, cmp_dp_agg *aggs)
{
	for (size_t i = 0; i < sh->n; i++) {
		aggs[i].fn = sh->items[i].fn;
		if (sh->items[i].bound) {
			aggs[i].lo = sh->items[i].bound->lo;
			aggs[i].hi = sh->items[i].bound->hi;
			aggs[i].decimals = sh->items[i].bound->decimals;
		}
	}
}

/* The release: SELECT literal AS "name", ... (no inputs). */
static void release_query(const struct shape *sh, const cmp_dp_value *v, dcr_buf *out)
{
	dcr_buf_append_str(out, "SELECT ");
	for (size_t i = 0; i < sh->n; i++) {
		dcr_buf_printf(out, "%s%s AS ", i ? ", " : "", v[i].text);
		append_ident(out, sh->items[i].name);
	}
}

int cmp__dp_exact_query(const char *query, const cmp_input *inputs, size_t ninputs,
                        const cmp_dp *dp, dcr_buf *out, dcr_err *err)
{
	struct shape sh;
	int rc = shape_parse(query, inputs, ninputs, dp, &sh, err);
	if (rc)
		return rc;
	shape_rewrite(query, &sh, out);
	free(sh.items);
	return 0;
}

int cmp_dp_check(const char *query, const cmp_input *inputs, size_t ninputs, const cmp_dp *dp,
                 cmp_result *res, dcr_err *err)
{
	struct shape sh;
	dcr_buf q;
	int rc = shape_parse(query, inputs, ninputs, dp, &sh, err);
	if (rc)
		return rc;
	dcr_buf_init(&q);
	shape_rewrite(query, &sh, &q);
	rc = cmp_sql_check(dcr_buf_cstr(&q), inputs, ninputs, 0, NULL, err);
	if (!rc) {
		/* the schema of a release: zeros of the released types (no
		 * randomness here: this runs inside rm_apply) */
		cmp_dp_value *v = dcr_calloc(sh.n, sizeof *v);
		for (size_t i = 0; i < sh.n; i++)
			snprintf(v[i].text, sizeof v[i].text, "%s",
			         sh.items[i].fn == CMP_DP_AVG ||
			                 (sh.items[i].fn == CMP_DP_SUM && sh.items[i].bound->decimals)
			             ? "0.0"
			             : "0");
		dcr_buf_reset(&q);
		release_query(&sh, v, &q);
		rc = cmp_sql_check(dcr_buf_cstr(&q), NULL, 0, 0, res, err);
		free(v);
	}
	dcr_buf_release(&q);
	free(sh.items);
	return rc;
}

/* Reads the one row of the exact query's CSV: integers or empty (NULL). */
static int read_exact(const dcr_buf *csv, size_t n, cmp_dp_exact *ex, dcr_err *err)
{
	const char *p = memchr(csv->data, '\n', csv->len), *end = (const char *)csv->data + csv->len;
	if (!p)
		return dcr_err_set(err, DCR_EINTERNAL, "differential privacy: no exact row");
	p++;
	for (size_t i = 0; i < 2 * n; i++) {
		long long v = 0;
		bool neg = p < end && *p == '-';
		if (neg)
			p++;
		while (p < end && *p >= '0' && *p <= '9') {
			if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *p - '0', &v))
				return dcr_err_set(err, DCR_EINTERNAL,
				                   "differential privacy: exact value out of range");
			p++;
		}
		if (i % 2 == 0)
			ex[i / 2].count = neg ? 0 : (uint64_t)v;
		else
			ex[i / 2].sum = neg ? -v : v;
		char want = i + 1 == 2 * n ? '\r' : ',';
		if (p < end && (*p == want || (want == '\r' && *p == '\n')))
			p++;
		else if (!(p == end && i + 1 == 2 * n))
			return dcr_err_set(err, DCR_EINTERNAL,
			                   "differential privacy: unexpected exact row");
	}
	return 0;
}

int cmp_dp_run(const char *query, const cmp_input *inputs, size_t ninputs, const cmp_dp *dp,
               const cmp_sql_limits *lim, cmp_result *res, dcr_err *err)
{
	struct shape sh;
	dcr_buf q;
	cmp_result exact;
	cmp_dp_agg *aggs = NULL;
	cmp_dp_exact *ex = NULL;
	cmp_dp_value *v = NULL;
	cmp_rng own, *r = dp->rng;
	int rc = shape_parse(query, inputs, ninputs, dp, &sh, err);
	if (rc)
		return rc;
	dcr_buf_init(&q);
	cmp_result_init(&exact);
	cmp_rng_init(&own);
	if (!r)
		r = &own;
	shape_rewrite(query, &sh, &q);
	rc = cmp_sql_run(dcr_buf_cstr(&q), inputs, ninputs, 0, lim, &exact, err);
	if (rc)
		goto out;
	aggs = dcr_calloc(sh.n, sizeof *aggs);
	ex = dcr_calloc(sh.n, sizeof *ex);
	v = dcr_calloc(sh.n, sizeof *v);
	aggs_of(&sh, aggs);
	if ((rc = read_exact(&exact.csv, sh.n, ex, err)) ||
	    (rc = cmp_dp_noise(r, dp->epsilon, aggs, sh.n, ex, v, err)))
		goto out;
	dcr_buf_reset(&q);
	release_query(&sh, v, &q);
	rc = cmp_sql_run(dcr_buf_cstr(&q), NULL, 0, 0, lim, res, err);
out:
	/* the exact values never leave this function */
	if (exact.csv.data)
		dcr_wipe(exact.csv.data, exact.csv.len);
	if (exact.image.data)
		dcr_wipe(exact.image.data, exact.image.len);
	if (ex)
		dcr_wipe(ex, sh.n * sizeof *ex);
	cmp_result_release(&exact);
	cmp_rng_release(&own);
	free(aggs);
	free(ex);
	free(v);
	dcr_buf_release(&q);
	free(sh.items);
	return rc;
}
