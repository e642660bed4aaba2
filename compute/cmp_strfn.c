/* cmp_strfn.c: instr(), replace(), trim(), ltrim() and rtrim() for the run
 * connection, replacing SQLite's built-ins with the same results in linear
 * time.
 *
 * Why: one SQL function call is one VM step, and neither the progress
 * handler nor sqlite3_interrupt stops it (the watchdog's interrupt is seen
 * after the call returns). SQLite 3.40 searches naively: instr(s, t) and
 * replace(s, t, u) cost |s| x |t| byte comparisons (a 1 MiB string and a
 * 512 KiB needle: 6.5 s in one call; at the 16 MiB value limit of the past,
 * half an hour), and trim(s, set) compares each character of s with each
 * character of set. Here the search is glibc's memmem (two-way: linear),
 * and trim looks characters up in a hash set. Results are SQLite's,
 * including its handling of text that is not valid UTF-8, except that a
 * trim set of more than TRIM_SMALL_SET bytes holding a "character" longer
 * than 4 bytes (invalid UTF-8, per SQLite's own reading: a lead byte and
 * every continuation byte after it) is an error. tests/unit/test_cmp_sql.c compares them with SQLite's on
 * edge cases and random strings. */
/* memmem: _GNU_SOURCE is set for every file (CMakeLists.txt) */
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

#include "compute_sql.h"

static bool cont_byte(uint8_t b)
{
	return (b & 0xc0) == 0x80;
}

/* instr(X, Y): 1 + the characters (bytes, for two blobs) of X before the
 * first occurrence of Y; 0 if none; 1 for an empty Y; NULL with a NULL. */
static void instr_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	int th = sqlite3_value_type(argv[0]), tn = sqlite3_value_type(argv[1]);
	sqlite3_value *c1 = NULL, *c2 = NULL;
	const uint8_t *h, *n;
	size_t nh, nn;
	bool text;
	int64_t pos = 1;

	(void)argc;
	if (th == SQLITE_NULL || tn == SQLITE_NULL)
		return;
	if (th == SQLITE_BLOB && tn == SQLITE_BLOB) {
		h = sqlite3_value_blob(argv[0]);
		nh = (size_t)sqlite3_value_bytes(argv[0]);
		n = sqlite3_value_blob(argv[1]);
		nn = (size_t)sqlite3_value_bytes(argv[1]);
		text = false;
	} else if (th != SQLITE_BLOB && tn != SQLITE_BLOB) {
		h = sqlite3_value_text(argv[0]);
		nh = (size_t)sqlite3_value_bytes(argv[0]);
		n = sqlite3_value_text(argv[1]);
		nn = (size_t)sqlite3_value_bytes(argv[1]);
		text = true;
	} else { /* one blob, one not: both read as text (copies, as SQLite) */
		c1 = sqlite3_value_dup(argv[0]);
		c2 = sqlite3_value_dup(argv[1]);
		h = c1 ? sqlite3_value_text(c1) : NULL;
		nh = h ? (size_t)sqlite3_value_bytes(c1) : 0;
		n = c2 ? sqlite3_value_text(c2) : NULL;
		nn = n ? (size_t)sqlite3_value_bytes(c2) : 0;
		text = true;
	}
	if (nn > 0) {
		const uint8_t *at = NULL, *from = h;
		if (!n || (nh && !h)) {
			sqlite3_result_error_nomem(ctx);
			goto out;
		}
		/* SQLite tries the positions where a character starts (each
		 * byte of a blob; in text the first byte always, then every
		 * byte that is not a continuation byte). */
		while (from && (size_t)(from - h) + nn <= nh) {
			at = memmem(from, nh - (size_t)(from - h), n, nn);
			if (!at || !text || at == h || !cont_byte(*at))
				break;
			from = at + 1;
			at = NULL;
		}
		if (!at) {
			pos = 0;
		} else if (!text) {
			pos = 1 + (at - h);
		} else {
			for (const uint8_t *p = h + 1; p <= at; p++)
				pos += !cont_byte(*p);
		}
	}
	sqlite3_result_int64(ctx, pos);
out:
	sqlite3_value_free(c1);
	sqlite3_value_free(c2);
}

/* Patterns up to this long are found with memchr and memcmp (faster for
 * the usual short ones), longer ones with memmem. */
#define REPLACE_NAIVE_MAX 16

/* replace(X, Y, Z): X with every occurrence of Y, left to right and not
 * overlapping, replaced by Z; X unchanged when Y is empty (or starts with
 * a NUL byte, as in SQLite); NULL with a NULL. */
static void replace_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const uint8_t *s, *pat, *rep;
	size_t ns, np, nr;
	int lim = sqlite3_limit(sqlite3_context_db_handle(ctx), SQLITE_LIMIT_LENGTH, -1);
	dcr_buf out;

	(void)argc;
	s = sqlite3_value_text(argv[0]);
	if (!s)
		return;
	ns = (size_t)sqlite3_value_bytes(argv[0]);
	pat = sqlite3_value_text(argv[1]);
	if (!pat)
		return;
	if (pat[0] == 0) {
		sqlite3_result_value(ctx, argv[0]);
		return;
	}
	np = (size_t)sqlite3_value_bytes(argv[1]);
	rep = sqlite3_value_text(argv[2]);
	if (!rep)
		return;
	nr = (size_t)sqlite3_value_bytes(argv[2]);
	dcr_buf_init(&out);
	dcr_buf_reserve(&out, ns + 1);
	for (size_t i = 0; i < ns;) {
		const uint8_t *at = NULL;
		if (np > ns - i) {
			at = NULL;
		} else if (np <= REPLACE_NAIVE_MAX) {
			/* a short pattern: its first byte, then the rest (at most
			 * REPLACE_NAIVE_MAX comparisons a byte: linear) */
			const uint8_t *from = s + i, *end = s + ns - np + 1;
			while (from < end && (at = memchr(from, pat[0], (size_t)(end - from))) &&
			       memcmp(at, pat, np) != 0) {
				from = at + 1;
				at = NULL;
			}
		} else {
			at = memmem(s + i, ns - i, pat, np);
		}
		size_t upto = at ? (size_t)(at - s) : ns;
		dcr_buf_append(&out, s + i, upto - i);
		if (at) {
			dcr_buf_append(&out, rep, nr);
			upto += np;
		}
		i = upto;
		if (out.len > (size_t)lim) {
			dcr_buf_release(&out);
			sqlite3_result_error_toobig(ctx);
			return;
		}
	}
	sqlite3_result_text64(ctx, out.len ? (const char *)out.data : "", out.len, SQLITE_TRANSIENT,
	                      SQLITE_UTF8);
	dcr_buf_release(&out);
}

/* The characters of a trim set, as SQLite splits them (SQLITE_SKIP_UTF8:
 * a byte below 0xc0 alone, or a lead byte and the continuation bytes
 * after it), in a hash set keyed by their bytes with the index of their
 * first appearance (SQLite takes the first character of the set that
 * matches). */
#define TRIM_CHAR_MAX 4
#define TRIM_SMALL_SET 8 /* bytes of a set trimmed without the hash set */
struct trim_set {
	uint32_t *key; /* the character's bytes as a number (slot_key) */
	uint32_t *idx; /* first index + 1; 0: empty slot */
	uint8_t *len;
	size_t cap;
	bool lens[TRIM_CHAR_MAX + 1]; /* which lengths occur */
};

static uint32_t slot_key(const uint8_t *p, size_t n)
{
	uint32_t k = 0;
	for (size_t i = 0; i < n; i++)
		k = k << 8 | p[i];
	return k;
}

static size_t slot_of(const struct trim_set *t, uint32_t k, size_t n)
{
	uint32_t h = (k ^ (uint32_t)n * 0x9e3779b9u) * 0x85ebca6bu;
	size_t i = (h ^ h >> 15) & (t->cap - 1);
	while (t->idx[i] && (t->key[i] != k || t->len[i] != n))
		i = (i + 1) & (t->cap - 1);
	return i;
}

/* The smallest set index of a character of the set that X has at p (at
 * most avail bytes), with its length; false if none. */
static bool trim_match(const struct trim_set *t, const uint8_t *p, size_t avail, size_t *len)
{
	uint32_t best = 0;
	for (size_t n = 1; n <= TRIM_CHAR_MAX && n <= avail; n++) {
		if (!t->lens[n])
			continue;
		size_t i = slot_of(t, slot_key(p, n), n);
		if (t->idx[i] && (!best || t->idx[i] < best)) {
			best = t->idx[i];
			*len = n;
		}
	}
	return best != 0;
}

/* trim/ltrim/rtrim(X [, Y]): user data 1 left, 2 right, 3 both. */
static void trim_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	int flags = (int)(intptr_t)sqlite3_user_data(ctx);
	struct trim_set t;
	const uint8_t *in, *set;
	size_t nin, nset, nchars = 0, len;

	if (sqlite3_value_type(argv[0]) == SQLITE_NULL)
		return;
	in = sqlite3_value_text(argv[0]);
	if (!in)
		return;
	nin = (size_t)sqlite3_value_bytes(argv[0]);
	if (argc == 1) {
		set = (const uint8_t *)" ";
		nset = 1;
	} else {
		set = sqlite3_value_text(argv[1]);
		if (!set)
			return;
		nset = strlen((const char *)set); /* SQLite reads the set up to a NUL */
	}
	if (nset <= TRIM_SMALL_SET) {
		/* a few characters (the usual case, trim(x) is one space):
		 * SQLite's own loop, at most TRIM_SMALL_SET tries a character */
		const uint8_t *ch[TRIM_SMALL_SET];
		size_t cl[TRIM_SMALL_SET], nc = 0;
		for (size_t i = 0; i < nset; nc++) {
			size_t n = 1;
			if (set[i] >= 0xc0)
				while (i + n < nset && cont_byte(set[i + n]))
					n++;
			ch[nc] = set + i;
			cl[nc] = n;
			i += n;
		}
		for (bool moved = true; (flags & 1) && nin > 0 && moved;) {
			moved = false;
			for (size_t k = 0; k < nc && !moved; k++)
				if (cl[k] <= nin && memcmp(in, ch[k], cl[k]) == 0) {
					in += cl[k];
					nin -= cl[k];
					moved = true;
				}
		}
		for (bool moved = true; (flags & 2) && nin > 0 && moved;) {
			moved = false;
			for (size_t k = 0; k < nc && !moved; k++)
				if (cl[k] <= nin && memcmp(in + nin - cl[k], ch[k], cl[k]) == 0) {
					nin -= cl[k];
					moved = true;
				}
		}
		sqlite3_result_text64(ctx, (const char *)in, nin, SQLITE_TRANSIENT, SQLITE_UTF8);
		return;
	}
	memset(&t, 0, sizeof t);
	for (t.cap = 16; t.cap < 2 * nset + 2; t.cap *= 2)
		;
	t.key = dcr_calloc(t.cap, sizeof *t.key);
	t.idx = dcr_calloc(t.cap, sizeof *t.idx);
	t.len = dcr_calloc(t.cap, sizeof *t.len);
	for (size_t i = 0; i < nset;) {
		size_t n = 1;
		if (set[i] >= 0xc0)
			while (i + n < nset && cont_byte(set[i + n]))
				n++;
		if (n > TRIM_CHAR_MAX) {
			sqlite3_result_error(ctx,
			                     "trim(): the set of characters holds a character of "
			                     "more than 4 bytes (not UTF-8)",
			                     -1);
			goto out;
		}
		size_t s = slot_of(&t, slot_key(set + i, n), n);
		if (!t.idx[s]) {
			t.key[s] = slot_key(set + i, n);
			t.len[s] = (uint8_t)n;
			t.idx[s] = (uint32_t)++nchars;
			t.lens[n] = true;
		}
		i += n;
	}
	if (nchars > 0) {
		if (flags & 1)
			while (nin > 0 && trim_match(&t, in, nin, &len)) {
				in += len;
				nin -= len;
			}
		if (flags & 2)
			while (nin > 0) {
				/* SQLite tries the set's characters in order against
				 * the end of X: the first whose bytes end X wins */
				uint32_t best = 0;
				size_t blen = 0;
				for (size_t n = 1; n <= TRIM_CHAR_MAX && n <= nin; n++) {
					if (!t.lens[n])
						continue;
					size_t s = slot_of(&t, slot_key(in + nin - n, n), n);
					if (t.idx[s] && (!best || t.idx[s] < best)) {
						best = t.idx[s];
						blen = n;
					}
				}
				if (!best)
					break;
				nin -= blen;
			}
	}
	sqlite3_result_text64(ctx, (const char *)in, nin, SQLITE_TRANSIENT, SQLITE_UTF8);
out:
	free(t.key);
	free(t.idx);
	free(t.len);
}

int cmp__register_strfns(sqlite3 *db)
{
	static const struct {
		const char *name;
		int nargs;
		void (*fn)(sqlite3_context *, int, sqlite3_value **);
		intptr_t flags;
	} fns[] = {
	    {"instr", 2, instr_fn, 0},   {"replace", 3, replace_fn, 0}, {"trim", 1, trim_fn, 3},
	    {"trim", 2, trim_fn, 3},     {"ltrim", 1, trim_fn, 1},      {"ltrim", 2, trim_fn, 1},
	    {"rtrim", 1, trim_fn, 2},    {"rtrim", 2, trim_fn, 2},
	};
	for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
		if (sqlite3_create_function_v2(db, fns[i].name, fns[i].nargs,
		                               SQLITE_UTF8 | SQLITE_DETERMINISTIC,
		                               (void *)fns[i].flags, fns[i].fn, NULL, NULL,
		                               NULL) != SQLITE_OK)
			return DCR_ESQL;
	return 0;
}
