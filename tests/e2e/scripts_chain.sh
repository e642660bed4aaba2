# scripts_chain.sh: python and r computations through a real dcrd, chained
# with SQL both ways (sql -> python -> sql -> r), run through the CLI;
# every number is compared with the same figure computed here with awk
# from the test's own CSVs. Also: a file dataset read by a script, a
# result of several files (dcr result -o DIR), the logs policy (never,
# on_error, always, and refusals), a limit of the definition (wall time of
# 1 s on a sleeping script: fails naming it while dcrd answers), a limit
# past the host's maximum (--script-max-wall-s), a tabular result that
# does not match its declared columns, test all on empty inputs, and the
# two audit verifiers agree on the log.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"

e2e_setup
command -v bwrap >/dev/null 2>&1 || e2e_skip "no bwrap on this host"
[ -x /usr/bin/Rscript ] || e2e_skip "no /usr/bin/Rscript on this host"
/usr/bin/python3 -c 'import pandas' 2>/dev/null || e2e_skip "no pandas for /usr/bin/python3"
e2e_start_daemon --script-max-wall-s 120
story_identities
story_csvs
printf '{"contract": 1}\n{"contract": 2}\n{"contract": 3}\n' >"$T/contracts.json"

# json_str FILE: the file's text as a JSON string
json_str() {
	python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$1"
}

cat >"$T/py_stats.py" <<'PY'
import os
import pandas as pd
j = pd.read_csv("/input/joined/dataset.csv")
g = j.groupby(["city", "risk_class"]).agg(n=("email", "count"), premium_sum=("premium", "sum"))
g = g.reset_index().sort_values(["city", "risk_class"])
g["premium_sum"] = g["premium_sum"].round(2)
g.to_csv("/output/dataset.csv", index=False)
os.makedirs("/output/notes")
with open("/output/notes/summary.txt", "w") as f:
    f.write("groups %d rows %d\n" % (len(g), len(j)))
print("stats of %d joined rows" % len(j))
PY
cat >"$T/r_report.R" <<'R'
top <- read.csv("/input/top/dataset.csv")
# a file dataset that is not provisioned (test all) is an empty directory
p <- "/input/contracts/contracts.json"
contracts <- if (file.exists(p)) readLines(p) else character(0)
out <- data.frame(cities = nrow(top), customers = sum(top$n), contracts = length(contracts))
write.csv(out, "/output/dataset.csv", row.names = FALSE)
writeLines(sprintf("premium %.2f", sum(top$premium)), "/output/report.txt")
cat("report written\n")
R
cat >"$T/fails.py" <<'PY'
import sys
print("about to fail")
sys.stderr.write("secret row: c100@mail.example\n")
sys.exit(3)
PY
cat >"$T/sleeps.py" <<'PY'
import time
time.sleep(30)
PY
cat >"$T/badcols.py" <<'PY'
open("/output/dataset.csv", "w").write("city,n\nBerlin,not-a-number\n")
PY

cat >"$T/room.json" <<JSON
{
  "format": "dcr.room/1",
  "name": "scripts",
  "settings": {"require_provisioned": true},
  "participants": [
    {"email": "anna@bank.example", "key": "$ANNA_KEY",
     "owner_of": ["bank_customers", "contracts"],
     "analyst_of": ["joined", "py_stats", "top", "r_report", "fails", "fails_open",
                    "sleeps", "greedy", "badcols", "quiet", "snoop", "naps", "after_bad",
                    "opt_ls"]},
    {"email": "ian@insurer.example", "key": "$IAN_KEY",
     "owner_of": ["insurer_customers"], "analyst_of": ["quiet"]}
  ],
  "datasets": [
    {"name": "bank_customers", "kind": "table",
     "columns": [{"name": "email", "type": "string", "nullable": false},
                 {"name": "age", "type": "integer"},
                 {"name": "city", "type": "string", "nullable": false},
                 {"name": "balance", "type": "float"}]},
    {"name": "insurer_customers", "kind": "table",
     "columns": [{"name": "email", "type": "string", "nullable": false},
                 {"name": "risk_class", "type": "string", "nullable": false},
                 {"name": "premium", "type": "float", "nullable": false}]},
    {"name": "contracts", "kind": "file"}
  ],
  "computations": [
    {"name": "joined", "kind": "sql",
     "query": "SELECT b.email, b.city, i.risk_class, i.premium FROM bank_customers b JOIN insurer_customers i ON b.email = i.email ORDER BY b.email"},
    {"name": "py_stats", "kind": "python", "inputs": ["joined"], "logs": "always",
     "columns": [{"name": "city", "type": "string", "nullable": false},
                 {"name": "risk_class", "type": "string", "nullable": false},
                 {"name": "n", "type": "integer", "nullable": false},
                 {"name": "premium_sum", "type": "float", "nullable": false}],
     "script": $(json_str "$T/py_stats.py")},
    {"name": "top", "kind": "sql",
     "query": "SELECT city, SUM(n) AS n, ROUND(SUM(premium_sum), 2) AS premium FROM py_stats GROUP BY city ORDER BY city"},
    {"name": "r_report", "kind": "r", "inputs": ["top", "contracts"],
     "columns": [{"name": "cities", "type": "integer"}, {"name": "customers", "type": "integer"},
                 {"name": "contracts", "type": "integer"}],
     "script": $(json_str "$T/r_report.R")},
    {"name": "fails", "kind": "python", "inputs": [], "script": $(json_str "$T/fails.py")},
    {"name": "fails_open", "kind": "python", "inputs": [], "logs": "on_error",
     "script": $(json_str "$T/fails.py")},
    {"name": "quiet", "kind": "python", "inputs": ["joined"], "logs": "on_error",
     "script": "print(open('/input/joined/dataset.csv').readline())\nopen('/output/ok.txt', 'w').write('ok')\n"},
    {"name": "sleeps", "kind": "python", "inputs": [], "limits": {"wall_seconds": 1},
     "script": $(json_str "$T/sleeps.py")},
    {"name": "after_bad", "kind": "sql", "query": "SELECT COUNT(*) AS n FROM badcols"},
    {"name": "snoop", "kind": "python", "inputs": ["joined"],
     "script": "import os\nopen('/output/ls.txt', 'w').write(' '.join(sorted(os.listdir('/input'))))\n"},
    {"name": "naps", "kind": "r", "inputs": ["joined"],
     "script": "d <- read.csv('/input/joined/dataset.csv')\nif (nrow(d) > 0) Sys.sleep(60)\n"},
    {"name": "opt_ls", "kind": "python", "inputs": ["contracts"],
     "script": "import os\nd = '/input/contracts'\nls = sorted(os.listdir(d)) if os.path.isdir(d) else ['absent']\nopen('/output/' + ('empty_dir' if not ls else 'listed'), 'w').write(' '.join(ls))\n"},
    {"name": "greedy", "kind": "python", "inputs": [], "limits": {"wall_seconds": 600},
     "script": "print(1)\n"},
    {"name": "badcols", "kind": "python", "inputs": [], "logs": "on_error",
     "columns": [{"name": "city", "type": "string"}, {"name": "n", "type": "integer"}],
     "script": $(json_str "$T/badcols.py")}
  ]
}
JSON
ROOM=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"

# test all, before any data: scripts run on empty inputs
expect_ok e2e_as anna dcr room test "$ROOM"
cp "$E2E_OUT" "$T/test.out"
expect_contains "$T/test.out" "py_stats (python): ok"
expect_contains "$T/test.out" "  file dataset.csv ("
expect_contains "$T/test.out" "  file notes/summary.txt ("
expect_contains "$T/test.out" "  premium_sum float"
expect_contains "$T/test.out" "top (sql): ok"
expect_contains "$T/test.out" "r_report (r): ok"
expect_contains "$T/test.out" "fails (python): error: "
expect_contains "$T/test.out" "secret row"   # empty inputs: the author sees stderr
expect_contains "$T/test.out" "badcols (python): error: the tabular result"
# what reads a script that failed its test fails with it
expect_contains "$T/test.out" "after_bad (sql): error: upstream computation badcols failed its test"
expect_contains "$T/test.out" "snoop (python): ok"
# an optional file dataset not provisioned: /input/NAME/ is an empty directory
expect_contains "$T/test.out" "opt_ls (python): ok"
expect_contains "$T/test.out" "  file empty_dir ("

expect_ok e2e_as anna dcr room publish "$ROOM"
expect_ok e2e_as anna dcr provision "$ROOM" bank_customers "$T/bank.csv"
expect_ok e2e_as ian dcr provision "$ROOM" insurer_customers "$T/insurer.csv"
expect_ok e2e_as anna dcr provision "$ROOM" contracts "$T/contracts.json"
# a file dataset is readable by its owner only, as provisioned
expect_ok e2e_as anna dcr data "$ROOM" contracts -o "$T/contracts.back"
cmp -s "$T/contracts.json" "$T/contracts.back" || e2e_fail "file dataset read back differs"
expect_fail e2e_as ian dcr data "$ROOM" contracts
expect_stderr "not an owner"

# the numbers, independently: per (city, risk_class) of the shared customers
awk -F, 'NR == FNR { if (FNR > 1) city[$1] = $3; next }
	FNR > 1 && ($1 in city) { k = city[$1] "," $2; n[k]++; s[k] += $3 }
	END { for (k in n) printf "%s,%d,%.2f\n", k, n[k], s[k] }' \
	"$T/bank.csv" "$T/insurer.csv" | LC_ALL=C sort >"$T/expect_stats.csv"
awk -F, '{ n[$1] += $3; s[$1] += $4 } END { for (c in n) printf "%s,%d,%.2f\n", c, n[c], s[c] }' \
	"$T/expect_stats.csv" | LC_ALL=C sort >"$T/expect_top.csv"

# sql -> python: the python result's table, through the CLI
expect_ok e2e_as anna dcr run "$ROOM" py_stats --wait --timeout 300
expect_ok e2e_as anna dcr result "$ROOM" py_stats -o "$T/py_out"
[ -f "$T/py_out/dataset.csv" ] && [ -f "$T/py_out/notes/summary.txt" ] ||
	e2e_fail "dcr result -o DIR did not write every file: $(ls -R "$T/py_out")"
expect_contains "$T/py_out/notes/summary.txt" "rows 100"
tail -n +2 "$T/py_out/dataset.csv" | awk -F, '{ printf "%s,%s,%d,%.2f\n", $1, $2, $3, $4 }' |
	LC_ALL=C sort >"$T/got_stats.csv"
cmp -s "$T/got_stats.csv" "$T/expect_stats.csv" ||
	e2e_fail "py_stats differs: $(diff "$T/expect_stats.csv" "$T/got_stats.csv")"
# without -o: the tabular result on stdout
expect_ok e2e_as anna dcr result "$ROOM" py_stats
cmp -s "$E2E_OUT" "$T/py_out/dataset.csv" || e2e_fail "dcr result without -o differs"
# logs: always
expect_ok e2e_as anna dcr logs "$ROOM" py_stats
expect_contains "$E2E_OUT" "stats of 100 joined rows"

# python -> sql -> r, with a file dataset
expect_ok e2e_as anna dcr run "$ROOM" top --wait --timeout 300
expect_ok e2e_as anna dcr result "$ROOM" top -o "$T/top.csv"
tail -n +2 "$T/top.csv" | awk -F, '{ printf "%s,%d,%.2f\n", $1, $2, $3 }' | LC_ALL=C sort >"$T/got_top.csv"
cmp -s "$T/got_top.csv" "$T/expect_top.csv" ||
	e2e_fail "top differs: $(diff "$T/expect_top.csv" "$T/got_top.csv")"
expect_ok e2e_as anna dcr run "$ROOM" r_report --wait --timeout 300
expect_ok e2e_as anna dcr result "$ROOM" r_report -o "$T/r_out"
cities=$(wc -l <"$T/expect_top.csv" | tr -d ' ')
customers=$(awk -F, '{ s += $2 } END { print s }' "$T/expect_top.csv")
premium=$(awk -F, '{ s += $3 } END { printf "%.2f", s }' "$T/expect_top.csv")
expect_eq "$(tail -n 1 "$T/r_out/dataset.csv")" "$cities,$customers,3" "r_report table"
expect_eq "$(cat "$T/r_out/report.txt")" "premium $premium" "r_report file"
# logs: never (the default) refuses
expect_fail e2e_as anna dcr logs "$ROOM" r_report
expect_stderr "never"

# a failing script: the class only, its logs as the definition says
expect_fail e2e_as anna dcr run "$ROOM" fails --wait --timeout 300
expect_ok e2e_as anna dcr status "$ROOM" fails
expect_contains "$E2E_OUT" "error        script error"
grep -q "detail" "$E2E_OUT" && e2e_fail "logs never, yet a detail: $(cat "$E2E_OUT")"
expect_fail e2e_as anna dcr logs "$ROOM" fails
expect_stderr "never"
expect_fail e2e_as anna dcr run "$ROOM" fails_open --wait --timeout 300
expect_ok e2e_as anna dcr logs "$ROOM" fails_open -o "$T/logs_open"
expect_contains "$T/logs_open/stdout" "about to fail"
expect_contains "$T/logs_open/stderr" "secret row"
# on_error: a run that completed shows none; ian is no analyst of it
expect_ok e2e_as anna dcr run "$ROOM" quiet --wait --timeout 300
expect_fail e2e_as anna dcr logs "$ROOM" quiet
expect_stderr "only for a failed run"
expect_fail e2e_as ian dcr logs "$ROOM" fails_open
expect_stderr "may not read the logs"
# no private text in dcrd's log
grep -q "secret row\|about to fail\|c100@mail" "$T/dcrd.log" && e2e_fail "dcrd logged script output"

# a tabular result that breaks its declared columns
expect_fail e2e_as anna dcr run "$ROOM" badcols --wait --timeout 300
expect_ok e2e_as anna dcr status "$ROOM" badcols
expect_contains "$E2E_OUT" "error        script result invalid"
expect_contains "$E2E_OUT" "line 2"

# the definition's wall time of 1 s: the run fails naming it, dcrd answers meanwhile
e2e_as anna dcr run "$ROOM" sleeps >"$T/sleeps.id" || e2e_fail "run sleeps"
expect_ok e2e_as anna dcr status "$ROOM"
i=0
while :; do
	e2e_as anna dcr status "$ROOM" sleeps >"$T/st.out" 2>&1 || e2e_fail "status: $(cat "$T/st.out")"
	grep -q "state        failed" "$T/st.out" && break
	[ $i -lt 300 ] || e2e_fail "sleeps did not fail: $(cat "$T/st.out")"
	sleep 0.1
	i=$((i + 1))
done
expect_contains "$T/st.out" "error        time limit"
# a limit past the host's maximum (--script-max-wall-s 120)
expect_fail e2e_as anna dcr run "$ROOM" greedy --wait --timeout 300
expect_ok e2e_as anna dcr status "$ROOM" greedy
expect_contains "$E2E_OUT" "error        limit past host maximum"

# provisioned, the same directory holds the file
expect_ok e2e_as anna dcr run "$ROOM" opt_ls --wait --timeout 300
expect_ok e2e_as anna dcr result "$ROOM" opt_ls -o "$T/opt_ls"
expect_eq "$(cat "$T/opt_ls/listed")" "contracts.json" "/input/contracts when provisioned"

# a script sees only what it declares: no file dataset, no other table
expect_ok e2e_as anna dcr run "$ROOM" snoop --wait --timeout 300
expect_ok e2e_as anna dcr result "$ROOM" snoop -o "$T/snoop"
expect_eq "$(cat "$T/snoop/ls.txt")" "joined script.py" "what snoop sees under /input"

# the log: both verifiers agree
expect_ok e2e_as anna dcr audit export "$ROOM" -o "$T/room.export"
expect_verifiers_agree "$T/room.export" >/dev/null

# a running script is cancelled (its sandbox killed) when dcrd stops, and
# runs again at the next start
e2e_as anna dcr run "$ROOM" naps >/dev/null || e2e_fail "run naps"
i=0
until grep -q "(naps) in room .*: started" "$T/dcrd.log"; do
	[ $i -lt 300 ] || e2e_fail "naps did not start"
	sleep 0.1
	i=$((i + 1))
done
sleep 1
expect_ok e2e_stop_daemon
expect_contains "$T/dcrd.log" "cancelled at shutdown"
pgrep -f "Sys.sleep" >/dev/null && e2e_fail "the script outlived dcrd"
e2e_start_daemon --script-max-wall-s 120
i=0
until [ "$(grep -c "(naps) in room .*: started" "$T/dcrd.log")" -ge 2 ]; do
	[ $i -lt 300 ] || e2e_fail "naps was not queued again at the start"
	sleep 0.1
	i=$((i + 1))
done
expect_ok e2e_as anna dcr status "$ROOM" naps
expect_contains "$E2E_OUT" "state        running"
expect_ok e2e_stop_daemon
echo "scripts_chain: ok"
