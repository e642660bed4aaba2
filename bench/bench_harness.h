/* bench_harness.h: the pieces every benchmark that times a real process
 * needs: a monotonic clock, a process's CPU seconds and /proc/PID/status
 * fields (peak RSS), removing a scratch directory, and watching a dcrd that
 * the benchmark started: waiting for its "listening on" line and reading
 * the TLS listener it printed, and connecting to it (socket or TLS).
 * Starting dcrd stays in each benchmark (the flags differ).
 *
 * Header-only (static inline functions, as bench/CMakeLists.txt builds each
 * bench_*.c alone into its own executable). Include it after base.h. */
#ifndef DCR_BENCH_HARNESS_H
#define DCR_BENCH_HARNESS_H

#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../proto/proto.h"

/* Seconds on the monotonic clock. */
static inline double bench_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system) of a process, 0 when it cannot be read. */
static inline double bench_cpu_of(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long ut = 0, st = 0;
	FILE *f;
	char *p;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof buf, f)) {
		fclose(f);
		return 0;
	}
	fclose(f);
	p = strrchr(buf, ')');
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A field of /proc/PID/status in kB ("VmHWM:" is the peak RSS, "VmRSS:"),
 * or 0. */
static inline uint64_t bench_status_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	uint64_t v = 0;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, field, strlen(field)) == 0)
			v = strtoull(line + strlen(field), NULL, 10);
	fclose(f);
	return v;
}

static inline int bench__rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Removes path and everything under it (not following symlinks). */
static inline void bench_rm_tree(const char *path)
{
	nftw(path, bench__rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* SIG to *pid and waits for it; *pid becomes 0. Nothing when *pid <= 0. */
static inline void bench_stop_pid(pid_t *pid, int sig)
{
	if (*pid > 0) {
		int st;
		kill(*pid, sig);
		waitpid(*pid, &st, 0);
		*pid = 0;
	}
}

/* Whether dcrd's log (stderr) contains needle. */
static inline bool bench_log_has(const char *log, const char *needle)
{
	dcr_buf b;
	dcr_err err;
	bool hit;

	dcr_buf_init(&b);
	dcr_read_file(log, 256u * 1024 * 1024, &b, &err);
	hit = strstr(dcr_buf_cstr(&b), needle) != NULL;
	dcr_buf_release(&b);
	return hit;
}

/* Waits until dcrd (*pid) writes needle to its log: 0, or -1 when it
 * exited first (then *pid is 0). */
static inline int bench_wait_log(pid_t *pid, const char *log, const char *needle)
{
	while (!bench_log_has(log, needle)) {
		int st;
		if (waitpid(*pid, &st, WNOHANG) == *pid) {
			*pid = 0;
			return -1;
		}
		usleep(10000);
	}
	return 0;
}

/* The address and fingerprint of the TLS listener dcrd printed ("dcrd:
 * listening on tls:127.0.0.1:PORT (TLS 1.3, fingerprint sha256:...)"):
 * 0, or -1 when the log has no such line. */
static inline int bench_tls_listener(const char *log, char server[64], char pin[96])
{
	dcr_buf b;
	dcr_err err;
	const char *p, *q;
	int rc = 0;

	dcr_buf_init(&b);
	dcr_read_file(log, 256u * 1024 * 1024, &b, &err);
	p = strstr(dcr_buf_cstr(&b), "listening on tls:");
	q = p ? strstr(p, "fingerprint ") : NULL;
	if (!p || !q || sscanf(p + 17, "%63s", server) != 1 || sscanf(q + 12, "%95[^)]", pin) != 1)
		rc = -1;
	dcr_buf_release(&b);
	return rc;
}

/* Connects as k to a dcrd the benchmark started: over TLS to server
 * (HOST:PORT) pinned to pin when server is set, else on the unix socket
 * sock, as `dcr --server ... --pin ...` or `dcr --socket ...` does. */
static inline int bench_connect(const char *sock, const char *server, const char *pin,
                                const dcr_key *k, cl_conn **c, dcr_err *err)
{
	cl_addr a = {0};

	if (server) {
		a.server = server;
		a.pin = pin;
	} else {
		a.socket = sock;
	}
	return cl_connect_addr(&a, k, c, err);
}

#endif
