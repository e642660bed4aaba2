# witness.sh: clients that keep the host honest (docs/security.md, "A
# lying host"). Each participant's client remembers the last checkpoint
# the host signed for a room (DCR_CONFIG_DIR/checkpoints) and refuses a
# host whose log does not extend it, keeping both signed checkpoints in an
# evidence file. A real dcrd lies in four ways, each beside the honest case:
#   honest   the log grows: every command passes silently, and two
#            participants' `dcr audit witness` agree
#   (a)      truncation: the host restores an old backup (`dcr admin
#            backup`, more events, `dcrd restore`): the clients that saw
#            more refuse ("shorter"); one that never saw more cannot tell
#   key      the host re-signs with a new daemon key: refused ("key")
#   (c)      two views: two data directories forked from one (same keys),
#            served in turn at one socket; each participant adds an event to
#            its own view and accepts it, and refuses the other ("fork");
#            their `dcr audit witness` differ
#   (b)      an old daemon-signed event rewritten and everything re-signed
#            with the daemon's key (tests/tools/lying_host.c), then one more
#            event: a fresh client finds the log valid, the client that
#            remembers the original refuses ("inconsistent": the host's
#            consistency proof does not verify)
# Every refusal names the room, both sizes and both roots, and its evidence
# file checks with `dcr audit witness --evidence`.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"
. "$DCR_SOURCE_DIR/tests/e2e/witness_lib.inc"

LIAR="$DCR_BUILD_DIR/tests/dcr_lying_host"
[ -x "$LIAR" ] || e2e_fail "$LIAR not built"

e2e_setup
story_identities
story_csvs
# one configuration directory (remembered checkpoints) per participant
# (as_anna: witness_lib.inc)
as_ian() { DCR_CONFIG_DIR="$T/cfg-ian" e2e_as ian "$@"; }
as_new() {
	_c=$1
	shift
	DCR_CONFIG_DIR="$T/cfg-new.$_c" e2e_as anna "$@"
}

# witness_field WHO ROOM FIELD: size or root of WHO's remembered checkpoint
witness_field() {
	"as_$1" dcr audit witness "$2" | sed -n "s/^$3: *//p"
}

# expect_refused KIND SIZE_OLD SIZE_NEW: the last expect_fail was a witness
# refusal of room $R naming both sizes, with an evidence file that checks
expect_refused() {
	expect_stderr "room $R: the host" "refused" "$2 events" "now $3" "evidence/$R-"
	_ev=$(sed -n 's/.* are in \(.*\.evidence\).*/\1/p' "$E2E_ERR" | head -n 1)
	[ -s "$_ev" ] || e2e_fail "no evidence file named in: $(cat "$E2E_ERR")"
	dcr audit witness --evidence "$_ev" >"$T/ev.out" 2>&1 ||
		e2e_fail "evidence $_ev does not check: $(cat "$T/ev.out")"
	expect_contains "$T/ev.out" "valid: $1 evidence against the host of room $R"
	e2e_log "refused ($1): $(cat "$E2E_ERR")"
}

e2e_start_daemon
story_room_json "$T/room.json" witness-room false
R=$(as_anna dcr room create "$T/room.json") || e2e_fail "create the room"
story_room_json "$T/roomk.json" key-room false
K=$(as_anna dcr room create "$T/roomk.json") || e2e_fail "create the key room"

# ---- honest: the log grows, every client follows silently
expect_ok as_anna dcr room publish "$R"
[ ! -s "$E2E_ERR" ] || e2e_fail "publish printed: $(cat "$E2E_ERR")"
expect_ok as_ian dcr status "$R"
expect_ok as_anna dcr status "$R"
s1=$(witness_field anna "$R" size)
expect_eq "$s1" 2 "anna's remembered size after publish"
expect_ok as_ian dcr provision "$R" insurer_customers "$T/insurer.csv"
expect_ok as_anna dcr status "$R"
[ ! -s "$E2E_ERR" ] || e2e_fail "status printed on stderr: $(cat "$E2E_ERR")"
expect_eq "$(witness_field anna "$R" size)" 3 "anna's remembered size after a provision"
# the two participants' witnesses agree, also in the machine-readable form
expect_eq "$(witness_field ian "$R" root)" "$(witness_field anna "$R" root)" "roots of anna and ian"
as_anna dcr audit witness "$R" --json >"$T/w.json" || e2e_fail "witness --json"
python3 - "$T/w.json" "$R" <<'EOF' || e2e_fail "witness --json: $(cat "$T/w.json")"
import json, sys
w = json.load(open(sys.argv[1]))
assert w["room"] == sys.argv[2] and w["size"] == 3 and len(w["root"]) == 64, w
assert w["server"].startswith("unix:/") and w["daemon_key"].startswith("ed25519:"), w
assert len(w["signature"]) == 128 and w["file"].endswith(sys.argv[2]), w
EOF
# the remembered checkpoint is a checkpoint file for audit verify
expect_ok as_anna dcr audit witness "$R" -o "$T/w3.cp"
expect_ok as_anna dcr audit export "$R" -o "$T/x3.export"
expect_ok dcr audit verify "$T/x3.export" --checkpoint "$T/w3.cp"
expect_ok as_anna dcr status "$K"
expect_ok as_anna dcr audit witness --list
expect_contains "$E2E_OUT" "$K"
expect_contains "$E2E_OUT" "$R"
# concurrent clients in one configuration directory: the remembered
# checkpoint never regresses and stays readable
conc=
for i in 1 2 3 4 5 6; do
	as_anna dcr status "$R" >/dev/null 2>"$T/conc.$i.err" &
	conc="$conc $!"
done
E2E_PIDS="$E2E_PIDS $conc"
expect_ok as_ian dcr provision "$R" insurer_customers "$T/insurer.csv"
for p in $conc; do
	wait "$p" || e2e_fail "a concurrent status failed"
done
for i in 1 2 3 4 5 6; do
	[ ! -s "$T/conc.$i.err" ] || e2e_fail "concurrent status $i: $(cat "$T/conc.$i.err")"
done
expect_ok as_anna dcr status "$R"
expect_eq "$(witness_field anna "$R" size)" 4 "anna's size after concurrent clients"

# ---- (a) truncation: an old backup restored
expect_ok dcr admin backup "$T/backup" --with-keys
expect_ok as_new 2 dcr status "$R" # this client last looks at 4 events
expect_ok as_anna dcr provision "$R" bank_customers "$T/bank.csv"
expect_ok as_ian dcr provision "$R" insurer_customers "$T/insurer.csv"
expect_ok as_anna dcr status "$R" # anna saw 6
root6=$(witness_field anna "$R" root)
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"
mv "$T/data" "$T/data.orig"
expect_ok dcrd restore --data "$T/data" "$T/backup"
serve "$T/data"
expect_fail as_anna dcr status "$R"
expect_refused shorter 6 4
expect_stderr "$root6"
# the evidence is kept once, and every later command refuses too
expect_fail as_anna dcr room show "$R"
expect_refused shorter 6 4
[ "$(ls "$T/cfg-anna/checkpoints/evidence" | wc -l)" -eq 1 ] || e2e_fail "evidence written twice"
# a client that never saw the longer log cannot tell (docs/security.md)
expect_ok as_new 2 dcr status "$R"
expect_fail as_ian dcr status "$R"
expect_refused shorter 6 4
# the remembered checkpoint did not move
expect_fail as_anna dcr audit witness "$R"
expect_contains "$E2E_OUT" "$root6"
# the original host again: consistent with what anna remembers
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"
rm -rf "$T/data"
mv "$T/data.orig" "$T/data"
serve "$T/data"
expect_ok as_anna dcr status "$R"
expect_ok as_ian dcr status "$R"

# ---- key: the host re-signs everything with a new daemon key
expect_ok as_anna dcr status "$K"
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"
cp -a "$T/data" "$T/data.key"
"$LIAR" resign "$T/data.key" >"$T/liar.out" 2>&1 || e2e_fail "resign: $(cat "$T/liar.out")"
serve "$T/data.key"
R_SAVED=$R
R=$K
expect_fail as_anna dcr status "$K"
expect_stderr "room $K: the host signs with daemon key" "--forget"
_ev=$(sed -n 's/.* are in \(.*\.evidence\).*/\1/p' "$E2E_ERR" | head -n 1)
expect_ok dcr audit witness --evidence "$_ev"
expect_contains "$E2E_OUT" "valid: key evidence"
# --forget: the participant accepts the new key after checking it
expect_ok as_anna dcr audit witness "$K" --forget
expect_ok as_anna dcr status "$K"
R=$R_SAVED
serve "$T/data"
rm -rf "$T/data.key"

# ---- (c) two views of one room at one socket
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"
cp -a "$T/data" "$T/data.b"
serve "$T/data"
expect_ok as_anna dcr provision "$R" bank_customers "$T/bank.csv"
expect_ok as_anna dcr status "$R"
serve "$T/data.b"
expect_ok as_ian dcr provision "$R" insurer_customers "$T/insurer.csv"
expect_ok as_ian dcr status "$R"
[ ! -s "$E2E_ERR" ] || e2e_fail "ian's own view printed: $(cat "$E2E_ERR")"
expect_fail as_anna dcr status "$R"
expect_refused fork 7 7
expect_contains "$T/ev.out" "proof on its own"
# a forged evidence file (one byte of a root changed) does not check
python3 - "$_ev" "$T/forged.evidence" <<'EOF2' || e2e_fail "could not forge the evidence"
import sys
b = bytearray(open(sys.argv[1], "rb").read())
i = b.find(b"root") + 6  # into the first checkpoint's root
b[i] ^= 1
open(sys.argv[2], "wb").write(b)
EOF2
expect_fail dcr audit witness --evidence "$T/forged.evidence"
expect_contains "$E2E_OUT" "invalid:"
serve "$T/data"
expect_ok as_anna dcr status "$R"
expect_fail as_ian dcr status "$R"
expect_refused fork 7 7
# their witnesses differ: what they would compare among themselves
as_anna dcr audit witness --list >"$T/wa" || e2e_fail "anna's witness list"
as_ian dcr audit witness --list >"$T/wi" || e2e_fail "ian's witness list"
ra=$(awk -v r="$R" '$1 == "room:" { on = ($2 == r) } on && $1 == "root:" { print $2 }' "$T/wa")
ri=$(awk -v r="$R" '$1 == "room:" { on = ($2 == r) } on && $1 == "root:" { print $2 }' "$T/wi")
[ -n "$ra" ] && [ -n "$ri" ] && [ "$ra" != "$ri" ] ||
	e2e_fail "the two views' witnesses should differ: anna $ra, ian $ri"
rm -rf "$T/data.b"

# ---- (b) an old daemon-signed event rewritten, everything re-signed
expect_ok as_ian dcr audit witness "$R" --forget # ian follows anna's view again
expect_ok as_ian dcr provision "$R" insurer_customers "$T/insurer.csv"
expect_ok as_anna dcr run "$R" overlap --wait --timeout 120
expect_ok as_anna dcr status "$R"
seq=$(($(witness_field anna "$R" size) - 1)) # the run's outcome, signed by dcrd
as_anna dcr audit log "$R" | sed -n "$((seq + 1))p" >"$T/outcome"
expect_contains "$T/outcome" "dcrd"
# more events after it: the rewritten one is an old event
expect_ok as_ian dcr provision "$R" insurer_customers "$T/insurer.csv"
expect_ok as_anna dcr status "$R"
n=$(witness_field anna "$R" size)
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"
"$LIAR" rewrite "$T/data" "$R" "$seq" >"$T/liar.out" 2>&1 || e2e_fail "rewrite: $(cat "$T/liar.out")"
e2e_log "$(cat "$T/liar.out")"
serve "$T/data"
# a client that never saw the room finds the rewritten log valid
expect_ok as_new 1 dcr audit export "$R" -o "$T/rewritten.export"
expect_ok dcr audit verify "$T/rewritten.export"
expect_ok as_new 1 dcr provision "$R" bank_customers "$T/bank.csv"
expect_fail as_anna dcr status "$R"
expect_refused inconsistent "$n" "$((n + 1))"
expect_stderr "rewrote the log it signed before"
# the original checkpoint against the rewritten export: not an extension
expect_ok as_anna dcr audit witness --list
as_anna dcr audit witness "$R" -o "$T/orig.cp" >/dev/null 2>&1
expect_fail dcr audit verify "$T/rewritten.export" --checkpoint "$T/orig.cp"

echo "witness: ok"
