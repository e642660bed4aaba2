/* mp.c: canonical msgpack. Writing goes through msgpack-c's packer, which
 * already picks the shortest form of every integer and header. Reading
 * untrusted bytes happens in two steps: dcr_mp_check walks the bytes with
 * explicit limits (size, depth, string length, element count, values in
 * the whole document, which bound what unpacking allocates) and the
 * canonical-form rules, never allocating in proportion to a declared length;
 * only then msgpack-c unpacks the (now known good) bytes. Nodes handed out
 * (dcr_mpv) are msgpack_object pointers in disguise, so msgpack.h stays in
 * this file. */
#include <msgpack.h>

#include "base.h"

const dcr_mp_limits dcr_mp_limits_default = {
	.bytes_max = DCR_FRAME_BYTES_MAX,
	.depth_max = DCR_MP_DEPTH_MAX,
	.str_max = DCR_EVENT_BYTES_MAX,
	.elems_max = DCR_MP_ELEMS_MAX,
};

/* ---- writer ---- */

static int mpw_write(void *data, const char *buf, size_t len)
{
	dcr_buf_append((dcr_buf *)data, buf, len);
	return 0;
}

#define PK(w, call)                                                                     \
	do {                                                                            \
		msgpack_packer pk_;                                                     \
		msgpack_packer_init(&pk_, (w)->out, mpw_write);                         \
		call;                                                                   \
	} while (0)

void dcr_mpw_init(dcr_mpw *w, dcr_buf *out)
{
	w->out = out;
}

void dcr_mpw_map(dcr_mpw *w, uint32_t n)
{
	PK(w, msgpack_pack_map(&pk_, n));
}

void dcr_mpw_array(dcr_mpw *w, uint32_t n)
{
	PK(w, msgpack_pack_array(&pk_, n));
}

void dcr_mpw_str(dcr_mpw *w, const char *s)
{
	dcr_mpw_strn(w, s, strlen(s));
}

void dcr_mpw_strn(dcr_mpw *w, const char *s, size_t n)
{
	PK(w, (msgpack_pack_str(&pk_, n), msgpack_pack_str_body(&pk_, s, n)));
}

void dcr_mpw_bin(dcr_mpw *w, const void *p, size_t n)
{
	PK(w, (msgpack_pack_bin(&pk_, n), msgpack_pack_bin_body(&pk_, p, n)));
}

void dcr_mpw_uint(dcr_mpw *w, uint64_t v)
{
	PK(w, msgpack_pack_uint64(&pk_, v));
}

void dcr_mpw_int(dcr_mpw *w, int64_t v)
{
	PK(w, msgpack_pack_int64(&pk_, v));
}

void dcr_mpw_double(dcr_mpw *w, double v)
{
	PK(w, msgpack_pack_double(&pk_, v));
}

void dcr_mpw_bool(dcr_mpw *w, bool v)
{
	PK(w, (v ? msgpack_pack_true(&pk_) : msgpack_pack_false(&pk_)));
}

void dcr_mpw_nil(dcr_mpw *w)
{
	PK(w, msgpack_pack_nil(&pk_));
}

void dcr_mpw_raw(dcr_mpw *w, const void *p, size_t n)
{
	dcr_buf_append(w->out, p, n);
}

/* ---- checker ---- */

typedef struct chk {
	const uint8_t *p;
	size_t n, off;
	uint64_t objs; /* values seen so far */
	const dcr_mp_limits *lim;
	dcr_err *err;
} chk;

static int need(chk *c, size_t k)
{
	if (c->n - c->off < k)
		return dcr_err_set(c->err, DCR_ETRUNC, "offset %zu: truncated: %zu more bytes needed, %zu left",
				   c->off, k, c->n - c->off);
	return 0;
}

static uint64_t rd(chk *c, size_t k)
{
	uint64_t v = 0;
	for (size_t i = 0; i < k; i++)
		v = v << 8 | c->p[c->off + i];
	c->off += k;
	return v;
}

static int noncanon(chk *c, size_t at, const char *what)
{
	return dcr_err_set(c->err, DCR_ENONCANON, "offset %zu: non-canonical encoding: %s", at,
			   what);
}

static bool utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t b = s[i];
		if (b < 0x80) {
			i++;
			continue;
		}
		size_t k;
		uint32_t cp;
		if ((b & 0xe0) == 0xc0) {
			k = 1;
			cp = b & 0x1f;
		} else if ((b & 0xf0) == 0xe0) {
			k = 2;
			cp = b & 0x0f;
		} else if ((b & 0xf8) == 0xf0) {
			k = 3;
			cp = b & 0x07;
		} else {
			return false;
		}
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

static int check_value(chk *c, uint32_t depth);

static int check_strbody(chk *c, size_t at, uint64_t len, bool is_str, size_t hdr_min_len)
{
	int rc;
	if (len > c->lim->str_max)
		return dcr_err_set(c->err, DCR_ELIMIT,
				   "offset %zu: %s of %llu bytes exceeds the limit of %zu", at,
				   is_str ? "string" : "binary", (unsigned long long)len,
				   c->lim->str_max);
	if ((rc = need(c, (size_t)len)) != 0)
		return rc;
	if (len < hdr_min_len)
		return noncanon(c, at, "length header longer than needed");
	if (is_str && !utf8_valid(c->p + c->off, (size_t)len))
		return dcr_err_set(c->err, DCR_EFORMAT, "offset %zu: string is not valid UTF-8", at);
	c->off += (size_t)len;
	return 0;
}

/* Untrusted bytes shown in a message: printable ASCII only, truncated. */
static void printable(const uint8_t *p, size_t n, char *out, size_t cap)
{
	size_t k = n < cap - 1 ? n : cap - 1;
	for (size_t i = 0; i < k; i++)
		out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
	out[k] = '\0';
}

static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	int r = memcmp(a, b, an < bn ? an : bn);
	if (r != 0)
		return r;
	return an < bn ? -1 : an > bn;
}

/* Reads a str header at the current offset for a map key; returns its
 * body position without consuming more than the header. */
static int check_container(chk *c, size_t at, uint64_t count, bool is_map, size_t hdr_min,
			   uint32_t depth)
{
	int rc;
	if (depth + 1 > c->lim->depth_max)
		return dcr_err_set(c->err, DCR_ELIMIT,
				   "offset %zu: nesting deeper than the limit of %u", at,
				   c->lim->depth_max);
	if (count > c->lim->elems_max)
		return dcr_err_set(c->err, DCR_ELIMIT,
				   "offset %zu: %s of %llu entries exceeds the limit of %u", at,
				   is_map ? "map" : "array", (unsigned long long)count,
				   c->lim->elems_max);
	/* Every entry takes at least one byte (two for a map pair): a
	 * declared count the remaining bytes cannot hold is truncation. */
	if (count * (is_map ? 2 : 1) > c->n - c->off)
		return dcr_err_set(c->err, DCR_ETRUNC,
				   "offset %zu: %s declares %llu entries but only %zu bytes follow",
				   at, is_map ? "map" : "array", (unsigned long long)count,
				   c->n - c->off);
	if (count < hdr_min)
		return noncanon(c, at, "count header longer than needed");
	const uint8_t *prev = NULL;
	size_t prev_n = 0;
	for (uint64_t i = 0; i < count; i++) {
		if (is_map) {
			size_t kat = c->off;
			if ((rc = need(c, 1)) != 0)
				return rc;
			uint8_t b = c->p[c->off];
			if (!((b >= 0xa0 && b <= 0xbf) || b == 0xd9 || b == 0xda || b == 0xdb))
				return dcr_err_set(c->err, DCR_EFORMAT,
						   "offset %zu: map key is not a string", kat);
			if ((rc = check_value(c, depth + 1)) != 0)
				return rc;
			/* Locate the key body: skip the header we just validated. */
			size_t hl = b <= 0xbf ? 1 : b == 0xd9 ? 2 : b == 0xda ? 3 : 5;
			const uint8_t *kp = c->p + kat + hl;
			size_t kn = c->off - kat - hl;
			if (prev && key_cmp(prev, prev_n, kp, kn) >= 0) {
				char ka[41], kb[41];
				printable(kp, kn, ka, sizeof ka);
				printable(prev, prev_n, kb, sizeof kb);
				return dcr_err_set(c->err, DCR_ENONCANON,
						   "offset %zu: map keys not in strictly increasing order "
						   "(\"%s\" after \"%s\")",
						   kat, ka, kb);
			}
			prev = kp;
			prev_n = kn;
		}
		if ((rc = check_value(c, depth + 1)) != 0)
			return rc;
	}
	return 0;
}

static int check_value(chk *c, uint32_t depth)
{
	int rc;
	size_t at = c->off;
	if ((rc = need(c, 1)) != 0)
		return rc;
	/* Counted before the value is read, so a document of tiny values
	 * stops at the cap, not at its end. */
	if (c->lim->objs_max && ++c->objs > c->lim->objs_max)
		return dcr_err_set(c->err, DCR_ELIMIT,
				   "offset %zu: more than %u values in one document (the limit)", at,
				   c->lim->objs_max);
	if (!c->lim->objs_max)
		c->objs++;
	uint8_t b = c->p[c->off++];
	if (b <= 0x7f || b >= 0xe0)
		return 0; /* fixints */
	if (b >= 0x80 && b <= 0x8f)
		return check_container(c, at, b & 0x0f, true, 0, depth);
	if (b >= 0x90 && b <= 0x9f)
		return check_container(c, at, b & 0x0f, false, 0, depth);
	if (b >= 0xa0 && b <= 0xbf)
		return check_strbody(c, at, b & 0x1f, true, 0);
	switch (b) {
	case 0xc0:
	case 0xc2:
	case 0xc3:
		return 0;
	case 0xc4:
	case 0xc5:
	case 0xc6: {
		size_t k = b == 0xc4 ? 1 : b == 0xc5 ? 2 : 4;
		if ((rc = need(c, k)) != 0)
			return rc;
		uint64_t len = rd(c, k);
		size_t min = b == 0xc4 ? 0 : b == 0xc5 ? 256 : 65536;
		return check_strbody(c, at, len, false, min);
	}
	case 0xca:
		return dcr_err_set(c->err, DCR_ENONCANON, "offset %zu: float32 (use float64)", at);
	case 0xcb:
		if ((rc = need(c, 8)) != 0)
			return rc;
		c->off += 8;
		return 0;
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf: {
		size_t k = (size_t)1 << (b - 0xcc);
		if ((rc = need(c, k)) != 0)
			return rc;
		uint64_t v = rd(c, k);
		uint64_t min = b == 0xcc ? 128 : b == 0xcd ? 256 : b == 0xce ? 65536 : 1ull << 32;
		if (v < min)
			return noncanon(c, at, "integer in a longer form than needed");
		return 0;
	}
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3: {
		size_t k = (size_t)1 << (b - 0xd0);
		if ((rc = need(c, k)) != 0)
			return rc;
		uint64_t u = rd(c, k);
		int64_t v = k == 1 ? (int8_t)u : k == 2 ? (int16_t)u : k == 4 ? (int32_t)u : (int64_t)u;
		int64_t lim = b == 0xd0 ? -32 : b == 0xd1 ? -128 : b == 0xd2 ? -32768 : -2147483648LL;
		if (v >= 0)
			return noncanon(c, at, "non-negative integer in a signed form");
		if (v >= lim)
			return noncanon(c, at, "integer in a longer form than needed");
		return 0;
	}
	case 0xd9:
	case 0xda:
	case 0xdb: {
		size_t k = b == 0xd9 ? 1 : b == 0xda ? 2 : 4;
		if ((rc = need(c, k)) != 0)
			return rc;
		uint64_t len = rd(c, k);
		size_t min = b == 0xd9 ? 32 : b == 0xda ? 256 : 65536;
		return check_strbody(c, at, len, true, min);
	}
	case 0xdc:
	case 0xdd:
	case 0xde:
	case 0xdf: {
		size_t k = (b == 0xdc || b == 0xde) ? 2 : 4;
		if ((rc = need(c, k)) != 0)
			return rc;
		uint64_t n = rd(c, k);
		size_t min = k == 2 ? 16 : 65536;
		return check_container(c, at, n, b >= 0xde, min, depth);
	}
	default:
		return dcr_err_set(c->err, DCR_EFORMAT, "offset %zu: unsupported msgpack type 0x%02x",
				   at, b);
	}
}

int dcr_mp_check(const void *p, size_t n, const dcr_mp_limits *lim, dcr_err *err)
{
	uint64_t objs;

	return dcr_mp_check_count(p, n, lim, &objs, err);
}

int dcr_mp_check_count(const void *p, size_t n, const dcr_mp_limits *lim, uint64_t *objs,
		       dcr_err *err)
{
	if (lim == NULL)
		lim = &dcr_mp_limits_default;
	if (n > lim->bytes_max)
		return dcr_err_set(err, DCR_ELIMIT, "input of %zu bytes exceeds the limit of %zu", n,
				   lim->bytes_max);
	chk c = {.p = p, .n = n, .off = 0, .objs = 0, .lim = lim, .err = err};
	int rc = check_value(&c, 0);
	if (rc != 0)
		return rc;
	if (c.off != n)
		return dcr_err_set(err, DCR_ETRAILING, "offset %zu: %zu trailing bytes after the value",
				   c.off, n - c.off);
	*objs = c.objs;
	return 0;
}

/* ---- parsed documents ---- */

struct dcr_mp_doc {
	msgpack_unpacked u;
};

#define OBJ(v) ((const msgpack_object *)(const void *)(v))
#define MPV(o) ((const dcr_mpv *)(const void *)(o))

int dcr_mp_parse(const void *p, size_t n, const dcr_mp_limits *lim, dcr_mp_doc **out,
		 dcr_err *err)
{
	int rc = dcr_mp_check(p, n, lim, err);
	if (rc != 0)
		return rc;
	/* Out of memory here is the peer's doing as often as ours (a large
	 * document): an error for this input, never an abort. */
	dcr_mp_doc *d = calloc(1, sizeof *d);
	if (d == NULL)
		return dcr_err_set(err, -ENOMEM, "out of memory unpacking %zu bytes of msgpack", n);
	msgpack_unpacked_init(&d->u);
	size_t off = 0;
	msgpack_unpack_return r = msgpack_unpack_next(&d->u, p, n, &off);
	if (r == MSGPACK_UNPACK_NOMEM_ERROR) {
		msgpack_unpacked_destroy(&d->u);
		free(d);
		return dcr_err_set(err, -ENOMEM, "out of memory unpacking %zu bytes of msgpack", n);
	}
	if (r != MSGPACK_UNPACK_SUCCESS || off != n) {
		/* Cannot happen after dcr_mp_check; treat as an internal error. */
		msgpack_unpacked_destroy(&d->u);
		free(d);
		return dcr_err_set(err, DCR_EINTERNAL, "msgpack unpack failed after validation");
	}
	*out = d;
	return 0;
}

void dcr_mp_doc_free(dcr_mp_doc *d)
{
	if (d == NULL)
		return;
	msgpack_unpacked_destroy(&d->u);
	free(d);
}

const dcr_mpv *dcr_mp_root(const dcr_mp_doc *d)
{
	return MPV(&d->u.data);
}

enum dcr_mp_type dcr_mp_type(const dcr_mpv *v)
{
	if (v == NULL) /* an absent entry (dcr_mp_get, dcr_mp_at) */
		return DCR_MP_NIL;
	switch (OBJ(v)->type) {
	case MSGPACK_OBJECT_NIL:
		return DCR_MP_NIL;
	case MSGPACK_OBJECT_BOOLEAN:
		return DCR_MP_BOOL;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return DCR_MP_UINT;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return DCR_MP_INT;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return DCR_MP_FLOAT;
	case MSGPACK_OBJECT_STR:
		return DCR_MP_STR;
	case MSGPACK_OBJECT_BIN:
		return DCR_MP_BIN;
	case MSGPACK_OBJECT_ARRAY:
		return DCR_MP_ARRAY;
	case MSGPACK_OBJECT_MAP:
		return DCR_MP_MAP;
	default:
		return DCR_MP_NIL; /* ext: rejected by the checker */
	}
}

const dcr_mpv *dcr_mp_get(const dcr_mpv *v, const char *key)
{
	if (v == NULL || OBJ(v)->type != MSGPACK_OBJECT_MAP)
		return NULL;
	size_t kn = strlen(key);
	const msgpack_object_map *m = &OBJ(v)->via.map;
	for (uint32_t i = 0; i < m->size; i++) {
		const msgpack_object *k = &m->ptr[i].key;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kn &&
		    (kn == 0 || memcmp(k->via.str.ptr, key, kn) == 0))
			return MPV(&m->ptr[i].val);
	}
	return NULL;
}

uint32_t dcr_mp_len(const dcr_mpv *v)
{
	if (v == NULL)
		return 0;
	switch (OBJ(v)->type) {
	case MSGPACK_OBJECT_ARRAY:
		return OBJ(v)->via.array.size;
	case MSGPACK_OBJECT_MAP:
		return OBJ(v)->via.map.size;
	case MSGPACK_OBJECT_STR:
		return OBJ(v)->via.str.size;
	case MSGPACK_OBJECT_BIN:
		return OBJ(v)->via.bin.size;
	default:
		return 0;
	}
}

const dcr_mpv *dcr_mp_at(const dcr_mpv *v, uint32_t i)
{
	if (v == NULL || OBJ(v)->type != MSGPACK_OBJECT_ARRAY || i >= OBJ(v)->via.array.size)
		return NULL;
	return MPV(&OBJ(v)->via.array.ptr[i]);
}

/* msgpack-c leaves the pointer of an empty str/bin NULL; callers get a
 * valid pointer so memcmp/memchr/memcpy of 0 bytes stay defined. */
static const char *nonnull(const char *p)
{
	return p ? p : "";
}

const dcr_mpv *dcr_mp_map_at(const dcr_mpv *v, uint32_t i, const char **key, size_t *key_n)
{
	if (v == NULL || OBJ(v)->type != MSGPACK_OBJECT_MAP || i >= OBJ(v)->via.map.size)
		return NULL;
	const msgpack_object_kv *kv = &OBJ(v)->via.map.ptr[i];
	*key = nonnull(kv->key.via.str.ptr);
	*key_n = kv->key.via.str.size;
	return MPV(&kv->val);
}

int dcr_mp_u64(const dcr_mpv *v, uint64_t *out)
{
	if (v == NULL || OBJ(v)->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return DCR_EFORMAT;
	*out = OBJ(v)->via.u64;
	return 0;
}

int dcr_mp_i64(const dcr_mpv *v, int64_t *out)
{
	if (v == NULL)
		return DCR_EFORMAT;
	if (OBJ(v)->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*out = OBJ(v)->via.i64;
		return 0;
	}
	if (OBJ(v)->type == MSGPACK_OBJECT_POSITIVE_INTEGER && OBJ(v)->via.u64 <= INT64_MAX) {
		*out = (int64_t)OBJ(v)->via.u64;
		return 0;
	}
	return DCR_EFORMAT;
}

int dcr_mp_f64(const dcr_mpv *v, double *out)
{
	if (v == NULL)
		return DCR_EFORMAT;
	switch (OBJ(v)->type) {
	case MSGPACK_OBJECT_FLOAT64:
	case MSGPACK_OBJECT_FLOAT32:
		*out = OBJ(v)->via.f64;
		return 0;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		*out = (double)OBJ(v)->via.u64;
		return 0;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		*out = (double)OBJ(v)->via.i64;
		return 0;
	default:
		return DCR_EFORMAT;
	}
}

int dcr_mp_bool(const dcr_mpv *v, bool *out)
{
	if (v == NULL || OBJ(v)->type != MSGPACK_OBJECT_BOOLEAN)
		return DCR_EFORMAT;
	*out = OBJ(v)->via.boolean;
	return 0;
}

int dcr_mp_str(const dcr_mpv *v, const char **p, size_t *n)
{
	if (v == NULL || OBJ(v)->type != MSGPACK_OBJECT_STR)
		return DCR_EFORMAT;
	*p = nonnull(OBJ(v)->via.str.ptr);
	*n = OBJ(v)->via.str.size;
	return 0;
}

int dcr_mp_bin(const dcr_mpv *v, const uint8_t **p, size_t *n)
{
	if (v == NULL || OBJ(v)->type != MSGPACK_OBJECT_BIN)
		return DCR_EFORMAT;
	*p = (const uint8_t *)nonnull(OBJ(v)->via.bin.ptr);
	*n = OBJ(v)->via.bin.size;
	return 0;
}

int dcr_mp_strdup(const dcr_mpv *v, char **out)
{
	const char *p = NULL;
	size_t n = 0;
	int rc = dcr_mp_str(v, &p, &n);
	if (rc != 0)
		return rc;
	if (memchr(p, '\0', n) != NULL)
		return DCR_EFORMAT;
	*out = dcr_strndup(p, n);
	return 0;
}

static int field_err(dcr_err *err, const dcr_mpv *v, const char *key, const char *want)
{
	if (v == NULL)
		return dcr_err_set(err, DCR_EFORMAT, "missing field \"%s\"", key);
	return dcr_err_set(err, DCR_EFORMAT, "field \"%s\" is not %s", key, want);
}

int dcr_mp_get_u64(const dcr_mpv *m, const char *key, uint64_t *out, dcr_err *err)
{
	const dcr_mpv *v = dcr_mp_get(m, key);
	if (dcr_mp_u64(v, out) != 0)
		return field_err(err, v, key, "an unsigned integer");
	return 0;
}

int dcr_mp_get_str(const dcr_mpv *m, const char *key, const char **p, size_t *n, dcr_err *err)
{
	const dcr_mpv *v = dcr_mp_get(m, key);
	if (dcr_mp_str(v, p, n) != 0)
		return field_err(err, v, key, "a string");
	return 0;
}

int dcr_mp_get_bin(const dcr_mpv *m, const char *key, const uint8_t **p, size_t *n,
		   dcr_err *err)
{
	const dcr_mpv *v = dcr_mp_get(m, key);
	if (dcr_mp_bin(v, p, n) != 0)
		return field_err(err, v, key, "binary");
	return 0;
}

int dcr_mp_get_binn(const dcr_mpv *m, const char *key, uint8_t *out, size_t n, dcr_err *err)
{
	const uint8_t *p = NULL;
	size_t len = 0;
	int rc = dcr_mp_get_bin(m, key, &p, &len, err);
	if (rc != 0)
		return rc;
	if (len != n)
		return dcr_err_set(err, DCR_EFORMAT, "field \"%s\" has %zu bytes, expected %zu", key,
				   len, n);
	memcpy(out, p, n);
	return 0;
}
