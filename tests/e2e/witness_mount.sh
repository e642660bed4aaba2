# witness_mount.sh: the mount keeps the host honest too (docs/security.md,
# "A lying host"; the CLI's cases are in witness.sh). A mount follows a
# room while the host grows it honestly; then the host shows another
# history of the room at the same socket (a second data directory forked
# from the first, same keys): the mount refuses it, answers EIO for the
# room's files (status says why), writes the refusal to its log, and keeps
# the evidence; a new mount of the room is refused at once.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"
. "$DCR_SOURCE_DIR/tests/e2e/mount_lib.inc"
. "$DCR_SOURCE_DIR/tests/e2e/witness_lib.inc"

mount_require
e2e_setup
story_identities
story_csvs
as_other() { DCR_CONFIG_DIR="$T/cfg-other" e2e_as anna "$@"; }

e2e_start_daemon
story_room_json "$T/room.json" witness-mount false
R=$(as_anna dcr room create "$T/room.json") || e2e_fail "create the room"
expect_ok as_anna dcr room publish "$R"
expect_ok e2e_as ian dcr provision "$R" insurer_customers "$T/insurer.csv"

# a second history from here: view B adds one event, view A another
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"
cp -a "$T/data" "$T/data.b"
serve "$T/data.b"
expect_ok as_other dcr provision "$R" bank_customers "$T/bank.csv"
serve "$T/data"

# ---- honest: the mount follows the room as it grows
mkdir -p "$T/m"
DCR_CONFIG_DIR="$T/cfg-ian" DCR_MOUNT_LOG="$T/mount-ian.log" e2e_as ian dcr mount "$R" "$T/m" ||
	e2e_fail "mount: $(cat "$T/mount-ian.log" 2>/dev/null)"
wait_for "$T/m/status" "events: 3"
expect_ok as_anna dcr provision "$R" bank_customers "$T/bank.csv"
wait_for "$T/m/status" "events: 4"
cat "$T/m/audit.log" >/dev/null || e2e_fail "audit.log of an honest host"
grep -q "dcr mount: room" "$T/mount-ian.log" 2>/dev/null &&
	e2e_fail "the mount refused an honest host: $(cat "$T/mount-ian.log")"

# ---- the host switches to the other history
serve "$T/data.b"
wait_for "$T/m/status" "host_refused: room $R: the host shows another log of the same size"
expect_fail cat "$T/m/audit.log"
expect_stderr "Input/output error"
expect_fail cat "$T/m/room.json"
expect_stderr "Input/output error"
expect_fail sh -c "echo run >'$T/m/ctl'"
wait_for "$T/mount-ian.log" "dcr mount: room $R: the host shows another log"
ev=$(ls "$T/cfg-ian/checkpoints/evidence/$R-"*.evidence) || e2e_fail "no evidence file"
expect_ok dcr audit witness --evidence "$ev"
expect_contains "$E2E_OUT" "valid: fork evidence against the host of room $R"
e2e_log "mount log: $(grep "dcr mount:" "$T/mount-ian.log")"

# ---- a new mount of the room is refused at once
mkdir -p "$T/m2"
expect_fail env DCR_CONFIG_DIR="$T/cfg-ian" DCR_MOUNT_LOG="$T/mount-ian2.log" \
	DCR_IDENTITY="$T/ian.pem" dcr mount "$R" "$T/m2"
expect_stderr "room $R: the host shows another log" "evidence"
# ... while a client that only saw this history mounts it
DCR_CONFIG_DIR="$T/cfg-other" DCR_MOUNT_LOG="$T/mount-other.log" e2e_as anna dcr mount "$R" "$T/m2" ||
	e2e_fail "mount of its own history: $(cat "$T/mount-other.log" 2>/dev/null)"
wait_for "$T/m2/status" "events: 4"
mount_stop "$T/m2"
mount_stop "$T/m"
mount_check_logs

echo "witness_mount: ok"
