/* cmp_printf.c: printf() and format() for the run connection, replacing
 * SQLite's built-ins.
 *
 * Why: a single SQL function call cannot be interrupted (the progress
 * handler runs between VM instructions), and SQLite 3.40's printf builds
 * `printf('%.*c', 1000000000, 'x')` one character at a time: seconds of CPU
 * in one call, past any time limit. This version accepts the conversions
 * people use for formatting (d i u x X o f F e E g G c s %, flags - + space
 * 0 #, width and precision as digits or *), caps width and precision at
 * CMP_PRINTF_WIDTH_MAX and the output at the connection's length limit, and
 * formats each conversion with the C library's snprintf. Anything else
 * (%q, %Q, %w, %z, ...) is an error that names the conversion. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute_sql.h"

#define CMP_PRINTF_WIDTH_MAX 1000

static int read_num(sqlite3_context *ctx, const char **f, sqlite3_value **argv, int argc, int *ai,
                    int *out)
{
	if (**f == '*') {
		(*f)++;
		if (*ai >= argc) {
			*out = 0;
			return 0;
		}
		sqlite3_int64 v = sqlite3_value_int64(argv[(*ai)++]);
		if (v < -CMP_PRINTF_WIDTH_MAX || v > CMP_PRINTF_WIDTH_MAX) {
			sqlite3_result_error(ctx, "printf(): width or precision above 1000", -1);
			return -1;
		}
		*out = (int)v;
		return 0;
	}
	int v = 0;
	while (**f >= '0' && **f <= '9') {
		v = v * 10 + (**f - '0');
		if (v > CMP_PRINTF_WIDTH_MAX) {
			sqlite3_result_error(ctx, "printf(): width or precision above 1000", -1);
			return -1;
		}
		(*f)++;
	}
	*out = v;
	return 0;
}

/* The snprintf formats below are built from the accepted flags, numbers
 * and one conversion letter, never copied from the query. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void cmp_printf_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	if (argc < 1 || sqlite3_value_type(argv[0]) == SQLITE_NULL)
		return; /* NULL, as SQLite's */
	const char *f = (const char *)sqlite3_value_text(argv[0]);
	if (!f)
		return;
	int lim = sqlite3_limit(sqlite3_context_db_handle(ctx), SQLITE_LIMIT_LENGTH, -1);
	dcr_buf out;
	dcr_buf_init(&out);
	int ai = 1;
	char piece[CMP_PRINTF_WIDTH_MAX * 2 + 400];
	while (*f) {
		const char *pct = strchr(f, '%');
		size_t lit = pct ? (size_t)(pct - f) : strlen(f);
		dcr_buf_append(&out, f, lit);
		f += lit;
		if (!*f)
			break;
		f++; /* '%' */
		char spec[32];
		size_t sn = 0;
		spec[sn++] = '%';
		while (*f && strchr("-+ 0#", *f) && sn < 8)
			spec[sn++] = *f++;
		int width = -1, prec = -1;
		if ((*f >= '0' && *f <= '9') || *f == '*') {
			if (read_num(ctx, &f, argv, argc, &ai, &width))
				goto fail;
		}
		if (*f == '.') {
			f++;
			if (read_num(ctx, &f, argv, argc, &ai, &prec))
				goto fail;
			if (prec < 0)
				prec = 0;
		}
		char conv = *f ? *f++ : 0;
		if (width < 0 && width != -1) {
			spec[sn++] = '-';
			width = -width;
		}
		if (width >= 0)
			sn += (size_t)snprintf(spec + sn, sizeof(spec) - sn, "%d", width);
		if (prec >= 0)
			sn += (size_t)snprintf(spec + sn, sizeof(spec) - sn, ".%d", prec);
		sqlite3_value *a = ai < argc ? argv[ai] : NULL;
		int n = 0;
		switch (conv) {
		case '%':
			dcr_buf_append_u8(&out, '%');
			continue;
		case 'd':
		case 'i':
			snprintf(spec + sn, sizeof(spec) - sn, "lld");
			n = snprintf(piece, sizeof(piece), spec,
			             (long long)(a ? sqlite3_value_int64(a) : 0));
			ai++;
			break;
		case 'u':
		case 'x':
		case 'X':
		case 'o':
			snprintf(spec + sn, sizeof(spec) - sn, "ll%c", conv);
			n = snprintf(piece, sizeof(piece), spec,
			             (unsigned long long)(a ? sqlite3_value_int64(a) : 0));
			ai++;
			break;
		case 'f':
		case 'F':
		case 'e':
		case 'E':
		case 'g':
		case 'G': {
			double d = a ? sqlite3_value_double(a) : 0.0;
			/* %f of 1e308 is 309 digits: fits piece. */
			snprintf(spec + sn, sizeof(spec) - sn, "%c", conv);
			n = snprintf(piece, sizeof(piece), spec, d);
			ai++;
			break;
		}
		case 'c':
		case 's': {
			const char *s = a ? (const char *)sqlite3_value_text(a) : NULL;
			size_t sl = s ? (size_t)sqlite3_value_bytes(a) : 0;
			ai++;
			if (conv == 'c') {
				/* The first character, repeated precision times. */
				size_t cl = 0;
				if (sl) {
					cl = 1;
					while (cl < sl && ((unsigned char)s[cl] & 0xC0) == 0x80)
						cl++;
				}
				int reps = prec > 0 ? prec : 1;
				size_t body = cl * (size_t)reps;
				size_t pad = width > 0 && (size_t)width > (size_t)reps
				                 ? (size_t)width - (size_t)reps
				                 : 0;
				bool left = memchr(spec, '-', sn) != NULL;
				for (size_t k = 0; !left && k < pad; k++)
					dcr_buf_append_u8(&out, ' ');
				for (int k = 0; k < reps && cl; k++)
					dcr_buf_append(&out, s, cl);
				for (size_t k = 0; left && k < pad; k++)
					dcr_buf_append_u8(&out, ' ');
				(void)body;
				break;
			}
			/* %s: precision counts bytes, as SQLite's without '!'. */
			size_t take = prec >= 0 && (size_t)prec < sl ? (size_t)prec : sl;
			size_t pad = width > 0 && (size_t)width > take ? (size_t)width - take : 0;
			bool left = memchr(spec, '-', sn) != NULL;
			for (size_t k = 0; !left && k < pad; k++)
				dcr_buf_append_u8(&out, ' ');
			if (take)
				dcr_buf_append(&out, s, take);
			for (size_t k = 0; left && k < pad; k++)
				dcr_buf_append_u8(&out, ' ');
			break;
		}
		default: {
			char msg[80];
			if (conv)
				snprintf(msg, sizeof(msg),
				         "printf(): conversion %%%c is not supported", conv);
			else
				snprintf(msg, sizeof(msg),
				         "printf(): incomplete conversion at the end");
			sqlite3_result_error(ctx, msg, -1);
			goto fail;
		}
		}
		if (n > 0)
			dcr_buf_append(&out, piece,
			               (size_t)n < sizeof(piece) ? (size_t)n : sizeof(piece) - 1);
		if (out.len > (size_t)lim) {
			sqlite3_result_error_toobig(ctx);
			goto fail;
		}
	}
	if (out.len > (size_t)lim) {
		sqlite3_result_error_toobig(ctx);
		goto fail;
	}
	sqlite3_result_text64(ctx, out.len ? (const char *)out.data : "", out.len, SQLITE_TRANSIENT,
	                      SQLITE_UTF8);
fail:
	dcr_buf_release(&out);
}

#pragma GCC diagnostic pop

int cmp__register_printf(sqlite3 *db)
{
	int rc = sqlite3_create_function_v2(db, "printf", -1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
	                                    NULL, cmp_printf_fn, NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc =
		    sqlite3_create_function_v2(db, "format", -1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
		                               NULL, cmp_printf_fn, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : DCR_ESQL;
}
