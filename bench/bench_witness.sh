#!/bin/sh
# bench_witness.sh: what the clients' witness costs (docs/benchmarks.md,
# "Witness"). Run it with the dcr and dcrd to measure first on PATH:
#
#   PATH=BUILD/tools:BUILD/daemon:$PATH sh bench/bench_witness.sh [EVENTS]
#
# A room of EVENTS events (default 500: draft saves) on a fresh dcrd, then
#   1. `dcr status ROOM`, 20 times, median and p90 wall ms (each one fetches
#      the checkpoint, a consistency proof when the room grew, every event);
#   2. `dcr status ROOM` right after one new event, 20 times (the witness
#      asks for a consistency proof and rewrites its file each time);
#   3. a mount following the room for 20 s while idle: its CPU time (the
#      refresh every 200 ms: one checkpoint request and the file check);
#   4. the same mount while 20 events arrive, one every 0.5 s: CPU time and
#      the time until the last shows in its status;
#   5. with DCR_BEFORE=PATH (a dcr built without the witness): `dcr status`
#      of both binaries interleaved, 30 times each, on the same host and
#      room (the loaded machine's noise hits both alike).
# Prints one line per measure. Everything lives in a temp dir, removed at
# the end; the mount is skipped without /dev/fuse.
set -u
N=${1:-500}
T=$(mktemp -d /tmp/dcr-bench-witness-XXXXXX)
PID=
cleanup() {
	[ -d "$T/m" ] && { fusermount3 -u -z "$T/m" 2>/dev/null || true; }
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap "exit 1" INT TERM
export HOME="$T/home" DCR_CONFIG_DIR="$T/cfg" TMPDIR="$T"
mkdir -p "$HOME"
dcrd --data "$T/data" --socket "$T/sock" >"$T/dcrd.log" 2>&1 &
PID=$!
while [ ! -S "$T/sock" ]; do sleep 0.1; done
export DCR_SOCKET="$T/sock" DCR_IDENTITY="$T/a.pem"
KEY=$(dcr keygen --email a@bench.example --out "$T/a.pem" | awk '{print $2}')
def() {
	printf '{"format": "dcr.room/1", "name": "bench-witness", "description": "v%s",
	 "participants": [{"email": "a@bench.example", "key": "%s", "owner_of": ["d"]}],
	 "datasets": [{"name": "d", "kind": "table", "columns": [{"name": "x", "type": "integer"}]}]}' "$1" "$KEY"
}
def 0 >"$T/r.json"
R=$(dcr room create "$T/r.json")
i=1
while [ $i -lt "$N" ]; do
	def $i >"$T/r.json"
	dcr room save "$R" "$T/r.json" >/dev/null || exit 1
	i=$((i + 1))
done
ms() { date +%s%N | cut -c1-13; }
stat_line() { # name, then one number per line on stdin
	sort -n | awk -v name="$1" '{ v[NR] = $1 } END {
		printf "%s: median %d ms, p90 %d ms (%d runs)\n", name, v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.5)], NR }'
}
dcr status "$R" >/dev/null || exit 1
for k in $(seq 20); do
	a=$(ms); dcr status "$R" >/dev/null; b=$(ms); echo $((b - a))
done | stat_line "dcr status, $N events, unchanged"
for k in $(seq 20); do
	def "x$k" >"$T/r.json"
	dcr room save "$R" "$T/r.json" >/dev/null
	a=$(ms); dcr status "$R" >/dev/null; b=$(ms); echo $((b - a))
done | stat_line "dcr status, $N events, one new"
if [ -n "${DCR_BEFORE:-}" ]; then
	: >"$T/t.before"
	: >"$T/t.after"
	for k in $(seq 30); do
		a=$(ms); "$DCR_BEFORE" status "$R" >/dev/null; b=$(ms); echo $((b - a)) >>"$T/t.before"
		a=$(ms); dcr status "$R" >/dev/null; b=$(ms); echo $((b - a)) >>"$T/t.after"
	done
	stat_line "interleaved dcr status, $N events, without the witness" <"$T/t.before"
	stat_line "interleaved dcr status, $N events, with the witness" <"$T/t.after"
fi
if [ -c /dev/fuse ] && command -v fusermount3 >/dev/null; then
	mkdir "$T/m"
	dcr mount "$R" "$T/m" || exit 1
	MP=$(pgrep -f "dcr mount $R $T/m" | head -n 1)
	cpu() { awk '{ print $14 + $15 }' "/proc/$MP/stat"; }
	hz=$(getconf CLK_TCK)
	c0=$(cpu); sleep 20; c1=$(cpu)
	echo "mount following an idle room, 20 s: $(( (c1 - c0) * 1000 / hz )) ms CPU"
	c0=$(cpu); a=$(ms)
	for k in $(seq 20); do
		def "m$k" >"$T/r.json"
		dcr room save "$R" "$T/r.json" >/dev/null
		sleep 0.5
	done
	want=$((N + 40))
	while ! grep -q "^events: $want" "$T/m/status"; do sleep 0.05; done
	b=$(ms); c1=$(cpu)
	echo "mount following 20 new events over $(( (b - a) / 1000 )) s: $(( (c1 - c0) * 1000 / hz )) ms CPU"
	fusermount3 -u "$T/m"
fi
