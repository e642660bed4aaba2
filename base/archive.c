/* archive.c: the file archive of a python or r result (docs/compute.md,
 * "The result archive").
 *
 * One canonical msgpack array of [name, bytes] pairs (name a str, bytes a
 * bin), sorted bytewise by name, names unique. dcrd writes it from the
 * files the sandbox collected under /output; the CLI and the mount read
 * it back. The reader trusts nothing: the names are checked again (a
 * relative path of '/'-separated components, none empty, "." or "..",
 * no control byte), so a file written from an archive never lands
 * outside the directory it is written into. */
#include "base.h"

bool dcr_archive_name_valid(const char *s, size_t n)
{
	size_t start = 0;

	if (n == 0 || n > DCR_ARCHIVE_NAME_BYTES_MAX)
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '/') {
			unsigned char c = (unsigned char)s[i];
			if (c < 0x20 || c == 0x7f)
				return false;
			continue;
		}
		size_t len = i - start;
		if (len == 0 || (len == 1 && s[start] == '.') ||
		    (len == 2 && s[start] == '.' && s[start + 1] == '.'))
			return false;
		start = i + 1;
	}
	return true;
}

static int entry_cmp(const void *a, const void *b)
{
	const dcr_archive_entry *x = a, *y = b;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int c = memcmp(x->name, y->name, n);
	if (c)
		return c;
	return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

void dcr_archive_write(dcr_buf *out, const dcr_archive_entry *e, size_t n)
{
	dcr_archive_entry *s = dcr_calloc(n + 1, sizeof *s);
	dcr_mpw w;

	memcpy(s, e, n * sizeof *s);
	qsort(s, n, sizeof *s, entry_cmp);
	dcr_mpw_init(&w, out);
	dcr_mpw_array(&w, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		DCR_ASSERT(dcr_archive_name_valid(s[i].name, s[i].name_len));
		DCR_ASSERT(i == 0 || entry_cmp(&s[i - 1], &s[i]) < 0);
		dcr_mpw_array(&w, 2);
		dcr_mpw_strn(&w, s[i].name, s[i].name_len);
		dcr_mpw_bin(&w, s[i].data, s[i].len);
	}
	free(s);
}

int dcr_archive_read(const void *p, size_t n, dcr_archive *out, dcr_err *err)
{
	const dcr_mp_limits lim = {.bytes_max = DCR_ARCHIVE_BYTES_MAX,
	                           .depth_max = 2,
	                           .str_max = DCR_ARCHIVE_BYTES_MAX,
	                           .elems_max = DCR_ARCHIVE_FILES_MAX};
	const dcr_mpv *root;
	uint32_t m;
	int rc;

	memset(out, 0, sizeof *out);
	rc = dcr_mp_parse(p, n, &lim, &out->doc, err);
	if (rc < 0) {
		dcr_err_prefix(err, "result archive");
		return rc;
	}
	root = dcr_mp_root(out->doc);
	if (dcr_mp_type(root) != DCR_MP_ARRAY) {
		rc = dcr_err_set(err, DCR_EFORMAT, "result archive: not an array");
		goto out;
	}
	m = dcr_mp_len(root);
	out->e = dcr_calloc(m + 1, sizeof *out->e);
	for (uint32_t i = 0; i < m; i++) {
		const dcr_mpv *x = dcr_mp_at(root, i);
		dcr_archive_entry *e = &out->e[i];
		const uint8_t *d;
		if (dcr_mp_type(x) != DCR_MP_ARRAY || dcr_mp_len(x) != 2 ||
		    dcr_mp_str(dcr_mp_at(x, 0), &e->name, &e->name_len) < 0 ||
		    dcr_mp_bin(dcr_mp_at(x, 1), &d, &e->len) < 0) {
			rc = dcr_err_set(err, DCR_EFORMAT,
			                 "result archive: entry %u is not [name, bytes]", i);
			goto out;
		}
		e->data = d;
		if (!dcr_archive_name_valid(e->name, e->name_len) ||
		    memchr(e->name, 0, e->name_len)) {
			rc = dcr_err_set(err, DCR_EFORMAT,
			                 "result archive: entry %u has a file name that is not a "
			                 "relative path of plain names",
			                 i);
			goto out;
		}
		if (i > 0 && entry_cmp(&out->e[i - 1], e) >= 0) {
			rc = dcr_err_set(err, DCR_EFORMAT,
			                 "result archive: entry %u is out of order or repeated", i);
			goto out;
		}
		out->n++;
	}
out:
	if (rc < 0)
		dcr_archive_release(out);
	return rc;
}

const dcr_archive_entry *dcr_archive_find(const dcr_archive *a, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < a->n; i++)
		if (a->e[i].name_len == n && memcmp(a->e[i].name, name, n) == 0)
			return &a->e[i];
	return NULL;
}

void dcr_archive_release(dcr_archive *a)
{
	free(a->e);
	dcr_mp_doc_free(a->doc);
	memset(a, 0, sizeof *a);
}
