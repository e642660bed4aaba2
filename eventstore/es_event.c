/* es_event.c: event envelopes and checkpoints: building, strict decoding of
 * untrusted bytes, signatures.
 *
 * An entry is envelope || 64-byte Ed25519 signature. The envelope is one
 * canonical msgpack map with exactly the keys actor, body, room, seq, ts,
 * type, v (sorted, as canonical form requires). Decoding never trusts a
 * declared length: dcr_mp_parse checks the whole envelope against
 * dcr_mp_limits_default (size, depth, string length, element count) and
 * canonical form before anything is unpacked, and every byte must be
 * consumed. Signatures cover DCR_DOMAIN_EVENT || 0x00 || the envelope bytes
 * as stored; nothing is re-encoded to verify.
 *
 * A checkpoint is signed over DCR_DOMAIN_CHECKPOINT || 0x00 || its body
 * {room, root, size, ts}. Checkpoint decoding enforces canonical form, so
 * re-encoding the decoded fields reproduces the signed bytes exactly. */
#include <inttypes.h>

#include "es_int.h"

static const char *type_name(const dcr_mpv *v)
{
	if (!v)
		return "nothing";
	switch (dcr_mp_type(v)) {
	case DCR_MP_NIL:
		return "nil";
	case DCR_MP_BOOL:
		return "a boolean";
	case DCR_MP_UINT:
		return "an unsigned integer";
	case DCR_MP_INT:
		return "a negative integer";
	case DCR_MP_FLOAT:
		return "a float";
	case DCR_MP_STR:
		return "a string";
	case DCR_MP_BIN:
		return "binary";
	case DCR_MP_ARRAY:
		return "an array";
	case DCR_MP_MAP:
		return "a map";
	}
	return "an unknown type";
}

/* Up to 40 bytes of untrusted text for an error message, with anything but
 * printable ASCII shown as '?' (no control characters reach a terminal or
 * a log line). */
static const char *printable(const char *p, size_t n, char out[41])
{
	size_t i;

	for (i = 0; i < n && i < 40; i++)
		out[i] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?';
	out[i] = '\0';
	return out;
}

/* Checks that map m has exactly the fields in names[] (sorted bytewise, as
 * canonical maps are): names the first unknown or missing field. */
static int check_fields(const dcr_mpv *m, const char *what, const char *const *names, size_t nnames,
                        dcr_err *err)
{
	uint32_t n = dcr_mp_len(m), i = 0;
	char shown[41];
	size_t j = 0;

	while (i < n || j < nnames) {
		const char *key = NULL;
		size_t key_n = 0;
		int c;

		if (i < n)
			dcr_mp_map_at(m, i, &key, &key_n);
		if (i >= n) {
			c = 1; /* names[j] is missing */
		} else if (j >= nnames) {
			c = -1; /* key is unknown */
		} else {
			size_t name_n = strlen(names[j]);
			size_t min = key_n < name_n ? key_n : name_n;

			c = memcmp(key, names[j], min);
			if (c == 0)
				c = key_n < name_n ? -1 : key_n > name_n ? 1 : 0;
		}
		if (c < 0)
			return dcr_err_set(err, DCR_EFORMAT, "%s: unknown field '%s'", what,
			                   printable(key, key_n, shown));
		if (c > 0)
			return dcr_err_set(err, DCR_EFORMAT, "%s: missing field '%s'", what,
			                   names[j]);
		i++;
		j++;
	}
	return 0;
}

static int get_uint(const dcr_mpv *m, const char *what, const char *key, uint64_t *out,
                    dcr_err *err)
{
	const dcr_mpv *v = dcr_mp_get(m, key);

	if (dcr_mp_type(v) != DCR_MP_UINT || dcr_mp_u64(v, out) != 0)
		return dcr_err_set(err, DCR_EFORMAT,
		                   "%s: field '%s' must be an unsigned integer, got %s", what, key,
		                   type_name(v));
	return 0;
}

static int get_bin_exact(const dcr_mpv *m, const char *what, const char *key, uint8_t *out,
                         size_t want, dcr_err *err)
{
	const dcr_mpv *v = dcr_mp_get(m, key);
	const uint8_t *p;
	size_t n;

	if (dcr_mp_type(v) != DCR_MP_BIN || dcr_mp_bin(v, &p, &n) != 0)
		return dcr_err_set(err, DCR_EFORMAT, "%s: field '%s' must be binary, got %s", what,
		                   key, type_name(v));
	if (n != want)
		return dcr_err_set(err, DCR_EFORMAT, "%s: field '%s' must be %zu bytes, got %zu",
		                   what, key, want, n);
	memcpy(out, p, want);
	return 0;
}

static int room_from_str(const char *p, size_t n, uint8_t room[ES_ROOM_ID_BYTES])
{
	if (n != 2 * ES_ROOM_ID_BYTES)
		return DCR_EFORMAT;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return DCR_EFORMAT;
	return dcr_hex_decode(p, n, room, ES_ROOM_ID_BYTES) == 0 ? 0 : DCR_EFORMAT;
}

static int get_room(const dcr_mpv *m, const char *what, uint8_t room[ES_ROOM_ID_BYTES],
                    dcr_err *err)
{
	const dcr_mpv *v = dcr_mp_get(m, "room");
	char shown[41];
	const char *p;
	size_t n;

	if (dcr_mp_type(v) != DCR_MP_STR || dcr_mp_str(v, &p, &n) != 0)
		return dcr_err_set(err, DCR_EFORMAT, "%s: field 'room' must be a string, got %s",
		                   what, type_name(v));
	if (room_from_str(p, n, room) != 0)
		return dcr_err_set(err, DCR_EFORMAT,
		                   "%s: field 'room' must be 32 lowercase hex characters, got %zu "
		                   "bytes '%s'",
		                   what, n, printable(p, n, shown));
	return 0;
}

/* type: 1..ES_TYPE_BYTES_MAX-1 characters of [a-z._]. */
static int check_type(const char *p, size_t n, const char *what, dcr_err *err)
{
	if (n == 0 || n >= ES_TYPE_BYTES_MAX)
		return dcr_err_set(err, DCR_EFORMAT,
		                   "%s: field 'type' must be 1 to %d characters, got %zu", what,
		                   ES_TYPE_BYTES_MAX - 1, n);
	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (!((c >= 'a' && c <= 'z') || c == '.' || c == '_'))
			return dcr_err_set(err, DCR_EFORMAT,
			                   "%s: field 'type': character %zu (0x%02x) is not one "
			                   "of [a-z._]",
			                   what, i, (unsigned)(uint8_t)c);
	}
	return 0;
}

bool es_key_is_weak(const uint8_t pub[DCR_ED25519_PUB_BYTES])
{
	return dcr_pub_is_weak(pub);
}

/* ---- room ids ------------------------------------------------------------ */

void es_room_new(uint8_t room[ES_ROOM_ID_BYTES])
{
	dcr_random(room, ES_ROOM_ID_BYTES);
}

int es_room_parse(const char *hex, uint8_t room[ES_ROOM_ID_BYTES])
{
	if (!hex)
		return DCR_EFORMAT;
	return room_from_str(hex, strnlen(hex, 2 * ES_ROOM_ID_BYTES + 1), room);
}

void es_room_format(const uint8_t room[ES_ROOM_ID_BYTES], char hex[ES_ROOM_HEX_BYTES])
{
	dcr_hex_encode(room, ES_ROOM_ID_BYTES, hex);
}

/* ---- envelopes ------------------------------------------------------------ */

static const char *const env_fields[] = {"actor", "body", "room", "seq", "ts", "type", "v"};

/* The msgpack limits with the whole-input cap of one envelope. */
static dcr_mp_limits env_limits(void)
{
	dcr_mp_limits lim = dcr_mp_limits_default;

	lim.bytes_max = DCR_EVENT_BYTES_MAX;
	lim.objs_max = DCR_EVENT_OBJECTS_MAX; /* counted before unpacking */
	if (lim.str_max > DCR_EVENT_BYTES_MAX)
		lim.str_max = DCR_EVENT_BYTES_MAX;
	return lim;
}

int es_event_build(const dcr_key *k, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t seq,
                   uint64_t ts_ms, const char *type, const void *body_mp, size_t body_n,
                   dcr_buf *out, dcr_err *err)
{
	uint8_t pub[DCR_ED25519_PUB_BYTES], sig[DCR_ED25519_SIG_BYTES];
	char room_hex[ES_ROOM_HEX_BYTES];
	size_t start = out->len, env_n;
	dcr_mp_limits lim;
	uint8_t first;
	dcr_mpw w;
	int rc;

	rc = check_type(type, strlen(type), "event", err);
	if (rc != 0)
		goto out;
	lim = env_limits();
	rc = dcr_mp_check(body_mp, body_n, &lim, err);
	if (rc != 0) {
		dcr_err_prefix(err, "event body");
		goto out;
	}
	first = *(const uint8_t *)body_mp; /* fixmap, map16 or map32 */
	if (!((first >= 0x80 && first <= 0x8f) || first == 0xde || first == 0xdf)) {
		rc = dcr_err_set(err, DCR_EFORMAT, "event body must be a map (first byte 0x%02x)",
		                 (unsigned)first);
		goto out;
	}
	dcr_key_public(k, pub);
	es_room_format(room, room_hex);
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 7);
	dcr_mpw_str(&w, "actor");
	dcr_mpw_bin(&w, pub, sizeof(pub));
	dcr_mpw_str(&w, "body");
	dcr_mpw_raw(&w, body_mp, body_n);
	dcr_mpw_str(&w, "room");
	dcr_mpw_str(&w, room_hex);
	dcr_mpw_str(&w, "seq");
	dcr_mpw_uint(&w, seq);
	dcr_mpw_str(&w, "ts");
	dcr_mpw_uint(&w, ts_ms);
	dcr_mpw_str(&w, "type");
	dcr_mpw_str(&w, type);
	dcr_mpw_str(&w, "v");
	dcr_mpw_uint(&w, ES_EVENT_VERSION);
	env_n = out->len - start;
	if (env_n > DCR_EVENT_BYTES_MAX) {
		rc = dcr_err_set(err, DCR_ELIMIT, "event of %zu bytes exceeds the limit of %u",
		                 env_n, (unsigned)DCR_EVENT_BYTES_MAX);
		goto out;
	}
	rc = dcr_sign(k, DCR_DOMAIN_EVENT, out->data + start, env_n, sig);
	if (rc != 0) {
		rc = dcr_err_set(err, rc, "signing the event failed");
		goto out;
	}
	dcr_buf_append(out, sig, sizeof(sig));
out:
	if (rc != 0)
		out->len = start;
	return rc;
}

int es_event_decode(const void *entry, size_t n, es_event *ev, dcr_err *err)
{
	const char *what = "envelope";
	dcr_mp_limits lim;
	const dcr_mpv *root, *v;
	const uint8_t *bytes = entry;
	const char *p;
	size_t env_n, len;
	uint64_t ver;
	int rc;

	memset(ev, 0, sizeof(*ev));
	if (n <= DCR_ED25519_SIG_BYTES)
		return dcr_err_set(err, DCR_ETRUNC,
		                   "entry of %zu bytes is too short for an envelope and a "
		                   "%d-byte signature",
		                   n, DCR_ED25519_SIG_BYTES);
	env_n = n - DCR_ED25519_SIG_BYTES;
	if (env_n > DCR_EVENT_BYTES_MAX)
		return dcr_err_set(err, DCR_ELIMIT,
		                   "envelope of %zu bytes exceeds the limit of %u bytes", env_n,
		                   (unsigned)DCR_EVENT_BYTES_MAX);
	lim = env_limits();
	rc = dcr_mp_parse(bytes, env_n, &lim, &ev->doc, err);
	if (rc != 0) {
		dcr_err_prefix(err, "%s", what);
		goto out;
	}
	root = dcr_mp_root(ev->doc);
	if (dcr_mp_type(root) != DCR_MP_MAP) {
		rc = dcr_err_set(err, DCR_EFORMAT, "%s: expected a map, got %s", what,
		                 type_name(root));
		goto out;
	}
	rc = check_fields(root, what, env_fields, sizeof(env_fields) / sizeof(env_fields[0]), err);
	if (rc != 0)
		goto out;
	rc = get_uint(root, what, "v", &ver, err);
	if (rc != 0)
		goto out;
	if (ver != ES_EVENT_VERSION) {
		rc = dcr_err_set(err, DCR_EFORMAT,
		                 "%s: field 'v': unsupported version %" PRIu64 " (expected %d)",
		                 what, ver, ES_EVENT_VERSION);
		goto out;
	}
	rc = get_room(root, what, ev->room, err);
	if (rc != 0)
		goto out;
	es_room_format(ev->room, ev->room_hex);
	rc = get_uint(root, what, "seq", &ev->seq, err);
	if (rc != 0)
		goto out;
	rc = get_uint(root, what, "ts", &ev->ts_ms, err);
	if (rc != 0)
		goto out;
	rc = get_bin_exact(root, what, "actor", ev->actor, sizeof(ev->actor), err);
	if (rc != 0)
		goto out;
	v = dcr_mp_get(root, "type");
	if (dcr_mp_type(v) != DCR_MP_STR || dcr_mp_str(v, &p, &len) != 0) {
		rc = dcr_err_set(err, DCR_EFORMAT, "%s: field 'type' must be a string, got %s",
		                 what, type_name(v));
		goto out;
	}
	rc = check_type(p, len, what, err);
	if (rc != 0)
		goto out;
	memcpy(ev->type, p, len);
	ev->type[len] = '\0';
	ev->body = dcr_mp_get(root, "body");
	if (dcr_mp_type(ev->body) != DCR_MP_MAP) {
		rc = dcr_err_set(err, DCR_EFORMAT, "%s: field 'body' must be a map, got %s", what,
		                 type_name(ev->body));
		goto out;
	}
	ev->env = bytes;
	ev->env_n = env_n;
	memcpy(ev->sig, bytes + env_n, DCR_ED25519_SIG_BYTES);
out:
	if (rc != 0)
		es_event_release(ev);
	return rc;
}

int es_event_verify(const es_event *ev, dcr_err *err)
{
	int rc;

	if (es_key_is_weak(ev->actor))
		return dcr_err_set(err, DCR_EKEY,
		                   "event seq %" PRIu64
		                   " (%s): actor key has small order (forgeable)",
		                   ev->seq, ev->type);
	rc = dcr_verify(ev->actor, DCR_DOMAIN_EVENT, ev->env, ev->env_n, ev->sig);
	if (rc == 0)
		return 0;
	if (rc == DCR_EKEY)
		return dcr_err_set(err, rc,
		                   "event seq %" PRIu64 " (%s): actor is not a valid "
		                   "Ed25519 public key",
		                   ev->seq, ev->type);
	return dcr_err_set(err, DCR_ESIG,
	                   "event seq %" PRIu64 " (%s): signature does not verify under the "
	                   "actor's key",
	                   ev->seq, ev->type);
}

void es_event_release(es_event *ev)
{
	if (!ev)
		return;
	dcr_mp_doc_free(ev->doc);
	memset(ev, 0, sizeof(*ev));
}

/* ---- checkpoints ------------------------------------------------------------ */

static void checkpoint_body(const es_checkpoint *cp, dcr_buf *out)
{
	char room_hex[ES_ROOM_HEX_BYTES];
	dcr_mpw w;

	es_room_format(cp->room, room_hex);
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 4);
	dcr_mpw_str(&w, "room");
	dcr_mpw_str(&w, room_hex);
	dcr_mpw_str(&w, "root");
	dcr_mpw_bin(&w, cp->root, 32);
	dcr_mpw_str(&w, "size");
	dcr_mpw_uint(&w, cp->size);
	dcr_mpw_str(&w, "ts");
	dcr_mpw_uint(&w, cp->ts_ms);
}

int es_checkpoint_sign(es_checkpoint *cp, const dcr_key *k)
{
	dcr_buf b;
	int rc;

	dcr_buf_init(&b);
	dcr_key_public(k, cp->key);
	checkpoint_body(cp, &b);
	rc = dcr_sign(k, DCR_DOMAIN_CHECKPOINT, b.data, b.len, cp->sig);
	dcr_buf_release(&b);
	return rc;
}

int es_checkpoint_verify(const es_checkpoint *cp, dcr_err *err)
{
	char room_hex[ES_ROOM_HEX_BYTES];
	dcr_buf b;
	int rc;

	es_room_format(cp->room, room_hex);
	if (es_key_is_weak(cp->key))
		return dcr_err_set(err, DCR_EKEY,
		                   "checkpoint of room %s at size %" PRIu64
		                   ": signer key has small order (unsigned or forged)",
		                   room_hex, cp->size);
	dcr_buf_init(&b);
	checkpoint_body(cp, &b);
	rc = dcr_verify(cp->key, DCR_DOMAIN_CHECKPOINT, b.data, b.len, cp->sig);
	dcr_buf_release(&b);
	if (rc != 0) {
		return dcr_err_set(err, rc == DCR_EKEY ? DCR_EKEY : DCR_ESIG,
		                   "checkpoint of room %s at size %" PRIu64 ": %s", room_hex,
		                   cp->size,
		                   rc == DCR_EKEY ? "signer is not a valid Ed25519 public key"
		                                  : "signature does not verify");
	}
	return 0;
}

static const char *const cp_fields[] = {"key", "room", "root", "sig", "size", "ts"};

void es_checkpoint_encode(const es_checkpoint *cp, dcr_buf *out)
{
	char room_hex[ES_ROOM_HEX_BYTES];
	dcr_mpw w;

	es_room_format(cp->room, room_hex);
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 6);
	dcr_mpw_str(&w, "key");
	dcr_mpw_bin(&w, cp->key, sizeof(cp->key));
	dcr_mpw_str(&w, "room");
	dcr_mpw_str(&w, room_hex);
	dcr_mpw_str(&w, "root");
	dcr_mpw_bin(&w, cp->root, 32);
	dcr_mpw_str(&w, "sig");
	dcr_mpw_bin(&w, cp->sig, sizeof(cp->sig));
	dcr_mpw_str(&w, "size");
	dcr_mpw_uint(&w, cp->size);
	dcr_mpw_str(&w, "ts");
	dcr_mpw_uint(&w, cp->ts_ms);
}

int es_checkpoint_decode(const void *p, size_t n, es_checkpoint *cp, dcr_err *err)
{
	const char *what = "checkpoint";
	dcr_mp_limits lim = dcr_mp_limits_default;
	dcr_mp_doc *doc = NULL;
	const dcr_mpv *root;
	int rc;

	memset(cp, 0, sizeof(*cp));
	lim.bytes_max = ES_CHECKPOINT_BYTES_MAX;
	lim.depth_max = 1;
	lim.elems_max = 6;
	lim.str_max = 64;
	rc = dcr_mp_parse(p, n, &lim, &doc, err);
	if (rc != 0) {
		dcr_err_prefix(err, "%s", what);
		goto out;
	}
	root = dcr_mp_root(doc);
	if (dcr_mp_type(root) != DCR_MP_MAP) {
		rc = dcr_err_set(err, DCR_EFORMAT, "%s: expected a map, got %s", what,
		                 type_name(root));
		goto out;
	}
	rc = check_fields(root, what, cp_fields, sizeof(cp_fields) / sizeof(cp_fields[0]), err);
	if (rc == 0)
		rc = get_bin_exact(root, what, "key", cp->key, sizeof(cp->key), err);
	if (rc == 0)
		rc = get_room(root, what, cp->room, err);
	if (rc == 0)
		rc = get_bin_exact(root, what, "root", cp->root, 32, err);
	if (rc == 0)
		rc = get_bin_exact(root, what, "sig", cp->sig, sizeof(cp->sig), err);
	if (rc == 0)
		rc = get_uint(root, what, "size", &cp->size, err);
	if (rc == 0)
		rc = get_uint(root, what, "ts", &cp->ts_ms, err);
out:
	dcr_mp_doc_free(doc);
	if (rc != 0)
		memset(cp, 0, sizeof(*cp));
	return rc;
}
