/* test_cmp_sandbox.c: the python/r sandbox (compute/cmp_sandbox.c) and its
 * escape catalogue (issue 11).
 *
 * Its main dispatches to cmp_sandbox_child_main first, as dcrd does: the
 * sandbox re-executes this very binary (/proc/self/exe) as its child.
 * Positive runs in each language read an input, write outputs and logs;
 * then each escape of the catalogue is tried by a python script and its
 * containment is checked from the host (a port or socket the test opens
 * is never reached, a secret's bytes never appear in any file or message,
 * no process of the run's uid is alive after the run, ...), not only the
 * failure of the run. Needs root (a uid of the run's own), bubblewrap and
 * python3/Rscript in /usr/bin: else exit 77 (skipped). */
#include <arpa/inet.h>
#include <stddef.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../compute/compute_sandbox.h"
#include "test.h"

static char tmpdir[64];

typedef struct run {
	int rc;
	dcr_err err;
	cmp_sandbox_out out;
	uint64_t ms;
} run;

/* Small limits: the catalogue must be fast. */
static cmp_sandbox_limits small_limits(void)
{
	cmp_sandbox_limits l;

	memset(&l, 0, sizeof l);
	l.wall_ms = 8000;
	l.cpu_ms = 4000;
	l.memory_bytes = 768ull << 20;
	l.procs = 32;
	l.output_bytes = 1u << 20;
	l.output_files = 16;
	l.output_depth = 2;
	l.tmp_bytes = 1u << 20;
	l.log_bytes = 4096;
	return l;
}

static void run_spec(run *r, enum cmp_lang lang, const char *script, const cmp_sandbox_input *in,
                     size_t nin, const cmp_sandbox_limits *l, cmp_cancel *cancel)
{
	cmp_sandbox_spec spec;
	uint64_t t0 = dcr_mono_ms();

	memset(&spec, 0, sizeof spec);
	spec.lang = lang;
	spec.script = script;
	spec.script_len = strlen(script);
	spec.inputs = in;
	spec.ninputs = nin;
	spec.limits = *l;
	spec.cancel = cancel;
	dcr_err_clear(&r->err);
	cmp_sandbox_out_init(&r->out);
	r->rc = cmp_sandbox_run(&spec, &r->out, &r->err);
	r->ms = dcr_mono_ms() - t0;
}

static void py(run *r, const char *script)
{
	cmp_sandbox_limits l = small_limits();
	run_spec(r, CMP_LANG_PYTHON, script, NULL, 0, &l, NULL);
}

static const cmp_sandbox_file *file_of(const cmp_sandbox_out *o, const char *name)
{
	size_t i;

	for (i = 0; i < o->nfiles; i++)
		if (strcmp(o->files[i].name, name) == 0)
			return &o->files[i];
	return NULL;
}

static bool has_bytes(const uint8_t *p, size_t n, const char *needle)
{
	size_t m = strlen(needle);

	return n >= m && memmem(p, n, needle, m) != NULL;
}

/* The secret's bytes appear nowhere the caller gets. */
static bool leaks(const run *r, const char *secret)
{
	size_t i;

	if (strstr(r->err.msg, secret))
		return true;
	for (i = 0; i < r->out.nfiles; i++)
		if (has_bytes(r->out.files[i].data, r->out.files[i].len, secret))
			return true;
	return false;
}

/* Processes of uid alive on the host. */
static int procs_of(uint32_t uid)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], buf[2048], *s;
		int fd;
		ssize_t k;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
		if ((fd = open(path, O_RDONLY)) < 0)
			continue;
		k = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (k <= 0)
			continue;
		buf[k] = 0;
		if ((s = strstr(buf, "\nUid:")) && strtoul(s + 5, NULL, 10) == uid)
			n++;
	}
	closedir(d);
	return n;
}

/* After every run: nothing of it is alive. */
static void check_gone(const run *r)
{
	CHECK(r->out.host_uid >= CMP_SANDBOX_UID_BASE, "host uid %u", r->out.host_uid);
	CHECK(procs_of(r->out.host_uid) == 0, "a process of uid %u outlived the run",
	      r->out.host_uid);
}

/* ---- positive runs -------------------------------------------------------- */

static void test_python_ok(void)
{
	static const char csv[] = "id,amount\n1,10\n2,32\n";
	dcr_mem m = {(const uint8_t *)csv, sizeof csv - 1, 0};
	cmp_sandbox_input in = {"bank/dataset.csv", sizeof csv - 1, dcr_mem_read, &m};
	cmp_sandbox_limits l = small_limits();
	const cmp_sandbox_file *f;
	run r;

	run_spec(&r, CMP_LANG_PYTHON,
	         "import pandas as pd, os, sys\n"
	         "df = pd.read_csv('/input/bank/dataset.csv')\n"
	         "print('rows', len(df))\n"
	         "print('to stderr', file=sys.stderr)\n"
	         "df['double'] = df['amount'] * 2\n"
	         "df.to_csv('/output/dataset.csv', index=False)\n"
	         "os.mkdir('/output/sub')\n"
	         "open('/output/sub/total.txt', 'w').write(str(df['amount'].sum()))\n",
	         &in, 1, &l, NULL);
	CHECK_OK(r.rc, &r.err);
	CHECK(r.out.nfiles == 2, "%zu files", r.out.nfiles);
	CHECK(r.out.nfiles == 2 && strcmp(r.out.files[0].name, "dataset.csv") == 0 &&
	      strcmp(r.out.files[1].name, "sub/total.txt") == 0);
	f = file_of(&r.out, "dataset.csv");
	CHECK(f && f->len == strlen("id,amount,double\n1,10,20\n2,32,64\n") &&
	      memcmp(f->data, "id,amount,double\n1,10,20\n2,32,64\n", f->len) == 0);
	f = file_of(&r.out, "sub/total.txt");
	CHECK(f && f->len == 2 && memcmp(f->data, "42", 2) == 0);
	CHECK(r.out.out_log.len == 7 && memcmp(r.out.out_log.data, "rows 2\n", 7) == 0);
	CHECK(has_bytes(r.out.err_log.data, r.out.err_log.len, "to stderr"));
	CHECK(r.out.exit_code == 0);
	CHECK(r.out.wall_ms > 0 && r.out.wall_ms <= r.ms + 5);
	check_gone(&r);
	cmp_sandbox_out_release(&r.out);
}

static void test_r_ok(void)
{
	static const char csv[] = "id,amount\n1,10\n2,32\n";
	dcr_mem m = {(const uint8_t *)csv, sizeof csv - 1, 0};
	cmp_sandbox_input in = {"bank/dataset.csv", sizeof csv - 1, dcr_mem_read, &m};
	cmp_sandbox_limits l = small_limits();
	const cmp_sandbox_file *f;
	run r;

	run_spec(&r, CMP_LANG_R,
	         "d <- read.csv('/input/bank/dataset.csv')\n"
	         "cat('rows', nrow(d), '\\n')\n"
	         "message('to stderr')\n"
	         "write.csv(data.frame(total = sum(d$amount)), '/output/dataset.csv', "
	         "row.names = FALSE)\n",
	         &in, 1, &l, NULL);
	CHECK_OK(r.rc, &r.err);
	f = file_of(&r.out, "dataset.csv");
	CHECK(r.out.nfiles == 1 && f && f->len == strlen("\"total\"\n42\n") &&
	      memcmp(f->data, "\"total\"\n42\n", f->len) == 0);
	CHECK(has_bytes(r.out.out_log.data, r.out.out_log.len, "rows 2"));
	CHECK(has_bytes(r.out.err_log.data, r.out.err_log.len, "to stderr"));
	check_gone(&r);
	cmp_sandbox_out_release(&r.out);

	/* negative: an R error fails the run, its stderr kept */
	run_spec(&r, CMP_LANG_R, "stop('broken on purpose')\n", NULL, 0, &l, NULL);
	CHECK_ERR(r.rc, DCR_ESCRIPT, &r.err, "exited with status 1");
	CHECK(has_bytes(r.out.err_log.data, r.out.err_log.len, "broken on purpose"));
	CHECK(r.out.nfiles == 0);
	check_gone(&r);
	cmp_sandbox_out_release(&r.out);
}

static void test_script_fails(void)
{
	run r;

	py(&r, "import sys\nopen('/output/x', 'w').write('partial')\nprint('oops', file=sys.stderr)\n"
	       "sys.exit(3)\n");
	CHECK_ERR(r.rc, DCR_ESCRIPT, &r.err, "exited with status 3");
	CHECK(r.out.exit_code == 3);
	CHECK(r.out.nfiles == 0); /* a failed run gives no files */
	CHECK(has_bytes(r.out.err_log.data, r.out.err_log.len, "oops"));
	check_gone(&r);
	cmp_sandbox_out_release(&r.out);

	/* logs past their limit are truncated, not an error */
	py(&r, "import sys\nsys.stdout.write('x' * 100000)\n");
	CHECK_OK(r.rc, &r.err);
	CHECK(r.out.out_log.len == 4096 && r.out.out_truncated);
	CHECK(!r.out.err_truncated);
	cmp_sandbox_out_release(&r.out);
}

static void test_wall_and_cancel(void)
{
	cmp_sandbox_limits l = small_limits();
	cmp_cancel *cancel = cmp_cancel_new();
	run r;

	l.wall_ms = 1500;
	run_spec(&r, CMP_LANG_PYTHON, "import time\ntime.sleep(60)\n", NULL, 0, &l, NULL);
	CHECK_ERR(r.rc, DCR_ETIMEOUT, &r.err, "wall-clock limit of 1500 ms");
	/* the child's own stop, well before the caller's backstop (+5 s) */
	CHECK(r.ms >= 1500 && r.ms < 6000, "%llu ms", (unsigned long long)r.ms);
	check_gone(&r);
	cmp_sandbox_out_release(&r.out);

	/* cancel: fired before the run, it never starts */
	cmp_cancel_fire(cancel);
	run_spec(&r, CMP_LANG_PYTHON, "print(1)\n", NULL, 0, &l, cancel);
	CHECK_ERR(r.rc, DCR_ECANCELED, &r.err, "cancelled");
	cmp_sandbox_out_release(&r.out);
	cmp_cancel_free(cancel);
}

struct canceller {
	cmp_cancel *c;
	unsigned ms;
};

static void *cancel_later(void *arg)
{
	struct canceller *k = arg;

	usleep(k->ms * 1000u);
	cmp_cancel_fire(k->c);
	return NULL;
}

static void test_cancel_running(void)
{
	cmp_sandbox_limits l = small_limits();
	struct canceller k = {cmp_cancel_new(), 1000};
	pthread_t th;
	run r;

	pthread_create(&th, NULL, cancel_later, &k);
	run_spec(&r, CMP_LANG_PYTHON, "import time\ntime.sleep(60)\n", NULL, 0, &l, k.c);
	pthread_join(th, NULL);
	CHECK_ERR(r.rc, DCR_ECANCELED, &r.err, "cancelled");
	CHECK(r.ms >= 1000 && r.ms < 4000, "%llu ms", (unsigned long long)r.ms);
	cmp_sandbox_out_release(&r.out);
	cmp_cancel_free(k.c);
}


/* ---- the escape catalogue ---------------------------------------------------
 * Each script tries one escape and writes what happened to /output/report
 * (so that a run that "succeeds" at containing it is told apart from one
 * that failed for another reason); the test checks the containment from
 * the host. */

/* The run's /output/report, NUL-terminated in a static buffer ("" if none). */
static const char *report(const run *r)
{
	static char buf[8192];
	const cmp_sandbox_file *f = file_of(&r->out, "report");
	size_t n = f ? (f->len < sizeof buf - 1 ? f->len : sizeof buf - 1) : 0;

	if (n)
		memcpy(buf, f->data, n);
	buf[n] = 0;
	return buf;
}

static void done(run *r)
{
	check_gone(r);
	cmp_sandbox_out_release(&r->out);
}

/* A pending connection on a listening socket? */
static bool pending(int lfd)
{
	struct pollfd p = {lfd, POLLIN, 0};

	return poll(&p, 1, 0) > 0;
}

static void esc_tcp(void)
{
	struct sockaddr_in a;
	socklen_t al = sizeof a;
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	char script[2048];
	run r;

	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 8) == 0 &&
	      getsockname(lfd, (struct sockaddr *)&a, &al) == 0);
	snprintf(script, sizeof script,
	         "import socket\n"
	         "out = []\n"
	         "for fam, addr in [(socket.AF_INET, ('127.0.0.1', %d)), (socket.AF_INET, "
	         "('127.0.0.1', 22)), (socket.AF_INET6, ('::1', %d))]:\n"
	         "    try:\n"
	         "        s = socket.socket(fam, socket.SOCK_STREAM)\n"
	         "        s.settimeout(1)\n"
	         "        s.connect(addr)\n"
	         "        out.append('CONNECTED')\n"
	         "    except OSError as e:\n"
	         "        out.append('refused:%%d' %% e.errno)\n"
	         "for fam, typ in [(socket.AF_INET, socket.SOCK_DGRAM), (socket.AF_NETLINK, "
	         "socket.SOCK_RAW), (socket.AF_PACKET, socket.SOCK_RAW)]:\n"
	         "    try:\n"
	         "        socket.socket(fam, typ)\n"
	         "        out.append('SOCKET')\n"
	         "    except OSError as e:\n"
	         "        out.append('refused:%%d' %% e.errno)\n"
	         "a, b = socket.socketpair()\n"
	         "a.send(b'x')\n"
	         "out.append('unix:' + b.recv(1).decode())\n"
	         "open('/output/report', 'w').write(' '.join(out))\n",
	         ntohs(a.sin_port), ntohs(a.sin_port));
	py(&r, script);
	CHECK_OK(r.rc, &r.err);
	/* every socket() but AF_UNIX is refused by the filter (EPERM = 1) */
	CHECK(strcmp(report(&r), "refused:1 refused:1 refused:1 refused:1 refused:1 refused:1 "
	                         "unix:x") == 0,
	      "%s", report(&r));
	CHECK(!pending(lfd), "the host's port was reached");
	close(lfd);
	done(&r);
}

static void esc_unix_socket(void)
{
	struct sockaddr_un a;
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	char script[2048];
	run r;

	memset(&a, 0, sizeof a);
	a.sun_family = AF_UNIX;
	snprintf(a.sun_path, sizeof a.sun_path, "%s/host.sock", tmpdir);
	CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 8) == 0);
	snprintf(script, sizeof script,
	         "import socket, os\n"
	         "out = ['exists' if os.path.exists('%s') else 'absent']\n"
	         "for p in ['%s', '/run/dcr.sock', '/var/run/dbus/system_bus_socket']:\n"
	         "    try:\n"
	         "        s = socket.socket(socket.AF_UNIX)\n"
	         "        s.connect(p)\n"
	         "        out.append('CONNECTED')\n"
	         "    except OSError as e:\n"
	         "        out.append('failed')\n"
	         "try:\n"
	         "    s = socket.socket(socket.AF_UNIX)\n"
	         "    s.connect('\\0dcr-abstract-%d')\n"
	         "    out.append('CONNECTED')\n"
	         "except OSError:\n"
	         "    out.append('failed')\n"
	         "open('/output/report', 'w').write(' '.join(out))\n",
	         a.sun_path, a.sun_path, (int)getpid());
	{
		/* an abstract socket on the host too: the network namespace hides it */
		struct sockaddr_un b;
		int afd = socket(AF_UNIX, SOCK_STREAM, 0);
		socklen_t bl;
		memset(&b, 0, sizeof b);
		b.sun_family = AF_UNIX;
		bl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
		                 (size_t)snprintf(b.sun_path + 1, sizeof b.sun_path - 1,
		                                  "dcr-abstract-%d", (int)getpid()));
		CHECK(afd >= 0 && bind(afd, (struct sockaddr *)&b, bl) == 0 && listen(afd, 8) == 0);
		py(&r, script);
		CHECK(!pending(afd), "the host's abstract socket was reached");
		close(afd);
	}
	CHECK_OK(r.rc, &r.err);
	CHECK(strcmp(report(&r), "absent failed failed failed failed") == 0, "%s", report(&r));
	CHECK(!pending(lfd), "the host's unix socket was reached");
	close(lfd);
	unlink(a.sun_path);
	done(&r);
}

static void esc_dns(void)
{
	run r;

	py(&r, "import socket, os\n"
	       "out = ['resolv' if os.path.exists('/etc/resolv.conf') else 'noresolv']\n"
	       "for h in ['example.com', 'localhost']:\n"
	       "    try:\n"
	       "        socket.getaddrinfo(h, 80, proto=socket.IPPROTO_TCP)\n"
	       "        s = socket.create_connection((h, 80), timeout=1)\n"
	       "        out.append('CONNECTED')\n"
	       "    except OSError:\n"
	       "        out.append('failed')\n"
	       "open('/output/report', 'w').write(' '.join(out))\n");
	CHECK_OK(r.rc, &r.err);
	CHECK(strcmp(report(&r), "noresolv failed failed") == 0, "%s", report(&r));
	done(&r);
}

/* A python snippet that looks for name everywhere it can read, and
 * writes what it found (and the bytes of it) to the report. */
#define HUNT                                                                                       \
	"import os\n"                                                                              \
	"found = []\n"                                                                             \
	"for root, dirs, files in os.walk('/', onerror=lambda e: None):\n"                        \
	"    if root.startswith(('/proc', '/sys', '/usr', '/dev')):\n"                                     \
	"        dirs[:] = []\n"                                                                   \
	"        continue\n"                                                                       \
	"    for f in files:\n"                                                                    \
	"        p = os.path.join(root, f)\n"                                                      \
	"        try:\n"                                                                           \
	"            b = open(p, 'rb').read(1 << 16)\n"                                            \
	"        except OSError:\n"                                                                \
	"            continue\n"                                                                   \
	"        if NEEDLE in b:\n"                                                                \
	"            found.append(p + ':' + b.decode('latin1'))\n"

static void esc_host_dir(void)
{
	char path[512], script[4096], secret[64];
	run r;

	snprintf(secret, sizeof secret, "HOST-SECRET-%d", (int)getpid());
	snprintf(path, sizeof path, "%s/secret.txt", tmpdir);
	CHECK(dcr_write_file_atomic(path, secret, strlen(secret), 0644, NULL) == 0);
	snprintf(script, sizeof script,
	         "NEEDLE = b'HOST-' + b'SECRET'\n" HUNT
	         "for p in ['%s', '/proc/1/root%s', '/proc/self/root%s']:\n"
	         "    try:\n"
	         "        found.append(p + ':' + open(p).read())\n"
	         "    except OSError:\n"
	         "        pass\n"
	         "open('/output/report', 'w').write('found:' + repr(found))\n",
	         path, path, path);
	py(&r, script);
	CHECK_OK(r.rc, &r.err);
	CHECK(strcmp(report(&r), "found:[]") == 0, "%s", report(&r));
	CHECK(!leaks(&r, secret));
	unlink(path);
	done(&r);
}

struct other_room {
	run r;
	const char *secret;
};

static void *other_room_main(void *arg)
{
	struct other_room *o = arg;
	dcr_mem m = {(const uint8_t *)o->secret, strlen(o->secret), 0};
	cmp_sandbox_input in = {"bank/dataset.csv", strlen(o->secret), dcr_mem_read, &m};
	cmp_sandbox_limits l = small_limits();

	/* holds its input open and its files in /tmp for 3 s */
	run_spec(&o->r, CMP_LANG_PYTHON,
	         "import time, shutil\n"
	         "shutil.copy('/input/bank/dataset.csv', '/tmp/copy.csv')\n"
	         "f = open('/input/bank/dataset.csv')\n"
	         "time.sleep(3)\n",
	         &in, 1, &l, NULL);
	return NULL;
}

static void esc_other_room(void)
{
	struct other_room o;
	char secret[64];
	pthread_t th;
	run r;

	snprintf(secret, sizeof secret, "ROOM-B-SECRET-%d\n", (int)getpid());
	o.secret = secret;
	pthread_create(&th, NULL, other_room_main, &o);
	usleep(1000 * 1000); /* room B is running */
	py(&r, "NEEDLE = b'ROOM-B-' + b'SECRET'\n" HUNT
	       "pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
	       "for p in pids:\n"
	       "    for f in ['root/input/bank/dataset.csv', 'root/tmp/copy.csv', 'fd/3', 'fd/4']:\n"
	       "        try:\n"
	       "            b = open('/proc/%s/%s' % (p, f), 'rb').read()\n"
	       "            if NEEDLE in b:\n"
	       "                found.append(b.decode('latin1'))\n"
	       "        except OSError:\n"
	       "            pass\n"
	       "open('/output/report', 'w').write('found:' + repr(found))\n");
	pthread_join(th, NULL);
	CHECK_OK(o.r.rc, &o.r.err);
	CHECK(o.r.out.host_uid != r.out.host_uid, "two runs share uid %u", r.out.host_uid);
	CHECK_OK(r.rc, &r.err);
	CHECK(strcmp(report(&r), "found:[]") == 0, "%s", report(&r));
	CHECK(!leaks(&r, secret));
	done(&r);
	done(&o.r);
}

static void esc_write_outside(void)
{
	char path[512], script[4096];
	dcr_buf b;
	run r;

	snprintf(path, sizeof path, "%s/victim.txt", tmpdir);
	CHECK(dcr_write_file_atomic(path, "original", 8, 0666, NULL) == 0);
	snprintf(script, sizeof script,
	         "out = []\n"
	         "for p in ['%s', '/input/x', '/input/script.py', '/usr/x', '/x', '/etc/x', "
	         "'/dev/x', '/proc/x', '/usr/bin/python3']:\n"
	         "    try:\n"
	         "        open(p, 'a').write('PWNED')\n"
	         "        out.append('WROTE ' + p)\n"
	         "    except OSError:\n"
	         "        out.append('no')\n"
	         "open('/tmp/ok', 'w').write('tmp is writable')\n"
	         "open('/output/report', 'w').write(' '.join(out))\n",
	         path);
	py(&r, script);
	CHECK_OK(r.rc, &r.err);
	CHECK(strcmp(report(&r), "no no no no no no no no no") == 0, "%s", report(&r));
	dcr_buf_init(&b);
	CHECK(dcr_read_file(path, 100, &b, NULL) == 0 && b.len == 8 &&
	      memcmp(b.data, "original", 8) == 0);
	dcr_buf_release(&b);
	unlink(path);
	done(&r);
}

static void esc_proc(void)
{
	char script[2048];
	run r;

	snprintf(script, sizeof script,
	         "import os\n"
	         "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
	         "cmds = [open('/proc/%%d/cmdline' %% p, 'rb').read() for p in pids]\n"
	         "host = %d in pids\n"
	         "seen = any(b'test_cmp_sandbox' in c or b'dcr-sandbox' in c for c in cmds)\n"
	         "open('/output/report', 'w').write('%%d %%s %%s' %% (len(pids), host, seen))\n",
	         (int)getpid());
	py(&r, script);
	CHECK_OK(r.rc, &r.err);
	/* bwrap's init and the script: nothing of the host */
	CHECK(strcmp(report(&r), "2 False False") == 0, "%s", report(&r));
	done(&r);
}

static void esc_ptrace(void)
{
	char script[2048], status[4096];
	int fd;
	ssize_t k;
	run r;

	snprintf(script, sizeof script,
	         "import ctypes, os\n"
	         "libc = ctypes.CDLL(None, use_errno=True)\n"
	         "out = []\n"
	         "for pid in [%d, 1, os.getppid()]:\n"
	         "    r = libc.ptrace(16, pid, 0, 0)\n" /* PTRACE_ATTACH */
	         "    out.append('%%d:%%d' %% (r, ctypes.get_errno()))\n"
	         "r = libc.ptrace(0, 0, 0, 0)\n" /* PTRACE_TRACEME */
	         "out.append('%%d:%%d' %% (r, ctypes.get_errno()))\n"
	         "buf = ctypes.create_string_buffer(8)\n"
	         "open('/output/report', 'w').write(' '.join(out))\n",
	         (int)getpid());
	py(&r, script);
	CHECK_OK(r.rc, &r.err);
	CHECK(strcmp(report(&r), "-1:1 -1:1 -1:1 -1:1") == 0, "%s", report(&r));
	fd = open("/proc/self/status", O_RDONLY);
	k = read(fd, status, sizeof status - 1);
	close(fd);
	status[k > 0 ? k : 0] = 0;
	CHECK(strstr(status, "\nTracerPid:\t0\n"), "the test process is traced");
	done(&r);
}

static void esc_fork_bomb(void)
{
	run r;

	py(&r, "import os\n"
	       "while True:\n"
	       "    try:\n"
	       "        os.fork()\n"
	       "    except OSError:\n"
	       "        pass\n");
	CHECK_ERR(r.rc, DCR_ELIMIT, &r.err, "limit of 32 processes");
	CHECK(r.ms < 8000, "%llu ms", (unsigned long long)r.ms);
	done(&r);

	/* negative: 8 processes at once are fine */
	py(&r, "import os\n"
	       "kids = []\n"
	       "for i in range(8):\n"
	       "    pid = os.fork()\n"
	       "    if pid == 0:\n"
	       "        open('/output/k%d' % i, 'w').write('x')\n"
	       "        os._exit(0)\n"
	       "    kids.append(pid)\n"
	       "for k in kids:\n"
	       "    os.waitpid(k, 0)\n");
	CHECK_OK(r.rc, &r.err);
	CHECK(r.out.nfiles == 8);
	done(&r);
}

static void esc_memory_bomb(void)
{
	cmp_sandbox_limits l = small_limits();
	run r;

	l.memory_bytes = 256ull << 20;
	run_spec(&r, CMP_LANG_PYTHON,
	         "x = []\nwhile True:\n    x.append(bytearray(8 << 20))\n", NULL, 0, &l, NULL);
	CHECK_ERR(r.rc, DCR_ELIMIT, &r.err, "memory limit of 256 MiB");
	done(&r);
	/* the same after flooding stderr past log_bytes: the verdict reads
	 * the end of stderr, not the part kept as the log */
	run_spec(&r, CMP_LANG_PYTHON,
	         "import sys\nsys.stderr.write('e' * 20000)\nx = []\n"
	         "while True:\n    x.append(bytearray(8 << 20))\n", NULL, 0, &l, NULL);
	CHECK_ERR(r.rc, DCR_ELIMIT, &r.err, "memory limit of 256 MiB");
	CHECK(r.out.err_truncated && r.out.err_log.len == 4096);
	CHECK(r.out.peak_rss_bytes < (256ull << 20), "rss %llu",
	      (unsigned long long)r.out.peak_rss_bytes);
	done(&r);

	/* four processes, each under RLIMIT_AS, together past the limit */
	run_spec(&r, CMP_LANG_PYTHON,
	         "import os, time\n"
	         "for i in range(3):\n"
	         "    if os.fork() == 0:\n"
	         "        break\n"
	         "x = bytearray(100 << 20)\n"
	         "for i in range(0, len(x), 4096):\n"
	         "    x[i] = 1\n"
	         "time.sleep(5)\n",
	         NULL, 0, &l, NULL);
	CHECK_ERR(r.rc, DCR_ELIMIT, &r.err, "memory limit of 256 MiB (its processes together)");
	done(&r);
	/* negative: two of them fit */
	run_spec(&r, CMP_LANG_PYTHON,
	         "import os, time\n"
	         "pid = os.fork()\n"
	         "x = bytearray(60 << 20)\n"
	         "for i in range(0, len(x), 4096):\n"
	         "    x[i] = 1\n"
	         "time.sleep(0.5)\n"
	         "if pid:\n"
	         "    os.waitpid(pid, 0)\n",
	         NULL, 0, &l, NULL);
	CHECK_OK(r.rc, &r.err);
	done(&r);

	/* negative: the same script with a bounded loop fits */
	run_spec(&r, CMP_LANG_PYTHON,
	         "x = []\nfor i in range(8):\n    x.append(bytearray(8 << 20))\n", NULL, 0, &l, NULL);
	CHECK_OK(r.rc, &r.err);
	done(&r);
}

static void esc_cpu(void)
{
	cmp_sandbox_limits l = small_limits();
	run r;

	l.cpu_ms = 1500;
	/* a loaded machine gives the loop a fraction of a core: the wall limit
	 * must not be what stops it */
	l.wall_ms = 120000;
	run_spec(&r, CMP_LANG_PYTHON, "while True:\n    pass\n", NULL, 0, &l, NULL);
	CHECK_ERR(r.rc, DCR_ELIMIT, &r.err, "CPU limit of 1500 ms");
	/* counted in CPU time, not wall time (the machine may be loaded) */
	CHECK(r.out.cpu_ms >= 1400 && r.out.cpu_ms < 3000, "%llu ms",
	      (unsigned long long)r.out.cpu_ms);
	done(&r);

	/* two processes: their sum is the limit, not each one's */
	run_spec(&r, CMP_LANG_PYTHON, "import os\nos.fork()\nwhile True:\n    pass\n", NULL, 0, &l,
	         NULL);
	CHECK_ERR(r.rc, DCR_ELIMIT, &r.err, "CPU limit of 1500 ms");
	/* per-process limits alone would allow 2 x 2 s */
	CHECK(r.out.cpu_ms >= 1400 && r.out.cpu_ms < 2500, "%llu ms",
	      (unsigned long long)r.out.cpu_ms);
	done(&r);

	/* negative: half a second of CPU under the limit */
	run_spec(&r, CMP_LANG_PYTHON,
	         "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5:\n"
	         "    pass\n",
	         NULL, 0, &l, NULL);
	CHECK_OK(r.rc, &r.err);
	CHECK(r.out.cpu_ms >= 500, "%llu", (unsigned long long)r.out.cpu_ms);
	done(&r);
}

static void esc_fill(void)
{
	run r;

	/* /output: the script dies of ENOSPC; the limit is named */
	py(&r, "f = open('/output/big', 'wb')\nwhile True:\n    f.write(b'B' * 65536)\n");
	CHECK_ERR(r.rc, DCR_ELIMIT, &r.err, "output limit of 1 MiB");
	CHECK(r.out.nfiles == 0);
	done(&r);
	/* ... and when it catches the error and exits 0, nothing is collected */
	py(&r, "try:\n    f = open('/output/big', 'wb')\n    while True:\n"
	       "        f.write(b'B' * 65536)\n        f.flush()\nexcept OSError:\n    pass\n");
	CHECK_ERR(r.rc, DCR_ELIMIT, &r.err, "output limit of 1 MiB");
	CHECK(r.out.nfiles == 0);
	done(&r);
	/* a sparse file larger than the limit */
	py(&r, "f = open('/output/sparse', 'wb')\nf.truncate(10 << 20)\n");
	CHECK_ERR(r.rc, DCR_ELIMIT, &r.err, "limit");
	CHECK(r.out.nfiles == 0);
	done(&r);
	/* /tmp, and /dev/shm, which is the same budget */
	py(&r, "f = open('/tmp/big', 'wb')\nwhile True:\n    f.write(b'T' * 65536)\n");
	CHECK_ERR(r.rc, DCR_ELIMIT, &r.err, "/tmp limit of 1 MiB");
	done(&r);
	py(&r, "f = open('/dev/shm/big', 'wb')\nwhile True:\n    f.write(b'T' * 65536)\n");
	CHECK_ERR(r.rc, DCR_ELIMIT, &r.err, "/tmp limit of 1 MiB");
	done(&r);
	/* negative: just under the limit is collected */
	py(&r, "open('/output/big', 'wb').write(b'B' * (1 << 20))\n");
	CHECK_OK(r.rc, &r.err);
	CHECK(r.out.nfiles == 1 && r.out.files[0].len == (1u << 20));
	done(&r);
	/* too many files, too deep */
	py(&r, "for i in range(17):\n    open('/output/f%d' % i, 'w').write('x')\n");
	CHECK_ERR(r.rc, DCR_ELIMIT, &r.err, "output limit of 16 files");
	done(&r);
	py(&r, "import os\nos.makedirs('/output/a/b/c')\nopen('/output/a/b/c/f', 'w').write('x')\n");
	CHECK_ERR(r.rc, DCR_EOUTPUT, &r.err, "deeper than the output's limit of 2");
	done(&r);
}

static void esc_links(void)
{
	static const char secret[] = "INPUT-SECRET-bytes-1234\n";
	dcr_mem m = {(const uint8_t *)secret, sizeof secret - 1, 0};
	cmp_sandbox_input in = {"bank/dataset.csv", sizeof secret - 1, dcr_mem_read, &m};
	cmp_sandbox_limits l = small_limits();
	char path[512], script[2048], hsecret[64];
	run r;

	snprintf(hsecret, sizeof hsecret, "HOST-LINK-SECRET-%d", (int)getpid());
	snprintf(path, sizeof path, "%s/linked.txt", tmpdir);
	CHECK(dcr_write_file_atomic(path, hsecret, strlen(hsecret), 0644, NULL) == 0);
	/* symlinks to a host file and to an input */
	snprintf(script, sizeof script,
	         "import os\n"
	         "os.symlink('%s', '/output/host')\n"
	         "os.symlink('/input/bank/dataset.csv', '/output/in')\n"
	         "open('/output/report', 'w').write('made')\n",
	         path);
	run_spec(&r, CMP_LANG_PYTHON, script, &in, 1, &l, NULL);
	CHECK_ERR(r.rc, DCR_EOUTPUT, &r.err, "symbolic link");
	CHECK(r.out.nfiles == 0 && !leaks(&r, "INPUT-SECRET") && !leaks(&r, hsecret));
	done(&r);
	/* a hardlink to an input cannot be made (another file system); one
	 * inside /output is refused */
	m.off = 0;
	run_spec(&r, CMP_LANG_PYTHON,
	         "import os\n"
	         "try:\n"
	         "    os.link('/input/bank/dataset.csv', '/output/hl')\n"
	         "    made = 'LINKED'\n"
	         "except OSError:\n"
	         "    made = 'nolink'\n"
	         "open('/output/report', 'w').write(made)\n"
	         "open('/output/a', 'w').write('a')\n"
	         "os.link('/output/a', '/output/b')\n",
	         &in, 1, &l, NULL);
	CHECK_ERR(r.rc, DCR_EOUTPUT, &r.err, "hard link");
	CHECK(r.out.nfiles == 0 && !leaks(&r, "INPUT-SECRET"));
	done(&r);
	unlink(path);
}

static void esc_special_files(void)
{
	run r;
	uint64_t t0 = dcr_mono_ms();

	py(&r, "import os\nopen('/output/a', 'w').write('a')\nos.mkfifo('/output/fifo')\n");
	CHECK_ERR(r.rc, DCR_EOUTPUT, &r.err, "a FIFO");
	CHECK(dcr_mono_ms() - t0 < 7000); /* the collector did not block on it */
	done(&r);
	py(&r, "import socket\ns = socket.socket(socket.AF_UNIX)\ns.bind('/output/sock')\n");
	CHECK_ERR(r.rc, DCR_EOUTPUT, &r.err, "a socket");
	done(&r);
	py(&r, "open('/output/bad\\nname', 'w').write('x')\n");
	CHECK_ERR(r.rc, DCR_EOUTPUT, &r.err, "a newline in a name");
	CHECK(!strstr(r.err.msg, "bad"), "%s", r.err.msg); /* the bad name is not echoed */
	done(&r);
	py(&r, "open('/output/..evil', 'w').write('x')\n");
	CHECK_ERR(r.rc, DCR_EOUTPUT, &r.err, "'..' in a name");
	done(&r);
	py(&r, "open('/output/tab\\there', 'w').write('x')\n");
	CHECK_ERR(r.rc, DCR_EOUTPUT, &r.err, "a control character");
	done(&r);
}

static void esc_setuid(void)
{
	run r;

	/* setuid-root programs of the host's /usr: run them and read the
	 * credentials they ended with (their zombies keep them) */
	py(&r, "import subprocess, time, os\n"
	       "out = []\n"
	       "for b in ['/usr/bin/su', '/usr/bin/passwd', '/usr/bin/newgrp', '/usr/bin/mount']:\n"
	       "    if not os.path.exists(b) or not os.stat(b).st_mode & 0o4000:\n"
	       "        continue\n"
	       "    p = subprocess.Popen([b], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, "
	       "stderr=subprocess.DEVNULL)\n"
	       "    for i in range(50):\n"
	       "        st = open('/proc/%d/status' % p.pid).read()\n"
	       "        if 'State:\\tZ' in st:\n"
	       "            break\n"
	       "        time.sleep(0.02)\n"
	       "    uid = [l for l in st.splitlines() if l.startswith('Uid:')][0].split()[1:]\n"
	       "    out.append(','.join(uid))\n"
	       "    p.kill()\n"
	       "    p.wait()\n"
	       "try:\n"
	       "    fd = os.open('/proc/self/oom_score_adj', os.O_WRONLY)\n"
	       "    os.write(fd, b'-500')\n"
	       "    out.append('LOWERED')\n"
	       "except OSError:\n"
	       "    out.append('oom:' + open('/proc/self/oom_score_adj').read().strip())\n"
	       "nnp = [l for l in open('/proc/self/status') if l.startswith('NoNewPrivs')][0]\n"
	       "out.append(nnp.split()[1])\n"
	       "out.append(str(os.geteuid()))\n"
	       "open('/output/report', 'w').write(' '.join(out))\n");
	CHECK_OK(r.rc, &r.err);
	/* real, effective, saved, fs uid: the sandbox's 1000, never root */
	CHECK(strcmp(report(&r), "1000,1000,1000,1000 1000,1000,1000,1000 1000,1000,1000,1000 "
	                         "1000,1000,1000,1000 oom:1000 1 1000") == 0,
	      "%s", report(&r));
	done(&r);
}

/* The seccomp filter: calls that would work for an unprivileged user
 * without it (io_uring_setup, keyctl, ...) are refused with EPERM, and a
 * call through the x32 ABI kills the process (SIGSYS). */
static void esc_syscalls(void)
{
#if defined(__x86_64__)
	run r;

	py(&r, "import ctypes, subprocess, sys\n"
	       "libc = ctypes.CDLL(None, use_errno=True)\n"
	       "buf = ctypes.create_string_buffer(256)\n"
	       "out = []\n"
	       /* io_uring_setup, keyctl(GET_KEYRING_ID), add_key, bpf, perf_event_open,
	        * userfaultfd, mount, process_vm_readv, open_by_handle_at, kexec_load,
	        * init_module */
	       "calls = [(425, 8, buf), (250, 0, -3, 0), (248, b'user', b'k', b'v', 1, -3),\n"
	       "         (321, 0, buf, 64), (298, buf, 0, -1, -1, 0), (323, 0),\n"
	       "         (165, b'none', b'/tmp', b'tmpfs', 0, 0), (310, 1, buf, 1, buf, 1, 0),\n"
	       "         (304, -100, buf, 0), (246, 0, 0, 0, 0), (175, buf, 0, b'')]\n"
	       "for c in calls:\n"
	       "    ctypes.set_errno(0)\n"
	       "    r = libc.syscall(*c)\n"
	       "    out.append('%d:%d' % (r, ctypes.get_errno()))\n"
	       /* unshare(CLONE_NEWUSER): bwrap's --disable-userns */
	       "out.append('userns:%d' % libc.syscall(272, 0x10000000))\n"
	       "p = subprocess.run([sys.executable, '-c', 'import ctypes; "
	       "ctypes.CDLL(None).syscall(39 | 0x40000000)'])\n"
	       "out.append('x32:%d' % p.returncode)\n"
	       "open('/output/report', 'w').write(' '.join(out))\n");
	CHECK_OK(r.rc, &r.err);
	CHECK(strcmp(report(&r), "-1:1 -1:1 -1:1 -1:1 -1:1 -1:1 -1:1 -1:1 -1:1 -1:1 -1:1 userns:-1 "
	                         "x32:-31") == 0,
	      "%s", report(&r));
	done(&r);
#endif
}

static void esc_daemon(void)
{
	char path[512], script[2048];
	run r;

	/* the marker would be written to /output, collected by nobody; what
	 * counts is that the process is gone (check_gone: no process of the
	 * run's uid) and that it never writes: its file system is gone too */
	snprintf(path, sizeof path, "%s/marker", tmpdir);
	snprintf(script, sizeof script,
	         "import os, time\n"
	         "if os.fork() == 0:\n"
	         "    os.setsid()\n"
	         "    if os.fork() == 0:\n"
	         "        for fd in range(3):\n"
	         "            os.close(fd)\n"
	         "        time.sleep(1.5)\n"
	         "        for p in ['%s', '/output/marker', '/tmp/marker']:\n"
	         "            try:\n"
	         "                open(p, 'w').write('alive')\n"
	         "            except OSError:\n"
	         "                pass\n"
	         "        time.sleep(600)\n"
	         "    os._exit(0)\n"
	         "time.sleep(0.2)\n"
	         "open('/output/report', 'w').write('parent done')\n",
	         path);
	py(&r, script);
	CHECK_OK(r.rc, &r.err);
	CHECK(strcmp(report(&r), "parent done") == 0, "%s", report(&r));
	/* it sleeps 600 s: the run ended with its parent, not its wall limit */
	CHECK(r.ms < 6000, "%llu ms: the run waited for the daemon", (unsigned long long)r.ms);
	check_gone(&r);
	usleep(2000 * 1000);
	CHECK(access(path, F_OK) != 0, "the daemonised process wrote its marker");
	CHECK(procs_of(r.out.host_uid) == 0);
	done(&r);
}

/* ---- the caller's checks, availability, not root ----------------------------- */

static int failing_read(void *ctx, void *buf, size_t cap)
{
	(void)ctx;
	(void)buf;
	(void)cap;
	return -EIO;
}

static void test_spec_checks(void)
{
	static const char data[] = "abc";
	cmp_sandbox_limits l = small_limits();
	dcr_mem m = {(const uint8_t *)data, 3, 0}, m2 = m;
	cmp_sandbox_input in = {NULL, 3, dcr_mem_read, &m};
	static const char *const bad[] = {"../x", "a/../b", "a/./b", "/abs", "a//b", "a/",
	                                  "a//", "../", "/", "new\nline", "tab\tx", "x..y", ""};
	cmp_sandbox_input two[2];
	size_t i;
	run r;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		in.path = bad[i];
		m.off = 0;
		run_spec(&r, CMP_LANG_PYTHON, "print(1)\n", &in, 1, &l, NULL);
		CHECK(r.rc == DCR_EINVALID && strstr(r.err.msg, "input path"), "%s: %d %s", bad[i],
		      r.rc, r.err.msg);
		cmp_sandbox_out_release(&r.out);
	}
	/* positive: a nested path is fine, and readable where it says */
	in.path = "a/b/c.txt";
	m.off = 0;
	run_spec(&r, CMP_LANG_PYTHON,
	         "open('/output/x', 'w').write(open('/input/a/b/c.txt').read())\n", &in, 1, &l,
	         NULL);
	CHECK_OK(r.rc, &r.err);
	CHECK(r.out.nfiles == 1 && r.out.files[0].len == 3 &&
	      memcmp(r.out.files[0].data, "abc", 3) == 0);
	done(&r);
	/* "NAME/" of size 0 is an empty directory (an optional file dataset
	 * that is not provisioned), beside a file elsewhere */
	two[0] = in;
	two[0].path = "opt/";
	two[0].size = 0;
	two[0].read = NULL;
	two[1] = in;
	two[1].path = "f/x";
	m.off = 0;
	run_spec(&r, CMP_LANG_PYTHON,
	         "import os\n"
	         "open('/output/x', 'w').write('%s %s' % (os.path.isdir('/input/opt'),"
	         " os.listdir('/input/opt')))\n",
	         two, 2, &l, NULL);
	CHECK_OK(r.rc, &r.err);
	CHECK(r.out.nfiles == 1 && r.out.files[0].len == 7 &&
	      memcmp(r.out.files[0].data, "True []", 7) == 0,
	      "%zu %.*s", r.out.nfiles, r.out.nfiles ? (int)r.out.files[0].len : 0,
	      r.out.nfiles ? (const char *)r.out.files[0].data : "");
	done(&r);
	/* negative: a directory with bytes */
	two[0].size = 3;
	two[0].read = dcr_mem_read;
	two[0].ctx = &m2;
	m.off = m2.off = 0;
	run_spec(&r, CMP_LANG_PYTHON, "print(1)\n", two, 1, &l, NULL);
	CHECK_ERR(r.rc, DCR_EINVALID, &r.err, "a directory (trailing '/') with bytes");
	cmp_sandbox_out_release(&r.out);
	m2.off = 0;
	/* a reader that gives fewer bytes than announced, or fails */
	in.size = 10;
	m.off = 0;
	run_spec(&r, CMP_LANG_PYTHON, "print(1)\n", &in, 1, &l, NULL);
	CHECK_ERR(r.rc, DCR_EINVALID, &r.err, "ended after 3 of 10 bytes");
	cmp_sandbox_out_release(&r.out);
	in.size = 2;
	m.off = 0;
	run_spec(&r, CMP_LANG_PYTHON, "print(1)\n", &in, 1, &l, NULL);
	CHECK_ERR(r.rc, DCR_EINVALID, &r.err, "more than its 2 bytes");
	cmp_sandbox_out_release(&r.out);
	in.size = 3;
	in.read = failing_read;
	run_spec(&r, CMP_LANG_PYTHON, "print(1)\n", &in, 1, &l, NULL);
	CHECK_ERR(r.rc, -EIO, &r.err, "reading it failed");
	cmp_sandbox_out_release(&r.out);
	/* the same path twice, or the script's own name */
	memset(two, 0, sizeof two);
	two[0].path = two[1].path = "d.csv";
	two[0].size = two[1].size = 3;
	two[0].read = two[1].read = dcr_mem_read;
	two[0].ctx = &m;
	two[1].ctx = &m2;
	m.off = 0;
	run_spec(&r, CMP_LANG_PYTHON, "print(1)\n", two, 2, &l, NULL);
	CHECK_ERR(r.rc, DCR_EEXIST, &r.err, "given twice");
	cmp_sandbox_out_release(&r.out);
	two[0].path = "script.py";
	m.off = 0;
	run_spec(&r, CMP_LANG_PYTHON, "print(1)\n", two, 1, &l, NULL);
	CHECK_ERR(r.rc, DCR_EEXIST, &r.err, "given twice");
	cmp_sandbox_out_release(&r.out);
	/* an empty script runs and leaves nothing */
	run_spec(&r, CMP_LANG_PYTHON, "", NULL, 0, &l, NULL);
	CHECK_OK(r.rc, &r.err);
	CHECK(r.out.nfiles == 0 && r.out.out_log.len == 0);
	done(&r);
}

static void test_available(void)
{
	dcr_err err;

	dcr_err_clear(&err);
	CHECK(cmp_sandbox_available(NULL, &err), "%s", err.msg);
	/* a program that does not know the child's argument */
	dcr_err_clear(&err);
	CHECK(!cmp_sandbox_available("/bin/true", &err));
	CHECK(err.code == DCR_EUNAVAIL && strstr(err.msg, "without an answer"), "%s", err.msg);
	dcr_err_clear(&err);
	CHECK(!cmp_sandbox_available("/nonexistent/dcrd", &err));
	CHECK(err.code == DCR_EUNAVAIL && strstr(err.msg, "cannot start"), "%s", err.msg);
}

/* dcrd not root: the same sandbox under the caller's own uid (nobody),
 * in a forked process, before the test starts any thread. The gid is not
 * the uid, as for a service user (the package's "dcr"). */
static void test_unprivileged(void)
{
	pid_t pid = fork();
	int st = 0;

	if (pid == 0) {
		run r;
		cmp_sandbox_limits l = small_limits();

		if (setgroups(0, NULL) || setresgid(65500, 65500, 65500) ||
		    setresuid(65534, 65534, 65534))
			_exit(2);
		py(&r, "import socket\n"
		       "open('/output/x', 'w').write('ok')\n"
		       "try:\n"
		       "    socket.socket(socket.AF_INET)\n"
		       "    open('/output/report', 'w').write('SOCKET')\n"
		       "except OSError as e:\n"
		       "    open('/output/report', 'w').write('refused:%d' % e.errno)\n");
		CHECK_OK(r.rc, &r.err);
		CHECK(r.out.host_uid == 65534, "%u", r.out.host_uid);
		CHECK(strcmp(report(&r), "refused:1") == 0, "%s", report(&r));
		cmp_sandbox_out_release(&r.out);
		l.cpu_ms = 1000;
		run_spec(&r, CMP_LANG_PYTHON, "while True:\n    pass\n", NULL, 0, &l, NULL);
		CHECK_ERR(r.rc, DCR_ELIMIT, &r.err, "CPU limit of 1000 ms");
		cmp_sandbox_out_release(&r.out);
		_exit(t_failures ? 1 : 0);
	}
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the unprivileged runs failed (status %d)", st);
}

/* A reader of an endless input that fires the run's cancel after 1 MiB. */
struct slow_input {
	cmp_cancel *c;
	uint64_t given;
};

static int cancelling_read(void *ctx, void *buf, size_t cap)
{
	struct slow_input *si = ctx;

	memset(buf, 'x', cap);
	si->given += cap;
	if (si->given >= (1u << 20))
		cmp_cancel_fire(si->c);
	return (int)cap;
}

static void test_cancel_while_sending(void)
{
	struct slow_input si = {cmp_cancel_new(), 0};
	cmp_sandbox_input in = {"big.bin", 1ull << 32, cancelling_read, &si};
	cmp_sandbox_limits l = small_limits();
	run r;

	run_spec(&r, CMP_LANG_PYTHON, "print(1)\n", &in, 1, &l, si.c);
	CHECK_ERR(r.rc, DCR_ECANCELED, &r.err, "cancelled");
	CHECK(si.given < (64u << 20), "%llu bytes read after the cancel",
	      (unsigned long long)si.given);
	cmp_sandbox_out_release(&r.out);
	cmp_cancel_free(si.c);
}

static void test_r_memory(void)
{
	cmp_sandbox_limits l = small_limits();
	run r;

	l.memory_bytes = 256ull << 20;
	run_spec(&r, CMP_LANG_R, "x <- list()\nrepeat { x[[length(x) + 1]] <- numeric(1e6) }\n",
	         NULL, 0, &l, NULL);
	CHECK_ERR(r.rc, DCR_ELIMIT, &r.err, "memory limit of 256 MiB");
	done(&r);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], CMP_SANDBOX_ARGV) == 0)
		return cmp_sandbox_child_main(argc, argv);
	if (geteuid() != 0 || access("/usr/bin/bwrap", X_OK) || access("/usr/bin/python3", X_OK) ||
	    access("/usr/bin/Rscript", X_OK)) {
		fprintf(stderr, "skipped: needs root, bwrap, python3 and Rscript in /usr/bin\n");
		return 77;
	}
	snprintf(tmpdir, sizeof tmpdir, "/tmp/dcr-sbxtest-%d", (int)getpid());
	mkdir(tmpdir, 0700);
	test_unprivileged();
	test_python_ok();
	test_r_ok();
	test_script_fails();
	test_wall_and_cancel();
	test_cancel_running();
	test_spec_checks();
	test_cancel_while_sending();
	test_r_memory();
	test_available();
	esc_tcp();
	esc_unix_socket();
	esc_dns();
	esc_host_dir();
	esc_other_room();
	esc_write_outside();
	esc_proc();
	esc_ptrace();
	esc_fork_bomb();
	esc_memory_bomb();
	esc_cpu();
	esc_fill();
	esc_links();
	esc_special_files();
	esc_setuid();
	esc_syscalls();
	esc_daemon();
	rmdir(tmpdir);
	return t_failures ? 1 : 0;
}
