/* test_dmn_e2e.c: provisioning, runs and results end to end through dcrd
 * and the client library, and what must survive or leave no trace:
 *   - two owners provision (streamed in small pieces), statistics follow
 *     share_statistics, a bad file is refused with its line and column and
 *     stores nothing;
 *   - a client that disconnects mid-upload leaves no temp file, no blob,
 *     no event, only a log line;
 *   - a provisioned event that does not match the upload is refused;
 *   - runs: the privacy filter drops small groups, a downstream
 *     computation reads an upstream result, python fails "not supported",
 *     only analysts read results;
 *   - kill -9 and restart: every event, result and statistic is still
 *     there, and a run requested just before the kill completes after it;
 *   - blobs on disk are not plaintext. */
#include <dirent.h>

#include "test_dmn_common.h"

static const char bank_csv[] = "email,city,age\r\n"
                               "a@x.org,Paris,31\r\n"
                               "b@x.org,Paris,42\r\n"
                               "c@x.org,Paris,\r\n"
                               "d@x.org,Lyon,55\r\n"
                               "e@x.org,\"Nice, Cote d'Azur\",60\r\n"
                               "f@x.org,Lyon,23\r\n";

static const char insurer_csv[] = "email,risk\n"
                                  "a@x.org,1\n"
                                  "b@x.org,2\n"
                                  "c@x.org,3\n"
                                  "d@x.org,1\n"
                                  "e@x.org,2\n"
                                  "zz@y.org,5\n";

/* Files under dir (recursively) whose content contains needle. */
static int grep_dir(const char *dir, const char *needle)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int hits = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		char *p;
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		p = dcr_asprintf("%s/%s", dir, e->d_name);
		if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
			hits += grep_dir(p, needle);
		} else if (strcmp(e->d_name, "dcrd.log") != 0) {
			dcr_buf b;
			dcr_err err;
			dcr_buf_init(&b);
			if (dcr_read_file(p, 256u * 1024 * 1024, &b, &err) == 0 &&
			    memmem(b.data, b.len, needle, strlen(needle)))
				hits++;
			dcr_buf_release(&b);
		}
		free(p);
	}
	closedir(d);
	return hits;
}

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		char *p;
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		p = dcr_asprintf("%s/%s", dir, e->d_name);
		if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
			n += count_files(p);
		else
			n++;
		free(p);
	}
	closedir(d);
	return n;
}

static uint64_t room_size(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES])
{
	cl_room_info *rooms = NULL;
	size_t n = 0, k;
	uint64_t size = UINT64_MAX;
	char hex[ES_ROOM_HEX_BYTES];
	dcr_err err;

	es_room_format(room, hex);
	if (cl_rooms(c, &rooms, &n, &err) < 0)
		return UINT64_MAX;
	for (k = 0; k < n; k++)
		if (strcmp(rooms[k].id, hex) == 0)
			size = rooms[k].size;
	cl_rooms_free(rooms, n);
	return size;
}

static void test_uploads(td *t, cl_conn *a, cl_conn *i, const uint8_t room[ES_ROOM_ID_BYTES])
{
	char *tmp = dcr_asprintf("%s/tmp", t->data), *blobs = dcr_asprintf("%s/blobs", t->data);
	uint64_t size0 = room_size(a, room);
	int blobs0 = count_files(blobs);
	td_src src;
	dcr_buf json;
	dcr_err err;

	dcr_buf_init(&json);
	/* A bad file: the error names the line and the column; nothing stored. */
	CHECK_ERR(td_provision(a, room, "bank", "email,city,age\na@x.org,Paris,old\n", &err),
	          DCR_ECSV, &err, "line 2");
	CHECK(strstr(err.msg, "age") != NULL);
	CHECK(room_size(a, room) == size0);
	CHECK(count_files(tmp) == 0);
	CHECK(count_files(blobs) == blobs0);

	/* Not an owner. */
	CHECK(td_provision(i, room, "bank", bank_csv, &err) < 0);

	/* A bad row after several chunks (uploads keep chunks in flight):
	 * the first error is reported, with its line; nothing stored. */
	{
		dcr_buf big;
		dcr_buf_init(&big);
		dcr_buf_append_str(&big, "email,city,age\n");
		for (int k = 0; k < 200000; k++)
			dcr_buf_printf(&big, "user%d@x.org,Town%d,%d\n", k, k % 50, k % 90);
		dcr_buf_append_str(&big, "bad@x.org,Metz,forty\n");
		for (int k = 0; k < 100000; k++)
			dcr_buf_printf(&big, "more%d@x.org,Town,%d\n", k, k % 90);
		CHECK(big.len > 4u * DCR_CHUNK_BYTES);
		CHECK_ERR(td_provision(a, room, "bank", dcr_buf_cstr(&big), &err), DCR_ECSV, &err,
		          "line 200002");
		CHECK(room_size(a, room) == size0);
		CHECK(count_files(tmp) == 0);
		dcr_buf_release(&big);
	}

	/* Good files, streamed in small pieces. */
	src = (td_src){bank_csv, strlen(bank_csv), 0, 7};
	CHECK_OK(
	    cl_provision(a, room, "bank", "bank.csv", src.n, td_src_read, &src, NULL, NULL, &err),
	    &err);
	/* insurer: the six rows and 300,000 that match nobody, in > 3 chunks */
	{
		dcr_buf big;
		dcr_buf_init(&big);
		dcr_buf_append_str(&big, insurer_csv);
		for (int k = 0; k < 300000; k++)
			dcr_buf_printf(&big, "nobody%d@y.org,%d\n", k, k % 7);
		CHECK(big.len > 4u * DCR_CHUNK_BYTES);
		CHECK_OK(td_provision(i, room, "insurer", dcr_buf_cstr(&big), &err), &err);
		dcr_buf_release(&big);
	}
	CHECK(room_size(a, room) == size0 + 2);

	/* Statistics: the owner sees bank's; ian does not (not shared);
	 * everyone sees insurer's (shared). */
	CHECK_OK(cl_stats(a, room, "bank", &json, &err), &err);
	CHECK(json.len > 0 && strstr(dcr_buf_cstr(&json), "age"));
	dcr_buf_reset(&json);
	CHECK_ERR(cl_stats(i, room, "bank", &json, &err), DCR_EDENIED, &err, NULL);
	CHECK_OK(cl_stats(a, room, "insurer", &json, &err), &err);
	CHECK(strstr(dcr_buf_cstr(&json), "risk") != NULL);

	/* Owners read their file back, byte for byte; others may not. */
	{
		uint8_t back[sizeof bank_csv];
		uint64_t fsize = 0;
		int n = cl_data_read(a, room, "bank", NULL, 0, back, sizeof back, &fsize, &err);
		CHECK(n == (int)strlen(bank_csv) && fsize == strlen(bank_csv));
		CHECK(n > 0 && memcmp(back, bank_csv, (size_t)n) == 0);
		n = cl_data_read(a, room, "bank", NULL, 6, back, 5, NULL, &err);
		CHECK(n == 5 && memcmp(back, bank_csv + 6, 5) == 0);
		CHECK(cl_data_read(a, room, "bank", NULL, fsize, back, 5, NULL, &err) == 0);
		CHECK_ERR(cl_data_read(i, room, "bank", NULL, 0, back, 5, NULL, &err), DCR_EDENIED, &err,
		          "not an owner");
		/* Pinned to a provision: its sha256 reads, any other is refused. */
		uint8_t sha[32], other[32];
		dcr_sha256(bank_csv, strlen(bank_csv), sha);
		memcpy(other, sha, 32);
		other[0] ^= 1;
		CHECK(cl_data_read(a, room, "bank", sha, 6, back, 5, NULL, &err) == 5);
		CHECK_ERR(cl_data_read(a, room, "bank", other, 6, back, 5, NULL, &err), DCR_ESTATE,
		          &err, "provisioned again");
	}

	/* A file dataset: any bytes, stored as they are, no rows. */
	{
		static const char pdf[] = "%PDF-1.4\n\x00\x01binary contract\xff\n";
		td_src f = {pdf, sizeof pdf - 1, 0, 0};
		dcr_buf_reset(&json);
		CHECK_OK(cl_provision(a, room, "contracts", "contract.pdf", f.n, td_src_read, &f,
		                      NULL, NULL, &err),
		         &err);
		CHECK_OK(cl_stats(a, room, "contracts", &json, &err), &err);
		CHECK(strstr(dcr_buf_cstr(&json), "\"rows\":0") != NULL);
		CHECK(room_size(a, room) == size0 + 3);
	}

	/* datasets: what I provisioned. */
	dcr_buf_reset(&json);
	CHECK_OK(cl_datasets(a, &json, &err), &err);
	CHECK(strstr(dcr_buf_cstr(&json), "\"bank\"") && !strstr(dcr_buf_cstr(&json), "insurer\""));
	CHECK(strstr(dcr_buf_cstr(&json), "\"contracts\"") != NULL);
	CHECK(strstr(dcr_buf_cstr(&json), "\"rows\": 6") != NULL);

	/* Plaintext never lands on disk. */
	CHECK(grep_dir(t->data, "Cote d'Azur") == 0);
	CHECK(grep_dir(t->data, "zz@y.org") == 0);
	dcr_buf_release(&json);
	free(tmp);
	free(blobs);
}

/* Begins an upload of dataset bank over the raw protocol (as cl_provision
 * would; file NULL leaves the field out) and sends one valid chunk; returns the upload id
 * (its CHECKs report a failure). */
static uint64_t raw_begin_chunk(cl_conn *a, const uint8_t room[ES_ROOM_ID_BYTES], const char *file)
{
	proto_map m;
	dcr_buf args, rb;
	dcr_mp_doc *d = NULL;
	uint64_t up = 0;
	char hex[ES_ROOM_HEX_BYTES];
	dcr_err err;

	es_room_format(room, hex);
	dcr_buf_init(&args);
	dcr_buf_init(&rb);
	proto_map_init(&m);
	dcr_mpw_str(proto_map_key(&m, "room"), hex);
	dcr_mpw_str(proto_map_key(&m, "dataset"), "bank");
	if (file)
		dcr_mpw_str(proto_map_key(&m, "file"), file);
	proto_map_encode(&m, &args);
	proto_map_release(&m);
	CHECK_OK(cl_call(a, "upload.begin", args.data, args.len, &rb, &d, &err), &err);
	if (d)
		dcr_mp_get_u64(dcr_mp_root(d), "upload", &up, &err);
	dcr_mp_doc_free(d);
	dcr_buf_reset(&args);
	proto_map_init(&m);
	dcr_mpw_uint(proto_map_key(&m, "upload"), up);
	dcr_mpw_bin(proto_map_key(&m, "data"), "email,city,age\nq@x.org,Metz,1\n", 30);
	proto_map_encode(&m, &args);
	proto_map_release(&m);
	CHECK_OK(cl_call(a, "upload.chunk", args.data, args.len, NULL, NULL, &err), &err);
	dcr_buf_release(&args);
	dcr_buf_release(&rb);
	return up;
}

/* Begins an upload, sends one chunk, then drops the connection. */
static void test_mid_upload_disconnect(td *t, const uint8_t room[ES_ROOM_ID_BYTES])
{
	cl_conn *a = td_connect(t, t->anna);
	char *tmp = dcr_asprintf("%s/tmp", t->data), *blobs = dcr_asprintf("%s/blobs", t->data);
	int blobs0 = count_files(blobs);
	uint64_t size0;

	CHECK(a != NULL);
	if (!a)
		goto out;
	size0 = room_size(a, room);
	raw_begin_chunk(a, room, "partial.csv");
	/* dcrd refuses a name the file name rule refuses before storing a
	 * byte (a client that skips cl_provision's check); the answer never
	 * quotes the name */
	{
		static const char *const bad[] = {NULL, "x.csv\nforged", "\x1b[2Jx.csv", "status", ".."};
		for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			proto_map m;
			dcr_buf args, rb;
			dcr_mp_doc *d = NULL;
			dcr_err err;
			char hex[ES_ROOM_HEX_BYTES];
			es_room_format(room, hex);
			dcr_buf_init(&args);
			dcr_buf_init(&rb);
			proto_map_init(&m);
			dcr_mpw_str(proto_map_key(&m, "room"), hex);
			dcr_mpw_str(proto_map_key(&m, "dataset"), "bank");
			if (bad[i])
				dcr_mpw_str(proto_map_key(&m, "file"), bad[i]);
			proto_map_encode(&m, &args);
			proto_map_release(&m);
			CHECK_FAILS(cl_call(a, "upload.begin", args.data, args.len, &rb, &d, &err), &err,
			            "the file name");
			CHECK(strchr(err.msg, '\n') == NULL && strchr(err.msg, 0x1b) == NULL);
			dcr_mp_doc_free(d);
			dcr_buf_release(&rb);
			dcr_buf_release(&args);
		}
	}
	CHECK(count_files(tmp) == 1); /* the temp file exists while uploading */
	if (count_files(tmp) != 1) {
		char *cmd = dcr_asprintf("ls -la %s >&2", tmp);
		if (system(cmd) < 0)
			perror("system");
		free(cmd);
	}
	cl_close(a);
	a = NULL;
	CHECK(td_log_wait(t, "connection closed mid-upload", 10000));
	CHECK(count_files(tmp) == 0);
	CHECK(count_files(blobs) == blobs0);
	a = td_connect(t, t->anna);
	if (a)
		CHECK(room_size(a, room) == size0);
out:
	cl_close(a);
	free(tmp);
	free(blobs);
}

/* A provisioned event whose values differ from the upload's is refused. */
static void test_provision_mismatch(td *t, cl_conn *a, const uint8_t room[ES_ROOM_ID_BYTES])
{
	rm_provision p;
	dcr_buf body;
	dcr_err err;

	memset(&p, 0, sizeof p);
	p.dataset = "bank";
	p.file = "bank.csv";
	p.blob = "00112233445566778899aabbccddeeff";
	p.present = true;
	p.rows = 6;
	p.bytes = 100;
	memcpy(p.by, t->anna_pub, 32);
	dcr_buf_init(&body);
	rm_body_provisioned(&body, &p);
	CHECK_ERR(cl_submit(a, room, RM_EV_PROVISIONED, body.data, body.len, NULL, &err),
	          DCR_EINVALID, &err, "does not match an upload");
	CHECK(strncmp(err.msg, "does not match", 14) == 0);
	dcr_buf_release(&body);
}

static void test_runs(td *t, cl_conn *a, cl_conn *i, const uint8_t room[ES_ROOM_ID_BYTES])
{
	cl_run_status st;
	char run[33];
	dcr_buf res;
	dcr_err err;

	dcr_buf_init(&res);
	/* overlap: Paris 3 (a, b, c), Lyon 1 (d), Nice 1 (e); k = 2 keeps Paris. */
	CHECK_OK(cl_run(i, room, "overlap", run, &err), &err);
	CHECK_OK(td_wait_run(i, room, "overlap", run, &st, 120000, &err), &err);
	CHECK(strcmp(st.state, "done") == 0);
	CHECK(st.rows == 1);
	CHECK(st.suppressed == 2);
	cl_run_status_release(&st);
	CHECK_OK(td_result(i, room, "overlap", &res, &err), &err);
	CHECK(strcmp(dcr_buf_cstr(&res), "city,n\r\nParis,3\r\n") == 0 ||
	      strcmp(dcr_buf_cstr(&res), "city,n\nParis,3\n") == 0);
	if (!strstr(dcr_buf_cstr(&res), "Paris,3"))
		fprintf(stderr, "overlap result: [%s]\n", dcr_buf_cstr(&res));

	/* doubled reads overlap's result (no filter of its own). */
	CHECK_OK(cl_run(a, room, "doubled", run, &err), &err);
	CHECK_OK(td_wait_run(a, room, "doubled", run, &st, 120000, &err), &err);
	CHECK(strcmp(st.state, "done") == 0);
	cl_run_status_release(&st);
	dcr_buf_reset(&res);
	CHECK_OK(td_result(a, room, "doubled", &res, &err), &err);
	CHECK(strstr(dcr_buf_cstr(&res), "Paris,6") != NULL);
	if (!strstr(dcr_buf_cstr(&res), "Paris,6"))
		fprintf(stderr, "doubled result: [%s]\n", dcr_buf_cstr(&res));

	/* ian is not an analyst of doubled. */
	{
		char rid[33];
		uint64_t size;
		CHECK_ERR(cl_result_open(i, room, "doubled", rid, &size, &err), DCR_EDENIED, &err,
		          NULL);
	}

	/* python runs in the sandbox: churn prints and writes no file; its
	 * logs are never shown (the default) */
	CHECK_OK(cl_run(a, room, "churn", run, &err), &err);
	CHECK_OK(td_wait_run(a, room, "churn", run, &st, 120000, &err), &err);
	CHECK(strcmp(st.state, "done") == 0);
	if (strcmp(st.state, "done") != 0)
		fprintf(stderr, "churn: %s %s\n", st.error ? st.error : "",
		        st.detail ? st.detail : "");
	CHECK(st.rows == 0 && st.result_bytes == 1); /* an empty archive: 0x90 */
	cl_run_status_release(&st);
	{
		uint8_t b[16];
		CHECK_ERR(cl_logs_read(i, room, run, 0, b, sizeof b, NULL, &err), DCR_EDENIED, &err,
		          "may not read the logs");
		CHECK_ERR(cl_logs_read(a, room, run, 0, b, sizeof b, NULL, &err), DCR_EDENIED, &err,
		          "never shown");
	}

	/* room.test: every computation on empty inputs. */
	dcr_buf_reset(&res);
	CHECK_OK(cl_room_test(a, room, &res, &err), &err);
	CHECK(strstr(dcr_buf_cstr(&res), "overlap (sql): ok\n  city string\n  n integer\n") != NULL);
	CHECK(strstr(dcr_buf_cstr(&res), "doubled (sql): ok\n  city string\n  twice integer\n") !=
	      NULL);
	CHECK(strstr(dcr_buf_cstr(&res), "churn (python): ok\n") != NULL);
	CHECK(strstr(dcr_buf_cstr(&res), "upstream") == NULL);

	/* An sql computation over a synthetic one: both are tested, the
	 * synthetic result has its input's columns (issue 13). */
	{
		static const char python[] = "\"kind\": \"python\", \"inputs\": [\"overlap\"], "
		                             "\"script\": \"print(1)\\n\"}";
		static const char doubled[] = "SELECT city, n * 2 AS twice FROM overlap";
		char *json = td_room_json(t, "room-test-synthetic");
		char *p1 = strstr(json, doubled), *p2 = strstr(json, python);
		uint8_t room2[ES_ROOM_ID_BYTES];
		CHECK(p1 != NULL && p2 != NULL && p1 < p2);
		if (p1 && p2 && p1 < p2) {
			char *json2 = dcr_asprintf(
			    "%.*sSELECT city FROM churn%.*s\"kind\": \"synthetic\", \"input\": "
			    "\"bank\", \"epsilon\": 1}%s",
			    (int)(p1 - json), json, (int)(p2 - (p1 + strlen(doubled))),
			    p1 + strlen(doubled), p2 + strlen(python));
			CHECK_OK(cl_room_create(a, json2, room2, &err), &err);
			dcr_buf_reset(&res);
			CHECK_OK(cl_room_test(a, room2, &res, &err), &err);
			CHECK(strstr(dcr_buf_cstr(&res), "churn (synthetic): ok\n") != NULL,
			      "%s", dcr_buf_cstr(&res));
			CHECK(strstr(dcr_buf_cstr(&res), "doubled (sql): ok\n  city string\n") != NULL);
			CHECK(strstr(dcr_buf_cstr(&res), "not supported") == NULL);
			CHECK(strstr(dcr_buf_cstr(&res), "overlap (sql): ok\n") != NULL);
			free(json2);
		}
		free(json);
	}
	dcr_buf_release(&res);
}

static void test_restart(td *t, const uint8_t room[ES_ROOM_ID_BYTES])
{
	cl_conn *a = td_connect(t, t->anna);
	cl_run_status st;
	uint64_t size0 = 0;
	char run[33], *orphan = NULL;
	dcr_buf res;
	dcr_err err;

	dcr_buf_init(&res);
	CHECK(a != NULL);
	if (!a)
		return;
	size0 = room_size(a, room);
	/* An upload finished but never signed: its blob is garbage. */
	{
		proto_map m;
		dcr_buf args, rb;
		dcr_mp_doc *d = NULL;
		uint64_t up = raw_begin_chunk(a, room, "orphan.csv");
		const char *id;
		size_t id_n;
		dcr_buf_init(&args);
		dcr_buf_init(&rb);
		proto_map_init(&m);
		dcr_mpw_uint(proto_map_key(&m, "upload"), up);
		proto_map_encode(&m, &args);
		proto_map_release(&m);
		CHECK_OK(cl_call(a, "upload.end", args.data, args.len, &rb, &d, &err), &err);
		if (d && dcr_mp_get_str(dcr_mp_root(d), "blob", &id, &id_n, &err) == 0 &&
		    id_n == 32)
			orphan = dcr_asprintf("%s/blobs/%.2s/%.32s", t->data, id, id);
		dcr_mp_doc_free(d);
		dcr_buf_release(&args);
		dcr_buf_release(&rb);
		CHECK(orphan != NULL);
		if (orphan)
			CHECK(access(orphan, F_OK) == 0);
	}
	/* A run requested right before the crash. */
	CHECK_OK(cl_run(a, room, "overlap", run, &err), &err);
	cl_close(a);
	CHECK(td_stop(t, SIGKILL) != 0);
	CHECK(td_start(t, NULL) == 0);
	a = td_connect(t, t->anna);
	CHECK(a != NULL);
	if (!a)
		return;
	CHECK(room_size(a, room) >= size0 + 1);
	CHECK(td_log_has(t, "unreferenced blobs"));
	if (orphan)
		CHECK(access(orphan, F_OK) != 0);
	CHECK_OK(td_wait_run(a, room, "overlap", run, &st, 120000, &err), &err);
	CHECK(strcmp(st.state, "done") == 0);
	cl_run_status_release(&st);
	CHECK_OK(td_result(a, room, "overlap", &res, &err), &err);
	CHECK(strstr(dcr_buf_cstr(&res), "Paris,3") != NULL);
	dcr_buf_reset(&res);
	CHECK_OK(td_result(a, room, "doubled", &res, &err), &err);
	CHECK(strstr(dcr_buf_cstr(&res), "Paris,6") != NULL);
	dcr_buf_reset(&res);
	CHECK_OK(cl_stats(a, room, "bank", &res, &err), &err);
	dcr_buf_reset(&res);
	CHECK_OK(cl_stats(a, room, "contracts", &res, &err), &err);
	/* runs after the collection still find their tables */
	CHECK_OK(cl_run(a, room, "doubled", run, &err), &err);
	CHECK_OK(td_wait_run(a, room, "doubled", run, &st, 120000, &err), &err);
	CHECK(strcmp(st.state, "done") == 0);
	cl_run_status_release(&st);
	dcr_buf_reset(&res);
	CHECK_OK(td_result(a, room, "doubled", &res, &err), &err);
	CHECK(strstr(dcr_buf_cstr(&res), "Paris,6") != NULL);
	dcr_buf_release(&res);
	free(orphan);
	cl_close(a);
}

int main(void)
{
	static td t; /* the atexit cleanup reads it after main returns */
	cl_conn *a = NULL, *i = NULL;
	uint8_t room[ES_ROOM_ID_BYTES];
	char *json;
	dcr_err err;

	td_init(&t);
	if (td_start(&t, NULL) < 0)
		return 1;
	a = td_connect(&t, t.anna);
	i = td_connect(&t, t.ian);
	json = td_room_json(&t, "e2e");
	CHECK(a && i);
	if (a && i) {
		CHECK_OK(td_room_publish(a, json, room, &err), &err);
		test_uploads(&t, a, i, room);
		/* Background table builds write blobs too: let them finish so
		 * that the temp and blob directories hold only what we count.
		 * (The 300k-row insurer table took 57 s under TSan on a busy
		 * 2-core machine; the wait only guards against a hang.) */
		CHECK(td_log_wait(&t, "prepared table bank", 120000));
		CHECK(td_log_wait(&t, "prepared table insurer", 120000));
		/* overlap joins bank and insurer USING (email): both tables
		 * are built with an index on email (cmp_prepare_ex). */
		CHECK(td_log_has(&t, "prepared table bank (blob ") &&
		      td_log_has(&t, " bytes, 1 indexes) in "));
		CHECK(!td_log_has(&t, " bytes, 0 indexes) in "));
		test_mid_upload_disconnect(&t, room);
		test_provision_mismatch(&t, a, room);
		test_runs(&t, a, i, room);
	}
	cl_close(a);
	cl_close(i);
	free(json);
	test_restart(&t, room);
	CHECK(td_stop(&t, SIGTERM) == 0);
	if (t_failures) {
		char *log = td_log_text(&t);
		fprintf(stderr, "---- dcrd log ----\n%s", log);
		free(log);
	}
	td_cleanup();
	return t_failures ? 1 : 0;
}
