/* fuzz_frame.c: the protocol frame codec (proto/frame.c), as the daemon and
 * the clients see bytes from the peer.
 *
 * The input is read as a stream the way a connection is: 4-byte
 * big-endian length, then that many body bytes, repeated; a short tail is
 * an incomplete frame and ends the stream. Each body, and the whole input
 * taken as one body, goes to proto_frame_parse. Oracles for an accepted
 * body: it is a map; it re-encodes to the same bytes; rebuilding it with
 * proto_map (keys added in reverse order) gives the same bytes, which
 * checks the builder's canonical sort; proto_frame_wrap puts back the
 * header the stream had. The request and response fields every peer
 * reads (id, op, code, error, ok, args) are read with the typed getters,
 * and an error code name maps back to itself (proto_code_parse). dcrd's
 * pre-pass (proto_request_check) agrees with the parser: it accepts exactly
 * the accepted bodies of at most DCR_FRAME_REQUEST_OBJECTS_MAX values, and
 * its count of values is the number of nodes of the parsed document. */
#include "../../proto/proto.h"
#include "fuzz.h"

static void rebuild(const dcr_mpv *root, const uint8_t *body, size_t n)
{
	uint32_t count = dcr_mp_len(root), i;
	proto_map m;
	dcr_buf out;

	for (i = 0; i < count; i++) {
		const char *k;
		size_t kn;

		(void)dcr_mp_map_at(root, i, &k, &kn);
		if (kn > 0 && memchr(k, 0, kn) != NULL)
			return; /* proto_map takes C strings */
	}
	proto_map_init(&m);
	for (i = count; i-- > 0;) {
		const char *k;
		size_t kn;
		const dcr_mpv *v = dcr_mp_map_at(root, i, &k, &kn);
		char *key = kn ? dcr_strndup(k, kn) : dcr_strdup("");

		fuzz_mp_reencode(proto_map_key(&m, key), v);
		free(key);
	}
	dcr_buf_init(&out);
	proto_map_encode(&m, &out);
	FUZZ_CHECK(out.len == n && memcmp(out.data, body, n) == 0);
	dcr_buf_release(&out);
	proto_map_release(&m);
}

static void fields(const dcr_mpv *root)
{
	const char *s;
	size_t n;
	uint64_t id;
	bool ok;
	dcr_err err;

	(void)dcr_mp_get_u64(root, "id", &id, &err);
	(void)dcr_mp_bool(dcr_mp_get(root, "ok"), &ok);
	(void)dcr_mp_get_str(root, "op", &s, &n, &err);
	(void)dcr_mp_get_str(root, "error", &s, &n, &err);
	if (dcr_mp_get_str(root, "code", &s, &n, &err) == 0) {
		int code = proto_code_parse(s, n);

		FUZZ_CHECK(code == DCR_EPROTO || (code > DCR__ERR_BASE && code < DCR__ERR_END));
		if (code != DCR_EPROTO) {
			const char *name = dcr_errname(code);
			FUZZ_CHECK(strlen(name) == n && memcmp(name, s, n) == 0);
		}
	}
	if (dcr_mp_type(dcr_mp_get(root, "args")) == DCR_MP_MAP) {
		const dcr_mpv *args = dcr_mp_get(root, "args");
		uint8_t room[32];
		char *str = NULL;

		(void)dcr_mp_get_binn(args, "room", room, sizeof room, &err);
		if (dcr_mp_strdup(dcr_mp_get(args, "room"), &str) == 0) {
			FUZZ_CHECK(strlen(str) <= dcr_mp_len(dcr_mp_get(args, "room")));
			free(str);
		}
	}
}

/* Values of a parsed document, counted by walking it. */
static uint64_t count_values(const dcr_mpv *v)
{
	uint64_t k = 1;
	uint32_t i, len = dcr_mp_len(v);
	const char *key;
	size_t key_n;

	if (dcr_mp_type(v) == DCR_MP_ARRAY)
		for (i = 0; i < len; i++)
			k += count_values(dcr_mp_at(v, i));
	else if (dcr_mp_type(v) == DCR_MP_MAP)
		for (i = 0; i < len; i++)
			k += 1 + count_values(dcr_mp_map_at(v, i, &key, &key_n));
	return k;
}

static void one_body(const uint8_t *body, size_t n)
{
	dcr_mp_doc *doc = NULL;
	dcr_err err, err2;
	dcr_buf wrapped;
	uint64_t objs = 0;
	int rc, rc2;

	rc = proto_frame_parse(body, n, &doc, &err);
	rc2 = proto_request_check(body, n, &objs, &err2);
	if (rc != 0) {
		FUZZ_CHECK(doc == NULL && err.code == rc && err.msg[0] != '\0');
		FUZZ_CHECK(rc2 < 0 && err2.msg[0] != '\0');
		return;
	}
	if (rc2 == 0) {
		FUZZ_CHECK(objs == count_values(dcr_mp_root(doc)));
		FUZZ_CHECK(objs >= 1 && objs <= DCR_FRAME_REQUEST_OBJECTS_MAX);
	} else {
		FUZZ_CHECK(rc2 == DCR_ELIMIT && strstr(err2.msg, "values"));
		FUZZ_CHECK(count_values(dcr_mp_root(doc)) > DCR_FRAME_REQUEST_OBJECTS_MAX);
	}
	FUZZ_CHECK(dcr_mp_type(dcr_mp_root(doc)) == DCR_MP_MAP);
	fuzz_mp_roundtrip(doc, body, n);
	rebuild(dcr_mp_root(doc), body, n);
	fields(dcr_mp_root(doc));
	dcr_buf_init(&wrapped);
	proto_frame_wrap(&wrapped, body, n);
	FUZZ_CHECK(wrapped.len == n + PROTO_HDR_BYTES);
	FUZZ_CHECK(dcr_get_be32(wrapped.data) == n);
	FUZZ_CHECK(memcmp(wrapped.data + PROTO_HDR_BYTES, body, n) == 0);
	dcr_buf_release(&wrapped);
	dcr_mp_doc_free(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t at = 0;

	one_body(data, size);
	while (size - at >= PROTO_HDR_BYTES) {
		uint32_t len = dcr_get_be32(data + at);
		uint8_t *copy;

		at += PROTO_HDR_BYTES;
		if (len > DCR_FRAME_BYTES_MAX) {
			dcr_mp_doc *doc = NULL;
			dcr_err err;
			/* the daemon refuses on the header alone; parse must too */
			FUZZ_CHECK(proto_frame_parse(data + at, len, &doc, &err) == DCR_ELIMIT);
			break;
		}
		if (len > size - at)
			break; /* incomplete frame */
		/* an exact-size copy, so a read past the frame is caught */
		copy = dcr_malloc(len ? len : 1);
		if (len)
			memcpy(copy, data + at, len);
		one_body(copy, len);
		free(copy);
		at += len;
	}
	return 0;
}
