/* cli_admin.c: `dcr admin status [--json]` and `dcr admin backup DIR
 * [--with-keys]`, the host operator's commands (docs/cli.md "Operating the
 * host", docs/operations.md). dcrd answers them only on a connection
 * whose peer is root or dcrd's own user (SO_PEERCRED); any identity key
 * authenticates the connection.
 *
 * The backup is streamed: dcrd takes a snapshot (a compacted copy of its
 * event store and the list of the blobs that copy references), and this
 * command reads each file through the protocol and writes it under DIR,
 * with backup.json describing the snapshot (rooms, sizes, Merkle roots,
 * every file's size and SHA-256). dcrd writes nothing outside its data
 * directory. `dcrd restore` verifies and restores it. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

static const char usage_admin[] =
    "usage: dcr admin status [--json]\n"
    "       dcr admin backup DIR [--with-keys]\n"
    "\n"
    "The host operator's commands; dcrd answers them only to root or to the\n"
    "user dcrd runs as (the peer of the unix socket), whatever the identity.\n"
    "\n"
    "  status        rooms, events, runs queued and running, uploads, disk and\n"
    "                memory use, uptime; --json: one JSON object\n"
    "  backup DIR    a consistent copy of the running host into DIR (new or\n"
    "                empty): the event store (compacted) and the blobs it\n"
    "                references, and backup.json; --with-keys adds daemon.pem,\n"
    "                master.key and the TLS key (keep such a backup as secret\n"
    "                as the host).\n"
    "                Restore it with `dcrd restore --data NEWDIR DIR`.\n";

/* Connects with the caller's identity, or, when there is none, with a key
 * made for this connection only: an operator needs no participant
 * identity, dcrd trusts the socket's peer uid for these operations.
 * *eph gets that key (free it after cl_close). */
static int admin_connect(cl_conn **c, dcr_key **eph, dcr_err *err)
{
	const char *sock = tl_socket_path();
	int rc;

	*eph = NULL;
	if (access(tl_identity_path(), F_OK) == 0 || !sock)
		return tl_connect(c, err);
	rc = dcr_key_generate(eph);
	if (rc < 0)
		return dcr_err_set(err, rc, "making a key for the connection");
	rc = cl_connect(sock, *eph, c, err);
	if (rc < 0)
		dcr_err_prefix(err, "connecting to %s", sock);
	return rc;
}

/* ---- status --------------------------------------------------------------------------- */

static const char *const status_keys[] = {
    "backups",          "blobs",           "blobs_bytes",       "dev_runs_queued",
    "dev_runs_running", "disk_free_bytes", "disk_total_bytes",  "events",
    "events_bytes",     "image_cache_bytes", "pid",             "rooms",
    "rss_bytes",        "rss_peak_bytes",  "runs_queued",       "runs_running",
    "uploads_open",     "uploads_unsigned", "uptime_ms",
};
#define NSTATUS (sizeof status_keys / sizeof status_keys[0])

static uint64_t stat_of(const dcr_mpv *root, const char *key)
{
	uint64_t v = 0;
	dcr_mp_u64(dcr_mp_get(root, key), &v);
	return v;
}

static int cmd_status(int argc, char **argv)
{
	bool json = false;
	const cli_opt opts[] = {{"--json", NULL, &json}, {NULL, NULL, NULL}};
	cl_conn *c = NULL;
	dcr_key *eph = NULL;
	dcr_mp_doc *doc = NULL;
	dcr_buf rb;
	proto_map m;
	dcr_err err;
	const dcr_mpv *root;
	const char *dir = "";
	size_t dir_n = 0;
	int rc;

	CLI_PARSE("admin status", usage_admin, argc, argv, opts, NULL, 0, 0, NULL);
	dcr_err_clear(&err);
	dcr_buf_init(&rb);
	rc = admin_connect(&c, &eph, &err);
	if (rc == 0) {
		proto_map_init(&m);
		rc = cl_call_map(c, "admin.status", &m, &rb, &doc, &err);
	}
	if (rc < 0) {
		fprintf(stderr, "dcr admin status: %s\n", err.msg);
		goto out;
	}
	root = dcr_mp_root(doc);
	dcr_mp_str(dcr_mp_get(root, "data_dir"), &dir, &dir_n);
	if (json) {
		json_t *o = json_object();
		char *s;
		for (size_t i = 0; i < NSTATUS; i++)
			if (dcr_mp_get(root, status_keys[i]))
				json_object_set_new(o, status_keys[i],
				                    json_integer((json_int_t)stat_of(root,
				                                                     status_keys[i])));
		json_object_set_new(o, "data_dir", json_stringn(dir, dir_n));
		s = json_dumps(o, JSON_SORT_KEYS | JSON_INDENT(2));
		printf("%s\n", s);
		free(s);
		json_decref(o);
	} else {
		char a[32], b[32], e[32], f[32];
		uint64_t up = stat_of(root, "uptime_ms") / 1000;
		printf("dcrd pid %llu, up %llud %02lluh %02llum %02llus, data %.*s\n",
		       (unsigned long long)stat_of(root, "pid"), (unsigned long long)(up / 86400),
		       (unsigned long long)(up / 3600 % 24), (unsigned long long)(up / 60 % 60),
		       (unsigned long long)(up % 60), (int)dir_n, dir);
		printf("rooms     %llu (%llu events)\n", (unsigned long long)stat_of(root, "rooms"),
		       (unsigned long long)stat_of(root, "events"));
		printf("runs      %llu queued, %llu running; development runs %llu queued, %llu "
		       "running\n",
		       (unsigned long long)stat_of(root, "runs_queued"),
		       (unsigned long long)stat_of(root, "runs_running"),
		       (unsigned long long)stat_of(root, "dev_runs_queued"),
		       (unsigned long long)stat_of(root, "dev_runs_running"));
		printf("uploads   %llu open, %llu finished and not signed yet\n",
		       (unsigned long long)stat_of(root, "uploads_open"),
		       (unsigned long long)stat_of(root, "uploads_unsigned"));
		cli_human_bytes(stat_of(root, "events_bytes"), a, sizeof a);
		cli_human_bytes(stat_of(root, "blobs_bytes"), b, sizeof b);
		cli_human_bytes(stat_of(root, "disk_free_bytes"), e, sizeof e);
		cli_human_bytes(stat_of(root, "disk_total_bytes"), f, sizeof f);
		printf("disk      event log %s, %llu blobs %s; %s free of %s\n", a,
		       (unsigned long long)stat_of(root, "blobs"), b, e, f);
		cli_human_bytes(stat_of(root, "rss_bytes"), a, sizeof a);
		cli_human_bytes(stat_of(root, "rss_peak_bytes"), b, sizeof b);
		cli_human_bytes(stat_of(root, "image_cache_bytes"), e, sizeof e);
		printf("memory    %s resident (peak %s), image cache %s\n", a, b, e);
		printf("backups   %llu in progress\n", (unsigned long long)stat_of(root, "backups"));
	}
out:
	dcr_mp_doc_free(doc);
	dcr_buf_release(&rb);
	cl_close(c);
	dcr_key_free(eph);
	return rc < 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* ---- backup --------------------------------------------------------------------------- */

/* The names dcrd may give: events/data.mdb, daemon.pem, master.key,
 * tls/tls.key, tls/tls.crt, blobs/XX/ID. Anything else (a path out of DIR) is refused. */
static bool backup_name_ok(const char *s, size_t n)
{
	static const char *const fixed[] = {"events/data.mdb", "daemon.pem", "master.key",
	                                    "tls/tls.key", "tls/tls.crt"};

	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		if (n == strlen(fixed[i]) && memcmp(s, fixed[i], n) == 0)
			return true;
	if (n != 6 + 3 + 32 || memcmp(s, "blobs/", 6) != 0 || s[8] != '/' ||
	    memcmp(s + 6, s + 9, 2) != 0)
		return false;
	for (size_t i = 9; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* mkdir -p of the parent directories of DIR/name. */
static int make_parents(const char *dir, const char *name, dcr_err *err)
{
	char *p = dcr_asprintf("%s/%s", dir, name);
	size_t base = strlen(dir) + 1;
	int rc = 0;

	for (char *s = p + base; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			rc = dcr_err_set(err, -errno, "creating %s: %s", p, strerror(errno));
		*s = '/';
		if (rc < 0)
			break;
	}
	free(p);
	return rc;
}

/* Reads one file of the backup into DIR/name; its SHA-256 into sha. */
static int fetch_file(cl_conn *c, const char *id, const char *dir, const char *name,
                      uint64_t size, uint8_t sha[32], uint64_t *done, cli_progress *pr,
                      uint64_t total, dcr_err *err)
{
	char *path = dcr_asprintf("%s/%s", dir, name);
	dcr_sha256_ctx *h = dcr_sha256_new();
	uint64_t off = 0;
	dcr_buf rb;
	int fd, rc = 0;

	dcr_buf_init(&rb);
	rc = make_parents(dir, name, err);
	if (rc < 0)
		goto out_nofd;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = dcr_err_set(err, -errno, "creating %s: %s", path, strerror(errno));
		goto out_nofd;
	}
	while (off < size) {
		proto_map m;
		dcr_mp_doc *doc = NULL;
		const uint8_t *p;
		size_t n, w = 0;
		proto_map_init(&m);
		dcr_mpw_str(proto_map_key(&m, "backup"), id);
		dcr_mpw_str(proto_map_key(&m, "file"), name);
		dcr_mpw_uint(proto_map_key(&m, "len"), DMN_RESULT_READ_BYTES_MAX);
		dcr_mpw_uint(proto_map_key(&m, "offset"), off);
		rc = cl_call_map(c, "admin.backup.read", &m, &rb, &doc, err);
		if (rc == 0)
			rc = dcr_mp_get_bin(dcr_mp_root(doc), "data", &p, &n, err);
		if (rc == 0 && (n == 0 || n > size - off))
			rc = dcr_err_set(err, DCR_EPROTO, "%s: %zu bytes at offset %llu of %llu",
			                 name, n, (unsigned long long)off, (unsigned long long)size);
		while (rc == 0 && w < n) {
			ssize_t k = write(fd, p + w, n - w);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0)
				rc = dcr_err_set(err, -errno, "writing %s: %s", path, strerror(errno));
			else
				w += (size_t)k;
		}
		if (rc == 0) {
			dcr_sha256_update(h, p, n);
			off += n;
			*done += n;
			cli_progress_update(pr, *done, total);
		}
		dcr_mp_doc_free(doc);
		if (rc < 0)
			break;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = dcr_err_set(err, -errno, "fsync %s: %s", path, strerror(errno));
	if (close(fd) < 0 && rc == 0)
		rc = dcr_err_set(err, -errno, "writing %s: %s", path, strerror(errno));
	if (rc == 0)
		dcr_sha256_final(h, sha);
out_nofd:
	dcr_sha256_free(h);
	dcr_buf_release(&rb);
	free(path);
	return rc;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* Removes what a failed backup wrote: dir itself if this command created
 * it, else everything in it (it was empty). */
static void remove_backup(const char *dir, bool created)
{
	DIR *dp;
	struct dirent *e;

	if (created) {
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		return;
	}
	dp = opendir(dir);
	while (dp && (e = readdir(dp)) != NULL) {
		char *sub;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		sub = dcr_asprintf("%s/%s", dir, e->d_name);
		nftw(sub, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		free(sub);
	}
	if (dp)
		closedir(dp);
}

static int cmd_backup(int argc, char **argv)
{
	bool with_keys = false, created = false, begun = false, wrote = false;
	const cli_opt opts[] = {{"--with-keys", NULL, &with_keys}, {NULL, NULL, NULL}};
	char *pos[1], bid[64] = "", *mpath = NULL, *js = NULL;
	cl_conn *c = NULL;
	dcr_key *eph = NULL;
	dcr_mp_doc *doc = NULL;
	dcr_buf rb;
	proto_map m;
	dcr_err err;
	const dcr_mpv *root, *files, *rooms;
	const char *dir, *p;
	size_t n;
	uint64_t total = 0, done = 0, events = 0, copy_ms = 0, t0 = dcr_mono_ms();
	uint8_t key[32];
	json_t *jfiles = NULL, *jrooms = NULL, *man = NULL;
	cli_progress pr;
	int rc;

	CLI_PARSE("admin backup", usage_admin, argc, argv, opts, pos, 1, 1, NULL);
	dir = pos[0];
	dcr_err_clear(&err);
	dcr_buf_init(&rb);
	{
		struct stat st;
		if (stat(dir, &st) == 0) {
			if (!dcr_dir_empty(dir)) {
				rc = dcr_err_set(&err, DCR_EEXIST,
				                 "%s is not empty: a backup goes into a new or empty "
				                 "directory",
				                 dir);
				goto out;
			}
		} else if (mkdir(dir, 0700) < 0) {
			rc = dcr_err_set(&err, -errno, "creating %s: %s", dir, strerror(errno));
			goto out;
		} else {
			created = true;
		}
		wrote = true;
	}
	rc = admin_connect(&c, &eph, &err);
	if (rc < 0)
		goto out;
	proto_map_init(&m);
	dcr_mpw_bool(proto_map_key(&m, "keys"), with_keys);
	rc = cl_call_map(c, "admin.backup.begin", &m, &rb, &doc, &err);
	if (rc < 0)
		goto out;
	root = dcr_mp_root(doc);
	rc = dcr_mp_get_str(root, "backup", &p, &n, &err);
	if (rc == 0 && n >= sizeof bid)
		rc = dcr_err_set(&err, DCR_EPROTO, "backup id of %zu bytes", n);
	if (rc < 0)
		goto out;
	memcpy(bid, p, n);
	bid[n] = 0;
	begun = true;
	files = dcr_mp_get(root, "files");
	rooms = dcr_mp_get(root, "rooms");
	if (dcr_mp_type(files) != DCR_MP_ARRAY || dcr_mp_type(rooms) != DCR_MP_ARRAY ||
	    dcr_mp_get_binn(root, "daemon_key", key, 32, &err) < 0) {
		rc = dcr_err_set(&err, DCR_EPROTO, "admin.backup.begin: no files, rooms or daemon_key");
		goto out;
	}
	dcr_mp_get_u64(root, "copy_ms", &copy_ms, NULL);
	for (uint32_t i = 0; i < dcr_mp_len(files); i++) {
		uint64_t sz = 0;
		if (dcr_mp_u64(dcr_mp_get(dcr_mp_at(files, i), "size"), &sz) == 0)
			total += sz;
	}
	/* the response doc lives in rb: copy what we need before the reads */
	jrooms = json_array();
	for (uint32_t i = 0; i < dcr_mp_len(rooms); i++) {
		const dcr_mpv *r = dcr_mp_at(rooms, i);
		const char *id;
		size_t idn;
		uint8_t rt[32];
		uint64_t sz = 0;
		char hex[65];
		if (dcr_mp_get_str(r, "id", &id, &idn, &err) < 0 ||
		    dcr_mp_get_binn(r, "root", rt, 32, &err) < 0 ||
		    dcr_mp_get_u64(r, "size", &sz, &err) < 0) {
			rc = DCR_EPROTO;
			goto out;
		}
		dcr_hex_encode(rt, 32, hex);
		json_array_append_new(jrooms, json_pack("{s:s%,s:I,s:s}", "id", id, idn, "size",
		                                        (json_int_t)sz, "root", hex));
		events += sz;
	}
	jfiles = json_array();
	{
		/* names and sizes out of the doc first: fetch_file reuses rb */
		uint32_t nf = dcr_mp_len(files);
		char **names = dcr_calloc(nf ? nf : 1, sizeof *names);
		uint64_t *sizes = dcr_calloc(nf ? nf : 1, sizeof *sizes);
		for (uint32_t i = 0; i < nf && rc == 0; i++) {
			const dcr_mpv *f = dcr_mp_at(files, i);
			const char *nm;
			size_t nn;
			if (dcr_mp_get_str(f, "name", &nm, &nn, &err) < 0 ||
			    dcr_mp_get_u64(f, "size", &sizes[i], &err) < 0)
				rc = DCR_EPROTO;
			else if (!backup_name_ok(nm, nn))
				rc = dcr_err_set(&err, DCR_EPROTO, "dcrd named a file %.*s: refused",
				                 (int)(nn > 80 ? 80 : nn), nm);
			else
				names[i] = dcr_strndup(nm, nn);
		}
		dcr_mp_doc_free(doc);
		doc = NULL;
		cli_progress_init(&pr, "admin backup", "copied");
		for (uint32_t i = 0; i < nf && rc == 0; i++) {
			uint8_t sha[32];
			char hex[65];
			rc = fetch_file(c, bid, dir, names[i], sizes[i], sha, &done, &pr, total, &err);
			if (rc == 0) {
				dcr_hex_encode(sha, 32, hex);
				json_array_append_new(jfiles,
				                      json_pack("{s:s,s:I,s:s}", "name", names[i], "size",
				                                (json_int_t)sizes[i], "sha256", hex));
			}
		}
		cli_progress_end(&pr);
		for (uint32_t i = 0; i < nf; i++)
			free(names[i]);
		free(names);
		free(sizes);
		if (rc < 0)
			goto out;
	}
	proto_map_init(&m);
	dcr_mpw_str(proto_map_key(&m, "backup"), bid);
	rc = cl_call_map(c, "admin.backup.end", &m, &rb, NULL, &err);
	begun = false;
	if (rc < 0)
		goto out;
	{
		char hex[65], when[32];
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
		dcr_hex_encode(key, 32, hex);
		man = json_pack("{s:s,s:s,s:s,s:s,s:b,s:I,s:O,s:O}", "format", "dcr-backup/1",
		                "backup", bid, "created", when, "daemon_key", hex, "with_keys",
		                with_keys, "events", (json_int_t)events, "rooms", jrooms, "files",
		                jfiles);
	}
	js = json_dumps(man, JSON_SORT_KEYS | JSON_INDENT(2));
	mpath = dcr_asprintf("%s/backup.json", dir);
	{
		dcr_buf jb;
		dcr_buf_init(&jb);
		dcr_buf_append_str(&jb, js);
		dcr_buf_append_str(&jb, "\n");
		rc = dcr_write_file_atomic(mpath, jb.data, jb.len, 0600, &err);
		dcr_buf_release(&jb);
	}
	if (rc < 0)
		goto out;
	{
		char sz[32];
		cli_human_bytes(total, sz, sizeof sz);
		printf("backup %s: %zu room%s (%llu events), %zu files, %s in %s; %llu ms (snapshot "
		       "%llu ms)%s\n",
		       bid, json_array_size(jrooms), json_array_size(jrooms) == 1 ? "" : "s", (unsigned long long)events,
		       json_array_size(jfiles), sz, dir, (unsigned long long)(dcr_mono_ms() - t0),
		       (unsigned long long)copy_ms, with_keys ? "; with the keys: keep it secret" : "");
	}
out:
	if (begun && c) {
		/* tell dcrd to drop the snapshot now (closing would too) */
		dcr_err e2;
		dcr_err_clear(&e2);
		proto_map_init(&m);
		dcr_mpw_str(proto_map_key(&m, "backup"), bid);
		cl_call_map(c, "admin.backup.end", &m, &rb, NULL, &e2);
	}
	if (rc < 0) {
		fprintf(stderr, "dcr admin backup: %s\n", err.msg);
		/* nothing half-written stays behind */
		if (wrote)
			remove_backup(dir, created);
	}
	free(js);
	free(mpath);
	json_decref(man);
	json_decref(jrooms);
	json_decref(jfiles);
	dcr_mp_doc_free(doc);
	dcr_buf_release(&rb);
	cl_close(c);
	dcr_key_free(eph);
	return rc < 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

int cli_cmd_admin(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage_admin, stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(usage_admin, stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "status") == 0)
		return cmd_status(argc - 1, argv + 1);
	if (strcmp(argv[1], "backup") == 0)
		return cmd_backup(argc - 1, argv + 1);
	fprintf(stderr, "dcr admin: unknown command \"%s\"\n%s", argv[1], usage_admin);
	return CLI_EXIT_USAGE;
}
