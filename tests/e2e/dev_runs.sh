# dev_runs.sh: development runs (settings.development, docs/rules.md
# "Development runs") through the dcr CLI against a real dcrd: allowed and
# refused for every role (owner of a dataset, analyst of a computation, a
# participant with neither, reading someone else's dataset, a computation
# one is not analyst of, a dataset with an epsilon budget, an outsider,
# development off), results compared with numbers computed independently
# (awk), results readable by the requester only, each run in the audit log,
# and `dcr audit verify` and the independent verifier accepting the export.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"

e2e_setup
e2e_start_daemon
story_identities
story_csvs
CARL=$(e2e_identity carl carl@audit.example) || e2e_fail "keygen carl"
CARL_KEY=${CARL#* }

# dev_room FILE NAME DEVELOPMENT: the story room plus carl (no role) and a
# dataset of anna's with an epsilon budget
dev_room() {
	story_room_json "$1.base" "$2"
	python3 - "$1.base" "$1" "$3" "$CARL_KEY" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["settings"]["development"] = sys.argv[3] == "true"
d["participants"][0]["owner_of"].append("bank_budget")
d["participants"].append({"email": "carl@audit.example", "key": sys.argv[4],
                          "owner_of": [], "analyst_of": []})
d["datasets"].append({"name": "bank_budget", "kind": "table", "required": False,
                      "epsilon_budget": "1",
                      "columns": [{"name": "age", "type": "integer", "nullable": False,
                                   "allow": ["aggregate"]}]})
json.dump(d, open(sys.argv[2], "w"), indent=2)
PY
}

events() {
	e2e_as anna dcr room show "$1" --status | sed -n 's/.*, \([0-9]*\) events.*/\1/p'
}

# refused WHO ROOM TEXT -- CMD...: exits 1 naming TEXT; the log did not grow
refused() {
	_who=$1 _room=$2 _text=$3
	shift 4
	_before=$(events "$_room")
	expect_fail e2e_as "$_who" "$@"
	expect_status 1
	expect_stderr "$_text"
	expect_eq "$(events "$_room")" "$_before" "events after the refused \"$*\""
}

dev_room "$T/room.json" dev-room true
ROOM=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"

# ---- a draft room refuses development runs
printf 'SELECT COUNT(*) AS n FROM bank_customers\n' >"$T/count.sql"
refused anna "$ROOM" "the room is draft" -- dcr dev run "$ROOM" "$T/count.sql" --input bank_customers
expect_ok e2e_as anna dcr room publish "$ROOM"
expect_ok e2e_as anna dcr provision "$ROOM" bank_customers "$T/bank.csv"
expect_ok e2e_as ian dcr provision "$ROOM" insurer_customers "$T/insurer.csv"
printf 'age\n30\n' >"$T/budget.csv"
expect_ok e2e_as anna dcr provision "$ROOM" bank_budget "$T/budget.csv"

# ---- owner of a dataset: any SQL over it, unfiltered; inputs inferred
cat >"$T/by_city.sql" <<'SQL'
-- every row of my own table, no privacy threshold
SELECT city, COUNT(*) AS n, SUM(age) AS ages FROM bank_customers GROUP BY city ORDER BY city
SQL
expect_ok e2e_as anna dcr dev run "$ROOM" "$T/by_city.sql" --wait --timeout 120
RUN1=$(head -n 1 "$E2E_OUT")
expect_contains "$E2E_OUT" "(sql): done"
expect_contains "$E2E_OUT" "inputs: bank_customers"
expect_ok e2e_as anna dcr dev result "$ROOM" "$RUN1" -o "$T/by_city.csv"
{
	echo "city,n,ages"
	awk -F, 'NR > 1 { n[$3]++; s[$3] += $2 } END { for (c in n) print c "," n[c] "," s[c] }' \
		"$T/bank.csv" | LC_ALL=C sort
} >"$T/by_city.want"
# Bonn has 5 rows: a group a filtered computation would drop
grep -q '^Bonn,5,' "$T/by_city.want" || e2e_fail "the story changed: $(cat "$T/by_city.want")"
# results are RFC 4180 CSV (CRLF line ends)
unix() { tr -d '\r' <"$1"; }
unix "$T/by_city.csv" | cmp -s - "$T/by_city.want" ||
	e2e_fail "dev result differs: $(unix "$T/by_city.csv" | diff "$T/by_city.want" -)"
# -o DIR writes DIR/result.csv; stdout works too
mkdir "$T/outdir"
expect_ok e2e_as anna dcr dev result "$ROOM" "$RUN1" -o "$T/outdir"
unix "$T/outdir/result.csv" | cmp -s - "$T/by_city.want" || e2e_fail "dev result -o DIR"
expect_ok e2e_as anna dcr dev result "$ROOM" "$RUN1"
unix "$E2E_OUT" | cmp -s - "$T/by_city.want" || e2e_fail "dev result to stdout"

# ---- the result is the requester's alone
refused ian "$ROOM" "did not request development run $RUN1" -- dcr dev result "$ROOM" "$RUN1"
refused carl "$ROOM" "did not request development run $RUN1" -- dcr dev status "$ROOM" "$RUN1"
refused eve "$ROOM" "no room $ROOM" -- dcr dev result "$ROOM" "$RUN1"

# ---- someone else's dataset, or a budgeted one, is refused
refused ian "$ROOM" "is not an owner of dataset bank_customers" -- \
	dcr dev run "$ROOM" "$T/count.sql"
refused carl "$ROOM" "is not an owner of dataset bank_customers" -- \
	dcr dev run "$ROOM" "$T/count.sql" --input bank_customers
printf 'SELECT SUM(age) AS s FROM bank_budget\n' >"$T/budget.sql"
refused anna "$ROOM" "dataset bank_budget has an epsilon_budget" -- dcr dev run "$ROOM" "$T/budget.sql"
refused anna "$ROOM" "no dataset or computation named \"nosuch\"" -- \
	dcr dev run "$ROOM" "$T/count.sql" --input nosuch
refused eve "$ROOM" "no room $ROOM" -- dcr dev run "$ROOM" "$T/count.sql"

# ---- owner of the other dataset: allowed on their own
printf 'SELECT risk_class, COUNT(*) AS n FROM insurer_customers GROUP BY risk_class ORDER BY 1\n' \
	>"$T/ins.sql"
expect_ok e2e_as ian dcr dev run "$ROOM" "$T/ins.sql" --wait --timeout 120
RUN2=$(head -n 1 "$E2E_OUT")
expect_ok e2e_as ian dcr dev result "$ROOM" "$RUN2"
want=$(printf 'risk_class,n\n'; awk -F, 'NR > 1 { n[$2]++ } END { for (c in n) print c "," n[c] }' \
	"$T/insurer.csv" | LC_ALL=C sort)
expect_eq "$(unix "$E2E_OUT")" "$want" "ian's dev result"
refused anna "$ROOM" "did not request development run $RUN2" -- dcr dev result "$ROOM" "$RUN2"

# ---- analyst of a computation: reads its last result (already filtered)
printf 'SELECT SUM(customers) AS total FROM overlap\n' >"$T/over.sql"
refused anna "$ROOM" "computation overlap has no completed run to read" -- \
	dcr dev run "$ROOM" "$T/over.sql"
expect_ok e2e_as anna dcr run "$ROOM" overlap --wait --timeout 120
expect_ok e2e_as anna dcr dev run "$ROOM" "$T/over.sql" --wait --timeout 120
RUN3=$(head -n 1 "$E2E_OUT")
expect_contains "$E2E_OUT" "inputs: overlap"
expect_ok e2e_as anna dcr dev result "$ROOM" "$RUN3"
story_expected "$T/overlap.want"
total=$(awk -F, 'NR > 1 { s += $3 } END { print s }' "$T/overlap.want")
expect_eq "$(unix "$E2E_OUT")" "$(printf 'total\n%s' "$total")" "sum over the filtered overlap"
# a computation one is not analyst of
refused ian "$ROOM" "is not an analyst of computation overlap" -- dcr dev run "$ROOM" "$T/over.sql"
# own data joined with a result one may read
printf 'SELECT COUNT(*) AS n FROM bank_customers b JOIN overlap o ON b.city = o.city\n' >"$T/join.sql"
expect_ok e2e_as anna dcr dev run "$ROOM" "$T/join.sql" --wait --timeout 120
expect_contains "$E2E_OUT" "inputs: bank_customers, overlap"

# ---- a participant with neither role: only a script that reads nothing
printf 'SELECT 6 * 7 AS answer\n' >"$T/const.sql"
expect_ok e2e_as carl dcr dev run "$ROOM" "$T/const.sql" --wait --timeout 120
RUN4=$(head -n 1 "$E2E_OUT")
expect_contains "$E2E_OUT" "inputs: none"
expect_ok e2e_as carl dcr dev result "$ROOM" "$RUN4"
expect_eq "$(unix "$E2E_OUT")" "$(printf 'answer\n42')" "carl's constant"

# ---- a failing script: the class in the log, the message to the requester
printf 'SELECT nosuchcolumn FROM bank_customers\n' >"$T/bad.sql"
expect_fail e2e_as anna dcr dev run "$ROOM" "$T/bad.sql" --wait --timeout 120
expect_stderr "failed: sql error" "nosuchcolumn"
RUN5=$(head -n 1 "$E2E_OUT")
expect_ok e2e_as anna dcr dev status "$ROOM" "$RUN5"
expect_contains "$E2E_OUT" "failed: sql error"
refused anna "$ROOM" "failed: sql error (no result)" -- dcr dev result "$ROOM" "$RUN5"
# ---- python and r, in the sandbox, inputs from the first line
cat >"$T/counts.py" <<'PY'
# inputs: bank_customers, overlap
import collections, csv, sys
rows = list(csv.DictReader(open("/input/bank_customers/dataset.csv")))
c = collections.Counter(r["city"] for r in rows)
with open("/output/counts.csv", "w") as f:
    f.write("city,n\n")
    for k in sorted(c):
        f.write("%s,%d\n" % (k, c[k]))
ov = list(csv.DictReader(open("/input/overlap/dataset.csv")))
print("overlap groups", len(ov))
print("to stderr", file=sys.stderr)
PY
expect_ok e2e_as anna dcr dev run "$ROOM" "$T/counts.py" --wait --timeout 300
RUN6=$(head -n 1 "$E2E_OUT")
expect_contains "$E2E_OUT" "(python): done"
expect_contains "$E2E_OUT" "inputs: bank_customers, overlap"
expect_fail e2e_as anna dcr dev result "$ROOM" "$RUN6"
expect_stderr "the result of a python run is files: give -o DIR"
expect_ok e2e_as anna dcr dev result "$ROOM" "$RUN6" -o "$T/py"
cut -d, -f1,2 "$T/by_city.want" | sed 's/^city,n$/city,n/' >"$T/counts.want"
cmp -s "$T/py/counts.csv" "$T/counts.want" ||
	e2e_fail "python dev result: $(diff "$T/counts.want" "$T/py/counts.csv")"
expect_ok e2e_as anna dcr dev result "$ROOM" "$RUN6" --logs
expect_eq "$(cat "$E2E_OUT")" "overlap groups $(($(wc -l <"$T/overlap.want") - 1))" "python stdout"
expect_eq "$(cat "$E2E_ERR")" "to stderr" "python stderr"
expect_ok e2e_as anna dcr dev result "$ROOM" "$RUN6" --logs -o "$T/pylogs"
expect_eq "$(cat "$T/pylogs/stderr")" "to stderr" "python stderr file"
refused ian "$ROOM" "did not request development run $RUN6" -- dcr dev result "$ROOM" "$RUN6" --logs
cat >"$T/total.R" <<'R'
# inputs: overlap
x <- read.csv("/input/overlap/dataset.csv")
writeLines(as.character(sum(x$customers)), "/output/total.txt")
R
expect_ok e2e_as anna dcr dev run "$ROOM" "$T/total.R" --wait --timeout 300
RUN7=$(head -n 1 "$E2E_OUT")
expect_ok e2e_as anna dcr dev result "$ROOM" "$RUN7" -o "$T/r"
expect_eq "$(cat "$T/r/total.txt")" "$total" "R dev result"
# a python script may not read what its requester may not: refused before it runs
printf '# inputs: insurer_customers\nprint(1)\n' >"$T/theirs.py"
refused anna "$ROOM" "is not an owner of dataset insurer_customers" -- dcr dev run "$ROOM" "$T/theirs.py"
# ... and sees only its declared inputs
cat >"$T/peek.py" <<'PY'
import os
print(sorted(os.listdir("/input")))
PY
expect_ok e2e_as ian dcr dev run "$ROOM" "$T/peek.py" --wait --timeout 300
RUN8=$(head -n 1 "$E2E_OUT")
expect_ok e2e_as ian dcr dev result "$ROOM" "$RUN8" --logs
expect_eq "$(cat "$E2E_OUT")" "['script.py']" "what a script over nothing sees"
# a failing script: the class in the log, its stderr to its requester
printf '# inputs: bank_customers\nraise SystemExit("boom at row 7")\n' >"$T/boom.py"
expect_fail e2e_as anna dcr dev run "$ROOM" "$T/boom.py" --wait --timeout 300
expect_stderr "failed: script error"
RUN9=$(head -n 1 "$E2E_OUT")
expect_ok e2e_as anna dcr dev result "$ROOM" "$RUN9" --logs
expect_contains "$E2E_ERR" "boom at row 7"
printf 'x\n' >"$T/p.txt"
refused anna "$ROOM" "the language comes from the extension" -- dcr dev run "$ROOM" "$T/p.txt"
expect_ok e2e_as anna dcr dev run --help
expect_contains "$E2E_OUT" "usage: dcr dev run ROOM FILE"
expect_ok e2e_as anna dcr dev status --help
expect_ok e2e_as anna dcr dev result --help

# ---- status lists one's own runs only
expect_ok e2e_as anna dcr dev status "$ROOM"
expect_contains "$E2E_OUT" "run $RUN1 (sql): done"
grep -q "$RUN2" "$E2E_OUT" && e2e_fail "anna's status lists ian's run"
expect_ok e2e_as eve dcr room list
grep -q "$ROOM" "$E2E_OUT" && e2e_fail "eve lists the room"

# ---- the audit log shows every development run; both verifiers accept
expect_ok e2e_as ian dcr audit log "$ROOM"
expect_contains "$E2E_OUT" "anna@bank.example requested development run ${RUN1%"${RUN1#????????}"} (sql, script sha256"
expect_contains "$E2E_OUT" ") reading bank_customers"
expect_contains "$E2E_OUT" "dcrd completed development run ${RUN1%"${RUN1#????????}"}"
expect_contains "$E2E_OUT" "carl@audit.example requested development run ${RUN4%"${RUN4#????????}"} (sql"
expect_contains "$E2E_OUT" "reading nothing"
expect_contains "$E2E_OUT" "dcrd failed development run ${RUN5%"${RUN5#????????}"}: sql error"
expect_contains "$E2E_OUT" "dcrd failed development run ${RUN9%"${RUN9#????????}"}: script error"
expect_contains "$E2E_OUT" "anna@bank.example requested development run ${RUN6%"${RUN6#????????}"} (python"
grep -q "boom" "$E2E_OUT" && e2e_fail "the audit log shows a script's output"
expect_ok e2e_as ian dcr audit export "$ROOM" -o "$T/room.export"
v=$(expect_verifiers_agree "$T/room.export") || exit 1
case "$v" in valid:*) ;; *) e2e_fail "export: $v" ;; esac

# ---- development off: every run refused with that reason
dev_room "$T/off.json" dev-off false
OFF=$(e2e_as anna dcr room create "$T/off.json") || e2e_fail "room create (off)"
expect_ok e2e_as anna dcr room publish "$OFF"
expect_ok e2e_as anna dcr provision "$OFF" bank_customers "$T/bank.csv"
for who in anna ian carl; do
	refused $who "$OFF" "development runs are off in this room" -- dcr dev run "$OFF" "$T/const.sql"
done
refused anna "$OFF" "development runs are off in this room" -- dcr dev run "$OFF" "$T/by_city.sql"

# ---- a stopped room refuses new runs; finished ones stay readable
expect_ok e2e_as anna dcr room stop "$ROOM" --reason done
refused anna "$ROOM" "the room is stopped" -- dcr dev run "$ROOM" "$T/by_city.sql"
expect_ok e2e_as anna dcr dev result "$ROOM" "$RUN1"
unix "$E2E_OUT" | cmp -s - "$T/by_city.want" || e2e_fail "dev result after stop"

e2e_stop_daemon || e2e_fail "dcrd did not exit cleanly on SIGTERM"
echo "dev_runs: ok"
