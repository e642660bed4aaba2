/* test_cmp_csv_spectrum.c: the csv-spectrum corpus (npm, installed by
 * tools/deps under build-deps/node_modules/csv-spectrum) through the CSV
 * reader: every csvs/NAME.csv must parse to the records of json/NAME.json
 * (an array of objects keyed by the header). Each file is fed whole and one
 * byte at a time. Skips (77) when the corpus is not installed. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../compute/compute.h"

/* ---- a tiny JSON reader: arrays of objects of strings ----------------- */

struct obj {
	char **keys, **vals;
	size_t n;
};

static void skip_ws(const char **p)
{
	while (**p == ' ' || **p == '\n' || **p == '\r' || **p == '\t')
		(*p)++;
}

static int put_utf8(dcr_buf *b, unsigned cp)
{
	if (cp < 0x80) {
		dcr_buf_append_u8(b, (uint8_t)cp);
	} else if (cp < 0x800) {
		dcr_buf_append_u8(b, (uint8_t)(0xC0 | (cp >> 6)));
		dcr_buf_append_u8(b, (uint8_t)(0x80 | (cp & 0x3F)));
	} else {
		dcr_buf_append_u8(b, (uint8_t)(0xE0 | (cp >> 12)));
		dcr_buf_append_u8(b, (uint8_t)(0x80 | ((cp >> 6) & 0x3F)));
		dcr_buf_append_u8(b, (uint8_t)(0x80 | (cp & 0x3F)));
	}
	return 0;
}

static char *json_string(const char **p)
{
	skip_ws(p);
	if (**p != '"')
		return NULL;
	(*p)++;
	dcr_buf b;
	dcr_buf_init(&b);
	while (**p && **p != '"') {
		if (**p == '\\') {
			(*p)++;
			char e = *(*p)++;
			switch (e) {
			case 'n':
				dcr_buf_append_u8(&b, '\n');
				break;
			case 'r':
				dcr_buf_append_u8(&b, '\r');
				break;
			case 't':
				dcr_buf_append_u8(&b, '\t');
				break;
			case 'u': {
				char hx[5] = {0};
				memcpy(hx, *p, 4);
				*p += 4;
				put_utf8(&b, (unsigned)strtoul(hx, NULL, 16));
				break;
			}
			default:
				dcr_buf_append_u8(&b, (uint8_t)e);
			}
		} else {
			dcr_buf_append_u8(&b, (uint8_t) * (*p)++);
		}
	}
	if (**p != '"') {
		dcr_buf_release(&b);
		return NULL;
	}
	(*p)++;
	char *s = dcr_strdup(dcr_buf_cstr(&b));
	dcr_buf_release(&b);
	return s;
}

/* Returns the number of objects, or -1. */
static int json_parse(const char *p, struct obj **out)
{
	struct obj *objs = NULL;
	int n = 0;
	skip_ws(&p);
	if (*p++ != '[')
		return -1;
	for (;;) {
		skip_ws(&p);
		if (*p == ']')
			break;
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p++ != '{')
			goto bad;
		objs = dcr_realloc(objs, (size_t)(n + 1) * sizeof(*objs));
		struct obj *o = &objs[n++];
		memset(o, 0, sizeof(*o));
		for (;;) {
			skip_ws(&p);
			if (*p == '}') {
				p++;
				break;
			}
			if (*p == ',') {
				p++;
				continue;
			}
			char *k = json_string(&p);
			skip_ws(&p);
			if (!k || *p++ != ':') {
				free(k);
				goto bad;
			}
			char *v = json_string(&p);
			if (!v) {
				free(k);
				goto bad;
			}
			o->keys = dcr_realloc(o->keys, (o->n + 1) * sizeof(char *));
			o->vals = dcr_realloc(o->vals, (o->n + 1) * sizeof(char *));
			o->keys[o->n] = k;
			o->vals[o->n++] = v;
		}
	}
	*out = objs;
	return n;
bad:
	*out = objs;
	return -n - 2;
}

static void objs_free(struct obj *o, int n)
{
	for (int i = 0; i < n; i++) {
		for (size_t k = 0; k < o[i].n; k++) {
			free(o[i].keys[k]);
			free(o[i].vals[k]);
		}
		free(o[i].keys);
		free(o[i].vals);
	}
	free(o);
}

/* ---- comparison through the reader ------------------------------------ */

struct cmpctx {
	struct obj *objs;
	int nobjs;
	char **header;
	size_t nheader;
	int rec; /* records seen after the header */
	int bad;
};

static int on_rec(void *vctx, const cmp_csv_field *f, size_t n, dcr_err *err)
{
	struct cmpctx *c = vctx;
	(void)err;
	if (!c->header) {
		c->header = dcr_calloc(n, sizeof(char *));
		for (size_t i = 0; i < n; i++)
			c->header[i] = dcr_strndup(f[i].p, f[i].n);
		c->nheader = n;
		return 0;
	}
	int r = c->rec++;
	if (r >= c->nobjs || n != c->nheader || n != c->objs[r].n) {
		c->bad++;
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		const char *want = NULL;
		for (size_t k = 0; k < c->objs[r].n; k++)
			if (strcmp(c->objs[r].keys[k], c->header[i]) == 0)
				want = c->objs[r].vals[k];
		/* NULL (empty unquoted) and "" both read as "" in the corpus. */
		if (!want || strlen(want) != f[i].n || memcmp(want, f[i].p, f[i].n) != 0) {
			fprintf(stderr, "record %d field %zu: want \"%s\", got \"%.*s\"\n", r, i,
			        want ? want : "(missing key)", (int)f[i].n, f[i].p);
			c->bad++;
		}
	}
	return 0;
}

static int check_file(const char *dir, const char *name, size_t chunk)
{
	char path[4096];
	dcr_buf csv, js;
	dcr_buf_init(&csv);
	dcr_buf_init(&js);
	dcr_err err;
	int bad = 0;
	snprintf(path, sizeof(path), "%s/csvs/%s.csv", dir, name);
	if (dcr_read_file(path, 1 << 20, &csv, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		bad = 1;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/json/%s.json", dir, name);
	if (dcr_read_file(path, 1 << 20, &js, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		bad = 1;
		goto out;
	}
	struct cmpctx c = {0};
	c.nobjs = json_parse(dcr_buf_cstr(&js), &c.objs);
	if (c.nobjs < 0) {
		fprintf(stderr, "%s.json: cannot parse\n", name);
		objs_free(c.objs, -c.nobjs - 2);
		bad = 1;
		goto out;
	}
	cmp_csv *r;
	cmp_csv_new(name, on_rec, &c, &r);
	int rc = 0;
	size_t step = chunk ? chunk : (csv.len ? csv.len : 1);
	for (size_t i = 0; i < csv.len && !rc; i += step)
		rc = cmp_csv_feed(r, csv.data + i, csv.len - i < step ? csv.len - i : step, &err);
	if (!rc)
		rc = cmp_csv_finish(r, &err);
	if (rc) {
		fprintf(stderr, "%s.csv: %s\n", name, err.msg);
		bad = 1;
	}
	if (c.rec != c.nobjs) {
		fprintf(stderr, "%s.csv: %d records, json has %d\n", name, c.rec, c.nobjs);
		bad = 1;
	}
	if (c.bad)
		bad = 1;
	cmp_csv_free(r);
	for (size_t i = 0; i < c.nheader; i++)
		free(c.header[i]);
	free(c.header);
	objs_free(c.objs, c.nobjs);
out:
	dcr_buf_release(&csv);
	dcr_buf_release(&js);
	return bad;
}

int main(void)
{
	const char *src = getenv("DCR_SOURCE_DIR");
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/build-deps/node_modules/csv-spectrum", src ? src : ".");
	char csvdir[4200];
	snprintf(csvdir, sizeof(csvdir), "%s/csvs", dir);
	DIR *d = opendir(csvdir);
	if (!d) {
		/* tools/test (and so CI) sets DCR_REQUIRE_PEER_SUITES: there the
		 * peer's suite must have run, so a missing corpus fails. */
		const char *req = getenv("DCR_REQUIRE_PEER_SUITES");
		bool required = req && *req && strcmp(req, "0") != 0;
		fprintf(stderr, "csv-spectrum not installed at %s (run tools/deps): %s\n", dir,
		        required ? "FAILED (DCR_REQUIRE_PEER_SUITES is set)" : "skipped");
		return required ? 1 : 77;
	}
	int files = 0, bad = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l < 5 || strcmp(e->d_name + l - 4, ".csv"))
			continue;
		char name[256];
		snprintf(name, sizeof(name), "%.*s", (int)(l - 4), e->d_name);
		int b = check_file(dir, name, 0) | check_file(dir, name, 1);
		if (b)
			fprintf(stderr, "FAIL %s\n", name);
		bad += b;
		files++;
	}
	closedir(d);
	fprintf(stderr, "csv-spectrum: %d files, %d failed\n", files, bad);
	if (files == 0)
		return 77;
	return bad ? 1 : 0;
}
