/* test_proto_frame.c: the wire codec shared by dcrd and its clients:
 * the canonical map builder orders keys bytewise (shorter first on a common
 * prefix) whatever the insertion order, its output is accepted by the
 * strict frame parser; frames are length-prefixed; non-maps, trailing
 * bytes, unsorted keys and oversize input are refused; error names map
 * back to codes. dcrd's pre-pass (proto_request_check) counts values
 * exactly, refuses a request of more than DCR_FRAME_REQUEST_OBJECTS_MAX
 * (the 4.2 MB map of arrays of small integers among them) before anything
 * is unpacked, and agrees with the parser on everything else; unpacking a
 * request of n values allocates at most proto_unpacked_bytes(n). */
#include <malloc.h>

#include "../../proto/proto.h"

#include "test.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static void test_map_order(void)
{
	proto_map m;
	dcr_buf out;
	dcr_mp_doc *d = NULL;
	dcr_err err;
	const char *k;
	size_t kn;
	uint64_t v;

	proto_map_init(&m);
	dcr_buf_init(&out);
	dcr_mpw_uint(proto_map_key(&m, "op"), 3);
	dcr_mpw_uint(proto_map_key(&m, "id"), 2);
	dcr_mpw_uint(proto_map_key(&m, "ok"), 4);
	dcr_mpw_uint(proto_map_key(&m, "args"), 1);
	dcr_mpw_uint(proto_map_key(&m, "o"), 0);
	proto_map_encode(&m, &out);
	proto_map_release(&m);
	CHECK(proto_frame_parse(out.data, out.len, &d, &err) == 0);
	if (d) {
		const dcr_mpv *r = dcr_mp_root(d);
		static const char *want[] = {"args", "id", "o", "ok", "op"};
		CHECK(dcr_mp_len(r) == 5);
		for (uint32_t i = 0; i < 5; i++) {
			const dcr_mpv *val = dcr_mp_map_at(r, i, &k, &kn);
			CHECK(kn == strlen(want[i]) && memcmp(k, want[i], kn) == 0);
			(void)val;
		}
		CHECK(dcr_mp_get_u64(r, "op", &v, &err) == 0 && v == 3);
	}
	dcr_mp_doc_free(d);
	dcr_buf_release(&out);

	/* empty map */
	proto_map_init(&m);
	dcr_buf_init(&out);
	proto_map_encode(&m, &out);
	CHECK(out.len == 1 && out.data[0] == 0x80);
	proto_map_release(&m);
	dcr_buf_release(&out);
}

static void test_request(void)
{
	proto_map m;
	dcr_buf args, frame;
	dcr_mp_doc *d = NULL;
	dcr_err err;
	uint64_t id;
	const char *s;
	size_t n;

	proto_map_init(&m);
	dcr_buf_init(&args);
	dcr_buf_init(&frame);
	dcr_mpw_str(proto_map_key(&m, "room"), "00112233445566778899aabbccddeeff");
	dcr_mpw_uint(proto_map_key(&m, "from"), 0);
	proto_map_encode(&m, &args);
	proto_map_release(&m);
	proto_request(&frame, 42, "events", args.data, args.len);
	CHECK(frame.len == args.len + PROTO_HDR_BYTES + 1 + 5 + 3 + 1 + 3 + 7);
	CHECK(dcr_get_be32(frame.data) == frame.len - PROTO_HDR_BYTES);
	CHECK(proto_frame_parse(frame.data + 4, frame.len - 4, &d, &err) == 0);
	if (d) {
		const dcr_mpv *r = dcr_mp_root(d);
		CHECK(dcr_mp_get_u64(r, "id", &id, &err) == 0 && id == 42);
		CHECK(dcr_mp_get_str(r, "op", &s, &n, &err) == 0 && n == 6);
		CHECK(dcr_mp_type(dcr_mp_get(r, "args")) == DCR_MP_MAP);
	}
	dcr_mp_doc_free(d);
	dcr_buf_reset(&frame);
	proto_request(&frame, 1, "rooms", NULL, 0);
	d = NULL;
	CHECK(proto_frame_parse(frame.data + 4, frame.len - 4, &d, &err) == 0);
	CHECK(d && dcr_mp_get(dcr_mp_root(d), "args") == NULL);
	dcr_mp_doc_free(d);
	dcr_buf_release(&args);
	dcr_buf_release(&frame);
}

static void test_refusals(void)
{
	static const uint8_t not_map[] = {0x93, 1, 2, 3};
	static const uint8_t trailing[] = {0x80, 0x80};
	static const uint8_t unsorted[] = {0x82, 0xa1, 'b', 1, 0xa1, 'a', 2};
	static const uint8_t truncated[] = {0x81, 0xa1, 'a'};
	dcr_mp_doc *d = NULL;
	dcr_err err;
	uint8_t *big;

	CHECK(proto_frame_parse(not_map, sizeof not_map, &d, &err) == DCR_EPROTO && !d);
	CHECK(proto_frame_parse(trailing, sizeof trailing, &d, &err) == DCR_ETRAILING && !d);
	CHECK(proto_frame_parse(unsorted, sizeof unsorted, &d, &err) == DCR_ENONCANON && !d);
	CHECK(proto_frame_parse(truncated, sizeof truncated, &d, &err) == DCR_ETRUNC && !d);
	CHECK(proto_frame_parse(truncated, 0, &d, &err) < 0 && !d);
	big = dcr_calloc(DCR_FRAME_BYTES_MAX + 1, 1);
	CHECK(proto_frame_parse(big, DCR_FRAME_BYTES_MAX + 1, &d, &err) == DCR_ELIMIT && !d);
	free(big);
}

/* A request {args: {x: [1 x n]}, id: 1}: 7 + n values. */
static void request_of(dcr_buf *out, uint32_t n)
{
	dcr_mpw w;

	dcr_buf_reset(out);
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 2);
	dcr_mpw_str(&w, "args");
	dcr_mpw_map(&w, 1);
	dcr_mpw_str(&w, "x");
	dcr_mpw_array(&w, n);
	for (uint32_t i = 0; i < n; i++)
		dcr_mpw_uint(&w, 1);
	dcr_mpw_str(&w, "id");
	dcr_mpw_uint(&w, 1);
}

/* The attack of issue 9: a map of `keys` arrays of `per` small integers. */
static void map_of_int_arrays(dcr_buf *out, uint32_t keys, uint32_t per)
{
	dcr_mpw w;
	char k[16];

	dcr_buf_reset(out);
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, keys);
	for (uint32_t i = 0; i < keys; i++) {
		snprintf(k, sizeof k, "k%03u", i);
		dcr_mpw_str(&w, k);
		dcr_mpw_array(&w, per);
		for (uint32_t j = 0; j < per; j++)
			dcr_mpw_uint(&w, j % 128);
	}
}

static void test_request_check(void)
{
	static const uint8_t small[] = {0x81, 0xa1, 'a', 0x93, 1, 2, 3}; /* {a: [1,2,3]} */
	static const uint8_t empty_map[] = {0x80};
	static const uint8_t not_map[] = {0x93, 1, 2, 3};
	static const uint8_t trailing[] = {0x80, 0x80};
	static const uint8_t unsorted[] = {0x82, 0xa1, 'b', 1, 0xa1, 'a', 2};
	dcr_buf b;
	dcr_err err;
	uint64_t objs = 0;
	dcr_mp_doc *d = NULL;

	dcr_buf_init(&b);
	/* positive: exact counts */
	CHECK(proto_request_check(small, sizeof small, &objs, &err) == 0 && objs == 6);
	CHECK(proto_request_check(empty_map, 1, &objs, &err) == 0 && objs == 1);
	request_of(&b, DCR_FRAME_REQUEST_OBJECTS_MAX - 7);
	objs = 0;
	CHECK(proto_request_check(b.data, b.len, &objs, &err) == 0);
	CHECK(objs == DCR_FRAME_REQUEST_OBJECTS_MAX);
	CHECK(proto_frame_parse(b.data, b.len, &d, &err) == 0);
	dcr_mp_doc_free(d);
	d = NULL;
	/* negative: one value more; the parser itself (clients) still takes it */
	request_of(&b, DCR_FRAME_REQUEST_OBJECTS_MAX - 6);
	objs = 77;
	CHECK(proto_request_check(b.data, b.len, &objs, &err) == DCR_ELIMIT && objs == 77);
	CHECK(strstr(err.msg, "more than 4096 values") != NULL);
	CHECK(strstr(err.msg, "frame: offset ") != NULL);
	CHECK(proto_frame_parse(b.data, b.len, &d, &err) == 0);
	dcr_mp_doc_free(d);
	d = NULL;
	/* the 4.2 MB attack frame: refused at the value cap */
	map_of_int_arrays(&b, 42, 100000);
	CHECK(b.len > 4200000 && b.len <= DCR_FRAME_BYTES_MAX);
	CHECK(proto_request_check(b.data, b.len, &objs, &err) == DCR_ELIMIT);
	CHECK(strstr(err.msg, "more than 4096 values") != NULL);
	/* a small one of the same shape passes */
	map_of_int_arrays(&b, 4, 100);
	CHECK(proto_request_check(b.data, b.len, &objs, &err) == 0 && objs == 1 + 4 * 102);
	/* everything the parser refuses, the pre-pass refuses the same way */
	CHECK(proto_request_check(not_map, sizeof not_map, &objs, &err) == DCR_EPROTO);
	CHECK(proto_request_check(trailing, sizeof trailing, &objs, &err) == DCR_ETRAILING);
	CHECK(strstr(err.msg, "trailing") != NULL);
	CHECK(proto_request_check(unsorted, sizeof unsorted, &objs, &err) == DCR_ENONCANON);
	CHECK(proto_request_check(small, 0, &objs, &err) == DCR_ETRUNC);
	for (size_t k = 1; k < sizeof small; k++)
		CHECK(proto_request_check(small, k, &objs, &err) == DCR_ETRUNC);
	request_of(&b, 1000);
	for (size_t k = 1; k < b.len; k += 97)
		CHECK(proto_request_check(b.data, k, &objs, &err) == DCR_ETRUNC);
	/* nesting: accepted up to the depth limit, refused beyond, as the
	 * parser does */
	{
		bool took = false, refused = false;
		for (uint32_t depth = 1; depth < 24; depth++) {
			dcr_mpw w;
			int rc1, rc2;
			dcr_buf_reset(&b);
			dcr_mpw_init(&w, &b);
			dcr_mpw_map(&w, 1);
			dcr_mpw_str(&w, "a");
			for (uint32_t i = 0; i < depth; i++)
				dcr_mpw_array(&w, i + 1 < depth ? 1 : 0);
			rc1 = proto_request_check(b.data, b.len, &objs, &err);
			rc2 = proto_frame_parse(b.data, b.len, &d, &err);
			dcr_mp_doc_free(d);
			d = NULL;
			CHECK(rc1 == rc2);
			CHECK(rc1 == 0 || (rc1 == DCR_ELIMIT && strstr(err.msg, "nesting")));
			if (rc1 == 0) {
				CHECK(objs == 2 + depth);
				took = true;
			} else {
				refused = true;
			}
		}
		CHECK(took && refused);
	}
	dcr_buf_release(&b);
}

#ifndef UNDER_ASAN
static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}
#endif

/* Unpacking a request of n values (at the cap, in the shapes that cost
 * msgpack-c the most per value) allocates at most proto_unpacked_bytes(n):
 * the charge dcrd's frame budget takes for it. */
static void test_unpacked_bound(void)
{
#ifndef UNDER_ASAN
	const uint32_t n = DCR_FRAME_REQUEST_OBJECTS_MAX;
	dcr_buf b;
	dcr_mpw w;

	dcr_buf_init(&b);
	for (int shape = 0; shape < 5; shape++) {
		dcr_mp_doc *d = NULL;
		dcr_err err;
		uint64_t objs = 0;
		size_t before, after;
		uint32_t i;
		char k[16];

		dcr_buf_reset(&b);
		dcr_mpw_init(&w, &b);
		switch (shape) {
		case 0: /* {a: [0 x n-3]} */
			dcr_mpw_map(&w, 1);
			dcr_mpw_str(&w, "a");
			dcr_mpw_array(&w, n - 3);
			for (i = 0; i < n - 3; i++)
				dcr_mpw_uint(&w, 0);
			break;
		case 1: /* {a: [[0] x (n-3)/2]} */
			dcr_mpw_map(&w, 1);
			dcr_mpw_str(&w, "a");
			dcr_mpw_array(&w, (n - 3) / 2);
			for (i = 0; i < (n - 3) / 2; i++) {
				dcr_mpw_array(&w, 1);
				dcr_mpw_uint(&w, 0);
			}
			break;
		case 2: /* {a: [{"": 0} x (n-3)/3]} */
			dcr_mpw_map(&w, 1);
			dcr_mpw_str(&w, "a");
			dcr_mpw_array(&w, (n - 3) / 3);
			for (i = 0; i < (n - 3) / 3; i++) {
				dcr_mpw_map(&w, 1);
				dcr_mpw_str(&w, "");
				dcr_mpw_uint(&w, 0);
			}
			break;
		case 3: /* {k0000: 0, ...} */
			dcr_mpw_map(&w, (n - 1) / 2);
			for (i = 0; i < (n - 1) / 2; i++) {
				snprintf(k, sizeof k, "k%04u", i);
				dcr_mpw_str(&w, k);
				dcr_mpw_uint(&w, 0);
			}
			break;
		default: /* {a: [[] x n-3]}: empty arrays */
			dcr_mpw_map(&w, 1);
			dcr_mpw_str(&w, "a");
			dcr_mpw_array(&w, n - 3);
			for (i = 0; i < n - 3; i++)
				dcr_mpw_array(&w, 0);
			break;
		}
		CHECK(proto_request_check(b.data, b.len, &objs, &err) == 0);
		CHECK(objs > n - 4 && objs <= n);
		before = heap_in_use();
		CHECK(proto_frame_parse(b.data, b.len, &d, &err) == 0);
		after = heap_in_use();
		if (after - before > proto_unpacked_bytes(objs))
			fprintf(stderr, "shape %d: %zu bytes for %llu values, bound %llu\n", shape,
			        after - before, (unsigned long long)objs,
			        (unsigned long long)proto_unpacked_bytes(objs));
		CHECK(after > before && after - before <= proto_unpacked_bytes(objs));
		dcr_mp_doc_free(d);
	}
	dcr_buf_release(&b);
#endif
}

static void test_codes(void)
{
	for (int c = DCR__ERR_BASE + 1; c < DCR__ERR_END; c++) {
		const char *n = dcr_errname(c);
		CHECK(proto_code_parse(n, strlen(n)) == c);
	}
	CHECK(proto_code_parse("ENOPE", 5) == DCR_EPROTO);
	CHECK(proto_code_parse("ESIGX", 4) == DCR_ESIG);
}

int main(void)
{
	test_map_order();
	test_request();
	test_refusals();
	test_request_check();
	test_unpacked_bound();
	test_codes();
	return t_failures ? 1 : 0;
}
