# restart.sh: nothing is lost when the daemon dies. kill -9 the daemon
# after create, after provisioning and after a run, restart it on the same
# data directory each time, and check from the CLI that the definition,
# status, event counts and the result bytes are exactly what they were.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"

e2e_setup
e2e_start_daemon
story_identities
story_csvs

# snapshot NAME: room status, export and computation status as anna sees them
snapshot() {
	{
		e2e_as anna dcr room show "$ROOM" --status
		e2e_as anna dcr status "$ROOM"
		e2e_as anna dcr status "$ROOM" overlap
		e2e_as anna dcr room list
	} >"$T/$1.snap" 2>"$T/$1.err" || e2e_fail "snapshot $1: $(cat "$T/$1.err")"
	e2e_as anna dcr room export "$ROOM" >"$T/$1.export" || e2e_fail "export $1"
}

# crash_and_check NAME: snapshot, kill -9, restart, snapshot again, compare
crash_and_check() {
	snapshot "$1.before"
	e2e_kill_daemon
	e2e_start_daemon
	snapshot "$1.after"
	if ! cmp -s "$T/$1.before.snap" "$T/$1.after.snap"; then
		diff "$T/$1.before.snap" "$T/$1.after.snap" >&2
		e2e_fail "status changed across a kill -9 ($1)"
	fi
	cmp -s "$T/$1.before.export" "$T/$1.after.export" ||
		e2e_fail "definition changed across a kill -9 ($1)"
}

# ---- after create
story_room_json "$T/room.json"
ROOM=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"
crash_and_check create
cmp -s "$T/create.after.export" "$T/room.json" || e2e_fail "definition lost after create"
expect_contains "$T/create.after.snap" "draft, 1 events"

# ---- after publish and provisioning
expect_ok e2e_as anna dcr room publish "$ROOM"
expect_ok e2e_as anna dcr provision "$ROOM" bank_customers "$T/bank.csv"
expect_ok e2e_as ian dcr provision "$ROOM" insurer_customers "$T/insurer.csv"
crash_and_check provision
expect_contains "$T/provision.after.snap" "sha256 $(sha256sum "$T/bank.csv" | cut -d' ' -f1)"
expect_contains "$T/provision.after.snap" "sha256 $(sha256sum "$T/insurer.csv" | cut -d' ' -f1)"
expect_contains "$T/provision.after.snap" "published, 4 events"
# the stored data survived too: a run over it works after the crash
expect_ok e2e_as anna dcr run "$ROOM" overlap --wait --timeout 120
RUN1=$(head -n 1 "$E2E_OUT")

# ---- after a run (and its result read once)
e2e_as anna dcr result "$ROOM" overlap >"$T/result.before" || e2e_fail "result before the crash"
crash_and_check run
expect_contains "$T/run.after.snap" "done, run $RUN1"
e2e_as anna dcr result "$ROOM" overlap >"$T/result.after" || e2e_fail "result after the crash"
cmp -s "$T/result.before" "$T/result.after" || e2e_fail "result changed across a kill -9"
story_expected "$T/expected.csv"
tr -d '\r"' <"$T/result.after" | cmp -s - "$T/expected.csv" || e2e_fail "result after restart is wrong"

# ---- a run requested just before the crash is not lost either: after the
# restart it is in the log, and it finishes (or is reported failed) rather
# than staying queued forever.
RUN2=$(e2e_as anna dcr run "$ROOM" overlap) || e2e_fail "run before crash"
e2e_kill_daemon
e2e_start_daemon
expect_ok e2e_as anna dcr status "$ROOM"
expect_contains "$E2E_OUT" "run $RUN2"
i=0
while :; do
	e2e_as anna dcr status "$ROOM" overlap >"$T/st.out" 2>&1 || e2e_fail "status: $(cat "$T/st.out")"
	grep -q -E '^state +(done|failed)' "$T/st.out" && break
	[ $i -lt 1200 ] || e2e_fail "run $RUN2 still not finished 120 s after restart: $(cat "$T/st.out")"
	sleep 0.1
	i=$((i + 1))
done

e2e_stop_daemon || e2e_fail "dcrd did not exit cleanly on SIGTERM"
echo "restart: ok"
