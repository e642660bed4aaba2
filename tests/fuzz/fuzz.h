/* fuzz.h: what every fuzz target shares: the libFuzzer entry point's
 * prototype, a check that aborts with a message (libFuzzer and the replay
 * test both treat an abort as a failure), and a re-encoder from a parsed
 * msgpack document back to canonical bytes.
 *
 * The re-encoder is the oracle of the msgpack targets: canonical form
 * leaves exactly one encoding per value, so whatever dcr_mp_parse accepts
 * must re-encode (through the dcr_mpw writer) to the very bytes it was
 * parsed from. A difference means the reader accepted a non-canonical
 * encoding or the writer and reader disagree. Header-only. */
#ifndef DCR_FUZZ_H
#define DCR_FUZZ_H

#include "../../base/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__,      \
			        #cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* Writes v canonically to w (map keys in the order they were parsed, which
 * for an accepted document is the canonical order). */
__attribute__((unused)) static void fuzz_mp_reencode(dcr_mpw *w, const dcr_mpv *v)
{
	uint32_t i, n;
	const char *s;
	const uint8_t *b;
	size_t len;
	uint64_t u;
	int64_t iv;
	double d;
	bool t;

	switch (dcr_mp_type(v)) {
	case DCR_MP_NIL:
		dcr_mpw_nil(w);
		break;
	case DCR_MP_BOOL:
		FUZZ_CHECK(dcr_mp_bool(v, &t) == 0);
		dcr_mpw_bool(w, t);
		break;
	case DCR_MP_UINT:
		FUZZ_CHECK(dcr_mp_u64(v, &u) == 0);
		dcr_mpw_uint(w, u);
		break;
	case DCR_MP_INT:
		FUZZ_CHECK(dcr_mp_i64(v, &iv) == 0);
		FUZZ_CHECK(iv < 0); /* non-negative integers are always unsigned */
		dcr_mpw_int(w, iv);
		break;
	case DCR_MP_FLOAT:
		FUZZ_CHECK(dcr_mp_f64(v, &d) == 0);
		dcr_mpw_double(w, d);
		break;
	case DCR_MP_STR:
		FUZZ_CHECK(dcr_mp_str(v, &s, &len) == 0);
		FUZZ_CHECK(len == dcr_mp_len(v));
		dcr_mpw_strn(w, s, len);
		break;
	case DCR_MP_BIN:
		FUZZ_CHECK(dcr_mp_bin(v, &b, &len) == 0);
		FUZZ_CHECK(len == dcr_mp_len(v));
		dcr_mpw_bin(w, b, len);
		break;
	case DCR_MP_ARRAY:
		n = dcr_mp_len(v);
		dcr_mpw_array(w, n);
		for (i = 0; i < n; i++)
			fuzz_mp_reencode(w, dcr_mp_at(v, i));
		FUZZ_CHECK(dcr_mp_at(v, n) == NULL);
		break;
	case DCR_MP_MAP:
		n = dcr_mp_len(v);
		dcr_mpw_map(w, n);
		for (i = 0; i < n; i++) {
			const dcr_mpv *val = dcr_mp_map_at(v, i, &s, &len);
			char *key;

			FUZZ_CHECK(val != NULL);
			dcr_mpw_strn(w, s, len);
			fuzz_mp_reencode(w, val);
			/* lookup by key finds this very entry (keys are unique) */
			if (len == 0 || memchr(s, 0, len) == NULL) {
				key = len ? dcr_strndup(s, len) : dcr_strdup("");
				FUZZ_CHECK(dcr_mp_get(v, key) == val);
				free(key);
			}
		}
		break;
	default:
		FUZZ_CHECK(!"unknown msgpack type");
	}
}

/* Parsed document -> bytes, which must equal [p, p+n). */
__attribute__((unused)) static void fuzz_mp_roundtrip(const dcr_mp_doc *doc, const void *p,
                                                      size_t n)
{
	dcr_buf out;
	dcr_mpw w;

	dcr_buf_init(&out);
	dcr_mpw_init(&w, &out);
	fuzz_mp_reencode(&w, dcr_mp_root(doc));
	if (out.len != n || memcmp(out.data, p, n) != 0) {
		fprintf(stderr, "fuzz: re-encoding differs (%zu bytes in, %zu out)\n", n, out.len);
		abort();
	}
	dcr_buf_release(&out);
}

/* A deterministic 64-bit hash of the input, to derive split points and
 * choices from the data itself (so a corpus file always replays the same
 * way). FNV-1a. */
__attribute__((unused)) static uint64_t fuzz_hash(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

#endif
