/* test_dmn_quota.c: disk quotas and the expiry of unsigned uploads
 * (docs/daemon.md, "Limits and quotas"), against a real dcrd started with
 * small quotas (--max-room-blob-mb 1 --max-key-blob-mb 2) and a short
 * expiry (--upload-expiry-s 1):
 *   - an upload finished but never signed is deleted (its blobs gone from
 *     disk) while dcrd runs; a signed one stays;
 *   - the room quota refuses a second owner's file, the key quota a file
 *     of a key that fills it across rooms: at upload.begin when the size
 *     is given, else at the chunk that passes it; ELIMIT names the quota;
 *     what was stored before is intact and no temp file stays;
 *   - a file within every quota is accepted. */
#include <dirent.h>

#include "test_dmn_common.h"

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

static bool blob_exists(td *t, const char *id)
{
	char *p = dcr_asprintf("%s/blobs/%.2s/%s", t->data, id, id);
	bool ok = access(p, F_OK) == 0;

	free(p);
	return ok;
}

/* A file of n bytes for the file dataset "contracts". */
static char *filler(size_t n)
{
	char *s = dcr_malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		s[i] = (char)('a' + i % 26);
	s[n] = 0;
	return s;
}

/* Provisions contracts with content s; hint: tell dcrd the size first. */
static int put_file(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *s, bool hint,
                    dcr_err *err)
{
	td_src src = {s, strlen(s), 0, 0};
	return cl_provision(c, room, "contracts", "c.pdf", hint ? src.n : 0, td_src_read, &src,
	                    NULL, NULL, err);
}

/* upload.begin, one chunk, upload.end, and no signature: the blob id. */
static void unsigned_upload(cl_conn *a, const uint8_t room[ES_ROOM_ID_BYTES], char *blob)
{
	proto_map m;
	dcr_buf args, rb;
	dcr_mp_doc *d = NULL;
	uint64_t up = 0;
	char hex[ES_ROOM_HEX_BYTES];
	const char *s = NULL;
	size_t sn = 0;
	dcr_err err;

	blob[0] = 0;
	es_room_format(room, hex);
	dcr_buf_init(&args);
	dcr_buf_init(&rb);
	proto_map_init(&m);
	dcr_mpw_str(proto_map_key(&m, "room"), hex);
	dcr_mpw_str(proto_map_key(&m, "dataset"), "contracts");
	dcr_mpw_str(proto_map_key(&m, "file"), "orphan.txt");
	proto_map_encode(&m, &args);
	proto_map_release(&m);
	CHECK_OK(cl_call(a, "upload.begin", args.data, args.len, &rb, &d, &err), &err);
	if (d)
		dcr_mp_get_u64(dcr_mp_root(d), "upload", &up, &err);
	dcr_mp_doc_free(d);
	d = NULL;
	dcr_buf_reset(&args);
	proto_map_init(&m);
	dcr_mpw_uint(proto_map_key(&m, "upload"), up);
	dcr_mpw_bin(proto_map_key(&m, "data"), "never signed", 12);
	proto_map_encode(&m, &args);
	proto_map_release(&m);
	CHECK_OK(cl_call(a, "upload.chunk", args.data, args.len, NULL, NULL, &err), &err);
	dcr_buf_reset(&args);
	proto_map_init(&m);
	dcr_mpw_uint(proto_map_key(&m, "upload"), up);
	proto_map_encode(&m, &args);
	proto_map_release(&m);
	CHECK_OK(cl_call(a, "upload.end", args.data, args.len, &rb, &d, &err), &err);
	if (d && dcr_mp_get_str(dcr_mp_root(d), "blob", &s, &sn, &err) == 0 && sn == 32) {
		memcpy(blob, s, 32);
		blob[32] = 0;
	}
	dcr_mp_doc_free(d);
	dcr_buf_release(&args);
	dcr_buf_release(&rb);
}

static void test_expiry(td *t, cl_conn *a, const uint8_t room[ES_ROOM_ID_BYTES])
{
	char blob[33], *blobs = dcr_asprintf("%s/blobs", t->data);
	int n0 = count_files(blobs);
	uint64_t t0;
	dcr_err err;

	/* signed: stays */
	CHECK_OK(put_file(a, room, "signed contract", true, &err), &err);
	CHECK(count_files(blobs) == n0 + 2); /* the file and its statistics */
	/* not signed: on disk at first, deleted once it expires */
	unsigned_upload(a, room, blob);
	CHECK(blob[0] && blob_exists(t, blob));
	CHECK(count_files(blobs) == n0 + 4);
	t0 = dcr_mono_ms();
	while (blob_exists(t, blob) && dcr_mono_ms() - t0 < 60000)
		usleep(50000);
	CHECK(!blob_exists(t, blob));
	CHECK(count_files(blobs) == n0 + 2);
	CHECK(td_log_has(t, "expired unsigned after"));
	free(blobs);
}

static void test_quotas(td *t, cl_conn *a, cl_conn *i, const uint8_t r1[ES_ROOM_ID_BYTES],
                        const uint8_t r2[ES_ROOM_ID_BYTES], const uint8_t r3[ES_ROOM_ID_BYTES])
{
	char *tmp = dcr_asprintf("%s/tmp", t->data), *blobs = dcr_asprintf("%s/blobs", t->data);
	char *big = filler(700u * 1024), *huge = filler(3u * 1024 * 1024);
	int n0;
	dcr_err err;

	/* Room quota 1 MiB: anna's 700 KiB fit, ian's 700 KiB more do not,
	 * refused at upload.begin (size given) and at the chunk (not given). */
	CHECK_OK(put_file(a, r1, big, true, &err), &err);
	n0 = count_files(blobs);
	{
		/* ian owns insurer: a table; 700 KiB of valid rows */
		dcr_buf csv;
		dcr_buf_init(&csv);
		dcr_buf_append_str(&csv, "email,risk\n");
		while (csv.len < 700u * 1024)
			dcr_buf_printf(&csv, "u%zu@x.org,%zu\n", csv.len, csv.len % 7);
		CHECK_ERR(td_provision(i, r1, "insurer", dcr_buf_cstr(&csv), &err), DCR_ELIMIT, &err,
		          "room upload quota");
		CHECK(strstr(err.msg, "--max-room-blob-mb") != NULL);
		td_src src = {dcr_buf_cstr(&csv), csv.len, 0, 0};
		CHECK_ERR(cl_provision(i, r1, "insurer", "i.csv", 0, td_src_read, &src, NULL, NULL,
		                       &err),
		          DCR_ELIMIT, &err, "room upload quota");
		dcr_buf_release(&csv);
	}
	CHECK(count_files(blobs) == n0);
	CHECK(count_files(tmp) == 0);
	/* Key quota 2 MiB: 700 KiB in r1 and r2 fit; 700 KiB in r3 do not. */
	CHECK_OK(put_file(a, r2, big, false, &err), &err);
	n0 = count_files(blobs);
	CHECK_ERR(put_file(a, r3, big, true, &err), DCR_ELIMIT, &err, "key upload quota");
	CHECK(strstr(err.msg, "--max-key-blob-mb") != NULL);
	CHECK_ERR(put_file(a, r3, big, false, &err), DCR_ELIMIT, &err, "key upload quota");
	/* a stream past every quota stops at the chunk that passes it */
	CHECK_ERR(put_file(a, r3, huge, false, &err), DCR_ELIMIT, &err, "quota");
	CHECK(count_files(blobs) == n0);
	CHECK(count_files(tmp) == 0);
	/* what was stored is intact: r1's file reads back whole */
	{
		size_t cap = strlen(big) + 1, got = 0;
		char *back = dcr_malloc(cap);
		for (;;) {
			int rc = cl_data_read(a, r1, "contracts", NULL, got, back + got, cap - got,
			                      NULL, &err);
			CHECK(rc >= 0);
			if (rc <= 0)
				break;
			got += (size_t)rc;
		}
		CHECK(got == strlen(big) && memcmp(back, big, got) == 0);
		free(back);
	}
	/* withdrawing frees the key's quota: the same file now fits */
	CHECK_OK(put_file(a, r2, "small", true, &err), &err);
	CHECK_OK(put_file(a, r3, big, true, &err), &err);
	free(big);
	free(huge);
	free(tmp);
	free(blobs);
}

int main(void)
{
	static td t; /* the atexit cleanup reads it after main returns */
	static const char *const extra[] = {"--upload-expiry-s", "1", "--max-room-blob-mb", "1",
	                                    "--max-key-blob-mb", "2", NULL};
	cl_conn *a = NULL, *i = NULL;
	uint8_t r1[ES_ROOM_ID_BYTES], r2[ES_ROOM_ID_BYTES], r3[ES_ROOM_ID_BYTES];
	char *j1, *j2, *j3;
	dcr_err err;

	td_init(&t);
	if (td_start(&t, extra) < 0)
		return 1;
	a = td_connect(&t, t.anna);
	i = td_connect(&t, t.ian);
	j1 = td_room_json(&t, "quota-1");
	j2 = td_room_json(&t, "quota-2");
	j3 = td_room_json(&t, "quota-3");
	CHECK(a && i);
	if (a && i) {
		CHECK_OK(td_room_publish(a, j1, r1, &err), &err);
		CHECK_OK(td_room_publish(a, j2, r2, &err), &err);
		CHECK_OK(td_room_publish(a, j3, r3, &err), &err);
		test_expiry(&t, a, r3);
		test_quotas(&t, a, i, r1, r2, r3);
	}
	cl_close(a);
	cl_close(i);
	free(j1);
	free(j2);
	free(j3);
	CHECK(td_stop(&t, SIGTERM) == 0);
	if (t_failures) {
		char *log = td_log_text(&t);
		fprintf(stderr, "---- dcrd log ----\n%s", log);
		free(log);
	}
	td_cleanup();
	return t_failures ? 1 : 0;
}
