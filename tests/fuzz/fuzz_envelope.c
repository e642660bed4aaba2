/* fuzz_envelope.c: the decoders of signed bytes from the log, the network
 * and export files: es_event_decode (entry = envelope || signature),
 * es_checkpoint_decode and the validating msgpack reader dcr_mp_parse
 * under which both sit; then the room's rules on whatever decodes.
 *
 * Every input goes to all three decoders. Oracles:
 * - dcr_mp_parse and dcr_mp_check agree, and an accepted document
 *   re-encodes to exactly its input bytes (canonical form is unique);
 * - a decoded event points into its input (envelope = all but the last 64
 *   bytes, signature = those), its room hex is the room bytes formatted,
 *   its envelope re-encodes to itself;
 * - a decoded checkpoint re-encodes (es_checkpoint_encode) to the input;
 * - a decoded event is described (rm_describe) and applied (rm_apply) to
 *   an empty room and to a published room with a provisioned dataset and
 *   runs (fuzz_room_fixture.h); a refused event must leave the state as it
 *   was (checked on the size and counts of the state).
 * Signatures are checked (es_event_verify, es_checkpoint_verify) only for
 * crashes: the fuzzer cannot sign. */
#include "fuzz_room_fixture.h"

static rm_state fixture;
static bool fixture_ready;

static void state_shape(const rm_state *s, uint64_t out[6])
{
	out[0] = s->size;
	out[1] = s->status;
	out[2] = s->nprovisions;
	out[3] = s->nruns;
	out[4] = s->last_ts_ms;
	out[5] = s->def != NULL;
}

static void apply_to(rm_state *s, const es_event *ev, bool *changed)
{
	uint64_t before[6], after[6];
	dcr_err err;
	char *line;
	int rc;

	const char *which = s->status == RM_NONE ? "empty" : "fixture";

	line = rm_describe(s, ev);
	FUZZ_CHECK(line != NULL && strchr(line, '\n') == NULL);
	free(line);
	state_shape(s, before);
	rc = rm_apply(s, ev, &err);
	state_shape(s, after);
	if (getenv("FUZZ_VERBOSE")) /* replay: why each input is taken or refused */
		fprintf(stderr, "%s state: %s\n", which, rc ? err.msg : "applied");
	if (rc == 0) {
		FUZZ_CHECK(after[0] == before[0] + 1);
		*changed = true;
	} else {
		FUZZ_CHECK(err.code == rc && err.msg[0] != '\0');
		FUZZ_CHECK(memcmp(before, after, sizeof before) == 0);
	}
}

static void check_event(const uint8_t *data, size_t size)
{
	char hex[ES_ROOM_HEX_BYTES];
	es_event ev;
	dcr_err err;
	rm_state empty;
	bool changed = false;
	int rc;

	rc = es_event_decode(data, size, &ev, &err);
	if (rc != 0) {
		FUZZ_CHECK(err.code == rc && err.msg[0] != '\0');
		es_event_release(&ev); /* decode leaves a releasable event */
		return;
	}
	FUZZ_CHECK(size > DCR_ED25519_SIG_BYTES);
	FUZZ_CHECK(ev.env == data && ev.env_n == size - DCR_ED25519_SIG_BYTES);
	FUZZ_CHECK(memcmp(ev.sig, data + ev.env_n, DCR_ED25519_SIG_BYTES) == 0);
	es_room_format(ev.room, hex);
	FUZZ_CHECK(strcmp(hex, ev.room_hex) == 0);
	FUZZ_CHECK(memchr(ev.type, 0, sizeof ev.type) != NULL && ev.type[0] != '\0');
	FUZZ_CHECK(dcr_mp_type(ev.body) == DCR_MP_MAP);
	fuzz_mp_roundtrip(ev.doc, ev.env, ev.env_n);
	(void)es_event_verify(&ev, &err);
	(void)es_key_is_weak(ev.actor);

	rm_state_init(&empty, fx_daemon);
	apply_to(&empty, &ev, &changed);
	rm_state_release(&empty);

	if (!fixture_ready) {
		fx_room_state(&fixture);
		fixture_ready = true;
	}
	changed = false;
	apply_to(&fixture, &ev, &changed);
	if (changed) { /* next input starts from the fixture again */
		rm_state_release(&fixture);
		fixture_ready = false;
	}
	es_event_release(&ev);
}

static void check_checkpoint(const uint8_t *data, size_t size)
{
	es_checkpoint cp;
	dcr_err err;
	dcr_buf out;
	int rc;

	rc = es_checkpoint_decode(data, size, &cp, &err);
	if (rc != 0) {
		FUZZ_CHECK(err.code == rc && err.msg[0] != '\0');
		return;
	}
	dcr_buf_init(&out);
	es_checkpoint_encode(&cp, &out);
	FUZZ_CHECK(out.len == size && memcmp(out.data, data, size) == 0);
	dcr_buf_release(&out);
	(void)es_checkpoint_verify(&cp, &err);
}

static void check_msgpack(const uint8_t *data, size_t size)
{
	dcr_mp_doc *doc = NULL;
	dcr_err err, err2;
	int rc, rc2;

	rc = dcr_mp_parse(data, size, &dcr_mp_limits_default, &doc, &err);
	rc2 = dcr_mp_check(data, size, &dcr_mp_limits_default, &err2);
	FUZZ_CHECK(rc == rc2);
	if (rc != 0) {
		FUZZ_CHECK(doc == NULL);
		FUZZ_CHECK(strcmp(err.msg, err2.msg) == 0);
		return;
	}
	fuzz_mp_roundtrip(doc, data, size);
	dcr_mp_doc_free(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_msgpack(data, size);
	check_event(data, size);
	check_checkpoint(data, size);
	return 0;
}
