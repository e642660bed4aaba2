# permissions.sh: every permission rule of a room, refused through the dcr
# CLI against a real daemon, each checked by exit status AND message:
# wrong role, wrong room, stopped room, draft-only actions after publish,
# an outsider, runs refused under require_provisioned (naming the missing
# dataset), and a bad CSV rejected with line and column while the data
# provisioned before stays (same sha256). Every refusal is followed by a
# check that the log did not grow. (Forged signatures and replayed events
# cannot be made through the CLI: the daemon's C tests cover them.)
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"

e2e_setup
e2e_start_daemon
story_identities
story_csvs

# events NAME ROOM: the room's event count as NAME sees it
events() {
	e2e_as "$1" dcr room show "$2" --status | sed -n 's/.*, \([0-9]*\) events.*/\1/p'
}

# refused WHO EXPECTED_TEXT... -- CMD...: CMD (run as WHO) exits 1 with
# "dcr <command>: " and every EXPECTED_TEXT on stderr; ROOM's log unchanged.
refused() {
	_who=$1
	shift
	_n=0
	while [ "$1" != -- ]; do
		_n=$((_n + 1))
		eval "_t$_n=\$1"
		shift
	done
	shift
	_before=$(events anna "$ROOM")
	expect_fail e2e_as "$_who" "$@"
	expect_status 1
	_i=1
	while [ $_i -le $_n ]; do
		eval "expect_stderr \"\$_t$_i\""
		_i=$((_i + 1))
	done
	expect_stderr "dcr $2"
	expect_eq "$(events anna "$ROOM")" "$_before" "events after a refused \"$*\""
}

story_room_json "$T/room.json"
ROOM=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"

# ---- draft: only the creator edits; nothing is provisioned or run yet
refused ian "is not the creator of the room" -- dcr room save "$ROOM" "$T/room.json"
refused ian "is not the creator of the room" -- dcr room publish "$ROOM"
refused ian "is not the creator of the room" -- dcr room stop "$ROOM"
refused anna "the room is draft" "provisioned only while it is published" -- \
	dcr provision "$ROOM" bank_customers "$T/bank.csv"
refused anna "the room is draft" "run only while it is published" -- dcr run "$ROOM" overlap
# a definition that does not validate is refused, naming what is wrong
sed 's/"analyst_of": \["overlap"\]/"analyst_of": ["nosuch"]/' "$T/room.json" >"$T/bad-room.json"
refused anna "nosuch" -- dcr room save "$ROOM" "$T/bad-room.json"

# ---- an outsider sees nothing and can do nothing
expect_ok e2e_as eve dcr room list
grep -q "$ROOM" "$E2E_OUT" && e2e_fail "eve lists the room"
refused eve "no room named bank-insurer-overlap" -- dcr room show bank-insurer-overlap
# by id: the daemon does not even admit that the room exists
refused eve "no room $ROOM" -- dcr room show "$ROOM"
refused eve "no room $ROOM" -- dcr room export "$ROOM"
refused eve "no room $ROOM" -- dcr status "$ROOM"

expect_ok e2e_as anna dcr room publish "$ROOM"

# ---- draft-only actions after publish
refused anna "the room is published" "only change while draft" -- dcr room save "$ROOM" "$T/room.json"
refused anna "the room is published" "only change while draft" -- dcr room publish "$ROOM"

# ---- outsider on the published room
refused eve "no room $ROOM" -- dcr provision "$ROOM" bank_customers "$T/bank.csv"
refused eve "no room $ROOM" -- dcr run "$ROOM" overlap
refused eve "no room $ROOM" -- dcr result "$ROOM" overlap

# ---- wrong role
refused ian "is not an owner of dataset bank_customers" -- \
	dcr provision "$ROOM" bank_customers "$T/bank.csv"
refused anna "is not an owner of dataset insurer_customers" -- \
	dcr provision "$ROOM" insurer_customers "$T/insurer.csv"
refused ian "no dataset named \"nosuch\"" -- dcr provision "$ROOM" nosuch "$T/insurer.csv"

# ---- require_provisioned names what is missing
refused anna "computation overlap needs datasets not provisioned" "bank_customers" "insurer_customers" -- \
	dcr run "$ROOM" overlap
expect_ok e2e_as anna dcr provision "$ROOM" bank_customers "$T/bank.csv"
refused anna "computation overlap needs datasets not provisioned: insurer_customers" -- \
	dcr run "$ROOM" overlap
refused ian "is not an owner of dataset bank_customers" -- dcr deprovision "$ROOM" bank_customers
refused ian "dataset insurer_customers is not provisioned" -- dcr deprovision "$ROOM" insurer_customers

# ---- a bad CSV is rejected with line and column; the earlier data stays
expect_ok e2e_as ian dcr provision "$ROOM" insurer_customers "$T/insurer.csv"
INS_SHA=$(sha256sum "$T/insurer.csv" | cut -d' ' -f1)
expect_contains "$E2E_OUT" "sha256 $INS_SHA"
awk -F, 'BEGIN { OFS = "," } NR == 12 { $3 = "12a" } { print }' "$T/insurer.csv" >"$T/insurer_bad.csv"
refused ian "insurer_bad.csv" "line 12" "premium" "12a" -- \
	dcr provision "$ROOM" insurer_customers "$T/insurer_bad.csv"
printf 'email,risk_class\nx@y.example,low\n' >"$T/insurer_cols.csv"
refused ian "premium" -- dcr provision "$ROOM" insurer_customers "$T/insurer_cols.csv"
expect_ok e2e_as ian dcr status "$ROOM"
grep -q -E "^  insurer_customers +provisioned by ian@insurer.example: 200 rows, [0-9]+ bytes, sha256 $INS_SHA\$" "$E2E_OUT" ||
	e2e_fail "status after the rejected file: $(cat "$E2E_OUT")"

# ---- runs and results: analysts only
refused ian "is not an analyst of computation overlap" -- dcr run "$ROOM" overlap
refused anna "no computation named \"nosuch\"" -- dcr run "$ROOM" nosuch
refused anna "" -- dcr result "$ROOM" overlap
expect_ok e2e_as anna dcr run "$ROOM" overlap --wait --timeout 120
refused ian "analyst" -- dcr result "$ROOM" overlap
# a refused retrieval leaves an existing output file (and its directory) as it was
mkdir "$T/out"
echo "keep me" >"$T/out/result.csv"
refused ian "analyst" -- dcr result "$ROOM" overlap -o "$T/out/result.csv"
expect_eq "$(cat "$T/out/result.csv")" "keep me" "output file after a refused result"
expect_eq "$(ls "$T/out")" "result.csv" "files left in the output directory"
expect_ok e2e_as anna dcr result "$ROOM" overlap
expect_contains "$E2E_OUT" "city,risk_class,customers,age_sum"

# ---- wrong room: a room of ian's where anna owns nothing
cat >"$T/room2.json" <<JSON
{
  "format": "dcr.room/1",
  "name": "insurer-only",
  "settings": {"require_provisioned": true},
  "participants": [
    {"email": "ian@insurer.example", "key": "$IAN_KEY",
     "owner_of": ["insurer_customers"], "analyst_of": ["by_class"]},
    {"email": "anna@bank.example", "key": "$ANNA_KEY", "owner_of": [], "analyst_of": []}
  ],
  "datasets": [
    {"name": "insurer_customers", "kind": "table", "unit": "email",
     "columns": [{"name": "email", "type": "string", "nullable": false},
                 {"name": "risk_class", "type": "string", "nullable": false, "allow": ["group"]},
                 {"name": "premium", "type": "float", "nullable": false}]}
  ],
  "computations": [
    {"name": "by_class", "kind": "sql", "privacy": {"min_rows_aggregated": 10},
     "query": "SELECT risk_class, COUNT(*) AS n FROM insurer_customers GROUP BY risk_class"}
  ]
}
JSON
ROOM2=$(e2e_as ian dcr room create "$T/room2.json") || e2e_fail "create insurer-only"
expect_ok e2e_as ian dcr room publish "$ROOM2"
ROOM_SAVED=$ROOM
ROOM=$ROOM2
refused anna "no dataset named \"bank_customers\"" -- dcr provision "$ROOM2" bank_customers "$T/bank.csv"
refused anna "is not an owner of dataset insurer_customers" -- \
	dcr provision "$ROOM2" insurer_customers "$T/insurer.csv"
refused anna "no computation named \"overlap\"" -- dcr run "$ROOM2" overlap
refused anna "is not an analyst of computation by_class" -- dcr run "$ROOM2" by_class
refused anna "is not the creator of the room" -- dcr room stop "$ROOM2"
ROOM=$ROOM_SAVED
# an unknown room id
refused anna "" -- dcr status 0123456789abcdef0123456789abcdef

# ---- a stopped room refuses provisioning and runs
refused ian "is not the creator of the room" -- dcr room stop "$ROOM"
expect_ok e2e_as anna dcr room stop "$ROOM" --reason "end of study"
refused ian "the room is stopped" "provisioned only while it is published" -- \
	dcr provision "$ROOM" insurer_customers "$T/insurer.csv"
refused anna "the room is stopped" "run only while it is published" -- dcr run "$ROOM" overlap
refused anna "the room is already stopped" -- dcr room stop "$ROOM"
refused anna "the room is stopped" -- dcr room save "$ROOM" "$T/room.json"
refused ian "the room is stopped" -- dcr deprovision "$ROOM" insurer_customers

e2e_stop_daemon || e2e_fail "dcrd did not exit cleanly on SIGTERM"
echo "permissions: ok"
