/* frame.c: the wire codec shared by dcrd and its clients.
 *
 * A frame is a 4-byte big-endian length and one canonical msgpack map of
 * at most DCR_FRAME_BYTES_MAX bytes. Both sides parse frames with the same
 * validating reader (dcr_mp_parse), so a frame that one side accepts the
 * other would have written the same way. The map builder lets code add keys
 * in any order and still emit the canonical (sorted) form. dcrd checks a
 * request with proto_request_check before it unpacks it, so the memory of
 * an unpacked request is bounded by a count of values, not by 24 times its
 * bytes (msgpack-c's unpacker has no limits of its own). */
#include "proto.h"

struct proto__kv {
	char *key;
	dcr_buf val;
	dcr_mpw w;
};

static const dcr_mp_limits frame_limits = {
    .bytes_max = DCR_FRAME_BYTES_MAX,
    .depth_max = DCR_MP_DEPTH_MAX,
    .str_max = DCR_FRAME_BYTES_MAX,
    .elems_max = DCR_MP_ELEMS_MAX,
};

static const dcr_mp_limits request_limits = {
    .bytes_max = DCR_FRAME_BYTES_MAX,
    .depth_max = DCR_MP_DEPTH_MAX,
    .str_max = DCR_FRAME_BYTES_MAX,
    .elems_max = DCR_MP_ELEMS_MAX,
    .objs_max = DCR_FRAME_REQUEST_OBJECTS_MAX,
};

int proto_request_check(const void *p, size_t n, uint64_t *objs, dcr_err *err)
{
	uint64_t k = 0;
	int rc;

	if (n > DCR_FRAME_BYTES_MAX)
		return dcr_err_set(err, DCR_ELIMIT, "frame of %zu bytes exceeds %u", n,
		                   (unsigned)DCR_FRAME_BYTES_MAX);
	rc = dcr_mp_check_count(p, n, &request_limits, &k, err);
	if (rc < 0) {
		dcr_err_prefix(err, "frame");
		return rc;
	}
	/* fixmap, map16, map32 */
	if (!((*(const uint8_t *)p >= 0x80 && *(const uint8_t *)p <= 0x8f) ||
	      *(const uint8_t *)p == 0xde || *(const uint8_t *)p == 0xdf))
		return dcr_err_set(err, DCR_EPROTO, "frame: not a msgpack map");
	DCR_ASSERT(k >= 1 && k <= DCR_FRAME_REQUEST_OBJECTS_MAX);
	*objs = k;
	return 0;
}

uint64_t proto_unpacked_bytes(uint64_t objs)
{
	/* the dcr_mp_doc and msgpack-c's first zone chunk, then per value */
	return 16384 + objs * DCR_MP_UNPACKED_BYTES_PER_OBJECT;
}

int proto_frame_parse(const void *p, size_t n, dcr_mp_doc **out, dcr_err *err)
{
	dcr_mp_doc *d = NULL;
	int rc;

	*out = NULL;
	if (n > DCR_FRAME_BYTES_MAX)
		return dcr_err_set(err, DCR_ELIMIT, "frame of %zu bytes exceeds %u", n,
		                   (unsigned)DCR_FRAME_BYTES_MAX);
	rc = dcr_mp_parse(p, n, &frame_limits, &d, err);
	if (rc < 0) {
		dcr_err_prefix(err, "frame");
		return rc;
	}
	if (dcr_mp_type(dcr_mp_root(d)) != DCR_MP_MAP) {
		dcr_mp_doc_free(d);
		return dcr_err_set(err, DCR_EPROTO, "frame: not a msgpack map");
	}
	*out = d;
	return 0;
}

void proto_frame_wrap(dcr_buf *out, const void *body, size_t n)
{
	uint8_t hdr[PROTO_HDR_BYTES];

	DCR_ASSERT(n <= DCR_FRAME_BYTES_MAX);
	dcr_put_be32(hdr, (uint32_t)n);
	dcr_buf_append(out, hdr, sizeof hdr);
	dcr_buf_append(out, body, n);
}

void proto_map_init(proto_map *m)
{
	m->kv = NULL;
	m->n = m->cap = 0;
}

dcr_mpw *proto_map_key(proto_map *m, const char *key)
{
	struct proto__kv *kv;

	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 8;
		m->kv = dcr_realloc(m->kv, m->cap * sizeof *m->kv);
	}
	kv = dcr_calloc(1, sizeof *kv);
	kv->key = dcr_strdup(key);
	dcr_buf_init(&kv->val);
	dcr_mpw_init(&kv->w, &kv->val);
	m->kv[m->n++] = kv;
	return &kv->w;
}

/* Canonical key order: bytewise, a shorter key first on a common prefix. */
static int kv_cmp(const void *a, const void *b)
{
	const struct proto__kv *x = *(const struct proto__kv *const *)a;
	const struct proto__kv *y = *(const struct proto__kv *const *)b;
	size_t xn = strlen(x->key), yn = strlen(y->key);
	int c = memcmp(x->key, y->key, xn < yn ? xn : yn);

	if (c)
		return c;
	return xn < yn ? -1 : xn > yn;
}

void proto_map_encode(const proto_map *m, dcr_buf *out)
{
	struct proto__kv **sorted;
	dcr_mpw w;
	size_t i;

	sorted = dcr_malloc((m->n ? m->n : 1) * sizeof *sorted);
	if (m->n)
		memcpy(sorted, m->kv, m->n * sizeof *sorted);
	qsort(sorted, m->n, sizeof *sorted, kv_cmp);
	for (i = 1; i < m->n; i++)
		DCR_ASSERT(kv_cmp(&sorted[i - 1], &sorted[i]) < 0);
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, (uint32_t)m->n);
	for (i = 0; i < m->n; i++) {
		DCR_ASSERT(sorted[i]->val.len > 0);
		dcr_mpw_str(&w, sorted[i]->key);
		dcr_mpw_raw(&w, sorted[i]->val.data, sorted[i]->val.len);
	}
	free(sorted);
}

void proto_map_release(proto_map *m)
{
	size_t i;

	for (i = 0; i < m->n; i++) {
		free(m->kv[i]->key);
		dcr_buf_release(&m->kv[i]->val);
		free(m->kv[i]);
	}
	free(m->kv);
	proto_map_init(m);
}

void proto_request(dcr_buf *out, uint64_t id, const char *op, const void *args, size_t args_n)
{
	dcr_buf body;
	dcr_mpw w;

	dcr_buf_init(&body);
	dcr_mpw_init(&w, &body);
	/* keys in canonical order: args < id < op */
	dcr_mpw_map(&w, args ? 3 : 2);
	if (args) {
		dcr_mpw_str(&w, "args");
		dcr_mpw_raw(&w, args, args_n);
	}
	dcr_mpw_str(&w, "id");
	dcr_mpw_uint(&w, id);
	dcr_mpw_str(&w, "op");
	dcr_mpw_str(&w, op);
	proto_frame_wrap(out, body.data, body.len);
	dcr_buf_release(&body);
}

int proto_code_parse(const char *name, size_t n)
{
	int c;

	for (c = DCR__ERR_BASE + 1; c < DCR__ERR_END; c++) {
		const char *s = dcr_errname(c);
		if (strlen(s) == n && memcmp(s, name, n) == 0)
			return c;
	}
	return DCR_EPROTO;
}
