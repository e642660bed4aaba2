/* admin.c: the host operator's operations (docs/protocol.md "Operator
 * operations", docs/operations.md): admin.status, the streamed backup
 * (admin.backup.begin|read|end) and `dcrd restore`.
 *
 * Who: a connection whose peer (SO_PEERCRED, taken at accept by server.c)
 * is uid 0 or dcrd's own uid. The key it authenticated with does not
 * matter: rooms decide what participants may do, the host's users decide
 * who operates the host.
 *
 * A backup is a snapshot of one commit: admin.backup.begin holds blob
 * removals (blob.c), writes a compacted copy of the event store into
 * DIR/tmp/backup-ID (es_copy: one read transaction, appends go on), replays
 * that copy's rooms with the daemon's own replay (dmn__rooms_load on a
 * second, private `dmn`) and takes the blobs it references with the GC's
 * own function (dmn__blobs_referenced). The client then reads each file
 * with admin.backup.read and writes it where it wants: dcrd writes nothing
 * outside its data directory. admin.backup.end (or the connection closing)
 * drops the copy and the hold; removals that waited happen then.
 *
 * `dcrd restore` copies a backup into a new or empty directory and refuses
 * it unless it verifies as a whole, with the functions dcrd starts with:
 * every room replayed (rm_replay_step: signatures, rules), its stored
 * Merkle tree against the root of its entries, its latest checkpoint
 * (signature by the backup's daemon key, size and root), and every
 * referenced blob authenticated (AES-GCM, every chunk) and, for provisioned
 * files, their statistics and results, equal to the SHA-256 the log
 * records. On refusal nothing stays in the target. What the log does not
 * sign (which prepared table or cached result es_meta names for a file) is
 * only authenticated, as on a running host. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "dmn_int.h"

#define ADMIN_COPY_BYTES (1u << 20)

struct dmn_backup {
	char id[17];     /* 16 hex chars */
	char *tmp;       /* DIR/tmp/backup-ID, holding events/data.mdb */
	char **names;    /* events/data.mdb, blobs/XX/ID..., daemon.pem, master.key */
	uint64_t *sizes;
	size_t n;
};

static int check_operator(const dmn_session *s, dcr_err *err)
{
	uint32_t me = (uint32_t)geteuid();

	if (s->peer_known && (s->peer_uid == 0 || s->peer_uid == me))
		return 0;
	if (!s->peer_known)
		return dcr_err_set(err, DCR_EDENIED,
		                   "admin operations are for the host's operator, and this "
		                   "connection's user is unknown (no SO_PEERCRED)");
	return dcr_err_set(err, DCR_EDENIED,
	                   "admin operations are for the host's operator (uid 0 or dcrd's uid "
	                   "%u); this connection is uid %u",
	                   me, s->peer_uid);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* Removes path and everything under it (what this file created). */
static void rm_tree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- a private, read-only view of a store: its rooms replayed ---------------------------- */

/* Opens DIR/events as a second store inside t (a zeroed dmn that is not
 * serving: no jobs, no hooks) and replays every room with the daemon's
 * replay, which verifies each signature and applies every rule. key is
 * borrowed: the store's checkpoint key, which appends nothing here but signs
 * the stored checkpoints when they are read (es_latest_checkpoint); blobs is
 * borrowed too (may be NULL). */
static int snap_open(dmn *t, const char *dir, dcr_key *key, dmn_blobs *blobs, dcr_err *err)
{
	es_options eo = {0};
	char *events = dcr_asprintf("%s/events", dir);
	int rc;

	t->opt.log_level = DMN_LOG_WARN;
	t->dir = dcr_strdup(dir);
	t->key = key;
	dcr_key_public(key, t->pub);
	t->blobs = blobs;
	dmn__rooms_init(t);
	eo.no_sync = true; /* nothing is written to it */
	eo.checkpoint_key = key;
	rc = es_open(&t->store, events, &eo, err);
	if (rc == 0)
		rc = dmn__rooms_load(t, err);
	free(events);
	return rc;
}

static void snap_close(dmn *t)
{
	es_close(t->store);
	t->store = NULL;
	dmn__rooms_free(t);
	free(t->dir);
	t->dir = NULL;
}

/* ---- admin.status -------------------------------------------------------------------- */

/* VmRSS and VmHWM of /proc/self/status, in bytes (0 if unknown). */
static void proc_memory(uint64_t *rss, uint64_t *peak)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];

	*rss = *peak = 0;
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		unsigned long long kb;
		if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
			*rss = kb * 1024;
		else if (sscanf(line, "VmHWM: %llu kB", &kb) == 1)
			*peak = kb * 1024;
	}
	fclose(f);
}

struct blob_sum {
	uint64_t n, bytes;
};

static int blob_sum_one(void *ctx, const char *id, uint64_t file_bytes)
{
	struct blob_sum *b = ctx;
	(void)id;
	b->n++;
	b->bytes += file_bytes;
	return 0;
}

int dmn__op_admin_status(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res,
                         dcr_err *err)
{
	uint64_t events = 0, queued = 0, running = 0, dev_queued = 0, dev_running = 0;
	uint64_t unsigned_uploads = 0, rss, peak, cache_bytes;
	struct blob_sum bs = {0, 0};
	struct statvfs vfs;
	struct stat st;
	dmn_room **rooms;
	size_t n, i, j;
	char *path;
	int rc;

	(void)args;
	rc = check_operator(s, err);
	if (rc < 0)
		return rc;
	rooms = dmn__rooms_list(d, &n);
	for (i = 0; i < n; i++) {
		dmn_room *r = rooms[i];
		dmn__mutex_lock(&r->mu);
		events += r->durable;
		for (j = 0; j < r->st.nruns; j++) {
			if (r->st.runs[j].state != RM_RUN_QUEUED)
				continue;
			if (dmn__run_is_running(d, r->st.runs[j].id))
				running++;
			else
				queued++;
		}
		for (j = 0; j < r->st.ndevs; j++) {
			if (r->st.devs[j].state != RM_RUN_QUEUED)
				continue;
			if (dmn__run_is_running(d, r->st.devs[j].id))
				dev_running++;
			else
				dev_queued++;
		}
		dmn__mutex_unlock(&r->mu);
	}
	free(rooms);
	dmn__mutex_lock(&d->up.mu);
	for (dmn_done_upload *u = d->up.done; u; u = u->next)
		unsigned_uploads++;
	dmn__mutex_unlock(&d->up.mu);
	dmn__mutex_lock(&d->imgc.mu);
	cache_bytes = d->imgc.bytes;
	dmn__mutex_unlock(&d->imgc.mu);
	dmn__blobs_each(d->blobs, blob_sum_one, &bs);
	proc_memory(&rss, &peak);

	dcr_mpw_uint(proto_map_key(res, "backups"), atomic_load(&d->backups));
	dcr_mpw_uint(proto_map_key(res, "blobs"), bs.n);
	dcr_mpw_uint(proto_map_key(res, "blobs_bytes"), bs.bytes);
	dcr_mpw_str(proto_map_key(res, "data_dir"), d->dir);
	if (statvfs(d->dir, &vfs) == 0) {
		dcr_mpw_uint(proto_map_key(res, "disk_free_bytes"),
		             (uint64_t)vfs.f_bavail * vfs.f_frsize);
		dcr_mpw_uint(proto_map_key(res, "disk_total_bytes"),
		             (uint64_t)vfs.f_blocks * vfs.f_frsize);
	}
	dcr_mpw_uint(proto_map_key(res, "dev_runs_queued"), dev_queued);
	dcr_mpw_uint(proto_map_key(res, "dev_runs_running"), dev_running);
	dcr_mpw_uint(proto_map_key(res, "events"), events);
	path = dcr_asprintf("%s/events/data.mdb", d->dir);
	/* allocated blocks: the map is a sparse file as large as the map */
	dcr_mpw_uint(proto_map_key(res, "events_bytes"),
	             stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0);
	free(path);
	dcr_mpw_uint(proto_map_key(res, "image_cache_bytes"), cache_bytes);
	dcr_mpw_uint(proto_map_key(res, "pid"), (uint64_t)getpid());
	dcr_mpw_uint(proto_map_key(res, "rooms"), n);
	dcr_mpw_uint(proto_map_key(res, "rss_bytes"), rss);
	dcr_mpw_uint(proto_map_key(res, "rss_peak_bytes"), peak);
	dcr_mpw_uint(proto_map_key(res, "runs_queued"), queued);
	dcr_mpw_uint(proto_map_key(res, "runs_running"), running);
	dcr_mpw_uint(proto_map_key(res, "uploads_open"), atomic_load(&d->up.open));
	dcr_mpw_uint(proto_map_key(res, "uploads_unsigned"), unsigned_uploads);
	dcr_mpw_uint(proto_map_key(res, "uptime_ms"), dcr_mono_ms() - d->start_mono_ms);
	return 0;
}

/* ---- backup --------------------------------------------------------------------------- */

static void backup_release(dmn *d, struct dmn_backup *b)
{
	if (!b)
		return;
	rm_tree(b->tmp);
	for (size_t i = 0; i < b->n; i++)
		free(b->names[i]);
	free(b->names);
	free(b->sizes);
	free(b->tmp);
	free(b);
	dmn__blobs_unhold(d->blobs);
	atomic_fetch_sub(&d->backups, 1);
}

void dmn__admin_session_release(dmn *d, dmn_session *s)
{
	if (!s->backup)
		return;
	dmn__log(d, DMN_LOG_WARN, "backup %s abandoned: the connection closed before its end",
	         s->backup->id);
	backup_release(d, s->backup);
	s->backup = NULL;
}

static void backup_add(struct dmn_backup *b, char *name, uint64_t size)
{
	b->names = dcr_realloc(b->names, (b->n + 1) * sizeof *b->names);
	b->sizes = dcr_realloc(b->sizes, (b->n + 1) * sizeof *b->sizes);
	b->names[b->n] = name;
	b->sizes[b->n] = size;
	b->n++;
}

/* The file behind a backup's name (heap), or NULL if it names none. */
static char *backup_path(dmn *d, const struct dmn_backup *b, const char *name)
{
	if (strcmp(name, "events/data.mdb") == 0)
		return dcr_asprintf("%s/events/data.mdb", b->tmp);
	if (strcmp(name, "daemon.pem") == 0 || strcmp(name, "master.key") == 0 ||
	    strcmp(name, DMN_TLS_DIR "/tls.key") == 0 || strcmp(name, DMN_TLS_DIR "/tls.crt") == 0)
		return dcr_asprintf("%s/%s", d->dir, name);
	if (strncmp(name, "blobs/", 6) == 0 && strlen(name) == 6 + 3 + 32 && name[8] == '/' &&
	    dmn__blob_id_valid(name + 9))
		return dmn__blob_path(d->blobs, name + 9);
	return NULL;
}

static int file_size(const char *path, uint64_t *size, dcr_err *err)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return dcr_err_set(err, -errno, "%s: %s", path, strerror(errno));
	*size = (uint64_t)st.st_size;
	return 0;
}

int dmn__op_admin_backup_begin(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res,
                               dcr_err *err)
{
	struct dmn_backup *b = NULL;
	dmn t;
	bool snap = false, keys = false;
	const dcr_mpv *kv = dcr_mp_get(args, "keys");
	char (*ids)[DMN_BLOB_HEX_BYTES] = NULL;
	size_t nids = 0, i, nrooms = 0;
	uint64_t t0 = dcr_mono_ms(), copy_ms, size, events = 0;
	uint8_t rnd[8];
	dcr_buf rooms_arr, files_arr;
	dcr_mpw w;
	char *path = NULL;
	int fd = -1, rc;

	memset(&t, 0, sizeof t);
	dcr_buf_init(&rooms_arr);
	dcr_buf_init(&files_arr);
	rc = check_operator(s, err);
	if (rc < 0)
		goto out;
	if (kv && dcr_mp_bool(kv, &keys) < 0) {
		rc = dcr_err_set(err, DCR_EINVALID, "argument keys: not a boolean");
		goto out;
	}
	if (s->backup) {
		rc = dcr_err_set(err, DCR_ESTATE,
		                 "backup %s is still open on this connection: end it first",
		                 s->backup->id);
		goto out;
	}
	b = dcr_calloc(1, sizeof *b);
	dcr_random(rnd, sizeof rnd);
	dcr_hex_encode(rnd, sizeof rnd, b->id);
	b->tmp = dcr_asprintf("%s/tmp/backup-%s", d->dir, b->id);
	/* from here on blobs are not removed until backup_release: every blob
	 * the snapshot below names exists until the backup ends */
	dmn__blobs_hold(d->blobs);
	atomic_fetch_add(&d->backups, 1);
	path = dcr_asprintf("%s/events", b->tmp);
	if (mkdir(b->tmp, 0700) < 0 || mkdir(path, 0700) < 0) {
		rc = dcr_err_set(err, -errno, "creating %s: %s", path, strerror(errno));
		goto out;
	}
	free(path);
	path = dcr_asprintf("%s/events/data.mdb", b->tmp);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = dcr_err_set(err, -errno, "creating %s: %s", path, strerror(errno));
		goto out;
	}
	rc = es_copy(d->store, fd, err);
	if (close(fd) < 0 && rc == 0)
		rc = dcr_err_set(err, -errno, "writing %s: %s", path, strerror(errno));
	fd = -1;
	if (rc < 0)
		goto out;
	copy_ms = dcr_mono_ms() - t0;
	rc = file_size(path, &size, err);
	if (rc < 0)
		goto out;
	backup_add(b, dcr_strdup("events/data.mdb"), size);

	/* what the snapshot holds: its rooms replayed, their roots, the blobs
	 * they reference (the GC's set) */
	rc = snap_open(&t, b->tmp, d->key, d->blobs, err);
	snap = true;
	if (rc < 0) {
		dcr_err_prefix(err, "the snapshot does not replay");
		goto out;
	}
	dcr_mpw_init(&w, &rooms_arr);
	for (i = 0; i < t.rooms.n; i++) {
		dmn_room *r = t.rooms.list[i];
		uint8_t root[32];
		dmn__mutex_lock(&r->mu);
		size = r->st.size;
		dmn__mutex_unlock(&r->mu);
		rc = es_root(t.store, r->id, size, root);
		if (rc < 0) {
			rc = dcr_err_set(err, rc, "room %s: root at size %llu: %s", r->hex,
			                 (unsigned long long)size, dcr_strerror(rc));
			goto out;
		}
		dcr_mpw_map(&w, 3);
		dcr_mpw_str(&w, "id");
		dcr_mpw_str(&w, r->hex);
		dcr_mpw_str(&w, "root");
		dcr_mpw_bin(&w, root, 32);
		dcr_mpw_str(&w, "size");
		dcr_mpw_uint(&w, size);
		events += size;
		nrooms++;
	}
	dmn__blobs_referenced(&t, &ids, &nids);
	for (i = 0; i < nids; i++) {
		char *name = dcr_asprintf("blobs/%.2s/%s", ids[i], ids[i]);
		free(path);
		path = dmn__blob_path(d->blobs, ids[i]);
		rc = file_size(path, &size, err);
		if (rc < 0) {
			free(name);
			dcr_err_prefix(err, "blob %s, referenced by the snapshot", ids[i]);
			goto out;
		}
		backup_add(b, name, size);
	}
	if (keys) {
		static const char *const kf[] = {"daemon.pem", "master.key"};
		for (i = 0; i < 2; i++) {
			free(path);
			path = dcr_asprintf("%s/%s", d->dir, kf[i]);
			rc = file_size(path, &size, err);
			if (rc < 0)
				goto out;
			backup_add(b, dcr_strdup(kf[i]), size);
		}
		/* the TLS key too, if the host has one (--listen): a restored
		 * host keeps its fingerprint, so remote participants' pins and
		 * known_servers still hold */
		static const char *const tf[] = {DMN_TLS_DIR "/tls.key", DMN_TLS_DIR "/tls.crt"};
		for (i = 0; i < 2; i++) {
			free(path);
			path = dcr_asprintf("%s/%s", d->dir, tf[i]);
			if (access(path, F_OK) < 0 && errno == ENOENT)
				continue;
			rc = file_size(path, &size, err);
			if (rc < 0)
				goto out;
			backup_add(b, dcr_strdup(tf[i]), size);
		}
	}
	if (b->n > DCR_MP_ELEMS_MAX || nrooms > DCR_MP_ELEMS_MAX ||
	    rooms_arr.len + 80 * b->n > DCR_FRAME_BYTES_MAX - 4096) {
		rc = dcr_err_set(err, DCR_ELIMIT,
		                 "%zu files and %zu rooms do not fit one answer: a backup of this "
		                 "host needs a protocol with paged listings",
		                 b->n, nrooms);
		goto out;
	}
	dcr_mpw_init(&w, &files_arr);
	for (i = 0; i < b->n; i++) {
		dcr_mpw_map(&w, 2);
		dcr_mpw_str(&w, "name");
		dcr_mpw_str(&w, b->names[i]);
		dcr_mpw_str(&w, "size");
		dcr_mpw_uint(&w, b->sizes[i]);
	}
	dcr_mpw_str(proto_map_key(res, "backup"), b->id);
	dcr_mpw_uint(proto_map_key(res, "copy_ms"), copy_ms);
	dcr_mpw_bin(proto_map_key(res, "daemon_key"), d->pub, 32);
	dcr_mpw_uint(proto_map_key(res, "events"), events);
	{
		dcr_mpw *v = proto_map_key(res, "files");
		dcr_mpw_array(v, (uint32_t)b->n);
		dcr_mpw_raw(v, files_arr.data, files_arr.len);
		v = proto_map_key(res, "rooms");
		dcr_mpw_array(v, (uint32_t)nrooms);
		dcr_mpw_raw(v, rooms_arr.data, rooms_arr.len);
	}
	dmn__log(d, DMN_LOG_INFO,
	         "backup %s: snapshot of %zu room%s, %llu events, %zu blobs%s (copy %llu ms, "
	         "%llu ms in all)",
	         b->id, nrooms, nrooms == 1 ? "" : "s", (unsigned long long)events, nids, keys ? ", with the keys" : "",
	         (unsigned long long)copy_ms, (unsigned long long)(dcr_mono_ms() - t0));
	s->backup = b;
	b = NULL;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (snap)
		snap_close(&t);
	free(ids);
	free(path);
	dcr_buf_release(&rooms_arr);
	dcr_buf_release(&files_arr);
	backup_release(d, b); /* b is set only on failure: undoes the hold and the copy */
	return rc;
}

static int arg_backup(dmn_session *s, const dcr_mpv *args, dcr_err *err)
{
	const char *p;
	size_t n;

	if (dcr_mp_str(dcr_mp_get(args, "backup"), &p, &n) < 0)
		return dcr_err_set(err, DCR_EINVALID, "missing argument backup");
	if (!s->backup || n != strlen(s->backup->id) || memcmp(p, s->backup->id, n) != 0)
		return dcr_err_set(err, DCR_ENOTFOUND,
		                   "no backup %.*s on this connection (a backup is read on the "
		                   "connection that began it)",
		                   (int)(n > 64 ? 64 : n), p);
	return 0;
}

int dmn__op_admin_backup_read(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res,
                              dcr_err *err)
{
	const char *name;
	size_t name_n, i;
	uint64_t off, len;
	char *fname = NULL, *path = NULL;
	uint8_t *buf = NULL;
	ssize_t got;
	int fd = -1, rc;

	rc = check_operator(s, err);
	if (rc == 0)
		rc = arg_backup(s, args, err);
	if (rc < 0)
		goto out;
	if (dcr_mp_str(dcr_mp_get(args, "file"), &name, &name_n) < 0 ||
	    dcr_mp_u64(dcr_mp_get(args, "offset"), &off) < 0 ||
	    dcr_mp_u64(dcr_mp_get(args, "len"), &len) < 0) {
		rc = dcr_err_set(err, DCR_EINVALID,
		                 "arguments file (string), offset and len (integers) are required");
		goto out;
	}
	fname = dcr_strndup(name, name_n);
	for (i = 0; i < s->backup->n; i++)
		if (strcmp(s->backup->names[i], fname) == 0)
			break;
	if (i == s->backup->n || strlen(fname) != name_n ||
	    !(path = backup_path(d, s->backup, fname))) {
		rc = dcr_err_set(err, DCR_ENOTFOUND, "backup %s has no file %s", s->backup->id,
		                 fname);
		goto out;
	}
	if (len > DMN_RESULT_READ_BYTES_MAX)
		len = DMN_RESULT_READ_BYTES_MAX;
	if (off >= s->backup->sizes[i])
		len = 0;
	else if (len > s->backup->sizes[i] - off)
		len = s->backup->sizes[i] - off;
	buf = dcr_malloc(len ? len : 1);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = dcr_err_set(err, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	for (got = 0; (uint64_t)got < len;) {
		ssize_t k = pread(fd, buf + got, len - (size_t)got, (off_t)(off + (uint64_t)got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = dcr_err_set(err, -errno, "reading %s: %s", path, strerror(errno));
			goto out;
		}
		if (k == 0) {
			rc = dcr_err_set(err, DCR_EINTEGRITY, "%s: shorter than %llu bytes", path,
			                 (unsigned long long)s->backup->sizes[i]);
			goto out;
		}
		got += k;
	}
	dcr_mpw_bin(proto_map_key(res, "data"), buf, (size_t)len);
	dcr_mpw_uint(proto_map_key(res, "size"), s->backup->sizes[i]);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(path);
	free(fname);
	return rc;
}

int dmn__op_admin_backup_end(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res,
                             dcr_err *err)
{
	int rc = check_operator(s, err);

	(void)res;
	if (rc == 0)
		rc = arg_backup(s, args, err);
	if (rc < 0)
		return rc;
	dmn__log(d, DMN_LOG_INFO, "backup %s: ended", s->backup->id);
	backup_release(d, s->backup);
	s->backup = NULL;
	return 0;
}

/* ---- restore ------------------------------------------------------------------------- */

static int copy_file(const char *from, const char *to, int mode, dcr_err *err)
{
	int in = -1, out = -1, rc = 0;
	uint8_t *buf = dcr_malloc(ADMIN_COPY_BYTES);

	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		rc = dcr_err_set(err, -errno, "%s: %s", from, strerror(errno));
		goto out;
	}
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (out < 0) {
		rc = dcr_err_set(err, -errno, "creating %s: %s", to, strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t k = read(in, buf, ADMIN_COPY_BYTES), w = 0;
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = dcr_err_set(err, -errno, "reading %s: %s", from, strerror(errno));
			goto out;
		}
		if (k == 0)
			break;
		while (w < k) {
			ssize_t m = write(out, buf + w, (size_t)(k - w));
			if (m < 0 && errno == EINTR)
				continue;
			if (m < 0) {
				rc = dcr_err_set(err, -errno, "writing %s: %s", to, strerror(errno));
				goto out;
			}
			w += m;
		}
	}
	if (fsync(out) < 0)
		rc = dcr_err_set(err, -errno, "fsync %s: %s", to, strerror(errno));
out:
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) < 0 && rc == 0)
		rc = dcr_err_set(err, -errno, "writing %s: %s", to, strerror(errno));
	free(buf);
	return rc;
}

static bool is_hex(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return p[n] == 0;
}

/* Copies BACKUP/blobs/XX/ID into dir/blobs; anything else there is refused. */
static int copy_blobs(const char *backup, const char *dir, uint64_t *nblobs, dcr_err *err)
{
	char *top = dcr_asprintf("%s/blobs", backup), *dtop = dcr_asprintf("%s/blobs", dir);
	DIR *dp = NULL, *sp = NULL;
	struct dirent *e, *f;
	int rc = 0;

	if (mkdir(dtop, 0700) < 0) {
		rc = dcr_err_set(err, -errno, "creating %s: %s", dtop, strerror(errno));
		goto out;
	}
	dp = opendir(top);
	if (!dp) {
		if (errno != ENOENT) /* a host without blobs has no blobs/ */
			rc = dcr_err_set(err, -errno, "%s: %s", top, strerror(errno));
		goto out;
	}
	while (rc == 0 && (e = readdir(dp)) != NULL) {
		char *sub, *dsub;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (strlen(e->d_name) != 2 || !is_hex(e->d_name, 2)) {
			rc = dcr_err_set(err, DCR_EFORMAT, "%s/%s: not a blob directory", top,
			                 e->d_name);
			break;
		}
		sub = dcr_asprintf("%s/%s", top, e->d_name);
		dsub = dcr_asprintf("%s/%s", dtop, e->d_name);
		if (mkdir(dsub, 0700) < 0)
			rc = dcr_err_set(err, -errno, "creating %s: %s", dsub, strerror(errno));
		sp = rc == 0 ? opendir(sub) : NULL;
		if (rc == 0 && !sp)
			rc = dcr_err_set(err, -errno, "%s: %s", sub, strerror(errno));
		while (rc == 0 && (f = readdir(sp)) != NULL) {
			char *from, *to;
			if (strcmp(f->d_name, ".") == 0 || strcmp(f->d_name, "..") == 0)
				continue;
			if (!dmn__blob_id_valid(f->d_name) || memcmp(f->d_name, e->d_name, 2) != 0) {
				rc = dcr_err_set(err, DCR_EFORMAT, "%s/%s: not a blob file", sub,
				                 f->d_name);
				break;
			}
			from = dcr_asprintf("%s/%s", sub, f->d_name);
			to = dcr_asprintf("%s/%s", dsub, f->d_name);
			rc = copy_file(from, to, 0600, err);
			free(from);
			free(to);
			(*nblobs)++;
		}
		if (sp)
			closedir(sp);
		sp = NULL;
		free(sub);
		free(dsub);
	}
out:
	if (dp)
		closedir(dp);
	free(top);
	free(dtop);
	return rc;
}

/* Reads blob id whole (every chunk authenticated) into its SHA-256. */
static int blob_sha(dmn_blobs *bs, const char *id, uint8_t sha[32], dcr_err *err)
{
	dmn_blob_reader *r = NULL;
	dcr_sha256_ctx *c = NULL;
	uint8_t *buf = NULL;
	uint64_t off = 0;
	int rc = dmn__blob_open(bs, id, &r, err);

	if (rc < 0)
		goto out;
	c = dcr_sha256_new();
	buf = dcr_malloc(ADMIN_COPY_BYTES);
	for (;;) {
		size_t got = 0;
		rc = dmn__blob_pread(r, off, buf, ADMIN_COPY_BYTES, &got, err);
		if (rc < 0 || got == 0)
			break;
		dcr_sha256_update(c, buf, got);
		off += got;
	}
	if (rc == 0)
		dcr_sha256_final(c, sha);
out:
	dcr_sha256_free(c);
	free(buf);
	dmn__blob_close(r);
	return rc;
}

struct leaves_ctx {
	dcr_buf leaves;
};

static int leaf_one(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	struct leaves_ctx *l = ctx;
	uint8_t h[32];

	(void)seq;
	es_leaf_hash(entry, n, h);
	dcr_buf_append(&l->leaves, h, 32);
	return 0;
}

/* The room's stored Merkle tree and latest checkpoint against its entries. */
static int verify_room_log(dmn *t, dmn_room *r, dcr_err *err)
{
	struct leaves_ctx l;
	uint8_t root[32], stored[32];
	es_checkpoint cp;
	uint64_t size = r->st.size;
	char hex[65];
	int rc;

	dcr_buf_init(&l.leaves);
	rc = es_fold(t->store, r->id, 0, size, leaf_one, &l);
	if (rc < 0) {
		rc = dcr_err_set(err, rc, "room %s: reading its events: %s", r->hex,
		                 dcr_strerror(rc));
		goto out;
	}
	es_merkle_root((const uint8_t(*)[32])l.leaves.data, size, root);
	rc = es_root(t->store, r->id, size, stored);
	if (rc == 0 && memcmp(root, stored, 32) != 0)
		rc = DCR_EINTEGRITY;
	if (rc < 0) {
		dcr_hex_encode(root, 32, hex);
		rc = dcr_err_set(err, DCR_EINTEGRITY,
		                 "room %s: the stored Merkle tree does not match its %llu events "
		                 "(their root is %s)",
		                 r->hex, (unsigned long long)size, hex);
		goto out;
	}
	rc = es_latest_checkpoint(t->store, r->id, &cp);
	if (rc < 0) {
		rc = dcr_err_set(err, DCR_EINTEGRITY, "room %s: no signed checkpoint", r->hex);
		goto out;
	}
	if (memcmp(cp.key, t->pub, 32) != 0) {
		rc = dcr_err_set(err, DCR_EINTEGRITY,
		                 "room %s: the checkpoint is signed by another key than the "
		                 "daemon's",
		                 r->hex);
		goto out;
	}
	rc = es_checkpoint_verify(&cp, err);
	if (rc < 0) {
		dcr_err_prefix(err, "room %s: checkpoint", r->hex);
		goto out;
	}
	if (cp.size != size || memcmp(cp.root, root, 32) != 0) {
		rc = dcr_err_set(err, DCR_EINTEGRITY,
		                 "room %s: the signed checkpoint (size %llu) does not match the "
		                 "log (size %llu, root %s)",
		                 r->hex, (unsigned long long)cp.size, (unsigned long long)size,
		                 (dcr_hex_encode(root, 32, hex), hex));
		goto out;
	}
out:
	dcr_buf_release(&l.leaves);
	return rc;
}

static int id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DMN_BLOB_HEX_BYTES - 1);
}

struct verify_blobs {
	dmn *t;
	char (*ids)[DMN_BLOB_HEX_BYTES];
	size_t n;
	bool *done;
};

/* Blob id must hold the plaintext whose SHA-256 the log records. */
static int expect_blob(struct verify_blobs *v, const char *id, const uint8_t want[32],
                       const char *room, const char *what, const char *name, dcr_err *err)
{
	char (*hit)[DMN_BLOB_HEX_BYTES];
	uint8_t sha[32];
	int rc;

	if (!id || !dmn__blob_id_valid(id))
		return 0;
	hit = bsearch(id, v->ids, v->n, sizeof *v->ids, id_cmp);
	if (!hit || v->done[hit - v->ids])
		return 0; /* not kept (superseded), or checked already */
	v->done[hit - v->ids] = true;
	rc = blob_sha(v->t->blobs, id, sha, err);
	if (rc == 0 && memcmp(sha, want, 32) != 0)
		rc = dcr_err_set(err, DCR_EINTEGRITY,
		                 "blob %s: its SHA-256 differs from the one the log records", id);
	if (rc < 0) /* blob_sha's message names the blob */
		dcr_err_prefix(err, "room %s: %s %s", room, what, name);
	return rc;
}

/* The statistics blob recorded (es_meta "stats:BLOB") for a provisioned
 * file must hold the statistics whose SHA-256 the event records. */
static int expect_stats(struct verify_blobs *v, const char *data_blob, const uint8_t want[32],
                        const char *room, const char *name, dcr_err *err)
{
	char *key, id[DMN_BLOB_HEX_BYTES];
	dcr_buf val;
	int rc = 0;

	if (!data_blob || !dmn__blob_id_valid(data_blob))
		return 0;
	key = dcr_asprintf("stats:%s", data_blob);
	dcr_buf_init(&val);
	if (es_meta_get(v->t->store, key, &val) == 0 && val.len == DMN_BLOB_HEX_BYTES - 1) {
		memcpy(id, val.data, val.len);
		id[val.len] = 0;
		rc = expect_blob(v, id, want, room, "statistics of dataset", name, err);
	}
	dcr_buf_release(&val);
	free(key);
	return rc;
}

static int verify_blobs(dmn *t, uint64_t *checked, dcr_err *err)
{
	struct verify_blobs v = {t, NULL, 0, NULL};
	size_t i, j, k;
	int rc = 0;

	dmn__blobs_referenced(t, &v.ids, &v.n);
	v.done = dcr_calloc(v.n ? v.n : 1, sizeof *v.done);
	for (i = 0; rc == 0 && i < t->rooms.n; i++) {
		dmn_room *r = t->rooms.list[i];
		const rm_state *st = &r->st;
		for (j = 0; rc == 0 && j < st->nprovisions; j++) {
			const rm_provision *p = &st->provisions[j];
			if (!p->present)
				continue;
			rc = expect_blob(&v, p->blob, p->sha256, r->hex, "dataset", p->dataset, err);
			if (rc == 0 && !p->ndrops)
				rc = expect_stats(&v, p->blob, p->stats_sha256, r->hex, p->dataset,
				                  err);
			for (k = 0; rc == 0 && k < p->ndrops; k++) {
				rc = expect_blob(&v, p->drops[k].blob, p->drops[k].sha256, r->hex,
				                 "dataset", p->dataset, err);
				if (rc == 0)
					rc = expect_stats(&v, p->drops[k].blob,
					                  p->drops[k].stats_sha256, r->hex,
					                  p->dataset, err);
			}
		}
		for (j = 0; rc == 0 && j < st->nruns; j++) {
			const rm_run *run = &st->runs[j];
			rc = expect_blob(&v, run->result_blob, run->result_sha256, r->hex,
			                 "result of run", run->id, err);
			if (rc == 0)
				rc = expect_blob(&v, run->logs_blob, run->logs_sha256, r->hex,
				                 "logs of run", run->id, err);
		}
		for (j = 0; rc == 0 && j < st->ndevs; j++) {
			const rm_dev *dv = &st->devs[j];
			rc = expect_blob(&v, dv->result_blob, dv->result_sha256, r->hex,
			                 "result of development run", dv->id, err);
			if (rc == 0)
				rc = expect_blob(&v, dv->logs_blob, dv->logs_sha256, r->hex,
				                 "logs of development run", dv->id, err);
		}
	}
	/* the rest (statistics, prepared tables, cached results): authentic */
	for (i = 0; rc == 0 && i < v.n; i++) {
		uint8_t sha[32];
		if (v.done[i])
			continue;
		rc = blob_sha(t->blobs, v.ids[i], sha, err);
	}
	*checked = v.n;
	free(v.ids);
	free(v.done);
	return rc;
}

/* Removes what restore put into dir (dir itself if it created it). */
static void undo_restore(const char *dir, bool created)
{
	DIR *dp;
	struct dirent *e;

	if (created) {
		rm_tree(dir);
		return;
	}
	dp = opendir(dir);
	if (!dp)
		return;
	while ((e = readdir(dp)) != NULL) {
		char *p;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		p = dcr_asprintf("%s/%s", dir, e->d_name);
		rm_tree(p);
		free(p);
	}
	closedir(dp);
}

static int restore(const char *backup, const char *dir, const char *keys_dir, dcr_err *err)
{
	dmn t;
	bool created = false, copied = false, snap = false;
	char *p = NULL, *q = NULL, *kdir = NULL;
	uint8_t master[DCR_AES_KEY_BYTES];
	dcr_buf mk;
	uint64_t nblobs = 0, checked = 0, events = 0, t0 = dcr_mono_ms();
	struct stat st;
	int rc = 0;

	memset(&t, 0, sizeof t);
	dcr_buf_init(&mk);
	p = dcr_asprintf("%s/backup.json", backup);
	q = dcr_asprintf("%s/events/data.mdb", backup);
	if (stat(p, &st) < 0 || !S_ISREG(st.st_mode) || stat(q, &st) < 0) {
		rc = dcr_err_set(err, DCR_EFORMAT,
		                 "%s is not a dcr backup (no backup.json and events/data.mdb; make "
		                 "one with `dcr admin backup DIR`)",
		                 backup);
		goto out;
	}
	free(p);
	p = dcr_asprintf("%s/daemon.pem", backup);
	if (access(p, F_OK) == 0)
		kdir = dcr_strdup(backup);
	else if (keys_dir)
		kdir = dcr_strdup(keys_dir);
	else {
		rc = dcr_err_set(err, DCR_EKEY,
		                 "%s holds no keys (it was made without --with-keys): give --keys "
		                 "DIR, a directory with the host's daemon.pem and master.key",
		                 backup);
		goto out;
	}
	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode) || !dcr_dir_empty(dir)) {
			rc = dcr_err_set(err, DCR_EEXIST,
			                 "%s is not empty: restore writes only into a new or empty "
			                 "directory",
			                 dir);
			goto out;
		}
	} else if (mkdir(dir, 0700) < 0) {
		rc = dcr_err_set(err, -errno, "creating %s: %s", dir, strerror(errno));
		goto out;
	} else {
		created = true;
	}
	copied = true;
	/* the copy */
	free(p);
	p = dcr_asprintf("%s/events", dir);
	if (mkdir(p, 0700) < 0) {
		rc = dcr_err_set(err, -errno, "creating %s: %s", p, strerror(errno));
		goto out;
	}
	free(p);
	p = dcr_asprintf("%s/events/data.mdb", dir);
	rc = copy_file(q, p, 0600, err);
	if (rc == 0)
		rc = copy_blobs(backup, dir, &nblobs, err);
	for (int i = 0; rc == 0 && i < 2; i++) {
		static const char *const kf[] = {"daemon.pem", "master.key"};
		free(p);
		free(q);
		p = dcr_asprintf("%s/%s", kdir, kf[i]);
		q = dcr_asprintf("%s/%s", dir, kf[i]);
		rc = copy_file(p, q, 0600, err);
	}
	/* the TLS key and certificate where the keys are, if any (a host
	 * that never listened on TCP has none: a later --listen makes one) */
	for (int i = 0; rc == 0 && i < 2; i++) {
		static const char *const tf[] = {DMN_TLS_DIR "/tls.key", DMN_TLS_DIR "/tls.crt"};
		free(p);
		free(q);
		p = dcr_asprintf("%s/%s", kdir, tf[i]);
		q = dcr_asprintf("%s/%s", dir, tf[i]);
		if (access(p, F_OK) < 0 && errno == ENOENT)
			continue;
		if (i == 0) {
			char *td = dcr_asprintf("%s/" DMN_TLS_DIR, dir);
			if (mkdir(td, 0700) < 0 && errno != EEXIST)
				rc = dcr_err_set(err, -errno, "creating %s: %s", td, strerror(errno));
			free(td);
		}
		if (rc == 0)
			rc = copy_file(p, q, i == 0 ? 0600 : 0644, err);
	}
	if (rc < 0)
		goto out;

	/* the verification, on the copy, with dcrd's own start-up functions */
	free(p);
	p = dcr_asprintf("%s/daemon.pem", dir);
	rc = dcr_key_load(p, &t.key, err);
	free(p);
	p = dcr_asprintf("%s/master.key", dir);
	if (rc == 0)
		rc = dcr_read_file(p, 64, &mk, err);
	if (rc == 0 && mk.len != DCR_AES_KEY_BYTES)
		rc = dcr_err_set(err, DCR_EKEY, "%s: expected %u bytes, found %zu", p,
		                 (unsigned)DCR_AES_KEY_BYTES, mk.len);
	if (rc < 0)
		goto out;
	memcpy(master, mk.data, DCR_AES_KEY_BYTES);
	rc = dmn__blobs_open(&t.blobs, dir, master, err);
	dcr_wipe(master, sizeof master);
	if (rc < 0)
		goto out;
	rc = snap_open(&t, dir, t.key, t.blobs, err);
	snap = true;
	if (rc < 0) {
		dcr_err_prefix(err, "the backup's logs do not verify");
		goto out;
	}
	for (size_t i = 0; rc == 0 && i < t.rooms.n; i++) {
		rc = verify_room_log(&t, t.rooms.list[i], err);
		events += t.rooms.list[i]->st.size;
	}
	if (rc < 0) {
		dcr_err_prefix(err, "the backup's logs do not verify");
		goto out;
	}
	rc = verify_blobs(&t, &checked, err);
	if (rc < 0) {
		dcr_err_prefix(err, "the backup's blobs do not verify");
		goto out;
	}
	printf("restored %zu room%s (%llu events) and %llu blobs into %s in %llu ms: every room "
	       "replays, its Merkle tree and signed checkpoint match its events, and the %llu "
	       "blobs the logs reference authenticate and match their recorded SHA-256\n",
	       t.rooms.n, t.rooms.n == 1 ? "" : "s", (unsigned long long)events,
	       (unsigned long long)nblobs, dir,
	       (unsigned long long)(dcr_mono_ms() - t0), (unsigned long long)checked);
out:
	if (snap)
		snap_close(&t);
	else
		free(t.dir);
	dmn__blobs_close(t.blobs);
	dcr_key_free(t.key);
	if (mk.data)
		dcr_wipe(mk.data, mk.len);
	dcr_buf_release(&mk);
	if (rc < 0 && copied)
		undo_restore(dir, created);
	free(p);
	free(q);
	free(kdir);
	return rc;
}

static void restore_usage(FILE *f)
{
	fprintf(f, "usage: dcrd restore --data DIR [--keys KEYDIR] BACKUP\n"
	           "\n"
	           "Restores a backup made by `dcr admin backup` into DIR, which must be new or\n"
	           "empty, and refuses it (leaving DIR as it was) unless every room replays\n"
	           "(signatures, rules), its Merkle tree and signed checkpoint match its\n"
	           "events, and every blob the logs reference authenticates and matches the\n"
	           "SHA-256 the log records. Then start dcrd --data DIR.\n"
	           "\n"
	           "  --data DIR     the new data directory\n"
	           "  --keys KEYDIR  where daemon.pem and master.key (and tls/, if the host\n"
	           "                 listened on TCP) are, for a backup made without\n"
	           "                 --with-keys\n"
	           "  --help         this text\n");
}

int dmn_restore_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"data", required_argument, NULL, 'd'},
	    {"keys", required_argument, NULL, 'k'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = NULL, *keys = NULL;
	dcr_err err;
	int c;

	dcr_err_clear(&err);
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'k':
			keys = optarg;
			break;
		case 'h':
			restore_usage(stdout);
			return 0;
		default:
			restore_usage(stderr);
			return 2;
		}
	}
	if (!dir || optind != argc - 1) {
		fprintf(stderr, "dcrd restore: --data DIR and one BACKUP are required\n");
		restore_usage(stderr);
		return 2;
	}
	if (restore(argv[optind], dir, keys, &err) < 0) {
		fprintf(stderr, "dcrd restore: refused: %s\n", err.msg);
		return 1;
	}
	return 0;
}
