# lib.sh: shared helpers for the end-to-end tests (POSIX sh, sourced).
#
# A test does:
#   . "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
#   e2e_setup                      # temp dir $T, cleanup trap
#   e2e_start_daemon               # dcrd on $T/sock, exports DCR_SOCKET
#   anna=$(e2e_identity anna anna@bank.example)   # key $T/anna.pem
#   id=$(e2e_as anna dcr room create room.json) || e2e_fail "create"
#   expect_fail e2e_as ian dcr room publish "$id"
#   expect_stderr "not the creator"
#
# Invariants: everything a test creates lives under $T (mktemp -d
# /tmp/dcr-e2e-XXXXXX); on EXIT, INT or TERM the trap unmounts every FUSE
# mount under $T (fusermount3 -u -z), kills every daemon this test started
# (TERM, then KILL after 3 s) and removes $T, so nothing is left behind
# even when a test fails half way. Helpers that fail call e2e_fail, which
# prints the daemon log tail and exits 1; never call it inside $(...) (it
# would only leave the subshell): write `x=$(cmd) || e2e_fail "..."`.
#
# Variables: T (temp dir), DCR_SOCKET (exported), E2E_DAEMON_PID, E2E_OUT /
# E2E_ERR (files holding the stdout / stderr of the last expect_fail or
# expect_ok), E2E_STATUS (its exit code).

set -u

E2E_NAME=$(basename "$0" .sh)
E2E_DAEMON_PID=
E2E_PIDS=
T=

e2e_log() { printf '%s: %s\n' "$E2E_NAME" "$*" >&2; }

e2e_fail() {
	printf '%s: FAIL: %s\n' "$E2E_NAME" "$*" >&2
	if [ -n "$T" ] && [ -s "$T/dcrd.log" ]; then
		echo "---- last lines of dcrd.log ----" >&2
		tail -n 30 "$T/dcrd.log" >&2
	fi
	exit 1
}

e2e_skip() {
	printf '%s: SKIP: %s\n' "$E2E_NAME" "$*" >&2
	exit 77
}

# Unmounts whatever is mounted under $T (fuse mounts of the mount tests).
e2e_unmount_all() {
	[ -n "$T" ] || return 0
	[ -r /proc/mounts ] || return 0
	# /proc/mounts escapes spaces as \040; $T has none (mktemp template).
	awk -v t="$T/" 'index($2, t) == 1 { print $2 }' /proc/mounts | sort -r |
		while read -r m; do
			fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
		done
}

# Kills one pid: TERM, wait up to 3 s, then KILL.
e2e_kill_pid() {
	p=$1
	kill -0 "$p" 2>/dev/null || return 0
	kill -TERM "$p" 2>/dev/null
	i=0
	while kill -0 "$p" 2>/dev/null && [ $i -lt 30 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$p" 2>/dev/null || true
}

e2e_cleanup() {
	rc=$?
	trap - EXIT INT TERM
	e2e_unmount_all
	for p in $E2E_PIDS; do
		e2e_kill_pid "$p"
	done
	for p in $E2E_PIDS; do
		wait "$p" 2>/dev/null || true
	done
	if [ -n "$T" ] && [ -d "$T" ]; then
		if [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ -n "${E2E_KEEP:-}" ]; then
			echo "$E2E_NAME: keeping $T (E2E_KEEP set)" >&2
		else
			rm -rf "$T"
		fi
	fi
	exit $rc
}

# Makes $T and installs the cleanup trap. Checks that dcr (and dcrd) are on
# PATH. Sets HOME inside $T so nothing touches the real ~/.config/dcr.
e2e_setup() {
	command -v dcr >/dev/null 2>&1 || e2e_fail "dcr not found on PATH ($PATH)"
	T=$(mktemp -d /tmp/dcr-e2e-XXXXXX) || e2e_fail "mktemp failed"
	trap e2e_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	export HOME="$T/home"
	mkdir -p "$HOME"
	# Everything a test's processes put in a temp dir (the mount's spool,
	# SQLite's sort files) lands under $T, removed at exit even when a
	# process was killed with -9 and could not clean up itself.
	export TMPDIR="$T/tmp"
	mkdir -p "$TMPDIR"
	unset DCR_IDENTITY DCR_SOCKET
	# A leak or UB report in a client must fail the command (and the test).
	if [ -n "${DCR_SANITIZED:-}" ]; then
		export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1}"
	fi
}

# Starts dcrd on $T/data and $T/sock (extra arguments are passed on), waits
# up to 10 s for the socket, exports DCR_SOCKET. Output goes to
# $T/dcrd.log (appended, so restarts keep the history).
e2e_start_daemon() {
	command -v dcrd >/dev/null 2>&1 || e2e_fail "dcrd not found on PATH ($PATH)"
	rm -f "$T/sock"
	dcrd --data "$T/data" --socket "$T/sock" "$@" >>"$T/dcrd.log" 2>&1 &
	E2E_DAEMON_PID=$!
	E2E_PIDS="$E2E_PIDS $E2E_DAEMON_PID"
	i=0
	while [ ! -S "$T/sock" ]; do
		if ! kill -0 "$E2E_DAEMON_PID" 2>/dev/null; then
			wait "$E2E_DAEMON_PID" 2>/dev/null
			e2e_fail "dcrd exited at start (status $?)"
		fi
		[ $i -lt 600 ] || e2e_fail "dcrd did not create $T/sock within 60 s"
		sleep 0.1
		i=$((i + 1))
	done
	DCR_SOCKET="$T/sock"
	export DCR_SOCKET
}

# Stops the daemon with SIGTERM and returns its exit status (a clean
# shutdown, under ASan also leak free, exits 0).
e2e_stop_daemon() {
	[ -n "$E2E_DAEMON_PID" ] || return 0
	p=$E2E_DAEMON_PID
	E2E_DAEMON_PID=
	kill -TERM "$p" 2>/dev/null
	i=0
	while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 "$p" 2>/dev/null; then
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
		e2e_log "dcrd did not stop within 10 s of SIGTERM"
		return 1
	fi
	wait "$p"
}

# Kills the daemon with SIGKILL (crash simulation) and waits for it.
e2e_kill_daemon() {
	[ -n "$E2E_DAEMON_PID" ] || return 0
	kill -KILL "$E2E_DAEMON_PID" 2>/dev/null
	wait "$E2E_DAEMON_PID" 2>/dev/null
	E2E_DAEMON_PID=
	return 0
}

# e2e_identity NAME EMAIL: makes $T/NAME.pem (dcr keygen) and prints the
# public line "EMAIL ed25519:...". Use the key with e2e_as NAME or
# DCR_IDENTITY=$T/NAME.pem.
e2e_identity() {
	dcr keygen --email "$2" --out "$T/$1.pem" 2>"$T/keygen.err" || {
		cat "$T/keygen.err" >&2
		return 1
	}
}

# e2e_key NAME: the "ed25519:..." key of an identity made by e2e_identity.
e2e_key() {
	DCR_IDENTITY="$T/$1.pem" dcr whoami | awk '{ print $2 }'
}

# e2e_as NAME CMD...: runs CMD with identity $T/NAME.pem.
e2e_as() {
	_who=$1
	shift
	DCR_IDENTITY="$T/$_who.pem" "$@"
}

# expect_fail CMD...: CMD must exit non-zero. Its stdout/stderr are kept in
# $E2E_OUT/$E2E_ERR, its status in $E2E_STATUS.
expect_fail() {
	E2E_OUT="$T/last.out"
	E2E_ERR="$T/last.err"
	E2E_STATUS=0
	"$@" >"$E2E_OUT" 2>"$E2E_ERR" || E2E_STATUS=$?
	if [ "$E2E_STATUS" -eq 0 ]; then
		e2e_fail "expected failure, but it succeeded: $*"
	fi
	# A sanitizer report is a crash, not the expected refusal.
	if grep -q -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$E2E_ERR"; then
		cat "$E2E_ERR" >&2
		e2e_fail "sanitizer report from: $*"
	fi
	return 0
}

# expect_status N: the last expect_fail exited with N.
expect_status() {
	[ "$E2E_STATUS" -eq "$1" ] ||
		e2e_fail "expected exit status $1, got $E2E_STATUS; stderr: $(cat "$E2E_ERR")"
}

# expect_stderr TEXT...: the last captured stderr contains every TEXT
# (fixed strings).
expect_stderr() {
	for _s in "$@"; do
		grep -q -F -e "$_s" "$E2E_ERR" ||
			e2e_fail "stderr lacks \"$_s\"; it was: $(cat "$E2E_ERR")"
	done
}

# expect_ok CMD...: CMD must succeed; stdout/stderr kept in $E2E_OUT/$E2E_ERR.
expect_ok() {
	E2E_OUT="$T/last.out"
	E2E_ERR="$T/last.err"
	E2E_STATUS=0
	"$@" >"$E2E_OUT" 2>"$E2E_ERR" || E2E_STATUS=$?
	[ "$E2E_STATUS" -eq 0 ] ||
		e2e_fail "failed (status $E2E_STATUS): $*; stderr: $(cat "$E2E_ERR")"
}

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
	[ "$1" = "$2" ] || e2e_fail "$3: expected \"$2\", got \"$1\""
}

# expect_contains FILE TEXT: FILE contains the fixed string TEXT.
expect_contains() {
	grep -q -F -e "$2" "$1" || e2e_fail "$1 lacks \"$2\"; it was: $(cat "$1")"
}

# ---- self-test ---------------------------------------------------------------
# ctest runs every tests/e2e/*.sh, this file too: run directly (not
# sourced), it checks its own helpers, the cleanup trap above all.
if [ "$E2E_NAME" = lib ] && [ -z "${E2E_LIB_CHILD:-}" ]; then
	e2e_setup
	lib=$DCR_SOURCE_DIR/tests/e2e/lib.sh
	# A failing test leaves no directory and no process behind.
	E2E_LIB_CHILD=1 sh -c ". '$lib'; e2e_setup; sleep 300 & E2E_PIDS=\$!;
		echo \"\$T \$!\"; e2e_fail deliberate" >"$T/child.out" 2>"$T/child.err" && e2e_fail "e2e_fail exited 0"
	read -r cdir cpid <"$T/child.out" || e2e_fail "child printed nothing: $(cat "$T/child.err")"
	[ ! -e "$cdir" ] || e2e_fail "cleanup left $cdir"
	kill -0 "$cpid" 2>/dev/null && e2e_fail "cleanup left process $cpid"
	grep -q "FAIL: deliberate" "$T/child.err" || e2e_fail "e2e_fail message: $(cat "$T/child.err")"
	# So does one interrupted by SIGTERM.
	E2E_LIB_CHILD=1 sh -c ". '$lib'; e2e_setup; sleep 300 & E2E_PIDS=\$!;
		echo \"\$T \$!\"; wait" >"$T/child2.out" 2>"$T/child2.err" &
	spid=$!
	i=0
	while [ ! -s "$T/child2.out" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	read -r cdir cpid <"$T/child2.out" || e2e_fail "child printed nothing"
	kill -TERM "$spid"
	wait "$spid" && e2e_fail "a child killed by SIGTERM exited 0"
	[ ! -e "$cdir" ] || e2e_fail "cleanup after SIGTERM left $cdir"
	kill -0 "$cpid" 2>/dev/null && e2e_fail "cleanup after SIGTERM left process $cpid"
	# expect_* helpers.
	expect_fail sh -c 'echo oops >&2; exit 3'
	expect_status 3
	expect_stderr oops
	expect_ok sh -c 'echo fine'
	expect_contains "$E2E_OUT" fine
	( expect_fail true ) 2>/dev/null && e2e_fail "expect_fail accepted success"
	( expect_ok false ) 2>/dev/null && e2e_fail "expect_ok accepted failure"
	( expect_stderr "not there" ) 2>/dev/null && e2e_fail "expect_stderr accepted a missing text"
	echo "lib: ok"
	exit 0
fi

# expect_verifiers_agree FILE: `dcr audit verify FILE` and the independent
# verifier written from the docs (tests/e2e/audit_rules.py: rules and
# cryptography) give the same verdict: both valid with the same root, or
# both invalid at the same seq and event type (or both invalid for a
# reason that is not an event). Prints the verdict.
expect_verifiers_agree() {
	_c=$(dcr audit verify "$1" 2>&1 | head -n 1)
	_p=$(python3 "$DCR_SOURCE_DIR/tests/e2e/audit_rules.py" export "$1")
	case "$_c" in
	valid:*)
		_root=$(printf '%s' "$_c" | sed -n 's/.*, root \([0-9a-f]*\),.*/\1/p')
		case "$_p" in
		"ok "*" $_root") ;;
		*) e2e_fail "verifiers disagree on $1: dcr: $_c; independent: $_p" ;;
		esac
		;;
	"invalid: seq "*)
		_at=$(printf '%s' "$_c" | sed -n 's/^invalid: \(seq [0-9]*\( ([a-z._]*)\)\{0,1\}\).*/\1/p')
		case "$_p" in
		"bad: $_at:"*) ;;
		*) e2e_fail "verifiers disagree on $1: dcr: $_c; independent: $_p" ;;
		esac
		;;
	invalid:*)
		case "$_p" in
		"bad: seq "*) e2e_fail "verifiers disagree on $1: dcr: $_c; independent: $_p" ;;
		"bad: "*) ;;
		*) e2e_fail "verifiers disagree on $1: dcr: $_c; independent: $_p" ;;
		esac
		;;
	*) e2e_fail "dcr audit verify $1: $_c" ;;
	esac
	printf '%s\n' "$_c"
}
