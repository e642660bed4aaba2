/* compute_sandbox.h: running an untrusted python or R script in a sandbox.
 *
 * Public part of compute/ (dcrd and the tests include it beside
 * compute.h). The caller hands over the script, the input files (streamed
 * through callbacks, never written to the host's disk) and the limits; it
 * gets back the regular files the script left under /output and its
 * bounded stdout and stderr. docs/compute.md, "Python and R", is the
 * user-facing contract: the sandbox's view, the input layout, the limits
 * and the collector's rules.
 *
 * Process model. cmp_sandbox_run re-executes a trusted program
 * (spec->self_exe, by default /proc/self/exe: dcrd itself) with
 * argv[1] == CMP_SANDBOX_ARGV. That single-threaded child calls
 * cmp_sandbox_child_main: it reads the job from its stdin, builds the
 * private file systems, starts bubblewrap under an unprivileged uid with
 * the resource limits and a seccomp filter, waits, collects /output and
 * writes the outcome to its stdout. The caller's process (multi-threaded
 * dcrd) therefore never forks anything but an immediate exec. Every
 * program whose main() may be asked to be the child (dcrd, the unit tests
 * of the sandbox) starts with:
 *
 *     if (argc > 1 && strcmp(argv[1], CMP_SANDBOX_ARGV) == 0)
 *             return cmp_sandbox_child_main(argc, argv);
 *
 * Killing the child's process group (time limit, cancel, dcrd shutdown)
 * ends the whole sandbox: the script runs in its own PID namespace whose
 * init dies with the child (--die-with-parent), so a process that
 * daemonises inside is killed too. */
#ifndef DCR_COMPUTE_SANDBOX_H
#define DCR_COMPUTE_SANDBOX_H

#include "compute.h"

#define CMP_SANDBOX_ARGV "--dcr-sandbox-child"

enum cmp_lang { CMP_LANG_PYTHON, CMP_LANG_R };

/* Limits of one run. A zero field takes the default of docs/compute.md;
 * the daemon clamps the definition's values to its own maxima before it
 * calls. Passing any of them kills the sandbox and fails the run with
 * DCR_ELIMIT (DCR_ETIMEOUT for wall_ms) and a message naming the limit
 * ("the run passed its memory limit of 512 MiB"). */
typedef struct cmp_sandbox_limits {
	uint64_t wall_ms;        /* wall clock from start to collected output */
	uint64_t cpu_ms;         /* CPU time of all processes together */
	uint64_t memory_bytes;   /* address space of each process (RLIMIT_AS),
				    and the sum of their Pss, sampled every
				    100 ms (no cgroup v2 here) */
	uint32_t procs;          /* processes and threads alive at once */
	uint64_t output_bytes;   /* all regular files under /output together */
	uint32_t output_files;   /* regular files under /output */
	uint32_t output_depth;   /* directory levels under /output (0: flat) */
	uint64_t tmp_bytes;      /* the private /tmp */
	uint64_t log_bytes;      /* each of stdout and stderr kept; beyond it
				    the stream is truncated, not an error */
} cmp_sandbox_limits;

/* Fills every zero field of l with its default. */
void cmp_sandbox_limits_default(cmp_sandbox_limits *l);

/* One input file: /input/<path>. path is relative, '/'-separated, made of
 * names without control characters, "." or ".." (checked: DCR_EINVALID).
 * read is called until it returns 0 (end) or a negative code (the run
 * fails with it); it must produce exactly size bytes. A path ending in
 * one '/' ("NAME/") asks for an empty directory instead: its size must be
 * 0 (DCR_EINVALID otherwise) and read may be NULL. */
typedef struct cmp_sandbox_input {
	const char *path;
	uint64_t size;
	int (*read)(void *ctx, void *buf, size_t cap);
	void *ctx;
} cmp_sandbox_input;

/* For inputs in memory: base.h's dcr_mem_read over a dcr_mem. */

typedef struct cmp_sandbox_spec {
	enum cmp_lang lang;
	const char *script; /* /input/script.py or /input/script.R */
	size_t script_len;
	const cmp_sandbox_input *inputs;
	size_t ninputs;
	cmp_sandbox_limits limits;
	cmp_cancel *cancel;   /* NULL: not cancellable; fired: the sandbox is
				 killed within 100 ms, DCR_ECANCELED */
	const char *self_exe; /* NULL: /proc/self/exe */
} cmp_sandbox_spec;

/* One collected output file. name is the path under /output, validated
 * as for inputs; data is heap-owned. Files are sorted by name (bytewise)
 * so the same output always gives the same list. */
typedef struct cmp_sandbox_file {
	char *name;
	uint8_t *data;
	size_t len;
} cmp_sandbox_file;

typedef struct cmp_sandbox_out {
	cmp_sandbox_file *files;
	size_t nfiles;
	dcr_buf out_log; /* stdout, at most limits.log_bytes */
	dcr_buf err_log; /* stderr, likewise */
	bool out_truncated, err_truncated;
	int exit_code;  /* the script's exit status, or 128 + signal */
	uint64_t wall_ms, cpu_ms; /* measured */
	uint64_t peak_rss_bytes;  /* largest process, as getrusage reports */
	uint32_t host_uid; /* the host uid the script ran as: a uid of the
			      run's own (CMP_SANDBOX_UID_BASE + n) when dcrd
			      is root, else dcrd's uid; no process of it is
			      alive when cmp_sandbox_run returns */
} cmp_sandbox_out;

void cmp_sandbox_out_init(cmp_sandbox_out *o);
void cmp_sandbox_out_release(cmp_sandbox_out *o);

/* Runs the script. Returns 0 when it ran to the end and exited 0 and the
 * output was collected; the logs are filled in every case where the
 * script started (a failing script's stderr is what its author needs).
 * Errors:
 *   DCR_ESCRIPT   the script exited non-zero or was killed by a signal
 *                 (message: "the script exited with status 3");
 *   DCR_ELIMIT    a limit other than time, named in the message;
 *   DCR_ETIMEOUT  the wall-clock limit;
 *   DCR_ECANCELED spec->cancel fired;
 *   DCR_EOUTPUT   the output broke a collector rule (symlink, hardlink,
 *                 FIFO, device, socket, bad name, too deep): the message
 *                 says which rule, never a file's bytes;
 *   DCR_EUNAVAIL  the sandbox cannot be built on this host (no bwrap, no
 *                 user namespaces): the message says what is missing.
 * Messages never contain input or output bytes, but may contain output
 * file names (chosen by the script): treat them like the logs. Thread
 * safe: concurrent runs are independent. */
int cmp_sandbox_run(const cmp_sandbox_spec *spec, cmp_sandbox_out *out, dcr_err *err);

/* The child's main (see the file comment); returns the process exit code. */
int cmp_sandbox_child_main(int argc, char **argv);

/* Whether this host can run sandboxes; on false, err says why. Cheap
 * enough to call at dcrd's start (it runs bwrap once). */
bool cmp_sandbox_available(const char *self_exe, dcr_err *err);

#endif
