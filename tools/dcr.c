/* dcr.c: main() of the dcr client, the helpers shared by its commands
 * (tools.h, cli.h), and the identity commands keygen and whoami.
 *
 * Global options --socket PATH, --server HOST:PORT, --pin sha256:HEX and
 * --identity FILE may appear anywhere on the command line before a "--";
 * main() takes them out of argv before it
 * dispatches, so every command (including audit and mount, which live in
 * their own files) sees only its own arguments.
 *
 * Identity files: the private key is a PEM (PKCS#8) file of mode 0600; its
 * public line "EMAIL ed25519:<base64>" is kept beside it in FILE.pub (mode
 * 0644), which is how whoami knows the email. The daemon never sees the
 * private key: the client signs the connection challenge and its events.
 *
 * The client never decides a rule itself: room state is what rm_apply makes
 * of the events fetched from the daemon (tl_replay), and the daemon checks
 * every submitted event again with the same function. */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char *g_socket;   /* --socket */
static const char *g_server;   /* --server */
static const char *g_pin;      /* --pin */
static const char *g_identity; /* --identity */
static dcr_key *g_key;         /* loaded by tl_connect, freed by main */

/* ---- shared helpers (tools.h) -------------------------------------------- */

const char *tl_identity_path(void)
{
	static char path[4096];
	const char *env, *home;

	if (g_identity && *g_identity)
		return g_identity;
	env = getenv("DCR_IDENTITY");
	if (env && *env)
		return env;
	home = getenv("HOME");
	if (!home || !*home)
		home = ".";
	snprintf(path, sizeof path, "%s/.config/dcr/identity.pem", home);
	return path;
}

int tl_load_identity(dcr_key **out, dcr_err *err)
{
	const char *path = tl_identity_path();

	*out = NULL;
	if (access(path, F_OK) != 0)
		return dcr_err_set(err, -ENOENT,
		                   "no identity key at %s: make one with `dcr keygen --email "
		                   "EMAIL`, or name it with --identity FILE or DCR_IDENTITY",
		                   path);
	return dcr_key_load(path, out, err);
}

const char *tl_socket_path(void)
{
	const char *env;

	if (g_socket && *g_socket)
		return g_socket;
	env = getenv("DCR_SOCKET");
	if (env && *env)
		return env;
	return NULL;
}

/* The pin in force: --pin, else $DCR_PIN. */
static const char *pin_option(void)
{
	const char *env = getenv("DCR_PIN");

	if (g_pin && *g_pin)
		return g_pin;
	return env && *env ? env : NULL;
}

int tl_addr(const char *room, cl_addr *a, char **owned, dcr_err *err)
{
	const char *server = g_server && *g_server ? g_server : NULL;
	const char *sock = g_socket && *g_socket ? g_socket : NULL;
	int rc;

	memset(a, 0, sizeof *a);
	*owned = NULL;
	if (server && sock)
		return dcr_err_set(err, DCR_EINVALID,
		                   "--server and --socket both given: a command reaches one dcrd");
	if (g_pin && *g_pin && sock)
		return dcr_err_set(err, DCR_EINVALID,
		                   "--pin is the key of a --server; the unix socket has none");
	if (!server && !sock) {
		const char *es = getenv("DCR_SERVER"), *ek = getenv("DCR_SOCKET");
		server = es && *es ? es : NULL;
		sock = ek && *ek ? ek : NULL;
		if (server && sock)
			return dcr_err_set(err, DCR_EINVALID,
			                   "DCR_SERVER and DCR_SOCKET are both set: unset one, or "
			                   "choose with --server or --socket");
	}
	if (!server && !sock) {
		/* a room joined with dcr join knows its server */
		rc = tl_joined_server(room, owned, err);
		if (rc)
			return rc;
		server = *owned;
	}
	if (!server && !sock)
		return dcr_err_set(err, DCR_EINVALID,
		                   "no daemon socket: pass --socket PATH or set DCR_SOCKET; for a "
		                   "remote dcrd --server HOST:PORT or DCR_SERVER%s",
		                   room ? ", or dcr join an invitation to the room" : "");
	a->socket = server ? NULL : sock;
	a->server = server;
	if (server) {
		a->pin = pin_option();
		a->check = tl_known_check;
		a->check_ctx = (void *)a->pin;
	}
	return 0;
}

int tl_connect_room(const char *room, cl_conn **out, dcr_err *err)
{
	char *owned = NULL;
	cl_addr a;
	int rc;

	*out = NULL;
	rc = tl_addr(room, &a, &owned, err);
	if (rc)
		goto out;
	/* The connection borrows the key (cl_identity); it lives until main()
	 * returns, so any number of connections may share it. */
	if (!g_key) {
		rc = tl_load_identity(&g_key, err);
		if (rc)
			goto out;
	}
	rc = cl_connect_addr(&a, g_key, out, err);
	if (rc)
		dcr_err_prefix(err, "connecting to %s", a.server ? a.server : a.socket);
out:
	free(owned);
	return rc;
}

int tl_connect(cl_conn **out, dcr_err *err)
{
	return tl_connect_room(NULL, out, err);
}

struct replay_ctx {
	rm_state *st;
	dcr_err err;
};

static int replay_one(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	struct replay_ctx *r = ctx;
	rm_step step;
	int rc;

	(void)seq;
	rc = rm_replay_step(r->st, entry, n, NULL, NULL, &step);
	if (rc)
		rm_step_err(&step, &r->err);
	return rc;
}

/* Every replay goes through the witness (proto/witness.h): the host's
 * latest checkpoint, checked against the one this client remembers for the
 * room, then exactly the events it covers, which must hash to its root.
 * The state is folded as the events arrive; a caller uses it only on
 * success. */
static int replay(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], rm_state *st,
                  es_checkpoint *cp, dcr_err *err)
{
	struct replay_ctx r = {.st = st};
	cl_witness *w = NULL;
	int rc;

	rm_state_init(st, cl_daemon_key(c));
	rc = cl_witness_new(cl_server_name(c), room, NULL, &w, err);
	if (rc == 0)
		rc = cl_witness_events(c, w, replay_one, &r, cp, err);
	if (rc && r.err.code) {
		/* the fold stopped on a rule: the log does not replay */
		if (err) {
			*err = r.err;
			dcr_err_prefix(err, "replaying the room's log");
		}
	}
	cl_witness_free(w);
	return rc;
}

int tl_replay(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], struct rm_state *st, dcr_err *err)
{
	es_checkpoint cp;

	return replay(c, room, st, &cp, err);
}

int cli_replay_verified(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], rm_state *st,
                        es_checkpoint *cp, dcr_err *err)
{
	/* the witness checked the checkpoint and that the events hash to it */
	return replay(c, room, st, cp, err);
}

void tl_fail(const char *cmd, const dcr_err *err)
{
	const char *msg = "failed";

	if (err && err->msg[0])
		msg = err->msg;
	else if (err && err->code)
		msg = dcr_strerror(err->code);
	fprintf(stderr, "dcr %s: %s\n", cmd, msg);
}

/* ---- shared helpers (cli.h) ---------------------------------------------- */

static const cli_opt *find_opt(const cli_opt *opts, const char *arg, size_t n)
{
	for (; opts && opts->name; opts++)
		if (strlen(opts->name) == n && memcmp(opts->name, arg, n) == 0)
			return opts;
	return NULL;
}

int cli_parse(const char *cmd, const char *usage, int argc, char **argv, const cli_opt *opts,
              char **pos, int pos_min, int pos_max, int *npos)
{
	bool only_pos = false;
	int np = 0;

	for (int i = 1; i < argc; i++) {
		char *a = argv[i];

		if (!only_pos && strcmp(a, "--") == 0) {
			only_pos = true;
			continue;
		}
		if (!only_pos && a[0] == '-' && a[1] != '\0') {
			const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
			size_t n = eq ? (size_t)(eq - a) : strlen(a);
			const cli_opt *o;

			if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
				fputs(usage, stdout);
				return CLI_PARSE_HELP;
			}
			o = find_opt(opts, a, n);
			if (!o) {
				fprintf(stderr, "dcr %s: unknown option %.*s\n%s", cmd, (int)n, a,
				        usage);
				return CLI_EXIT_USAGE;
			}
			if (o->value) {
				if (eq) {
					*o->value = eq + 1;
				} else if (i + 1 < argc) {
					*o->value = argv[++i];
				} else {
					fprintf(stderr, "dcr %s: option %s needs a value\n%s", cmd,
					        o->name, usage);
					return CLI_EXIT_USAGE;
				}
			} else {
				if (eq) {
					fprintf(stderr, "dcr %s: option %s takes no value\n%s", cmd,
					        o->name, usage);
					return CLI_EXIT_USAGE;
				}
				*o->flag = true;
			}
			continue;
		}
		if (np >= pos_max) {
			fprintf(stderr, "dcr %s: unexpected argument \"%s\"\n%s", cmd, a, usage);
			return CLI_EXIT_USAGE;
		}
		pos[np++] = a;
	}
	if (np < pos_min) {
		fprintf(stderr, "dcr %s: missing arguments\n%s", cmd, usage);
		return CLI_EXIT_USAGE;
	}
	if (npos)
		*npos = np;
	return 0;
}

int cli_read_input(const char *path, size_t max_bytes, dcr_buf *out, dcr_err *err)
{
	if (strcmp(path, "-") != 0) {
		int rc = dcr_read_file(path, max_bytes, out, err);

		if (rc == 0)
			dcr_buf_cstr(out);
		return rc;
	}
	for (;;) {
		ssize_t r;

		dcr_buf_reserve(out, 65536);
		r = read(STDIN_FILENO, out->data + out->len, out->cap - out->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return dcr_err_set(err, -errno, "reading standard input: %s",
			                   strerror(errno));
		if (r == 0)
			break;
		out->len += (size_t)r;
		if (out->len > max_bytes)
			return dcr_err_set(err, DCR_ELIMIT, "standard input: more than %zu bytes",
			                   max_bytes);
	}
	dcr_buf_cstr(out);
	return 0;
}

int cli_open_room(const char *room, cl_conn **c, uint8_t id[ES_ROOM_ID_BYTES], dcr_err *err)
{
	int rc = tl_connect_room(room, c, err);

	if (rc)
		return rc;
	rc = cl_room_resolve(*c, room, id, err);
	if (rc) {
		cl_close(*c);
		*c = NULL;
	}
	return rc;
}

void cli_human_bytes(uint64_t n, char *buf, size_t cap)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(buf, cap, "%llu B", (unsigned long long)n);
		return;
	}
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	snprintf(buf, cap, "%.1f %s", v, units[u]);
}

void cli_progress_init(cli_progress *p, const char *cmd, const char *what)
{
	memset(p, 0, sizeof *p);
	p->cmd = cmd;
	p->what = what;
	p->tty = isatty(STDERR_FILENO) == 1;
}

void cli_progress_update(cli_progress *p, uint64_t done, uint64_t total)
{
	char a[32], b[32];
	uint64_t now;

	if (!p->tty)
		return;
	now = dcr_mono_ms();
	if (p->shown && now - p->last_ms < 100 && done != total)
		return;
	p->last_ms = now;
	p->shown = true;
	cli_human_bytes(done, a, sizeof a);
	if (total) {
		cli_human_bytes(total, b, sizeof b);
		fprintf(stderr, "\r\033[Kdcr %s: %s %s of %s (%d%%)", p->cmd, p->what, a, b,
		        (int)(done * 100 / total));
	} else {
		fprintf(stderr, "\r\033[Kdcr %s: %s %s", p->cmd, p->what, a);
	}
	fflush(stderr);
}

void cli_progress_end(cli_progress *p)
{
	if (p->tty && p->shown)
		fprintf(stderr, "\r\033[K");
	p->shown = false;
}

/* ---- keygen / whoami ------------------------------------------------------ */

static const char keygen_usage[] =
    "usage: dcr keygen --email EMAIL [--out FILE] [--force]\n"
    "\n"
    "Makes an Ed25519 identity: the private key FILE (PEM, mode 0600) and its\n"
    "public line FILE.pub, and prints the public line \"EMAIL ed25519:...\"\n"
    "that goes into room definitions. FILE defaults to --identity, else\n"
    "$DCR_IDENTITY, else ~/.config/dcr/identity.pem (the directory is made\n"
    "with mode 0700). An existing key is never overwritten without --force.\n";

/* The email must be one a room definition accepts, so the public line
 * keygen prints can go into a definition as is. The rule is the room
 * module's: the email is checked by parsing the smallest definition that
 * names it (with the new key). Returns 0, or fills err. */
static int email_check(const char *email, const uint8_t pub[DCR_ED25519_PUB_BYTES], dcr_err *err)
{
	static const char prefix[] = "participants[0].email: ";
	char *key = dcr_pub_format(pub), *json = NULL;
	rm_def *d = NULL;
	int rc = 0;

	/* Keep the JSON well formed: the room rule refuses these anyway. */
	for (const char *p = email; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\') {
			rc = dcr_err_set(err, DCR_EINVALID,
			                 "\"%s\" does not look like an email address", email);
			goto out;
		}
	json = dcr_asprintf("{\"format\": \"dcr.room/1\", \"name\": \"keygen\", "
	                    "\"participants\": [{\"email\": \"%s\", \"key\": \"%s\"}]}",
	                    email, key);
	rc = rm_def_parse(json, strlen(json), &d, err);
	if (rc && err && strncmp(err->msg, prefix, sizeof prefix - 1) == 0)
		memmove(err->msg, err->msg + sizeof prefix - 1,
		        strlen(err->msg + sizeof prefix - 1) + 1);
out:
	rm_def_free(d);
	free(json);
	free(key);
	return rc;
}

/* mkdir -p for the parent of path, new directories with mode 0700. */
static int make_parent_dirs(const char *path, dcr_err *err)
{
	char *dir = dcr_strdup(path);
	int rc = 0;

	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		goto out;
	*slash = '\0';
	for (char *p = dir + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char save = *p;

			*p = '\0';
			if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
				rc = dcr_err_set(err, -errno, "cannot make directory %s: %s", dir,
				                 strerror(errno));
				goto out;
			}
			*p = save;
			if (save == '\0')
				break;
		}
	}
out:
	free(dir);
	return rc;
}

static int cmd_keygen(int argc, char **argv)
{
	const char *email = NULL, *outp = NULL;
	bool force = false;
	const cli_opt opts[] = {{"--email", &email, NULL},
	                        {"--out", &outp, NULL},
	                        {"-o", &outp, NULL},
	                        {"--force", NULL, &force},
	                        {NULL, NULL, NULL}};
	dcr_key *k = NULL;
	dcr_err err = {0};
	char *pub = NULL, *line = NULL, *pubpath = NULL;
	uint8_t raw[DCR_ED25519_PUB_BYTES];
	const char *path;
	int rc;

	CLI_PARSE("keygen", keygen_usage, argc, argv, opts, NULL, 0, 0, NULL);
	if (!email) {
		fprintf(stderr, "dcr keygen: --email EMAIL is required\n%s", keygen_usage);
		return CLI_EXIT_USAGE;
	}
	path = outp ? outp : tl_identity_path();
	pubpath = dcr_asprintf("%s.pub", path);
	rc = dcr_key_generate(&k);
	if (rc) {
		dcr_err_set(&err, rc, "cannot generate a key: %s", dcr_strerror(rc));
		goto out;
	}
	dcr_key_public(k, raw);
	if (email_check(email, raw, &err) != 0) {
		tl_fail("keygen", &err);
		rc = CLI_EXIT_USAGE;
		goto out_usage;
	}
	if (!outp) {
		rc = make_parent_dirs(path, &err);
		if (rc)
			goto out;
	}
	rc = dcr_key_save(k, path, force, &err);
	if (rc) {
		if (rc == DCR_EEXIST || rc == -EEXIST)
			dcr_err_set(&err, rc, "%s exists; use --force to overwrite it", path);
		goto out;
	}
	pub = dcr_pub_format(raw);
	line = dcr_asprintf("%s %s\n", email, pub);
	rc = dcr_write_file_atomic(pubpath, line, strlen(line), 0644, &err);
	if (rc)
		goto out;
	fputs(line, stdout);
out:
	if (rc)
		tl_fail("keygen", &err);
	rc = rc ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out_usage:
	free(line);
	free(pub);
	free(pubpath);
	dcr_key_free(k);
	return rc;
}

static const char whoami_usage[] =
    "usage: dcr whoami\n"
    "\n"
    "Prints the public line \"EMAIL ed25519:...\" of the current identity\n"
    "(--identity, $DCR_IDENTITY or ~/.config/dcr/identity.pem), checking that\n"
    "FILE.pub matches the private key.\n";

static int cmd_whoami(int argc, char **argv)
{
	dcr_key *k = NULL;
	dcr_err err = {0};
	dcr_buf b;
	char *pub = NULL, *pubpath = NULL;
	uint8_t raw[DCR_ED25519_PUB_BYTES];
	int rc;

	CLI_PARSE("whoami", whoami_usage, argc, argv, NULL, NULL, 0, 0, NULL);
	dcr_buf_init(&b);
	rc = tl_load_identity(&k, &err);
	if (rc)
		goto out;
	dcr_key_public(k, raw);
	pub = dcr_pub_format(raw);
	pubpath = dcr_asprintf("%s.pub", tl_identity_path());
	rc = dcr_read_file(pubpath, 4096, &b, &err);
	if (rc) {
		dcr_err_set(&err, rc,
		            "%s: cannot read the email of this identity (%s); it is written "
		            "by dcr keygen --email EMAIL",
		            pubpath, dcr_strerror(rc));
		goto out;
	}
	{
		char *s = dcr_buf_cstr(&b);
		char *sp = strchr(s, ' ');
		size_t n = strcspn(s, "\r\n");

		s[n] = '\0';
		if (!sp || strcmp(sp + 1, pub) != 0) {
			rc = dcr_err_set(&err, DCR_EKEY,
			                 "%s does not match the private key %s (expected "
			                 "\"EMAIL %s\")",
			                 pubpath, tl_identity_path(), pub);
			goto out;
		}
		printf("%s\n", s);
	}
out:
	if (rc)
		tl_fail("whoami", &err);
	dcr_buf_release(&b);
	free(pub);
	free(pubpath);
	dcr_key_free(k);
	return rc ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* ---- main ------------------------------------------------------------------ */

static const char main_usage[] =
    "usage: dcr [--socket PATH | --server HOST:PORT [--pin sha256:HEX]]\n"
    "           [--identity FILE] COMMAND [ARGS...]\n"
    "\n"
    "Identity:\n"
    "  keygen --email EMAIL [--out FILE] [--force]   make a key, print its public line\n"
    "  whoami                                        print the current public line\n"
    "Rooms (ROOM is an id or a unique room name):\n"
    "  room create FILE.json        create a draft room, print its id\n"
    "  room save ROOM FILE.json     replace the draft definition\n"
    "  room show ROOM [--status]    print the definition (status on stderr)\n"
    "  room export ROOM             print the definition exactly as stored\n"
    "  room list                    rooms you take part in\n"
    "  room duplicate ROOM [--name NAME]   new draft with the same definition\n"
    "  room publish ROOM            freeze the contract\n"
    "  room stop ROOM [--reason TEXT]\n"
    "  room test ROOM               run every computation on empty inputs\n"
    "  room invite ROOM EMAIL -o FILE   an invitation to the room (server, key, id)\n"
    "  join FILE                    record an invitation: reach its room by name\n"
    "Data and runs:\n"
    "  provision ROOM DATASET FILE  upload a dataset (CSV), print rows/bytes/sha256\n"
    "  deprovision ROOM DATASET\n"
    "  datasets [--json]            your datasets in every room: what is provisioned,\n"
    "                               its columns and statistics\n"
    "  stats ROOM DATASET [--json]  columns and statistics of a provisioned dataset\n"
    "  run ROOM COMPUTATION [--wait] [--timeout SECONDS]\n"
    "  status ROOM [COMPUTATION]\n"
    "  result ROOM COMPUTATION [-o FILE|DIR]   (python/r: every output file)\n"
    "  logs ROOM COMPUTATION [-o DIR]   a python/r run's stdout and stderr,\n"
    "                               as the definition's \"logs\" allows\n"
    "  data ROOM DATASET [-o FILE]  the file you provisioned, back (owners only)\n"
    "Development runs (settings.development):\n"
    "  dev run ROOM FILE [--input NAME ...] [--wait]   your .sql/.py/.R script over\n"
    "                               your datasets and results you may read\n"
    "  dev status ROOM [RUN]\n"
    "  dev result ROOM RUN [-o FILE|DIR] [--logs]\n"
    "Requests (new computations after publishing; see dcr request --help):\n"
    "  request validate|submit ROOM FILE.json, request list ROOM,\n"
    "  request show|approve|reject|withdraw|preview ROOM ID\n"
    "The host's operator (root or dcrd's user; see dcr admin --help):\n"
    "  admin status [--json], admin backup DIR [--with-keys]\n"
    "Audit and mount:\n"
    "  audit ...                    see dcr audit --help\n"
    "  mount ROOM DIR, umount DIR   see dcr mount --help\n"
    "\n"
    "Global options (anywhere before \"--\"):\n"
    "  --socket PATH    daemon socket (default: $DCR_SOCKET)\n"
    "  --server HOST:PORT  a remote dcrd over TLS 1.3 (default: $DCR_SERVER; IPv6:\n"
    "                   [ADDR]:PORT); without either, a room recorded by dcr join\n"
    "  --pin sha256:HEX the server's key fingerprint (default: $DCR_PIN, else\n"
    "                   known_servers in the configuration directory)\n"
    "  --identity FILE  private key (default: $DCR_IDENTITY, else\n"
    "                   ~/.config/dcr/identity.pem)\n"
    "Every command takes --help. Exit status: 0 ok, 1 failure, 2 usage error.\n";

/* Takes the global options out of argv (in place); returns the new argc,
 * or -1 after printing a usage error. */
static int strip_global_options(int argc, char **argv)
{
	int w = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL;
		const char *name = NULL;
		size_t n = 0;

		if (strcmp(a, "--") == 0) {
			while (i < argc)
				argv[w++] = argv[i++];
			break;
		}
		if (strncmp(a, "--socket", 8) == 0 && (a[8] == '\0' || a[8] == '=')) {
			dst = &g_socket;
			name = "--socket";
			n = 8;
		} else if (strncmp(a, "--server", 8) == 0 && (a[8] == '\0' || a[8] == '=')) {
			dst = &g_server;
			name = "--server";
			n = 8;
		} else if (strncmp(a, "--pin", 5) == 0 && (a[5] == '\0' || a[5] == '=')) {
			dst = &g_pin;
			name = "--pin";
			n = 5;
		} else if (strncmp(a, "--identity", 10) == 0 && (a[10] == '\0' || a[10] == '=')) {
			dst = &g_identity;
			name = "--identity";
			n = 10;
		}
		if (!dst) {
			argv[w++] = argv[i];
			continue;
		}
		if (a[n] == '=') {
			*dst = a + n + 1;
		} else if (i + 1 < argc) {
			*dst = argv[++i];
		} else {
			fprintf(stderr, "dcr: option %s needs a value\n", name);
			return -1;
		}
	}
	argv[w] = NULL;
	return w;
}

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
};

static const struct command commands[] = {
    {"keygen", cmd_keygen},
    {"whoami", cmd_whoami},
    {"room", cli_cmd_room},
    {"provision", cli_cmd_provision},
    {"deprovision", cli_cmd_deprovision},
    {"datasets", cli_cmd_datasets},
    {"stats", cli_cmd_stats},
    {"run", cli_cmd_run},
    {"status", cli_cmd_status},
    {"result", cli_cmd_result},
    {"logs", cli_cmd_logs},
    {"data", cli_cmd_data},
    {"dev", cli_cmd_dev},
    {"request", cli_cmd_request},
    {"admin", cli_cmd_admin},
    {"join", cli_cmd_join},
    {"audit", cmd_audit},
    {"mount", cmd_mount},
    {"umount", cmd_umount},
};

int main(int argc, char **argv)
{
	int rc;

	argc = strip_global_options(argc, argv);
	if (argc < 0)
		return CLI_EXIT_USAGE;
	if (argc < 2) {
		fputs(main_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(main_usage, stdout);
		return CLI_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(argv[1], commands[i].name) != 0)
			continue;
		rc = commands[i].fn(argc - 1, argv + 1);
		dcr_key_free(g_key);
		g_key = NULL;
		if (fflush(stdout) != 0 || ferror(stdout)) {
			fprintf(stderr, "dcr %s: writing standard output: %s\n", argv[1],
			        strerror(errno));
			return CLI_EXIT_FAIL;
		}
		return rc;
	}
	fprintf(stderr, "dcr: unknown command \"%s\" (dcr --help lists them)\n", argv[1]);
	return CLI_EXIT_USAGE;
}
