# config.sh: dcrd's configuration file (--config) and SIGHUP reload, the
# way an operator uses them (docs/operations.md): options from the file,
# the command line winning over it, errors naming the file and line, and a
# reload applying the log level at once, naming the options that wait for
# a restart, and keeping the settings when the file has an error.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"

e2e_setup
anna=$(e2e_identity anna anna@bank.example) || e2e_fail "keygen"

# ---- errors: exit 2, file and line named, nothing started
printf '# comment\n\ndata = %s\nbogus = 1\n' "$T/bad" >"$T/unknown.conf"
expect_fail dcrd --config "$T/unknown.conf"
[ "$E2E_STATUS" -eq 2 ] || e2e_fail "unknown key: exit $E2E_STATUS, not 2"
expect_stderr "unknown.conf line 4: \"bogus\" is not an option of dcrd"
printf 'data = %s\nidle-timeout-ms = soon\n' "$T/bad" >"$T/value.conf"
expect_fail dcrd --config "$T/value.conf"
expect_stderr "--idle-timeout-ms: not a positive number of milliseconds: soon"
expect_stderr "line 2 of $T/value.conf"
printf 'data = %s\nno-sync = yes\n' "$T/bad" >"$T/flag.conf"
expect_fail dcrd --config "$T/flag.conf"
expect_stderr "flag.conf line 2: no-sync takes no value"
printf 'data\n' >"$T/novalue.conf"
expect_fail dcrd --config "$T/novalue.conf"
expect_stderr "novalue.conf line 1: data needs a value"
printf 'config = /etc/passwd\n' >"$T/nested.conf"
expect_fail dcrd --config "$T/nested.conf"
expect_stderr "\"config\" is not an option of dcrd"
awk 'BEGIN { for (i = 0; i < 257; i++) print "no-sync" }' >"$T/long.conf"
expect_fail dcrd --config "$T/long.conf"
expect_stderr "long.conf line 257: more than 256 options"
expect_fail dcrd --config "$T/missing.conf"
expect_stderr "configuration file $T/missing.conf: No such file or directory"
expect_fail dcrd --data "$T/bad" --build-memory-mb 0
expect_stderr "dcrd: --build-memory-mb: at least 1 MiB"
expect_fail dcrd --data "$T/bad" --build-memory-mb lots
expect_stderr "dcrd: --build-memory-mb: not a number of MiB (0 to 16777216): lots"
[ ! -e "$T/bad" ] || e2e_fail "a refused configuration created the data directory"

# ---- a good file: everything from it, the command line wins
cat >"$T/dcrd.conf" <<CONF
# dcrd's options, one per line
data = $T/data
socket   =   $T/sock
log-level = warn
idle-timeout-ms = 600000
no-sync
CONF
expect_ok dcrd --config "$T/dcrd.conf" --log-level info --help
rm -f "$T/sock"
dcrd --config "$T/dcrd.conf" >>"$T/dcrd.log" 2>&1 &
E2E_DAEMON_PID=$!
E2E_PIDS="$E2E_PIDS $E2E_DAEMON_PID"
i=0
while [ ! -S "$T/sock" ]; do
	kill -0 "$E2E_DAEMON_PID" 2>/dev/null || e2e_fail "dcrd --config exited at start"
	[ $i -lt 600 ] || e2e_fail "dcrd did not create the socket of its configuration"
	sleep 0.1
	i=$((i + 1))
done
export DCR_SOCKET="$T/sock"
[ -f "$T/data/lock" ] || e2e_fail "data directory of the file not used"

# log-level warn from the file: a request leaves no info line
e2e_as anna dcr room list >/dev/null || e2e_fail "room list"
grep -q " dcrd info: " "$T/dcrd.log" &&
	e2e_fail "log-level warn of the file not applied: info lines logged"

# wait_log N PATTERN: until the log has N lines matching PATTERN (10 s)
wait_log() {
	i=0
	while [ "$(grep -c -e "$2" "$T/dcrd.log")" -lt "$1" ]; do
		[ $i -lt 100 ] || e2e_fail "no log line \"$2\" (expected $1)"
		sleep 0.1
		i=$((i + 1))
	done
}

# ---- reload: log level now, hold-auto-approvals at the next restart
sed -i 's/^log-level = warn/log-level = info/; s/^no-sync$/hold-auto-approvals/' "$T/dcrd.conf"
kill -HUP "$E2E_DAEMON_PID"
wait_log 1 "reloaded: log-level info, idle-timeout-ms 600000"
grep "reloaded:" "$T/dcrd.log" | grep -q -e "--hold-auto-approvals, --no-sync: changed, take effect at the next restart" ||
	e2e_fail "reload did not name the options that need a restart: $(grep reloaded: "$T/dcrd.log")"
before=$(grep -c " dcrd info: " "$T/dcrd.log")
e2e_as anna dcr room list >/dev/null || e2e_fail "room list after reload"
i=0
while [ "$(grep -c " dcrd info: " "$T/dcrd.log")" -le "$before" ]; do
	[ $i -lt 100 ] || e2e_fail "log-level info of the reloaded file not applied"
	sleep 0.1
	i=$((i + 1))
done

# ---- a bad file on reload: error logged, settings kept, dcrd serves on
echo "log-level = loud" >>"$T/dcrd.conf"
kill -HUP "$E2E_DAEMON_PID"
wait_log 1 "reload: $T/dcrd.conf: error (line above): the settings stay as they were"
grep -q "line 7 of $T/dcrd.conf" "$T/dcrd.log" || e2e_fail "reload error without its line"
e2e_as anna dcr room list >/dev/null || e2e_fail "dcrd stopped serving after a bad reload"
kill -0 "$E2E_DAEMON_PID" || e2e_fail "dcrd died of a bad reload"

# ---- the command line wins over the file, on reload too
sed -i '$d' "$T/dcrd.conf"
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"
dcrd --config "$T/dcrd.conf" --log-level warn >>"$T/dcrd.log" 2>&1 &
E2E_DAEMON_PID=$!
E2E_PIDS="$E2E_PIDS $E2E_DAEMON_PID"
wait_log 2 "listening on $T/sock"
kill -HUP "$E2E_DAEMON_PID"
wait_log 1 "reloaded: log-level warn"
before=$(grep -c " dcrd info: " "$T/dcrd.log")
e2e_as anna dcr room list >/dev/null || e2e_fail "room list at warn"
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly after reloads"
[ "$(grep -c " dcrd info: " "$T/dcrd.log")" -eq "$before" ] ||
	e2e_fail "--log-level warn of the command line lost: info lines logged"
e2e_log "ok"
