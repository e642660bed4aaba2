/* test_proto_frame.c: the wire codec shared by dcrd and its clients:
 * the canonical map builder orders keys bytewise (shorter first on a common
 * prefix) whatever the insertion order, its output is accepted by the
 * strict frame parser; frames are length-prefixed; non-maps, trailing
 * bytes, unsorted keys and oversize input are refused; error names map
 * back to codes. */
#include "../../proto/proto.h"

#include "test.h"

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
	test_codes();
	return t_failures ? 1 : 0;
}
