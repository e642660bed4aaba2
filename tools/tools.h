/* tools.h: the pieces of the dcr command-line tool shared between its
 * files. tools/dcr.c holds main() and dispatches `dcr <command>`;
 * each command family lives in its own file:
 *   tools/dcr.c      main, keygen, whoami, room, provision, run, ... (CLI)
 *   tools/audit.c    dcr audit log|export|verify|replay|proof|verify-proof
 *   tools/mount.c    dcr mount / dcr umount (uses fs/)
 * Every command prints usage on --help and exits 0; on error it prints
 * "dcr <command>: <message>" to stderr and exits 1 (2 for usage errors). */
#ifndef DCR_TOOLS_H
#define DCR_TOOLS_H

#include "../base/base.h"
#include "../proto/proto.h"
#include "../proto/witness.h"

int cmd_audit(int argc, char **argv); /* argv[0] == "audit" */
int cmd_mount(int argc, char **argv); /* argv[0] == "mount" */
int cmd_umount(int argc, char **argv);

/* Identity path: --identity, else $DCR_IDENTITY, else
 * ~/.config/dcr/identity.pem. main() takes the global options --identity
 * and --socket out of argv (anywhere before "--") before dispatching, so
 * these helpers see them in every command. */
const char *tl_identity_path(void);
int tl_load_identity(dcr_key **out, dcr_err *err);
/* Socket path: --socket, else $DCR_SOCKET, else NULL. */
const char *tl_socket_path(void);
/* Where a command connects (docs/cli.md "Global options"): --socket or
 * --server, else $DCR_SOCKET or $DCR_SERVER (both set: an error), else the
 * server of the room ROOM (an id or a name; NULL: the one server of every
 * joined room) recorded by dcr join. A server is checked with --pin /
 * $DCR_PIN and known_servers (tl_known_check). *owned (free it) holds the
 * strings a points to that are not the options'. */
int tl_addr(const char *room, cl_addr *a, char **owned, dcr_err *err);
/* Connects to tl_addr(room) with the current identity (tl_connect:
 * room NULL). */
int tl_connect_room(const char *room, cl_conn **out, dcr_err *err);
/* cl_check_fn over known_servers (tools/cli_remote.c); ctx is the --pin
 * in force (already compared by cl_connect_addr) or NULL. */
int tl_known_check(void *ctx, const char *server, const char *fingerprint, dcr_err *err);
/* The server recorded by dcr join for room (id or name; NULL: any), or
 * *server NULL when none; an error when several servers match. */
int tl_joined_server(const char *room, char **server, dcr_err *err);
/* Connects with the current identity. On failure returns non-zero and
 * fills err without printing (call tl_fail). The identity key is loaded
 * once and shared by every connection of the process; main() frees it. */
int tl_connect(cl_conn **out, dcr_err *err);
/* Fetches every event of room, up to the daemon's latest checkpoint and
 * through the witness (proto/witness.h: the checkpoint checked against the
 * one remembered, the events against its root; DCR_EINTEGRITY refuses a
 * lying host), and folds them with rm_replay_step (signature check, then
 * rm_apply) into st, initialised with the connection's daemon key. st is
 * initialised even on failure: always rm_state_release it. */
struct rm_state;
int tl_replay(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], struct rm_state *st,
	      dcr_err *err);
/* Prints "dcr <cmd>: <msg>" to stderr (without rm_apply's leading
 * "seq N (type): "). */
void tl_fail(const char *cmd, const dcr_err *err);

#endif
