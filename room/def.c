/* def.c: the room definition document (docs/room-format.md): parsing,
 * validation and pretty printing.
 *
 * A definition is untrusted JSON from a participant. Parsing is strict:
 * duplicate keys and unknown fields are errors (typos must not silently
 * drop a rule), every size and count is capped (base/limits.h, room
 * section), and every error names the field path. Validation then checks
 * the definition as a whole: unique names, references that resolve,
 * owners and analysts for everything and an acyclic computation graph.
 * The inputs of a query come from the project's own tokenizer
 * (cmp_sql_refs), never from SQLite: parsing is a rule of replay and must
 * give the same verdict everywhere. Compiling the SQL is an admission
 * check made before signing (admit.c), not part of parsing.
 *
 * Workload: a definition is parsed once per room.created/draft_saved/
 * published event, on every replay; linear in its size. */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>

#include "room.h"

/* ---- names ------------------------------------------------------------- */

const char *rm_dskind_name(enum rm_dskind k)
{
	return k == RM_DS_FILE ? "file" : "table";
}

const char *rm_compkind_name(enum rm_compkind k)
{
	switch (k) {
	case RM_COMP_SQL:
		return "sql";
	case RM_COMP_PYTHON:
		return "python";
	case RM_COMP_R:
		return "r";
	case RM_COMP_SYNTHETIC:
		return "synthetic";
	}
	return "?";
}

const char *rm_logs_name(enum rm_logs l)
{
	switch (l) {
	case RM_LOGS_NEVER:
		return "never";
	case RM_LOGS_ON_ERROR:
		return "on_error";
	case RM_LOGS_ALWAYS:
		return "always";
	}
	return "?";
}

void rm_dataset_columns(const rm_dataset *ds, cmp_column *cols)
{
	for (size_t i = 0; i < ds->ncolumns; i++) {
		cols[i].name = ds->columns[i].name;
		cols[i].type = ds->columns[i].type;
		cols[i].format = ds->columns[i].format;
		cols[i].nullable = ds->columns[i].nullable;
	}
}

bool rm_ident_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > DCR_RM_NAME_BYTES_MAX)
		return false;
	if (!(s[0] == '_' || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = s[i];
		if (!(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9')))
			return false;
	}
	/* SQLite reserves table names starting with sqlite_. */
	return dcr_ascii_ncasecmp(s, "sqlite_", 7) != 0;
}

bool rm_room_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > DCR_RM_ROOM_NAME_BYTES_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!(c == '_' || c == '-' || c == '.' || (c >= 'A' && c <= 'Z') ||
		      (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			return false;
	}
	return true;
}

/* Plausible, not RFC 5322: one '@', a non-empty local part, a domain with
 * a dot not at either end, printable ASCII without spaces or quotes. */
static bool email_plausible(const char *s)
{
	size_t n = strlen(s);
	const char *at = strchr(s, '@');
	if (n < 3 || n > DCR_RM_EMAIL_BYTES_MAX || !at || at == s || strchr(at + 1, '@'))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' ||
		    c == ',' || c == ';')
			return false;
	}
	const char *dom = at + 1;
	const char *dot = strchr(dom, '.');
	size_t dn = strlen(dom);
	if (dn < 3 || !dot || dom[0] == '.' || dom[dn - 1] == '.' || strstr(dom, ".."))
		return false;
	return true;
}

/* ---- free ----------------------------------------------------------------- */

static void free_list(char **l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(l[i]);
	free(l);
}

void rm_def_free(rm_def *d)
{
	if (!d)
		return;
	free(d->format);
	free(d->name);
	free(d->description);
	for (size_t i = 0; i < d->nparticipants; i++) {
		rm_participant *p = &d->participants[i];
		free(p->email);
		free_list(p->owner_of, p->nowner_of);
		free_list(p->analyst_of, p->nanalyst_of);
	}
	free(d->participants);
	for (size_t i = 0; i < d->ndatasets; i++) {
		rm_dataset *ds = &d->datasets[i];
		free(ds->name);
		for (size_t j = 0; j < ds->ncolumns; j++)
			free(ds->columns[j].name);
		free(ds->columns);
		free(ds->unit);
		cmp_psource_release(&ds->psrc);
		if (ds->auto_approve)
			free_list(ds->auto_approve->analysts, ds->auto_approve->nanalysts);
		free(ds->auto_approve);
	}
	free(d->datasets);
	for (size_t i = 0; i < d->ncomputations; i++) {
		rm_computation *c = &d->computations[i];
		free(c->name);
		free(c->query);
		free(c->script);
		for (size_t j = 0; j < c->ncolumns; j++)
			free(c->columns[j].name);
		free(c->columns);
		free_list(c->inputs, c->ninputs);
		free(c->input);
		free_list(c->mask, c->nmask);
		free(c->mask_fmt);
		for (size_t j = 0; j < c->nsynth_cols; j++)
			free(c->synth_cols[j].column);
		free(c->synth_cols);
		for (size_t j = 0; j < c->ndp_bounds; j++)
			free(c->dp_bounds[j].column);
		free(c->dp_bounds);
		for (size_t j = 0; j < c->nresult_cols; j++)
			free((char *)c->result_cols[j].name);
		free(c->result_cols);
		cmp_psource_release(&c->psrc);
		free(c->admit_error);
	}
	free(d->computations);
	free(d);
}

/* ---- lookups ---------------------------------------------------------------- */

const rm_dataset *rm_def_dataset(const rm_def *d, const char *name)
{
	if (!d || !name)
		return NULL;
	for (size_t i = 0; i < d->ndatasets; i++)
		if (strcmp(d->datasets[i].name, name) == 0)
			return &d->datasets[i];
	return NULL;
}

const rm_computation *rm_def_computation(const rm_def *d, const char *name)
{
	if (!d || !name)
		return NULL;
	for (size_t i = 0; i < d->ncomputations; i++)
		if (strcmp(d->computations[i].name, name) == 0)
			return &d->computations[i];
	return NULL;
}

const rm_participant *rm_def_participant(const rm_def *d, const uint8_t key[32])
{
	if (!d)
		return NULL;
	for (size_t i = 0; i < d->nparticipants; i++)
		if (memcmp(d->participants[i].key, key, 32) == 0)
			return &d->participants[i];
	return NULL;
}

static bool in_list(char *const *l, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(l[i], name) == 0)
			return true;
	return false;
}

bool rm_is_owner(const rm_def *d, const uint8_t key[32], const char *dataset)
{
	const rm_participant *p = rm_def_participant(d, key);
	return p && dataset && in_list(p->owner_of, p->nowner_of, dataset);
}

bool rm_is_analyst(const rm_def *d, const uint8_t key[32], const char *computation)
{
	const rm_participant *p = rm_def_participant(d, key);
	return p && computation && in_list(p->analyst_of, p->nanalyst_of, computation);
}

static ptrdiff_t comp_index(const rm_def *d, const char *name)
{
	for (size_t i = 0; i < d->ncomputations; i++)
		if (strcmp(d->computations[i].name, name) == 0)
			return (ptrdiff_t)i;
	return -1;
}

static ptrdiff_t ds_index(const rm_def *d, const char *name)
{
	for (size_t i = 0; i < d->ndatasets; i++)
		if (strcmp(d->datasets[i].name, name) == 0)
			return (ptrdiff_t)i;
	return -1;
}

/* ---- dependency order ------------------------------------------------------ */

typedef struct topo {
	const rm_def *d;
	uint8_t *color; /* 0 new, 1 on the stack, 2 done */
	size_t *stack;
	size_t depth;
	size_t *order;
	size_t norder;
	dcr_buf *cycle; /* "a -> b -> a" on a cycle, may be NULL */
	size_t cycle_at;
} topo;

static int topo_visit(topo *t, size_t i)
{
	const rm_computation *c = &t->d->computations[i];
	if (t->color[i] == 2)
		return 0;
	if (t->color[i] == 1) {
		size_t k = 0;
		while (t->stack[k] != i)
			k++;
		t->cycle_at = i;
		if (t->cycle) {
			for (; k < t->depth; k++)
				dcr_buf_printf(t->cycle, "%s -> ",
				               t->d->computations[t->stack[k]].name);
			dcr_buf_append_str(t->cycle, c->name);
		}
		return DCR_EINVALID;
	}
	t->color[i] = 1;
	t->stack[t->depth++] = i;
	for (size_t k = 0; k < c->ninputs; k++) {
		ptrdiff_t j = comp_index(t->d, c->inputs[k]);
		if (j >= 0) {
			int rc = topo_visit(t, (size_t)j);
			if (rc)
				return rc;
		}
	}
	t->depth--;
	t->color[i] = 2;
	t->order[t->norder++] = i;
	return 0;
}

static int topo_run(const rm_def *d, size_t *order, dcr_buf *cycle, size_t *cycle_at)
{
	int rc = 0;
	size_t n = d->ncomputations;
	topo t = {.d = d, .order = order, .cycle = cycle};
	t.color = dcr_calloc(n + 1, 1);
	t.stack = dcr_calloc(n + 1, sizeof(size_t));
	for (size_t i = 0; i < n && !rc; i++)
		rc = topo_visit(&t, i);
	if (rc && cycle_at)
		*cycle_at = t.cycle_at;
	free(t.color);
	free(t.stack);
	return rc;
}

int rm_def_topo(const rm_def *d, size_t *order)
{
	return topo_run(d, order, NULL, NULL);
}

static void datasets_read(const rm_def *d, const rm_computation *c, bool *used, uint8_t *seen)
{
	for (size_t k = 0; k < c->ninputs; k++) {
		ptrdiff_t j = ds_index(d, c->inputs[k]);
		if (j >= 0) {
			used[j] = true;
			continue;
		}
		j = comp_index(d, c->inputs[k]);
		if (j >= 0 && !seen[j]) {
			seen[j] = 1;
			datasets_read(d, &d->computations[j], used, seen);
		}
	}
}

void rm_def_datasets_read(const rm_def *d, const rm_computation *c, bool *used)
{
	uint8_t *seen = dcr_calloc(d->ncomputations + 1, 1);
	for (size_t i = 0; i < d->ndatasets; i++)
		used[i] = false;
	datasets_read(d, c, used, seen);
	free(seen);
}

/* ---- parsing helpers ------------------------------------------------------ */

/* Sets err to "path.key: message" (key and path optional). */
__attribute__((format(printf, 5, 6))) static int fail(dcr_err *err, int code, const char *path,
                                                      const char *key, const char *fmt, ...)
{
	char msg[DCR_ERR_MSG_BYTES];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (path && *path && key)
		return dcr_err_set(err, code, "%s.%s: %s", path, key, msg);
	if (path && *path)
		return dcr_err_set(err, code, "%s: %s", path, msg);
	if (key)
		return dcr_err_set(err, code, "%s: %s", key, msg);
	return dcr_err_set(err, code, "%s", msg);
}

/* Edit distance (insert, delete, substitute, swap adjacent), capped: the
 * inputs are field names; longer than 32 bytes counts as far. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t n = strlen(a), m = strlen(b);
	size_t d[33][33];
	if (n > 32 || m > 32)
		return SIZE_MAX;
	for (size_t i = 0; i <= n; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= m; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= n; i++) {
		for (size_t j = 1; j <= m; j++) {
			size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	}
	return d[n][m];
}

/* Rejects fields not in allowed (NULL-terminated), except "x-" ones,
 * suggesting the closest allowed name for a likely typo. */
static int check_fields(json_t *o, const char *path, const char *const *allowed, dcr_err *err)
{
	const char *key;
	json_t *v;
	json_object_foreach(o, key, v)
	{
		bool ok = strncmp(key, "x-", 2) == 0;
		for (size_t i = 0; !ok && allowed[i]; i++)
			ok = strcmp(key, allowed[i]) == 0;
		if (ok)
			continue;
		const char *near = NULL;
		size_t best = 3; /* at most 2 edits */
		dcr_buf list;
		dcr_buf_init(&list);
		for (size_t i = 0; allowed[i]; i++) {
			size_t dist = edit_distance(key, allowed[i]);
			if (dist < best)
				best = dist, near = allowed[i];
			dcr_buf_printf(&list, "%s%s", i ? ", " : "", allowed[i]);
		}
		int rc;
		if (near)
			rc = fail(err, DCR_EINVALID, path, NULL,
			          "unknown field \"%s\" (did you mean \"%s\"? names starting with "
			          "x- are ignored)",
			          key, near);
		else
			rc = fail(err, DCR_EINVALID, path, NULL,
			          "unknown field \"%s\" (expected %s; names starting with x- are "
			          "ignored)",
			          key, dcr_buf_cstr(&list));
		dcr_buf_release(&list);
		return rc;
	}
	return 0;
}

static int get_str(json_t *o, const char *path, const char *key, bool required, size_t max,
                   const char **out, dcr_err *err)
{
	json_t *v = json_object_get(o, key);
	*out = NULL;
	if (!v)
		return required ? fail(err, DCR_EINVALID, path, key, "missing (required)") : 0;
	if (!json_is_string(v))
		return fail(err, DCR_EINVALID, path, key, "expected a string");
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (strlen(s) != n)
		return fail(err, DCR_EINVALID, path, key, "contains a NUL character");
	if (n > max)
		return fail(err, DCR_ELIMIT, path, key, "%zu bytes, at most %zu allowed", n, max);
	*out = s;
	return 0;
}

static int get_bool(json_t *o, const char *path, const char *key, bool dflt, bool *out,
                    dcr_err *err)
{
	json_t *v = json_object_get(o, key);
	*out = dflt;
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return fail(err, DCR_EINVALID, path, key, "expected true or false");
	*out = json_is_true(v);
	return 0;
}

static int get_array(json_t *o, const char *path, const char *key, bool required, size_t max,
                     json_t **out, dcr_err *err)
{
	json_t *v = json_object_get(o, key);
	*out = NULL;
	if (!v)
		return required ? fail(err, DCR_EINVALID, path, key, "missing (required)") : 0;
	if (!json_is_array(v))
		return fail(err, DCR_EINVALID, path, key, "expected an array");
	if (json_array_size(v) > max)
		return fail(err, DCR_ELIMIT, path, key, "%zu entries, at most %zu allowed",
		            json_array_size(v), max);
	*out = v;
	return 0;
}

/* A list of names (strings), copied; absent means empty. No duplicates. */
static int get_names(json_t *o, const char *path, const char *key, char ***out, size_t *n,
                     dcr_err *err)
{
	json_t *a;
	int rc = get_array(o, path, key, false, DCR_RM_LIST_MAX, &a, err);
	if (rc || !a)
		return rc;
	size_t m = json_array_size(a);
	*out = dcr_calloc(m + 1, sizeof(char *));
	for (size_t i = 0; i < m; i++) {
		json_t *v = json_array_get(a, i);
		char item[128];
		snprintf(item, sizeof item, "%s%s%s[%zu]", path, *path ? "." : "", key, i);
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
			return fail(err, DCR_EINVALID, item, NULL, "expected a name (string)");
		const char *s = json_string_value(v);
		if (in_list(*out, *n, s))
			return fail(err, DCR_EINVALID, item, NULL, "\"%s\" is listed twice", s);
		(*out)[(*n)++] = dcr_strdup(s);
	}
	return 0;
}

static int need_object(json_t *v, const char *path, dcr_err *err)
{
	if (!json_is_object(v))
		return fail(err, DCR_EINVALID, path, NULL, "expected an object");
	return 0;
}

/* ---- sections --------------------------------------------------------------- */

static int parse_settings(json_t *root, rm_def *d, dcr_err *err)
{
	static const char *const fields[] = {"interactive", "development", "require_provisioned",
	                                     NULL};
	json_t *s = json_object_get(root, "settings");
	d->interactive = true;
	d->development = false;
	d->require_provisioned = true;
	if (!s)
		return 0;
	int rc = need_object(s, "settings", err);
	if (!rc)
		rc = check_fields(s, "settings", fields, err);
	if (!rc)
		rc = get_bool(s, "settings", "interactive", true, &d->interactive, err);
	if (!rc)
		rc = get_bool(s, "settings", "development", false, &d->development, err);
	if (!rc)
		rc = get_bool(s, "settings", "require_provisioned", true, &d->require_provisioned,
		              err);
	return rc;
}

/* The start of every named object (column, dataset, computation): v is an
 * object with only the given fields and a valid "name", returned in *name
 * (owned by v). hint ends the invalid-name message. */
static int parse_named(json_t *v, const char *path, const char *const *fields, const char *hint,
                       const char **name, dcr_err *err)
{
	const char *s;
	int rc = need_object(v, path, err);
	if (!rc)
		rc = check_fields(v, path, fields, err);
	if (!rc)
		rc = get_str(v, path, "name", true, DCR_RM_NAME_BYTES_MAX + 64, &s, err);
	if (rc)
		return rc;
	if (!rm_ident_valid(s))
		return fail(err, DCR_EINVALID, path, "name",
		            "\"%s\" is not a valid name (letters, digits and _, not starting "
		            "with a digit or sqlite_, at most %u characters%s)",
		            s, DCR_RM_NAME_BYTES_MAX, hint);
	*name = s;
	return 0;
}

static int parse_column(json_t *v, const char *path, rm_column *col, dcr_err *err)
{
	static const char *const fields[] = {"name", "type", "nullable", "format", "allow", NULL};
	const char *s;
	json_t *allow;
	int rc = parse_named(v, path, fields, "", &s, err);
	if (rc)
		return rc;
	col->name = dcr_strdup(s);
	if ((rc = get_array(v, path, "allow", false, 4, &allow, err)))
		return rc;
	for (size_t k = 0; allow && k < json_array_size(allow); k++) {
		static const char *const names[] = {"group", "aggregate", "join", "minmax"};
		json_t *e = json_array_get(allow, k);
		char apath[128];
		size_t b;
		snprintf(apath, sizeof apath, "%s.allow", path);
		for (b = 0; b < 4; b++)
			if (json_is_string(e) && strcmp(json_string_value(e), names[b]) == 0)
				break;
		if (b == 4)
			return dcr_err_set(err, DCR_EINVALID,
			                   "%s[%zu]: expected \"group\", \"aggregate\", \"join\" "
			                   "or \"minmax\"",
			                   apath, k);
		if (col->allow & (1u << b))
			return dcr_err_set(err, DCR_EINVALID, "%s[%zu]: \"%s\" is listed twice",
			                   apath, k, names[b]);
		col->allow |= 1u << b;
	}
	if ((rc = get_str(v, path, "type", true, 64, &s, err)))
		return rc;
	if (!cmp_type_parse(s, strlen(s), &col->type))
		return fail(err, DCR_EINVALID, path, "type",
		            "unknown type \"%s\"; expected string, integer or float", s);
	if ((rc = get_bool(v, path, "nullable", true, &col->nullable, err)))
		return rc;
	if ((rc = get_str(v, path, "format", false, 64, &s, err)))
		return rc;
	col->format = CMP_FMT_NONE;
	if (s) {
		if (col->type != CMP_STRING)
			return fail(err, DCR_EINVALID, path, "format",
			            "only string columns take a format (this one is %s)",
			            cmp_type_name(col->type));
		if (strcmp(s, "email") == 0)
			col->format = CMP_FMT_EMAIL;
		else if (strcmp(s, "date") == 0)
			col->format = CMP_FMT_DATE;
		else if (strcmp(s, "sha256") == 0)
			col->format = CMP_FMT_SHA256;
		else
			return fail(err, DCR_EINVALID, path, "format",
			            "unknown format \"%s\"; expected email, date or sha256", s);
	}
	return 0;
}

/* ---- differential privacy fields (docs/room-format.md, docs/privacy.md) --
 * Epsilons and budgets are exact: decimal strings (or JSON integers) read
 * into integer millionths, never doubles, so the budget ledger replays to
 * the same numbers on every machine. */

int rm_decimal_parse(const char *s, unsigned max_decimals, int64_t max_scaled, int64_t *scaled,
                     unsigned *decimals)
{
	const char *p = s;
	bool neg = *p == '-', frac = false;
	int64_t v = 0;
	unsigned dec = 0;
	if (neg)
		p++;
	if (!(*p >= '0' && *p <= '9') || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
		return DCR_EINVALID;
	for (; *p; p++) {
		if (*p == '.') {
			if (frac || !(p[1] >= '0' && p[1] <= '9'))
				return DCR_EINVALID;
			frac = true;
			continue;
		}
		if (*p < '0' || *p > '9')
			return DCR_EINVALID;
		if (frac && ++dec > max_decimals)
			return DCR_EINVALID;
		if (v > (max_scaled - (*p - '0')) / 10)
			return DCR_EINVALID;
		v = v * 10 + (*p - '0');
	}
	*scaled = neg ? -v : v;
	*decimals = dec;
	return 0;
}

const char *rm_epsilon_format(uint64_t micro, char *buf, size_t cap)
{
	uint64_t whole = micro / DCR_DP_EPSILON_SCALE, frac = micro % DCR_DP_EPSILON_SCALE;
	if (!frac) {
		snprintf(buf, cap, "%llu", (unsigned long long)whole);
		return buf;
	}
	int digits = 6;
	while (frac % 10 == 0)
		frac /= 10, digits--;
	snprintf(buf, cap, "%llu.%0*llu", (unsigned long long)whole, digits,
	         (unsigned long long)frac);
	return buf;
}

/* A positive amount of epsilon, at most max millionths: a decimal string
 * with at most 6 fraction digits, or a JSON integer. */
static int parse_epsilon(json_t *o, const char *path, const char *key, uint64_t max,
                         uint64_t *out, dcr_err *err)
{
	json_t *v = json_object_get(o, key);
	int64_t x;
	unsigned dec;
	char mx[32];
	rm_epsilon_format(max, mx, sizeof mx);
	if (json_is_integer(v) && json_integer_value(v) > 0 &&
	    (uint64_t)json_integer_value(v) <= max / DCR_DP_EPSILON_SCALE) {
		*out = (uint64_t)json_integer_value(v) * DCR_DP_EPSILON_SCALE;
		return 0;
	}
	if (json_is_real(v))
		return fail(err, DCR_EINVALID, path, key,
		            "write it as a decimal string such as \"0.5\": a JSON number with a "
		            "fraction is a binary float, and epsilons must add up exactly");
	if (!json_is_string(v) ||
	    rm_decimal_parse(json_string_value(v), 6, INT64_MAX / 10, &x, &dec) || x <= 0)
		return fail(err, DCR_EINVALID, path, key,
		            "expected a decimal string greater than 0 and at most %s, with at most "
		            "6 digits after the point (\"0.5\")",
		            mx);
	for (; dec < 6; dec++)
		x *= 10;
	if ((uint64_t)x > max)
		return fail(err, DCR_EINVALID, path, key, "%s is more than the maximum, %s",
		            json_string_value(v), mx);
	*out = (uint64_t)x;
	return 0;
}

/* dataset.epsilon_budget (table datasets only). */
static int parse_budget(json_t *v, const char *path, rm_dataset *ds, dcr_err *err)
{
	if (!json_object_get(v, "epsilon_budget"))
		return 0;
	if (ds->kind != RM_DS_TABLE)
		return fail(err, DCR_EINVALID, path, "epsilon_budget",
		            "only table datasets take a budget (differentially private queries "
		            "read tables)");
	return parse_epsilon(v, path, "epsilon_budget", DCR_DP_BUDGET_MAX, &ds->epsilon_budget,
	                     err);
}

/* dataset.drops: "replace" (default) or "append" (table datasets only). */
static int parse_drops(json_t *v, const char *path, rm_dataset *ds, dcr_err *err)
{
	const char *s;
	int rc = get_str(v, path, "drops", false, 16, &s, err);
	if (rc || !s)
		return rc;
	if (strcmp(s, "append") == 0)
		ds->append = true;
	else if (strcmp(s, "replace") != 0)
		return fail(err, DCR_EINVALID, path, "drops",
		            "unknown mode \"%s\"; expected replace or append", s);
	if (ds->append && ds->kind != RM_DS_TABLE)
		return fail(err, DCR_EINVALID, path, "drops",
		            "only table datasets take \"append\" (the union of drops is a table)");
	return 0;
}

static int bound_value(json_t *v, const char *path, int64_t *x, unsigned *dec, dcr_err *err)
{
	char buf[32];
	const char *s = buf;
	if (json_is_integer(v))
		snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
	else if (json_is_string(v))
		s = json_string_value(v);
	else
		return dcr_err_set(err, DCR_EINVALID,
		                   "%s: expected a decimal string (\"-10.5\") or an integer", path);
	if (rm_decimal_parse(s, DCR_DP_BOUND_DECIMALS_MAX, DCR_DP_BOUND_STEPS_MAX, x, dec))
		return dcr_err_set(err, DCR_EINVALID,
		                   "%s: \"%.40s\" is not a decimal with at most %u digits after the "
		                   "point and at most 10^12 in steps of its last digit",
		                   path, s, DCR_DP_BOUND_DECIMALS_MAX);
	return 0;
}

static int bound_cmp(const void *a, const void *b)
{
	return strcmp(((const rm_bound *)a)->column, ((const rm_bound *)b)->column);
}

/* privacy.bounds: {"column": [lower, upper], ...}; kept sorted by column. */
static int parse_bounds(json_t *p, const char *ppath, rm_computation *c, dcr_err *err)
{
	json_t *b = json_object_get(p, "bounds"), *pair;
	const char *col;
	char path[256];
	if (!b)
		return 0;
	if (!json_is_object(b))
		return fail(err, DCR_EINVALID, ppath, "bounds",
		            "expected an object {\"column\": [lower, upper], ...}");
	if (json_object_size(b) > DCR_DP_AGGREGATES_MAX)
		return fail(err, DCR_ELIMIT, ppath, "bounds", "more than %u columns",
		            DCR_DP_AGGREGATES_MAX);
	c->dp_bounds = dcr_calloc(json_object_size(b) + 1, sizeof(rm_bound));
	json_object_foreach(b, col, pair)
	{
		rm_bound *bd = &c->dp_bounds[c->ndp_bounds];
		int64_t lo, hi;
		unsigned dlo, dhi;
		int rc;
		snprintf(path, sizeof path, "%s.bounds.%.63s", ppath, col);
		if (!rm_ident_valid(col))
			return dcr_err_set(err, DCR_EINVALID, "%s: not a column name", path);
		if (!json_is_array(pair) || json_array_size(pair) != 2)
			return dcr_err_set(err, DCR_EINVALID, "%s: expected [lower, upper]", path);
		if ((rc = bound_value(json_array_get(pair, 0), path, &lo, &dlo, err)) ||
		    (rc = bound_value(json_array_get(pair, 1), path, &hi, &dhi, err)))
			return rc;
		bd->decimals = dlo > dhi ? dlo : dhi;
		for (; dlo < bd->decimals; dlo++)
			lo *= 10;
		for (; dhi < bd->decimals; dhi++)
			hi *= 10;
		if (lo < -DCR_DP_BOUND_STEPS_MAX || lo > DCR_DP_BOUND_STEPS_MAX ||
		    hi < -DCR_DP_BOUND_STEPS_MAX || hi > DCR_DP_BOUND_STEPS_MAX)
			return dcr_err_set(err, DCR_EINVALID,
			                   "%s: more than 10^12 steps of 10^-%u from zero", path,
			                   bd->decimals);
		if (lo > hi)
			return dcr_err_set(err, DCR_EINVALID, "%s: the lower bound is above the upper",
			                   path);
		bd->column = dcr_strdup(col);
		bd->lo = lo;
		bd->hi = hi;
		c->ndp_bounds++;
	}
	qsort(c->dp_bounds, c->ndp_bounds, sizeof(rm_bound), bound_cmp);
	return 0;
}

/* A bound as a decimal string with its declared digits. */
static json_t *bound_json(int64_t v, unsigned decimals)
{
	char buf[48];
	uint64_t a = v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v, p = 1;
	for (unsigned i = 0; i < decimals; i++)
		p *= 10;
	if (decimals)
		snprintf(buf, sizeof buf, "%s%llu.%0*llu", v < 0 ? "-" : "",
		         (unsigned long long)(a / p), (int)decimals, (unsigned long long)(a % p));
	else
		snprintf(buf, sizeof buf, "%s%llu", v < 0 ? "-" : "", (unsigned long long)a);
	return json_string(buf);
}

/* datasets[i].auto_approve (docs/room-format.md): its own fields; the
 * analysts are checked against the participants by check_policies. */
static int parse_policy(json_t *v, const char *path, rm_dataset *ds, dcr_err *err)
{
	static const char *const fields[] = {"kinds", "privacy_min_rows_aggregated_at_least",
	                                     "analysts", NULL};
	json_t *o = json_object_get(v, "auto_approve"), *a, *k;
	char ppath[96];
	size_t i;
	int rc;

	if (!o)
		return 0;
	snprintf(ppath, sizeof ppath, "%s.auto_approve", path);
	if ((rc = need_object(o, ppath, err)) || (rc = check_fields(o, ppath, fields, err)))
		return rc;
	ds->auto_approve = dcr_calloc(1, sizeof(rm_policy));
	rm_policy *p = ds->auto_approve;
	if ((rc = get_array(o, ppath, "kinds", true, 8, &a, err)))
		return rc;
	if (json_array_size(a) == 0)
		return fail(err, DCR_EINVALID, ppath, "kinds", "at least one is needed");
	json_array_foreach(a, i, k)
	{
		const char *s = json_is_string(k) ? json_string_value(k) : "";
		unsigned bit = 0;
		for (int kind = RM_COMP_SQL; kind <= RM_COMP_SYNTHETIC; kind++)
			if (strcmp(s, rm_compkind_name((enum rm_compkind)kind)) == 0)
				bit = 1u << kind;
		if (!bit)
			return fail(err, DCR_EINVALID, ppath, "kinds",
			            "kinds[%zu] is not a computation kind (sql, python, r, "
			            "synthetic)",
			            i);
		p->kinds |= bit;
	}
	json_t *m = json_object_get(o, "privacy_min_rows_aggregated_at_least");
	if (m) {
		if (!json_is_integer(m) || json_integer_value(m) < 1 ||
		    json_integer_value(m) > DCR_RM_MIN_ROWS_MAX)
			return fail(err, DCR_EINVALID, ppath, "privacy_min_rows_aggregated_at_least",
			            "expected an integer from 1 to %lld", DCR_RM_MIN_ROWS_MAX);
		p->min_rows = (long long)json_integer_value(m);
	}
	if (json_object_get(o, "analysts")) {
		if ((rc = get_names(o, ppath, "analysts", &p->analysts, &p->nanalysts, err)))
			return rc;
		if (p->nanalysts == 0)
			return fail(err, DCR_EINVALID, ppath, "analysts",
			            "at least one is needed (leave the field out to allow any "
			            "analyst)");
	}
	return 0;
}

/* Every email of an auto_approve policy's analysts is a participant's. */
static int check_policies(const rm_def *d, dcr_err *err)
{
	for (size_t i = 0; i < d->ndatasets; i++) {
		const rm_policy *p = d->datasets[i].auto_approve;
		for (size_t k = 0; p && k < p->nanalysts; k++) {
			bool found = false;
			for (size_t j = 0; j < d->nparticipants && !found; j++)
				found = strcmp(d->participants[j].email, p->analysts[k]) == 0;
			if (!found)
				return dcr_err_set(err, DCR_EINVALID,
				                   "datasets[%zu].auto_approve.analysts[%zu]: \"%s\" "
				                   "is not a participant's email",
				                   i, k, p->analysts[k]);
		}
	}
	return 0;
}

static int parse_dataset(json_t *v, const char *path, rm_dataset *ds, dcr_err *err)
{
	static const char *const fields[] = {"name",    "kind",           "required", "share_statistics",
	                                     "columns", "unit",           "epsilon_budget", "drops",
	                                     "auto_approve", NULL};
	const char *s;
	json_t *cols;
	char cpath[96];
	int rc = parse_named(v, path, fields, "; it becomes an SQL table name", &s, err);
	if (rc)
		return rc;
	ds->name = dcr_strdup(s);
	if ((rc = get_str(v, path, "kind", false, 64, &s, err)))
		return rc;
	if (!s || strcmp(s, "table") == 0)
		ds->kind = RM_DS_TABLE;
	else if (strcmp(s, "file") == 0)
		ds->kind = RM_DS_FILE;
	else
		return fail(err, DCR_EINVALID, path, "kind",
		            "unknown kind \"%s\"; expected table or file", s);
	if ((rc = get_bool(v, path, "required", true, &ds->required, err)) ||
	    (rc = get_bool(v, path, "share_statistics", false, &ds->share_statistics, err)) ||
	    (rc = parse_budget(v, path, ds, err)) || (rc = parse_drops(v, path, ds, err)) ||
	    (rc = parse_policy(v, path, ds, err)))
		return rc;
	if ((rc = get_array(v, path, "columns", ds->kind == RM_DS_TABLE, DCR_RM_COLUMNS_MAX, &cols,
	                    err)))
		return rc;
	if ((rc = get_str(v, path, "unit", false, DCR_RM_NAME_BYTES_MAX + 64, &s, err)))
		return rc;
	if (s)
		ds->unit = dcr_strdup(s);
	if (ds->kind == RM_DS_FILE) {
		if (cols)
			return fail(err, DCR_EINVALID, path, "columns",
			            "file datasets have no columns");
		if (ds->unit)
			return fail(err, DCR_EINVALID, path, "unit", "file datasets have no columns");
		return 0;
	}
	if (json_array_size(cols) == 0)
		return fail(err, DCR_EINVALID, path, "columns",
		            "a table needs at least one column");
	ds->columns = dcr_calloc(json_array_size(cols), sizeof(rm_column));
	for (size_t j = 0; j < json_array_size(cols); j++) {
		snprintf(cpath, sizeof cpath, "%s.columns[%zu]", path, j);
		ds->ncolumns = j + 1;
		if ((rc = parse_column(json_array_get(cols, j), cpath, &ds->columns[j], err)))
			return rc;
		for (size_t k = 0; k < j; k++)
			if (dcr_ascii_ncasecmp(ds->columns[k].name, ds->columns[j].name, SIZE_MAX) == 0)
				return fail(err, DCR_EINVALID, cpath, "name",
				            "\"%s\" is already the name of columns[%zu] "
				            "(column names are case-insensitive)",
				            ds->columns[j].name, k);
	}
	if (ds->unit) {
		size_t j;
		for (j = 0; j < ds->ncolumns; j++)
			if (strcmp(ds->columns[j].name, ds->unit) == 0)
				break;
		if (j == ds->ncolumns)
			return fail(err, DCR_EINVALID, path, "unit", "\"%s\" is not a column of %s",
			            ds->unit, ds->name);
	}
	/* the privacy filter's view of the table */
	cmp_pcol *pc = dcr_calloc(ds->ncolumns + 1, sizeof *pc);
	for (size_t j = 0; j < ds->ncolumns; j++) {
		pc[j].name = ds->columns[j].name;
		pc[j].allow = ds->columns[j].allow;
	}
	const char *units[1] = {ds->unit};
	cmp_psource tmp = {ds->name, CMP_PSRC_TABLE, pc, ds->ncolumns, units, ds->unit ? 1 : 0,
	                   NULL};
	cmp_psource_copy(&ds->psrc, &tmp);
	free(pc);
	return 0;
}

/* "columns" of a python/r computation: its declared tabular result, the
 * shape of a table dataset's columns without "allow" (a filtered query
 * never reads a script's result, docs/privacy.md). */
static int parse_script_columns(json_t *v, const char *path, rm_computation *c, dcr_err *err)
{
	json_t *cols;
	char cpath[96];
	int rc = get_array(v, path, "columns", false, DCR_RM_COLUMNS_MAX, &cols, err);
	if (rc || !cols)
		return rc;
	if (json_array_size(cols) == 0)
		return fail(err, DCR_EINVALID, path, "columns",
		            "a tabular result needs at least one column (leave \"columns\" out "
		            "for a result of files only)");
	c->columns = dcr_calloc(json_array_size(cols), sizeof(rm_column));
	for (size_t j = 0; j < json_array_size(cols); j++) {
		snprintf(cpath, sizeof cpath, "%s.columns[%zu]", path, j);
		c->ncolumns = j + 1;
		if ((rc = parse_column(json_array_get(cols, j), cpath, &c->columns[j], err)))
			return rc;
		if (c->columns[j].allow)
			return fail(err, DCR_EINVALID, cpath, "allow",
			            "the result of a %s computation is never read by a filtered "
			            "query, so its columns take no \"allow\"",
			            rm_compkind_name(c->kind));
		for (size_t k = 0; k < j; k++)
			if (dcr_ascii_ncasecmp(c->columns[k].name, c->columns[j].name, SIZE_MAX) == 0)
				return fail(err, DCR_EINVALID, cpath, "name",
				            "\"%s\" is already the name of columns[%zu] "
				            "(column names are case-insensitive)",
				            c->columns[j].name, k);
	}
	return 0;
}

static int parse_logs(json_t *v, const char *path, rm_computation *c, dcr_err *err)
{
	const char *s;
	int rc = get_str(v, path, "logs", false, 64, &s, err);
	c->logs = RM_LOGS_NEVER;
	if (rc || !s)
		return rc;
	if (strcmp(s, "never") == 0)
		c->logs = RM_LOGS_NEVER;
	else if (strcmp(s, "on_error") == 0)
		c->logs = RM_LOGS_ON_ERROR;
	else if (strcmp(s, "always") == 0)
		c->logs = RM_LOGS_ALWAYS;
	else
		return fail(err, DCR_EINVALID, path, "logs",
		            "unknown value \"%s\"; expected never, on_error or always", s);
	return 0;
}

static int parse_limits(json_t *v, const char *path, rm_computation *c, dcr_err *err)
{
	static const char *const fields[] = {"wall_seconds", "cpu_seconds", "memory_mb",
	                                     "processes",    "output_mb",   "tmp_mb", NULL};
	static const uint64_t max[] = {DCR_RM_LIMIT_WALL_SECONDS_MAX, DCR_RM_LIMIT_CPU_SECONDS_MAX,
	                               DCR_RM_LIMIT_MEMORY_MB_MAX,    DCR_RM_LIMIT_PROCESSES_MAX,
	                               DCR_RM_LIMIT_OUTPUT_MB_MAX,    DCR_RM_LIMIT_TMP_MB_MAX};
	uint64_t *dst[] = {&c->limits.wall_seconds, &c->limits.cpu_seconds, &c->limits.memory_mb,
	                   &c->limits.processes,    &c->limits.output_mb,   &c->limits.tmp_mb};
	json_t *l = json_object_get(v, "limits");
	char lpath[96];
	int rc;
	if (!l)
		return 0;
	snprintf(lpath, sizeof lpath, "%s.limits", path);
	if ((rc = need_object(l, lpath, err)) || (rc = check_fields(l, lpath, fields, err)))
		return rc;
	/* the sandbox needs some memory to start a runtime at all */
	static const uint64_t min[] = {1, 1, DCR_RM_LIMIT_MEMORY_MB_MIN, 1, 1, 1};
	for (size_t i = 0; fields[i]; i++) {
		json_t *x = json_object_get(l, fields[i]);
		if (!x)
			continue;
		if (!json_is_integer(x) || json_integer_value(x) < (json_int_t)min[i] ||
		    (uint64_t)json_integer_value(x) > max[i])
			return fail(err, DCR_EINVALID, lpath, fields[i],
			            "expected an integer from %llu to %llu",
			            (unsigned long long)min[i], (unsigned long long)max[i]);
		*dst[i] = (uint64_t)json_integer_value(x);
	}
	return 0;
}

/* A synthetic computation's mask (an array of names, or an object of
 * column: format), rows, bounds and bins (docs/room-format.md). Columns
 * are checked against the input in resolve. */
static rm_synth_col *synth_col(rm_computation *c, const char *name)
{
	for (size_t i = 0; i < c->nsynth_cols; i++)
		if (strcmp(c->synth_cols[i].column, name) == 0)
			return &c->synth_cols[i];
	c->synth_cols = dcr_realloc(c->synth_cols, (c->nsynth_cols + 1) * sizeof *c->synth_cols);
	rm_synth_col *x = &c->synth_cols[c->nsynth_cols++];
	memset(x, 0, sizeof *x);
	x->column = dcr_strdup(name);
	return x;
}

static int parse_synth_extras(json_t *v, const char *path, rm_computation *c, dcr_err *err)
{
	json_t *m = json_object_get(v, "mask"), *x;
	const char *key;
	int rc;
	if (m && json_is_object(m)) {
		if (json_object_size(m) > DCR_RM_LIST_MAX)
			return fail(err, DCR_EINVALID, path, "mask", "more than %u columns",
			            DCR_RM_LIST_MAX);
		c->mask_object = true;
		c->mask = dcr_calloc(json_object_size(m) + 1, sizeof(char *));
		c->mask_fmt = dcr_calloc(json_object_size(m) + 1, sizeof *c->mask_fmt);
		json_object_foreach(m, key, x)
		{
			enum cmp_mask f;
			if (!json_is_string(x) ||
			    !cmp_mask_parse(json_string_value(x), json_string_length(x), &f) ||
			    f == CMP_MASK_NONE)
				return fail(err, DCR_EINVALID, path, "mask",
				            "column \"%s\": expected a mask format: string, number, "
				            "name, address, postcode, phone, ssn, email, date, "
				            "timestamp or iban",
				            key);
			c->mask_fmt[c->nmask] = f;
			c->mask[c->nmask++] = dcr_strdup(key);
		}
	} else {
		if ((rc = get_names(v, path, "mask", &c->mask, &c->nmask, err)))
			return rc;
		c->mask_fmt = dcr_calloc(c->nmask + 1, sizeof *c->mask_fmt);
	}
	if ((x = json_object_get(v, "rows"))) {
		if (!json_is_integer(x) || json_integer_value(x) < 1 ||
		    (uint64_t)json_integer_value(x) > DCR_SYNTH_ROWS_OUT_MAX)
			return fail(err, DCR_EINVALID, path, "rows", "expected an integer 1 to %llu",
			            (unsigned long long)DCR_SYNTH_ROWS_OUT_MAX);
		c->synth_rows = (uint64_t)json_integer_value(x);
	}
	json_t *b = json_object_get(v, "bounds");
	if (b && !json_is_object(b))
		return fail(err, DCR_EINVALID, path, "bounds",
		            "expected an object of column: [lo, hi]");
	json_object_foreach(b, key, x)
	{
		json_t *lo = json_array_get(x, 0), *hi = json_array_get(x, 1);
		if (!json_is_array(x) || json_array_size(x) != 2 || !json_is_number(lo) ||
		    !json_is_number(hi) || !(json_number_value(lo) < json_number_value(hi)) ||
		    !(fabs(json_number_value(lo)) < 1e15) || !(fabs(json_number_value(hi)) < 1e15))
			return fail(err, DCR_EINVALID, path, "bounds",
			            "column \"%s\": expected [lo, hi], numbers with lo < hi and "
			            "|lo|, |hi| < 10^15",
			            key);
		rm_synth_col *sc = synth_col(c, key);
		sc->has_bounds = true;
		sc->lo = json_number_value(lo);
		sc->hi = json_number_value(hi);
	}
	json_t *n = json_object_get(v, "bins");
	if (n && !json_is_object(n))
		return fail(err, DCR_EINVALID, path, "bins", "expected an object of column: count");
	json_object_foreach(n, key, x)
	{
		if (!json_is_integer(x) || json_integer_value(x) < 1 ||
		    json_integer_value(x) > DCR_SYNTH_BINS_MAX)
			return fail(err, DCR_EINVALID, path, "bins",
			            "column \"%s\": expected an integer 1 to %u", key,
			            DCR_SYNTH_BINS_MAX);
		synth_col(c, key)->bins = (unsigned)json_integer_value(x);
	}
	return 0;
}

enum cmp_mask rm_mask_default(const cmp_column *col)
{
	if (col->type != CMP_STRING)
		return CMP_MASK_NUMBER;
	if (col->format == CMP_FMT_EMAIL)
		return CMP_MASK_EMAIL;
	if (col->format == CMP_FMT_DATE)
		return CMP_MASK_DATE;
	return CMP_MASK_STRING;
}

void rm_computation_synth(const rm_computation *c, const cmp_column *cols, size_t ncols,
                          cmp_synth_col *out)
{
	for (size_t i = 0; i < ncols; i++) {
		memset(&out[i], 0, sizeof out[i]);
		for (size_t k = 0; k < c->nmask; k++)
			if (strcmp(c->mask[k], cols[i].name) == 0)
				out[i].mask = c->mask_fmt[k] ? c->mask_fmt[k] : rm_mask_default(&cols[i]);
		for (size_t k = 0; k < c->nsynth_cols; k++)
			if (strcmp(c->synth_cols[k].column, cols[i].name) == 0) {
				out[i].has_bounds = c->synth_cols[k].has_bounds;
				out[i].lo = c->synth_cols[k].lo;
				out[i].hi = c->synth_cols[k].hi;
				out[i].bins = c->synth_cols[k].bins;
			}
	}
}

static int parse_computation(json_t *v, const char *path, rm_computation *c, dcr_err *err)
{
	static const char *const fields[] = {"name",   "kind",  "query",   "script",  "inputs",
	                                     "input",  "mask",  "epsilon", "privacy", "columns",
	                                     "logs",   "limits", "rows",   "bounds",  "bins",
	                                     NULL};
	/* Fields each kind takes, beyond name and kind. */
	static const char *const sql_f[] = {"query", "privacy", NULL};
	static const char *const script_f[] = {"script", "inputs", "columns", "logs", "limits",
	                                       NULL};
	static const char *const synth_f[] = {"input", "mask",   "epsilon", "rows",
	                                      "bounds", "bins", NULL};
	const char *const *own;
	const char *s;
	int rc = parse_named(v, path, fields, "; it becomes an SQL table name", &s, err);
	if (rc)
		return rc;
	c->name = dcr_strdup(s);
	if ((rc = get_str(v, path, "kind", true, 64, &s, err)))
		return rc;
	if (strcmp(s, "sql") == 0)
		c->kind = RM_COMP_SQL, own = sql_f;
	else if (strcmp(s, "python") == 0)
		c->kind = RM_COMP_PYTHON, own = script_f;
	else if (strcmp(s, "r") == 0)
		c->kind = RM_COMP_R, own = script_f;
	else if (strcmp(s, "synthetic") == 0)
		c->kind = RM_COMP_SYNTHETIC, own = synth_f;
	else
		return fail(err, DCR_EINVALID, path, "kind",
		            "unknown kind \"%s\"; expected sql, python, r or synthetic", s);
	for (size_t i = 2; fields[i]; i++) {
		bool mine = false;
		for (size_t k = 0; own[k]; k++)
			mine |= strcmp(own[k], fields[i]) == 0;
		if (!mine && json_object_get(v, fields[i]))
			return fail(err, DCR_EINVALID, path, fields[i],
			            "not a field of %s computations%s", rm_compkind_name(c->kind),
			            c->kind == RM_COMP_SQL && strcmp(fields[i], "inputs") == 0
			                ? " (the inputs of a query are the tables it names)"
			                : "");
	}
	switch (c->kind) {
	case RM_COMP_SQL: {
		json_t *p = json_object_get(v, "privacy");
		if ((rc = get_str(v, path, "query", true, DCR_RM_QUERY_BYTES_MAX, &s, err)))
			return rc;
		c->query = dcr_strdup(s);
		if (p) {
			static const char *const pf[] = {"min_rows_aggregated", "epsilon", "bounds",
			                                 NULL};
			char ppath[96];
			snprintf(ppath, sizeof ppath, "%s.privacy", path);
			if ((rc = need_object(p, ppath, err)) ||
			    (rc = check_fields(p, ppath, pf, err)))
				return rc;
			json_t *k = json_object_get(p, "min_rows_aggregated");
			if (k) {
				if (!json_is_integer(k) || json_integer_value(k) < 0 ||
				    json_integer_value(k) > DCR_RM_MIN_ROWS_MAX)
					return fail(err, DCR_EINVALID, ppath, "min_rows_aggregated",
					            "expected an integer from 0 to %lld",
					            (long long)DCR_RM_MIN_ROWS_MAX);
				c->min_rows_aggregated = (long long)json_integer_value(k);
			}
			if (json_object_get(p, "epsilon") &&
			    (rc = parse_epsilon(p, ppath, "epsilon", DCR_DP_EPSILON_MAX,
			                        &c->dp_epsilon, err)))
				return rc;
			if ((rc = parse_bounds(p, ppath, c, err)))
				return rc;
			if (c->ndp_bounds && !c->dp_epsilon)
				return fail(err, DCR_EINVALID, ppath, "bounds",
				            "bounds are for differentially private queries: set "
				            "privacy.epsilon too");
		}
		break;
	}
	case RM_COMP_PYTHON:
	case RM_COMP_R:
		if ((rc = get_str(v, path, "script", true, DCR_RM_SCRIPT_BYTES_MAX, &s, err)))
			return rc;
		c->script = dcr_strdup(s);
		if ((rc = get_names(v, path, "inputs", &c->inputs, &c->ninputs, err)) ||
		    (rc = parse_script_columns(v, path, c, err)) ||
		    (rc = parse_logs(v, path, c, err)) || (rc = parse_limits(v, path, c, err)))
			return rc;
		break;
	case RM_COMP_SYNTHETIC: {
		json_t *e = json_object_get(v, "epsilon");
		if ((rc = get_str(v, path, "input", true, DCR_RM_NAME_BYTES_MAX + 64, &s, err)))
			return rc;
		c->input = dcr_strdup(s);
		c->inputs = dcr_calloc(1, sizeof(char *));
		c->inputs[0] = dcr_strdup(s);
		c->ninputs = 1;
		if ((rc = parse_synth_extras(v, path, c, err)))
			return rc;
		if (!e)
			return fail(err, DCR_EINVALID, path, "epsilon",
			            "missing (required: the privacy budget, e.g. 1.0)");
		if (!json_is_number(e) || !(json_number_value(e) > 0) ||
		    !isfinite(json_number_value(e)) || json_number_value(e) > DCR_RM_EPSILON_MAX)
			return fail(err, DCR_EINVALID, path, "epsilon",
			            "expected a number greater than 0 and at most %g",
			            DCR_RM_EPSILON_MAX);
		c->epsilon = json_number_value(e);
		break;
	}
	}
	return 0;
}

static int parse_participant(json_t *v, const char *path, rm_participant *p, dcr_err *err)
{
	static const char *const fields[] = {"email", "key", "owner_of", "analyst_of", NULL};
	const char *s;
	int rc = need_object(v, path, err);
	if (!rc)
		rc = check_fields(v, path, fields, err);
	if (!rc)
		rc = get_str(v, path, "email", true, DCR_RM_EMAIL_BYTES_MAX, &s, err);
	if (rc)
		return rc;
	if (!email_plausible(s))
		return fail(err, DCR_EINVALID, path, "email",
		            "\"%s\" does not look like an email address", s);
	p->email = dcr_strdup(s);
	if ((rc = get_str(v, path, "key", true, 256, &s, err)))
		return rc;
	if (dcr_pub_parse(s, p->key) < 0)
		return fail(err, DCR_EINVALID, path, "key",
		            "not an ed25519 public key (expected \"ed25519:\" followed by base64 "
		            "of 32 bytes that encode a curve point of large order)");
	if ((rc = get_names(v, path, "owner_of", &p->owner_of, &p->nowner_of, err)) ||
	    (rc = get_names(v, path, "analyst_of", &p->analyst_of, &p->nanalyst_of, err)))
		return rc;
	return 0;
}

/* ---- whole-definition checks --------------------------------------------- */

static int check_names(const rm_def *d, dcr_err *err)
{
	size_t n = d->ndatasets + d->ncomputations;
	for (size_t i = 0; i < n; i++) {
		bool ids = i < d->ndatasets;
		size_t ii = ids ? i : i - d->ndatasets;
		const char *a = ids ? d->datasets[ii].name : d->computations[ii].name;
		for (size_t j = 0; j < i; j++) {
			bool jds = j < d->ndatasets;
			size_t jj = jds ? j : j - d->ndatasets;
			const char *b = jds ? d->datasets[jj].name : d->computations[jj].name;
			if (dcr_ascii_ncasecmp(a, b, SIZE_MAX) == 0)
				return dcr_err_set(err, DCR_EINVALID,
				                   "%s[%zu].name: \"%s\" is already the name of "
				                   "%s[%zu] (dataset and computation names are "
				                   "unique, case-insensitively)",
				                   ids ? "datasets" : "computations", ii, a,
				                   jds ? "datasets" : "computations", jj);
		}
	}
	return 0;
}

static int check_participants(const rm_def *d, dcr_err *err)
{
	for (size_t i = 0; i < d->nparticipants; i++) {
		const rm_participant *p = &d->participants[i];
		for (size_t j = 0; j < i; j++) {
			if (dcr_ascii_ncasecmp(p->email, d->participants[j].email, SIZE_MAX) == 0)
				return dcr_err_set(err, DCR_EINVALID,
				                   "participants[%zu].email: \"%s\" is already "
				                   "participants[%zu]",
				                   i, p->email, j);
			if (memcmp(p->key, d->participants[j].key, 32) == 0)
				return dcr_err_set(err, DCR_EINVALID,
				                   "participants[%zu].key: same key as "
				                   "participants[%zu] (%s)",
				                   i, j, d->participants[j].email);
		}
		for (size_t k = 0; k < p->nowner_of; k++)
			if (!rm_def_dataset(d, p->owner_of[k]))
				return dcr_err_set(err, DCR_EINVALID,
				                   "participants[%zu].owner_of[%zu]: no dataset "
				                   "named \"%s\"",
				                   i, k, p->owner_of[k]);
		for (size_t k = 0; k < p->nanalyst_of; k++)
			if (!rm_def_computation(d, p->analyst_of[k]))
				return dcr_err_set(err, DCR_EINVALID,
				                   "participants[%zu].analyst_of[%zu]: no "
				                   "computation named \"%s\"",
				                   i, k, p->analyst_of[k]);
	}
	for (size_t i = 0; i < d->ndatasets; i++) {
		bool owned = false;
		for (size_t j = 0; j < d->nparticipants && !owned; j++)
			owned = in_list(d->participants[j].owner_of, d->participants[j].nowner_of,
			                d->datasets[i].name);
		if (!owned)
			return dcr_err_set(
			    err, DCR_EINVALID,
			    "datasets[%zu] (\"%s\"): no owner; list it in the owner_of "
			    "of a participant",
			    i, d->datasets[i].name);
	}
	for (size_t i = 0; i < d->ncomputations; i++) {
		bool has = false;
		for (size_t j = 0; j < d->nparticipants && !has; j++)
			has = in_list(d->participants[j].analyst_of, d->participants[j].nanalyst_of,
			              d->computations[i].name);
		if (!has)
			return dcr_err_set(err, DCR_EINVALID,
			                   "computations[%zu] (\"%s\"): no analyst; list it in the "
			                   "analyst_of of a participant",
			                   i, d->computations[i].name);
	}
	return 0;
}

/* A synthetic computation's mask formats fit their columns' types, and
 * bounds and bins name numeric columns of the input that are not masked. */
static int check_synth_columns(const rm_computation *c, size_t i, const rm_dataset *ds,
                               dcr_err *err)
{
	for (size_t k = 0; k < c->nmask; k++)
		for (size_t j = 0; j < ds->ncolumns; j++) {
			const rm_column *col = &ds->columns[j];
			if (strcmp(col->name, c->mask[k]) != 0 || !c->mask_fmt[k])
				continue;
			if (!cmp_mask_fits(c->mask_fmt[k], col->type))
				return dcr_err_set(err, DCR_EINVALID,
				                   "computations[%zu].mask: format %s does not fit "
				                   "column \"%s\" of type %s (number masks integer and "
				                   "float columns, the others string columns)",
				                   i, cmp_mask_name(c->mask_fmt[k]), col->name,
				                   cmp_type_name(col->type));
		}
	for (size_t k = 0; k < c->nsynth_cols; k++) {
		const rm_synth_col *sc = &c->synth_cols[k];
		const rm_column *col = NULL;
		for (size_t j = 0; j < ds->ncolumns && !col; j++)
			if (strcmp(ds->columns[j].name, sc->column) == 0)
				col = &ds->columns[j];
		if (!col || col->type == CMP_STRING || in_list(c->mask, c->nmask, sc->column))
			return dcr_err_set(err, DCR_EINVALID,
			                   "computations[%zu].%s: \"%s\" is not a numeric column of "
			                   "%s that is synthesised (not masked)",
			                   i, sc->has_bounds ? "bounds" : "bins", sc->column, ds->name);
	}
	return 0;
}

/* Resolves inputs: python/r/synthetic lists, and the tables SQL names. */
static int resolve_inputs(rm_def *d, dcr_err *err)
{
	int rc = 0;
	size_t nn = d->ndatasets + d->ncomputations;
	const char **names = dcr_calloc(nn + 1, sizeof(char *));
	bool *used = dcr_calloc(nn + 1, sizeof(bool));
	for (size_t i = 0; i < d->ndatasets; i++)
		names[i] = d->datasets[i].name;
	for (size_t i = 0; i < d->ncomputations; i++)
		names[d->ndatasets + i] = d->computations[i].name;

	for (size_t i = 0; i < d->ncomputations && !rc; i++) {
		rm_computation *c = &d->computations[i];
		if (c->kind == RM_COMP_SQL) {
			dcr_err e;
			dcr_err_clear(&e);
			memset(used, 0, nn * sizeof(bool));
			if (cmp_sql_refs(c->query, names, nn, used, &e) < 0) {
				rc =
				    dcr_err_set(err, DCR_EINVALID, "computations[%zu] (\"%s\"): %s",
				                i, c->name, e.msg);
				break;
			}
			size_t m = 0;
			for (size_t k = 0; k < nn; k++)
				m += used[k];
			c->inputs = dcr_calloc(m + 1, sizeof(char *));
			for (size_t k = 0; k < nn; k++)
				if (used[k])
					c->inputs[c->ninputs++] = dcr_strdup(names[k]);
			if (m == 0) {
				rc = dcr_err_set(err, DCR_EINVALID,
				                 "computations[%zu] (\"%s\"): the query reads no "
				                 "dataset or computation of this room",
				                 i, c->name);
				break;
			}
		}
		for (size_t k = 0; k < c->ninputs && !rc; k++) {
			const char *in = c->inputs[k];
			const rm_dataset *ds = rm_def_dataset(d, in);
			const rm_computation *up = rm_def_computation(d, in);
			const char *field = c->kind == RM_COMP_SYNTHETIC ? "input" : "inputs";
			if (!ds && !up) {
				if (c->kind == RM_COMP_SYNTHETIC)
					rc =
					    dcr_err_set(err, DCR_EINVALID,
					                "computations[%zu].input: no dataset named "
					                "\"%s\"",
					                i, in);
				else
					rc = dcr_err_set(err, DCR_EINVALID,
					                 "computations[%zu].%s[%zu]: no dataset or "
					                 "computation named \"%s\"",
					                 i, field, k, in);
			} else if (c->kind == RM_COMP_SYNTHETIC &&
			           (ds ? ds->kind != RM_DS_TABLE
			               : up->kind != RM_COMP_SQL && up->kind != RM_COMP_SYNTHETIC &&
			                     !((up->kind == RM_COMP_PYTHON || up->kind == RM_COMP_R) &&
			                       up->ncolumns))) {
				rc = dcr_err_set(err, DCR_EINVALID,
				                 "computations[%zu].input: \"%s\" is not a table "
				                 "dataset, an sql or synthetic computation, or a python "
				                 "or r computation that declares columns (synthetic "
				                 "data is made from a table)",
				                 i, in);
			} else if (c->kind == RM_COMP_SQL && ds && ds->kind == RM_DS_FILE) {
				rc = dcr_err_set(err, DCR_EINVALID,
				                 "computations[%zu] (\"%s\"): the query reads file "
				                 "dataset %s, which is not a table",
				                 i, c->name, in);
			} else if (c->kind == RM_COMP_SQL && up &&
			           (up->kind == RM_COMP_PYTHON || up->kind == RM_COMP_R) &&
			           up->ncolumns == 0) {
				rc = dcr_err_set(
				    err, DCR_EINVALID,
				    "computations[%zu] (\"%s\"): the query reads the "
				    "result of %s computation %s, which declares no "
				    "\"columns\" (a tabular result); SQL reads datasets, "
				    "sql or synthetic results and python/r results that "
				    "declare their columns",
				    i, c->name, rm_compkind_name(up->kind), in);
			}
		}
		/* Over an upstream result, the columns are known at admission
		 * (admit.c checks them there). */
		if (!rc && c->kind == RM_COMP_SYNTHETIC && rm_def_dataset(d, c->input)) {
			const rm_dataset *ds = rm_def_dataset(d, c->input);
			for (size_t k = 0; k < c->nmask && !rc; k++) {
				bool found = false;
				for (size_t j = 0; j < ds->ncolumns && !found; j++)
					found = strcmp(ds->columns[j].name, c->mask[k]) == 0;
				if (!found)
					rc = dcr_err_set(
					    err, DCR_EINVALID,
					    "computations[%zu].mask[%zu]: dataset %s has "
					    "no column \"%s\"",
					    i, k, ds->name, c->mask[k]);
			}
			if (!rc)
				rc = check_synth_columns(c, i, ds, err);
		}
	}
	free(names);
	free(used);
	return rc;
}

void rm_computation_dp(const rm_computation *c, cmp_dp *dp, cmp_dp_bound *bounds)
{
	memset(dp, 0, sizeof *dp);
	dp->epsilon = c->dp_epsilon;
	for (size_t i = 0; i < c->ndp_bounds; i++) {
		bounds[i].column = c->dp_bounds[i].column;
		bounds[i].lo = c->dp_bounds[i].lo;
		bounds[i].hi = c->dp_bounds[i].hi;
		bounds[i].decimals = c->dp_bounds[i].decimals;
	}
	dp->bounds = bounds;
	dp->nbounds = c->ndp_bounds;
}

/* Differential privacy across the definition (docs/privacy.md): a DP
 * computation reads only table datasets that have a budget, with bounds on
 * numeric columns of them; nothing reads its result (every run of a reader
 * would draw new noise outside the ledger); and a dataset with a budget is
 * read by DP computations only, directly or through upstream computations
 * (any other reader would bypass the budget). */
static int check_dp(const rm_def *d, dcr_err *err)
{
	int rc = 0;
	bool *used = dcr_calloc(d->ndatasets + 1, sizeof(bool));
	for (size_t i = 0; i < d->ncomputations && !rc; i++) {
		const rm_computation *c = &d->computations[i];
		memset(used, 0, (d->ndatasets + 1) * sizeof(bool));
		rm_def_datasets_read(d, c, used);
		for (size_t k = 0; k < c->ninputs && !rc; k++) {
			const rm_computation *up = rm_def_computation(d, c->inputs[k]);
			if (up && up->dp_epsilon)
				rc = dcr_err_set(err, DCR_EINVALID,
				                 "computations[%zu] (\"%s\"): reads the result of the "
				                 "differentially private computation %s; each of its "
				                 "runs would draw new noise outside the budget",
				                 i, c->name, up->name);
			else if (up && c->dp_epsilon)
				rc = dcr_err_set(err, DCR_EINVALID,
				                 "computations[%zu] (\"%s\"): a differentially private "
				                 "query reads datasets only, not the result of %s",
				                 i, c->name, up->name);
		}
		for (size_t j = 0; j < d->ndatasets && !rc; j++) {
			const rm_dataset *ds = &d->datasets[j];
			if (!used[j])
				continue;
			if (c->dp_epsilon && !ds->epsilon_budget)
				rc = dcr_err_set(err, DCR_EINVALID,
				                 "computations[%zu] (\"%s\"): reads dataset %s, which has "
				                 "no epsilon_budget; a differentially private query "
				                 "spends the budget of every dataset it reads",
				                 i, c->name, ds->name);
			else if (!c->dp_epsilon && ds->epsilon_budget)
				rc = dcr_err_set(err, DCR_EINVALID,
				                 "computations[%zu] (\"%s\"): reads dataset %s (directly "
				                 "or through upstream computations), which has an "
				                 "epsilon_budget: only computations with privacy.epsilon "
				                 "may read it",
				                 i, c->name, ds->name);
		}
		if (!rc && c->dp_epsilon && c->min_rows_aggregated > 0)
			rc = dcr_err_set(err, DCR_EINVALID,
			                 "computations[%zu] (\"%s\"): privacy.epsilon and "
			                 "min_rows_aggregated together are not supported "
			                 "(suppressing groups by their true size is not "
			                 "differentially private)",
			                 i, c->name);
		for (size_t b = 0; b < c->ndp_bounds && !rc; b++) {
			bool found = false;
			for (size_t j = 0; j < d->ndatasets && !found; j++)
				for (size_t k = 0; used[j] && k < d->datasets[j].ncolumns; k++)
					if (strcmp(d->datasets[j].columns[k].name,
					           c->dp_bounds[b].column) == 0 &&
					    d->datasets[j].columns[k].type != CMP_STRING)
						found = true;
			if (!found)
				rc = dcr_err_set(err, DCR_EINVALID,
				                 "computations[%zu].privacy.bounds.%s: no integer or "
				                 "float column of that name in the datasets the query "
				                 "reads",
				                 i, c->dp_bounds[b].column);
		}
	}
	free(used);
	return rc;
}

/* The privacy rules of docs/privacy.md, upstream first: every filtered
 * query is in the filtered subset over its inputs' descriptors; every sql
 * computation gets the descriptor its downstream queries see (filtered:
 * aggregate rows; unfiltered: a row projection exposing units, or opaque).
 * Pure: our parser on the query text and the definition only. */
static int check_privacy(rm_def *d, const size_t *order, dcr_err *err)
{
	int rc = 0;
	for (size_t oi = 0; oi < d->ncomputations && !rc; oi++) {
		size_t i = order[oi];
		rm_computation *c = &d->computations[i];
		cmp_psource self = {c->name, CMP_PSRC_OPAQUE, NULL, 0, NULL, 0, NULL};
		if (c->kind != RM_COMP_SQL) {
			cmp_psource_copy(&c->psrc, &self);
			continue;
		}
		cmp_psource *src = dcr_calloc(c->ninputs + 1, sizeof *src);
		for (size_t k = 0; k < c->ninputs; k++) {
			const rm_dataset *ds = rm_def_dataset(d, c->inputs[k]);
			const rm_computation *up = rm_def_computation(d, c->inputs[k]);
			src[k] = ds ? ds->psrc : up->psrc;
			src[k].name = c->inputs[k];
		}
		cmp_pquery pq;
		dcr_err e;
		if (c->min_rows_aggregated > 0) {
			if (cmp_pquery_parse(c->query, src, c->ninputs, false, &pq, &e) < 0)
				rc = dcr_err_set(err, DCR_EINVALID, "computations[%zu] (\"%s\"): %s", i,
				                 c->name, e.msg);
			else
				cmp_pquery_release(&pq);
			self.kind = CMP_PSRC_AGGREGATE;
		} else if (cmp_pquery_parse(c->query, src, c->ninputs, true, &pq, &e) == 0) {
			self.kind = CMP_PSRC_TABLE;
			self.cols = pq.out;
			self.ncols = pq.nout;
			self.units = (const char *const *)pq.units;
			self.nunits = pq.nunits;
			cmp_psource_copy(&c->psrc, &self);
			cmp_pquery_release(&pq);
			free(src);
			continue;
		}
		cmp_psource_copy(&c->psrc, &self);
		free(src);
	}
	return rc;
}

static int parse_root(json_t *root, rm_def *d, dcr_err *err)
{
	static const char *const fields[] = {"format",       "name",     "description",  "settings",
	                                     "participants", "datasets", "computations", NULL};
	const char *s;
	json_t *a;
	char path[64];
	int rc;

	if (!json_is_object(root))
		return dcr_err_set(err, DCR_EINVALID, "the definition must be a JSON object");
	if ((rc = check_fields(root, "", fields, err)))
		return rc;
	if ((rc = get_str(root, "", "format", true, 64, &s, err)))
		return rc;
	if (strcmp(s, "dcr.room/1") != 0)
		return fail(err, DCR_EINVALID, "", "format",
		            "unknown format \"%s\"; expected \"dcr.room/1\"", s);
	d->format = dcr_strdup(s);
	if ((rc = get_str(root, "", "name", true, DCR_RM_ROOM_NAME_BYTES_MAX + 64, &s, err)))
		return rc;
	if (!rm_room_name_valid(s))
		return fail(err, DCR_EINVALID, "", "name",
		            "\"%s\" is not a valid room name (letters, digits, '.', '_' and '-', "
		            "not starting with '.' or '-', at most %u characters)",
		            s, DCR_RM_ROOM_NAME_BYTES_MAX);
	d->name = dcr_strdup(s);
	if ((rc = get_str(root, "", "description", false, DCR_RM_DESCRIPTION_BYTES_MAX, &s, err)))
		return rc;
	d->description = dcr_strdup(s ? s : "");
	if ((rc = parse_settings(root, d, err)))
		return rc;

	if ((rc = get_array(root, "", "datasets", false, DCR_RM_DATASETS_MAX, &a, err)))
		return rc;
	if (a && json_array_size(a)) {
		d->datasets = dcr_calloc(json_array_size(a), sizeof(rm_dataset));
		for (size_t i = 0; i < json_array_size(a); i++) {
			snprintf(path, sizeof path, "datasets[%zu]", i);
			d->ndatasets = i + 1;
			if ((rc = parse_dataset(json_array_get(a, i), path, &d->datasets[i], err)))
				return rc;
		}
	}
	if ((rc = get_array(root, "", "computations", false, DCR_RM_COMPUTATIONS_MAX, &a, err)))
		return rc;
	if (a && json_array_size(a)) {
		d->computations = dcr_calloc(json_array_size(a), sizeof(rm_computation));
		for (size_t i = 0; i < json_array_size(a); i++) {
			snprintf(path, sizeof path, "computations[%zu]", i);
			d->ncomputations = i + 1;
			if ((rc = parse_computation(json_array_get(a, i), path, &d->computations[i],
			                            err)))
				return rc;
		}
	}
	if ((rc = get_array(root, "", "participants", true, DCR_RM_PARTICIPANTS_MAX, &a, err)))
		return rc;
	if (json_array_size(a) == 0)
		return fail(err, DCR_EINVALID, "", "participants", "at least one is needed");
	d->participants = dcr_calloc(json_array_size(a), sizeof(rm_participant));
	for (size_t i = 0; i < json_array_size(a); i++) {
		snprintf(path, sizeof path, "participants[%zu]", i);
		d->nparticipants = i + 1;
		if ((rc = parse_participant(json_array_get(a, i), path, &d->participants[i], err)))
			return rc;
	}

	if ((rc = check_names(d, err)) || (rc = check_participants(d, err)) ||
	    (rc = check_policies(d, err)) ||
	    (rc = resolve_inputs(d, err)))
		return rc;

	size_t *order = dcr_calloc(d->ncomputations + 1, sizeof(size_t));
	dcr_buf cycle;
	size_t at = 0;
	dcr_buf_init(&cycle);
	rc = topo_run(d, order, &cycle, &at);
	if (rc)
		rc = dcr_err_set(err, DCR_EINVALID,
		                 "computations[%zu] (\"%s\"): dependency cycle: %s", at,
		                 d->computations[at].name, dcr_buf_cstr(&cycle));
	dcr_buf_release(&cycle);
	if (!rc)
		rc = check_privacy(d, order, err);
	if (!rc)
		rc = check_dp(d, err);
	free(order);
	return rc;
}

/* The nesting depth of a JSON text, counting [ and { outside strings, is
 * at most DCR_RM_DEF_DEPTH_MAX: our own limit, checked before the JSON
 * library sees the text, so its version's limit never decides. */
static bool depth_ok(const char *s, size_t n)
{
	size_t depth = 0;
	bool in_str = false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '[' || c == '{') {
			if (++depth > DCR_RM_DEF_DEPTH_MAX)
				return false;
		} else if ((c == ']' || c == '}') && depth) {
			depth--;
		}
	}
	return true;
}

static int def_parse(const char *json, size_t n, bool size_limit, rm_def **out, dcr_err *err);

int rm_def_parse(const char *json, size_t n, rm_def **out, dcr_err *err)
{
	return def_parse(json, n, true, out, err);
}

/* size_limit false: a merged definition (docs/rules.md "The merge"),
 * whose text nobody signed; its size depends on how it was printed. */
static int def_parse(const char *json, size_t n, bool size_limit, rm_def **out, dcr_err *err)
{
	int rc;
	json_error_t je;
	json_t *root = NULL;
	rm_def *d = NULL;

	*out = NULL;
	if (size_limit && n > DCR_RM_DEF_BYTES_MAX) {
		rc = dcr_err_set(err, DCR_ELIMIT, "definition of %zu bytes exceeds the limit of %u",
		                 n, DCR_RM_DEF_BYTES_MAX);
		goto out;
	}
	if (!depth_ok(json, n)) {
		rc = dcr_err_set(err, DCR_ELIMIT, "nested deeper than %u levels",
		                 DCR_RM_DEF_DEPTH_MAX);
		goto out;
	}
	root = json_loadb(json, n, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		rc = dcr_err_set(err, DCR_EFORMAT, "line %d, column %d: %s", je.line, je.column,
		                 je.text);
		goto out;
	}
	d = dcr_calloc(1, sizeof *d);
	rc = parse_root(root, d, err);
	if (rc)
		goto out;
	*out = d;
	d = NULL;
out:
	rm_def_free(d);
	json_decref(root);
	return rc;
}

/* ---- printing ---------------------------------------------------------------- */

static json_t *names_json(char *const *l, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(l[i]));
	return a;
}

static json_t *synth_mask_json(const rm_computation *c)
{
	if (!c->mask_object)
		return names_json(c->mask, c->nmask);
	json_t *o = json_object();
	for (size_t i = 0; i < c->nmask; i++)
		json_object_set_new(o, c->mask[i], json_string(cmp_mask_name(c->mask_fmt[i])));
	return o;
}

static void synth_extras_json(const rm_computation *c, json_t *o)
{
	json_t *b = json_object(), *n = json_object();
	if (c->synth_rows)
		json_object_set_new(o, "rows", json_integer((json_int_t)c->synth_rows));
	for (size_t i = 0; i < c->nsynth_cols; i++) {
		const rm_synth_col *sc = &c->synth_cols[i];
		if (sc->has_bounds)
			json_object_set_new(b, sc->column, json_pack("[ff]", sc->lo, sc->hi));
		if (sc->bins)
			json_object_set_new(n, sc->column, json_integer(sc->bins));
	}
	if (json_object_size(b))
		json_object_set_new(o, "bounds", b);
	else
		json_decref(b);
	if (json_object_size(n))
		json_object_set_new(o, "bins", n);
	else
		json_decref(n);
}

static json_t *privacy_json(const rm_computation *c)
{
	json_t *p = json_object();
	char eb[32];
	if (c->min_rows_aggregated > 0)
		json_object_set_new(p, "min_rows_aggregated",
		                    json_integer((json_int_t)c->min_rows_aggregated));
	if (c->dp_epsilon)
		json_object_set_new(p, "epsilon",
		                    json_string(rm_epsilon_format(c->dp_epsilon, eb, sizeof eb)));
	if (c->ndp_bounds) {
		json_t *b = json_object();
		for (size_t j = 0; j < c->ndp_bounds; j++) {
			const rm_bound *bd = &c->dp_bounds[j];
			json_t *pair = json_array();
			json_array_append_new(pair, bound_json(bd->lo, bd->decimals));
			json_array_append_new(pair, bound_json(bd->hi, bd->decimals));
			json_object_set_new(b, bd->column, pair);
		}
		json_object_set_new(p, "bounds", b);
	}
	return p;
}

static json_t *columns_json(const rm_column *cs, size_t n)
{
	json_t *cols = json_array();
	for (size_t j = 0; j < n; j++) {
		const rm_column *c = &cs[j];
		json_t *co = json_object();
		json_object_set_new(co, "name", json_string(c->name));
		json_object_set_new(co, "type", json_string(cmp_type_name(c->type)));
		json_object_set_new(co, "nullable", json_boolean(c->nullable));
		if (c->format != CMP_FMT_NONE)
			json_object_set_new(co, "format", json_string(cmp_format_name(c->format)));
		if (c->allow) {
			static const char *const names[] = {"group", "aggregate", "join", "minmax"};
			json_t *al = json_array();
			for (unsigned b = 0; b < 4; b++)
				if (c->allow & (1u << b))
					json_array_append_new(al, json_string(names[b]));
			json_object_set_new(co, "allow", al);
		}
		json_array_append_new(cols, co);
	}
	return cols;
}

static bool limits_set(const rm_limits *l)
{
	return l->wall_seconds || l->cpu_seconds || l->memory_mb || l->processes ||
	       l->output_mb || l->tmp_mb;
}

static json_t *limits_json(const rm_limits *l)
{
	json_t *o = json_object();
	if (l->wall_seconds)
		json_object_set_new(o, "wall_seconds", json_integer((json_int_t)l->wall_seconds));
	if (l->cpu_seconds)
		json_object_set_new(o, "cpu_seconds", json_integer((json_int_t)l->cpu_seconds));
	if (l->memory_mb)
		json_object_set_new(o, "memory_mb", json_integer((json_int_t)l->memory_mb));
	if (l->processes)
		json_object_set_new(o, "processes", json_integer((json_int_t)l->processes));
	if (l->output_mb)
		json_object_set_new(o, "output_mb", json_integer((json_int_t)l->output_mb));
	if (l->tmp_mb)
		json_object_set_new(o, "tmp_mb", json_integer((json_int_t)l->tmp_mb));
	return o;
}

static json_t *policy_json(const rm_policy *p)
{
	json_t *o = json_object(), *k = json_array();
	for (int kind = RM_COMP_SQL; kind <= RM_COMP_SYNTHETIC; kind++)
		if (p->kinds & (1u << kind))
			json_array_append_new(k, json_string(rm_compkind_name((enum rm_compkind)kind)));
	json_object_set_new(o, "kinds", k);
	if (p->min_rows)
		json_object_set_new(o, "privacy_min_rows_aggregated_at_least",
		                    json_integer(p->min_rows));
	if (p->nanalysts)
		json_object_set_new(o, "analysts", names_json(p->analysts, p->nanalysts));
	return o;
}

char *rm_def_to_json(const rm_def *d)
{
	json_t *root = json_object();
	json_t *settings = json_object();
	json_t *parts = json_array(), *dss = json_array(), *comps = json_array();

	json_object_set_new(root, "format", json_string(d->format ? d->format : "dcr.room/1"));
	json_object_set_new(root, "name", json_string(d->name));
	json_object_set_new(root, "description", json_string(d->description ? d->description : ""));
	json_object_set_new(settings, "interactive", json_boolean(d->interactive));
	json_object_set_new(settings, "development", json_boolean(d->development));
	json_object_set_new(settings, "require_provisioned", json_boolean(d->require_provisioned));
	json_object_set_new(root, "settings", settings);
	for (size_t i = 0; i < d->nparticipants; i++) {
		const rm_participant *p = &d->participants[i];
		json_t *o = json_object();
		char *key = dcr_pub_format(p->key);
		json_object_set_new(o, "email", json_string(p->email));
		json_object_set_new(o, "key", json_string(key));
		json_object_set_new(o, "owner_of", names_json(p->owner_of, p->nowner_of));
		json_object_set_new(o, "analyst_of", names_json(p->analyst_of, p->nanalyst_of));
		json_array_append_new(parts, o);
		free(key);
	}
	json_object_set_new(root, "participants", parts);
	for (size_t i = 0; i < d->ndatasets; i++) {
		const rm_dataset *ds = &d->datasets[i];
		json_t *o = json_object();
		json_object_set_new(o, "name", json_string(ds->name));
		json_object_set_new(o, "kind", json_string(rm_dskind_name(ds->kind)));
		json_object_set_new(o, "required", json_boolean(ds->required));
		json_object_set_new(o, "share_statistics", json_boolean(ds->share_statistics));
		if (ds->auto_approve)
			json_object_set_new(o, "auto_approve", policy_json(ds->auto_approve));
		if (ds->epsilon_budget) {
			char eb[32];
			json_object_set_new(o, "epsilon_budget",
			                    json_string(rm_epsilon_format(ds->epsilon_budget, eb,
			                                                  sizeof eb)));
		}
		if (ds->append)
			json_object_set_new(o, "drops", json_string("append"));
		if (ds->kind == RM_DS_TABLE) {
			json_object_set_new(o, "columns", columns_json(ds->columns, ds->ncolumns));
			if (ds->unit)
				json_object_set_new(o, "unit", json_string(ds->unit));
		}
		json_array_append_new(dss, o);
	}
	json_object_set_new(root, "datasets", dss);
	for (size_t i = 0; i < d->ncomputations; i++) {
		const rm_computation *c = &d->computations[i];
		json_t *o = json_object();
		json_object_set_new(o, "name", json_string(c->name));
		json_object_set_new(o, "kind", json_string(rm_compkind_name(c->kind)));
		switch (c->kind) {
		case RM_COMP_SQL:
			if (c->min_rows_aggregated > 0 || c->dp_epsilon)
				json_object_set_new(o, "privacy", privacy_json(c));
			json_object_set_new(o, "query", json_string(c->query));
			break;
		case RM_COMP_SYNTHETIC:
			json_object_set_new(o, "input", json_string(c->input));
			json_object_set_new(o, "mask", synth_mask_json(c));
			json_object_set_new(o, "epsilon", json_real(c->epsilon));
			synth_extras_json(c, o);
			break;
		case RM_COMP_PYTHON:
		case RM_COMP_R:
			json_object_set_new(o, "inputs", names_json(c->inputs, c->ninputs));
			json_object_set_new(o, "script", json_string(c->script));
			if (c->ncolumns)
				json_object_set_new(o, "columns",
				                    columns_json(c->columns, c->ncolumns));
			if (c->logs != RM_LOGS_NEVER)
				json_object_set_new(o, "logs", json_string(rm_logs_name(c->logs)));
			if (limits_set(&c->limits))
				json_object_set_new(o, "limits", limits_json(&c->limits));
			break;
		}
		json_array_append_new(comps, o);
	}
	json_object_set_new(root, "computations", comps);

	char *text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
	json_decref(root);
	DCR_ASSERT(text);
	char *out = dcr_asprintf("%s\n", text);
	free(text);
	return out;
}

/* ---- requests (docs/room-format.md "Requests") ------------------------------- */

void rm_request_doc_release(rm_request_doc *d)
{
	if (!d)
		return;
	free(d->title);
	free(d->description);
	free_list(d->names, d->nnames);
	free(d->merged_json);
	rm_def_free(d->merged);
	memset(d, 0, sizeof *d);
}

/* The participant object of def whose email is exactly email, or NULL. */
static json_t *participant_by_email(json_t *def, const char *email)
{
	json_t *ps = json_object_get(def, "participants"), *p;
	size_t i;
	json_array_foreach(ps, i, p)
	{
		json_t *e = json_object_get(p, "email");
		if (json_is_string(e) && strcmp(json_string_value(e), email) == 0)
			return p;
	}
	return NULL;
}

/* The request document's own fields; appends its computations (without
 * "analysts") to def's, and each to its analysts' analyst_of. */
static int request_fold(json_t *req, json_t *def, rm_request_doc *out, dcr_err *err)
{
	static const char *const fields[] = {"title", "description", "computations", NULL};
	const char *s;
	json_t *a, *c;
	size_t i;
	char path[64];
	int rc;

	if (!json_is_object(req))
		return dcr_err_set(err, DCR_EINVALID, "the request must be a JSON object");
	if ((rc = check_fields(req, "", fields, err)))
		return rc;
	if ((rc = get_str(req, "", "title", true, DCR_RM_TITLE_BYTES_MAX, &s, err)))
		return rc;
	if (!*s)
		return fail(err, DCR_EINVALID, "", "title", "empty");
	out->title = dcr_strdup(s);
	if ((rc = get_str(req, "", "description", false, DCR_RM_DESCRIPTION_BYTES_MAX, &s, err)))
		return rc;
	out->description = dcr_strdup(s ? s : "");
	if ((rc = get_array(req, "", "computations", true, DCR_RM_REQUEST_COMPUTATIONS_MAX, &a,
	                    err)))
		return rc;
	if (json_array_size(a) == 0)
		return fail(err, DCR_EINVALID, "", "computations", "at least one is needed");
	json_t *comps = json_object_get(def, "computations");
	if (!comps) {
		comps = json_array();
		json_object_set_new(def, "computations", comps);
	}
	out->names = dcr_calloc(json_array_size(a) + 1, sizeof(char *));
	json_array_foreach(a, i, c)
	{
		char **analysts = NULL;
		size_t nanalysts = 0;
		snprintf(path, sizeof path, "computations[%zu]", i);
		if ((rc = need_object(c, path, err)))
			return rc;
		if ((rc = get_str(c, path, "name", true, DCR_RM_NAME_BYTES_MAX, &s, err)))
			return rc;
		out->names[out->nnames++] = dcr_strdup(s);
		rc = get_names(c, path, "analysts", &analysts, &nanalysts, err);
		if (!rc && nanalysts == 0)
			rc = fail(err, DCR_EINVALID, path, "analysts", "at least one is needed");
		for (size_t k = 0; k < nanalysts && !rc; k++) {
			json_t *p = participant_by_email(def, analysts[k]);
			if (!p) {
				rc = fail(err, DCR_EINVALID, path, "analysts",
				          "\"%s\" is not a participant of the room", analysts[k]);
				break;
			}
			json_t *l = json_object_get(p, "analyst_of");
			if (!l) {
				l = json_array();
				json_object_set_new(p, "analyst_of", l);
			}
			json_array_append_new(l, json_string(s));
		}
		free_list(analysts, nanalysts);
		if (rc)
			return rc;
		json_t *copy = json_deep_copy(c);
		json_object_del(copy, "analysts");
		json_array_append_new(comps, copy);
	}
	return 0;
}

int rm_request_merge(const char *def_json, const char *text, size_t n, rm_request_doc *out,
                     dcr_err *err)
{
	json_error_t je;
	json_t *req = NULL, *def = NULL;
	int rc;

	memset(out, 0, sizeof *out);
	if (n > DCR_RM_DEF_BYTES_MAX) {
		rc = dcr_err_set(err, DCR_ELIMIT, "request of %zu bytes exceeds the limit of %u", n,
		                 DCR_RM_DEF_BYTES_MAX);
		goto out;
	}
	if (!depth_ok(text, n)) {
		rc = dcr_err_set(err, DCR_ELIMIT, "nested deeper than %u levels",
		                 DCR_RM_DEF_DEPTH_MAX);
		goto out;
	}
	req = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
	if (!req) {
		rc = dcr_err_set(err, DCR_EFORMAT, "line %d, column %d: %s", je.line, je.column,
		                 je.text);
		goto out;
	}
	/* The current definition was accepted by rm_def_parse before. */
	def = json_loadb(def_json, strlen(def_json), JSON_REJECT_DUPLICATES, &je);
	DCR_ASSERT(def && json_is_object(def));
	if ((rc = request_fold(req, def, out, err)))
		goto out;
	out->merged_json = json_dumps(def, JSON_INDENT(2));
	DCR_ASSERT(out->merged_json);
	rc = def_parse(out->merged_json, strlen(out->merged_json), false, &out->merged, err);
	if (rc)
		dcr_err_prefix(err, "the definition with this request");
out:
	json_decref(req);
	json_decref(def);
	if (rc)
		rm_request_doc_release(out);
	return rc;
}
