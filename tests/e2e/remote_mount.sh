# remote_mount.sh: the bank/insurer story through two mounts of a room on
# dcrd over TLS on 127.0.0.1, no unix socket anywhere: anna mounts with
# DCR_SERVER (after her first connection showed and remembered the key;
# --server is the same global option), ian with
# no server option at all after `dcr join` of anna's invitation. Both
# provision with cp, anna runs with echo > run and reads result.csv (equal
# to awk's), ian reads the audit log and is refused the result. Then dcrd
# restarts with a new TLS key: a mount of the joined room is refused with
# the changed-key message, and the running mount, which pinned the old
# key, refuses to reconnect to it (a write fails, status says why), while
# dcrd serves a client that pins the new key.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"
. "$DCR_SOURCE_DIR/tests/e2e/mount_lib.inc"
. "$DCR_SOURCE_DIR/tests/e2e/remote_lib.inc"

mount_require
e2e_setup
remote_start_daemon
story_identities
story_room_json "$T/room.json"
story_csvs
A=$T/anna
I=$T/ian
mkdir -p "$A" "$I"

id=$(rem anna dcr --server "$SERVER" room create "$T/room.json" 2>"$T/create.err") ||
	e2e_fail "room create: $(cat "$T/create.err")"
expect_contains "$T/create.err" "first connection to $SERVER: its key fingerprint is $FP"
rem anna dcr --server "$SERVER" room publish "$id" >/dev/null || e2e_fail "publish"

# anna: DCR_SERVER (--server works the same: a global option)
DCR_MOUNT_LOG="$T/mount-anna.log" rem anna env DCR_SERVER="$SERVER" dcr mount "$id" "$A" ||
	e2e_fail "dcr mount with DCR_SERVER: $(cat "$T/mount-anna.log" 2>/dev/null)"
expect_contains "$A/README" "You are anna@bank.example"
# ian: an invitation, dcr join, then the mount by name with no server
rem anna dcr --server "$SERVER" room invite "$id" ian@insurer.example -o "$T/ian.inv" 2>/dev/null ||
	e2e_fail "room invite"
expect_ok rem ian dcr join "$T/ian.inv"
expect_fail rem ian dcr mount bank-insurer-overlap "$I" --socket "$T/no.sock"
DCR_MOUNT_LOG="$T/mount-ian.log" rem ian dcr mount bank-insurer-overlap "$I" 2>"$T/mount-ian.err" ||
	e2e_fail "dcr mount of a joined room: $(cat "$T/mount-ian.err" "$T/mount-ian.log" 2>/dev/null)"
[ ! -s "$T/mount-ian.err" ] || e2e_fail "the joined server is not silent: $(cat "$T/mount-ian.err")"
expect_contains "$I/README" "You are ian@insurer.example"

# both provision with cp; anna runs and reads the result
cp "$T/bank.csv" "$A/datasets/bank_customers/" || e2e_fail "cp bank.csv over TLS"
expect_contains "$A/datasets/bank_customers/status" "rows: 200"
cp "$T/insurer.csv" "$I/datasets/insurer_customers/" || e2e_fail "cp insurer.csv over TLS"
expect_contains "$I/datasets/insurer_customers/status" "rows: 200"
cmp -s "$A/datasets/bank_customers/bank.csv" "$T/bank.csv" ||
	e2e_fail "the bank's file read back over TLS differs"
wait_for "$A/datasets/insurer_customers/status" "by: ian@insurer.example"
echo >"$A/computations/overlap/run" && cat "$A/computations/overlap/result.csv" >"$T/result.csv" ||
	e2e_fail "run and read overlap through the mount"
story_expected "$T/expected.csv"
tr -d '\r"' <"$T/result.csv" >"$T/result.norm"
cmp -s "$T/expected.csv" "$T/result.norm" ||
	e2e_fail "overlap through the mount differs: $(diff "$T/expected.csv" "$T/result.norm")"
wait_for "$I/computations/overlap/status" "state: done"
expect_eacces cat "$I/computations/overlap/result.csv"
wait_for "$I/audit.log" "retrieved the result of run"
expect_contains "$I/audit.log" "anna@bank.example provisioned bank_customers"
expect_contains "$I/audit.log" "ian@insurer.example provisioned insurer_customers"
n_events=$(ls "$A/events" | wc -l)
expect_eq "$(wc -l <"$I/audit.log")" "$n_events" "audit.log lines vs events/"
mount_stop "$I"

# a new TLS key: the joined mount is refused, the running mount does not
# follow the new key
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"
mv "$T/data/tls" "$T/tls.old"
OLD_FP=$FP
remote_start_daemon
expect_fail rem ian dcr mount bank-insurer-overlap "$I"
expect_stderr "THE KEY OF SERVER $SERVER HAS CHANGED" "$OLD_FP" "$FP" \
	"remove line 1 of $T/cfg-ian/known_servers"
mount_pid "$I" >/dev/null && e2e_fail "a refused mount left a process"
expect_fail sh -c "echo > '$A/computations/overlap/run'"
expect_contains "$A/status" "not the pinned $OLD_FP: refused, nothing was sent"
expect_ok rem ian dcr --server "$SERVER" --pin "$FP" status "$id"
expect_contains "$E2E_OUT" "events    $n_events"

mount_stop "$A"
mount_check_logs
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly (status $?)"
e2e_log "ok"
