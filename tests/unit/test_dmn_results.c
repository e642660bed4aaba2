/* test_dmn_results.c: a result larger than one blob chunk read back through
 * result.read: sequentially in odd sizes, and at random offsets (across the
 * 1 MiB encryption chunks, past the end), always equal to the whole; and
 * result.read refused before result.retrieved is recorded and to a
 * non-analyst. And: once run.status says "done", the run.completed event is
 * in the log (a client that polls status and then fetches events finds it;
 * the daemon used to report the outcome while its append was in flight). */
#include "../../daemon/daemon.h"
#include "test_dmn_common.h"

static char *big_room(const td *t)
{
	return dcr_asprintf(
	    "{\"format\": \"dcr.room/1\", \"name\": \"big\", \"description\": \"x\",\n"
	    " \"participants\": [{\"email\": \"anna@bank.example\", \"key\": \"%s\",\n"
	    "   \"owner_of\": [\"bank\"], \"analyst_of\": [\"everything\"]},\n"
	    "  {\"email\": \"ian@insurer.example\", \"key\": \"%s\", \"owner_of\": [],\n"
	    "   \"analyst_of\": []}],\n"
	    " \"datasets\": [{\"name\": \"bank\", \"kind\": \"table\", \"columns\": [\n"
	    "   {\"name\": \"email\", \"type\": \"string\"},\n"
	    "   {\"name\": \"age\", \"type\": \"integer\"}]}],\n"
	    " \"computations\": [{\"name\": \"everything\", \"kind\": \"sql\",\n"
	    "   \"query\": \"SELECT email, age FROM bank ORDER BY email\"}]}\n",
	    t->anna_s, t->ian_s);
}

struct last_ev {
	char type[ES_TYPE_BYTES_MAX];
	uint64_t n;
};

static int last_type(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	struct last_ev *l = ctx;
	es_event ev;
	dcr_err err;
	(void)seq;
	if (es_event_decode(entry, n, &ev, &err) < 0)
		return -1;
	snprintf(l->type, sizeof l->type, "%s", ev.type);
	l->n++;
	es_event_release(&ev);
	return 0;
}

/* Occurrences of needle in the daemon's log (kept across restarts). */
static unsigned log_count(td *t, const char *needle)
{
	char *s = td_log_text(t);
	unsigned n = 0;
	for (const char *p = s; (p = strstr(p, needle)) != NULL; p++)
		n++;
	free(s);
	return n;
}

int main(void)
{
	static td t; /* the atexit cleanup reads it after main returns */
	cl_conn *a = NULL, *i = NULL;
	uint8_t room[ES_ROOM_ID_BYTES];
	char *json = NULL, run[33], rid[33];
	cl_run_status st;
	dcr_buf csv, whole;
	uint8_t *buf = dcr_malloc(DCR_CHUNK_BYTES);
	uint64_t size = 0, rng = 12345;
	dcr_err err;

	td_init(&t);
	dcr_buf_init(&csv);
	dcr_buf_init(&whole);
	if (td_start(&t, NULL) < 0)
		return 1;
	{
		/* the memory budgets by default: an eighth of this machine's
		 * memory each, at least 1 GiB */
		char want[128];
		uint64_t mem = dmn_memory_bytes() / 8, floor = 1ull << 30;
		uint64_t def = mem > floor ? mem & ~((1ull << 20) - 1) : floor;
		CHECK(dmn_default_image_cache_bytes() == def && dmn_default_build_bytes() == def);
		snprintf(want, sizeof want, "memory: image cache %llu MiB, table builds %llu MiB, ",
		         (unsigned long long)(def >> 20), (unsigned long long)(def >> 20));
		CHECK(td_log_has(&t, want), " %s", want);
	}
	a = td_connect(&t, t.anna);
	i = td_connect(&t, t.ian);
	CHECK(a && i);
	if (!a || !i)
		goto out;
	json = big_room(&t);
	CHECK_OK(td_room_publish(a, json, room, &err), &err);
	dcr_buf_append_str(&csv, "email,age\n");
	for (int k = 0; k < 120000; k++)
		dcr_buf_printf(&csv, "person%06d@example.org,%d\n", k, k % 100);
	CHECK_OK(td_provision(a, room, "bank", dcr_buf_cstr(&csv), &err), &err);
	CHECK_OK(cl_run(a, room, "everything", run, &err), &err);
	CHECK_OK(td_wait_run(a, room, "everything", run, &st, 120000, &err), &err);
	CHECK(strcmp(st.state, "done") == 0 && st.rows == 120000);
	cl_run_status_release(&st);

	/* Before result.retrieved: refused. */
	CHECK_ERR(cl_result_read(a, room, run, 0, buf, 100, &err), DCR_ESTATE, &err,
	          "result.retrieved");
	/* Sequential reads in odd sizes. */
	CHECK_OK(cl_result_open(a, room, "everything", rid, &size, &err), &err);
	CHECK(strcmp(rid, run) == 0);
	CHECK(size > 2u * DCR_CHUNK_BYTES);
	for (uint64_t off = 0;;) {
		size_t want = 1000 + (size_t)(off % 77777);
		int n = cl_result_read(a, room, run, off, buf, want, &err);
		CHECK(n >= 0);
		if (n <= 0)
			break;
		dcr_buf_append(&whole, buf, (size_t)n);
		off += (uint64_t)n;
	}
	CHECK(whole.len == size);
	CHECK(whole.len > 30 && memcmp(whole.data, "email,age", 9) == 0);
	CHECK(strstr(dcr_buf_cstr(&whole), "person119999@example.org,99") != NULL);
	/* Random offsets, some across chunk boundaries, some past the end. */
	for (int k = 0; k < 200; k++) {
		uint64_t off;
		size_t want;
		int n;
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		off = (rng >> 11) % (size + 100);
		if (k % 5 == 0)
			off = (uint64_t)(1 + k % 2) * DCR_CHUNK_BYTES - 7; /* straddles a chunk */
		want = 1 + (size_t)((rng >> 40) % (3 * DCR_CHUNK_BYTES / 2));
		n = cl_result_read(a, room, run, off, buf, want, &err);
		CHECK(n >= 0);
		if (n < 0)
			break;
		if (off >= size) {
			CHECK(n == 0);
			continue;
		}
		CHECK((size_t)n <= want && (size_t)n <= DCR_CHUNK_BYTES);
		{
			uint64_t expect = size - off;
			if (expect > want)
				expect = want;
			if (expect > DCR_CHUNK_BYTES)
				expect = DCR_CHUNK_BYTES;
			CHECK((uint64_t)n == expect);
		}
		CHECK(memcmp(buf, whole.data + off, (size_t)n) == 0);
	}
	/* "done" means durable: poll without pausing, then read the log. */
	for (int k = 0; k < 8; k++) {
		struct last_ev l = {"", 0};
		char r2[33];
		CHECK_OK(cl_run(a, room, "everything", r2, &err), &err);
		for (;;) {
			CHECK_OK(cl_run_status(a, room, "everything", &st, &err), &err);
			bool fin = strcmp(st.run_id, r2) == 0 &&
			           (strcmp(st.state, "done") == 0 || strcmp(st.state, "failed") == 0);
			CHECK(strcmp(st.state, "failed") != 0);
			cl_run_status_release(&st);
			if (fin || t_failures)
				break;
		}
		CHECK_OK(cl_events(a, room, 0, ES_SEQ_ANY, last_type, &l, &err), &err);
		CHECK(strcmp(l.type, "run.completed") == 0);
	}
	/* The prepared table went into the daemon's image cache as it was
	 * built: every run, the first included, reads it from memory and
	 * gives the same result (runs that read it from the blob store: with
	 * the cache off, below). */
	CHECK(td_log_has(&t, "; kept in the image cache"));
	/* ...and was there for runs before its blob was stored (the blob
	 * itself is read back below, with the cache off) */
	CHECK(td_log_has(&t, ") ready for runs after "));
	/* built from the rows its upload checked, not from the file */
	CHECK(td_log_has(&t, "; from the rows checked at upload"));
	CHECK(!td_log_has(&t, "; from the file"));
	CHECK(!td_log_has(&t, "(1 stored images, 0 already in memory)"));
	CHECK(td_log_has(&t, "(1 stored images, 1 already in memory)"));
	{
		dcr_buf again;
		dcr_buf_init(&again);
		CHECK_OK(td_result(a, room, "everything", &again, &err), &err);
		CHECK(again.len == whole.len && memcmp(again.data, whole.data, whole.len) == 0);
		dcr_buf_release(&again);
	}
	/* ian is a participant, not an analyst. */
	CHECK_ERR(cl_result_read(i, room, run, 0, buf, 100, &err), DCR_EDENIED, &err, NULL);
	/* Withdrawn data leaves the daemon's memory: the image cache is
	 * cleared; provisioned again, the next runs read the new table. */
	{
		dcr_buf body;
		dcr_buf_init(&body);
		rm_body_deprovisioned(&body, "bank");
		CHECK_OK(cl_submit(a, room, RM_EV_DEPROVISIONED, body.data, body.len, NULL, &err),
		         &err);
		dcr_buf_release(&body);
		CHECK(td_log_has(&t, "data withdrawn or replaced: image cache cleared (1 images"));
		CHECK_OK(td_provision(a, room, "bank", dcr_buf_cstr(&csv), &err), &err);
	}
	/* The admission check: dcrd refuses a definition whose query does not
	 * compile before anything is appended (not a rule of replay). */
	{
		char *bad = big_room(&t);
		char *badq = strstr(bad, "SELECT email, age");
		uint8_t broom[ES_ROOM_ID_BYTES];
		memcpy(badq, "SELECT emial, age", 17);
		CHECK_ERR(td_room_publish(a, bad, broom, &err), DCR_EINVALID, &err,
		          "definition: computations[0] (\"everything\"): SQL error: no such "
		          "column: emial");
		free(bad);
	}
	/* A result the rules cannot record (a column name over 1024 bytes) is
	 * recorded as run.failed with the reason, not left queued. */
	{
		char *wide = big_room(&t), *w2, *alias = dcr_malloc(1101);
		uint8_t wroom[ES_ROOM_ID_BYTES];
		char wrun[33];
		memset(alias, 'c', 1100);
		alias[1100] = 0;
		w2 = dcr_asprintf("%.*sSELECT COUNT(*) AS %s FROM bank%s",
		                  (int)(strstr(wide, "SELECT email") - wide), wide, alias,
		                  strstr(wide, " ORDER BY email") + strlen(" ORDER BY email"));
		memcpy(strstr(w2, "\"name\": \"big\""), "\"name\": \"bi2\"", 13);
		CHECK_OK(td_room_publish(a, w2, wroom, &err), &err);
		CHECK_OK(td_provision(a, wroom, "bank", "email,age\nx@y.example,1\n", &err), &err);
		CHECK_OK(cl_run(a, wroom, "everything", wrun, &err), &err);
		CHECK_OK(td_wait_run(a, wroom, "everything", wrun, &st, 60000, &err), &err);
		/* a data-free class in the log; the reason, for the analyst of
		 * this unfiltered computation, as the detail */
		CHECK(strcmp(st.state, "failed") == 0 && st.error &&
		      strcmp(st.error, "result not recordable") == 0);
		CHECK(st.detail && strstr(st.detail, "the result could not be recorded: ") &&
		      strstr(st.detail, "a column name has 1 to 1024 bytes"));
		cl_run_status_release(&st);
		free(alias);
		free(wide);
		free(w2);
	}
	CHECK(td_stop(&t, SIGTERM) == 0);
	cl_close(a);
	cl_close(i);
	a = i = NULL;

	/* With the cache turned off (dcrd --image-cache-mb 0) every run reads
	 * its table from the blob store, and the result is the same. */
	{
		static const char *const no_cache[] = {"--image-cache-mb", "0", NULL};
		unsigned hits0 = log_count(&t, "1 already in memory"),
		         miss0 = log_count(&t, "(1 stored images, 0 already in memory)");
		CHECK(td_start(&t, no_cache) == 0);
		a = td_connect(&t, t.anna);
		CHECK(a != NULL);
		for (int k = 0; a && k < 2; k++) {
			char r3[33];
			dcr_buf again;
			dcr_buf_init(&again);
			CHECK_OK(cl_run(a, room, "everything", r3, &err), &err);
			CHECK_OK(td_wait_run(a, room, "everything", r3, &st, 120000, &err), &err);
			cl_run_status_release(&st);
			CHECK_OK(td_result(a, room, "everything", &again, &err), &err);
			CHECK(again.len == whole.len && memcmp(again.data, whole.data, whole.len) == 0);
			dcr_buf_release(&again);
		}
		CHECK(log_count(&t, "1 already in memory") == hits0);
		CHECK(log_count(&t, "(1 stored images, 0 already in memory)") == miss0 + 2);
		cl_close(a);
		a = NULL;
		CHECK(td_stop(&t, SIGTERM) == 0);
	}
	/* An image larger than half the cache (1 MiB) is not kept: it goes
	 * to the blob store as it is written, and the first run reads it
	 * back. One build at a time (--build-memory-mb 1: a build always
	 * starts when no other runs). The same result, bit for bit. */
	{
		static const char *const small[] = {"--image-cache-mb", "1", "--build-memory-mb", "1",
		                                    NULL};
		unsigned kept0 = log_count(&t, "; kept in the image cache"),
		         ready0 = log_count(&t, ") ready for runs after "),
		         built0 = log_count(&t, "prepared table bank (blob "),
		         miss0 = log_count(&t, "(1 stored images, 0 already in memory)");
		char r5[33];
		dcr_buf again;
		dcr_buf_init(&again);
		CHECK(td_start(&t, small) == 0);
		a = td_connect(&t, t.anna);
		CHECK(a != NULL);
		if (a) {
			CHECK_OK(td_provision(a, room, "bank", dcr_buf_cstr(&csv), &err), &err);
			CHECK_OK(cl_run(a, room, "everything", r5, &err), &err);
			CHECK_OK(td_wait_run(a, room, "everything", r5, &st, 120000, &err), &err);
			cl_run_status_release(&st);
			CHECK_OK(td_result(a, room, "everything", &again, &err), &err);
			CHECK(again.len == whole.len && memcmp(again.data, whole.data, whole.len) == 0);
		}
		CHECK(td_log_has(&t, "memory: image cache 1 MiB, table builds 1 MiB, rows held "
		                     "from uploads 512 MiB"));
		CHECK(log_count(&t, "prepared table bank (blob ") == built0 + 1);
		CHECK(log_count(&t, "; kept in the image cache") == kept0);
		CHECK(log_count(&t, ") ready for runs after ") == ready0);
		CHECK(log_count(&t, "(1 stored images, 0 already in memory)") == miss0 + 1);
		dcr_buf_release(&again);
		cl_close(a);
		a = NULL;
		CHECK(td_stop(&t, SIGTERM) == 0);
	}
	/* With no memory for rows held from uploads (--upload-rows-mb 0), or
	 * less than this file's rows take (8 MiB, of which one upload may
	 * hold half: the file, 3.3 MB, is below that, so its rows are held
	 * at first, but they take ~5 MiB with their offsets, so the upload
	 * stops holding them part way), the table is built from the file:
	 * the same result, bit for bit. */
	{
		static const char *const no_rows[] = {"--upload-rows-mb", "0", NULL};
		static const char *const few_rows[] = {"--upload-rows-mb", "8", NULL};
		const char *const *opts[2] = {no_rows, few_rows};
		CHECK(csv.len > 2 * 1024 * 1024);
		for (int k = 0; k < 2 && !t_failures; k++) {
			unsigned held0 = log_count(&t, "; from the rows checked at upload"),
			         file0 = log_count(&t, "; from the file");
			char r4[33];
			dcr_buf again;
			dcr_buf_init(&again);
			CHECK(td_start(&t, opts[k]) == 0);
			a = td_connect(&t, t.anna);
			CHECK(a != NULL);
			if (a) {
				CHECK_OK(td_provision(a, room, "bank", dcr_buf_cstr(&csv), &err), &err);
				CHECK_OK(cl_run(a, room, "everything", r4, &err), &err);
				CHECK_OK(td_wait_run(a, room, "everything", r4, &st, 120000, &err),
				         &err);
				cl_run_status_release(&st);
				CHECK_OK(td_result(a, room, "everything", &again, &err), &err);
				CHECK(again.len == whole.len &&
				      memcmp(again.data, whole.data, whole.len) == 0);
			}
			CHECK(log_count(&t, "; from the file") == file0 + 1);
			CHECK(log_count(&t, "; from the rows checked at upload") == held0);
			CHECK(log_count(&t, "its rows are no longer held") == (unsigned)k);
			dcr_buf_release(&again);
			cl_close(a);
			a = NULL;
			CHECK(td_stop(&t, SIGTERM) == 0);
		}
	}
out:
	cl_close(a);
	cl_close(i);
	free(json);
	free(buf);
	dcr_buf_release(&csv);
	dcr_buf_release(&whole);
	if (t_failures) {
		char *log = td_log_text(&t);
		size_t n = strlen(log);
		fprintf(stderr, "---- dcrd log (tail) ----\n%s", n > 6000 ? log + n - 6000 : log);
		free(log);
	}
	td_cleanup();
	return t_failures ? 1 : 0;
}
