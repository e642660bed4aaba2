# dp_mount.sh: differentially private runs through the mount. The analyst
# runs a DP computation by writing its run file (the mount states the
# epsilon in the request), datasets/NAME/status shows the ledger replayed
# from the log, and once the budget is spent the next run write fails,
# the ledger message in the mount's status; the owner's mount shows the
# same ledger.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/mount_lib.inc"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"

mount_require
e2e_setup
e2e_start_daemon
story_identities
story_csvs

cat >"$T/room.json" <<JSON
{
  "format": "dcr.room/1",
  "name": "dp-mount",
  "participants": [
    {"email": "anna@bank.example", "key": "$ANNA_KEY", "owner_of": ["bank_customers"]},
    {"email": "ian@insurer.example", "key": "$IAN_KEY", "analyst_of": ["stats"]}
  ],
  "datasets": [
    {"name": "bank_customers", "epsilon_budget": "4",
     "columns": [{"name": "email", "type": "string", "nullable": false},
                 {"name": "age", "type": "integer"},
                 {"name": "city", "type": "string"},
                 {"name": "balance", "type": "float"}]}
  ],
  "computations": [
    {"name": "stats", "kind": "sql",
     "privacy": {"epsilon": "2", "bounds": {"age": [0, 120]}},
     "query": "SELECT COUNT(*) AS n, SUM(age) AS total_age FROM bank_customers"}
  ]
}
JSON
ROOM=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"
expect_ok e2e_as anna dcr room publish "$ROOM"
expect_ok e2e_as anna dcr provision "$ROOM" bank_customers "$T/bank.csv"

I="$T/ian"
A="$T/anna"
mount_as ian "$ROOM" "$I"
mount_as anna "$ROOM" "$A"
expect_contains "$I/datasets/bank_customers/status" "epsilon_budget: 4"
expect_contains "$I/datasets/bank_customers/status" "epsilon_spent: 0"
expect_contains "$I/datasets/bank_customers/status" "epsilon_left: 4"

for i in 1 2; do
	echo >"$I/computations/stats/run" || e2e_fail "run $i through the mount: $(cat "$I/status")"
	cat "$I/computations/stats/result.csv" >"$T/r$i.csv" || e2e_fail "result $i"
	head -n 1 "$T/r$i.csv" | tr -d '\r' | grep -q -x "n,total_age" ||
		e2e_fail "result header: $(cat "$T/r$i.csv")"
done
wait_for "$I/datasets/bank_customers/status" "epsilon_spent: 4"
expect_contains "$I/datasets/bank_customers/status" "epsilon_left: 0"
wait_for "$A/datasets/bank_customers/status" "epsilon_spent: 4"

# the budget is spent: the next run write fails with the ledger's message
expect_fail sh -c "echo > '$I/computations/stats/run'"
expect_contains "$I/status" "would spend epsilon 2 on dataset bank_customers, which has spent 4 of its budget 4 (0 left)"
expect_contains "$I/datasets/bank_customers/status" "epsilon_spent: 4"

mount_stop "$I"
mount_stop "$A"
mount_check_logs
e2e_log "ok"
