/* admit.c: the admission check of a room definition (docs/rules.md,
 * "Admission checks"): every sql query compiles with SQLite against the
 * declared schemas of what it reads, is one SELECT, uses only allowed
 * functions and aggregates where the privacy filter requires it; a
 * differentially private query has the one shape cmp_dp accepts.
 *
 * This is not a rule of replay. rm_apply never calls it: its verdict
 * depends on the linked SQLite and on a time limit, so two machines could
 * disagree. dcrd runs it before appending room.created, room.draft_saved
 * and room.published, and the CLI and the mount run it before they sign
 * one of those events; `dcr audit verify` may report it as a warning.
 * One function, so the daemon and the clients apply the same check.
 *
 * Workload: once per definition event submitted; the cost is compiling
 * each query once on empty tables. */
#include "room.h"

/* A differentially private query: the shape whose sensitivity is known
 * (cmp_dp_check, docs/privacy.md), compiled against its inputs. */
static int dp_check(const rm_computation *c, const cmp_input *inputs, cmp_result *res,
                    dcr_err *err)
{
	cmp_dp dp;
	cmp_dp_bound *b = dcr_calloc(c->ndp_bounds + 1, sizeof *b);
	rm_computation_dp(c, &dp, b);
	int rc = cmp_dp_check(c->query, inputs, c->ninputs, &dp, res, err);
	free(b);
	return rc;
}

/* A synthetic computation's result schema is its input's columns (a
 * table dataset, or an sql or synthetic result admitted upstream); over
 * an upstream result, its mask, bounds and bins are checked here against
 * that result's columns, as def.c checks them against a dataset's. */
static int synth_admit(rm_def *d, rm_computation *c, size_t i, dcr_err *err)
{
	const rm_dataset *ds = rm_def_dataset(d, c->input);
	const rm_computation *up = rm_def_computation(d, c->input);
	const cmp_column *cols;
	size_t ncols;
	if (ds) {
		c->result_cols = dcr_calloc(ds->ncolumns + 1, sizeof(cmp_column));
		rm_dataset_columns(ds, c->result_cols);
		for (size_t j = 0; j < ds->ncolumns; j++)
			c->result_cols[j].name = dcr_strdup(ds->columns[j].name);
		c->nresult_cols = ds->ncolumns;
		return 0;
	}
	DCR_ASSERT(up);
	if (!up->result_cols) {
		c->admit_error = dcr_asprintf("upstream computation %s failed its check", up->name);
		goto fail;
	}
	cols = up->result_cols;
	ncols = up->nresult_cols;
	for (size_t k = 0; k < c->nmask && !c->admit_error; k++) {
		const cmp_column *col = NULL;
		for (size_t j = 0; j < ncols && !col; j++)
			if (strcmp(cols[j].name, c->mask[k]) == 0)
				col = &cols[j];
		if (!col)
			c->admit_error = dcr_asprintf("mask: the result of %s has no column \"%s\"",
			                              up->name, c->mask[k]);
		else if (c->mask_fmt[k] && !cmp_mask_fits(c->mask_fmt[k], col->type))
			c->admit_error = dcr_asprintf(
			    "mask: format %s does not fit column \"%s\" of type %s",
			    cmp_mask_name(c->mask_fmt[k]), col->name, cmp_type_name(col->type));
	}
	for (size_t k = 0; k < c->nsynth_cols && !c->admit_error; k++) {
		const rm_synth_col *sc = &c->synth_cols[k];
		bool ok = false, masked = false;
		for (size_t j = 0; j < ncols; j++)
			ok |= strcmp(cols[j].name, sc->column) == 0 && cols[j].type != CMP_STRING;
		for (size_t j = 0; j < c->nmask; j++)
			masked |= strcmp(c->mask[j], sc->column) == 0;
		if (!ok || masked)
			c->admit_error = dcr_asprintf(
			    "%s: \"%s\" is not a numeric column of the result of %s that is "
			    "synthesised (not masked)",
			    sc->has_bounds ? "bounds" : "bins", sc->column, up->name);
	}
	if (c->admit_error)
		goto fail;
	c->result_cols = dcr_calloc(ncols + 1, sizeof(cmp_column));
	for (size_t j = 0; j < ncols; j++) {
		c->result_cols[j] = cols[j];
		c->result_cols[j].name = dcr_strdup(cols[j].name);
	}
	c->nresult_cols = ncols;
	return 0;
fail:
	return dcr_err_set(err, DCR_EINVALID, "computations[%zu] (\"%s\"): %s", i, c->name,
	                   c->admit_error);
}

/* Checks computation i (its upstream ones checked before it, in the
 * order of rm_def_topo): compiles an sql computation against its inputs'
 * schemas and records its result schema for the computations downstream.
 * Returns 0 or the computation's error (also kept in its admit_error, for
 * room.test). */
static int check_one(rm_def *d, size_t i, dcr_err *err)
{
	int rc = 0;
	rm_computation *c = &d->computations[i];
	if (c->kind == RM_COMP_SYNTHETIC)
		return synth_admit(d, c, i, err);
	if ((c->kind == RM_COMP_PYTHON || c->kind == RM_COMP_R) && c->ncolumns) {
		/* the declared tabular result (/output/dataset.csv) */
		c->result_cols = dcr_calloc(c->ncolumns + 1, sizeof(cmp_column));
		for (size_t j = 0; j < c->ncolumns; j++) {
			c->result_cols[j].name = dcr_strdup(c->columns[j].name);
			c->result_cols[j].type = c->columns[j].type;
			c->result_cols[j].format = c->columns[j].format;
			c->result_cols[j].nullable = c->columns[j].nullable;
		}
		c->nresult_cols = c->ncolumns;
		return 0;
	}
	if (c->kind != RM_COMP_SQL)
		return 0;
	const char *failed_up = NULL;
	for (size_t k = 0; k < c->ninputs && !failed_up; k++) {
		const rm_computation *up = rm_def_computation(d, c->inputs[k]);
		if (up && !up->result_cols)
			failed_up = up->name;
	}
	if (failed_up) {
		c->admit_error = dcr_asprintf("upstream computation %s failed its check", failed_up);
		return dcr_err_set(err, DCR_EINVALID, "computations[%zu] (\"%s\"): %s", i, c->name,
		                   c->admit_error);
	}
	cmp_input *inputs = dcr_calloc(c->ninputs + 1, sizeof(cmp_input));
	cmp_column **cols = dcr_calloc(c->ninputs + 1, sizeof(cmp_column *));
	for (size_t k = 0; k < c->ninputs; k++) {
		const rm_dataset *ds = rm_def_dataset(d, c->inputs[k]);
		inputs[k].name = c->inputs[k];
		if (ds) {
			cols[k] = dcr_calloc(ds->ncolumns + 1, sizeof(cmp_column));
			rm_dataset_columns(ds, cols[k]);
			inputs[k].schema.cols = cols[k];
			inputs[k].schema.ncols = ds->ncolumns;
			inputs[k].priv = &ds->psrc;
		} else {
			const rm_computation *up = rm_def_computation(d, c->inputs[k]);
			DCR_ASSERT(up && up->result_cols); /* else failed_up above */
			inputs[k].schema.cols = up->result_cols;
			inputs[k].schema.ncols = up->nresult_cols;
			inputs[k].priv = &up->psrc;
		}
	}
	cmp_result res;
	dcr_err e;
	dcr_err_clear(&e);
	cmp_result_init(&res);
	int crc = c->dp_epsilon ? dp_check(c, inputs, &res, &e)
	                        : cmp_sql_check(c->query, inputs, c->ninputs, c->min_rows_aggregated,
	                                        &res, &e);
	if (crc < 0) {
		bool has_prefix = strncmp(e.msg, "SQL", 3) == 0;
		c->admit_error = dcr_asprintf("%s%s", has_prefix ? "" : "SQL error: ", e.msg);
		rc = dcr_err_set(err, DCR_EINVALID, "computations[%zu] (\"%s\"): %s", i, c->name,
		                 c->admit_error);
	} else {
		c->nresult_cols = res.ncols;
		c->result_cols = dcr_calloc(res.ncols + 1, sizeof(cmp_column));
		for (size_t j = 0; j < res.ncols; j++) {
			c->result_cols[j] = res.cols[j];
			c->result_cols[j].name = dcr_strdup(res.cols[j].name);
		}
	}
	cmp_result_release(&res);
	for (size_t k = 0; k < c->ninputs; k++)
		free(cols[k]);
	free(cols);
	free(inputs);
	return rc;
}

static void clear_results(rm_def *d)
{
	for (size_t i = 0; i < d->ncomputations; i++) {
		rm_computation *c = &d->computations[i];
		for (size_t j = 0; j < c->nresult_cols; j++)
			free((char *)c->result_cols[j].name);
		free(c->result_cols);
		c->result_cols = NULL;
		c->nresult_cols = 0;
		free(c->admit_error);
		c->admit_error = NULL;
	}
}

int rm_admit_begin(rm_admit *a, rm_def *d, bool all, dcr_err *err)
{
	memset(a, 0, sizeof *a);
	a->d = d;
	a->all = all;
	a->order = dcr_calloc(d->ncomputations + 1, sizeof(size_t));
	clear_results(d);
	int rc = rm_def_topo(d, a->order);
	if (rc) {
		free(a->order);
		a->order = NULL;
		return dcr_err_set(err, rc, "computations form a cycle");
	}
	return 0;
}

bool rm_admit_step(rm_admit *a)
{
	if (a->next < a->d->ncomputations) {
		/* Goes on past a failure: each computation keeps its own
		 * admit_error, for room.test; the first is the verdict. */
		dcr_err e;
		dcr_err_clear(&e);
		int rc = check_one(a->d, a->order[a->next++], &e);
		if (rc && !a->rc) {
			a->rc = rc;
			a->err = e;
		}
	}
	return a->next >= a->d->ncomputations || (a->rc && !a->all);
}

int rm_admit_end(rm_admit *a, dcr_err *err)
{
	int rc = a->rc;
	if (rc)
		dcr_err_set(err, rc, "%s", a->err.msg);
	free(a->order);
	a->order = NULL;
	return rc;
}

int rm_def_admit(rm_def *d, dcr_err *err)
{
	rm_admit a;
	int rc = rm_admit_begin(&a, d, true, err);
	if (rc)
		return rc;
	while (!rm_admit_step(&a))
		;
	return rm_admit_end(&a, err);
}

int rm_def_admit_json(const char *json, size_t n, dcr_err *err)
{
	rm_def *d = NULL;
	int rc = rm_def_parse(json, n, &d, err);
	if (!rc)
		rc = rm_def_admit(d, err);
	if (rc)
		dcr_err_prefix(err, "definition");
	rm_def_free(d);
	return rc;
}
