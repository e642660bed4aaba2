/* main.c: dcrd's command line and its configuration file. Everything else
 * is in dmn_run (server.c).
 *
 * The configuration file (--config FILE, else DCR_CONFIG_DEFAULT when the
 * build sets it and the file exists) holds "key = value" lines (a flag: the
 * key alone), each key a long option of the table in parse_options; each
 * line becomes one "--key=value" argument placed before the command line,
 * and one getopt loop reads both, so the command line wins and every
 * option is valid in the file with no table of its own. SIGHUP (server.c)
 * calls reload(), which reads the file again the same way; the options of
 * live_keys take effect at once, the others at the next start
 * (docs/operations.md). */
#include <ctype.h>
#include <getopt.h>
#include <grp.h>
#include <stddef.h>

#include <sys/stat.h>

#include "daemon.h"
#include "../base/tls.h"
#include "../compute/compute_sandbox.h"

/* Enough for one frame of DCR_FRAME_BYTES_MAX and its unpacking. */
#define FRAME_BUDGET_MB_MIN 8u

/* The configuration file read when no --config is given (if it exists):
 * the package sets /etc/dcr/dcrd.conf, builds from the tree none. */
#ifndef DCR_CONFIG_DEFAULT
#define DCR_CONFIG_DEFAULT ""
#endif
#define PARSE_HELP       (-1)
#define OPT_CONFIG       1000
#define OPT_CONNS        1100 /* the five connection limits, in order */
#define OPT_LISTEN       1200
#define OPT_FINGERPRINT  1201
#define OPT_TLS          1210 /* the TLS limits, in order */
#define OPT_BUILD_MEMORY 1300

/* Options a reload (SIGHUP) applies at once; server.c applies them. */
static const char *const live_keys[] = {"log-level", "idle-timeout-ms"};

/* During a reload usage() stays quiet: the error line says it all. */
static bool quiet_usage;
/* --fingerprint: print it and exit (main) */
static bool print_fingerprint;
/* Set while getopt's loop runs: an error then is about argv[optind - 1]. */
static bool in_loop;

/* The numeric options that set one field of dmn_options, each within its
 * range: one table, one parser (parse_num). */
static const struct num_opt {
	int c;
	const char *name;
	unsigned long long lo, hi;
	size_t off;
	bool narrow; /* an unsigned field, else uint64_t */
} num_opts[] = {
#define U64(c, name, lo, hi, field) {c, name, lo, hi, offsetof(dmn_options, field), false}
#define U32(c, name, lo, hi, field) {c, name, lo, hi, offsetof(dmn_options, field), true}
    /* the host's maxima of script limits, within the caps of room-format.md */
    U64('W', "script-max-wall-s", 1, DCR_RM_LIMIT_WALL_SECONDS_MAX, script_max_wall_s),
    U64('C', "script-max-cpu-s", 1, DCR_RM_LIMIT_CPU_SECONDS_MAX, script_max_cpu_s),
    U64('M', "script-max-memory-mb", DCR_RM_LIMIT_MEMORY_MB_MIN, DCR_RM_LIMIT_MEMORY_MB_MAX,
        script_max_memory_mb),
    U64('P', "script-max-processes", 1, DCR_RM_LIMIT_PROCESSES_MAX, script_max_processes),
    U64('O', "script-max-output-mb", 1, DCR_RM_LIMIT_OUTPUT_MB_MAX, script_max_output_mb),
    U64('T', "script-max-tmp-mb", 1, DCR_RM_LIMIT_TMP_MB_MAX, script_max_tmp_mb),
    /* disk quotas, unsigned uploads (docs/daemon.md "Limits and quotas") */
    U64('q', "max-room-blob-mb", 1, DMN_QUOTA_MB_MAX, max_room_blob_mb),
    U64('k', "max-key-blob-mb", 1, DMN_QUOTA_MB_MAX, max_key_blob_mb),
    U64('K', "max-key-disk-mb", 1, DMN_QUOTA_MB_MAX, max_key_disk_mb),
    U64('t', "max-run-tmp-mb", 1, DMN_QUOTA_MB_MAX, max_run_tmp_mb),
    U64('e', "upload-expiry-s", 1, DMN_UPLOAD_EXPIRY_S_MAX, upload_expiry_s),
    /* connections */
    U64(OPT_CONNS, "max-conns", 2, DMN_CONNS_OPTION_MAX, max_conns),
    U64(OPT_CONNS + 1, "max-conns-per-key", 1, DMN_CONNS_OPTION_MAX, max_conns_per_key),
    U64(OPT_CONNS + 2, "max-conns-per-addr", 1, DMN_CONNS_OPTION_MAX, max_conns_per_addr),
    U64(OPT_CONNS + 3, "max-stranger-conns", 1, DMN_CONNS_OPTION_MAX, max_stranger_conns),
    U64(OPT_CONNS + 4, "stranger-idle-timeout-s", 1, 7u * 24 * 3600, stranger_idle_s),
    /* TLS listeners (docs/daemon.md "TLS listeners") */
    U64(OPT_TLS, "tls-handshake-timeout-ms", 100, DMN_TLS_HANDSHAKE_TIMEOUT_MS_MAX,
        tls_handshake_timeout_ms),
    U64(OPT_TLS + 1, "max-tls-handshakes", 1, DMN_CONNS_OPTION_MAX, max_tls_handshakes),
    /* scheduling (docs/daemon.md "Scheduling") */
    U32('j', "job-workers", 1, DMN_JOB_WORKERS_MAX, job_workers),
    U32('r', "max-running-per-room", 1, DMN_JOB_WORKERS_MAX, room_running_max),
    U32('y', "max-running-per-key", 1, DMN_JOB_WORKERS_MAX, key_running_max),
    U32('Q', "max-queued-runs", 1, DMN_ROOM_QUEUED_RUNS_CAP, room_queued_runs_max),
    /* admission checks and definition quotas */
    U64('A', "max-check-cpu-s", 1, DMN_ADMIT_CPU_S_MAX, max_check_cpu_s),
    U64('D', "max-definition-kb", 1, DMN_DEF_MB_MAX * 1024ull, max_definition_kb),
    U64('R', "max-rooms-per-key", 1, DMN_ROOMS_PER_KEY_MAX, max_rooms_per_key),
#undef U64
#undef U32
};

/* Sets the field of the numeric option c from arg. 1: c is not one; 0: set;
 * 2: arg is out of range (said on stderr). */
static int parse_num(int c, const char *arg, dmn_options *opt)
{
	const struct num_opt *n = NULL;
	char *end = NULL;
	unsigned long long v;

	for (size_t i = 0; i < sizeof num_opts / sizeof num_opts[0] && !n; i++)
		if (num_opts[i].c == c)
			n = &num_opts[i];
	if (!n)
		return 1;
	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || !end || end == arg || *end || *arg == '-' || v < n->lo || v > n->hi) {
		fprintf(stderr, "dcrd: --%s: not a number from %llu to %llu: %s\n", n->name, n->lo,
		        n->hi, arg);
		return 2;
	}
	if (n->narrow)
		*(unsigned *)((char *)opt + n->off) = (unsigned)v;
	else
		*(uint64_t *)((char *)opt + n->off) = v;
	return 0;
}

static void usage(FILE *f)
{
	if (quiet_usage && f == stderr)
		return;
	fprintf(f,
	        "usage: dcrd --data DIR [--config FILE] [--socket PATH] [--listen HOST:PORT]...\n"
	        "            [OPTION...]\n"
	        "       dcrd --data DIR --fingerprint\n"
	        "       dcrd restore --data DIR [--keys KEYDIR] BACKUP   (dcrd restore --help)\n"
	        "\n"
	        "The dcr clean room host. Runs in the foreground, logs to stderr (one line\n"
	        "per request), stops cleanly on SIGTERM or SIGINT, re-reads its\n"
	        "configuration file on SIGHUP.\n"
	        "\n"
	        "  --config FILE          read options from FILE first: one \"key = value\" per\n"
	        "                         line (a flag: the key alone), key a long option\n"
	        "                         below; the command line wins (default: %s)\n"
	        "  --data DIR             data directory (created on first start): event log,\n"
	        "                         encrypted blobs, daemon key (daemon.pem), master key\n"
	        "                         (master.key). One dcrd per directory (DIR/lock).\n"
	        "  --socket PATH          unix socket to listen on; default $DCR_SOCKET, else\n"
	        "                         DIR/dcr.sock\n"
	        "  --socket-mode MODE     the socket's mode, octal, at least 600 (default %03o,\n"
	        "                         whatever the umask)\n"
	        "  --socket-group GROUP   the socket's group (a name or a number)\n"
	        "  --listen HOST:PORT     also serve the protocol over TLS 1.3 on TCP, e.g.\n"
	        "                         127.0.0.1:4433, [::1]:4433, 0.0.0.0:4433 (repeatable;\n"
	        "                         port 0: any free port, printed); the key and its\n"
	        "                         self-signed certificate are DIR/tls/, made at the\n"
	        "                         first start with --listen\n"
	        "  --fingerprint          print the TLS key's fingerprint (sha256:...) for\n"
	        "                         participants to pin, making the key if missing, and\n"
	        "                         exit\n"
	        "  --tls-handshake-timeout-ms N  close a TLS connection whose handshake is not\n"
	        "                         done after N ms (default %u)\n"
	        "  --max-tls-handshakes N TLS connections in the handshake at once; one more\n"
	        "                         closes the oldest of the address holding the most\n"
	        "                         (default %u)\n"
	        "  --idle-timeout-ms N    close connections idle for N ms (default %u)\n"
	        "  --max-conns N          authenticated connections in all (default %u)\n"
	        "  --max-conns-per-key N  connections of one key (default %u; below --max-conns)\n"
	        "  --max-conns-per-addr N connections from one address: a uid on the socket,\n"
	        "                         an IP (an IPv6 /64) on TLS (default %u)\n"
	        "  --max-stranger-conns N connections of keys that are in no room (default %u;\n"
	        "                         below --max-conns)\n"
	        "  --stranger-idle-timeout-s N  close those when idle for N s (default %u)\n"
	        "  --log-level LEVEL      error, warn, info (default) or debug\n"
	        "  --image-cache-mb N     memory for decrypted tables kept between runs, in MiB\n"
	        "                         (default an eighth of memory, at least 1024; 0\n"
	        "                         turns the cache off; the log says the value)\n"
	        "  --upload-rows-mb N     memory for table rows checked at upload and held\n"
	        "                         until their prepared table is built, in MiB, in\n"
	        "                         all (default %llu; 0: builds read the file again)\n"
	        "  --build-memory-mb N    memory estimates of the prepared tables built at\n"
	        "                         once, in MiB, in all (default an eighth of memory,\n"
	        "                         at least 1024; the log says the value)\n"
	        "  --frame-budget-mb N    memory for request frames being read, queued or\n"
	        "                         handled, in MiB, across all connections (default\n"
	        "                         %llu, at least %u); past it clients are slowed\n"
	        "  --script-max-wall-s N, --script-max-cpu-s N, --script-max-memory-mb N,\n"
	        "  --script-max-processes N, --script-max-output-mb N, --script-max-tmp-mb N\n"
	        "                         this host's maxima of the limits of python and r\n"
	        "                         runs: a definition's \"limits\" above one fails its\n"
	        "                         runs naming it, and the defaults (10 min wall and\n"
	        "                         CPU, 2048 MiB, 64 processes, 256 MiB output and\n"
	        "                         /tmp) are lowered to it (default: the caps of\n"
	        "                         docs/room-format.md)\n"
	        "  --max-room-blob-mb N   quota of the files uploaded into one room, MiB\n"
	        "                         (default %llu)\n"
	        "  --max-key-blob-mb N    quota of the files one key uploaded, MiB (default %llu)\n"
	        "  --max-key-disk-mb N    one key's uploads plus the temporary files of its\n"
	        "                         runs, MiB (default %llu)\n"
	        "  --max-run-tmp-mb N     temporary files of one SQL run, MiB (default %llu)\n"
	        "  --upload-expiry-s N    uploads finished but never signed are deleted after\n"
	        "                         N s (default %u)\n"
	        "  --job-workers N        threads computing runs, development runs and\n"
	        "                         prepared tables (default %u)\n"
	        "  --max-running-per-room N, --max-running-per-key N\n"
	        "                         jobs one room, or one requesting key, may have\n"
	        "                         running at once; below --job-workers (default %u\n"
	        "                         and %u, lowered to workers - 1)\n"
	        "  --max-queued-runs N    runs and development runs one room may have queued\n"
	        "                         or running; more are refused (default %u)\n"
	        "  --max-check-cpu-s N    a key's budget of CPU time for admission checks of\n"
	        "                         definitions, refilled over %u s (default %u)\n"
	        "  --max-definition-kb N  room definition text a key may store, KiB (default %llu)\n"
	        "  --max-rooms-per-key N  rooms a key may create (default %u)\n"
	        "  --hold-auto-approvals  record no automatic approval (auto_approve policies);\n"
	        "                         those due are recorded at the next start without it\n"
	        "  --no-sync              do not fsync the event log (tests and benchmarks only:\n"
	        "                         a crash may lose recent events)\n"
	        "  --help                 this text\n"
	        "\n"
	        "Prints \"dcrd: listening on PATH\" to stderr when ready. See docs/daemon.md.\n",
	        DCR_CONFIG_DEFAULT[0] ? DCR_CONFIG_DEFAULT : "none", DMN_SOCKET_MODE,
	        DMN_TLS_HANDSHAKE_TIMEOUT_MS, DMN_TLS_HANDSHAKES_MAX, (unsigned)DMN_IDLE_TIMEOUT_MS, DMN_CONNS_MAX, DMN_CONNS_PER_KEY_MAX,
	        DMN_CONNS_PER_ADDR_MAX, DMN_STRANGER_CONNS_MAX, DMN_STRANGER_IDLE_S,
	        (unsigned long long)(DMN_UPLOAD_ROWS_BYTES >> 20),
	        (unsigned long long)(DMN_FRAME_BUDGET_BYTES >> 20), FRAME_BUDGET_MB_MIN,
	        (unsigned long long)DMN_QUOTA_ROOM_BLOB_MB, (unsigned long long)DMN_QUOTA_KEY_BLOB_MB,
	        (unsigned long long)DMN_QUOTA_KEY_DISK_MB, (unsigned long long)DMN_QUOTA_RUN_TMP_MB,
	        (unsigned)DMN_UPLOAD_EXPIRY_S, DMN_JOB_WORKERS, DMN_ROOM_RUNNING_MAX,
	        DMN_KEY_RUNNING_MAX, DMN_ROOM_QUEUED_RUNS_MAX, (unsigned)DMN_ADMIT_REFILL_S,
	        (unsigned)DMN_ADMIT_CPU_S, (unsigned long long)(DMN_DEF_BYTES_PER_KEY >> 10),
	        (unsigned)DMN_ROOMS_PER_KEY);
}

/* One configuration file, turned into arguments: args[i] is "--key=value"
 * (or "--key") from line lines[i]. */
typedef struct config {
	const char *path;
	char *text;
	char **args;
	unsigned *lines;
	size_t n;
} config;

static void config_free(config *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->args[i]);
	free(c->text);
	free(c->args);
	free(c->lines);
	memset(c, 0, sizeof *c);
}

static char *trim(char *a, char *z)
{
	while (a < z && isspace((unsigned char)*a))
		a++;
	while (z > a && isspace((unsigned char)z[-1]))
		z--;
	*z = 0;
	return a;
}

/* Reads path into c. Missing is no error when optional. Returns 0, or 2
 * with the reason (file and line) on stderr. */
static int config_read(config *c, const char *path, bool optional, const struct option *longopts)
{
	FILE *f = NULL;
	char *p, *line, *next;
	size_t len;
	unsigned lineno = 0;
	int rc = 2;

	memset(c, 0, sizeof *c);
	c->path = path;
	f = fopen(path, "re");
	if (!f) {
		if (optional && errno == ENOENT) {
			rc = 0;
			goto out;
		}
		fprintf(stderr, "dcrd: configuration file %s: %s\n", path, strerror(errno));
		goto out;
	}
	c->text = dcr_malloc(DMN_CONFIG_BYTES_MAX + 1);
	len = fread(c->text, 1, DMN_CONFIG_BYTES_MAX + 1, f);
	if (ferror(f)) {
		fprintf(stderr, "dcrd: configuration file %s: read error\n", path);
		goto out;
	}
	if (len > DMN_CONFIG_BYTES_MAX) {
		fprintf(stderr, "dcrd: configuration file %s: larger than %u bytes\n", path,
		        DMN_CONFIG_BYTES_MAX);
		goto out;
	}
	c->text[len] = 0;
	if (memchr(c->text, 0, len)) {
		fprintf(stderr, "dcrd: configuration file %s: contains a NUL byte\n", path);
		goto out;
	}
	c->args = dcr_calloc(DMN_CONFIG_LINES_MAX, sizeof *c->args);
	c->lines = dcr_calloc(DMN_CONFIG_LINES_MAX, sizeof *c->lines);
	for (line = c->text; line && *line; line = next) {
		char *eq, *key, *val = NULL, *arg;
		const struct option *o;

		lineno++;
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		p = trim(line, line + strlen(line));
		if (*p == 0 || *p == '#')
			continue;
		eq = strchr(p, '=');
		if (eq) {
			*eq = 0;
			val = trim(eq + 1, eq + 1 + strlen(eq + 1));
		}
		key = trim(p, p + strlen(p));
		for (o = longopts; o->name; o++)
			if (strcmp(o->name, key) == 0)
				break;
		if (!o->name || strcmp(key, "config") == 0 || strcmp(key, "help") == 0) {
			fprintf(stderr,
			        "dcrd: %s line %u: \"%s\" is not an option of dcrd (see dcrd "
			        "--help; write the long name without --)\n",
			        path, lineno, key);
			goto out;
		}
		if (o->has_arg == no_argument && val) {
			fprintf(stderr,
			        "dcrd: %s line %u: %s takes no value: write \"%s\" alone to set "
			        "it, leave it out otherwise\n",
			        path, lineno, key, key);
			goto out;
		}
		if (o->has_arg == required_argument && (!val || !*val)) {
			fprintf(stderr, "dcrd: %s line %u: %s needs a value: %s = VALUE\n", path,
			        lineno, key, key);
			goto out;
		}
		if (c->n == DMN_CONFIG_LINES_MAX) {
			fprintf(stderr, "dcrd: %s line %u: more than %u options\n", path, lineno,
			        DMN_CONFIG_LINES_MAX);
			goto out;
		}
		/* one argument per line, so an error names its line */
		arg = dcr_asprintf("--%s%s%s", key, val ? "=" : "", val ? val : "");
		c->args[c->n] = arg;
		c->lines[c->n] = lineno;
		c->n++;
	}
	rc = 0;
out:
	if (f)
		fclose(f);
	if (rc)
		config_free(c);
	return rc;
}

/* The getopt loop over argv into *out. With table set it only gives the
 * table of options (config_read checks keys against it). Returns 0,
 * PARSE_HELP (--help printed) or 2 (usage error printed). */
/* An option of MiB where 0 turns the thing off: *out gets the bytes, or
 * off for 0. */
static int parse_mb_or_off(const char *name, const char *arg, uint64_t off, uint64_t *out)
{
	char *end = NULL;
	unsigned long long v;
	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || !end || end == arg || *end || *arg == '-' || v > (1ull << 24)) {
		fprintf(stderr, "dcrd: --%s: not a number of MiB (0 to %llu): %s\n", name, 1ull << 24,
		        arg);
		return -1;
	}
	*out = v ? v << 20 : off;
	return 0;
}

static int parse_options(int argc, char **argv, dmn_options *out, const struct option **table)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, OPT_CONFIG},
	    {"data", required_argument, NULL, 'd'},
	    {"socket", required_argument, NULL, 's'},
	    {"idle-timeout-ms", required_argument, NULL, 'i'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"no-sync", no_argument, NULL, 'n'},
	    {"hold-auto-approvals", no_argument, NULL, 'H'},
	    {"image-cache-mb", required_argument, NULL, 'c'},
	    {"upload-rows-mb", required_argument, NULL, 'u'},
	    {"build-memory-mb", required_argument, NULL, OPT_BUILD_MEMORY},
	    {"frame-budget-mb", required_argument, NULL, 'f'},
	    {"script-max-wall-s", required_argument, NULL, 'W'},
	    {"script-max-cpu-s", required_argument, NULL, 'C'},
	    {"script-max-memory-mb", required_argument, NULL, 'M'},
	    {"script-max-processes", required_argument, NULL, 'P'},
	    {"script-max-output-mb", required_argument, NULL, 'O'},
	    {"script-max-tmp-mb", required_argument, NULL, 'T'},
	    {"max-room-blob-mb", required_argument, NULL, 'q'},
	    {"max-key-blob-mb", required_argument, NULL, 'k'},
	    {"max-key-disk-mb", required_argument, NULL, 'K'},
	    {"max-run-tmp-mb", required_argument, NULL, 't'},
	    {"upload-expiry-s", required_argument, NULL, 'e'},
	    {"socket-mode", required_argument, NULL, 'm'},
	    {"socket-group", required_argument, NULL, 'g'},
	    {"max-conns", required_argument, NULL, OPT_CONNS},
	    {"max-conns-per-key", required_argument, NULL, OPT_CONNS + 1},
	    {"max-conns-per-addr", required_argument, NULL, OPT_CONNS + 2},
	    {"max-stranger-conns", required_argument, NULL, OPT_CONNS + 3},
	    {"stranger-idle-timeout-s", required_argument, NULL, OPT_CONNS + 4},
	    {"listen", required_argument, NULL, OPT_LISTEN},
	    {"fingerprint", no_argument, NULL, OPT_FINGERPRINT},
	    {"tls-handshake-timeout-ms", required_argument, NULL, OPT_TLS},
	    {"max-tls-handshakes", required_argument, NULL, OPT_TLS + 1},
	    {"job-workers", required_argument, NULL, 'j'},
	    {"max-running-per-room", required_argument, NULL, 'r'},
	    {"max-running-per-key", required_argument, NULL, 'y'},
	    {"max-queued-runs", required_argument, NULL, 'Q'},
	    {"max-check-cpu-s", required_argument, NULL, 'A'},
	    {"max-definition-kb", required_argument, NULL, 'D'},
	    {"max-rooms-per-key", required_argument, NULL, 'R'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	dmn_options opt;
	int c, lvl;

	if (table) {
		*table = longopts;
		return 0;
	}
	memset(&opt, 0, sizeof opt);
	opt.log_level = DMN_LOG_INFO;
	optind = 0; /* glibc: start afresh (a reload parses again) */
	in_loop = true;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_CONFIG: /* read before (parse_all) */
			break;
		case 'd':
			opt.data_dir = optarg;
			break;
		case 's':
			opt.socket_path = optarg;
			break;
		case OPT_LISTEN: {
			char host[256], port[8];
			dcr_err err;
			if (dmn_listen_parse(optarg, host, port, &err) < 0) {
				fprintf(stderr, "dcrd: %s\n", err.msg);
				return 2;
			}
			if (opt.nlisten == DMN_LISTEN_MAX) {
				fprintf(stderr, "dcrd: --listen: at most %u addresses\n",
				        DMN_LISTEN_MAX);
				return 2;
			}
			opt.listen[opt.nlisten++] = optarg;
			break;
		}
		case OPT_FINGERPRINT:
			print_fingerprint = true;
			break;
		case 'i': {
			char *end = NULL;
			unsigned long long v;
			errno = 0;
			v = strtoull(optarg, &end, 10);
			if (errno || !end || *end || v == 0 || v > 7ull * 24 * 3600 * 1000) {
				fprintf(stderr,
				        "dcrd: --idle-timeout-ms: not a positive number of "
				        "milliseconds: %s\n",
				        optarg);
				return 2;
			}
			opt.idle_timeout_ms = v;
			break;
		}
		case 'l':
			lvl = dmn_log_level_parse(optarg);
			if (lvl < 0) {
				fprintf(stderr,
				        "dcrd: --log-level: expected error, warn, info or "
				        "debug, got %s\n",
				        optarg);
				return 2;
			}
			opt.log_level = (enum dmn_log_level)lvl;
			break;
		case 'n':
			opt.no_sync = true;
			break;
		case 'H':
			opt.hold_auto_approvals = true;
			break;
		case 'c':
			if (parse_mb_or_off("image-cache-mb", optarg, DMN_IMAGE_CACHE_OFF,
			                    &opt.image_cache_bytes) < 0)
				return 2;
			break;
		case 'u':
			if (parse_mb_or_off("upload-rows-mb", optarg, DMN_UPLOAD_ROWS_OFF,
			                    &opt.upload_rows_bytes) < 0)
				return 2;
			break;
		case OPT_BUILD_MEMORY:
			/* no "off": 0 is refused (a build always runs alone) */
			if (parse_mb_or_off("build-memory-mb", optarg, 0, &opt.build_memory_bytes) < 0)
				return 2;
			if (!opt.build_memory_bytes) {
				fprintf(stderr, "dcrd: --build-memory-mb: at least 1 MiB\n");
				return 2;
			}
			break;
		case 'f': {
			char *end = NULL;
			unsigned long long v;
			errno = 0;
			v = strtoull(optarg, &end, 10);
			if (errno || !end || end == optarg || *end || v < FRAME_BUDGET_MB_MIN ||
			    v > DMN_FRAME_BUDGET_MB_MAX) {
				fprintf(stderr,
				        "dcrd: --frame-budget-mb: not a number of MiB (%u to %u): "
				        "%s\n",
				        FRAME_BUDGET_MB_MIN, DMN_FRAME_BUDGET_MB_MAX, optarg);
				return 2;
			}
			opt.frame_budget_bytes = v << 20;
			break;
		}
		case 'm': {
			char *end = NULL;
			unsigned long v;
			errno = 0;
			v = strtoul(optarg, &end, 8);
			if (errno || !end || end == optarg || *end || v > 0777 ||
			    (v & 0600) != 0600) {
				fprintf(
				    stderr,
				    "dcrd: --socket-mode: not an octal mode from 600 to 777 that "
				    "lets the owner read and write: %s\n",
				    optarg);
				return 2;
			}
			opt.socket_mode = (uint32_t)v;
			break;
		}
		case 'g': {
			struct group gr, *res = NULL;
			char buf[4096], *end = NULL;
			unsigned long v;
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (*optarg && end && !*end && !errno && v < 0xffffffffu) {
				opt.socket_gid = (uint32_t)v;
			} else if (getgrnam_r(optarg, &gr, buf, sizeof buf, &res) == 0 && res) {
				opt.socket_gid = (uint32_t)res->gr_gid;
			} else {
				fprintf(stderr, "dcrd: --socket-group: no group %s\n", optarg);
				return 2;
			}
			opt.socket_group_set = true;
			break;
		}
		case 'h':
			usage(stdout);
			return PARSE_HELP;
		default: {
			int rc = parse_num(c, optarg, &opt);
			if (rc == 0)
				break;
			if (rc == 1)
				usage(stderr);
			return 2;
		}
		}
	}
	in_loop = false;
	if (optind < argc) {
		fprintf(stderr, "dcrd: unexpected argument %s\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	{
		/* one room or one key must leave a worker to the others */
		unsigned w = opt.job_workers ? opt.job_workers : DMN_JOB_WORKERS;
		if (w > 1 && (opt.room_running_max >= w || opt.key_running_max >= w)) {
			fprintf(stderr,
			        "dcrd: --max-running-per-room and --max-running-per-key must be "
			        "below --job-workers (%u), so other rooms and keys always get a "
			        "worker\n",
			        w);
			return 2;
		}
	}
	if (!opt.data_dir) {
		fprintf(stderr, "dcrd: --data DIR is required\n");
		usage(stderr);
		return 2;
	}
	*out = opt;
	return 0;
}

/* The configuration file named on the command line (--config), else the
 * default; NULL if none. */
static const char *config_path(int argc, char **argv, const struct option *longopts, bool *optional)
{
	char **copy = dcr_calloc((size_t)argc + 1, sizeof *copy);
	const char *path = NULL;
	int c, saved = opterr;

	memcpy(copy, argv, (size_t)argc * sizeof *copy);
	opterr = 0; /* the real parse reports errors */
	optind = 0;
	while ((c = getopt_long(argc, copy, "", longopts, NULL)) != -1)
		if (c == OPT_CONFIG)
			path = optarg;
	opterr = saved;
	free(copy);
	*optional = false;
	if (!path && DCR_CONFIG_DEFAULT[0]) {
		path = DCR_CONFIG_DEFAULT;
		*optional = true;
	}
	return path;
}

/* The configuration file and the command line, in that order, into *out;
 * conf keeps the strings *out points to (config_free after use). */
typedef struct parsed {
	config conf;
	char **argv; /* argv[0], the file's arguments, the command line */
} parsed;

static void parsed_free(parsed *p)
{
	config_free(&p->conf);
	free(p->argv);
	p->argv = NULL;
}

static int parse_all(int argc, char **argv, parsed *p, dmn_options *out)
{
	const struct option *longopts = NULL;
	const char *path;
	bool optional;
	int rc, n;

	memset(p, 0, sizeof *p);
	parse_options(0, NULL, NULL, &longopts);
	path = config_path(argc, argv, longopts, &optional);
	if (path && (rc = config_read(&p->conf, path, optional, longopts)))
		return rc;
	n = argc + (int)p->conf.n;
	p->argv = dcr_calloc((size_t)n + 1, sizeof *p->argv);
	p->argv[0] = argv[0];
	for (size_t i = 0; i < p->conf.n; i++)
		p->argv[1 + i] = p->conf.args[i];
	for (int i = 1; i < argc; i++)
		p->argv[(int)p->conf.n + i] = argv[i];
	in_loop = false;
	rc = parse_options(n, p->argv, out, NULL);
	/* an option of the file that failed: say where it is */
	if (rc == 2 && in_loop && optind >= 2 && (size_t)optind - 1 <= p->conf.n)
		fprintf(stderr, "dcrd: (the option above is line %u of %s)\n",
		        p->conf.lines[optind - 2], p->conf.path);
	return rc;
}

/* What main parsed at start, for reload. */
static struct {
	int argc;
	char **argv;
	parsed now;
} g;

static bool is_live(const char *arg, size_t keylen)
{
	for (size_t i = 0; i < sizeof live_keys / sizeof live_keys[0]; i++)
		if (strlen(live_keys[i]) == keylen && memcmp(arg + 2, live_keys[i], keylen) == 0)
			return true;
	return false;
}

static bool has_arg(const config *c, const char *arg)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->args[i], arg) == 0)
			return true;
	return false;
}

/* SIGHUP (server.c, loop thread): the file and the command line again.
 * Fills the live options of *next; msg names the options that changed
 * and wait for a restart, or says why nothing changed (-1). */
static int reload(void *arg, dmn_options *next, char *msg, size_t cap)
{
	parsed p;
	dmn_options o;
	size_t used = 0;
	int rc;

	(void)arg;
	msg[0] = 0;
	quiet_usage = true;
	rc = parse_all(g.argc, g.argv, &p, &o);
	quiet_usage = false;
	if (rc) {
		parsed_free(&p);
		snprintf(msg, cap, "%s: error (line above): the settings stay as they were",
		         g.now.conf.path ? g.now.conf.path : "the command line");
		return -1;
	}
	memset(next, 0, sizeof *next);
	next->log_level = o.log_level;
	next->idle_timeout_ms = o.idle_timeout_ms;
	/* options added, removed or changed in the file, not live */
	for (int pass = 0; pass < 2; pass++) {
		const config *a = pass ? &g.now.conf : &p.conf, *b = pass ? &p.conf : &g.now.conf;
		for (size_t i = 0; i < a->n; i++) {
			size_t keylen = strcspn(a->args[i] + 2, "=");
			if (is_live(a->args[i], keylen) || has_arg(b, a->args[i]))
				continue;
			if (used + keylen + 8 < cap)
				used +=
				    (size_t)snprintf(msg + used, cap - used, "%s--%.*s",
				                     used ? ", " : "", (int)keylen, a->args[i] + 2);
		}
	}
	if (used)
		snprintf(msg + used, cap - used, ": changed, take effect at the next restart");
	parsed_free(&p);
	return 0;
}

/* dcrd --fingerprint: the TLS key's fingerprint on stdout, the key made
 * (with its directory and the data directory) if missing. Needs no lock:
 * two makers end up with one key (dcr_tls_server_open). */
static int fingerprint_main(const dmn_options *opt)
{
	char *dir = dcr_asprintf("%s/%s", opt->data_dir, DMN_TLS_DIR);
	char s[DCR_TLS_FINGERPRINT_BYTES];
	uint8_t fp[DCR_SHA256_BYTES];
	dcr_tls_server *srv = NULL;
	bool made = false;
	dcr_err err;
	int rc = 0;

	dcr_err_clear(&err);
	if (mkdir(opt->data_dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "dcrd: creating %s: %s\n", opt->data_dir, strerror(errno));
		rc = 1;
	} else if (dcr_tls_server_open(dir, &srv, &made, &err) < 0) {
		fprintf(stderr, "dcrd: %s\n", err.msg);
		rc = 1;
	} else {
		dcr_tls_server_fingerprint(srv, fp);
		dcr_tls_fingerprint_format(fp, s);
		if (made)
			fprintf(stderr, "dcrd: created TLS key %s/%s\n", dir, DCR_TLS_KEY_FILE);
		printf("%s\n", s);
		if (fflush(stdout) != 0)
			rc = 1;
	}
	dcr_tls_server_free(srv);
	free(dir);
	return rc;
}

int main(int argc, char **argv)
{
	dmn_options opt;
	dcr_err err;
	int rc;

	/* a python/r sandbox child (compute_sandbox.h), before anything else */
	if (argc > 1 && strcmp(argv[1], CMP_SANDBOX_ARGV) == 0)
		return cmp_sandbox_child_main(argc, argv);
	if (argc > 1 && strcmp(argv[1], "restore") == 0) /* admin.c */
		return dmn_restore_main(argc - 1, argv + 1);

	dcr_err_clear(&err);
	g.argc = argc;
	g.argv = argv;
	rc = parse_all(argc, argv, &g.now, &opt);
	if (rc) {
		parsed_free(&g.now);
		return rc == PARSE_HELP ? 0 : rc;
	}
	if (print_fingerprint) {
		rc = fingerprint_main(&opt);
		parsed_free(&g.now);
		return rc;
	}
	opt.reload = reload;
	rc = 0;
	if (dmn_run(&opt, &err) < 0) {
		fprintf(stderr, "dcrd: %s\n", err.msg);
		rc = 1;
	}
	parsed_free(&g.now);
	return rc;
}
