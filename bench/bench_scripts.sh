#!/bin/sh
# bench_scripts.sh: python computations through dcrd (issue 11).
#
#   sh bench/bench_scripts.sh BUILD_DIR [RUNS] [ROWS]   (defaults 10, 1000000)
#
# 1. Overhead: a python script that copies its input (a 1,000-row table
#    dataset, /input/t/dataset.csv) to /output, run RUNS times as a python
#    computation through a real dcrd (`dcr run --wait`), against the same
#    script run directly (`/usr/bin/python3 -I -B` on local copies of the
#    same files). Reported: the run's duration as dcrd records it in
#    run.completed (from the job's start to the result stored: inputs
#    streamed, sandbox built, script, output collected, archive and logs
#    stored), the whole `dcr run --wait` round trip (CLI start, signing,
#    the request, polling), and the direct run; medians, and the overhead
#    = dcrd's duration minus the direct run.
# 2. A pandas group-by over the bank table of ROWS rows (the 1M-row table
#    of bench_cmp / bench_dmn --overlap, generated here with awk) as a
#    python computation declaring its columns: the run's duration, the
#    script's own wall and CPU and its peak RSS (from dcrd's log line,
#    measured by the sandbox), and the same script run directly (time -v).
set -u
BUILD=${1:?usage: bench_scripts.sh BUILD_DIR [RUNS] [ROWS]}
RUNS=${2:-10}
ROWS=${3:-1000000}
BUILD=$(cd "$BUILD" && pwd)
DCR_SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
export DCR_SOURCE_DIR
PATH=$BUILD/daemon:$BUILD/tools:$PATH
export PATH
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
E2E_NAME=bench_scripts
e2e_setup
e2e_start_daemon --no-sync

ANNA=$(e2e_identity anna anna@bank.example) || e2e_fail "keygen"
json_str() {
	python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$1"
}
cat >"$T/copy.py" <<'PY'
import os, shutil
b = os.environ.get("BENCH_BASE", "")
shutil.copy(b + "/input/t/dataset.csv", b + "/output/dataset.csv")
PY
cat >"$T/groupby.py" <<'PY'
import os
import pandas as pd
b = os.environ.get("BENCH_BASE", "")
df = pd.read_csv(b + "/input/bank/dataset.csv")
g = df.groupby("city").agg(n=("email", "count"), age=("age", "mean"),
                           balance=("balance", "sum")).reset_index()
g.to_csv(b + "/output/dataset.csv", index=False)
PY
awk 'BEGIN { print "email,age,city,balance";
	for (i = 0; i < 1000; i++) printf "u%06d@mail.example,%d,c%d,%.2f\n", i, 20 + i % 50, i % 7, i * 1.5 }' >"$T/t.csv"
# the bank table of bench_overlap.h's shape: email, age, city, balance
awk -v n="$ROWS" 'BEGIN { split("Berlin Hamburg Munich Cologne Frankfurt Stuttgart Leipzig Bonn", c, " ");
	print "email,age,city,balance";
	for (i = 0; i < n; i++) printf "c%07d@mail.example,%d,%s,%.2f\n", i, 18 + (i * 7) % 70, c[1 + i % 8], (i * 37) % 100000 / 10 }' >"$T/bank.csv"
cat >"$T/room.json" <<JSON
{"format": "dcr.room/1", "name": "bench-scripts",
 "settings": {"require_provisioned": true},
 "participants": [{"email": "anna@bank.example", "key": "${ANNA#* }",
   "owner_of": ["t", "bank"], "analyst_of": ["copy", "groupby"]}],
 "datasets": [
   {"name": "t", "kind": "table",
    "columns": [{"name": "email", "type": "string"}, {"name": "age", "type": "integer"},
                {"name": "city", "type": "string"}, {"name": "balance", "type": "float"}]},
   {"name": "bank", "kind": "table",
    "columns": [{"name": "email", "type": "string"}, {"name": "age", "type": "integer"},
                {"name": "city", "type": "string"}, {"name": "balance", "type": "float"}]}],
 "computations": [
   {"name": "copy", "kind": "python", "inputs": ["t"], "script": $(json_str "$T/copy.py")},
   {"name": "groupby", "kind": "python", "inputs": ["bank"],
    "columns": [{"name": "city", "type": "string"}, {"name": "n", "type": "integer"},
                {"name": "age", "type": "float"}, {"name": "balance", "type": "float"}],
    "script": $(json_str "$T/groupby.py")}]}
JSON
ROOM=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"
e2e_as anna dcr room publish "$ROOM" >/dev/null || e2e_fail "publish"
e2e_as anna dcr provision "$ROOM" t "$T/t.csv" >/dev/null || e2e_fail "provision t"
e2e_as anna dcr provision "$ROOM" bank "$T/bank.csv" >/dev/null || e2e_fail "provision bank"

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ms_now() { date +%s%3N; }

# 1. overhead
mkdir -p "$T/direct/input/t" "$T/direct/output"
cp "$T/t.csv" "$T/direct/input/t/dataset.csv"
: >"$T/dur" ; : >"$T/rt" ; : >"$T/direct.ms"
i=0
while [ $i -lt "$RUNS" ]; do
	t0=$(ms_now)
	e2e_as anna dcr run "$ROOM" copy --wait --timeout 300 >/dev/null || e2e_fail "run copy"
	t1=$(ms_now)
	echo $((t1 - t0)) >>"$T/rt"
	e2e_as anna dcr status "$ROOM" copy | awk '$1 == "duration" { print $2 }' >>"$T/dur"
	t0=$(ms_now)
	BENCH_BASE=$T/direct /usr/bin/python3 -I -B "$T/copy.py" || e2e_fail "direct copy"
	t1=$(ms_now)
	echo $((t1 - t0)) >>"$T/direct.ms"
	i=$((i + 1))
done
dur=$(median <"$T/dur"); rt=$(median <"$T/rt"); direct=$(median <"$T/direct.ms")
echo "copy script, $RUNS runs (medians): dcrd duration ${dur} ms, dcr run --wait ${rt} ms, direct python3 ${direct} ms, overhead $((dur - direct)) ms (target <= 50)"

# 2. pandas group-by over ROWS rows
t0=$(ms_now)
e2e_as anna dcr run "$ROOM" groupby --wait --timeout 900 >/dev/null || e2e_fail "run groupby: $(e2e_as anna dcr status "$ROOM" groupby)"
t1=$(ms_now)
gdur=$(e2e_as anna dcr status "$ROOM" groupby | awk '$1 == "duration" { print $2 }')
line=$(grep "(groupby): script wall" "$T/dcrd.log" | tail -n 1)
mkdir -p "$T/gdirect/input/bank" "$T/gdirect/output"
cp "$T/bank.csv" "$T/gdirect/input/bank/dataset.csv"
/usr/bin/time -v env BENCH_BASE="$T/gdirect" /usr/bin/python3 -I -B "$T/groupby.py" 2>"$T/time.out" ||
	e2e_fail "direct groupby: $(cat "$T/time.out")"
dwall=$(awk -F': ' '/Elapsed \(wall clock\)/ { print $2 }' "$T/time.out")
drss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$T/time.out")
echo "pandas group-by over $ROWS rows: dcrd duration ${gdur} ms, dcr run --wait $((t1 - t0)) ms; ${line#*: }"
echo "  direct python3: wall $dwall, peak RSS $drss KiB"
e2e_stop_daemon
