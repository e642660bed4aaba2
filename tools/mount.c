/* mount.c: `dcr mount ROOM DIR` and `dcr umount DIR`.
 *
 * mount shows one room, as the current identity sees it, at DIR (fs/). It
 * daemonizes unless --foreground, and the parent returns only once the
 * mount answers (the child reports "ok" or the error through a pipe), so
 * `dcr mount R D && ls D` never races. A stale mount left at DIR by a
 * crashed mount process (stat fails with ENOTCONN, "Transport endpoint is
 * not connected") is detached first.
 *
 * umount: umount2() as root, else fusermount3 -u (the setuid helper). The
 * mount process sees the unmount and exits. */
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tools.h"
#include "../fs/fs.h"

static void usage_mount(FILE *o)
{
	fprintf(o, "usage: dcr mount ROOM DIR [--foreground] [--socket PATH] [--debug]\n"
	           "  Mounts room ROOM (id or name) at DIR as the current identity sees it.\n"
	           "  The daemon is --socket, --server HOST:PORT (with the global options\n"
	           "  --pin and known_servers) or, without either, the server dcr join\n"
	           "  recorded for ROOM; a server's key is checked once here and every\n"
	           "  later connection of the mount demands that same key.\n"
	           "  Returns once the mount works; --foreground stays attached until it is\n"
	           "  unmounted (dcr umount DIR). DCR_MOUNT_LOG=FILE keeps the background\n"
	           "  process's diagnostics. See docs/mount.md.\n");
}

static void usage_umount(FILE *o)
{
	fprintf(o, "usage: dcr umount DIR [--lazy]\n"
	           "  Unmounts a room mounted with dcr mount.\n");
}

static int run_fusermount(const char *dir, bool lazy)
{
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (lazy)
			execlp("fusermount3", "fusermount3", "-u", "-z", dir, (char *)NULL);
		else
			execlp("fusermount3", "fusermount3", "-u", dir, (char *)NULL);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	return WIFEXITED(st) && WEXITSTATUS(st) == 127 ? -ENOENT : -EIO;
}

static int do_unmount(const char *dir, bool lazy)
{
	if (geteuid() == 0) {
		if (umount2(dir, lazy ? MNT_DETACH : 0) == 0)
			return 0;
		if (errno != EPERM)
			return -errno;
	}
	return run_fusermount(dir, lazy);
}

/* Detaches a dead mount at dir (ENOTCONN on stat). */
static int clear_stale(const char *dir, dcr_err *err)
{
	struct stat st;
	if (stat(dir, &st) == 0 || errno != ENOTCONN)
		return 0;
	int rc = do_unmount(dir, true);
	if (rc < 0)
		return dcr_err_set(err, rc,
		                   "%s: stale mount (transport endpoint not connected) "
		                   "could not be cleared: %s",
		                   dir, strerror(-rc));
	fprintf(stderr, "dcr mount: cleared a stale mount at %s\n", dir);
	return 0;
}

/* Is something mounted exactly at dir (absolute, resolved)? /proc/mounts
 * escapes space, tab, newline and backslash as octal. */
static bool is_mountpoint(const char *dir)
{
	FILE *fp = fopen("/proc/self/mounts", "re");
	char line[4096], esc[PATH_MAX * 4 + 1];
	bool found = false;
	size_t n = 0;
	if (!fp)
		return false;
	for (const char *p = dir; *p && n + 4 < sizeof esc; p++) {
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\\')
			n += (size_t)snprintf(esc + n, sizeof esc - n, "\\%03o", (unsigned char)*p);
		else
			esc[n++] = *p;
	}
	esc[n] = 0;
	while (!found && fgets(line, sizeof line, fp)) {
		char *sp = strchr(line, ' ');
		if (!sp)
			continue;
		char *mp = sp + 1, *end = strchr(mp, ' ');
		if (end && (size_t)(end - mp) == n && memcmp(mp, esc, n) == 0)
			found = true;
	}
	fclose(fp);
	return found;
}

/* Runs the mount in this process as key (freed here); writes the outcome
 * to ready_fd. */
static int serve(const char *room, const char *dir, const cl_addr *addr, dcr_key *key, bool debug,
                 int ready_fd, dcr_err *err)
{
	cl_conn *c = NULL;
	fs_proto *p = NULL;
	fs *f = NULL;
	fs_options o;
	fs_backend be;
	int rc;

	memset(&o, 0, sizeof o);
	/* Every upload chunk and FUSE buffer is about 1 MiB: keep such blocks
	 * in the heap instead of an mmap/munmap (and page faults) per chunk. */
	mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
	rc = cl_connect_addr(addr, key, &c, err);
	if (rc < 0)
		goto out;
	rc = cl_room_resolve(c, room, o.room, err);
	cl_close(c);
	c = NULL;
	if (rc < 0)
		goto out;
	rc = fs_proto_new(addr, key, o.room, 4, &p, err);
	if (rc < 0)
		goto out;
	fs_proto_backend(p, &be);
	dcr_key_public(key, o.me);
	memcpy(o.daemon, fs_proto_daemon_key(p), 32);
	o.mountpoint = dir;
	o.uid = getuid();
	o.gid = getgid();
	rc = fs_new(&o, &be, &f, err);
	if (rc < 0)
		goto out;
	rc = fs_fuse_run(f, dir, ready_fd, 200, debug, err);
	ready_fd = -1; /* fs_fuse_run reported and closed it */
out:
	if (rc < 0 && ready_fd >= 0) {
		char msg[DCR_ERR_MSG_BYTES + 2];
		snprintf(msg, sizeof msg, "%s\n", err->msg[0] ? err->msg : dcr_strerror(rc));
		if (write(ready_fd, msg, strlen(msg)) < 0)
			rc = rc < 0 ? rc : -errno;
		close(ready_fd);
	}
	fs_free(f);
	fs_proto_free(p);
	cl_close(c);
	dcr_key_free(key);
	return rc;
}

int cmd_mount(int argc, char **argv)
{
	const char *room = NULL, *dir = NULL, *sock = NULL;
	bool fg = false, debug = false;
	char dirabs[PATH_MAX], sockabs[PATH_MAX];
	char *owned = NULL, *pin = NULL;
	dcr_key *key = NULL;
	dcr_err err = {0};
	cl_addr addr;
	struct stat st;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage_mount(stdout);
			return 0;
		} else if (strcmp(argv[i], "--foreground") == 0 || strcmp(argv[i], "-f") == 0) {
			fg = true;
		} else if (strcmp(argv[i], "--debug") == 0) {
			debug = true;
			fg = true;
		} else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
			sock = argv[++i];
		} else if (argv[i][0] == '-') {
			usage_mount(stderr);
			return 2;
		} else if (!room) {
			room = argv[i];
		} else if (!dir) {
			dir = argv[i];
		} else {
			usage_mount(stderr);
			return 2;
		}
	}
	if (!room || !dir) {
		usage_mount(stderr);
		return 2;
	}
	if (sock) {
		memset(&addr, 0, sizeof addr);
		addr.socket = sock;
	} else if (tl_addr(room, &addr, &owned, &err) < 0) {
		tl_fail("mount", &err);
		return 1;
	}
	if (clear_stale(dir, &err) < 0)
		goto fail;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || !realpath(dir, dirabs)) {
		dcr_err_set(&err, -ENOTDIR, "%s: not a directory", dir);
		goto fail;
	}
	if (is_mountpoint(dirabs)) {
		dcr_err_set(&err, -EBUSY, "%s: already a mount point (dcr umount %s first)", dir,
		            dir);
		goto fail;
	}
	/* the background process reconnects later, from / */
	if (addr.socket) {
		if (!realpath(addr.socket, sockabs)) {
			dcr_err_set(&err, -errno, "socket %s: %s", addr.socket, strerror(errno));
			goto fail;
		}
		addr.socket = sockabs;
	}
	/* Loaded here, before the background process leaves the current
	 * directory: a relative --identity or DCR_IDENTITY names a file here. */
	if (tl_load_identity(&key, &err) < 0)
		goto fail;
	if (addr.server) {
		/* The server's key is checked here, where the user sees what
		 * known_servers says (first use, a changed key); the mount's
		 * connections then demand exactly that key. */
		cl_conn *c = NULL;
		if (cl_connect_addr(&addr, key, &c, &err) < 0) {
			dcr_err_prefix(&err, "connecting to %s", addr.server);
			goto fail;
		}
		pin = dcr_strdup(cl_server_fingerprint(c));
		cl_close(c);
		addr.pin = pin;
		addr.check = NULL;
		addr.check_ctx = NULL;
	}
	if (fg) {
		rc = serve(room, dirabs, &addr, key, debug, -1, &err);
		key = NULL; /* serve freed it */
		if (rc < 0)
			goto fail;
		rc = 0;
		goto out;
	}

	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		dcr_err_set(&err, -errno, "pipe: %s", strerror(errno));
		goto fail;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		dcr_err_set(&err, -errno, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		goto fail;
	}
	if (pid == 0) {
		close(pfd[0]);
		setsid();
		signal(SIGHUP, SIG_IGN);
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		const char *log = getenv("DCR_MOUNT_LOG");
		int lfd =
		    log && log[0] ? open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
			dup2(lfd >= 0 ? lfd : nul, 2);
		}
		if (chdir("/") < 0)
			_exit(1);
		rc = serve(room, dirabs, &addr, key, false, pfd[1], &err);
		if (rc < 0)
			fprintf(stderr, "dcr mount: %s\n", err.msg);
		if (lfd >= 0)
			close(lfd);
		if (nul >= 0)
			close(nul);
		free(owned);
		free(pin);
		exit(rc < 0 ? 1 : 0);
	}
	close(pfd[1]);
	char buf[DCR_ERR_MSG_BYTES + 64];
	size_t n = 0;
	for (;;) {
		ssize_t r = read(pfd[0], buf + n, sizeof buf - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == sizeof buf - 1)
			break;
	}
	close(pfd[0]);
	buf[n] = 0;
	if (strncmp(buf, "ok\n", 3) == 0) {
		rc = 0;
		goto out;
	}
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = 0;
	int wst;
	waitpid(pid, &wst, WNOHANG);
	dcr_err_set(&err, DCR_EINTERNAL, "%s", n ? buf : "the mount process exited");
fail:
	tl_fail("mount", &err);
	rc = 1;
out:
	dcr_key_free(key); /* the background process has its own copy */
	free(owned);
	free(pin);
	return rc;
}

int cmd_umount(int argc, char **argv)
{
	const char *dir = NULL;
	bool lazy = false;
	dcr_err err = {0};
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage_umount(stdout);
			return 0;
		} else if (strcmp(argv[i], "--lazy") == 0 || strcmp(argv[i], "-z") == 0) {
			lazy = true;
		} else if (argv[i][0] == '-' || dir) {
			usage_umount(stderr);
			return 2;
		} else {
			dir = argv[i];
		}
	}
	if (!dir) {
		usage_umount(stderr);
		return 2;
	}
	int rc = do_unmount(dir, lazy);
	if (rc < 0) {
		dcr_err_set(&err, rc, "%s: %s", dir,
		            rc == -EINVAL ? "not a mount point" : strerror(-rc));
		tl_fail("umount", &err);
		return 1;
	}
	return 0;
}
