# sandbox_escapes.sh: the escape catalogue of issue 11 through a real dcrd.
# Each escape is a python computation of one room, run with dcr run; its
# script writes what it managed to /output/report.txt, read back with dcr
# result -o DIR, and the containment is checked here from the host: dcrd's
# socket and a TCP port opened by this test are never reached, no byte of
# dcrd's data directory (its keys, another room's data, an undeclared
# dataset) appears in any result, the limits fail the run naming them,
# a daemonised process is dead when its run ends, and dcrd answers
# `dcr status` all along. The same cases, with more detail, run without
# dcrd in tests/unit/test_cmp_sandbox.c.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"

e2e_setup
[ "$(id -u)" = 0 ] || e2e_skip "needs root (a uid of each run's own)"
command -v bwrap >/dev/null 2>&1 || e2e_skip "no bwrap on this host"
[ -x /usr/bin/python3 ] || e2e_skip "no /usr/bin/python3 on this host"
e2e_start_daemon
story_identities
story_csvs

# json_str FILE: the file's text as a JSON string
json_str() {
	python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$1"
}

# A TCP port on the host's loopback, held by a listener that records any
# connection it accepts.
python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
s.settimeout(1)
end = time.time() + 600
while time.time() < end:
    try:
        c, _ = s.accept()
        open(sys.argv[2], "a").write("connected\n")
        c.close()
    except socket.timeout:
        pass
' "$T/port" "$T/port.hits" &
E2E_PIDS="$E2E_PIDS $!"
i=0
while [ ! -s "$T/port" ]; do
	[ $i -lt 100 ] || e2e_fail "the host listener did not start"
	sleep 0.1
	i=$((i + 1))
done
PORT=$(cat "$T/port")

cat >"$T/net.py" <<PY
import os, socket
out = []
for fam, addr in [(socket.AF_INET, ("127.0.0.1", $PORT)), (socket.AF_INET6, ("::1", $PORT))]:
    try:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect(addr)
        out.append("CONNECTED")
    except OSError as e:
        out.append("refused")
for p in ["$T/sock", "/run/dcr.sock"]:
    out.append("sock-visible" if os.path.exists(p) else "sock-absent")
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(p)
        out.append("CONNECTED")
    except OSError:
        out.append("refused")
try:
    socket.getaddrinfo("example.com", 80)
    out.append("RESOLVED")
except OSError:
    out.append("nodns")
open("/output/report.txt", "w").write(" ".join(out))
PY

# Looks everywhere it can for dcrd's files and for rows of the insurer's
# dataset, which this computation does not declare.
cat >"$T/hunt.py" <<PY
import os
found = []
needles = [b"," + b"high,", b"," + b"low,", b"BEGIN" + b" PRIVATE"]
for root, dirs, files in os.walk("/", onerror=lambda e: None):
    if root.startswith(("/proc", "/sys", "/usr", "/dev")):
        dirs[:] = []
        continue
    for f in files:
        p = os.path.join(root, f)
        try:
            b = open(p, "rb").read(1 << 20)
        except OSError:
            continue
        if any(n in b for n in needles) or f in ("master.key", "daemon.pem"):
            found.append(p)
for p in ["$T/data", "$T/data/master.key", "$T/data/daemon.pem", "$T"]:
    if os.path.exists(p):
        found.append(p)
bank = open("/input/bank_customers/dataset.csv").read().count("\n")
open("/output/report.txt", "w").write("bank rows %d, found %r" % (bank, found))
PY

cat >"$T/write.py" <<PY
out = []
for p in ["$T/pwned", "$T/data/pwned", "/input/pwned", "/usr/pwned", "/pwned"]:
    try:
        open(p, "w").write("x")
        out.append("WROTE " + p)
    except OSError:
        out.append("no")
open("/output/report.txt", "w").write(" ".join(out))
PY

cat >"$T/procs.py" <<PY
import os
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
cmds = b" ".join(open("/proc/%d/cmdline" % p, "rb").read() for p in pids)
open("/output/report.txt", "w").write("%d %s %s" % (len(pids), $E2E_DAEMON_PID in pids,
                                                       b"dcrd" in cmds))
PY

# The scripts that leave processes behind name them (comm) with this test's
# token, so that the check below sees only this test's processes (other
# tests may run sandboxes at the same time).
TOKEN="esc$$"
NAME="import ctypes\\nctypes.CDLL(None).prctl(15, b'$TOKEN', 0, 0, 0)\\n"

cat >"$T/daemon.py" <<PY
import ctypes, os, time
ctypes.CDLL(None).prctl(15, b"$TOKEN", 0, 0, 0)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for fd in range(3):
            os.close(fd)
        time.sleep(1)
        try:
            open("$T/marker", "w").write("alive")
        except OSError:
            pass
        time.sleep(600)
    os._exit(0)
open("/output/report.txt", "w").write("parent done")
PY

cat >"$T/links.py" <<PY
import os
os.symlink("/input/bank_customers/dataset.csv", "/output/in.csv")
os.symlink("$T/data/master.key", "/output/key")
PY

cat >"$T/room.json" <<JSON
{
  "format": "dcr.room/1",
  "name": "escapes",
  "settings": {"require_provisioned": true},
  "participants": [
    {"email": "anna@bank.example", "key": "$ANNA_KEY",
     "owner_of": ["bank_customers"],
     "analyst_of": ["net", "hunt", "write", "procs", "daemon", "links", "bomb", "memory",
                    "cpu", "fill"]},
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
                 {"name": "premium", "type": "float", "nullable": false}]}
  ],
  "computations": [
    {"name": "net", "kind": "python", "inputs": [], "script": $(json_str "$T/net.py")},
    {"name": "hunt", "kind": "python", "inputs": ["bank_customers"],
     "script": $(json_str "$T/hunt.py")},
    {"name": "write", "kind": "python", "inputs": [], "script": $(json_str "$T/write.py")},
    {"name": "procs", "kind": "python", "inputs": [], "script": $(json_str "$T/procs.py")},
    {"name": "daemon", "kind": "python", "inputs": [], "script": $(json_str "$T/daemon.py")},
    {"name": "links", "kind": "python", "inputs": ["bank_customers"],
     "script": $(json_str "$T/links.py")},
    {"name": "bomb", "kind": "python", "inputs": [], "limits": {"processes": 16},
     "script": "${NAME}import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"},
    {"name": "memory", "kind": "python", "inputs": [], "limits": {"memory_mb": 256},
     "script": "${NAME}x = []\nwhile True:\n    x.append(bytearray(8 << 20))\n"},
    {"name": "cpu", "kind": "python", "inputs": [], "limits": {"cpu_seconds": 2},
     "script": "${NAME}while True:\n    pass\n"},
    {"name": "fill", "kind": "python", "inputs": [], "limits": {"output_mb": 1},
     "script": "${NAME}f = open('/output/big', 'wb')\nwhile True:\n    f.write(b'B' * 65536)\n"}
  ]
}
JSON
ROOM=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"
expect_ok e2e_as anna dcr room publish "$ROOM"
expect_ok e2e_as anna dcr provision "$ROOM" bank_customers "$T/bank.csv"
expect_ok e2e_as ian dcr provision "$ROOM" insurer_customers "$T/insurer.csv"

# another room, whose data no script of this one may see
story_room_json "$T/other.json" other-room false
OTHER=$(e2e_as anna dcr room create "$T/other.json") || e2e_fail "other room create"
expect_ok e2e_as anna dcr room publish "$OTHER"
expect_ok e2e_as ian dcr provision "$OTHER" insurer_customers "$T/insurer.csv"

# ok COMP: runs it, expects success, leaves its report in $T/COMP/report.txt
ok() {
	expect_ok e2e_as anna dcr run "$ROOM" "$1" --wait --timeout 120
	rm -rf "$T/$1"
	expect_ok e2e_as anna dcr result "$ROOM" "$1" -o "$T/$1"
}
# fails COMP TEXT: the run fails; its status shows TEXT
fails() {
	expect_fail e2e_as anna dcr run "$ROOM" "$1" --wait --timeout 120
	expect_ok e2e_as anna dcr status "$ROOM" "$1"
	expect_contains "$E2E_OUT" "$2"
}
# no process of this test's scripts is alive
no_sandbox_procs() {
	n=$(grep -lx "$TOKEN" /proc/[0-9]*/comm 2>/dev/null | wc -l)
	[ "$n" -eq 0 ] || e2e_fail "$n processes of a script are alive after its run"
}

ok net
expect_eq "$(cat "$T/net/report.txt")" \
	"refused refused sock-absent refused sock-absent refused nodns" "net report"
[ ! -s "$T/port.hits" ] || e2e_fail "a script reached the host's TCP port"
ok hunt
expect_eq "$(cat "$T/hunt/report.txt")" "bank rows 201, found []" "hunt report"
ok write
expect_eq "$(cat "$T/write/report.txt")" "no no no no no" "write report"
[ ! -e "$T/pwned" ] && [ ! -e "$T/data/pwned" ] || e2e_fail "a script wrote outside /output"
ok procs
expect_eq "$(cat "$T/procs/report.txt")" "2 False False" "procs report"
ok daemon
expect_eq "$(cat "$T/daemon/report.txt")" "parent done" "daemon report"
no_sandbox_procs
sleep 1.5
[ ! -e "$T/marker" ] || e2e_fail "a daemonised script outlived its run"
fails links "error        output rule"
no_sandbox_procs

# the limits, with dcrd answering another client while each runs
for c in bomb memory cpu fill; do
	e2e_as anna dcr run "$ROOM" "$c" >/dev/null || e2e_fail "run $c"
	i=0
	seen=0
	while :; do
		grep -qlx "$TOKEN" /proc/[0-9]*/comm 2>/dev/null && seen=1
		e2e_as ian dcr status "$OTHER" >/dev/null 2>"$T/st.err" ||
			e2e_fail "dcr status did not answer during $c: $(cat "$T/st.err")"
		e2e_as anna dcr status "$ROOM" "$c" >"$T/st.out" 2>&1 || e2e_fail "status $c"
		grep -q "state        failed" "$T/st.out" && break
		grep -q "state        completed" "$T/st.out" && e2e_fail "$c completed"
		[ $i -lt 600 ] || e2e_fail "$c did not end: $(cat "$T/st.out")"
		sleep 0.1
		i=$((i + 1))
	done
	no_sandbox_procs
	cp "$T/st.out" "$T/$c.status"
	# the check above can see the script's processes: it did while the
	# CPU loop ran (2 s of CPU)
	[ "$c" != cpu ] || [ "$seen" = 1 ] || e2e_fail "no process named $TOKEN seen during cpu"
done
expect_contains "$T/bomb.status" "error        process limit"
expect_contains "$T/memory.status" "error        memory limit"
expect_contains "$T/cpu.status" "error        cpu limit"
expect_contains "$T/fill.status" "error        output limit"

# no private byte in dcrd's log, and the log verifies
grep -q "high,\|BEGIN PRIVATE" "$T/dcrd.log" && e2e_fail "dcrd logged private bytes"
expect_ok e2e_as anna dcr audit export "$ROOM" -o "$T/room.export"
expect_verifiers_agree "$T/room.export" >/dev/null
expect_ok e2e_stop_daemon
echo "sandbox_escapes: ok"
