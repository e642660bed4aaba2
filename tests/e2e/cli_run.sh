# cli_run.sh: runs that fail and results that do not exist, through the
# CLI: `dcr run --wait` exits 1 with the daemon's error when the run fails
# at run time (an integer overflow that only real rows trigger), `dcr
# status ROOM COMPUTATION` shows the failure, `dcr result` refuses to read a
# result that does not exist, `--timeout` is validated, a later good run
# of another computation is unaffected, progress lines show on a
# terminal (script(1)), and a result of several MiB arrives whole.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"

e2e_setup
e2e_start_daemon
story_identities
story_csvs

cat >"$T/room.json" <<JSON
{
  "format": "dcr.room/1",
  "name": "runs",
  "settings": {"require_provisioned": true},
  "participants": [
    {"email": "anna@bank.example", "key": "$ANNA_KEY",
     "owner_of": ["bank_customers"], "analyst_of": ["by_city", "overflow", "dump"]}
  ],
  "datasets": [
    {"name": "bank_customers", "kind": "table", "unit": "email",
     "columns": [{"name": "email", "type": "string", "nullable": false},
                 {"name": "age", "type": "integer", "nullable": true, "allow": ["aggregate"]},
                 {"name": "city", "type": "string", "nullable": false, "allow": ["group"]},
                 {"name": "balance", "type": "float", "nullable": true}]}
  ],
  "computations": [
    {"name": "by_city", "kind": "sql", "privacy": {"min_rows_aggregated": 10},
     "query": "SELECT city, COUNT(*) AS n FROM bank_customers GROUP BY city ORDER BY city"},
    {"name": "overflow", "kind": "sql",
     "query": "SELECT city, SUM(9223372036854775807 + 0 * age) AS s FROM bank_customers GROUP BY city"},
    {"name": "dump", "kind": "sql",
     "query": "SELECT email, age, city FROM bank_customers ORDER BY email"}
  ]
}
JSON
ROOM=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"
expect_ok e2e_as anna dcr room publish "$ROOM"

# nothing run yet
expect_ok e2e_as anna dcr status "$ROOM" overflow
expect_contains "$E2E_OUT" "state        none (never run)"
expect_fail e2e_as anna dcr result "$ROOM" by_city
expect_status 1
expect_stderr "dcr result:" "by_city"
expect_fail e2e_as anna dcr run "$ROOM" by_city --timeout soon
expect_status 2
expect_stderr "dcr run: --timeout: \"soon\" is not a number of seconds"

expect_ok e2e_as anna dcr provision "$ROOM" bank_customers "$T/bank.csv"

# a run that fails at run time
expect_fail e2e_as anna dcr run "$ROOM" overflow --wait --timeout 120
expect_status 1
RUN=$(head -n 1 "$E2E_OUT")
echo "$RUN" | grep -q -E '^[0-9a-f]{32}$' || e2e_fail "failed run printed no id: $(cat "$E2E_OUT")"
expect_stderr "dcr run: run $RUN failed: " "overflow"
expect_ok e2e_as anna dcr status "$ROOM" overflow
expect_contains "$E2E_OUT" "run          $RUN"
expect_contains "$E2E_OUT" "state        failed"
expect_contains "$E2E_OUT" "error        sql error: integer overflow"
# no privacy filter: its analyst also gets SQLite's message
expect_contains "$E2E_OUT" "detail       computation overflow: integer overflow"
expect_ok e2e_as anna dcr status "$ROOM"
expect_contains "$E2E_OUT" "overflow                 failed, run $RUN: "
expect_fail e2e_as anna dcr result "$ROOM" overflow
expect_status 1
expect_stderr "dcr result:"

# a good run next to it; without --wait the id comes back at once and
# the run finishes on its own
RUN2=$(e2e_as anna dcr run "$ROOM" by_city) || e2e_fail "run by_city"
i=0
while :; do
	e2e_as anna dcr status "$ROOM" by_city >"$T/st.out" 2>&1 || e2e_fail "status: $(cat "$T/st.out")"
	grep -q "^state        done" "$T/st.out" && break
	grep -q "^state        failed" "$T/st.out" && e2e_fail "by_city failed: $(cat "$T/st.out")"
	[ $i -lt 1200 ] || e2e_fail "run $RUN2 not done after 120 s: $(cat "$T/st.out")"
	sleep 0.1
	i=$((i + 1))
done
expect_contains "$T/st.out" "run          $RUN2"
expect_ok e2e_as anna dcr result "$ROOM" by_city
awk -F, 'NR > 1 { n[$3]++ } END { for (c in n) if (n[c] >= 10) print c "," n[c] }' "$T/bank.csv" |
	LC_ALL=C sort >"$T/expected.body"
{ echo "city,n"; cat "$T/expected.body"; } >"$T/expected.csv"
tr -d '\r"' <"$E2E_OUT" | cmp -s - "$T/expected.csv" || {
	diff "$T/expected.csv" "$E2E_OUT" >&2
	e2e_fail "by_city result"
}

# progress lines appear when stderr is a terminal (script(1) gives a pty)
if command -v script >/dev/null 2>&1 && [ -c /dev/ptmx ]; then
	script -qec "DCR_IDENTITY='$T/anna.pem' dcr provision '$ROOM' bank_customers '$T/bank.csv'" \
		/dev/null >"$T/tty.out" 2>&1 || e2e_fail "provision on a terminal: $(cat "$T/tty.out")"
	expect_contains "$T/tty.out" "dcr provision: bank_customers 7.1 KiB of 7.1 KiB (100%)"
	expect_contains "$T/tty.out" "provisioned bank_customers: 200 rows"
	script -qec "DCR_IDENTITY='$T/anna.pem' dcr result '$ROOM' by_city -o '$T/tty.csv'" \
		/dev/null >"$T/tty.out" 2>&1 || e2e_fail "result on a terminal: $(cat "$T/tty.out")"
	expect_contains "$T/tty.out" "dcr result: by_city"
	tr -d '\r"' <"$T/tty.csv" | cmp -s - "$T/expected.csv" || e2e_fail "result -o on a terminal"
else
	e2e_log "no script(1) or /dev/ptmx: progress lines not checked"
fi

# a result of several MiB comes back whole, read in 1 MiB ranges
awk 'BEGIN { print "email,age,city,balance";
	for (i = 0; i < 120000; i++) printf "u%06d@mail.example,%d,City%d,%d.25\n", i, i % 90, i % 7, i }' >"$T/big.csv"
expect_ok e2e_as anna dcr provision "$ROOM" bank_customers "$T/big.csv"
expect_ok e2e_as anna dcr run "$ROOM" dump --wait --timeout 60
expect_ok e2e_as anna dcr result "$ROOM" dump -o "$T/dump.csv"
cut -d, -f1-3 "$T/big.csv" >"$T/dump.expected"
tr -d '\r"' <"$T/dump.csv" | cmp -s - "$T/dump.expected" || e2e_fail "dump result differs from its input"
[ "$(wc -c <"$T/dump.csv")" -gt 3000000 ] || e2e_fail "dump result smaller than 3 MB"

e2e_stop_daemon || e2e_fail "dcrd did not exit cleanly on SIGTERM"
echo "cli_run: ok"
