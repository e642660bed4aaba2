# mount_story.sh: the bank/insurer story of DESIGN §1 through two mounts of
# the same room, with only cp, rsync, cat, echo and ls (the CLI only makes
# keys and creates the room). Checks: README in words, draft editing with
# the reason of a refusal in status, publish through ctl, both parties
# provision (cp and rsync), the analyst runs and reads the overlap (equal
# to an independent awk computation, privacy filter applied), the other
# party is refused the result and never sees the bank's rows, everyone
# reads audit.log, and changes appear in the other mount without remount.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"
. "$DCR_SOURCE_DIR/tests/e2e/mount_lib.inc"

mount_require
e2e_setup
e2e_start_daemon
story_identities
story_room_json "$T/room.json"
story_csvs

id=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"
A=$T/anna
I=$T/ian
mount_as anna "$id" "$A"
# ian names his key relative to the current directory.
mkdir -p "$I"
(cd "$T" && DCR_MOUNT_LOG="$T/mount-ian.log" DCR_IDENTITY=ian.pem dcr mount "$id" "$I") ||
	e2e_fail "dcr mount with a relative identity: $(cat "$T/mount-ian.log" 2>/dev/null)"
expect_fail e2e_as anna dcr mount "$id" "$A"
expect_stderr "already a mount point"

# The layout, and a README that says who you are and what you can do.
ls "$A" >"$T/ls.out" || e2e_fail "ls of the mount"
for f in README room.json status ctl audit.log events datasets computations requests dev; do
	grep -q -x -F "$f" "$T/ls.out" || e2e_fail "ls lacks $f: $(cat "$T/ls.out")"
done
expect_contains "$A/README" "You are anna@bank.example"
expect_contains "$A/README" "creator of the room"
expect_contains "$A/README" "data owner of dataset bank_customers"
expect_contains "$A/README" "echo > $A/computations/overlap/run"
expect_contains "$A/README" "requests/     proposals of new computations"
expect_contains "$A/README" "dev/          development runs"
expect_contains "$I/README" "data owner of dataset insurer_customers"
grep -q "analyst of" "$I/README" && e2e_fail "ian's README claims an analyst role"
expect_contains "$A/status" "status: draft"
cmp -s "$T/room.json" "$A/room.json" || e2e_fail "room.json differs from the created definition"
expect_contains "$A/datasets/bank_customers/schema.json" '"name": "email"'
expect_contains "$A/computations/overlap/query.sql" "JOIN insurer_customers"

# Draft editing: a broken definition makes cp fail and status says why; a
# good one is saved (one more event). Only the creator may write.
echo '{"format": "dcr.room/1", "name": ' >"$T/broken.json"
expect_fail cp "$T/broken.json" "$A/room.json"
expect_contains "$A/status" "last_error:"
expect_contains "$A/status" "room.json"
sed 's/Customer overlap between/Overlap of/' "$T/room.json" >"$T/room2.json"
cp "$T/room2.json" "$A/room.json" || e2e_fail "saving a good draft"
expect_contains "$A/room.json" "Overlap of"
expect_contains "$A/status" "events: 2"
expect_eacces cp "$T/room2.json" "$I/room.json"

# Publish through ctl: the creator only; unknown commands fail.
expect_eacces sh -c "echo publish > '$I/ctl'"
expect_fail sh -c "echo frobnicate > '$A/ctl'" # EINVAL (dash's echo says "I/O error")
expect_contains "$A/status" 'unknown command "frobnicate"'
echo test >"$A/ctl" || e2e_fail "echo test > ctl"
expect_contains "$A/test.out" "overlap"
echo publish >"$A/ctl" || e2e_fail "echo publish > ctl"
expect_contains "$A/status" "status: published"
wait_for "$I/status" "status: published"
expect_eacces sh -c "cat '$T/room2.json' > '$A/room.json'"

# Running before the data is there is refused; status says why.
expect_fail sh -c "echo > '$A/computations/overlap/run'"
expect_contains "$A/status" "last_error:"
expect_contains "$A/status" "not provisioned"

# Provisioning: cp by the bank, rsync by the insurer; nobody writes the
# other's dataset.
expect_eacces cp "$T/insurer.csv" "$A/datasets/insurer_customers/"
cp "$T/bank.csv" "$A/datasets/bank_customers/" || e2e_fail "cp bank.csv into the mount"
expect_contains "$A/datasets/bank_customers/status" "state: provisioned"
expect_contains "$A/datasets/bank_customers/status" "rows: 200"
ls "$A/datasets/bank_customers" | grep -q -x bank.csv || e2e_fail "bank.csv not listed for its owner"
rsync "$T/insurer.csv" "$I/datasets/insurer_customers/" || e2e_fail "rsync insurer.csv"
expect_contains "$I/datasets/insurer_customers/status" "file: insurer.csv"
ls -a "$I/datasets/insurer_customers" | grep -q '^\.insurer' && e2e_fail "rsync temp file left"

# The insurer sees that the bank provisioned, never the bank's rows or
# (unshared) statistics; the change arrives without remount.
wait_for "$I/datasets/bank_customers/status" "by: anna@bank.example"
ls "$I/datasets/bank_customers" >"$T/ls.out"
grep -q bank.csv "$T/ls.out" && e2e_fail "ian sees the bank's file"
expect_fail cat "$I/datasets/bank_customers/bank.csv"
expect_fail cat "$I/datasets/bank_customers/stats.json"
expect_contains "$A/datasets/bank_customers/stats.json" "200"
# Its owner reads the provisioned file back, byte for byte.
cmp -s "$A/datasets/bank_customers/bank.csv" "$T/bank.csv" ||
	e2e_fail "the bank's file read back from the mount differs"

# The analyst runs and reads the new result at once.
echo >"$A/computations/overlap/run" && cat "$A/computations/overlap/result.csv" >"$T/result.csv" ||
	e2e_fail "run and read overlap"
story_expected "$T/expected.csv"
tr -d '\r"' <"$T/result.csv" >"$T/result.norm" # CSV as RFC 4180 writes it
cmp -s "$T/expected.csv" "$T/result.norm" ||
	e2e_fail "overlap result differs: $(diff "$T/expected.csv" "$T/result.norm")"
expect_contains "$A/computations/overlap/status" "state: done"
expect_contains "$A/computations/overlap/status" "suppressed: $(story_expected_suppressed)"

# The insurer is refused the result and the run.
wait_for "$I/computations/overlap/status" "state: done"
expect_eacces cat "$I/computations/overlap/result.csv"
expect_eacces sh -c "echo > '$I/computations/overlap/run'"
[ -w "$I/computations/overlap/run" ] && e2e_fail "access(2) says ian may write run"
[ -w "$A/computations/overlap/run" ] || e2e_fail "access(2) says anna may not write run"
if grep -r -q -F "c000@mail.example" "$I" 2>/dev/null; then
	e2e_fail "a bank row is readable in the insurer's mount"
fi

# Everyone reads the audit log: one line per event, and the raw events.
wait_for "$I/audit.log" "retrieved the result of run"
n_events=$(ls "$A/events" | wc -l)
n_lines=$(wc -l <"$A/audit.log")
expect_eq "$n_lines" "$n_events" "audit.log lines vs events/"
expect_contains "$I/audit.log" "anna@bank.example"
expect_contains "$I/audit.log" "ian@insurer.example"
expect_contains "$A/status" "events: $n_events"
first=$(ls "$I/events" | head -n 1)
expect_eq "$first" "000000000000.event" "first event file"
[ -s "$I/events/$first" ] || e2e_fail "event file empty"

# Unmount: the mount processes go away (cleanly, leak free under ASan).
mount_stop "$A"
mount_stop "$I"
expect_fail dcr umount "$A"
mount_check_logs
e2e_log "ok"
