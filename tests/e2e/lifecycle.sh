# lifecycle.sh: the bank/insurer overlap of DESIGN §1 from the dcr CLI
# alone, start to end: identities, draft, save, export/create round trip,
# duplicate, list, publish, provisioning of real CSVs by both owners, a run,
# status, the result checked against an independent computation (awk), the
# empty-input test, stop. Three identities: anna (bank, creator, analyst),
# ian (insurer), eve (outsider).
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"

e2e_setup
e2e_start_daemon

# ---- identities
story_identities
case $ANNA in
"anna@bank.example ed25519:"*) ;;
*) e2e_fail "keygen printed \"$ANNA\"" ;;
esac
expect_eq "$(stat -c %a "$T/anna.pem")" 600 "mode of the private key"
expect_eq "$(e2e_as anna dcr whoami)" "$ANNA" "whoami"
expect_fail dcr keygen --email anna@bank.example --out "$T/anna.pem"
expect_stderr "dcr keygen:" "exists" "--force"
expect_eq "$(e2e_as anna dcr whoami)" "$ANNA" "whoami after a refused overwrite"
expect_fail dcr keygen --email not-an-email --out "$T/x.pem"
expect_status 2
expect_stderr "dcr keygen: \"not-an-email\" does not look like an email address"
[ ! -e "$T/x.pem" ] || e2e_fail "keygen wrote a key for a bad email"
# the same rule as room definitions: a@b is refused by both
expect_fail dcr keygen --email a@b --out "$T/x.pem"
expect_status 2
# Default location, made with mode 0700.
expect_ok dcr keygen --email home@example.org
expect_eq "$(stat -c %a "$HOME/.config/dcr")" 700 "mode of ~/.config/dcr"
expect_eq "$(dcr whoami)" "$(cat "$E2E_OUT")" "whoami with the default identity"

# ---- draft
story_room_json "$T/room.json"
ROOM=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"
echo "$ROOM" | grep -q -E '^[0-9a-f]{32}$' || e2e_fail "room create printed \"$ROOM\""

expect_ok e2e_as anna dcr room show bank-insurer-overlap
expect_contains "$E2E_OUT" '"name": "bank-insurer-overlap"'
expect_contains "$E2E_OUT" '"min_rows_aggregated": 10'
expect_contains "$E2E_ERR" "draft"
expect_ok e2e_as ian dcr room show "$ROOM" --status
expect_contains "$E2E_OUT" "room $ROOM bank-insurer-overlap: draft, 1 events"

# save a new description, see it
sed 's/"Customer overlap between a bank and an insurer"/"Overlap, second draft"/' \
	"$T/room.json" >"$T/room2.json"
expect_ok e2e_as anna dcr room save bank-insurer-overlap "$T/room2.json"
expect_ok e2e_as anna dcr room show "$ROOM"
expect_contains "$E2E_OUT" "Overlap, second draft"
# ... from stdin too
expect_ok sh -c "DCR_IDENTITY='$T/anna.pem' dcr room save '$ROOM' - <'$T/room2.json'"

# export is exactly the saved text; create accepts it (round trip)
e2e_as anna dcr room export "$ROOM" >"$T/export.json" || e2e_fail "export"
cmp -s "$T/export.json" "$T/room2.json" || e2e_fail "export differs from the saved file"
COPY=$(e2e_as anna dcr room export "$ROOM" | e2e_as anna dcr room create -) ||
	e2e_fail "export | create"
e2e_as anna dcr room export "$COPY" >"$T/export2.json" || e2e_fail "export of the copy"
cmp -s "$T/export.json" "$T/export2.json" || e2e_fail "export/create round trip changed the text"

# two rooms share the name now: names stop resolving, ids still do
expect_fail e2e_as anna dcr room show bank-insurer-overlap
expect_stderr "dcr room show:" "bank-insurer-overlap" "room id"

# duplicate, with and without a new name
DUP=$(e2e_as anna dcr room duplicate "$ROOM" --name overlap-v2) || e2e_fail "duplicate"
expect_ok e2e_as anna dcr room show overlap-v2 --status
expect_contains "$E2E_OUT" "room $DUP overlap-v2: draft, 1 events"
DUP2=$(e2e_as anna dcr room duplicate "$ROOM") || e2e_fail "duplicate without --name"
e2e_as anna dcr room export "$DUP2" | cmp -s - "$T/export.json" ||
	e2e_fail "duplicate changed the definition"

# list: anna and ian see the rooms, eve none
expect_ok e2e_as anna dcr room list
head -n 1 "$E2E_OUT" | grep -q -E '^ID +NAME +STATUS +EVENTS$' || e2e_fail "list header: $(cat "$E2E_OUT")"
expect_eq "$(grep -c -E '^[0-9a-f]{32} ' "$E2E_OUT")" 4 "rooms listed for anna"
grep -q -E "^$ROOM +bank-insurer-overlap +draft +3\$" "$E2E_OUT" || e2e_fail "list line: $(cat "$E2E_OUT")"
grep -q -E "^$DUP +overlap-v2 +draft +1\$" "$E2E_OUT" || e2e_fail "list line: $(cat "$E2E_OUT")"
expect_ok e2e_as ian dcr room list
expect_contains "$E2E_OUT" "$ROOM"
expect_ok e2e_as eve dcr room list
expect_eq "$(grep -c -E '^[0-9a-f]{32} ' "$E2E_OUT")" 0 "rooms listed for eve"

# ---- publish: signs the sha256 of the exported text
SHA=$(sha256sum "$T/export.json" | cut -d' ' -f1)
expect_ok e2e_as anna dcr room publish "$ROOM"
expect_contains "$E2E_OUT" "definition sha256 $SHA"
expect_ok e2e_as ian dcr room show "$ROOM" --status
expect_contains "$E2E_OUT" "published, 4 events"
e2e_as anna dcr room export "$ROOM" | cmp -s - "$T/export.json" || e2e_fail "export changed by publish"

# ---- provisioning by both owners
story_csvs
expect_ok e2e_as anna dcr provision "$ROOM" bank_customers "$T/bank.csv"
BANK_SHA=$(sha256sum "$T/bank.csv" | cut -d' ' -f1)
expect_contains "$E2E_OUT" "provisioned bank_customers: 200 rows, $(wc -c <"$T/bank.csv") bytes, sha256 $BANK_SHA"
[ ! -s "$E2E_ERR" ] || e2e_fail "provision wrote to stderr when it is not a terminal: $(cat "$E2E_ERR")"
INS_SHA=$(sha256sum "$T/insurer.csv" | cut -d' ' -f1)
expect_ok sh -c "DCR_IDENTITY='$T/ian.pem' dcr provision '$ROOM' insurer_customers - <'$T/insurer.csv'"
expect_contains "$E2E_OUT" "provisioned insurer_customers: 200 rows, $(wc -c <"$T/insurer.csv") bytes, sha256 $INS_SHA"

expect_ok e2e_as anna dcr datasets
head -n 1 "$E2E_OUT" | grep -q -E '^ROOM +DATASET +STATUS +ROWS +BYTES +FILE +SHA256$' ||
	e2e_fail "datasets header: $(cat "$E2E_OUT")"
grep -q -E "^bank-insurer-overlap +bank_customers +provisioned +200 +[0-9]+ +bank.csv +$BANK_SHA\$" "$E2E_OUT" ||
	e2e_fail "datasets: $(cat "$E2E_OUT")"
expect_ok e2e_as ian dcr datasets
grep -q -E "^bank-insurer-overlap +insurer_customers +provisioned +200 .* $INS_SHA\$" "$E2E_OUT" ||
	e2e_fail "datasets (ian): $(cat "$E2E_OUT")"
grep -q bank_customers "$E2E_OUT" && e2e_fail "ian's datasets list the bank's dataset"
expect_ok e2e_as anna dcr datasets --json
expect_contains "$E2E_OUT" bank_customers
# Columns and statistics: in dcr datasets, and with dcr stats (owners only:
# the bank does not share its statistics).
AGE_MIN=$(awk -F, 'NR > 1 && $2 != "" { if (m == "" || $2 < m) m = $2 } END { print m }' "$T/bank.csv")
AGE_MAX=$(awk -F, 'NR > 1 && $2 != "" { if ($2 > m) m = $2 } END { print m }' "$T/bank.csv")
expect_ok e2e_as anna dcr datasets
expect_contains "$E2E_OUT" "bank-insurer-overlap / bank_customers: 200 rows, $(wc -c <"$T/bank.csv") bytes"
grep -q -E "^ +age +integer +[0-9]+ +[0-9]+ +$AGE_MIN +$AGE_MAX " "$E2E_OUT" ||
	e2e_fail "datasets: no statistics of age ($AGE_MIN..$AGE_MAX): $(cat "$E2E_OUT")"
grep -q -E "^ +email +string \(email\) +0 +200 .* [0-9]+\.\.[0-9]+$" "$E2E_OUT" ||
	e2e_fail "datasets: no statistics of email: $(cat "$E2E_OUT")"
expect_ok e2e_as anna dcr datasets --brief
grep -q "rows, " "$E2E_OUT" && e2e_fail "datasets --brief printed statistics"
expect_ok e2e_as anna dcr stats "$ROOM" bank_customers
expect_contains "$E2E_OUT" "bank_customers: 200 rows"
expect_ok e2e_as anna dcr stats "$ROOM" bank_customers --json
expect_contains "$E2E_OUT" '"name":"age","type":"integer"'
expect_contains "$E2E_OUT" "\"min\":$AGE_MIN,\"max\":$AGE_MAX"
expect_fail e2e_as ian dcr stats "$ROOM" bank_customers
expect_stderr "dcr stats: you may not read the statistics of bank_customers" "share_statistics"
# The owner gets the provisioned file back, checked against the log; nobody
# else does.
expect_ok e2e_as anna dcr data "$ROOM" bank_customers
cmp -s "$E2E_OUT" "$T/bank.csv" || e2e_fail "dcr data: the file differs from bank.csv"
echo "old" >"$T/back.csv"
expect_ok e2e_as anna dcr data "$ROOM" bank_customers -o "$T/back.csv"
cmp -s "$T/back.csv" "$T/bank.csv" || e2e_fail "dcr data -o: the file differs from bank.csv"
expect_contains "$E2E_ERR" "dcr data: $(wc -c <"$T/bank.csv") bytes written to $T/back.csv"
# A new file gets the umask's share of 0600 (raw rows: owner only); an
# existing file keeps its mode.
rm -f "$T/new.csv"
expect_ok sh -c "umask 022; DCR_IDENTITY='$T/anna.pem' dcr data '$ROOM' bank_customers -o '$T/new.csv'"
expect_eq "$(stat -c %a "$T/new.csv")" 600 "mode of a new file written by dcr data"
chmod 640 "$T/new.csv"
expect_ok e2e_as anna dcr data "$ROOM" bank_customers -o "$T/new.csv"
expect_eq "$(stat -c %a "$T/new.csv")" 640 "mode of an existing file rewritten by dcr data"
expect_fail e2e_as ian dcr data "$ROOM" bank_customers -o "$T/back.csv"
expect_stderr "dcr data:" "bank_customers"
cmp -s "$T/back.csv" "$T/bank.csv" || e2e_fail "a refused dcr data -o changed the file"
ls "$T" | grep -q "back.csv.dcr-" && e2e_fail "a refused dcr data -o left a temporary file"
expect_fail e2e_as anna dcr data "$ROOM" no_such_dataset
expect_stderr 'dcr data: no dataset named "no_such_dataset" in this room'
expect_fail e2e_as anna dcr stats "$ROOM" no_such_dataset
expect_stderr "dcr stats: the room has no dataset no_such_dataset"

# ---- run
story_expected "$T/expected.csv"
NGROUPS=$(($(wc -l <"$T/expected.csv") - 1))
SUPP=$(story_expected_suppressed)
[ "$NGROUPS" -ge 5 ] && [ "$SUPP" -ge 1 ] || e2e_fail "test data: $NGROUPS groups, $SUPP suppressed"
expect_ok e2e_as anna dcr run "$ROOM" overlap --wait --timeout 120
RUN=$(head -n 1 "$E2E_OUT")
echo "$RUN" | grep -q -E '^[0-9a-f]{32}$' || e2e_fail "run printed \"$(cat "$E2E_OUT")\""
sed -n 2p "$E2E_OUT" | grep -q -E "^done: $NGROUPS rows, $SUPP suppressed, [0-9]+ bytes, [0-9]+ ms\$" ||
	e2e_fail "run --wait outcome: $(cat "$E2E_OUT")"

# ---- status
expect_ok e2e_as anna dcr status "$ROOM"
expect_contains "$E2E_OUT" "status    published"
expect_contains "$E2E_OUT" "you       anna@bank.example: creator, owner of bank_customers, analyst of overlap"
expect_contains "$E2E_OUT" "provisioned by anna@bank.example: 200 rows"
expect_contains "$E2E_OUT" "sha256 $BANK_SHA"
expect_contains "$E2E_OUT" "sha256 $INS_SHA"
expect_contains "$E2E_OUT" "done, run $RUN: $NGROUPS rows, $SUPP suppressed"
EVENTS=$(awk '$1 == "events" { print $2 }' "$E2E_OUT")
grep -q -E "^log       root [0-9a-f]{64} of $EVENTS events: signed by the daemon, matches the events replayed\$" "$E2E_OUT" ||
	e2e_fail "status: no verified checkpoint line: $(cat "$E2E_OUT")"
[ "$EVENTS" -ge 7 ] || e2e_fail "events: $(cat "$E2E_OUT")"
expect_ok e2e_as ian dcr status "$ROOM"
expect_contains "$E2E_OUT" "you       ian@insurer.example: owner of insurer_customers"
expect_ok e2e_as anna dcr status "$ROOM" overlap
expect_contains "$E2E_OUT" "run          $RUN"
expect_contains "$E2E_OUT" "state        done"
expect_contains "$E2E_OUT" "rows         $NGROUPS"
expect_contains "$E2E_OUT" "suppressed   $SUPP"

# ---- result: header row and numbers equal to the independent computation
e2e_as anna dcr result "$ROOM" overlap >"$T/result.csv" 2>"$T/result.err" || e2e_fail "result: $(cat "$T/result.err")"
tr -d '\r"' <"$T/result.csv" >"$T/result.norm"
if ! cmp -s "$T/result.norm" "$T/expected.csv"; then
	diff "$T/expected.csv" "$T/result.norm" >&2
	e2e_fail "result differs from the independent computation"
fi
expect_ok sh -c "umask 077; DCR_IDENTITY='$T/anna.pem' dcr result '$ROOM' overlap -o '$T/result2.csv'"
cmp -s "$T/result.csv" "$T/result2.csv" || e2e_fail "result -o differs from stdout"
expect_contains "$E2E_ERR" "bytes written to $T/result2.csv"
expect_eq "$(stat -c %a "$T/result2.csv")" 600 "mode of a result written under umask 077"
# each retrieval is in the log
expect_ok e2e_as ian dcr room show "$ROOM" --status
AFTER=$(sed -n 's/.*published, \([0-9]*\) events.*/\1/p' "$E2E_OUT")
expect_eq "$AFTER" $((EVENTS + 2)) "events after two retrievals"

# ---- test on empty inputs
expect_ok e2e_as anna dcr room test "$ROOM"
expect_contains "$E2E_OUT" overlap
expect_contains "$E2E_OUT" "overlap (sql): ok"
expect_contains "$E2E_OUT" "city string"
expect_contains "$E2E_OUT" "customers integer"
expect_contains "$E2E_OUT" "age_sum integer"

# ---- stop
expect_ok e2e_as anna dcr room stop "$ROOM" --reason "study finished"
expect_ok e2e_as ian dcr status "$ROOM"
expect_contains "$E2E_OUT" "status    stopped (study finished)"
# the log stays readable, the result too
expect_ok e2e_as anna dcr room export "$ROOM"

# ---- usage errors and help
expect_fail dcr room
expect_status 2
expect_fail dcr room frobnicate
expect_status 2
expect_fail dcr provision "$ROOM"
expect_status 2
expect_stderr "usage: dcr provision ROOM DATASET FILE"
for c in keygen whoami datasets stats data status result run provision deprovision "room create" \
	"room save" "room show" "room export" "room list" "room duplicate" "room publish" \
	"room stop" "room test"; do
	# shellcheck disable=SC2086
	dcr $c --help >"$T/help.out" 2>&1 || e2e_fail "dcr $c --help failed"
	grep -q "^usage: dcr " "$T/help.out" || e2e_fail "dcr $c --help: $(cat "$T/help.out")"
done
# no socket: a clear error
expect_fail env -u DCR_SOCKET DCR_IDENTITY="$T/anna.pem" dcr room list
expect_stderr "dcr room list: no daemon socket" "--socket" "DCR_SOCKET"
# the admission check runs before signing, in the CLI: a query that does
# not compile is refused without a daemon (docs/rules.md); the same file
# with the query fixed gets as far as needing the socket
# (abs() with no argument: in the filtered subset, which is a rule, but
# SQLite refuses it)
sed 's/ ORDER BY b.city/ HAVING abs() > 0 ORDER BY b.city/' "$T/room.json" >"$T/badsql.json"
grep -q 'abs()' "$T/badsql.json" || e2e_fail "badsql.json: the edit did not apply"
expect_fail env -u DCR_SOCKET DCR_IDENTITY="$T/anna.pem" dcr room create "$T/badsql.json"
expect_stderr "dcr room create: $T/badsql.json: definition: computations[0] (\"overlap\"): SQL error: wrong number of arguments to function abs()"
expect_fail env -u DCR_SOCKET DCR_IDENTITY="$T/anna.pem" dcr room save "$ROOM" "$T/badsql.json"
expect_stderr "dcr room save: $T/badsql.json: definition: computations[0] (\"overlap\"): SQL error"
expect_fail env -u DCR_SOCKET DCR_IDENTITY="$T/anna.pem" dcr room create "$T/room.json"
expect_stderr "dcr room create: no daemon socket"
# --socket works where DCR_SOCKET is unset, anywhere on the line
expect_ok env -u DCR_SOCKET DCR_IDENTITY="$T/anna.pem" dcr room list --socket "$T/sock"
expect_contains "$E2E_OUT" "$ROOM"
expect_ok env -u DCR_SOCKET dcr --socket "$T/sock" --identity "$T/anna.pem" room list
expect_contains "$E2E_OUT" "$ROOM"

e2e_stop_daemon || e2e_fail "dcrd did not exit cleanly on SIGTERM"
echo "lifecycle: ok"
