/* bench_sandbox.c: the overhead of the python/r sandbox (issue 11).
 *
 * A python script that copies its input (/input/data.csv, 100 KB) to
 * /output is run N times through cmp_sandbox_run (re-executing this
 * binary as the sandbox child, building the tmpfs mounts, bwrap, the
 * seccomp filter, collecting the output) and N times directly as
 * `/usr/bin/python3 -I -B script.py` on files in a temporary directory.
 * Prints the median, minimum and maximum of each and the difference of the
 * medians: the sandbox's cost per run. The figure through dcrd (a python
 * computation run by a client) is bench_dmn's.
 *
 *   build/bench/bench_sandbox [runs]      (default 21; needs root, bwrap) */
#include <fcntl.h>
#include <spawn.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../compute/compute_sandbox.h"

extern char **environ;

#define INPUT_BYTES (100u * 1024)

static const char script[] =
    "import os, shutil\n"
    "shutil.copy(os.environ.get('IN', '/input/data.csv'), os.environ.get('OUT', "
    "'/output/data.csv'))\n";

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *us, int n)
{
	qsort(us, (size_t)n, sizeof *us, cmp_u64);
	printf("%-34s median %7.1f ms   min %7.1f ms   max %7.1f ms\n", what, us[n / 2] / 1000.0,
	       us[0] / 1000.0, us[n - 1] / 1000.0);
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int main(int argc, char **argv)
{
	int runs = 21, i, rc = 0;
	uint8_t *data;
	uint64_t *sbx, *direct;
	char dir[64], in_path[128], out_path[128], script_path[128], env_in[160], env_out[160];
	cmp_sandbox_out out;
	dcr_err err;

	if (argc > 1 && strcmp(argv[1], CMP_SANDBOX_ARGV) == 0)
		return cmp_sandbox_child_main(argc, argv);
	if (argc > 1)
		runs = strtol(argv[1], NULL, 10) > 0 ? (int)strtol(argv[1], NULL, 10) : runs;
	data = dcr_malloc(INPUT_BYTES);
	for (i = 0; i < (int)INPUT_BYTES; i++)
		data[i] = (i % 64 == 63) ? '\n' : (uint8_t)('a' + i % 26);
	sbx = dcr_calloc((size_t)runs, sizeof *sbx);
	direct = dcr_calloc((size_t)runs, sizeof *direct);
	snprintf(dir, sizeof dir, "/tmp/bench-sandbox-%d", (int)getpid());
	mkdir(dir, 0700);
	snprintf(in_path, sizeof in_path, "%s/data.csv", dir);
	snprintf(out_path, sizeof out_path, "%s/out.csv", dir);
	snprintf(script_path, sizeof script_path, "%s/script.py", dir);
	snprintf(env_in, sizeof env_in, "IN=%s", in_path);
	snprintf(env_out, sizeof env_out, "OUT=%s", out_path);
	if (dcr_write_file_atomic(in_path, data, INPUT_BYTES, 0600, &err) ||
	    dcr_write_file_atomic(script_path, script, sizeof script - 1, 0600, &err)) {
		fprintf(stderr, "bench_sandbox: %s\n", err.msg);
		return 1;
	}
	for (i = 0; i < runs; i++) {
		dcr_mem m = {data, INPUT_BYTES, 0};
		cmp_sandbox_input in = {"data.csv", INPUT_BYTES, dcr_mem_read, &m};
		cmp_sandbox_spec spec;
		uint64_t t0 = now_us();

		memset(&spec, 0, sizeof spec);
		spec.lang = CMP_LANG_PYTHON;
		spec.script = script;
		spec.script_len = sizeof script - 1;
		spec.inputs = &in;
		spec.ninputs = 1;
		cmp_sandbox_out_init(&out);
		rc = cmp_sandbox_run(&spec, &out, &err);
		sbx[i] = now_us() - t0;
		if (rc || out.nfiles != 1 || out.files[0].len != INPUT_BYTES) {
			fprintf(stderr, "bench_sandbox: sandboxed run: %s\n", rc ? err.msg : "no output");
			cmp_sandbox_out_release(&out);
			return 1;
		}
		cmp_sandbox_out_release(&out);
	}
	for (i = 0; i < runs; i++) {
		char *av[] = {(char *)"/usr/bin/python3", (char *)"-I", (char *)"-B", script_path, NULL};
		char *ev[] = {env_in, env_out, NULL};
		pid_t pid;
		int st;
		uint64_t t0 = now_us();

		if (posix_spawn(&pid, av[0], NULL, NULL, av, ev) != 0 || waitpid(pid, &st, 0) < 0 ||
		    !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "bench_sandbox: direct run failed\n");
			return 1;
		}
		direct[i] = now_us() - t0;
		unlink(out_path);
	}
	printf("python copy of a %u KiB input, %d runs each\n", INPUT_BYTES / 1024, runs);
	report("through cmp_sandbox_run", sbx, runs);
	report("python3 directly", direct, runs);
	printf("%-34s %7.1f ms per run\n", "sandbox overhead (medians)",
	       ((double)sbx[runs / 2] - (double)direct[runs / 2]) / 1000.0);
	unlink(in_path);
	unlink(script_path);
	rmdir(dir);
	free(data);
	free(sbx);
	free(direct);
	return 0;
}
