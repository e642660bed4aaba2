# synth_mount.sh: a synthetic computation through the mount (issue 13).
# The analyst runs it by writing `run` and reads result.csv, twice: the
# header is the input's, masked emails are of their format and never input
# values, cities are input cities or "(other)", and the two tables differ.
# result/ holds the same table as dataset.csv and the privacy and quality
# report as report.json (epsilon, delta, rho, the masked column). The data
# owner, who is not its analyst, is refused the result and the report.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"
. "$DCR_SOURCE_DIR/tests/e2e/mount_lib.inc"

mount_require
e2e_setup
e2e_start_daemon
story_identities

cat >"$T/room.json" <<JSON
{
  "format": "dcr.room/1",
  "name": "synth-mount",
  "participants": [
    {"email": "anna@bank.example", "key": "$ANNA_KEY", "owner_of": ["bank_customers"]},
    {"email": "ian@insurer.example", "key": "$IAN_KEY", "analyst_of": ["bank_synth"]}
  ],
  "datasets": [
    {"name": "bank_customers",
     "columns": [{"name": "email", "type": "string", "format": "email", "nullable": false},
                 {"name": "age", "type": "integer", "nullable": false},
                 {"name": "city", "type": "string"}]}
  ],
  "computations": [
    {"name": "bank_synth", "kind": "synthetic", "input": "bank_customers",
     "mask": ["email"], "epsilon": 3, "bounds": {"age": [18, 90]}}
  ]
}
JSON
awk 'BEGIN {
	split("Berlin Hamburg Munich", c, " ");
	print "email,age,city";
	for (i = 0; i < 300; i++)
		printf "c%03d@mail.example,%d,%s\n", i, 20 + (i % 3) * 15 + (i * 7) % 10, c[1 + i % 3];
}' >"$T/bank.csv"

id=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"
expect_ok e2e_as anna dcr room publish "$id"
expect_ok e2e_as anna dcr provision "$id" bank_customers "$T/bank.csv"
A=$T/anna
I=$T/ian
mount_as anna "$id" "$A"
mount_as ian "$id" "$I"

for i in 1 2; do
	echo >"$I/computations/bank_synth/run" &&
		cat "$I/computations/bank_synth/result.csv" >"$T/s$i.csv" ||
		e2e_fail "run $i of bank_synth through the mount"
	expect_contains "$I/computations/bank_synth/status" "state: done"
	tr -d '\r' <"$T/s$i.csv" >"$T/s$i.norm"
	head -n 1 "$T/s$i.norm" | grep -q -x "email,age,city" ||
		e2e_fail "header: $(head -n 1 "$T/s$i.norm")"
	awk -F, 'NR == FNR { if (FNR > 1) em[$1] = 1; next }
		FNR > 1 && ($1 in em || $1 !~ /@example\.com$/ || $2 < 18 || $2 > 90 ||
		            $3 !~ /^(Berlin|Hamburg|Munich|\(other\)|)$/) { print; exit 1 }' \
		"$T/bank.csv" "$T/s$i.norm" >"$T/check.out" ||
		e2e_fail "run $i: row out of its domain: $(cat "$T/check.out")"
	# the noisy row count, near 300 (standard deviation about 25)
	[ "$(wc -l <"$T/s$i.norm")" -gt 150 ] || e2e_fail "run $i: $(wc -l <"$T/s$i.norm") lines"
done
if cmp -s "$T/s1.norm" "$T/s2.norm"; then
	e2e_fail "two synthetic runs gave the same table"
fi
# result/: the table and the report of the last run
expect_eq "$(ls "$I/computations/bank_synth/result" | tr '\n' ' ')" "dataset.csv report.json " \
	"files of result/"
cmp -s "$I/computations/bank_synth/result/dataset.csv" "$T/s2.csv" ||
	e2e_fail "result/dataset.csv is not result.csv"
python3 - "$I/computations/bank_synth/result/report.json" <<'PY' ||
import json, sys
r = json.load(open(sys.argv[1]))
assert abs(r["epsilon"] - 3) < 1e-9 and r["delta"] == 1e-9 and 0 < r["rho"] < 3, r
assert [m["column"] for m in r["masked"]] == ["email"], r["masked"]
assert [m["format"] for m in r["masked"]] == ["email"], r["masked"]
assert r["quality"]["source"] == "DP measurements only", r["quality"]
PY
	e2e_fail "report.json: $(cat "$I/computations/bank_synth/result/report.json")"
# the data owner is not the computation's analyst
wait_for "$A/computations/bank_synth/status" "state: done"
expect_eacces cat "$A/computations/bank_synth/result.csv"
expect_eacces ls "$A/computations/bank_synth/result"
expect_eacces cat "$A/computations/bank_synth/result/report.json"
e2e_log "ok"
