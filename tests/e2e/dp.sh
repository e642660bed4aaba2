# dp.sh: differentially private runs through the CLI against a real dcrd.
# A room whose bank_customers has an epsilon budget of 6.25 and a DP
# computation spending 2 per run (COUNT and AVG of a bounded balance):
# after a failing DP run of 0.25 (whose analyst gets the error class, not
# the message quoting a value), three runs spend the budget exactly, the fourth is refused with the
# ledger message (dataset, budget, spent, asked); `dcr status` and the
# audit line show the ledger; `dcr audit export` + `dcr audit verify`
# replay it to the same remaining budget, and so does the independent
# verifier written from the docs (audit_rules.py). The released values differ from
# run to run (fresh CSPRNG noise) and stay near the true values (loose
# bound: 10 noise scales, exceeded with probability below 1e-4). A non-DP computation may not read the budgeted
# dataset (refused when the room is created).
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"

e2e_setup
e2e_start_daemon
story_identities
story_csvs

room_json() { # FILE EXTRA_COMPUTATION
	cat >"$1" <<JSON
{
  "format": "dcr.room/1",
  "name": "dp",
  "participants": [
    {"email": "anna@bank.example", "key": "$ANNA_KEY", "owner_of": ["bank_customers"]},
    {"email": "ian@insurer.example", "key": "$IAN_KEY", "analyst_of": ["stats", "leak"]}
  ],
  "datasets": [
    {"name": "bank_customers", "epsilon_budget": "6.25",
     "columns": [{"name": "email", "type": "string", "nullable": false},
                 {"name": "age", "type": "integer"},
                 {"name": "city", "type": "string"},
                 {"name": "balance", "type": "float"}]}
  ],
  "computations": [
    {"name": "stats", "kind": "sql",
     "privacy": {"epsilon": "2", "bounds": {"balance": ["0", "10000.00"]}},
     "query": "SELECT COUNT(*) AS n, AVG(balance) AS avg_balance FROM bank_customers WHERE city <> 'Bonn'"}$2
  ]
}
JSON
}

# a computation without privacy.epsilon may not read a budgeted dataset
room_json "$T/bad.json" ',
    {"name": "leak", "kind": "sql", "query": "SELECT COUNT(*) AS n FROM bank_customers"}'
expect_fail e2e_as anna dcr room create "$T/bad.json"
expect_stderr "computations[1] (\"leak\"): reads dataset bank_customers" "only computations with privacy.epsilon may read it"

LEAK_Q="SELECT COUNT(*) AS n FROM bank_customers WHERE json_extract('{}', email) IS NULL"
room_json "$T/room.json" ",
    {\"name\": \"leak\", \"kind\": \"sql\", \"privacy\": {\"epsilon\": \"0.25\"}, \"query\": \"$LEAK_Q\"}"
ROOM=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"
expect_ok e2e_as anna dcr room publish "$ROOM"
expect_ok e2e_as anna dcr provision "$ROOM" bank_customers "$T/bank.csv"
expect_ok e2e_as ian dcr status "$ROOM"
expect_contains "$E2E_OUT" "epsilon budget 6.25: 0 spent, 6.25 left"

# the true values, computed independently from the CSV: rows outside Bonn
# and the mean of their balance (all within the bounds)
TRUE_N=$(awk -F, 'NR > 1 && $3 != "Bonn" { n++ } END { print n }' "$T/bank.csv")
TRUE_AVG=$(awk -F, 'NR > 1 && $3 != "Bonn" { s += $4; n++ } END { printf "%.4f", s / n }' "$T/bank.csv")

# a DP run that fails on a value (a JSON path error quotes it) spends its
# epsilon, and its analyst gets the error class only, never the message
expect_fail e2e_as ian dcr run "$ROOM" leak --wait --timeout 120
expect_ok e2e_as ian dcr status "$ROOM" leak
expect_contains "$E2E_OUT" "state        failed"
expect_contains "$E2E_OUT" "sql error: json path"
if grep -q "mail.example" "$E2E_OUT" "$E2E_ERR" "$T/last.err"; then
	e2e_fail "a DP analyst saw a value in an error: $(cat "$E2E_OUT")"
fi
expect_ok e2e_as ian dcr status "$ROOM"
expect_contains "$E2E_OUT" "epsilon budget 6.25: 0.25 spent, 6 left"

# three runs of 2 spend the rest of the budget exactly
for i in 1 2 3; do
	expect_ok e2e_as ian dcr run "$ROOM" stats --wait --timeout 120
	expect_ok e2e_as ian dcr result "$ROOM" stats -o "$T/r$i.csv"
	head -n 1 "$T/r$i.csv" | tr -d '\r' | grep -q -x "n,avg_balance" ||
		e2e_fail "result header: $(cat "$T/r$i.csv")"
	[ "$(wc -l <"$T/r$i.csv")" -eq 2 ] || e2e_fail "one row expected: $(cat "$T/r$i.csv")"
	# epsilon 2 over three measurements (the count, the sum and count of
	# the average): count noise scale 3/2, sum noise scale 10000*3/2 =
	# 15000; 10 scales each bound the count and, through them, the average
	tail -n 1 "$T/r$i.csv" | tr -d '\r' | awk -F, -v n="$TRUE_N" -v a="$TRUE_AVG" '
		{ dn = $1 - n; da = $2 - a; if (dn < 0) dn = -dn; if (da < 0) da = -da;
		  if (dn > 15 || da > (150000 + 10000 * 15) / (n - 15) || $2 < 0 || $2 > 10000) {
			print "too far: " $0 " vs " n ", " a; exit 1 } }' ||
		e2e_fail "run $i: noisy result far from the truth: $(cat "$T/r$i.csv")"
done
expect_ok e2e_as ian dcr status "$ROOM"
expect_contains "$E2E_OUT" "epsilon budget 6.25: 6.25 spent, 0 left"
# fresh noise every run: three equal releases would have probability < 1e-6
if cmp -s "$T/r1.csv" "$T/r2.csv" && cmp -s "$T/r2.csv" "$T/r3.csv"; then
	e2e_fail "three DP runs released the same values: $(cat "$T/r1.csv")"
fi
# the releases are not the true values themselves
if tail -n 1 "$T/r1.csv" | grep -q "^$TRUE_N,$TRUE_AVG"; then
	e2e_log "note: run 1 drew zero noise on both values"
fi

# the fourth is refused by the ledger, before anything runs
expect_fail e2e_as ian dcr run "$ROOM" stats --wait --timeout 120
expect_stderr "computation stats would spend epsilon 2 on dataset bank_customers, which has spent 6.25 of its budget 6.25 (0 left)"
expect_fail e2e_as ian dcr run "$ROOM" leak
expect_stderr "computation leak would spend epsilon 0.25 on dataset bank_customers"

# the audit trail: each request states its spend; the replay of an
# export gives the same remaining budget
expect_ok e2e_as ian dcr audit log "$ROOM"
expect_contains "$E2E_OUT" "of stats, spending epsilon 2 (bank_customers: 2.25 of 6.25 spent)"
expect_contains "$E2E_OUT" "of stats, spending epsilon 2 (bank_customers: 6.25 of 6.25 spent)"
expect_ok e2e_as anna dcr audit export "$ROOM" -o "$T/room.export"
expect_ok dcr audit verify "$T/room.export"
expect_contains "$E2E_OUT" "valid: room"
expect_contains "$E2E_OUT" "epsilon budgets (replayed): bank_customers: 6.25 of 6.25 spent, 0 left"
# the independent verifier written from the docs agrees, ledger included
expect_verifiers_agree "$T/room.export" >/dev/null
L=$(python3 "$DCR_SOURCE_DIR/tests/e2e/audit_rules.py" ledger "$T/room.export") ||
	e2e_fail "audit_rules.py ledger: $L"
expect_eq "$L" "bank_customers: 6.25 of 6.25 spent, 0 left" "independent ledger"

# a restarted daemon replays the same ledger and still refuses
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"
e2e_start_daemon
expect_fail e2e_as ian dcr run "$ROOM" stats
expect_stderr "which has spent 6.25 of its budget 6.25 (0 left)"
e2e_log "ok"
