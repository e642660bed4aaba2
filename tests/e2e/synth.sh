# synth.sh: synthetic computations through the CLI against a real dcrd
# (issue 13). A bank table of 400 rows with the email and name columns
# masked and the others synthesised at epsilon 3: `dcr room test` reports
# the output schema; the result has the declared header, every masked value
# is of its format and none equals an input value, every synthesised value
# lies in its column's domain (an input city or "(other)", ages an integer
# inside the declared bounds, balances floats or empty); two runs differ
# (fresh CSPRNG noise); the result is dataset.csv and report.json (`dcr
# result -o DIR`; the table alone without -o), the report holds epsilon,
# delta, rho, the mechanism and the masked columns, and the data owner, not
# an analyst, is refused it; an sql computation reads the synthetic result
# as a table. A table of 49 rows fails the run with the class "too few rows". A
# mask format that does not fit its column's type, and bounds on a string
# column, are refused when the room is created. The log replays with both
# verifiers.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"

e2e_setup
e2e_start_daemon
story_identities

room_json() { # FILE MASK EXTRA
	cat >"$1" <<JSON
{
  "format": "dcr.room/1",
  "name": "synth",
  "participants": [
    {"email": "anna@bank.example", "key": "$ANNA_KEY", "owner_of": ["bank_customers"]},
    {"email": "ian@insurer.example", "key": "$IAN_KEY",
     "analyst_of": ["bank_synth", "synth_cities", "adults", "adults_synth", "synth_py",
                    "py_table", "py_synth"]}
  ],
  "datasets": [
    {"name": "bank_customers",
     "columns": [{"name": "email", "type": "string", "format": "email", "nullable": false},
                 {"name": "name", "type": "string", "nullable": false},
                 {"name": "age", "type": "integer", "nullable": false},
                 {"name": "city", "type": "string"},
                 {"name": "balance", "type": "float"}]}
  ],
  "computations": [
    {"name": "bank_synth", "kind": "synthetic", "input": "bank_customers",
     "mask": $2, "epsilon": 3, "bounds": {"age": [18, 90]}, "bins": {"age": 12}$3},
    {"name": "synth_py", "kind": "python", "inputs": ["bank_synth"],
     "script": "import pandas as pd\nd = pd.read_csv('/input/bank_synth/dataset.csv')\nopen('/output/n.txt', 'w').write('%d %s' % (len(d), ','.join(d.columns)))\n"},
    {"name": "py_table", "kind": "python", "inputs": ["bank_customers"],
     "columns": [{"name": "age", "type": "integer"}, {"name": "city", "type": "string"}],
     "script": "import pandas as pd\nd = pd.read_csv('/input/bank_customers/dataset.csv')\nd[['age', 'city']].to_csv('/output/dataset.csv', index=False)\n"},
    {"name": "py_synth", "kind": "synthetic", "input": "py_table", "epsilon": 3,
     "bounds": {"age": [18, 90]}, "rows": 80},
    {"name": "synth_cities", "kind": "sql",
     "query": "SELECT city, COUNT(*) AS n FROM bank_synth GROUP BY city ORDER BY city"},
    {"name": "adults", "kind": "sql",
     "query": "SELECT age, city, balance FROM bank_customers WHERE age >= 40"},
    {"name": "adults_synth", "kind": "synthetic", "input": "adults", "mask": {"city": "postcode"},
     "epsilon": 1, "bounds": {"age": [40, 60], "balance": [0, 10000]}, "rows": 100}
  ]
}
JSON
}

# the input: ages follow cities; one balance in ten is empty
awk 'BEGIN {
	split("Berlin Hamburg Munich Cologne", c, " ");
	split("Ada Bo Cy Di Ed Flo Gus Hal", f, " ");
	print "email,name,age,city,balance";
	for (i = 0; i < 400; i++) {
		k = i % 4;
		printf "c%03d@mail.example,%s Input%03d,%d,%s,", i, f[1 + i % 8], i, 20 + k * 12 + (i * 7) % 10, c[1 + k];
		if (i % 10) printf "%.2f", 100 + (i * 37) % 9000;
		printf "\n";
	}
}' >"$T/bank.csv"
head -n 50 "$T/bank.csv" >"$T/small.csv" # header + 49 rows

# refused definitions: a format that does not fit the type, bounds on a
# string column
room_json "$T/bad.json" '{"email": "email", "age": "iban"}' ''
expect_fail e2e_as anna dcr room create "$T/bad.json"
expect_stderr "format iban does not fit column \"age\" of type integer"
room_json "$T/bad2.json" '{"email": "email"}' ', "rows": 0'
expect_fail e2e_as anna dcr room create "$T/bad2.json"
expect_stderr "rows" "expected an integer 1 to"
sed 's/"bounds": {"age": \[18, 90\]}/"bounds": {"city": [0, 1]}/' "$T/bad.json" |
	sed 's/"age": "iban"/"name": "name"/' >"$T/bad3.json"
expect_fail e2e_as anna dcr room create "$T/bad3.json"
expect_stderr "\"city\" is not a numeric column of bank_customers"

room_json "$T/room.json" '{"email": "email", "name": "name"}' ''
ROOM=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"
expect_ok e2e_as anna dcr room publish "$ROOM"

# test on empty inputs: the output schema, and the sql reading it
expect_ok e2e_as anna dcr room test "$ROOM"
expect_contains "$E2E_OUT" "bank_synth (synthetic): ok"
expect_contains "$E2E_OUT" "email string"
expect_contains "$E2E_OUT" "age integer"
expect_contains "$E2E_OUT" "balance float"
expect_contains "$E2E_OUT" "synth_cities (sql): ok"
expect_contains "$E2E_OUT" "adults_synth (synthetic): ok"

# fewer than 50 rows: the run fails with its class
expect_ok e2e_as anna dcr provision "$ROOM" bank_customers "$T/small.csv"
expect_fail e2e_as ian dcr run "$ROOM" bank_synth --wait --timeout 120
expect_ok e2e_as ian dcr status "$ROOM" bank_synth
expect_contains "$E2E_OUT" "state        failed"
expect_contains "$E2E_OUT" "too few rows"

expect_ok e2e_as anna dcr provision "$ROOM" bank_customers "$T/bank.csv"
for i in 1 2; do
	expect_ok e2e_as ian dcr run "$ROOM" bank_synth --wait --timeout 120
	# the result is two files: the table and the report (-o DIR)
	expect_ok e2e_as ian dcr result "$ROOM" bank_synth -o "$T/r$i"
	[ -f "$T/r$i/dataset.csv" ] && [ -f "$T/r$i/report.json" ] ||
		e2e_fail "run $i: dcr result -o DIR wrote $(ls "$T/r$i" | tr '\n' ' ')"
	[ "$(ls "$T/r$i" | wc -l)" -eq 2 ] || e2e_fail "run $i: $(ls "$T/r$i" | tr '\n' ' ')"
	tr -d '\r' <"$T/r$i/dataset.csv" >"$T/s$i.norm"
	head -n 1 "$T/s$i.norm" | grep -q -x "email,name,age,city,balance" ||
		e2e_fail "synthetic header: $(head -n 1 "$T/s$i.norm")"
	ROWS=$(($(wc -l <"$T/s$i.norm") - 1))
	# the noisy row count: epsilon 3 leaves it near 400 (standard
	# deviation about 30 here; 5 of them)
	[ "$ROWS" -gt 250 ] && [ "$ROWS" -lt 550 ] || e2e_fail "run $i: $ROWS rows"
	# masked values are of their format and never input values
	awk -F, 'NR == FNR { if (FNR > 1) { em[$1] = 1; nm[$2] = 1 } next }
		FNR > 1 {
			if ($1 in em || $2 in nm) { print "input value in a masked column: " $0; exit 1 }
			if ($1 !~ /^[a-z.]+@example\.com$/) { print "email mask: " $1; exit 1 }
			if ($2 !~ /^[A-Z][a-z]+ [A-Z][a-z]+$/) { print "name mask: " $2; exit 1 }
			if ($3 !~ /^[0-9]+$/ || $3 < 18 || $3 > 90) { print "age: " $3; exit 1 }
			if ($4 !~ /^(Berlin|Hamburg|Munich|Cologne|\(other\)|)$/) { print "city: " $4; exit 1 }
			if ($5 != "" && $5 !~ /^-?[0-9]+\.[0-9]+$/) { print "balance: " $5; exit 1 }
		}' "$T/bank.csv" "$T/s$i.norm" >"$T/check.out" ||
		e2e_fail "run $i: $(cat "$T/check.out")"
done
if cmp -s "$T/s1.norm" "$T/s2.norm"; then
	e2e_fail "two synthetic runs gave the same table"
fi
# without -o the table goes to stdout: dataset.csv of the last run
expect_ok e2e_as ian dcr result "$ROOM" bank_synth
cmp -s "$E2E_OUT" "$T/r2/dataset.csv" || e2e_fail "dcr result without -o is not dataset.csv"
# the privacy and quality report: epsilon, delta, rho, the masked columns,
# the measured marginals and the quality from the measurements only
check_report() { # FILE EPSILON MASKED...
	python3 - "$@" <<'PY'
import json, math, sys
r = json.load(open(sys.argv[1]))
eps, masked = float(sys.argv[2]), sys.argv[3:]
def need(ok, what):
    if not ok:
        sys.exit("report: %s: %s" % (what, json.dumps(r)[:400]))
need(abs(r["epsilon"] - eps) < 1e-9, "epsilon")
need(r["delta"] == 1e-9, "delta")
# rho from (epsilon, delta), half of delta for the conversion (privacy.md):
# epsilon = rho + 2 sqrt(rho ln(2/delta))
l = math.log(2 / r["delta"])
need(abs(r["rho"] + 2 * math.sqrt(r["rho"] * l) - eps) < 1e-6, "rho")
need(r["mechanism"].startswith("MST"), "mechanism")
need(sorted(m["column"] for m in r["masked"]) == sorted(masked), "masked columns")
need(r["quality"]["source"] == "DP measurements only", "quality source")
need(all(c["column"] not in masked for c in r["columns"]), "a masked column measured")
PY
}
check_report "$T/r1/report.json" 3 email name ||
	e2e_fail "bank_synth report: $(cat "$T/r1/report.json")"
# the checker refuses a report with another epsilon (it can fail)
if check_report "$T/r1/report.json" 1 email name 2>/dev/null; then
	e2e_fail "the report check accepted epsilon 1 for a run at epsilon 3"
fi
# the data owner is not the computation's analyst: refused the result
expect_fail e2e_as anna dcr result "$ROOM" bank_synth -o "$T/anna_r"
[ ! -e "$T/anna_r/report.json" ] || e2e_fail "anna got the report"
# the same checker refuses a table holding an input value (it can fail)
sed -n 2p "$T/bank.csv" | { head -n 1 "$T/s1.norm"; cat; } >"$T/leak.csv"
if awk -F, 'NR == FNR { if (FNR > 1) em[$1] = 1; next } FNR > 1 && ($1 in em) { exit 1 }' \
	"$T/bank.csv" "$T/leak.csv"; then
	e2e_fail "the masked-value check accepted an input email"
fi

# an sql computation reads the synthetic result as a table
expect_ok e2e_as ian dcr run "$ROOM" synth_cities --wait --timeout 120
expect_ok e2e_as ian dcr result "$ROOM" synth_cities -o "$T/cities.csv"
head -n 1 "$T/cities.csv" | tr -d '\r' | grep -q -x "city,n" ||
	e2e_fail "synth_cities header: $(cat "$T/cities.csv")"
TOTAL=$(awk -F, 'NR > 1 { s += $2 } END { print s + 0 }' "$T/cities.csv")
[ "$TOTAL" -gt 250 ] && [ "$TOTAL" -lt 550 ] || e2e_fail "synth_cities counts $TOTAL rows"

# a python computation reads the synthetic result as /input/bank_synth/dataset.csv
expect_ok e2e_as ian dcr run "$ROOM" synth_py --wait --timeout 120
expect_ok e2e_as ian dcr result "$ROOM" synth_py -o "$T/pyout"
[ -f "$T/pyout/n.txt" ] || e2e_fail "synth_py wrote no n.txt"
PYROWS=$(cut -d" " -f1 "$T/pyout/n.txt")
PYCOLS=$(cut -d" " -f2 "$T/pyout/n.txt")
[ "$PYCOLS" = "email,name,age,city,balance" ] || e2e_fail "synth_py saw columns $PYCOLS"
[ "$PYROWS" -gt 250 ] && [ "$PYROWS" -lt 550 ] || e2e_fail "synth_py counted $PYROWS rows"

# a synthetic computation over an sql result: its columns, its bounds,
# the declared row count, the mask of its own
expect_ok e2e_as ian dcr run "$ROOM" adults_synth --wait --timeout 120
expect_ok e2e_as ian dcr result "$ROOM" adults_synth
tr -d '\r' <"$E2E_OUT" >"$T/adults.norm"
head -n 1 "$T/adults.norm" | grep -q -x "age,city,balance" ||
	e2e_fail "adults_synth header: $(head -n 1 "$T/adults.norm")"
expect_eq "$(($(wc -l <"$T/adults.norm") - 1))" 100 "rows of adults_synth"
# (an sql result's columns are nullable: null is a category of their own)
awk -F, 'NR > 1 && (($1 != "" && ($1 !~ /^[0-9]+$/ || $1 < 40 || $1 > 60)) ||
	$2 !~ /^[0-9][0-9][0-9][0-9][0-9]$/ || ($3 != "" && ($3 < 0 || $3 > 10000))) {
	print; exit 1 }' "$T/adults.norm" >"$T/check.out" ||
	e2e_fail "adults_synth row out of its domain: $(cat "$T/check.out")"

# a synthetic computation over a python computation's declared table
expect_ok e2e_as ian dcr run "$ROOM" py_synth --wait --timeout 120
expect_ok e2e_as ian dcr result "$ROOM" py_synth
tr -d '\r' <"$E2E_OUT" >"$T/pysynth.norm"
head -n 1 "$T/pysynth.norm" | grep -q -x "age,city" ||
	e2e_fail "py_synth header: $(head -n 1 "$T/pysynth.norm")"
expect_eq "$(($(wc -l <"$T/pysynth.norm") - 1))" 80 "rows of py_synth"
awk -F, 'NR > 1 && (($1 != "" && ($1 !~ /^[0-9]+$/ || $1 < 18 || $1 > 90)) ||
	$2 !~ /^(Berlin|Hamburg|Munich|Cologne|\(other\)|)$/) { print; exit 1 }' \
	"$T/pysynth.norm" >"$T/check.out" ||
	e2e_fail "py_synth row out of its domain: $(cat "$T/check.out")"

# the log replays, by dcr audit verify and by the independent verifier
# written from the docs (mask formats, bounds, bins, "too few rows")
expect_ok e2e_as anna dcr audit export "$ROOM" -o "$T/room.export"
expect_ok dcr audit verify "$T/room.export"
expect_contains "$E2E_OUT" "valid: room"
expect_verifiers_agree "$T/room.export" >/dev/null
e2e_log "ok"
