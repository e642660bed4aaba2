/* cli_remote.c: remote servers for the dcr client (docs/cli.md "Remote
 * servers"): where a command connects (--socket, --server, the joined
 * rooms), known_servers (trust on first use of a TLS server's key, like
 * ssh's known_hosts), `dcr room invite` and `dcr join`.
 *
 * Files, in the configuration directory (dcr_config_dir: DCR_CONFIG_DIR,
 * else $XDG_CONFIG_HOME/dcr, else ~/.config/dcr), all plain text, one
 * entry a line, '#' comments and blank lines allowed:
 *   known_servers   HOST:PORT sha256:HEX      the key each server had first
 *   rooms           ROOMID HOST:PORT NAME     rooms recorded by dcr join
 * An invitation is "KEY VALUE" lines (format, server, fingerprint, room,
 * name, email, invited-by). Every parser here names the file and line of
 * what it refuses, and nothing trusts a line it could not parse: a broken
 * known_servers refuses every TLS connection until it is fixed.
 *
 * The check of a server's key runs inside cl_connect_addr, after the TLS
 * handshake and before any byte of the protocol is sent. Files are
 * replaced whole (dcr_write_file_atomic), so a reader never sees half a
 * file, and every read-edit-write holds the configuration directory's
 * lock file (config_lock), so two processes recording at the same moment
 * both keep their line. */
#include <ctype.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "cli.h"
#include "../base/tls.h"

#define INVITE_FORMAT "dcr.invitation/1"

/* ---- line files ------------------------------------------------------------- */

/* One parsed line: up to 3 fields, the last one taking the rest of the
 * line when rest is set. */
typedef struct kline {
	unsigned line; /* 1-based */
	char *f[3];
	size_t nf;
} kline;

typedef struct kfile {
	char *path;
	kline *lines; /* entries only (no comments) */
	size_t n;
	dcr_buf text; /* the whole file as read */
} kfile;

static void kfile_release(kfile *k)
{
	for (size_t i = 0; i < k->n; i++)
		for (size_t j = 0; j < k->lines[i].nf; j++)
			free(k->lines[i].f[j]);
	free(k->lines);
	free(k->path);
	dcr_buf_release(&k->text);
	memset(k, 0, sizeof *k);
}

/* Reads path (missing: empty) and splits each entry into nfields fields
 * separated by single spaces; with rest the last takes the rest of the
 * line. Refuses, naming path and line: control characters, a line
 * longer than CL_KNOWN_LINE_BYTES, a wrong number of fields. */
static int kfile_load(const char *path, size_t nfields, bool rest, const char *what, kfile *k,
                      dcr_err *err)
{
	char *p, *end;
	unsigned ln = 0;
	int rc;

	memset(k, 0, sizeof *k);
	dcr_buf_init(&k->text);
	k->path = dcr_strdup(path);
	rc = dcr_read_file(path, CL_KNOWN_FILE_BYTES, &k->text, err);
	if (rc == -ENOENT) {
		dcr_err_clear(err);
		return 0;
	}
	if (rc < 0)
		return rc;
	dcr_buf_cstr(&k->text);
	p = (char *)k->text.data;
	end = p + k->text.len;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *le = nl ? nl : end, *q;
		size_t len = (size_t)(le - p);
		kline kl;

		ln++;
		memset(&kl, 0, sizeof kl);
		kl.line = ln;
		if (len && p[len - 1] == '\r')
			len--;
		if (len > CL_KNOWN_LINE_BYTES)
			return dcr_err_set(err, DCR_EFORMAT, "%s line %u: longer than %u bytes",
			                   path, ln, (unsigned)CL_KNOWN_LINE_BYTES);
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
				return dcr_err_set(err, DCR_EFORMAT,
				                   "%s line %u: a control character at column %zu",
				                   path, ln, i + 1);
		q = p;
		while (q < p + len && *q == ' ')
			q++;
		if (q == p + len || *q == '#') {
			p = le + 1;
			continue;
		}
		for (char *s = q; kl.nf < nfields;) {
			char *sp = (rest && kl.nf + 1 == nfields)
			               ? NULL
			               : memchr(s, ' ', (size_t)(p + len - s));
			char *fe = sp ? sp : p + len;
			if (fe == s)
				break;
			kl.f[kl.nf++] = dcr_strndup(s, (size_t)(fe - s));
			if (!sp)
				break;
			s = sp + 1;
			if (s >= p + len)
				break;
		}
		{
			size_t used = 0;
			for (size_t j = 0; j < kl.nf; j++)
				used += strlen(kl.f[j]) + (j ? 1 : 0);
			if (kl.nf != nfields || (size_t)(q - p) + used != len) {
				for (size_t j = 0; j < kl.nf; j++)
					free(kl.f[j]);
				return dcr_err_set(
				    err, DCR_EFORMAT,
				    "%s line %u: expected \"%s\" (fields separated by "
				    "one space)",
				    path, ln, what);
			}
		}
		k->lines = dcr_realloc(k->lines, (k->n + 1) * sizeof *k->lines);
		k->lines[k->n++] = kl;
		p = le + 1;
	}
	return 0;
}

/* Writes text as path's new content (mode 0600, replaced whole). */
static int kfile_store(const char *path, const dcr_buf *text, dcr_err *err)
{
	return dcr_write_file_atomic(path, text->data, text->len, 0600, err);
}

/* The file's text with line `line` (1-based) replaced by repl (a line
 * without its newline), or, for line 0, repl appended. Returns the line
 * number repl has in the new text. */
static unsigned kfile_edit(const kfile *k, unsigned line, const char *repl, dcr_buf *out)
{
	const char *p = (const char *)k->text.data, *end = p + k->text.len;
	unsigned ln = 0, at = 0;

	while (p && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		ln++;
		if (ln == line) {
			dcr_buf_append(out, repl, strlen(repl));
			at = ln;
		} else {
			dcr_buf_append(out, p, (size_t)(le - p));
		}
		dcr_buf_append(out, "\n", 1);
		p = le + 1;
	}
	if (line == 0) {
		dcr_buf_append(out, repl, strlen(repl));
		dcr_buf_append(out, "\n", 1);
		at = ln + 1;
	}
	return at;
}

static char *config_file(const char *name, bool create, dcr_err *err)
{
	char *dir = dcr_config_dir(create, err), *path;

	if (!dir)
		return NULL;
	path = dcr_asprintf("%s/%s", dir, name);
	free(dir);
	return path;
}

/* Loads the configuration directory's file NAME with kfile_load; K is
 * always initialised (empty when there is no directory), so the caller
 * releases it whatever the result. */
static int config_kfile_load(const char *name, size_t nfields, bool rest, const char *what,
                             bool create, kfile *k, dcr_err *err)
{
	char *path = config_file(name, create, err);
	int rc;

	if (!path) {
		memset(k, 0, sizeof *k);
		dcr_buf_init(&k->text);
		return err ? err->code : DCR_EINVALID;
	}
	rc = kfile_load(path, nfields, rest, what, k, err);
	free(path);
	return rc;
}

/* An exclusive flock on DIR/config.lock for a read-edit-write of the
 * files here: the fd to close, or -1 when there is no directory to lock
 * (nothing can be written there either). */
static int config_lock(void)
{
	char *path = config_file("config.lock", true, NULL);
	int fd = path ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;

	free(path);
	if (fd >= 0)
		while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
			;
	return fd;
}

static void config_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

/* ---- known_servers ------------------------------------------------------------ */

/* Loads known_servers, checking every line: a server address and a
 * fingerprint. */
static int known_load(kfile *k, bool create, dcr_err *err)
{
	int rc =
	    config_kfile_load("known_servers", 2, false, "HOST:PORT sha256:HEX", create, k, err);

	for (size_t i = 0; rc == 0 && i < k->n; i++) {
		char *h = NULL, *p = NULL;
		uint8_t fp[DCR_SHA256_BYTES];
		rc = cl_server_parse(k->lines[i].f[0], &h, &p, err);
		free(h);
		free(p);
		if (rc == 0)
			rc = dcr_tls_fingerprint_parse(k->lines[i].f[1], fp, err);
		if (rc < 0)
			dcr_err_prefix(err, "%s line %u", k->path, k->lines[i].line);
	}
	return rc;
}

static const kline *known_find(const kfile *k, const char *server)
{
	for (size_t i = 0; i < k->n; i++)
		if (strcmp(k->lines[i].f[0], server) == 0)
			return &k->lines[i];
	return NULL;
}

static bool fp_equal(const char *a, const char *b)
{
	uint8_t x[DCR_SHA256_BYTES], y[DCR_SHA256_BYTES];

	return dcr_tls_fingerprint_parse(a, x, NULL) == 0 &&
	       dcr_tls_fingerprint_parse(b, y, NULL) == 0 && memcmp(x, y, sizeof x) == 0;
}

/* The refusal of a changed key, as clear as ssh's: what changed, both
 * fingerprints, and the line to remove if the change is legitimate. The
 * long explanation goes to stderr; err gets the one-line reason. */
static int key_changed(const char *server, const kfile *k, const kline *l, const char *now,
                       dcr_err *err)
{
	fprintf(stderr,
	        "dcr: WARNING: THE KEY OF SERVER %s HAS CHANGED\n"
	        "dcr: %s line %u remembers the key %s,\n"
	        "dcr: the server now presents the key %s.\n"
	        "dcr: Someone may be intercepting the connection (a man in the middle), or the\n"
	        "dcr: host's operator made a new TLS key. Nothing was sent to the server.\n"
	        "dcr: If the change is legitimate (ask the operator for `dcrd --fingerprint`),\n"
	        "dcr: remove line %u of %s, or connect once with --pin %s.\n",
	        server, k->path, l->line, l->f[1], now, l->line, k->path, now);
	return dcr_err_set(err, DCR_EKEY,
	                   "refused: the key of %s changed (%s line %u); nothing was sent", server,
	                   k->path, l->line);
}

/* cl_check_fn of the CLI: known_servers (ctx: the --pin in force, which
 * cl_connect_addr already compared with the server's key). */
int tl_known_check(void *ctx, const char *server, const char *fp, dcr_err *err)
{
	const char *pin = ctx;
	kfile k;
	const kline *l;
	char *line = NULL;
	dcr_buf out;
	unsigned at;
	int rc, lock;

	dcr_buf_init(&out);
	lock = config_lock();
	rc = known_load(&k, true, err);
	if (rc < 0 && pin && !k.path) {
		/* no configuration directory (no HOME): the pin alone decides,
		 * and there is nowhere to record it */
		dcr_err_clear(err);
		rc = 0;
		goto out;
	}
	if (rc < 0)
		goto out;
	l = known_find(&k, server);
	if (l && fp_equal(l->f[1], fp))
		goto out; /* known: silent */
	if (l && !pin) {
		rc = key_changed(server, &k, l, fp, err);
		goto out;
	}
	line = dcr_asprintf("%s %s", server, fp);
	at = kfile_edit(&k, l ? l->line : 0, line, &out);
	rc = kfile_store(k.path, &out, err);
	if (rc < 0)
		goto out;
	if (l)
		fprintf(stderr, "dcr: %s line %u: the key of %s is now the pinned %s (was %s)\n",
		        k.path, at, server, fp, l->f[1]);
	else if (!pin)
		fprintf(
		    stderr,
		    "dcr: first connection to %s: its key fingerprint is %s\n"
		    "dcr: remembered in %s line %u; compare it with the fingerprint the host's\n"
		    "dcr: operator gives (dcrd --fingerprint) and remove that line if they "
		    "differ\n",
		    server, fp, k.path, at);
out:
	config_unlock(lock);
	free(line);
	dcr_buf_release(&out);
	kfile_release(&k);
	return rc;
}

/* ---- joined rooms ----------------------------------------------------------------- */

static int rooms_load(kfile *k, bool create, dcr_err *err)
{
	int rc = config_kfile_load("rooms", 3, true, "ROOMID HOST:PORT NAME", create, k, err);

	for (size_t i = 0; rc == 0 && i < k->n; i++) {
		uint8_t id[ES_ROOM_ID_BYTES];
		char *h = NULL, *p = NULL;
		if (strlen(k->lines[i].f[0]) != 32 || es_room_parse(k->lines[i].f[0], id) != 0) {
			rc = dcr_err_set(err, DCR_EFORMAT,
			                 "%s line %u: \"%s\" is not a room id (32 hex digits)",
			                 k->path, k->lines[i].line, k->lines[i].f[0]);
			break;
		}
		rc = cl_server_parse(k->lines[i].f[1], &h, &p, err);
		free(h);
		free(p);
		if (rc < 0)
			dcr_err_prefix(err, "%s line %u", k->path, k->lines[i].line);
	}
	return rc;
}

int tl_joined_server(const char *room, char **server, dcr_err *err)
{
	kfile k;
	const char *hit = NULL;
	size_t hits = 0;
	int rc;

	*server = NULL;
	rc = rooms_load(&k, false, err);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < k.n; i++) {
		const kline *l = &k.lines[i];
		bool match = room ? strcmp(l->f[0], room) == 0 || strcmp(l->f[2], room) == 0 : true;
		if (!match)
			continue;
		if (!hit || strcmp(hit, l->f[1]) != 0)
			hits++;
		hit = l->f[1];
	}
	if (hits > 1)
		rc = dcr_err_set(
		    err, DCR_EINVALID,
		    room ? "the rooms you joined named %s are on %zu servers (%s): give "
		           "--server HOST:PORT, or the room id"
		         : "%s%zu servers are in %s: give --server HOST:PORT",
		    room ? room : "", hits, k.path);
	else if (hit)
		*server = dcr_strdup(hit);
out:
	kfile_release(&k);
	return rc;
}

/* ---- invitations -------------------------------------------------------------------- */

typedef struct invitation {
	char *server, *fingerprint, *room, *name, *email, *invited_by;
} invitation;

static void invitation_release(invitation *v)
{
	free(v->server);
	free(v->fingerprint);
	free(v->room);
	free(v->name);
	free(v->email);
	free(v->invited_by);
	memset(v, 0, sizeof *v);
}

static bool email_plausible(const char *e)
{
	const char *at = strchr(e, '@');

	if (!at || at == e || !at[1] || strchr(at + 1, '@'))
		return false;
	for (const char *p = e; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return false;
	return strlen(e) <= 254;
}

static int invitation_parse(const char *path, invitation *v, dcr_err *err)
{
	static const char *const keys[] = {"format", "server", "fingerprint", "room",
	                                   "name",   "email",  "invited-by"};
	char **dst[] = {NULL,     &v->server, &v->fingerprint, &v->room,
	                &v->name, &v->email,  &v->invited_by};
	bool seen[7] = {false};
	kfile k;
	int rc;

	memset(v, 0, sizeof *v);
	rc = kfile_load(path, 2, true, "KEY VALUE", &k, err);
	if (rc == 0 && k.text.len == 0 && access(path, F_OK) != 0)
		rc = dcr_err_set(err, -ENOENT, "%s: no such invitation file", path);
	for (size_t i = 0; rc == 0 && i < k.n; i++) {
		const kline *l = &k.lines[i];
		size_t j = 0;
		while (j < 7 && strcmp(keys[j], l->f[0]) != 0)
			j++;
		if (j == 7) {
			rc =
			    dcr_err_set(err, DCR_EFORMAT,
			                "%s line %u: unknown key \"%s\" (an invitation has format, "
			                "server, fingerprint, room, name, email, invited-by)",
			                path, l->line, l->f[0]);
			break;
		}
		if (seen[j]) {
			rc = dcr_err_set(err, DCR_EFORMAT, "%s line %u: a second \"%s\" line", path,
			                 l->line, keys[j]);
			break;
		}
		seen[j] = true;
		if (j == 0) {
			if (strcmp(l->f[1], INVITE_FORMAT) != 0)
				rc = dcr_err_set(err, DCR_EFORMAT,
				                 "%s line %u: format \"%s\" is not %s", path,
				                 l->line, l->f[1], INVITE_FORMAT);
		} else if (j == 1) {
			char *h = NULL, *p = NULL;
			rc = cl_server_parse(l->f[1], &h, &p, err);
			free(h);
			free(p);
		} else if (j == 2) {
			uint8_t fp[DCR_SHA256_BYTES];
			rc = dcr_tls_fingerprint_parse(l->f[1], fp, err);
		} else if (j == 3) {
			uint8_t id[ES_ROOM_ID_BYTES];
			if (strlen(l->f[1]) != 32 || es_room_parse(l->f[1], id) != 0)
				rc = dcr_err_set(err, DCR_EFORMAT,
				                 "%s line %u: room \"%s\" is not a room id (32 hex "
				                 "digits)",
				                 path, l->line, l->f[1]);
		} else if (j == 5 && !email_plausible(l->f[1])) {
			rc = dcr_err_set(err, DCR_EFORMAT,
			                 "%s line %u: \"%s\" does not look like an email address",
			                 path, l->line, l->f[1]);
		}
		if (rc < 0) {
			if (j == 1 || j == 2)
				dcr_err_prefix(err, "%s line %u", path, l->line);
			break;
		}
		if (dst[j])
			*dst[j] = dcr_strdup(l->f[1]);
	}
	for (size_t j = 0; rc == 0 && j < 6; j++)
		if (!seen[j])
			rc = dcr_err_set(err, DCR_EFORMAT,
			                 "%s: no \"%s\" line (an invitation has format, server, "
			                 "fingerprint, room, name, email; see dcr room invite)",
			                 path, keys[j]);
	if (rc < 0)
		invitation_release(v);
	kfile_release(&k);
	return rc;
}

static const char invite_usage[] =
    "usage: dcr room invite ROOM EMAIL -o FILE\n"
    "\n"
    "Writes an invitation for EMAIL to FILE (\"-\": stdout): the server's address\n"
    "and key fingerprint as this connection saw them, the room's id and name.\n"
    "The invited participant runs `dcr join FILE`, then reaches the room with no\n"
    "--server (dcr mount ROOM DIR, dcr status ROOM, ...). Only a participant of\n"
    "the room may invite, over a TLS connection (--server HOST:PORT: the address\n"
    "written is the one given, so give one the invited participant can reach).\n"
    "The file holds no secret: your signature is not in it; the server's key is\n"
    "checked again when the invited participant connects.\n";

int cli_room_invite(int argc, char **argv)
{
	const char *outp = NULL;
	const cli_opt opts[] = {{"-o", &outp, NULL}, {"--out", &outp, NULL}, {NULL, NULL, NULL}};
	char *pos[2];
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES], me[32];
	char hex[ES_ROOM_HEX_BYTES];
	const rm_participant *mine = NULL;
	bool listed = false;
	rm_state st;
	dcr_buf text;
	int rc;

	CLI_PARSE("room invite", invite_usage, argc, argv, opts, pos, 2, 2, NULL);
	if (!outp) {
		fprintf(stderr, "dcr room invite: -o FILE is required\n%s", invite_usage);
		return CLI_EXIT_USAGE;
	}
	if (!email_plausible(pos[1])) {
		fprintf(stderr, "dcr room invite: \"%s\" does not look like an email address\n",
		        pos[1]);
		return CLI_EXIT_USAGE;
	}
	dcr_buf_init(&text);
	memset(&st, 0, sizeof st); /* rm_state_release of a zeroed state frees nothing */
	rc = cli_open_room(pos[0], &c, id, &err);
	if (rc)
		goto out;
	if (!cl_server_fingerprint(c)) {
		rc = dcr_err_set(&err, DCR_EINVALID,
		                 "an invitation names a TLS server and its key: connect with "
		                 "--server HOST:PORT (an address the invited participant can "
		                 "reach), not the unix socket");
		goto out;
	}
	rc = tl_replay(c, id, &st, &err);
	if (rc)
		goto out;
	dcr_key_public(cl_identity(c), me);
	if (!rm_may_read_room(&st, me) || !st.def) {
		rc = dcr_err_set(&err, DCR_EDENIED,
		                 "you are not a participant of room %s: only its participants "
		                 "invite",
		                 pos[0]);
		goto out;
	}
	mine = rm_def_participant(st.def, me);
	for (size_t i = 0; i < st.def->nparticipants; i++)
		if (strcmp(st.def->participants[i].email, pos[1]) == 0)
			listed = true;
	for (const char *p = st.def->name; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			rc = dcr_err_set(&err, DCR_EINVALID,
			                 "the room's name has a control character: invite by id");
			goto out;
		}
	es_room_format(id, hex);
	{
		char *s = dcr_asprintf(
		    "# dcr invitation (docs/cli.md \"Remote servers\"): run `dcr join FILE`\n"
		    "format %s\nserver %s\nfingerprint %s\nroom %s\nname %s\nemail %s\n"
		    "invited-by %s\n",
		    INVITE_FORMAT, cl_server_name(c), cl_server_fingerprint(c), hex, st.def->name,
		    pos[1], mine ? mine->email : "the room's creator");
		dcr_buf_append(&text, s, strlen(s));
		free(s);
	}
	if (strcmp(outp, "-") == 0) {
		fwrite(text.data, 1, text.len, stdout);
	} else {
		rc = dcr_write_file_atomic(outp, text.data, text.len, 0644, &err);
		if (rc)
			goto out;
		fprintf(stderr,
		        "dcr room invite: invitation for %s to %s (%s) at %s written to %s\n",
		        pos[1], st.def->name, hex, cl_server_name(c), outp);
	}
	if (!listed)
		fprintf(
		    stderr,
		    "dcr room invite: note: %s is not a participant of %s yet; the creator adds "
		    "their public line (dcr whoami) to the definition while it is a draft, or a "
		    "request does after publishing\n",
		    pos[1], st.def->name);
out:
	rm_state_release(&st);
	dcr_buf_release(&text);
	cl_close(c);
	if (rc)
		tl_fail("room invite", &err);
	return rc ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* ---- join ---------------------------------------------------------------------------- */

static const char join_usage[] =
    "usage: dcr join FILE\n"
    "\n"
    "Takes an invitation written by `dcr room invite`: connects to its server,\n"
    "demanding the key fingerprint the invitation names, records the server's\n"
    "key in known_servers and the room in the rooms file of the configuration\n"
    "directory ($DCR_CONFIG_DIR, else ~/.config/dcr), so that `dcr mount ROOM DIR`\n"
    "and `dcr ... ROOM` reach the room by its id or name without --server.\n"
    "A server already known under another key is refused (see known_servers\n"
    "in docs/cli.md).\n";

/* (Re)reads known_servers and the rooms file (made if missing) into known
 * and rooms, releasing what they held. */
static int join_files_load(kfile *known, kfile *rooms, dcr_err *err)
{
	int rc;

	kfile_release(known);
	kfile_release(rooms);
	dcr_buf_init(&known->text);
	dcr_buf_init(&rooms->text);
	rc = known_load(known, true, err);
	if (rc == 0)
		rc = rooms_load(rooms, true, err);
	return rc;
}

int cli_cmd_join(int argc, char **argv)
{
	char *pos[1];
	invitation v;
	kfile known, rooms;
	cl_conn *c = NULL;
	cl_room_info *list = NULL;
	size_t nlist = 0;
	dcr_err err = {0};
	dcr_key *key = NULL;
	cl_addr a;
	dcr_buf out;
	char *line = NULL;
	bool visible = false;
	const kline *kl;
	int rc, lock = -1;

	CLI_PARSE("join", join_usage, argc, argv, NULL, pos, 1, 1, NULL);
	memset(&known, 0, sizeof known);
	memset(&rooms, 0, sizeof rooms);
	dcr_buf_init(&known.text);
	dcr_buf_init(&rooms.text);
	dcr_buf_init(&out);
	rc = invitation_parse(pos[0], &v, &err);
	if (rc)
		goto out;
	/* The files first: a broken one refuses before anything is done. */
	rc = join_files_load(&known, &rooms, &err);
	if (rc)
		goto out;
	kl = known_find(&known, v.server);
	if (kl && !fp_equal(kl->f[1], v.fingerprint)) {
		rc = key_changed(v.server, &known, kl, v.fingerprint, &err);
		dcr_err_set(&err, DCR_EKEY,
		            "refused: the invitation names another key for %s than %s line %u",
		            v.server, known.path, kl->line);
		goto out;
	}
	rc = tl_load_identity(&key, &err);
	if (rc)
		goto out;
	memset(&a, 0, sizeof a);
	a.server = v.server;
	a.pin = v.fingerprint;
	rc = cl_connect_addr(&a, key, &c, &err);
	if (rc) {
		dcr_err_prefix(&err, "connecting to %s", v.server);
		goto out;
	}
	rc = cl_rooms(c, &list, &nlist, &err);
	if (rc)
		goto out;
	for (size_t i = 0; i < nlist; i++)
		if (strcmp(list[i].id, v.room) == 0)
			visible = true;
	/* Read again under the lock: another process may have recorded a
	 * line while this one was connecting. */
	lock = config_lock();
	rc = join_files_load(&known, &rooms, &err);
	if (rc)
		goto out;
	kl = known_find(&known, v.server);
	if (kl && !fp_equal(kl->f[1], v.fingerprint)) {
		rc = key_changed(v.server, &known, kl, v.fingerprint, &err);
		goto out;
	}
	if (!kl) {
		line = dcr_asprintf("%s %s", v.server, v.fingerprint);
		kfile_edit(&known, 0, line, &out);
		rc = kfile_store(known.path, &out, &err);
		if (rc)
			goto out;
		free(line);
		dcr_buf_reset(&out);
	}
	{
		unsigned at = 0;
		for (size_t i = 0; i < rooms.n; i++)
			if (strcmp(rooms.lines[i].f[0], v.room) == 0)
				at = rooms.lines[i].line;
		line = dcr_asprintf("%s %s %s", v.room, v.server, v.name);
		kfile_edit(&rooms, at, line, &out);
		rc = kfile_store(rooms.path, &out, &err);
		if (rc)
			goto out;
	}
	printf("joined %s (%s) at %s, key %s\n", v.name, v.room, v.server, v.fingerprint);
	if (!visible)
		fprintf(
		    stderr,
		    "dcr join: note: room %s is not visible to your key yet: it becomes so once "
		    "%s is a participant of its definition (send your public line, dcr whoami, "
		    "to %s)\n",
		    v.name, v.email, v.invited_by ? v.invited_by : "the room's creator");
out:
	config_unlock(lock);
	cl_rooms_free(list, nlist);
	cl_close(c);
	dcr_key_free(key);
	free(line);
	dcr_buf_release(&out);
	kfile_release(&known);
	kfile_release(&rooms);
	invitation_release(&v);
	if (rc)
		tl_fail("join", &err);
	return rc ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
