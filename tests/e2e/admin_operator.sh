# admin_operator.sh: the operator's commands are for root and dcrd's own
# user only (SO_PEERCRED on the unix socket), and `dcr admin status`
# reports the host (docs/operations.md "Health").
#
# Needs root (to act as other users with setpriv); skipped otherwise.
#   - dcrd runs as root: root's `dcr admin status` answers (text and JSON,
#     the counts matching what was done); uid 65534 (nobody) gets EDENIED
#     naming its uid for status and backup, and the backup directory is
#     not left behind; nobody's participant commands still work.
#   - dcrd runs as nobody: nobody's status answers (dcrd's own uid), so does
#     root's; uid 65533 is refused.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"

[ "$(id -u)" = 0 ] || e2e_skip "needs root to run commands as other users"
command -v setpriv >/dev/null 2>&1 || e2e_skip "needs setpriv"

e2e_setup
chmod 711 "$T"
as_uid() { # as_uid UID CMD...: CMD as UID (group the same), HOME in $T/home.UID
	_u=$1
	shift
	mkdir -p "$T/home.$_u"
	chown "$_u:$_u" "$T/home.$_u"
	setpriv --reuid="$_u" --regid="$_u" --clear-groups env HOME="$T/home.$_u" \
		DCR_SOCKET="$DCR_SOCKET" "$@"
}

e2e_start_daemon
chmod 666 "$T/sock"
anna=$(e2e_identity anna anna@bank.example) || e2e_fail "keygen anna"
cat >"$T/room.json" <<JSON
{
  "format": "dcr.room/1",
  "name": "ops",
  "settings": {"interactive": true},
  "participants": [
    {"email": "anna@bank.example", "key": "${anna#* }", "owner_of": ["t"], "analyst_of": ["total"]}
  ],
  "datasets": [
    {"name": "t", "kind": "table", "required": true,
     "columns": [{"name": "x", "type": "integer", "nullable": false, "allow": ["aggregate"]}]}
  ],
  "computations": [
    {"name": "total", "kind": "sql", "privacy": {"min_rows_aggregated": 1},
     "query": "SELECT COUNT(*) AS k FROM t"}
  ]
}
JSON
ROOM=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"
expect_ok e2e_as anna dcr room publish "$ROOM"
printf 'x\n1\n2\n3\n' >"$T/t.csv"
expect_ok e2e_as anna dcr provision "$ROOM" t "$T/t.csv"
expect_ok e2e_as anna dcr run "$ROOM" total --wait --timeout 120

# ---- root, the operator: status as text and as JSON
expect_ok dcr admin status
expect_contains "$E2E_OUT" "rooms     1 (5 events)"
expect_contains "$E2E_OUT" "runs      0 queued, 0 running"
expect_contains "$E2E_OUT" "data $T/data"
expect_ok dcr admin status --json
python3 - "$E2E_OUT" <<'EOF' || e2e_fail "status --json: $(cat "$E2E_OUT")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["rooms"] == 1 and s["events"] == 5, s
assert s["runs_queued"] == 0 and s["runs_running"] == 0 and s["uploads_open"] == 0, s
# the provision: its file, statistics and prepared table; the run's result
assert s["blobs"] >= 3 and s["blobs_bytes"] > 0, s
assert s["rss_bytes"] > 0 and s["disk_total_bytes"] >= s["disk_free_bytes"] > 0, s
assert s["uptime_ms"] > 0 and s["backups"] == 0 and s["events_bytes"] > 0, s
EOF

# ---- nobody: not the operator
expect_fail as_uid 65534 dcr admin status
expect_stderr "admin operations are for the host's operator" "this connection is uid 65534"
expect_fail as_uid 65534 dcr admin backup "$T/home.65534/b"
expect_stderr "admin operations are for the host's operator"
[ ! -e "$T/home.65534/b" ] || e2e_fail "a refused backup left its directory"
# nobody is an ordinary client otherwise
expect_ok as_uid 65534 dcr keygen --email nobody@host.example
expect_ok as_uid 65534 dcr whoami
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"

# ---- dcrd runs as nobody: its own uid is the operator too
mkdir "$T/nobdata"
chown 65534:65534 "$T/nobdata"
DCR_SOCKET="$T/nobdata/sock"
setpriv --reuid=65534 --regid=65534 --clear-groups \
	dcrd --data "$T/nobdata/d" --socket "$T/nobdata/sock" >>"$T/dcrd.log" 2>&1 &
E2E_DAEMON_PID=$!
E2E_PIDS="$E2E_PIDS $E2E_DAEMON_PID"
i=0
while [ ! -S "$T/nobdata/sock" ]; do
	kill -0 "$E2E_DAEMON_PID" 2>/dev/null || e2e_fail "dcrd as nobody exited at start"
	[ $i -lt 600 ] || e2e_fail "dcrd as nobody did not listen within 60 s"
	sleep 0.1
	i=$((i + 1))
done
chmod 666 "$T/nobdata/sock"
expect_ok as_uid 65534 dcr admin status
expect_contains "$E2E_OUT" "rooms     0 (0 events)"
expect_ok dcr --socket "$T/nobdata/sock" admin status
expect_fail as_uid 65533 dcr admin status
expect_stderr "admin operations are for the host's operator (uid 0 or dcrd's uid 65534)" \
	"this connection is uid 65533"
e2e_stop_daemon || e2e_fail "dcrd (nobody) did not stop cleanly"
echo "admin_operator: ok"
