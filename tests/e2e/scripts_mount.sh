# scripts_mount.sh: python and r computations through the mount, with only
# cp, echo, cat and ls: a file dataset provisioned with cp (and read by a
# script), a chain sql -> python -> sql -> r run by writing to `run`, the
# output files under computations/NAME/result/ (analysts only), result.csv
# of a tabular script result, `log` as the definition's "logs" allows, and
# the numbers compared with awk on the test's own CSVs.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"
. "$DCR_SOURCE_DIR/tests/e2e/mount_lib.inc"

mount_require
e2e_setup
command -v bwrap >/dev/null 2>&1 || e2e_skip "no bwrap on this host"
[ -x /usr/bin/Rscript ] || e2e_skip "no /usr/bin/Rscript on this host"
/usr/bin/python3 -c 'import pandas' 2>/dev/null || e2e_skip "no pandas for /usr/bin/python3"
e2e_start_daemon
story_identities
story_csvs
printf 'alpha\nbeta\n' >"$T/notes.txt"

json_str() {
	python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$1"
}
cat >"$T/by_risk.py" <<'PY'
import os
import pandas as pd
j = pd.read_csv("/input/joined/dataset.csv")
g = j.groupby("risk_class").agg(n=("email", "count")).reset_index().sort_values("risk_class")
g.to_csv("/output/dataset.csv", index=False)
# a file dataset not provisioned (test all) is absent
p = "/input/notes/notes.txt"
notes = open(p).read().split() if os.path.exists(p) else []
os.makedirs("/output/extra/deep")
open("/output/extra/deep/notes.txt", "w").write("%d notes\n" % len(notes))
print("by_risk done")
PY
cat >"$T/total.R" <<'R'
t <- read.csv("/input/risk_total/dataset.csv")
writeLines(sprintf("total %d", sum(t$n)), "/output/total.txt")
R
cat >"$T/room.json" <<JSON
{
  "format": "dcr.room/1",
  "name": "scripts-mount",
  "settings": {"require_provisioned": true},
  "participants": [
    {"email": "anna@bank.example", "key": "$ANNA_KEY",
     "owner_of": ["bank_customers", "notes"],
     "analyst_of": ["joined", "by_risk", "risk_total", "total"]},
    {"email": "ian@insurer.example", "key": "$IAN_KEY",
     "owner_of": ["insurer_customers"], "analyst_of": []}
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
    {"name": "notes", "kind": "file"}
  ],
  "computations": [
    {"name": "joined", "kind": "sql",
     "query": "SELECT b.email, i.risk_class FROM bank_customers b JOIN insurer_customers i ON b.email = i.email"},
    {"name": "by_risk", "kind": "python", "inputs": ["joined", "notes"], "logs": "always",
     "columns": [{"name": "risk_class", "type": "string"}, {"name": "n", "type": "integer"}],
     "script": $(json_str "$T/by_risk.py")},
    {"name": "risk_total", "kind": "sql", "query": "SELECT SUM(n) AS n FROM by_risk"},
    {"name": "total", "kind": "r", "inputs": ["risk_total"], "script": $(json_str "$T/total.R")}
  ]
}
JSON
id=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"
expect_ok e2e_as anna dcr room publish "$id"
A=$T/anna
I=$T/ian
mount_as anna "$id" "$A"
mount_as ian "$id" "$I"

# the README tells where a script finds its inputs and leaves its result
expect_contains "$A/README" "/input/NAME/FILE          a file dataset, under its provisioned name"
expect_contains "$A/README" "(an empty directory when not provisioned)"
expect_contains "$A/README" "echo > $A/computations/total/run && ls $A/computations/total/result/"
expect_contains "$A/README" "echo > $A/computations/by_risk/run && cat $A/computations/by_risk/result.csv"

# test all through ctl: the scripts run on empty inputs
echo test > "$A/ctl" || e2e_fail "echo test > ctl"
expect_contains "$A/test.out" "by_risk (python): ok"
expect_contains "$A/test.out" "  file extra/deep/notes.txt ("
expect_contains "$A/test.out" "total (r): ok"
expect_contains "$A/test.out" "risk_total (sql): ok"

# provisioning, a file dataset with cp
cp "$T/bank.csv" "$A/datasets/bank_customers/" || e2e_fail "cp bank"
cp "$T/insurer.csv" "$I/datasets/insurer_customers/" || e2e_fail "cp insurer"
cp "$T/notes.txt" "$A/datasets/notes/" || e2e_fail "cp of a file dataset"
wait_for "$A/datasets/notes/status" "provisioned"
cmp -s "$T/notes.txt" "$A/datasets/notes/notes.txt" || e2e_fail "file dataset read back differs"
expect_fail cat "$I/datasets/notes/notes.txt" # not shown to others

# the chain, by writing to run
echo > "$A/computations/by_risk/run" || e2e_fail "run by_risk: $(cat "$A/computations/by_risk/status")"
wait_for "$A/computations/by_risk/status" "done" 300
ls "$A/computations/by_risk" >"$T/ls.out"
expect_contains "$T/ls.out" "result"
expect_contains "$T/ls.out" "log"
expect_contains "$A/computations/by_risk/result/extra/deep/notes.txt" "2 notes"
cmp -s "$A/computations/by_risk/result/dataset.csv" "$A/computations/by_risk/result.csv" ||
	e2e_fail "result.csv is not result/dataset.csv"
awk -F, 'NR == FNR { if (FNR > 1) b[$1] = 1; next } FNR > 1 && ($1 in b) { n[$2]++ }
	END { for (k in n) printf "%s,%d\n", k, n[k] }' "$T/bank.csv" "$T/insurer.csv" |
	LC_ALL=C sort >"$T/expect.csv"
tail -n +2 "$A/computations/by_risk/result.csv" | LC_ALL=C sort >"$T/got.csv"
cmp -s "$T/expect.csv" "$T/got.csv" || e2e_fail "by_risk differs: $(diff "$T/expect.csv" "$T/got.csv")"
expect_contains "$A/computations/by_risk/log" "by_risk done"
# ian is no analyst: no files, no log
expect_eacces ls "$I/computations/by_risk/result"
expect_fail cat "$I/computations/by_risk/log"

echo > "$A/computations/total/run" || e2e_fail "run total: $(cat "$A/computations/total/status")"
wait_for "$A/computations/total/status" "done" 300
[ ! -e "$A/computations/total/result.csv" ] || e2e_fail "a script without columns shows result.csv"
[ ! -e "$A/computations/total/log" ] || e2e_fail "logs never, yet a log file"
expect_eq "$(cat "$A/computations/total/result/total.txt")" "total $(wc -l <"$T/expect.csv" | tr -d ' ' | xargs -I{} awk -F, '{ s += $2 } END { print s }' "$T/expect.csv")" "total"

mount_stop "$A"
mount_stop "$I"
mount_check_logs
expect_ok e2e_stop_daemon
echo "scripts_mount: ok"
