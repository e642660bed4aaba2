/* test_dmn_blob.c: the encrypted blob store (daemon/blob.c).
 *
 * Round trips at the chunk boundaries (0, 1, chunk-1, chunk, chunk+1,
 * 3 chunks + 5), random-access reads, streaming writes in odd pieces, and
 * every tampering the format must catch: a flipped ciphertext or tag byte,
 * a truncated file, the last chunk dropped (with the size field patched to
 * match), two chunks swapped, a header transplanted from another blob, the
 * wrong master key. Plus: no plaintext on disk, temp files removed on
 * abort and at open; removals held while a backup runs (hold/unhold);
 * writes around the page cache (O_DIRECT) where the file system allows,
 * and the same bytes through ordinary writes when a direct write comes
 * back short or fails (fault_inject.h). */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../daemon/dmn_int.h"

#include "fault_inject.h"
#include "test.h"

#define CH  DMN_BLOB_CHUNK_BYTES
#define HDR 88u

static char dir[64];

static int rm_cb(const char *p, const struct stat *st, int f, struct FTW *w)
{
	(void)st;
	(void)f;
	(void)w;
	return remove(p);
}

static void cleanup(void)
{
	if (dir[0])
		nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static char *path_of(const char *id)
{
	return dcr_asprintf("%s/blobs/%.2s/%s", dir, id, id);
}

static int read_all(dmn_blobs *b, const char *id, dcr_buf *out, dcr_err *err)
{
	dcr_buf_reset(out);
	return dmn__blob_read_all(b, id, 64u * 1024 * 1024, out, err);
}

static void patch(const char *id, uint64_t off, uint8_t xor_mask)
{
	char *p = path_of(id);
	int fd = open(p, O_RDWR);
	uint8_t c;

	CHECK(fd >= 0);
	CHECK(pread(fd, &c, 1, (off_t)off) == 1);
	c ^= xor_mask;
	CHECK(pwrite(fd, &c, 1, (off_t)off) == 1);
	close(fd);
	free(p);
}

static void test_roundtrip(dmn_blobs *b)
{
	/* up to 9 chunks: several of the direct writer's 4 MiB blocks */
	/* and files of exactly 4 KiB, 8 KiB and 5 MiB: no unaligned tail */
	static const size_t sizes[] = {0,          1,          100,        CH - 1,
	                               CH,         CH + 1,     3 * CH + 5, 4 * CH - 3,
	                               9 * CH + 7, 4096 - 104, 8192 - 104, 5 * CH - 168};
	uint8_t *data = dcr_malloc(9 * CH + 7);
	dcr_buf out;
	dcr_err err;

	dcr_buf_init(&out);
	fill(data, 9 * CH + 7, 7);
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		size_t n = sizes[k];
		char id[DMN_BLOB_HEX_BYTES];
		uint8_t sha[32], want[32];
		dmn_blob_writer *w;
		uint64_t bytes = 0;
		size_t off = 0, step = 1;
		char *p;
		struct stat st;

		CHECK(dmn__blob_create(b, &w, &err) == 0);
		/* odd pieces: 1, 2, 4, ... bytes */
		while (off < n) {
			size_t m = n - off < step ? n - off : step;
			CHECK(dmn__blob_write(w, data + off, m, &err) == 0);
			off += m;
			step = step * 2 + 1;
		}
		CHECK(dmn__blob_commit(w, id, sha, &bytes, &err) == 0);
		CHECK(dmn__blob_id_valid(id));
		CHECK(bytes == n);
		dcr_sha256(data, n, want);
		CHECK(memcmp(sha, want, 32) == 0);
		p = path_of(id);
		CHECK(stat(p, &st) == 0);
		CHECK((uint64_t)st.st_size == HDR + n + 16u * (n == 0 ? 1 : (n + CH - 1) / CH));
		CHECK((st.st_mode & 0777) == 0600);
		free(p);
		CHECK(read_all(b, id, &out, &err) == 0);
		CHECK(out.len == n && (n == 0 || memcmp(out.data, data, n) == 0));

		/* random access across chunk boundaries */
		if (n > 10) {
			dmn_blob_reader *r;
			uint8_t buf[4096];
			size_t got;
			uint64_t offs[] = {0, n / 2, n - 3, CH - 2 < n ? CH - 2 : 0, n};
			CHECK(dmn__blob_open(b, id, &r, &err) == 0);
			CHECK(dmn__blob_size(r) == n);
			for (size_t j = 0; j < sizeof offs / sizeof offs[0]; j++) {
				size_t expect = n - offs[j] < sizeof buf ? n - offs[j] : sizeof buf;
				CHECK(dmn__blob_pread(r, offs[j], buf, sizeof buf, &got, &err) ==
				      0);
				CHECK(got == expect);
				CHECK(memcmp(buf, data + offs[j], got) == 0);
			}
			CHECK(dmn__blob_pread(r, n + 100, buf, sizeof buf, &got, &err) == 0 &&
			      got == 0);
			dmn__blob_close(r);
		}
	}
	free(data);
	dcr_buf_release(&out);
}

static void put(dmn_blobs *b, size_t n, uint32_t seed, char id[DMN_BLOB_HEX_BYTES])
{
	uint8_t *data = dcr_malloc(n ? n : 1), sha[32];
	dcr_err err;

	fill(data, n, seed);
	CHECK(dmn__blob_put(b, data, n, id, sha, &err) == 0);
	free(data);
}

static void copy_file(const char *from, const char *to)
{
	dcr_buf b;
	dcr_err err;

	dcr_buf_init(&b);
	CHECK(dcr_read_file(from, 64u * 1024 * 1024, &b, &err) == 0);
	CHECK(dcr_write_file_atomic(to, b.data, b.len, 0600, &err) == 0);
	dcr_buf_release(&b);
}

static void test_tamper(dmn_blobs *b, const uint8_t master[32])
{
	char id[DMN_BLOB_HEX_BYTES], id2[DMN_BLOB_HEX_BYTES];
	dcr_buf out;
	dcr_err err;
	char *p, *p2;
	uint64_t n = 2 * CH + 1000;

	dcr_buf_init(&out);
	/* a flipped ciphertext byte in chunk 1 */
	put(b, n, 1, id);
	patch(id, HDR + (CH + 16) + 5, 0x01);
	CHECK(read_all(b, id, &out, &err) == DCR_EINTEGRITY);
	CHECK(strstr(err.msg, "chunk 1") != NULL);
	/* ...but chunk 0 still reads (random access authenticates per chunk) */
	{
		dmn_blob_reader *r;
		uint8_t buf[16];
		size_t got;
		CHECK(dmn__blob_open(b, id, &r, &err) == 0);
		CHECK(dmn__blob_pread(r, 0, buf, sizeof buf, &got, &err) == 0 && got == 16);
		CHECK(dmn__blob_pread(r, CH + 1, buf, sizeof buf, &got, &err) == DCR_EINTEGRITY);
		dmn__blob_close(r);
	}

	/* a flipped tag byte of the last chunk */
	put(b, n, 2, id);
	patch(id, HDR + 2 * (CH + 16) + 1000 + 3, 0x80);
	CHECK(read_all(b, id, &out, &err) == DCR_EINTEGRITY);

	/* truncated by a byte */
	put(b, n, 3, id);
	p = path_of(id);
	CHECK(truncate(p, (off_t)(HDR + n + 3 * 16 - 1)) == 0);
	CHECK(read_all(b, id, &out, &err) == DCR_EINTEGRITY);
	free(p);

	/* the last chunk dropped and the size field patched to match: chunk 1
	 * was sealed as not-last, so it no longer authenticates as the end */
	put(b, n, 4, id);
	p = path_of(id);
	CHECK(truncate(p, (off_t)(HDR + 2 * (CH + 16))) == 0);
	{
		int fd = open(p, O_RDWR);
		uint8_t sz[8];
		dcr_put_be64(sz, 2 * CH);
		CHECK(pwrite(fd, sz, 8, 12) == 8);
		close(fd);
	}
	CHECK(read_all(b, id, &out, &err) == DCR_EINTEGRITY);
	free(p);

	/* chunks 0 and 1 swapped */
	put(b, n, 5, id);
	p = path_of(id);
	{
		int fd = open(p, O_RDWR);
		uint8_t *c0 = dcr_malloc(CH + 16), *c1 = dcr_malloc(CH + 16);
		CHECK(pread(fd, c0, CH + 16, HDR) == (ssize_t)(CH + 16));
		CHECK(pread(fd, c1, CH + 16, HDR + CH + 16) == (ssize_t)(CH + 16));
		CHECK(pwrite(fd, c1, CH + 16, HDR) == (ssize_t)(CH + 16));
		CHECK(pwrite(fd, c0, CH + 16, HDR + CH + 16) == (ssize_t)(CH + 16));
		close(fd);
		free(c0);
		free(c1);
	}
	CHECK(read_all(b, id, &out, &err) == DCR_EINTEGRITY);
	free(p);

	/* one blob's file under another blob's id: the key does not unwrap */
	put(b, 100, 6, id);
	put(b, 100, 7, id2);
	p = path_of(id);
	p2 = path_of(id2);
	copy_file(p, p2);
	CHECK(read_all(b, id2, &out, &err) == DCR_EINTEGRITY);
	free(p);
	free(p2);

	/* the wrong master key */
	put(b, 100, 8, id);
	{
		dmn_blobs *other = NULL;
		uint8_t mk[32];
		memcpy(mk, master, 32);
		mk[0] ^= 1;
		CHECK(dmn__blobs_open(&other, dir, mk, &err) == 0);
		CHECK(read_all(other, id, &out, &err) == DCR_EINTEGRITY);
		CHECK(read_all(b, id, &out, &err) == 0);
		dmn__blobs_close(other);
	}

	/* bad and unknown ids */
	CHECK(read_all(b, "../../etc/passwd", &out, &err) == DCR_EINVALID);
	CHECK(read_all(b, "00000000000000000000000000000000", &out, &err) == DCR_ENOTFOUND);
	dcr_buf_release(&out);
}

static int count_tmp(void)
{
	char *p = dcr_asprintf("%s/tmp", dir);
	DIR *d = opendir(p);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	if (d)
		closedir(d);
	free(p);
	return n;
}

static void test_plaintext_and_tmp(dmn_blobs **b, const uint8_t master[32])
{
	static const char secret[] = "customer,secret-value-4242\n";
	char id[DMN_BLOB_HEX_BYTES];
	uint8_t sha[32];
	dmn_blob_writer *w;
	dcr_buf f;
	dcr_err err;
	char *p;

	CHECK(dmn__blob_put(*b, secret, strlen(secret), id, sha, &err) == 0);
	p = path_of(id);
	dcr_buf_init(&f);
	CHECK(dcr_read_file(p, 1 << 20, &f, &err) == 0);
	CHECK(!memmem(f.data, f.len, "secret-value", 12));
	dcr_buf_release(&f);
	free(p);

	/* abort removes the temp file */
	CHECK(dmn__blob_create(*b, &w, &err) == 0);
	CHECK(dmn__blob_write(w, secret, strlen(secret), &err) == 0);
	CHECK(count_tmp() == 1);
	dmn__blob_abort(w);
	CHECK(count_tmp() == 0);

	/* a temp file left by a crash is removed at the next open */
	CHECK(dmn__blob_create(*b, &w, &err) == 0);
	CHECK(dmn__blob_write(w, secret, strlen(secret), &err) == 0);
	CHECK(count_tmp() == 1);
	dmn__blobs_close(*b);
	CHECK(dmn__blobs_open(b, dir, master, &err) == 0);
	CHECK(count_tmp() == 0);
	dmn__blob_abort(w); /* frees it; the file is already gone */
}

/* While a hold is taken (a backup in progress) removals only note the
 * blob: it stays readable until the last hold is released, then goes. */
static void test_hold(dmn_blobs *b)
{
	static const char data[] = "x\n1\n";
	char id1[DMN_BLOB_HEX_BYTES], id2[DMN_BLOB_HEX_BYTES];
	uint8_t sha[32];
	dcr_buf out;
	dcr_err err;
	char *p1, *p2;

	CHECK(dmn__blob_put(b, data, strlen(data), id1, sha, &err) == 0);
	CHECK(dmn__blob_put(b, data, strlen(data), id2, sha, &err) == 0);
	p1 = path_of(id1);
	p2 = path_of(id2);
	dmn__blobs_hold(b);
	dmn__blobs_hold(b); /* two backups at once */
	CHECK(dmn__blob_remove(b, id1) == 0);
	CHECK(access(p1, F_OK) == 0); /* still there */
	dcr_buf_init(&out);
	CHECK(dmn__blob_read_all(b, id1, 1 << 20, &out, &err) == 0 && out.len == strlen(data));
	dcr_buf_release(&out);
	dmn__blobs_unhold(b);
	CHECK(access(p1, F_OK) == 0); /* one backup still holds */
	CHECK(dmn__blob_remove(b, id2) == 0);
	dmn__blobs_unhold(b);
	CHECK(access(p1, F_OK) != 0 && access(p2, F_OK) != 0); /* both gone now */
	/* without a hold a removal is at once */
	CHECK(dmn__blob_put(b, data, strlen(data), id1, sha, &err) == 0);
	free(p1);
	p1 = path_of(id1);
	CHECK(dmn__blob_remove(b, id1) == 0 && access(p1, F_OK) != 0);
	CHECK(dmn__blob_remove(b, "not-an-id") == DCR_EINVALID);
	free(p1);
	free(p2);
}

static size_t resident(const char *path, size_t *pages);

/* Whether a direct write in the test directory leaves the page cache
 * alone: not on every file system (some refuse O_DIRECT, and tmpfs takes
 * it but keeps its data in the page cache anyway). */
static bool direct_ok(void)
{
	char *p = dcr_asprintf("%s/direct-probe", dir);
	int fd = open(p, O_WRONLY | O_CREAT | O_DIRECT, 0600);
	bool ok = false;
	void *block = NULL;
	size_t pages;

	if (fd >= 0 && posix_memalign(&block, 4096, 4 * 4096) == 0) {
		memset(block, 7, 4 * 4096);
		ok = pwrite(fd, block, 4 * 4096, 0) == 4 * 4096;
	}
	if (fd >= 0)
		close(fd);
	if (ok)
		ok = resident(p, &pages) == 0;
	free(block);
	unlink(p);
	free(p);
	return ok;
}

/* Pages of the file at path in the page cache, and of how many. */
static size_t resident(const char *path, size_t *pages)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), n, in = 0;
	unsigned char *vec;
	void *m;

	*pages = 0;
	CHECK(fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0);
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0) {
		if (fd >= 0)
			close(fd);
		return SIZE_MAX;
	}
	n = ((size_t)st.st_size + pg - 1) / pg;
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED);
	if (m == MAP_FAILED) {
		close(fd);
		return SIZE_MAX;
	}
	vec = dcr_calloc(n, 1);
	CHECK(mincore(m, (size_t)st.st_size, vec) == 0);
	for (size_t i = 0; i < n; i++)
		in += vec[i] & 1;
	free(vec);
	munmap(m, (size_t)st.st_size);
	close(fd);
	*pages = n;
	return in;
}

static void write_blob(dmn_blobs *b, const uint8_t *data, size_t n, char id[DMN_BLOB_HEX_BYTES],
                       int *rc)
{
	dmn_blob_writer *w;
	dcr_err err;

	*rc = dmn__blob_create(b, &w, &err);
	CHECK(*rc == 0);
	if (*rc < 0)
		return;
	for (size_t off = 0; off < n && *rc == 0; off += 300000)
		*rc = dmn__blob_write(w, data + off, n - off < 300000 ? n - off : 300000, &err);
	if (*rc == 0)
		*rc = dmn__blob_commit(w, id, NULL, NULL, &err);
	else
		dmn__blob_abort(w);
}

/* Write point `point` of a blob of data fails as kind says; the blob must
 * still be written, with the same bytes. */
static void same_bytes_after(dmn_blobs *b, int kind, long point, const uint8_t *data, size_t n)
{
	char id[DMN_BLOB_HEX_BYTES];
	dcr_buf out;
	dcr_err err;
	int rc;

	dcr_buf_init(&out);
	fi_arm(getpid(), FI_WRITE, kind, 0, point);
	write_blob(b, data, n, id, &rc);
	fi_disarm();
	CHECK(rc == 0 && fi->fired == 1);
	CHECK(rc < 0 ||
	      (read_all(b, id, &out, &err) == 0 && out.len == n && !memcmp(out.data, data, n)));
	CHECK(rc < 0 || dmn__blob_remove(b, id) == 0);
	dcr_buf_release(&out);
}

/* A large blob written around the page cache; a direct write refused,
 * short, then failing, at each of the first blocks. */
static void test_direct(dmn_blobs *b)
{
	size_t n = 9 * CH + 7, pages;
	uint8_t *data = dcr_malloc(n);
	char id[DMN_BLOB_HEX_BYTES];
	dcr_buf out;
	dcr_err err;
	bool direct = direct_ok();
	int rc;

	dcr_buf_init(&out);
	fill(data, n, 11);
	write_blob(b, data, n, id, &rc);
	CHECK(rc == 0);
	if (direct) {
		/* the blocks went to the disk, not through the page cache:
		 * only the header's block and the tail are cached */
		char *p = path_of(id);
		size_t in = resident(p, &pages);
		if (in > 4)
			fprintf(stderr, "  %zu of %zu pages of a new blob in the page cache\n", in,
			        pages);
		CHECK(in <= 4);
		free(p);
	} else {
		fprintf(stderr,
		        "  (direct writes on %s do not bypass the page cache: what stays "
		        "cached is not checked)\n",
		        dir);
	}
	CHECK(read_all(b, id, &out, &err) == 0 && out.len == n && !memcmp(out.data, data, n));
	CHECK(dmn__blob_remove(b, id) == 0);

	for (long point = 1; point <= 3; point++) {
		/* refused (as by a file system that cannot write around the
		 * page cache; only a direct write may be), or short: the rest
		 * of the blob the ordinary way, same bytes */
		if (direct)
			same_bytes_after(b, FI_EINVAL, point, data, n);
		same_bytes_after(b, FI_SHORT, point, data, n);
		/* failed: the blob fails, and leaves nothing */
		fi_arm(getpid(), FI_WRITE, FI_EIO, 0, point);
		write_blob(b, data, n, id, &rc);
		fi_disarm();
		CHECK(rc < 0 && fi->fired == 1);
		CHECK(count_tmp() == 0);
	}
	dcr_buf_release(&out);
	free(data);
}

int main(void)
{
	dmn_blobs *b = NULL;
	uint8_t master[32];
	dcr_err err;

	snprintf(dir, sizeof dir, "/tmp/dcr-blob-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	atexit(cleanup);
	fi_setup(dir);
	fi->no_sync = 0; /* this test's fsyncs are real */
	dcr_random(master, sizeof master);
	CHECK(dmn__blobs_open(&b, dir, master, &err) == 0);
	if (!b)
		return 1;
	test_roundtrip(b);
	test_tamper(b, master);
	test_plaintext_and_tmp(&b, master);
	test_hold(b);
	test_direct(b);
	dmn__blobs_close(b);
	return t_failures ? 1 : 0;
}
