/* cli_stats.c: `dcr stats ROOM DATASET` and the statistics blocks of
 * `dcr datasets`: a dataset's columns and the statistics computed when it
 * was provisioned (docs/compute.md "Statistics"), as the daemon gives them
 * to its owners, and to everyone in the room when the definition shares
 * them (rm_may_read_stats decides in the daemon). The JSON is parsed with
 * jansson and printed as a table; --json prints it as received. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

static const char *jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* A number of a statistic: integers exactly, floats to 6 significant
 * digits; "-" when absent or null. */
static void jnum(const json_t *v, char *buf, size_t cap)
{
	if (json_is_integer(v))
		snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, cap, "%.6g", json_real_value(v));
	else
		snprintf(buf, cap, "-");
}

enum { SC_COLS = 9 };

int cli_print_stats(FILE *out, const char *title, const char *json, dcr_err *err)
{
	static const char *const hdr[SC_COLS] = {"COLUMN", "TYPE", "NULLS",  "DISTINCT", "MIN",
	                                         "MAX",    "MEAN", "STDDEV", "LENGTH"};
	json_error_t je;
	json_t *root = json_loads(json, 0, &je);
	const json_t *cols;
	char *(*cell)[SC_COLS] = NULL;
	size_t n = 0;
	int w[SC_COLS];
	int rc = 0;

	if (!root || !json_is_object(root) ||
	    !json_is_array(cols = json_object_get(root, "columns"))) {
		rc = dcr_err_set(err, DCR_EFORMAT,
		                 "statistics of %s: not the expected JSON object (line %d, "
		                 "column %d: %s)",
		                 title, root ? 1 : je.line, root ? 1 : je.column,
		                 root ? "no columns array" : je.text);
		goto out;
	}
	n = json_array_size(cols);
	cell = dcr_calloc(n ? n : 1, sizeof *cell);
	for (size_t i = 0; i < n; i++) {
		const json_t *c = json_array_get(cols, i);
		char a[64], b[64];
		const char *fmt = jstr(c, "format");
		bool text = strcmp(jstr(c, "type"), "string") == 0;

		cell[i][0] = dcr_strdup(jstr(c, "name"));
		cell[i][1] = *fmt ? dcr_asprintf("%s (%s)", jstr(c, "type"), fmt)
		                  : dcr_strdup(jstr(c, "type"));
		jnum(json_object_get(c, "nulls"), a, sizeof a);
		cell[i][2] = dcr_strdup(a);
		jnum(json_object_get(c, "distinct"), a, sizeof a);
		cell[i][3] = json_is_false(json_object_get(c, "distinct_exact"))
		                 ? dcr_asprintf("~%s", a)
		                 : dcr_strdup(a);
		for (int k = 0; k < 4; k++) {
			static const char *const key[4] = {"min", "max", "mean", "stddev"};
			jnum(text ? NULL : json_object_get(c, key[k]), a, sizeof a);
			cell[i][4 + k] = dcr_strdup(a);
		}
		jnum(json_object_get(c, "min_length"), a, sizeof a);
		jnum(json_object_get(c, "max_length"), b, sizeof b);
		cell[i][8] = text && strcmp(a, "-") != 0 ? dcr_asprintf("%s..%s", a, b)
		                                         : dcr_strdup("-");
	}
	for (int k = 0; k < SC_COLS; k++) {
		w[k] = (int)strlen(hdr[k]);
		for (size_t i = 0; i < n; i++)
			if ((int)strlen(cell[i][k]) > w[k])
				w[k] = (int)strlen(cell[i][k]);
	}
	{
		char rows[32], bytes[32];
		jnum(json_object_get(root, "rows"), rows, sizeof rows);
		jnum(json_object_get(root, "bytes"), bytes, sizeof bytes);
		fprintf(out, "%s: %s rows, %s bytes\n", title, rows, bytes);
	}
	for (size_t i = 0; i <= n; i++) {
		for (int k = 0; k < SC_COLS; k++) {
			const char *v = i == 0 ? hdr[k] : cell[i - 1][k];
			if (k == SC_COLS - 1)
				fprintf(out, "  %s", v);
			else
				fprintf(out, k < 2 ? "  %-*s" : "  %*s", w[k], v);
		}
		fputc('\n', out);
	}
out:
	for (size_t i = 0; cell && i < n; i++)
		for (int k = 0; k < SC_COLS; k++)
			free(cell[i][k]);
	free(cell);
	json_decref(root);
	return rc;
}

int cli_cmd_stats(int argc, char **argv)
{
	static const char usage[] =
	    "usage: dcr stats ROOM DATASET [--json]\n"
	    "Prints the columns of a provisioned dataset and the statistics computed\n"
	    "when it was provisioned: rows and bytes; per column nulls, distinct values\n"
	    "(\"~\" marks a HyperLogLog estimate), min, max, mean and standard deviation\n"
	    "of numbers, min..max length of strings. Allowed to the dataset's owners,\n"
	    "and to everyone in the room when the definition sets share_statistics.\n"
	    "--json prints the statistics as the daemon sends them (docs/compute.md).\n";
	bool json = false;
	const cli_opt opts[] = {{"--json", NULL, &json}, {NULL, NULL, NULL}};
	char *pos[2];
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES];
	dcr_buf out;
	int rc;

	CLI_PARSE("stats", usage, argc, argv, opts, pos, 2, 2, NULL);
	dcr_buf_init(&out);
	rc = cli_open_room(pos[0], &c, id, &err);
	if (rc == 0)
		rc = cl_stats(c, id, pos[1], &out, &err);
	if (rc == 0 && json) {
		fwrite(out.data, 1, out.len, stdout);
		if (out.len && out.data[out.len - 1] != '\n')
			fputc('\n', stdout);
	} else if (rc == 0) {
		rc = cli_print_stats(stdout, pos[1], dcr_buf_cstr(&out), &err);
	}
	dcr_buf_release(&out);
	cl_close(c);
	if (rc) {
		tl_fail("stats", &err);
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}
