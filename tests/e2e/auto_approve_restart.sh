# auto_approve_restart.sh: automatic approvals that fell due while dcrd
# could not record them are recorded when dcrd starts (docs/rules.md
# "Auto-approval"). The bank's policy approves sql requests with groups of
# at least 10 for ian. dcrd runs with --hold-auto-approvals (it records
# none): a request within the policy stays pending, also across a restart
# that still holds them. Started without it, dcrd records the bank's
# approval before it listens, which merges the request (the bank is its
# only affected owner); a request outside the policy (an analyst the
# policy does not list) stays pending. Both verifiers accept the export.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"

e2e_setup
e2e_start_daemon --hold-auto-approvals
story_identities
story_room_json "$T/room.json"
sed 's/"share_statistics": false,/"share_statistics": false, "auto_approve": {"kinds": ["sql"], "privacy_min_rows_aggregated_at_least": 10, "analysts": ["ian@insurer.example"]},/' \
	"$T/room.json" >"$T/policy.json"
grep -q auto_approve "$T/policy.json" || e2e_fail "the room has no policy"
ROOM=$(e2e_as anna dcr room create "$T/policy.json") || e2e_fail "room create"
expect_ok e2e_as anna dcr room publish "$ROOM"

cat >"$T/in.json" <<'JSON'
{"title": "Bank customers by city",
 "computations": [
   {"name": "bank_by_city", "kind": "sql", "privacy": {"min_rows_aggregated": 10},
    "query": "SELECT city, COUNT(*) AS n FROM bank_customers GROUP BY city ORDER BY city",
    "analysts": ["ian@insurer.example"]}]}
JSON
sed 's/"ian@insurer.example"/"anna@bank.example"/; s/bank_by_city/for_anna/' "$T/in.json" \
	>"$T/out.json"
QIN=$(e2e_as ian dcr request submit "$ROOM" "$T/in.json" 2>/dev/null) || e2e_fail "submit in"
QOUT=$(e2e_as ian dcr request submit "$ROOM" "$T/out.json" 2>/dev/null) || e2e_fail "submit out"
expect_ok e2e_as ian dcr request show "$ROOM" "$QIN"
expect_contains "$E2E_OUT" "request $QIN: open"
expect_contains "$E2E_OUT" "  anna@bank.example: pending"

# still held across a restart that holds them
expect_ok e2e_stop_daemon
e2e_start_daemon --hold-auto-approvals
expect_ok e2e_as ian dcr request show "$ROOM" "$QIN"
expect_contains "$E2E_OUT" "  anna@bank.example: pending"
grep -q "auto_approve policy" "$T/dcrd.log" && e2e_fail "an approval was recorded while held"

# recorded at start
expect_ok e2e_stop_daemon
e2e_start_daemon
expect_contains "$T/dcrd.log" "request ${QIN%????????????????????????} approved by an owner's auto_approve policy"
expect_ok e2e_as ian dcr request show "$ROOM" "$QIN"
expect_contains "$E2E_OUT" "request $QIN: merged"
expect_contains "$E2E_OUT" "  anna@bank.example: approved automatically, by the owner's auto_approve policy"
expect_ok e2e_as ian dcr request show "$ROOM" "$QOUT"
expect_contains "$E2E_OUT" "request $QOUT: open"
expect_contains "$E2E_OUT" "  anna@bank.example: pending"
expect_ok e2e_as anna dcr audit export "$ROOM" -o "$T/room.export"
expect_verifiers_agree "$T/room.export" >/dev/null
# once recorded, a further start records nothing more
n=$(grep -c "auto_approve policy" "$T/dcrd.log")
expect_ok e2e_stop_daemon
e2e_start_daemon
expect_eq "$(grep -c "auto_approve policy" "$T/dcrd.log")" "$n" "approvals recorded at the second start"
expect_ok e2e_stop_daemon
echo "auto_approve_restart: ok"
