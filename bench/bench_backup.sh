#!/bin/sh
# bench_backup.sh: `dcr admin backup` of a host of about 100 MB while it
# serves, and what the backup costs the clients (issue 18).
#
#   sh bench/bench_backup.sh BUILD_DIR [ROWS] [SECONDS] [BACKUPS]
#   (defaults 1000000, 15, 5)
#
# A dcrd (full sync, as in production) with one room holding a bank table
# of ROWS rows and an insurer table of ROWS/2 rows (about 55 MB of CSV;
# their encrypted files, statistics and prepared tables make the blobs),
# an SQL computation over a 3-row table as the probe. A probe loop runs
# `dcr run ROOM probe --wait` (a signed submit, a queued run, its
# run.completed appended, polling) and `dcr status ROOM` (replay of the
# log, checkpoint check) back to back and records each command's wall
# time. SECONDS of probes alone, then BACKUPS backups back to back with
# probes going on, then SECONDS alone again. Reported: the host's size (dcr admin status),
# the backup's time and size, and the probes' wall times (median, p95,
# max) outside and during the backup, with dcrd's own request durations
# from its log (submit, run.status, events) in both windows.
set -u
BUILD=${1:?usage: bench_backup.sh BUILD_DIR [ROWS] [SECONDS]}
ROWS=${2:-1000000}
SECS=${3:-15}
BACKUPS=${4:-5}
BUILD=$(cd "$BUILD" && pwd)
DCR_SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
export DCR_SOURCE_DIR
PATH=$BUILD/daemon:$BUILD/tools:$PATH
export PATH
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
E2E_NAME=bench_backup
e2e_setup
e2e_start_daemon

ANNA=$(e2e_identity anna anna@bank.example) || e2e_fail "keygen"
awk -v n="$ROWS" 'BEGIN { split("Berlin Hamburg Munich Cologne Frankfurt Stuttgart Leipzig Bonn", c, " ");
	print "email,age,city,balance";
	for (i = 0; i < n; i++) printf "c%07d@mail.example,%d,%s,%.2f\n", i, 18 + (i * 7) % 70, c[1 + i % 8], (i * 37) % 100000 / 10 }' >"$T/bank.csv"
awk -v n="$((ROWS / 2))" 'BEGIN { print "email,risk_class,premium";
	for (i = 0; i < n; i++) printf "c%07d@mail.example,%s,%.2f\n", i * 2, (i % 2 ? "high" : "low"), 200 + (i * 13) % 700 }' >"$T/insurer.csv"
printf 'x\n1\n2\n3\n' >"$T/t.csv"
cat >"$T/room.json" <<JSON
{"format": "dcr.room/1", "name": "bench-backup",
 "settings": {"interactive": true},
 "participants": [{"email": "anna@bank.example", "key": "${ANNA#* }",
   "owner_of": ["bank", "insurer", "t"], "analyst_of": ["probe"]}],
 "datasets": [
  {"name": "bank", "kind": "table", "required": true, "columns": [
    {"name": "email", "type": "string", "nullable": false, "allow": ["join"]},
    {"name": "age", "type": "integer", "nullable": false, "allow": ["aggregate"]},
    {"name": "city", "type": "string", "nullable": false, "allow": ["group"]},
    {"name": "balance", "type": "float", "nullable": false, "allow": ["aggregate"]}]},
  {"name": "insurer", "kind": "table", "required": true, "columns": [
    {"name": "email", "type": "string", "nullable": false, "allow": ["join"]},
    {"name": "risk_class", "type": "string", "nullable": false, "allow": ["group"]},
    {"name": "premium", "type": "float", "nullable": false, "allow": ["aggregate"]}]},
  {"name": "t", "kind": "table", "required": true, "columns": [
    {"name": "x", "type": "integer", "nullable": false, "allow": ["aggregate"]}]}],
 "computations": [
  {"name": "probe", "kind": "sql", "privacy": {"min_rows_aggregated": 1},
   "query": "SELECT SUM(x) AS s FROM t"}]}
JSON
ROOM=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"
e2e_as anna dcr room publish "$ROOM" >/dev/null || e2e_fail "publish"
for ds in bank insurer t; do
	e2e_as anna dcr provision "$ROOM" "$ds" "$T/$ds.csv" >/dev/null || e2e_fail "provision $ds"
done
e2e_as anna dcr run "$ROOM" probe --wait --timeout 600 >/dev/null || e2e_fail "first run"
# wait for the prepared tables (background builds) to be stored
i=0
while [ "$(grep -c 'prepared table' "$T/dcrd.log")" -lt 3 ] && [ $i -lt 1200 ]; do
	sleep 0.5
	i=$((i + 1))
done
dcr admin status >"$T/status.txt" || e2e_fail "admin status"

now_ms() { date +%s%3N; }
probe() { # probe KIND CMD...: appends "start end kind" to $T/probe.txt
	_k=$1
	shift
	_s=$(now_ms)
	"$@" >/dev/null 2>>"$T/probe.err" || echo "probe $_k failed" >>"$T/probe.fail"
	echo "$_s $(now_ms) $_k" >>"$T/probe.txt"
}
(
	while [ ! -e "$T/stop" ]; do
		probe run e2e_as anna dcr run "$ROOM" probe --wait --timeout 600
		probe status e2e_as anna dcr status "$ROOM"
	done
) &
E2E_PIDS="$E2E_PIDS $!"
PROBE=$!
sleep "$SECS"
# BACKUPS backups back to back (each removed once made, as a cron job
# moving it away would), so that enough probes fall inside
B0=$(now_ms)
for b in $(seq 1 "$BACKUPS"); do
	b0=$(now_ms)
	dcr admin backup "$T/backup" >>"$T/backup.txt" 2>&1 || e2e_fail "backup: $(cat "$T/backup.txt")"
	echo "  wall $(($(now_ms) - b0)) ms; $(du -sh "$T/backup" | cut -f1) on disk" >>"$T/backup.txt"
	rm -rf "$T/backup"
done
B1=$(now_ms)
sleep "$SECS"
touch "$T/stop"
wait "$PROBE" 2>/dev/null
[ ! -s "$T/probe.fail" ] || e2e_fail "a probe failed: $(head -n 3 "$T/probe.fail") $(tail -n 3 "$T/probe.err")"

echo "host:"
sed 's/^/  /' "$T/status.txt"
echo "backups:"
cat "$T/backup.txt"
python3 - "$T/probe.txt" "$T/dcrd.log" "$B0" "$B1" <<'EOF'
import re, sys, datetime
probe, log, b0, b1 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def stats(xs):
    if not xs:
        return "none"
    xs = sorted(xs)
    return "n %d, median %d, p95 %d, max %d ms" % (
        len(xs), xs[len(xs) // 2], xs[min(len(xs) - 1, int(len(xs) * 0.95))], xs[-1])
rows = [l.split() for l in open(probe)]
for kind in ("run", "status"):
    during = [int(e) - int(s) for s, e, k in rows if k == kind and int(e) > b0 and int(s) < b1]
    outside = [int(e) - int(s) for s, e, k in rows if k == kind and not (int(e) > b0 and int(s) < b1)]
    print("probe dcr %s: outside the backup: %s; during: %s" % (
        "run --wait" if kind == "run" else "status", stats(outside), stats(during)))
pat = re.compile(r"^(\S+)Z dcrd info: anna@bank\.example (submit|run\.status|events|size|checkpoint)\S* .* ok (\d+) ms$")
reqs = {"in": {}, "out": {}}
for line in open(log):
    m = pat.match(line.strip())
    if not m:
        continue
    t = datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc)
    ms = int(t.timestamp() * 1000)
    w = "in" if b0 <= ms <= b1 else "out"
    reqs[w].setdefault(m.group(2), []).append(int(m.group(3)))
for op in ("submit", "run.status", "events", "size", "checkpoint"):
    print("dcrd %s: outside: %s; during: %s" % (op, stats(reqs["out"].get(op, [])),
                                                 stats(reqs["in"].get(op, []))))
EOF
grep "backup .*snapshot" "$T/dcrd.log" | sed 's/^/dcrd: /'
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"
