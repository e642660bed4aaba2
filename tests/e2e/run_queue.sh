# run_queue.sh: the per-room cap on queued runs through the CLI (issue 14,
# attack 4). dcrd runs with --max-queued-runs 2: anna's two runs of a
# query that computes for minutes are accepted (one running, one queued,
# as `dcr status` shows), her third `dcr run` in the same room is refused
# before anything is appended, with a message naming the limit and the
# option, and the room's log holds no third run.requested; ian's run in
# his own room is accepted and completes meanwhile (another room is not
# affected by this room's cap, and finds a worker). A clean shutdown
# cancels the running query.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"

e2e_setup
e2e_start_daemon --job-workers 2 --max-queued-runs 2
story_identities

room_json() { # FILE NAME KEY
	cat >"$1" <<JSON
{
  "format": "dcr.room/1",
  "name": "$2",
  "settings": {"require_provisioned": false},
  "participants": [
    {"email": "p@bank.example", "key": "$3",
     "owner_of": ["bank"], "analyst_of": ["slow", "quick"]}
  ],
  "datasets": [
    {"name": "bank", "kind": "table",
     "columns": [{"name": "email", "type": "string"},
                 {"name": "age", "type": "integer"}]}
  ],
  "computations": [
    {"name": "slow", "kind": "sql",
     "query": "SELECT a.age, COUNT(*) AS n FROM bank a JOIN bank b ON a.age <> b.age JOIN bank c ON c.age <> b.age GROUP BY a.age"},
    {"name": "quick", "kind": "sql",
     "query": "SELECT age, COUNT(*) AS n FROM bank GROUP BY age"}
  ]
}
JSON
}

{
	echo "email,age"
	i=0
	while [ $i -lt 3000 ]; do
		echo "u$i@x.org,$((i % 90))"
		i=$((i + 1))
	done
} >"$T/bank.csv"

room_json "$T/a.json" attacker "$ANNA_KEY"
room_json "$T/v.json" victim "$IAN_KEY"
RA=$(e2e_as anna dcr room create "$T/a.json") || e2e_fail "room create"
expect_ok e2e_as anna dcr room publish "$RA"
expect_ok e2e_as anna dcr provision "$RA" bank "$T/bank.csv"
RV=$(e2e_as ian dcr room create "$T/v.json") || e2e_fail "room create"
expect_ok e2e_as ian dcr room publish "$RV"
expect_ok e2e_as ian dcr provision "$RV" bank "$T/bank.csv"

expect_ok e2e_as anna dcr run "$RA" slow
expect_ok e2e_as anna dcr run "$RA" slow
N_BEFORE=$(e2e_as anna dcr audit log "$RA" | grep -c 'requested run')
expect_fail e2e_as anna dcr run "$RA" slow
expect_stderr "this room has 2 runs queued or running" "dcrd --max-queued-runs 2"
N_AFTER=$(e2e_as anna dcr audit log "$RA" | grep -c 'requested run')
expect_eq "$N_AFTER" "$N_BEFORE" "run.requested events after the refusal"
expect_eq "$N_AFTER" 2 "run.requested events"
expect_ok e2e_as anna dcr status "$RA" slow
grep -q -E 'state +(queued|running)' "$E2E_OUT" || e2e_fail "slow is not queued or running: $(cat "$E2E_OUT")"

# another room: accepted, and it finds the second worker
expect_ok e2e_as ian dcr run "$RV" quick --wait --timeout 120
expect_ok e2e_as ian dcr status "$RV" quick
expect_contains "$E2E_OUT" "done"

e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"
grep -q "cancelled 1 running computations" "$T/dcrd.log" || e2e_fail "the slow run was not cancelled at shutdown"
e2e_log "ok"
