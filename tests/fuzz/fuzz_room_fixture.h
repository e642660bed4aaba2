/* fuzz_room_fixture.h: a room in a known state for the fuzz targets that
 * apply events (fuzz_envelope.c), with fixed keys so that stored corpus
 * files keep meaning the same thing.
 *
 * Keys are the public keys of RFC 8032's test vectors 1-3 (valid points,
 * not of small order): anna (creator, owner of bank and docs, analyst of
 * raw), ian (owner of ins, analyst of overlap and py) and the daemon.
 * The room (id 00112233445566778899aabbccddeeff) is built by seq 0..5:
 * created, published, bank provisioned, run r1 of raw requested and
 * completed, run r2 of raw requested; the next event has seq 6. Header-
 * only; events are built unsigned (rm_apply does not check signatures:
 * its caller does). */
#ifndef DCR_FUZZ_ROOM_FIXTURE_H
#define DCR_FUZZ_ROOM_FIXTURE_H

#include "../../room/room.h"
#include "fuzz.h"

static const uint8_t fx_anna[32] = {
    0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
    0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a};
static const uint8_t fx_ian[32] = {0x3d, 0x40, 0x17, 0xc3, 0xe8, 0x43, 0x89, 0x5a, 0x92, 0xb7, 0x0a,
                                   0xa7, 0x4d, 0x1b, 0x7e, 0xbc, 0x9c, 0x98, 0x2c, 0xcf, 0x2e, 0xc4,
                                   0x96, 0x8c, 0xc0, 0xcd, 0x55, 0xf1, 0x2a, 0xf4, 0x66, 0x0c};
static const uint8_t fx_daemon[32] = {
    0xfc, 0x51, 0xcd, 0x8e, 0x62, 0x18, 0xa1, 0xa3, 0x8d, 0xa4, 0x7e, 0xd0, 0x02, 0x30, 0xf0, 0x58,
    0x08, 0x16, 0xed, 0x13, 0xba, 0x33, 0x03, 0xac, 0x5d, 0xeb, 0x91, 0x15, 0x48, 0x90, 0x80, 0x25};
static const uint8_t fx_room[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                    0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
#define FX_TS0  1764072000000ull /* 2025-11-25T12:00:00Z */
#define FX_RUN1 "0123456789abcdef0123456789abcdef"
#define FX_RUN2 "fedcba9876543210fedcba9876543210"

static const char fx_def[] =
    "{\n"
    "  \"format\": \"dcr.room/1\",\n"
    "  \"name\": \"fuzz-room\",\n"
    "  \"description\": \"fixture of the fuzz targets\",\n"
    "  \"settings\": {\"interactive\": true, \"development\": true, "
    "\"require_provisioned\": true},\n"
    "  \"participants\": [\n"
    "    {\"email\": \"anna@bank.example\", \"key\": "
    "\"ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\",\n"
    "     \"owner_of\": [\"bank\", \"docs\"], \"analyst_of\": [\"raw\"]},\n"
    "    {\"email\": \"ian@insurer.example\", \"key\": "
    "\"ed25519:PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=\",\n"
    "     \"owner_of\": [\"ins\"], \"analyst_of\": [\"overlap\", \"py\", \"syn\"]}\n"
    "  ],\n"
    "  \"datasets\": [\n"
    "    {\"name\": \"bank\", \"unit\": \"email\", \"columns\": [\n"
    "      {\"name\": \"email\", \"type\": \"string\", \"format\": \"email\", \"nullable\": "
    "false, \"allow\": [\"join\"]},\n"
    "      {\"name\": \"city\", \"type\": \"string\", \"allow\": [\"group\"]},\n"
    "      {\"name\": \"age\", \"type\": \"integer\"}]},\n"
    "    {\"name\": \"ins\", \"share_statistics\": true, \"unit\": \"email\", \"columns\": [\n"
    "      {\"name\": \"email\", \"type\": \"string\", \"allow\": [\"join\"]},\n"
    "      {\"name\": \"risk\", \"type\": \"float\"}]},\n"
    "    {\"name\": \"docs\", \"kind\": \"file\", \"required\": false}\n"
    "  ],\n"
    "  \"computations\": [\n"
    "    {\"name\": \"raw\", \"kind\": \"sql\", \"query\": \"SELECT city, age FROM bank\"},\n"
    "    {\"name\": \"overlap\", \"kind\": \"sql\", \"privacy\": {\"min_rows_aggregated\": "
    "5},\n"
    "     \"query\": \"SELECT b.city, COUNT(*) AS n FROM bank b JOIN ins i USING (email) "
    "GROUP BY b.city\"},\n"
    "    {\"name\": \"py\", \"kind\": \"python\", \"inputs\": [\"overlap\", \"docs\"], "
    "\"script\": \"print(1)\\n\"},\n"
    "    {\"name\": \"syn\", \"kind\": \"synthetic\", \"input\": \"bank\", \"mask\": "
    "[\"email\"], \"epsilon\": 1.0}\n"
    "  ]\n"
    "}\n";

/* Envelope || 64 zero bytes of signature, appended to out. */
static void fx_entry(dcr_buf *out, const uint8_t actor[32], uint64_t seq, uint64_t ts,
                     const char *type, const dcr_buf *body)
{
	char hex[ES_ROOM_HEX_BYTES];
	uint8_t sig[DCR_ED25519_SIG_BYTES] = {0};
	dcr_mpw w;

	es_room_format(fx_room, hex);
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 7);
	dcr_mpw_str(&w, "actor");
	dcr_mpw_bin(&w, actor, 32);
	dcr_mpw_str(&w, "body");
	dcr_mpw_raw(&w, body->data, body->len);
	dcr_mpw_str(&w, "room");
	dcr_mpw_str(&w, hex);
	dcr_mpw_str(&w, "seq");
	dcr_mpw_uint(&w, seq);
	dcr_mpw_str(&w, "ts");
	dcr_mpw_uint(&w, ts);
	dcr_mpw_str(&w, "type");
	dcr_mpw_str(&w, type);
	dcr_mpw_str(&w, "v");
	dcr_mpw_uint(&w, ES_EVENT_VERSION);
	dcr_buf_append(out, sig, sizeof sig);
}

static void fx_apply(rm_state *s, const uint8_t actor[32], const char *type, dcr_buf *body)
{
	dcr_buf entry;
	es_event ev;
	dcr_err err;
	int rc;

	dcr_buf_init(&entry);
	fx_entry(&entry, actor, s->size, FX_TS0 + s->size * 1000, type, body);
	rc = es_event_decode(entry.data, entry.len, &ev, &err);
	if (rc == 0) {
		rc = rm_apply(s, &ev, &err);
		es_event_release(&ev);
	}
	if (rc != 0) {
		fprintf(stderr, "fuzz fixture: %s: %s\n", type, err.msg);
		abort();
	}
	dcr_buf_release(&entry);
	dcr_buf_reset(body);
}

/* The room after seq 0..5 (see the top of this file). */
static void fx_room_state(rm_state *s)
{
	dcr_buf body;
	rm_provision p;
	rm_run r;

	rm_state_init(s, fx_daemon);
	dcr_buf_init(&body);
	rm_body_definition(&body, fx_def);
	fx_apply(s, fx_anna, RM_EV_CREATED, &body);
	rm_body_published(&body, s->def_sha256);
	fx_apply(s, fx_anna, RM_EV_PUBLISHED, &body);

	memset(&p, 0, sizeof p);
	p.dataset = (char *)"bank";
	memset(p.sha256, 0xab, 32);
	memset(p.stats_sha256, 0xcd, 32);
	p.blob = (char *)"blob-bank-1";
	p.bytes = 1234;
	p.rows = 42;
	p.file = (char *)"bank.csv";
	rm_body_provisioned(&body, &p);
	fx_apply(s, fx_anna, RM_EV_PROVISIONED, &body);

	rm_body_run_requested(&body, "raw", FX_RUN1);
	fx_apply(s, fx_anna, RM_EV_RUN_REQUESTED, &body);

	memset(&r, 0, sizeof r);
	r.id = (char *)FX_RUN1;
	r.computation = (char *)"raw";
	memset(r.result_sha256, 0xef, 32);
	r.result_blob = (char *)"blob-result-1";
	r.rows = 40;
	r.result_bytes = 400;
	r.duration_ms = 12;
	rm_run_col cols[] = {{(char *)"city", CMP_STRING}, {(char *)"age", CMP_INTEGER}};
	r.cols = cols;
	r.ncols = 2;
	r.inputs = rm_state_run(s, FX_RUN1)->inputs;
	r.ninputs = rm_state_run(s, FX_RUN1)->ninputs;
	rm_body_run_completed(&body, &r);
	fx_apply(s, fx_daemon, RM_EV_RUN_COMPLETED, &body);

	rm_body_run_requested(&body, "raw", FX_RUN2);
	fx_apply(s, fx_anna, RM_EV_RUN_REQUESTED, &body);
	dcr_buf_release(&body);
}

#endif
