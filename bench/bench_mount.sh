#!/bin/sh
# bench_mount.sh: provisioning throughput through `cp` into a mounted room,
# against `cp` of the same file to a local directory.
#
#   sh bench/bench_mount.sh BUILD_DIR [MB]      (default 500 MB)
#
# Everything is included in the mount figure: FUSE, the mount's upload
# ring, the protocol round trips, the daemon's CSV validation, statistics,
# SHA-256, encryption at rest and the dataset.provisioned event (cp returns
# only after close, when the daemon has accepted the file). The daemon and
# the mount run on this machine; the CSV is generated first (awk) and is in
# the page cache for both copies. Prints one line per measurement.
set -u
BUILD=${1:?usage: bench_mount.sh BUILD_DIR [MB]}
MB=${2:-500}
BUILD=$(cd "$BUILD" && pwd)
DCR_SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
export DCR_SOURCE_DIR
PATH=$BUILD/daemon:$BUILD/tools:$PATH
export PATH
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/mount_lib.inc"
E2E_NAME=bench_mount
mount_require
e2e_setup
e2e_start_daemon

ANNA=$(e2e_identity anna anna@bank.example) || e2e_fail "keygen"
cat >"$T/room.json" <<JSON
{"format": "dcr.room/1", "name": "bench-mount", "description": "mount throughput",
 "settings": {"interactive": true, "development": false, "require_provisioned": true},
 "participants": [{"email": "anna@bank.example", "key": "${ANNA#* }",
   "owner_of": ["customers"], "analyst_of": ["per_city"]}],
 "datasets": [{"name": "customers", "kind": "table",
   "columns": [{"name": "email", "type": "string", "nullable": false},
               {"name": "age", "type": "integer"},
               {"name": "city", "type": "string", "allow": ["group"]},
               {"name": "balance", "type": "float"}]}],
 "computations": [{"name": "per_city", "kind": "sql", "privacy": {"min_rows_aggregated": 10},
   "query": "SELECT city, COUNT(*) AS n FROM customers GROUP BY city"}]}
JSON
id=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"
M=$T/mnt
mount_as anna "$id" "$M"
echo publish >"$M/ctl" || e2e_fail "publish"

awk -v mb="$MB" 'BEGIN {
	print "email,age,city,balance";
	n = int(mb * 1048576 / 52);
	for (i = 0; i < n; i++)
		printf "customer%09d@bank-mail.example,%d,Berlin,%d.%02d\n", i, 20 + i % 60, i % 100000, i % 100;
}' >"$T/big.csv"
bytes=$(wc -c <"$T/big.csv")
cat "$T/big.csv" >/dev/null

now() { date +%s.%N; }
rate() { awk -v b="$bytes" -v t0="$1" -v t1="$2" 'BEGIN { s = t1 - t0; printf "%.2f s, %.0f MiB/s (%.0f MB/s)", s, b / 1048576 / s, b / 1e6 / s }'; }

mkdir -p "$T/local"
t0=$(now)
cp "$T/big.csv" "$T/local/" || e2e_fail "local cp"
t1=$(now)
echo "cp to a local directory:        $(rate "$t0" "$t1") ($bytes bytes)"
rm -f "$T/local/big.csv"
t0=$(now)
cp "$T/big.csv" "$T/local/" && sync "$T/local/big.csv" || e2e_fail "local cp"
t1=$(now)
echo "cp to a local directory + sync: $(rate "$t0" "$t1")"
rm -f "$T/local/big.csv"

# CPU time (user + system) of a process, in seconds.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
mpid=$(mount_pid "$M") || e2e_fail "no mount process"
for i in 1 2 3; do
	c0=$(cpu_s "$mpid")
	d0=$(cpu_s "$E2E_DAEMON_PID")
	t0=$(now)
	cp "$T/big.csv" "$M/datasets/customers/" || e2e_fail "cp into the mount"
	t1=$(now)
	c1=$(cpu_s "$mpid")
	d1=$(cpu_s "$E2E_DAEMON_PID")
	echo "cp into the mount (run $i):      $(rate "$t0" "$t1"); CPU s: mount $(awk "BEGIN { print $c1 - $c0 }"), dcrd $(awk "BEGIN { print $d1 - $d0 }")"
done
grep -E '^(rows|bytes):' "$M/datasets/customers/status"
# The same upload without the mount: the protocol and the daemon alone.
t0=$(now)
e2e_as anna dcr provision "$id" customers "$T/big.csv" >/dev/null 2>&1 || e2e_fail "dcr provision"
t1=$(now)
echo "dcr provision (no mount):       $(rate "$t0" "$t1")"
# Daemon time per 1 MiB chunk (dcrd log): validation, with hashing,
# encryption and the write overlapping it on a blob helper thread.
grep 'upload.chunk' "$T/dcrd.log" | awk '{ ms = $(NF - 1); s += ms; n++ } END { if (n) printf "daemon upload.chunk: %d chunks, mean %.2f ms\n", n, s / n }'
echo "mount process peak RSS: $(awk '/VmHWM/ { print $2, $3 }' "/proc/$mpid/status") (memory stays bounded whatever the file size)"
dcr umount "$M"
