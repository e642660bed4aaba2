/* dev.c: helpers of development runs for the clients (CLI, mount): the
 * language of a script file and the inputs it reads when the user did not
 * name them (docs/rules.md "Development runs"). Not rules: rm_apply
 * checks whatever inputs the signed dev.requested names. */
#include "room.h"

int rm_dev_lang_of_file(const char *file, enum rm_dev_lang *out, dcr_err *err)
{
	const char *dot = file ? strrchr(file, '.') : NULL;

	if (dot && strcmp(dot, ".sql") == 0)
		*out = RM_DEV_SQL;
	else if (dot && strcmp(dot, ".py") == 0)
		*out = RM_DEV_PYTHON;
	else if (dot && (strcmp(dot, ".R") == 0 || strcmp(dot, ".r") == 0))
		*out = RM_DEV_R;
	else
		return dcr_err_set(err, DCR_EINVALID,
		                   "%s: the language comes from the extension: .sql, .py or .R",
		                   file ? file : "");
	return 0;
}

static void add_name(char ***v, size_t *n, const char *p, size_t len)
{
	for (size_t i = 0; i < *n; i++)
		if (strlen((*v)[i]) == len && memcmp((*v)[i], p, len) == 0)
			return;
	*v = dcr_realloc(*v, (*n + 1) * sizeof **v);
	(*v)[(*n)++] = dcr_strndup(p, len);
}

/* "# inputs: a, b" on the first line (python and R comments alike). */
static int script_inputs(const char *script, char ***v, size_t *n, dcr_err *err)
{
	static const char tag[] = "# inputs:";
	const char *end = strchr(script, '\n'), *p;

	if (!end)
		end = script + strlen(script);
	if ((size_t)(end - script) < sizeof tag - 1 || memcmp(script, tag, sizeof tag - 1) != 0)
		return 0;
	p = script + sizeof tag - 1;
	while (p < end) {
		const char *q;
		while (p < end && (*p == ' ' || *p == '\t' || *p == ',' || *p == '\r'))
			p++;
		q = p;
		while (q < end && *q != ',' && *q != ' ' && *q != '\t' && *q != '\r')
			q++;
		if (q > p) {
			char *name = dcr_strndup(p, (size_t)(q - p));
			bool ok = rm_ident_valid(name);
			free(name);
			if (!ok)
				return dcr_err_set(err, DCR_EINVALID,
				                   "line 1 (# inputs:): \"%.*s\" is not a dataset or "
				                   "computation name",
				                   (int)(q - p > 64 ? 64 : q - p), p);
			add_name(v, n, p, (size_t)(q - p));
		}
		p = q;
	}
	return 0;
}

int rm_dev_infer_inputs(const rm_state *s, enum rm_dev_lang lang, const char *script,
                        char ***out, size_t *nout, dcr_err *err)
{
	char **v = NULL;
	size_t n = 0;
	int rc = 0;

	*out = NULL;
	*nout = 0;
	if (lang != RM_DEV_SQL) {
		rc = script_inputs(script, &v, &n, err);
	} else if (s->def) {
		const rm_def *d = s->def;
		size_t total = d->ndatasets + d->ncomputations;
		const char **names = dcr_calloc(total + 1, sizeof *names);
		bool *used = dcr_calloc(total + 1, sizeof *used);
		for (size_t i = 0; i < d->ndatasets; i++)
			names[i] = d->datasets[i].name;
		for (size_t i = 0; i < d->ncomputations; i++)
			names[d->ndatasets + i] = d->computations[i].name;
		rc = cmp_sql_refs(script, names, total, used, err);
		for (size_t i = 0; rc == 0 && i < total; i++)
			if (used[i])
				add_name(&v, &n, names[i], strlen(names[i]));
		free(names);
		free(used);
	}
	if (rc) {
		for (size_t i = 0; i < n; i++)
			free(v[i]);
		free(v);
		return rc;
	}
	*out = v;
	*nout = n;
	return 0;
}
