/* cmp_value.c: values of CSV fields: integer and float parsing, the string
 * formats (email, date, sha256), hashing for distinct counts, and the small
 * JSON and error-message escapers.
 *
 * Parsers take (pointer, length) and never read past the length; they run
 * once per field at provisioning, so the common cases avoid libc: integers
 * are parsed by hand with overflow detection, decimals with at most 15
 * significant digits and a power-of-ten exponent within 22 are converted
 * exactly with one multiplication or division (both operands are exact
 * doubles, so the IEEE result is correctly rounded); the rest go through
 * strtod. */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute_int.h"

const char *cmp_type_name(enum cmp_type t)
{
	switch (t) {
	case CMP_STRING:
		return "string";
	case CMP_INTEGER:
		return "integer";
	case CMP_FLOAT:
		return "float";
	}
	return "?";
}

bool cmp_type_parse(const char *s, size_t n, enum cmp_type *t)
{
	static const enum cmp_type all[] = {CMP_STRING, CMP_INTEGER, CMP_FLOAT};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		const char *name = cmp_type_name(all[i]);
		if (strlen(name) == n && memcmp(name, s, n) == 0) {
			*t = all[i];
			return true;
		}
	}
	return false;
}

const char *cmp_format_name(enum cmp_format f)
{
	switch (f) {
	case CMP_FMT_NONE:
		return "none";
	case CMP_FMT_EMAIL:
		return "email";
	case CMP_FMT_DATE:
		return "date";
	case CMP_FMT_SHA256:
		return "sha256";
	}
	return "?";
}

const char *cmp__sql_decltype(enum cmp_type t)
{
	switch (t) {
	case CMP_INTEGER:
		return "INTEGER";
	case CMP_FLOAT:
		return "REAL";
	case CMP_STRING:
		return "TEXT";
	}
	return "TEXT";
}

int cmp__parse_int(const char *s, size_t n, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	if (n > 0 && (s[0] == '-' || s[0] == '+')) {
		neg = s[0] == '-';
		i = 1;
	}
	if (i == n)
		return -1;
	uint64_t v = 0;
	bool over = false;
	const uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < n; i++) {
		unsigned d = (unsigned char)s[i] - '0';
		if (d > 9)
			return -1;
		if (!over) {
			if (v > (lim - d) / 10)
				over = true;
			else
				v = v * 10 + d;
		}
	}
	if (over)
		return -2;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

int cmp__parse_float(const char *s, size_t n, double *out)
{
	size_t i = 0;
	bool neg = false;
	if (n > 0 && (s[0] == '-' || s[0] == '+')) {
		neg = s[0] == '-';
		i = 1;
	}
	uint64_t mant = 0;
	int nd = 0, ndig = 0;
	long e10 = 0;
	bool truncated = false;
	for (; i < n && (unsigned char)(s[i] - '0') <= 9; i++, ndig++) {
		unsigned d = (unsigned char)s[i] - '0';
		if (mant == 0 && d == 0)
			continue;
		if (nd < 19) {
			mant = mant * 10 + d;
			nd++;
		} else {
			e10++;
			truncated = truncated || d;
		}
	}
	if (i < n && s[i] == '.') {
		i++;
		for (; i < n && (unsigned char)(s[i] - '0') <= 9; i++, ndig++) {
			unsigned d = (unsigned char)s[i] - '0';
			if (mant == 0 && d == 0) {
				e10--;
				continue;
			}
			if (nd < 19) {
				mant = mant * 10 + d;
				nd++;
				e10--;
			} else {
				truncated = truncated || d;
			}
		}
	}
	if (ndig == 0)
		return -1;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		bool eneg = false;
		if (i < n && (s[i] == '-' || s[i] == '+')) {
			eneg = s[i] == '-';
			i++;
		}
		if (i == n)
			return -1;
		long ev = 0;
		for (; i < n; i++) {
			unsigned d = (unsigned char)s[i] - '0';
			if (d > 9)
				return -1;
			if (ev < 100000)
				ev = ev * 10 + d;
		}
		e10 += eneg ? -ev : ev;
	}
	if (i != n)
		return -1;
	double v;
	if (mant == 0) {
		v = 0.0;
	} else if (!truncated && nd <= 15 && e10 >= -22 && e10 <= 22) {
		v = (double)mant;
		v = e10 >= 0 ? v * pow10_exact[e10] : v / pow10_exact[-e10];
		if (neg)
			v = -v;
	} else {
		char small[128];
		char *tmp = n < sizeof(small) ? small : dcr_malloc(n + 1);
		memcpy(tmp, s, n);
		tmp[n] = 0;
		v = strtod(tmp, NULL);
		if (tmp != small)
			free(tmp);
		if (!isfinite(v))
			return -2;
		if (v == 0)
			v = 0.0; /* an underflow like -1e-400 is zero, as "-0" is */
	}
	*out = v;
	return 0;
}

/* Character classes for email addresses: 1 = allowed in the local part
 * (RFC 5322 atext and '.'), 2 = letter or digit (domain labels). Bytes
 * >= 0x80 are allowed in both (RFC 6531; UTF-8 is checked before). */
static uint8_t email_cls[256];

static void email_cls_fill(void)
{
	uint8_t t[256] = {0};
	for (int c = 0; c < 256; c++) {
		bool alnum =
		    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (alnum || c >= 0x80)
			t[c] = 3;
		else if (c && strchr(".!#$%&'*+/=?^_`{|}~-", c))
			t[c] = 1;
	}
	memcpy(email_cls, t, sizeof(t));
}

static pthread_once_t email_once = PTHREAD_ONCE_INIT;

static void email_cls_init(void)
{
	pthread_once(&email_once, email_cls_fill);
}

static bool email_ok(const char *s, size_t n)
{
	const char *at = memchr(s, '@', n);
	if (!at || n > 254)
		return false;
	size_t ln = (size_t)(at - s), dn = n - ln - 1;
	if (ln == 0 || ln > 64 || dn == 0)
		return false;
	if (s[0] == '.' || s[ln - 1] == '.')
		return false;
	email_cls_init();
	for (size_t i = 0; i < ln; i++) {
		if (!email_cls[(unsigned char)s[i]])
			return false;
		if (s[i] == '.' && i + 1 < ln && s[i + 1] == '.')
			return false;
	}
	const char *d = at + 1;
	size_t label = 0, labels = 0;
	for (size_t i = 0; i < dn; i++) {
		unsigned char c = (unsigned char)d[i];
		if (c == '.') {
			if (label == 0 || d[i - 1] == '-')
				return false;
			labels++;
			label = 0;
			continue;
		}
		bool ok = (email_cls[c] & 2) || (c == '-' && label > 0);
		if (!ok || ++label > 63)
			return false;
	}
	if (label == 0 || d[dn - 1] == '-')
		return false;
	return labels >= 1;
}

static bool date_ok(const char *s, size_t n)
{
	if (n != 10 || s[4] != '-' || s[7] != '-')
		return false;
	int v[3] = {0, 0, 0};
	const int pos[3][2] = {{0, 4}, {5, 7}, {8, 10}};
	for (int k = 0; k < 3; k++)
		for (int i = pos[k][0]; i < pos[k][1]; i++) {
			unsigned d = (unsigned char)s[i] - '0';
			if (d > 9)
				return false;
			v[k] = v[k] * 10 + (int)d;
		}
	int y = v[0], m = v[1], day = v[2];
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (m < 1 || m > 12 || day < 1)
		return false;
	int lim = mdays[m - 1];
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		lim = 29;
	return day <= lim;
}

static bool sha256_ok(const char *s, size_t n)
{
	if (n != 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return false;
	}
	return true;
}

bool cmp__format_ok(enum cmp_format f, const char *s, size_t n)
{
	switch (f) {
	case CMP_FMT_NONE:
		return true;
	case CMP_FMT_EMAIL:
		return email_ok(s, n);
	case CMP_FMT_DATE:
		return date_ok(s, n);
	case CMP_FMT_SHA256:
		return sha256_ok(s, n);
	}
	return false;
}

void cmp__json_str(dcr_buf *b, const char *s, size_t n)
{
	dcr_json_str(b, s, n);
}

void cmp__json_double(dcr_buf *b, double v)
{
	if (!isfinite(v)) {
		dcr_buf_append_str(b, "null");
		return;
	}
	char tmp[40];
	/* Shortest of %.15g / %.17g that round-trips. */
	snprintf(tmp, sizeof(tmp), "%.15g", v);
	if (strtod(tmp, NULL) != v)
		snprintf(tmp, sizeof(tmp), "%.17g", v);
	dcr_buf_append_str(b, tmp);
	if (!strpbrk(tmp, ".eE"))
		dcr_buf_append_str(b, ".0");
}

void cmp__quote_value(char *out, size_t cap, const char *s, size_t n)
{
	size_t o = 0;
	bool cut = false;
	size_t lim = n;
	if (lim > DCR_CSV_ERR_VALUE_BYTES) {
		lim = DCR_CSV_ERR_VALUE_BYTES;
		while (lim > 0 && ((unsigned char)s[lim] & 0xC0) == 0x80)
			lim--; /* do not split a UTF-8 sequence */
		cut = true;
	}
	DCR_ASSERT(cap >= 16);
	out[o++] = '"';
	for (size_t i = 0; i < lim && o + 8 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o++] = '"';
	if (cut && o + 4 < cap) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = 0;
}

void cmp__sql_ident(dcr_buf *b, const char *name)
{
	dcr_buf_append_u8(b, '"');
	for (const char *p = name; *p; p++) {
		if (*p == '"')
			dcr_buf_append_u8(b, '"');
		dcr_buf_append_u8(b, (uint8_t)*p);
	}
	dcr_buf_append_u8(b, '"');
}
