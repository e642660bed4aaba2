/* blob.c: the encrypted blob store (docs/daemon.md, "Blob format").
 *
 * A blob is a file DIR/blobs/XX/ID (ID = 32 random hex chars, XX its first
 * two) holding an 88-byte header and the plaintext sealed with AES-256-GCM
 * in chunks of DMN_BLOB_CHUNK_BYTES under a random per-blob key. The
 * per-blob key is itself sealed (wrapped) by the daemon's master key in the
 * header. Chunk i uses nonce = prefix(8 random bytes) || be32(i) and AAD =
 * blob id (16 bytes) || be32(i) || last flag (1 byte): a reordered, dropped,
 * truncated or transplanted chunk fails authentication. An empty blob still
 * has one (empty, last) chunk so that it too is authenticated.
 *
 * Blobs are written once: to DIR/tmp first, fsynced, then renamed into
 * place, so a crash leaves either no blob or a whole one (and temp files
 * that the next start removes). Reads decrypt only the chunks they touch;
 * a reader caches its last chunk for sequential access.
 *
 * Writes bypass the page cache where the file system allows (O_DIRECT):
 * each sealed chunk goes into an aligned buffer, and its whole 4 KiB
 * blocks go to the disk (what is left of the last block waits for the next
 * chunk); the unaligned tail and the header are written through the page
 * cache at commit. The buffer takes the place of the sealed chunk's, so a
 * writer holds no more memory than before. A blob is written once and
 * read rarely (a prepared table is served from the image cache), so
 * copying GBs of it into page cache only evicted what other rooms read;
 * and on a virtual machine whose host reclaims the guest's free memory,
 * fresh page cache cost more than the disk (docs/daemon.md, "Blob
 * format"). A file system without O_DIRECT, or a direct write refused
 * (EINVAL) or short, falls back to ordinary writes for the rest of the
 * blob: the bytes on disk are the same either way.
 *
 * Uploads hand their bytes to the writer with dmn__blob_write_start: a
 * helper thread (BLOB_HELPERS of them per store) hashes, encrypts and
 * writes them while the request's thread validates the same bytes, and
 * dmn__blob_write_wait joins the two. One job per writer at a time, the
 * caller's buffer stays valid until the wait: no copy, bounded memory. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dmn_int.h"

#define BLOB_MAGIC     "DCRBLOB1"
#define BLOB_HDR_BYTES 88u
#define BLOB_KEY_AAD   "dcr.blob.key.v1"

#define BLOB_HELPERS 2

/* Direct writes: the alignment asked of buffer, offset and length (the
 * largest logical block size in use). */
#define BLOB_ALIGN 4096u

struct dmn_blobs {
	char *blob_dir;
	char *tmp_dir;
	uint8_t master[DCR_AES_KEY_BYTES];
	/* helper threads for dmn__blob_write_start */
	pthread_mutex_t mu;
	pthread_cond_t cv;   /* a job was queued, or stopping */
	pthread_cond_t done; /* a job finished */
	dmn_blob_writer *q_head, *q_tail;
	pthread_t helpers[BLOB_HELPERS];
	size_t nhelpers;
	bool stop;
	/* backups in progress (admin.c): while holds > 0 removals are
	 * deferred to the last release, so every blob a backup's snapshot
	 * names stays readable until the backup ends (under mu) */
	unsigned holds;
	char (*deferred)[DMN_BLOB_HEX_BYTES];
	size_t ndeferred, deferred_cap;
};

struct dmn_blob_writer {
	dmn_blobs *b;
	int fd;
	char *tmp_path;
	uint8_t id[DMN_BLOB_ID_BYTES];
	uint8_t key[DCR_AES_KEY_BYTES];
	uint8_t prefix[8];
	uint8_t *buf; /* plaintext of the chunk being filled */
	size_t have;
	/* sealed bytes not yet written, from file offset out_off
	 * (BLOB_ALIGN-aligned memory and offset; the header's 88 bytes are a
	 * placeholder while out_off is 0) */
	uint8_t *out;
	size_t out_len;
	uint64_t out_off;
	bool direct; /* the file is open O_DIRECT */
	uint32_t index;
	uint64_t size;
	dcr_sha256_ctx *sha;
	bool failed;
	/* the job handed to a helper (under b->mu) */
	dmn_blob_writer *q_next;
	const void *job_p;
	size_t job_n;
	int job_state; /* 0 none, 1 queued or running, 2 done */
	int job_rc;
	dcr_err job_err;
};

struct dmn_blob_reader {
	int fd;
	char hex[DMN_BLOB_HEX_BYTES];
	uint8_t id[DMN_BLOB_ID_BYTES];
	uint8_t key[DCR_AES_KEY_BYTES];
	uint8_t prefix[8];
	uint64_t size;
	uint64_t nchunks;
	int64_t cached; /* index of the chunk in plain, -1 if none */
	uint8_t *plain;
	uint8_t *ct;
};

static char *blob_path(const dmn_blobs *b, const char *hex);

static int mkdir_p1(const char *path, dcr_err *err)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return dcr_err_set(err, -errno, "mkdir %s: %s", path, strerror(errno));
	return 0;
}

bool dmn__blob_id_valid(const char *id)
{
	size_t i;

	if (!id || strlen(id) != 2 * DMN_BLOB_ID_BYTES)
		return false;
	for (i = 0; id[i]; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return true;
}

static void *helper_main(void *arg)
{
	dmn_blobs *b = arg;

	pthread_mutex_lock(&b->mu);
	for (;;) {
		dmn_blob_writer *w;
		while (!b->q_head && !b->stop)
			pthread_cond_wait(&b->cv, &b->mu);
		if (!b->q_head)
			break;
		w = b->q_head;
		b->q_head = w->q_next;
		if (!b->q_head)
			b->q_tail = NULL;
		pthread_mutex_unlock(&b->mu);
		w->job_rc = dmn__blob_write(w, w->job_p, w->job_n, &w->job_err);
		pthread_mutex_lock(&b->mu);
		w->job_state = 2;
		pthread_cond_broadcast(&b->done);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

int dmn__blobs_open(dmn_blobs **out, const char *dir, const uint8_t master[DCR_AES_KEY_BYTES],
                    dcr_err *err)
{
	dmn_blobs *b = dcr_calloc(1, sizeof *b);
	DIR *dp = NULL;
	struct dirent *de;
	int rc;

	*out = NULL;
	b->blob_dir = dcr_asprintf("%s/blobs", dir);
	b->tmp_dir = dcr_asprintf("%s/tmp", dir);
	memcpy(b->master, master, DCR_AES_KEY_BYTES);
	rc = mkdir_p1(b->blob_dir, err);
	if (rc == 0)
		rc = mkdir_p1(b->tmp_dir, err);
	if (rc < 0)
		goto out;
	/* Temp files are uploads or results that never committed. */
	dp = opendir(b->tmp_dir);
	if (!dp) {
		rc = dcr_err_set(err, -errno, "opendir %s: %s", b->tmp_dir, strerror(errno));
		goto out;
	}
	while ((de = readdir(dp)) != NULL) {
		char *p;
		if (de->d_name[0] == '.')
			continue;
		p = dcr_asprintf("%s/%s", b->tmp_dir, de->d_name);
		unlink(p);
		free(p);
	}
	closedir(dp);
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	pthread_cond_init(&b->done, NULL);
	/* Without helpers, writes simply run on the caller's thread. */
	while (b->nhelpers < BLOB_HELPERS &&
	       pthread_create(&b->helpers[b->nhelpers], NULL, helper_main, b) == 0)
		b->nhelpers++;
	*out = b;
	b = NULL;
out:
	if (b) {
		free(b->blob_dir);
		free(b->tmp_dir);
		dcr_wipe(b->master, sizeof b->master);
		free(b);
	}
	return rc;
}

void dmn__blobs_close(dmn_blobs *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->mu);
	b->stop = true;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	for (size_t i = 0; i < b->nhelpers; i++)
		pthread_join(b->helpers[i], NULL);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	pthread_cond_destroy(&b->done);
	free(b->deferred); /* a hold outlived its backup: the next start's GC removes them */
	dcr_wipe(b->master, sizeof b->master);
	free(b->blob_dir);
	free(b->tmp_dir);
	free(b);
}

char *dmn__blob_path(const dmn_blobs *b, const char *hex)
{
	return blob_path(b, hex);
}

static char *blob_path(const dmn_blobs *b, const char *hex)
{
	return dcr_asprintf("%s/%.2s/%s", b->blob_dir, hex, hex);
}

static void chunk_aad(uint8_t aad[DMN_BLOB_ID_BYTES + 5], const uint8_t id[DMN_BLOB_ID_BYTES],
                      uint32_t index, bool last)
{
	memcpy(aad, id, DMN_BLOB_ID_BYTES);
	dcr_put_be32(aad + DMN_BLOB_ID_BYTES, index);
	aad[DMN_BLOB_ID_BYTES + 4] = last ? 1 : 0;
}

static void chunk_nonce(uint8_t nonce[DCR_GCM_NONCE_BYTES], const uint8_t prefix[8], uint32_t index)
{
	memcpy(nonce, prefix, 8);
	dcr_put_be32(nonce + 8, index);
}

static void key_aad(uint8_t *aad, const uint8_t id[DMN_BLOB_ID_BYTES])
{
	memcpy(aad, BLOB_KEY_AAD, sizeof BLOB_KEY_AAD - 1);
	memcpy(aad + sizeof BLOB_KEY_AAD - 1, id, DMN_BLOB_ID_BYTES);
}

static int pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t w = pwrite(fd, b, n, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static int pread_all(int fd, void *p, size_t n, uint64_t off)
{
	uint8_t *b = p;

	while (n > 0) {
		ssize_t r = pread(fd, b, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return DCR_ETRUNC;
		b += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* ---- writing --------------------------------------------------------------- */

/* What out holds at most: less than a block left over (or the header's
 * place), and one sealed chunk. */
#define BLOB_OUT_CAP (BLOB_ALIGN + DMN_BLOB_CHUNK_BYTES + DCR_GCM_TAG_BYTES)

/* Stops writing around the page cache: what is left of the blob goes
 * through ordinary writes. */
static int direct_off(dmn_blob_writer *w)
{
	int fl = fcntl(w->fd, F_GETFL);
	if (fl < 0 || fcntl(w->fd, F_SETFL, fl & ~O_DIRECT) < 0)
		return -errno;
	w->direct = false;
	return 0;
}

/* Writes out's whole blocks (all of out when tail is set); keeps the rest
 * at its start. A direct write refused (EINVAL: a block size larger than
 * BLOB_ALIGN) or short falls back to ordinary writes from where it stands. */
static int out_drain(dmn_blob_writer *w, bool tail)
{
	size_t n = tail ? w->out_len : w->out_len & ~(size_t)(BLOB_ALIGN - 1);
	size_t done = 0;

	while (w->direct && done < n) {
		size_t k = (n - done) & ~(size_t)(BLOB_ALIGN - 1);
		ssize_t r;
		if (k == 0)
			break;
		r = pwrite(w->fd, w->out + done, k, (off_t)(w->out_off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno != EINVAL)
			return -errno;
		if (r > 0)
			done += (size_t)r;
		if (r != (ssize_t)k && (r = direct_off(w)) < 0)
			return (int)r; /* refused, or short: the rest the ordinary way */
	}
	if (done < n) {
		int rc = w->direct ? direct_off(w) : 0;
		if (rc == 0)
			rc = pwrite_all(w->fd, w->out + done, n - done, w->out_off + done);
		if (rc < 0)
			return rc;
	}
	memmove(w->out, w->out + n, w->out_len - n);
	w->out_len -= n;
	w->out_off += n;
	return 0;
}

int dmn__blob_create(dmn_blobs *b, dmn_blob_writer **out, dcr_err *err)
{
	dmn_blob_writer *w = dcr_calloc(1, sizeof *w);
	char hex[DMN_BLOB_HEX_BYTES];

	*out = NULL;
	w->b = b;
	dcr_random(w->id, sizeof w->id);
	dcr_random(w->key, sizeof w->key);
	dcr_random(w->prefix, sizeof w->prefix);
	dcr_hex_encode(w->id, sizeof w->id, hex);
	w->tmp_path = dcr_asprintf("%s/%s.tmp", b->tmp_dir, hex);
	w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		int rc = dcr_err_set(err, -errno, "creating %s: %s", w->tmp_path, strerror(errno));
		free(w->tmp_path);
		dcr_wipe(w->key, sizeof w->key);
		free(w);
		return rc;
	}
	w->buf = dcr_malloc(DMN_BLOB_CHUNK_BYTES);
	w->out = dcr_malloc_aligned(BLOB_ALIGN, BLOB_OUT_CAP);
	memset(w->out, 0, BLOB_HDR_BYTES); /* the header's place */
	w->out_len = BLOB_HDR_BYTES;
	{
		int fl = fcntl(w->fd, F_GETFL);
		w->direct = fl >= 0 && fcntl(w->fd, F_SETFL, fl | O_DIRECT) == 0;
	}
	w->sha = dcr_sha256_new();
	*out = w;
	return 0;
}

static int flush_chunk(dmn_blob_writer *w, bool last, dcr_err *err)
{
	uint8_t nonce[DCR_GCM_NONCE_BYTES], aad[DMN_BLOB_ID_BYTES + 5];
	uint8_t *ct = w->out + w->out_len;
	int rc;

	chunk_nonce(nonce, w->prefix, w->index);
	chunk_aad(aad, w->id, w->index, last);
	rc = dcr_gcm_seal(w->key, nonce, aad, sizeof aad, w->buf, w->have, ct, ct + w->have);
	if (rc < 0)
		return dcr_err_set(err, rc, "sealing blob chunk %u", w->index);
	w->out_len += w->have + DCR_GCM_TAG_BYTES;
	rc = out_drain(w, last);
	if (rc < 0)
		return dcr_err_set(err, rc, "writing %s: %s", w->tmp_path, dcr_strerror(rc));
	w->index++;
	w->have = 0;
	return 0;
}

void dmn__blob_writer_id(const dmn_blob_writer *w, char id[DMN_BLOB_HEX_BYTES])
{
	dcr_hex_encode(w->id, sizeof w->id, id);
}

void dmn__blob_no_hash(dmn_blob_writer *w)
{
	DCR_ASSERT(w->size == 0);
	dcr_sha256_free(w->sha);
	w->sha = NULL;
}

int dmn__blob_write(dmn_blob_writer *w, const void *p, size_t n, dcr_err *err)
{
	const uint8_t *src = p;
	int rc;

	if (w->failed)
		return dcr_err_set(err, DCR_ESTATE, "blob write after a failure");
	if (w->sha)
		dcr_sha256_update(w->sha, p, n);
	w->size += n;
	while (n > 0) {
		size_t k;
		if (w->have == DMN_BLOB_CHUNK_BYTES) {
			/* Only now do we know this chunk is not the last. */
			if (w->index == UINT32_MAX) {
				w->failed = true;
				return dcr_err_set(err, DCR_ELIMIT, "blob too large");
			}
			rc = flush_chunk(w, false, err);
			if (rc < 0) {
				w->failed = true;
				return rc;
			}
		}
		k = DMN_BLOB_CHUNK_BYTES - w->have;
		if (k > n)
			k = n;
		memcpy(w->buf + w->have, src, k);
		w->have += k;
		src += k;
		n -= k;
	}
	return 0;
}

void dmn__blob_write_start(dmn_blob_writer *w, const void *p, size_t n)
{
	dmn_blobs *b = w->b;

	w->job_p = p;
	w->job_n = n;
	w->job_rc = 0;
	if (b->nhelpers == 0) {
		w->job_rc = dmn__blob_write(w, p, n, &w->job_err);
		w->job_state = 2;
		return;
	}
	pthread_mutex_lock(&b->mu);
	w->job_state = 1;
	w->q_next = NULL;
	if (b->q_tail)
		b->q_tail->q_next = w;
	else
		b->q_head = w;
	b->q_tail = w;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

int dmn__blob_write_wait(dmn_blob_writer *w, dcr_err *err)
{
	dmn_blobs *b = w->b;
	int rc, state;

	/* With helpers, job_state is shared with them: read it under b->mu
	 * (nhelpers is fixed once the store is open). */
	if (b->nhelpers > 0)
		pthread_mutex_lock(&b->mu);
	while ((state = w->job_state) == 1)
		pthread_cond_wait(&b->done, &b->mu);
	w->job_state = 0;
	if (b->nhelpers > 0)
		pthread_mutex_unlock(&b->mu);
	if (state == 0)
		return 0;
	rc = w->job_rc;
	if (rc < 0 && err)
		*err = w->job_err;
	return rc;
}

static void writer_free(dmn_blob_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	dcr_wipe(w->key, sizeof w->key);
	if (w->buf) {
		dcr_wipe(w->buf, DMN_BLOB_CHUNK_BYTES);
		free(w->buf);
	}
	free(w->out);
	dcr_sha256_free(w->sha);
	free(w->tmp_path);
	free(w);
}

void dmn__blob_abort(dmn_blob_writer *w)
{
	if (!w)
		return;
	unlink(w->tmp_path);
	writer_free(w);
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

int dmn__blob_commit(dmn_blob_writer *w, char id[DMN_BLOB_HEX_BYTES], uint8_t sha[32],
                     uint64_t *bytes, dcr_err *err)
{
	uint8_t hdr[BLOB_HDR_BYTES], nonce[DCR_GCM_NONCE_BYTES];
	uint8_t aad[sizeof BLOB_KEY_AAD - 1 + DMN_BLOB_ID_BYTES];
	char hex[DMN_BLOB_HEX_BYTES], *sub = NULL, *path = NULL;
	int rc;

	if (w->failed) {
		rc = dcr_err_set(err, DCR_ESTATE, "blob commit after a failure");
		goto out;
	}
	rc = flush_chunk(w, true, err);
	if (rc < 0)
		goto out;
	memcpy(hdr, BLOB_MAGIC, 8);
	dcr_put_be32(hdr + 8, DMN_BLOB_CHUNK_BYTES);
	dcr_put_be64(hdr + 12, w->size);
	memcpy(hdr + 20, w->prefix, 8);
	dcr_random(nonce, sizeof nonce);
	memcpy(hdr + 28, nonce, sizeof nonce);
	key_aad(aad, w->id);
	rc = dcr_gcm_seal(w->b->master, nonce, aad, sizeof aad, w->key, sizeof w->key, hdr + 40,
	                  hdr + 72);
	if (rc < 0) {
		dcr_err_set(err, rc, "wrapping the blob key");
		goto out;
	}
	rc = w->direct ? direct_off(w) : 0; /* the header: 88 bytes, not a block */
	if (rc == 0)
		rc = pwrite_all(w->fd, hdr, sizeof hdr, 0);
	if (rc == 0 && fsync(w->fd) < 0)
		rc = -errno;
	if (rc < 0) {
		dcr_err_set(err, rc, "writing %s: %s", w->tmp_path, dcr_strerror(rc));
		goto out;
	}
	dcr_hex_encode(w->id, sizeof w->id, hex);
	sub = dcr_asprintf("%s/%.2s", w->b->blob_dir, hex);
	rc = mkdir_p1(sub, err);
	if (rc < 0)
		goto out;
	path = blob_path(w->b, hex);
	if (rename(w->tmp_path, path) < 0) {
		rc = dcr_err_set(err, -errno, "rename %s: %s", path, strerror(errno));
		goto out;
	}
	/* Both directories: the blob's entry, and the entry of sub if new. A
	 * blob whose entry may not be durable is not a blob. */
	{
		const char *d = sub;
		rc = fsync_dir(d);
		if (rc == 0) {
			d = w->b->blob_dir;
			rc = fsync_dir(d);
		}
		if (rc < 0) {
			dcr_err_set(err, rc, "fsync %s: %s", d, dcr_strerror(rc));
			unlink(path);
			goto out;
		}
	}
	memcpy(id, hex, DMN_BLOB_HEX_BYTES);
	DCR_ASSERT(!sha || w->sha); /* a hash asked for was computed */
	if (sha)
		dcr_sha256_final(w->sha, sha);
	if (bytes)
		*bytes = w->size;
out:
	free(sub);
	free(path);
	if (rc < 0)
		unlink(w->tmp_path);
	writer_free(w);
	return rc;
}

int dmn__blob_put(dmn_blobs *b, const void *p, size_t n, char id[DMN_BLOB_HEX_BYTES],
                  uint8_t sha[32], dcr_err *err)
{
	dmn_blob_writer *w;
	int rc = dmn__blob_create(b, &w, err);

	if (rc < 0)
		return rc;
	rc = dmn__blob_write(w, p, n, err);
	if (rc < 0) {
		dmn__blob_abort(w);
		return rc;
	}
	return dmn__blob_commit(w, id, sha, NULL, err);
}

/* ---- reading ---------------------------------------------------------------- */

int dmn__blob_open(dmn_blobs *b, const char *id, dmn_blob_reader **out, dcr_err *err)
{
	dmn_blob_reader *r = NULL;
	uint8_t hdr[BLOB_HDR_BYTES];
	uint8_t aad[sizeof BLOB_KEY_AAD - 1 + DMN_BLOB_ID_BYTES];
	char *path = NULL;
	struct stat st;
	uint64_t expect;
	int rc;

	*out = NULL;
	if (!dmn__blob_id_valid(id))
		return dcr_err_set(err, DCR_EINVALID, "bad blob id");
	r = dcr_calloc(1, sizeof *r);
	r->fd = -1;
	r->cached = -1;
	memcpy(r->hex, id, DMN_BLOB_HEX_BYTES);
	dcr_hex_decode(id, 2 * DMN_BLOB_ID_BYTES, r->id, DMN_BLOB_ID_BYTES);
	path = blob_path(b, id);
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		rc = dcr_err_set(err, errno == ENOENT ? DCR_ENOTFOUND : -errno, "blob %s: %s", id,
		                 strerror(errno));
		goto out;
	}
	rc = pread_all(r->fd, hdr, sizeof hdr, 0);
	if (rc < 0 || memcmp(hdr, BLOB_MAGIC, 8) != 0 ||
	    dcr_get_be32(hdr + 8) != DMN_BLOB_CHUNK_BYTES) {
		rc = dcr_err_set(err, DCR_EINTEGRITY, "blob %s: bad header", id);
		goto out;
	}
	r->size = dcr_get_be64(hdr + 12);
	memcpy(r->prefix, hdr + 20, 8);
	key_aad(aad, r->id);
	rc = dcr_gcm_open(b->master, hdr + 28, aad, sizeof aad, hdr + 40, 32, r->key, hdr + 72);
	if (rc < 0) {
		rc = dcr_err_set(err, DCR_EINTEGRITY, "blob %s: key does not unwrap", id);
		goto out;
	}
	r->nchunks = r->size == 0 ? 1 : (r->size + DMN_BLOB_CHUNK_BYTES - 1) / DMN_BLOB_CHUNK_BYTES;
	if (r->nchunks > UINT32_MAX) {
		rc = dcr_err_set(err, DCR_EINTEGRITY, "blob %s: bad size", id);
		goto out;
	}
	expect = BLOB_HDR_BYTES + r->size + r->nchunks * DCR_GCM_TAG_BYTES;
	if (fstat(r->fd, &st) < 0 || (uint64_t)st.st_size != expect) {
		rc = dcr_err_set(err, DCR_EINTEGRITY,
		                 "blob %s: file size does not match its header", id);
		goto out;
	}
	r->plain = dcr_malloc(DMN_BLOB_CHUNK_BYTES);
	r->ct = dcr_malloc(DMN_BLOB_CHUNK_BYTES + DCR_GCM_TAG_BYTES);
	*out = r;
	r = NULL;
	rc = 0;
out:
	free(path);
	dmn__blob_close(r);
	return rc;
}

uint64_t dmn__blob_size(const dmn_blob_reader *r)
{
	return r->size;
}

static int load_chunk(dmn_blob_reader *r, uint64_t idx, dcr_err *err)
{
	uint8_t nonce[DCR_GCM_NONCE_BYTES], aad[DMN_BLOB_ID_BYTES + 5];
	uint64_t start = idx * DMN_BLOB_CHUNK_BYTES;
	size_t len = r->size - start < DMN_BLOB_CHUNK_BYTES ? (size_t)(r->size - start)
	                                                    : DMN_BLOB_CHUNK_BYTES;
	bool last = idx + 1 == r->nchunks;
	int rc;

	if ((int64_t)idx == r->cached)
		return 0;
	r->cached = -1;
	rc = pread_all(r->fd, r->ct, len + DCR_GCM_TAG_BYTES,
	               BLOB_HDR_BYTES + idx * (DMN_BLOB_CHUNK_BYTES + DCR_GCM_TAG_BYTES));
	if (rc < 0)
		return dcr_err_set(err, rc == DCR_ETRUNC ? DCR_EINTEGRITY : rc,
		                   "blob %s: reading chunk %llu: %s", r->hex,
		                   (unsigned long long)idx, dcr_strerror(rc));
	chunk_nonce(nonce, r->prefix, (uint32_t)idx);
	chunk_aad(aad, r->id, (uint32_t)idx, last);
	rc = dcr_gcm_open(r->key, nonce, aad, sizeof aad, r->ct, len, r->plain, r->ct + len);
	if (rc < 0)
		return dcr_err_set(err, DCR_EINTEGRITY, "blob %s: chunk %llu fails authentication",
		                   r->hex, (unsigned long long)idx);
	r->cached = (int64_t)idx;
	return 0;
}

int dmn__blob_pread(dmn_blob_reader *r, uint64_t off, void *buf, size_t n, size_t *got,
                    dcr_err *err)
{
	uint8_t *dst = buf;
	int rc;

	*got = 0;
	while (n > 0 && off < r->size) {
		uint64_t idx = off / DMN_BLOB_CHUNK_BYTES;
		size_t in = (size_t)(off - idx * DMN_BLOB_CHUNK_BYTES);
		size_t avail, k;
		rc = load_chunk(r, idx, err);
		if (rc < 0)
			return rc;
		avail = (r->size - idx * DMN_BLOB_CHUNK_BYTES < DMN_BLOB_CHUNK_BYTES
		             ? (size_t)(r->size - idx * DMN_BLOB_CHUNK_BYTES)
		             : DMN_BLOB_CHUNK_BYTES) -
		        in;
		k = avail < n ? avail : n;
		memcpy(dst, r->plain + in, k);
		dst += k;
		n -= k;
		off += k;
		*got += k;
	}
	if (r->size == 0)
		return load_chunk(r, 0, err); /* authenticate the empty blob */
	return 0;
}

void dmn__blob_close(dmn_blob_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	dcr_wipe(r->key, sizeof r->key);
	if (r->plain) {
		dcr_wipe(r->plain, DMN_BLOB_CHUNK_BYTES);
		free(r->plain);
	}
	free(r->ct);
	free(r);
}

int dmn__blob_read_all(dmn_blobs *b, const char *id, size_t max, dcr_buf *out, dcr_err *err)
{
	dmn_blob_reader *r = NULL;
	size_t got;
	int rc = dmn__blob_open(b, id, &r, err);

	if (rc < 0)
		return rc;
	if (r->size > max) {
		rc = dcr_err_set(err, DCR_ELIMIT, "blob %s of %llu bytes exceeds %zu", id,
		                 (unsigned long long)r->size, max);
		goto out;
	}
	dcr_buf_reserve(out, (size_t)r->size);
	rc = dmn__blob_pread(r, 0, out->data + out->len, (size_t)r->size, &got, err);
	if (rc == 0 && got != r->size)
		rc = dcr_err_set(err, DCR_EINTEGRITY, "blob %s: short read", id);
	if (rc == 0)
		out->len += got;
out:
	dmn__blob_close(r);
	return rc;
}

int dmn__blobs_each(dmn_blobs *b, int (*fn)(void *ctx, const char *id, uint64_t file_bytes),
                    void *ctx)
{
	DIR *top = opendir(b->blob_dir);
	struct dirent *e;
	int rc = 0;

	if (!top)
		return -errno;
	while (rc == 0 && (e = readdir(top)) != NULL) {
		char *sub;
		DIR *dp;
		struct dirent *f;
		if (strlen(e->d_name) != 2 || e->d_name[0] == '.')
			continue;
		sub = dcr_asprintf("%s/%s", b->blob_dir, e->d_name);
		dp = opendir(sub);
		while (rc == 0 && dp && (f = readdir(dp)) != NULL) {
			struct stat st;
			char *path;
			if (!dmn__blob_id_valid(f->d_name) || memcmp(f->d_name, e->d_name, 2) != 0)
				continue;
			path = dcr_asprintf("%s/%s", sub, f->d_name);
			if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
				rc = fn(ctx, f->d_name, (uint64_t)st.st_size);
			free(path);
		}
		if (dp)
			closedir(dp);
		free(sub);
	}
	closedir(top);
	return rc;
}

void dmn__blobs_hold(dmn_blobs *b)
{
	pthread_mutex_lock(&b->mu);
	b->holds++;
	pthread_mutex_unlock(&b->mu);
}

static int remove_now(dmn_blobs *b, const char *id);

void dmn__blobs_unhold(dmn_blobs *b)
{
	char (*ids)[DMN_BLOB_HEX_BYTES] = NULL;
	size_t n = 0;

	pthread_mutex_lock(&b->mu);
	DCR_ASSERT(b->holds > 0);
	if (--b->holds == 0) {
		ids = b->deferred;
		n = b->ndeferred;
		b->deferred = NULL;
		b->ndeferred = b->deferred_cap = 0;
	}
	pthread_mutex_unlock(&b->mu);
	for (size_t i = 0; i < n; i++)
		remove_now(b, ids[i]);
	free(ids);
}

int dmn__blob_remove(dmn_blobs *b, const char *id)
{
	if (!dmn__blob_id_valid(id))
		return DCR_EINVALID;
	pthread_mutex_lock(&b->mu);
	if (b->holds) {
		if (b->ndeferred == b->deferred_cap) {
			b->deferred_cap = b->deferred_cap ? 2 * b->deferred_cap : 16;
			b->deferred = dcr_realloc(b->deferred, b->deferred_cap * sizeof *b->deferred);
		}
		memcpy(b->deferred[b->ndeferred++], id, DMN_BLOB_HEX_BYTES);
		pthread_mutex_unlock(&b->mu);
		return 0;
	}
	pthread_mutex_unlock(&b->mu);
	return remove_now(b, id);
}

static int remove_now(dmn_blobs *b, const char *id)
{
	char *p;
	int rc = 0;

	p = blob_path(b, id);
	if (unlink(p) < 0)
		rc = -errno;
	free(p);
	return rc;
}
