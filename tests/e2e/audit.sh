# audit.sh: `dcr audit` against a real daemon. A room goes through every
# event type through the CLI (created, draft_saved, published, provisioned
# by both owners, run requested/completed, result retrieved, a run that
# fails, deprovisioned, stopped); then the log, an export verified offline,
# replay, an inclusion proof, checkpoints kept and checked later, and
# tampered exports (bits flipped in envelopes and signatures, an event
# dropped, two swapped, the log truncated, a checkpoint from another room),
# each reported invalid with the first bad event named.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"

e2e_setup
e2e_start_daemon
TAMPER="python3 $DCR_SOURCE_DIR/tests/e2e/audit_tamper.py"

# ---- a room with every event type
story_identities
story_room_json "$T/story.json" audit-room
# A second computation that fails at run time (abs() of the smallest
# integer overflows in SQLite, but only once there are rows).
python3 - "$T/story.json" "$T/room.json" <<'PY' || e2e_fail "room json"
import json, sys
d = json.load(open(sys.argv[1]))
d["computations"].append({"name": "broken", "kind": "sql",
    "query": "SELECT abs(b.age * 0 - 9223372036854775807 - 1) AS x FROM bank_customers b"})
d["participants"][0]["analyst_of"].append("broken")
json.dump(d, open(sys.argv[2], "w"), indent=2)
PY
story_csvs
ROOM=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"
sed 's/Customer overlap between a bank and an insurer/Audited overlap/' "$T/room.json" >"$T/room2.json"
expect_ok e2e_as anna dcr room save "$ROOM" "$T/room2.json"
expect_ok e2e_as anna dcr room publish "$ROOM"
expect_ok e2e_as anna dcr provision "$ROOM" bank_customers "$T/bank.csv"
BANK_SHA=$(sha256sum "$T/bank.csv" | cut -d' ' -f1)
expect_ok e2e_as ian dcr provision "$ROOM" insurer_customers "$T/insurer.csv"
# Keep a checkpoint and an export at 5 events, for --checkpoint later.
expect_ok e2e_as ian dcr audit checkpoint "$ROOM" -o "$T/at5.cp"
expect_contains "$E2E_ERR" "checkpoint at 5 events"
expect_ok e2e_as ian dcr audit export "$ROOM" -o "$T/at5.export"
expect_ok e2e_as anna dcr run "$ROOM" overlap --wait --timeout 120
expect_ok e2e_as anna dcr result "$ROOM" overlap -o "$T/result.csv"
expect_fail e2e_as anna dcr run "$ROOM" broken --wait --timeout 120
expect_ok e2e_as ian dcr deprovision "$ROOM" insurer_customers
expect_ok e2e_as anna dcr room stop "$ROOM" --reason "audit test finished"

# ---- log
expect_ok e2e_as ian dcr audit log "$ROOM"
cp "$E2E_OUT" "$T/log.txt"
expect_eq "$(wc -l <"$T/log.txt")" 12 "log lines"
grep -q -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z anna@bank.example created the room audit-room' "$T/log.txt" ||
	e2e_fail "log line 1: $(head -n 1 "$T/log.txt")"
for text in "anna@bank.example saved a draft" "anna@bank.example published the room" \
	"anna@bank.example provisioned bank_customers: 200 rows" \
	"ian@insurer.example provisioned insurer_customers: 200 rows" \
	"anna@bank.example requested run" "dcrd completed run" \
	"anna@bank.example retrieved the result of run" "dcrd failed run" \
	"ian@insurer.example deprovisioned insurer_customers" \
	"anna@bank.example stopped the room: audit test finished"; do
	expect_contains "$T/log.txt" "$text"
done
sed -n 4p "$T/log.txt" | grep -q "sha256 $(echo "$BANK_SHA" | cut -c1-12)" ||
	e2e_fail "provision line lacks the file's sha256: $(sed -n 4p "$T/log.txt")"
# eve is no participant: the daemon does not show her the log
expect_fail e2e_as eve dcr audit log "$ROOM"
expect_status 1
expect_stderr "dcr audit log:"

# ---- export and offline verification
expect_ok e2e_as ian dcr audit export "$ROOM" -o "$T/room.export"
expect_contains "$E2E_ERR" "exported 12 events of room $ROOM"
# standard output and input work too
e2e_as ian dcr audit export "$ROOM" >"$T/stdout.export" || e2e_fail "export to stdout"
cmp -s "$T/stdout.export" "$T/room.export" || e2e_fail "export to stdout differs from -o"
expect_ok sh -c "dcr audit verify - <'$T/stdout.export'"
expect_contains "$E2E_OUT" "valid: room $ROOM"
unset DCR_SOCKET # everything below that reads a file must work offline
expect_ok dcr audit verify "$T/room.export"
grep -q -E "^valid: room $ROOM \"audit-room\", 12 events, root [0-9a-f]{64}, checkpoint signed by dcrd ed25519:[A-Za-z0-9+/]{43}=\$" "$E2E_OUT" ||
	e2e_fail "verify summary: $(cat "$E2E_OUT")"
DKEY=$(sed 's/.*checkpoint signed by dcrd //' "$E2E_OUT")
ROOT=$(sed 's/.*, root \([0-9a-f]*\),.*/\1/' "$E2E_OUT")
# an independent verifier written from docs/event-format.md agrees
INDEP="python3 $DCR_SOURCE_DIR/tests/e2e/audit_indep.py"
expect_eq "$($INDEP export "$T/room.export")" "ok $ROOM 12 $ROOT" "independent verifier"
expect_ok dcr audit verify "$T/room.export" --daemon-key "$DKEY" --threads 1
expect_fail dcr audit verify "$T/room.export" --daemon-key "$ANNA_KEY"
expect_status 1
expect_contains "$E2E_OUT" "invalid: the export names daemon key $DKEY, but you trust $ANNA_KEY"
# the offline log is the online log
expect_ok dcr audit log "$T/room.export"
cmp -s "$E2E_OUT" "$T/log.txt" || e2e_fail "offline log differs: $(diff "$T/log.txt" "$E2E_OUT")"

# ---- the log extends the checkpoints kept at 5 events
expect_ok dcr audit verify "$T/room.export" --checkpoint "$T/at5.cp"
expect_contains "$E2E_OUT" "extends checkpoint of 5 events"
expect_ok dcr audit verify "$T/room.export" --checkpoint "$T/at5.export"
expect_contains "$E2E_OUT" "extends checkpoint of 5 events"
expect_ok dcr audit verify "$T/at5.export"
expect_contains "$E2E_OUT" "5 events"
# ... but the old export does not extend the new log
expect_fail dcr audit verify "$T/at5.export" --checkpoint "$T/room.export"
expect_contains "$E2E_OUT" "invalid: older checkpoint covers 12 events but the log has only 5"

# ---- replay
expect_ok dcr audit replay "$T/room.export" --at 3
expect_contains "$E2E_OUT" "after seq 3 (dataset.provisioned)"
expect_contains "$E2E_OUT" "status: published, 4 events"
expect_contains "$E2E_OUT" "bank_customers: provisioned by anna@bank.example at seq 3, sha256 $BANK_SHA, 200 rows"
expect_contains "$E2E_OUT" "insurer_customers: not provisioned"
expect_contains "$E2E_OUT" "runs: none"
expect_eq "$(grep -c '^after seq' "$E2E_OUT")" 1 "states printed with --at"
expect_ok dcr audit replay "$T/room.export"
expect_eq "$(grep -c '^after seq' "$E2E_OUT")" 12 "states printed"
expect_contains "$E2E_OUT" "status: stopped, 12 events"
expect_contains "$E2E_OUT" "overlap"
expect_contains "$E2E_OUT" ": failed: "
expect_contains "$E2E_OUT" "retrieved 1 time"
expect_contains "$E2E_OUT" "requests: none"
expect_fail dcr audit replay "$T/room.export" --at 12
expect_status 2

# ---- inclusion proof
export DCR_SOCKET="$T/sock"
expect_ok e2e_as ian dcr audit proof "$ROOM" 3 -o "$T/p3.proof"
expect_fail e2e_as ian dcr audit proof "$ROOM" 12 -o "$T/p12.proof"
expect_stderr "dcr audit proof: seq 12: the room has 12 events"
[ ! -e "$T/p12.proof" ] || e2e_fail "a failed proof left a file"
unset DCR_SOCKET
expect_fail e2e_as ian dcr audit proof "$ROOM" 3 -o "$T/p.proof"
expect_stderr "dcr audit proof: no daemon socket"
expect_ok dcr audit verify-proof "$T/p3.proof" --daemon-key "$DKEY"
expect_contains "$E2E_OUT" "valid: seq 3 (dataset.provisioned) is included in room $ROOM at 12 events"
expect_eq "$($INDEP proof "$T/p3.proof")" "ok $ROOM 3 dataset.provisioned" "independent proof check"
for s in 0 5 11; do
	export DCR_SOCKET="$T/sock"
	e2e_as anna dcr audit proof "$ROOM" $s -o "$T/p$s.proof" 2>/dev/null || e2e_fail "proof $s"
	unset DCR_SOCKET
	$INDEP proof "$T/p$s.proof" | grep -q "^ok $ROOM $s " || e2e_fail "independent proof check of seq $s"
done
python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[-1]^=1; open(p+".bad","wb").write(b)' "$T/p3.proof"
expect_fail dcr audit verify-proof "$T/p3.proof.bad"
expect_status 1
expect_contains "$E2E_OUT" "invalid: seq 3 (dataset.provisioned): inclusion proof does not verify"
expect_fail dcr audit verify-proof "$T/p3.proof" --daemon-key "$ANNA_KEY"
expect_contains "$E2E_OUT" "invalid: checkpoint is signed by $DKEY, but you trust"

# ---- tampering: each is invalid, naming the first bad event
bad() { # NAME EXPECTED-TEXT: verify $T/NAME must fail with the text
	expect_fail dcr audit verify "$T/$1"
	expect_status 1
	expect_contains "$E2E_OUT" "$2"
}
OFF=$($TAMPER find "$T/room.export" 3 bank_customers) || e2e_fail "find"
$TAMPER flip "$T/room.export" "$T/t1" 3 $((OFF + 4)) 0 || e2e_fail tamper
bad t1 "invalid: seq 3 (dataset.provisioned): bad signature"
expect_eq "$($INDEP export "$T/t1")" "bad: seq 3 (dataset.provisioned): bad signature" "independent verifier on t1"
OFF=$($TAMPER find "$T/room.export" 0 audit-room) || e2e_fail "find"
$TAMPER flip "$T/room.export" "$T/t2" 0 $((OFF + 1)) 3 || e2e_fail tamper
bad t2 "invalid: seq 0 (room.created): bad signature"
$TAMPER flip "$T/room.export" "$T/t3" 6 -1 7 || e2e_fail tamper
bad t3 "invalid: seq 6 (run.completed): bad signature"
$TAMPER flip "$T/room.export" "$T/t4" 9 -64 0 || e2e_fail tamper
bad t4 "invalid: seq 9 (run.failed): bad signature"
$TAMPER flip "$T/room.export" "$T/t5" 2 0 6 || e2e_fail tamper
bad t5 "invalid: seq 2: malformed event"
$TAMPER drop "$T/room.export" "$T/t6" 4 || e2e_fail tamper
bad t6 "invalid: seq 4 (run.requested): event was signed for position 5"
$TAMPER swap "$T/room.export" "$T/t7" 7 8 || e2e_fail tamper
bad t7 "invalid: seq 7 (run.requested): event was signed for position 8"
expect_eq "$($INDEP export "$T/t7")" "bad: seq 7 (run.requested): signed for position 8" "independent verifier on t7"
$TAMPER truncate "$T/room.export" "$T/t8" 10 || e2e_fail tamper
bad t8 "invalid: checkpoint covers 12 events but the log has 10"
# a checkpoint of another room (a copy of this one) in the file
export DCR_SOCKET="$T/sock"
COPY=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "second room"
expect_ok e2e_as anna dcr audit export "$COPY" -o "$T/copy.export"
expect_ok e2e_as anna dcr audit checkpoint "$COPY" -o "$T/copy.cp"
unset DCR_SOCKET
$TAMPER checkpoint "$T/room.export" "$T/t9" "$T/copy.export" || e2e_fail tamper
bad t9 "invalid: checkpoint is for room $COPY"
expect_fail dcr audit verify "$T/room.export" --checkpoint "$T/copy.cp"
expect_contains "$E2E_OUT" "invalid: older checkpoint is for room $COPY"
# replay stops before the bad event
expect_fail dcr audit replay "$T/t6"
expect_eq "$(grep -c '^after seq' "$E2E_OUT")" 4 "states before the dropped event"
expect_contains "$E2E_OUT" "invalid: seq 4"
# garbage is refused, not crashed on
head -c 100 "$T/room.export" >"$T/t10"
bad t10 "invalid: export file: offset"
expect_fail dcr audit verify "$T/nonexistent"
expect_stderr "dcr audit verify:"

# the independent verifier with the rules agrees on every file above
for f in room.export stdout.export at5.export copy.export t1 t2 t3 t4 t5 t6 t7 t8 t9 t10; do
	expect_verifiers_agree "$T/$f" >/dev/null || exit 1
done

# ---- usage
for c in "" log export verify replay proof verify-proof checkpoint; do
	# shellcheck disable=SC2086
	dcr audit $c --help >"$T/help.out" 2>&1 || e2e_fail "dcr audit $c --help failed"
	grep -q "^usage: dcr audit" "$T/help.out" || e2e_fail "dcr audit $c --help: $(cat "$T/help.out")"
done
expect_fail dcr audit
expect_status 2
expect_fail dcr audit frobnicate
expect_status 2
expect_fail dcr audit verify
expect_status 2

export DCR_SOCKET="$T/sock"
e2e_stop_daemon || e2e_fail "dcrd did not exit cleanly on SIGTERM"
echo "audit: ok"
