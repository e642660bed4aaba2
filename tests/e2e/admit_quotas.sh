# admit_quotas.sh: the definition quotas of a key through the CLI
# (docs/daemon.md "Limits and quotas"): definition bytes stored per key
# (room.created and room.draft_saved) and rooms created per key, each
# refused before anything is appended with ELIMIT naming the quota and its
# dcrd option; another key is not affected; after a restart the usage is
# counted from the log. Also the dcrd options' own checks.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"

e2e_setup
story_identities
story_room_json "$T/r1.json" room-one
story_room_json "$T/r2.json" room-two
story_room_json "$T/r3.json" room-three
story_room_json "$T/r4.json" room-four
sed 's/"Customer overlap between a bank and an insurer"/"Customer overlap, second draft"/' \
	"$T/r1.json" >"$T/r1v2.json"
size=$(wc -c <"$T/r1.json")
[ "$size" -gt 1536 ] && [ "$size" -le 3072 ] || e2e_fail "the story definition has $size bytes"

# ---- options
expect_fail dcrd --data "$T/x" --max-definition-kb 0
expect_status 2
expect_stderr "--max-definition-kb: not a number from 1 to"
expect_fail dcrd --data "$T/x" --max-rooms-per-key many
expect_stderr "--max-rooms-per-key: not a number from 1 to"
expect_fail dcrd --data "$T/x" --max-check-cpu-s 100000
expect_stderr "--max-check-cpu-s: not a number from 1 to 86400"

# ---- definition bytes: 3 KiB, one story definition fits, two do not
e2e_start_daemon --max-definition-kb 3
R1=$(e2e_as anna dcr room create "$T/r1.json") || e2e_fail "create r1"
expect_fail e2e_as anna dcr room save "$R1" "$T/r1v2.json"
expect_stderr "quota: definitions stored by this key take $size bytes" \
	"--max-definition-kb 3" "ask its operator"
expect_fail e2e_as anna dcr room create "$T/r2.json"
expect_stderr "quota: definitions stored by this key"
# nothing was appended: the room is at one event, anna has one room
expect_ok e2e_as anna dcr room list
expect_eq "$(grep -c -E '^[0-9a-f]{32} ' "$E2E_OUT")" 1 "anna's rooms after refusals"
grep -q -E "^$R1 +room-one +draft +1\$" "$E2E_OUT" || e2e_fail "list: $(cat "$E2E_OUT")"
# the quota is anna's: ian stores his own
expect_ok e2e_as ian dcr room create "$T/r2.json"
expect_stop() { e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"; }
expect_stop

# ---- rooms per key: 2; anna's first room is counted from the log
e2e_start_daemon --max-rooms-per-key 2
expect_ok e2e_as anna dcr room save "$R1" "$T/r1v2.json"
R3=$(e2e_as anna dcr room create "$T/r3.json") || e2e_fail "create r3"
expect_fail e2e_as anna dcr room create "$T/r4.json"
expect_stderr "quota: this key created 2 rooms" "--max-rooms-per-key 2"
expect_ok e2e_as anna dcr room list
expect_eq "$(grep -c -E '^[0-9a-f]{32} ' "$E2E_OUT")" 3 "rooms anna is in at the room quota (two hers, one ian's)"
expect_ok e2e_as ian dcr room create "$T/r4.json"
expect_stop

# ---- a restart counts both rooms from the log
e2e_start_daemon --max-rooms-per-key 3
expect_ok e2e_as anna dcr room create "$T/r4.json"
expect_fail e2e_as anna dcr room duplicate "$R3"
expect_stderr "quota: this key created 3 rooms" "--max-rooms-per-key 3"
expect_stop
grep -q "admission checks: " "$T/dcrd.log" || e2e_fail "no admission figures in the log"
e2e_log "ok"
