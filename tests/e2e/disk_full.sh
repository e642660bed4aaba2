# disk_full.sh: dcrd on a full disk. The data directory is a small tmpfs
# that the test fills. Then an upload fails writing its blob, and an event
# fails in the LMDB commit (the daemon's path that rebuilds the room's state
# from the log after a failed append): each with an error that says why,
# nothing stored lost or changed, the room's state the same. Once space is
# freed the same commands succeed, the export verifies, and a restart sees
# the same room. Skipped (77) where a tmpfs cannot be mounted (not root);
# the mount part only runs where FUSE is available.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"
. "$DCR_SOURCE_DIR/tests/e2e/mount_lib.inc"

e2e_setup
mkdir "$T/data"
# e2e_cleanup unmounts everything under $T, this too.
mount -t tmpfs -o size=16m,mode=0700 tmpfs "$T/data" 2>/dev/null ||
	e2e_skip "cannot mount a tmpfs on $T/data (needs root)"
e2e_start_daemon

story_identities
story_room_json "$T/room.json"
story_csvs
ROOM=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"
expect_ok e2e_as anna dcr room publish "$ROOM"
expect_ok e2e_as anna dcr provision "$ROOM" bank_customers "$T/bank.csv"
DRAFT=$(e2e_as anna dcr room duplicate "$ROOM") || e2e_fail "room duplicate"
e2e_as anna dcr audit log "$ROOM" >"$T/log.before" || e2e_fail "audit log"
e2e_as anna dcr room show "$ROOM" --status >"$T/status.before" || e2e_fail "status"

# The provision's prepared table is built in the background: wait for it,
# so that its blob is not written between this listing and the fill.
i=0
until grep -q "prepared table bank_customers " "$T/dcrd.log"; do
	i=$((i + 1))
	[ "$i" -le 600 ] || e2e_fail "the prepared table of bank_customers was not built in 60 s"
	sleep 0.1
done
blobs_before=$(ls "$T/data/blobs" | sort)
# Fill the disk (dd stops at ENOSPC).
dd if=/dev/zero of="$T/data/fill" bs=64k 2>/dev/null
dd if=/dev/zero of="$T/data/fill2" bs=4k 2>/dev/null
[ "$(df -k --output=avail "$T/data" | tail -n 1 | tr -d ' ')" -eq 0 ] ||
	e2e_fail "the tmpfs did not fill: $(df -k "$T/data")"

# 1. An upload: its blob cannot be written.
expect_fail e2e_as ian dcr provision "$ROOM" insurer_customers "$T/insurer.csv"
expect_stderr "dcr provision:" "No space left on device"
expect_eq "$(ls "$T/data/blobs" | sort)" "$blobs_before" "blobs after a failed upload"
expect_eq "$(ls -A "$T/data/tmp")" "" "temporary files after a failed upload"
# ... and through the mount, cp fails and the dataset's status says why.
if [ -c /dev/fuse ] && command -v fusermount3 >/dev/null 2>&1; then
	mount_as ian "$ROOM" "$T/ian"
	expect_fail cp "$T/insurer.csv" "$T/ian/datasets/insurer_customers/"
	expect_contains "$T/ian/datasets/insurer_customers/status" "No space left on device"
	mount_stop "$T/ian"
	mount_check_logs
fi
# 2. Events: LMDB reuses its free pages first, so save a draft until an
# append needs a page the disk cannot give; that commit fails and the
# daemon rebuilds the room from the log.
n=0
while e2e_as anna dcr room save "$DRAFT" "$T/room.json" >"$T/save.out" 2>"$T/save.err"; do
	n=$((n + 1))
	[ $n -lt 2000 ] || e2e_fail "2000 saves on a full disk all succeeded"
done
grep -q "dcr room save: .*No space left on device" "$T/save.err" ||
	e2e_fail "save on a full disk: $(cat "$T/save.err")"
grep -q "append failed .*rebuilding from the log" "$T/dcrd.log" ||
	e2e_fail "no append failure in the daemon's log"
expect_ok e2e_as anna dcr room show "$DRAFT" --status
expect_contains "$E2E_OUT" "draft, $((n + 1)) events"
expect_fail e2e_as anna dcr room save "$DRAFT" "$T/room.json"
expect_stderr "No space left on device"
expect_fail e2e_as anna dcr deprovision "$ROOM" bank_customers
expect_stderr "dcr deprovision:" "No space left on device"
# Nothing changed, and reading still works.
e2e_as anna dcr audit log "$ROOM" >"$T/log.full" || e2e_fail "audit log on a full disk"
cmp -s "$T/log.before" "$T/log.full" || e2e_fail "the log changed on a full disk"
expect_ok e2e_as anna dcr room show "$ROOM" --status
expect_eq "$(cat "$E2E_OUT")" "$(cat "$T/status.before")" "status on a full disk"
expect_ok e2e_as ian dcr datasets
grep -q "insurer.csv" "$E2E_OUT" && e2e_fail "a failed upload is listed: $(cat "$E2E_OUT")"

# Space again: the same commands succeed, on the room as it was.
rm -f "$T/data/fill" "$T/data/fill2"
expect_ok e2e_as ian dcr provision "$ROOM" insurer_customers "$T/insurer.csv"
expect_ok e2e_as anna dcr run "$ROOM" overlap --wait --timeout 120
e2e_as anna dcr result "$ROOM" overlap >"$T/result.csv" || e2e_fail "result"
story_expected "$T/expected.csv"
tr -d '\r"' <"$T/result.csv" | cmp -s - "$T/expected.csv" ||
	e2e_fail "result differs: $(cat "$T/result.csv")"
expect_ok e2e_as anna dcr audit export "$ROOM" -o "$T/room.dcr"
expect_ok dcr audit verify "$T/room.dcr"
expect_contains "$E2E_OUT" "valid: room $ROOM"
e2e_as anna dcr room show "$ROOM" --status >"$T/status.after" || e2e_fail "status"

# A restart replays the same room.
e2e_stop_daemon || e2e_fail "daemon did not stop cleanly"
e2e_start_daemon
expect_ok e2e_as anna dcr room show "$ROOM" --status
expect_eq "$(cat "$E2E_OUT")" "$(cat "$T/status.after")" "status after a restart"
expect_ok e2e_as anna dcr room show "$DRAFT" --status
expect_contains "$E2E_OUT" "draft, $((n + 1)) events"
expect_ok e2e_as anna dcr room save "$DRAFT" "$T/room.json"
expect_ok e2e_as anna dcr room stop "$ROOM"
