/* main.c: dcrd's command line. Everything else is in dmn_run (server.c). */
#include <getopt.h>
#include <stddef.h>

#include "daemon.h"
#include "../compute/compute_sandbox.h"

/* Enough for one frame of DCR_FRAME_BYTES_MAX and its unpacking. */
#define FRAME_BUDGET_MB_MIN 8u

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: dcrd --data DIR [--socket PATH] [--idle-timeout-ms N] [--log-level LEVEL]\n"
	        "            [--image-cache-mb N] [--frame-budget-mb N] [--script-max-LIMIT N]\n"
	        "            [--max-check-cpu-s N] [--max-definition-kb N] [--max-rooms-per-key N]\n"
	        "\n"
	        "The dcr clean room host. Runs in the foreground, logs to stderr (one line\n"
	        "per request), stops cleanly on SIGTERM or SIGINT.\n"
	        "\n"
	        "  --data DIR             data directory (created on first start): event log,\n"
	        "                         encrypted blobs, daemon key (daemon.pem), master key\n"
	        "                         (master.key). One dcrd per directory (DIR/lock).\n"
	        "  --socket PATH          unix socket to listen on; default $DCR_SOCKET, else\n"
	        "                         DIR/dcr.sock\n"
	        "  --idle-timeout-ms N    close connections idle for N ms (default %u)\n"
	        "  --log-level LEVEL      error, warn, info (default) or debug\n"
	        "  --image-cache-mb N     memory for decrypted tables kept between runs, in MiB\n"
	        "                         (default %llu; 0 turns the cache off)\n"
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
	        (unsigned)DMN_IDLE_TIMEOUT_MS, (unsigned long long)(DMN_IMAGE_CACHE_BYTES >> 20),
	        (unsigned long long)(DMN_FRAME_BUDGET_BYTES >> 20), FRAME_BUDGET_MB_MIN,
	        (unsigned)DMN_ADMIT_REFILL_S, (unsigned)DMN_ADMIT_CPU_S,
	        (unsigned long long)(DMN_DEF_BYTES_PER_KEY >> 10), (unsigned)DMN_ROOMS_PER_KEY);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"data", required_argument, NULL, 'd'},
	    {"socket", required_argument, NULL, 's'},
	    {"idle-timeout-ms", required_argument, NULL, 'i'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"no-sync", no_argument, NULL, 'n'},
	    {"hold-auto-approvals", no_argument, NULL, 'H'},
	    {"image-cache-mb", required_argument, NULL, 'c'},
	    {"frame-budget-mb", required_argument, NULL, 'f'},
	    {"script-max-wall-s", required_argument, NULL, 'W'},
	    {"script-max-cpu-s", required_argument, NULL, 'C'},
	    {"script-max-memory-mb", required_argument, NULL, 'M'},
	    {"script-max-processes", required_argument, NULL, 'P'},
	    {"script-max-output-mb", required_argument, NULL, 'O'},
	    {"script-max-tmp-mb", required_argument, NULL, 'T'},
	    {"max-check-cpu-s", required_argument, NULL, 'A'},
	    {"max-definition-kb", required_argument, NULL, 'D'},
	    {"max-rooms-per-key", required_argument, NULL, 'R'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	dmn_options opt;
	dcr_err err;
	int c, lvl;

	/* a python/r sandbox child (compute_sandbox.h), before anything else */
	if (argc > 1 && strcmp(argv[1], CMP_SANDBOX_ARGV) == 0)
		return cmp_sandbox_child_main(argc, argv);

	memset(&opt, 0, sizeof opt);
	opt.log_level = DMN_LOG_INFO;
	dcr_err_clear(&err);
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			opt.data_dir = optarg;
			break;
		case 's':
			opt.socket_path = optarg;
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
		case 'c': {
			char *end = NULL;
			unsigned long long v;
			errno = 0;
			v = strtoull(optarg, &end, 10);
			if (errno || !end || end == optarg || *end || v > (1ull << 24)) {
				fprintf(stderr,
				        "dcrd: --image-cache-mb: not a number of MiB (0 to %llu): "
				        "%s\n",
				        1ull << 24, optarg);
				return 2;
			}
			opt.image_cache_bytes = v ? v << 20 : DMN_IMAGE_CACHE_OFF;
			break;
		}
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
		case 'A':
		case 'D':
		case 'R': {
			/* limits and quotas (docs/daemon.md "Limits and quotas") */
			static const struct {
				int c;
				const char *name;
				unsigned long long cap;
				size_t off;
			} qs[] = {
			    {'A', "max-check-cpu-s", DMN_ADMIT_CPU_S_MAX,
			     offsetof(dmn_options, max_check_cpu_s)},
			    {'D', "max-definition-kb", DMN_DEF_MB_MAX * 1024ull,
			     offsetof(dmn_options, max_definition_kb)},
			    {'R', "max-rooms-per-key", DMN_ROOMS_PER_KEY_MAX,
			     offsetof(dmn_options, max_rooms_per_key)},
			};
			size_t qi = 0;
			char *end = NULL;
			unsigned long long v;
			while (qs[qi].c != c)
				qi++;
			errno = 0;
			v = strtoull(optarg, &end, 10);
			if (errno || !end || end == optarg || *end || v < 1 || v > qs[qi].cap) {
				fprintf(stderr, "dcrd: --%s: not a number from 1 to %llu: %s\n",
				        qs[qi].name, qs[qi].cap, optarg);
				return 2;
			}
			*(uint64_t *)((char *)&opt + qs[qi].off) = v;
			break;
		}
		case 'W':
		case 'C':
		case 'M':
		case 'P':
		case 'O':
		case 'T': {
			/* the host's maxima of script limits, within the caps of
			 * docs/room-format.md */
			static const struct {
				int c;
				const char *name;
				unsigned long long cap;
				size_t off;
			} lims[] = {
			    {'W', "script-max-wall-s", DCR_RM_LIMIT_WALL_SECONDS_MAX,
			     offsetof(dmn_options, script_max_wall_s)},
			    {'C', "script-max-cpu-s", DCR_RM_LIMIT_CPU_SECONDS_MAX,
			     offsetof(dmn_options, script_max_cpu_s)},
			    {'M', "script-max-memory-mb", DCR_RM_LIMIT_MEMORY_MB_MAX,
			     offsetof(dmn_options, script_max_memory_mb)},
			    {'P', "script-max-processes", DCR_RM_LIMIT_PROCESSES_MAX,
			     offsetof(dmn_options, script_max_processes)},
			    {'O', "script-max-output-mb", DCR_RM_LIMIT_OUTPUT_MB_MAX,
			     offsetof(dmn_options, script_max_output_mb)},
			    {'T', "script-max-tmp-mb", DCR_RM_LIMIT_TMP_MB_MAX,
			     offsetof(dmn_options, script_max_tmp_mb)},
			};
			size_t li = 0;
			char *end = NULL;
			unsigned long long v;
			while (lims[li].c != c)
				li++;
			errno = 0;
			v = strtoull(optarg, &end, 10);
			unsigned long long lo = c == 'M' ? DCR_RM_LIMIT_MEMORY_MB_MIN : 1;
			if (errno || !end || end == optarg || *end || v < lo || v > lims[li].cap) {
				fprintf(stderr, "dcrd: --%s: not a number from %llu to %llu: %s\n",
				        lims[li].name, lo, lims[li].cap, optarg);
				return 2;
			}
			*(uint64_t *)((char *)&opt + lims[li].off) = v;
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "dcrd: unexpected argument %s\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!opt.data_dir) {
		fprintf(stderr, "dcrd: --data DIR is required\n");
		usage(stderr);
		return 2;
	}
	if (dmn_run(&opt, &err) < 0) {
		fprintf(stderr, "dcrd: %s\n", err.msg);
		return 1;
	}
	return 0;
}
