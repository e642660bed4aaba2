# audit_forge.sh: `dcr audit verify` offline (no daemon at all) on exports
# forged with real keys by tests/unit/test_audit_forge (`write DIR` mode):
# a valid room with every event type, an event the host appended with a
# forged signature, a validly signed provision by a participant who does
# not own the dataset, and older checkpoints the log does or does not
# extend. Checks the verdict, the exit code and that the message names the
# first bad event.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"

e2e_setup
FORGE="$DCR_BUILD_DIR/tests/test_audit_forge"
[ -x "$FORGE" ] || e2e_fail "$FORGE not built"
mkdir -p "$T/f"
"$FORGE" write "$T/f" >"$T/forge.out" 2>&1 || e2e_fail "test_audit_forge write: $(cat "$T/forge.out")"
DKEY=$(cat "$T/f/daemon.key")
# No daemon, no socket: verify must not need one.
unset DCR_SOCKET

expect_ok dcr audit verify "$T/f/valid.export"
grep -q -E '^valid: room [0-9a-f]{32} "forge-test", 12 events, root [0-9a-f]{64}, checkpoint signed by dcrd ed25519:' "$E2E_OUT" ||
	e2e_fail "summary: $(cat "$E2E_OUT")"
ROOT=$(sed 's/.*, root \([0-9a-f]*\),.*/\1/' "$E2E_OUT")
INDEP="python3 $DCR_SOURCE_DIR/tests/e2e/audit_indep.py"
$INDEP export "$T/f/valid.export" | grep -q " 12 $ROOT\$" || e2e_fail "independent verifier disagrees"
expect_eq "$($INDEP export "$T/f/forged-append.export")" "bad: seq 12 (dataset.provisioned): bad signature" "independent verifier"
expect_ok dcr audit verify "$T/f/valid.export" --daemon-key "$DKEY" --threads 1
expect_contains "$E2E_OUT" "valid: room"

expect_fail dcr audit verify "$T/f/forged-append.export"
expect_status 1
expect_contains "$E2E_OUT" "invalid: seq 12 (dataset.provisioned): bad signature"

expect_fail dcr audit verify "$T/f/non-owner.export"
expect_status 1
expect_contains "$E2E_OUT" "invalid: seq 3 (dataset.provisioned): actor ian@insurer.example is not an owner of dataset bank_customers"

# Older checkpoints: a prefix is extended, a fork is not.
expect_ok dcr audit verify "$T/f/valid.export" --checkpoint "$T/f/prefix5.checkpoint"
expect_contains "$E2E_OUT" "extends checkpoint of 5 events"
expect_fail dcr audit verify "$T/f/valid.export" --checkpoint "$T/f/fork5.checkpoint"
expect_status 1
expect_contains "$E2E_OUT" "invalid: log is not an extension of the older checkpoint"

# A pinned daemon key that is not the file's.
OTHER=$(e2e_identity other other@example.org) || e2e_fail keygen
expect_fail dcr audit verify "$T/f/valid.export" --daemon-key "${OTHER#* }"
expect_status 1
expect_contains "$E2E_OUT" "but you trust"
expect_fail dcr audit verify "$T/f/valid.export" --daemon-key nonsense
expect_status 2

# Replay of the forged file stops before the bad event.
expect_fail dcr audit replay "$T/f/non-owner.export"
expect_status 1
expect_contains "$E2E_OUT" "after seq 2 (room.published)"
grep -q "after seq 3" "$E2E_OUT" && e2e_fail "replay printed the state after the bad event"
expect_contains "$E2E_OUT" "invalid: seq 3 (dataset.provisioned)"

# The rules half: every crafted log (tests/unit/test_audit_forge.c,
# build_cases: inputs and schema of run.completed, keys that are not
# points, JSON limits, the SQL tokenizer, SQL that does not compile, data
# provisioned again, development runs reading another's dataset or with
# development off, file names that forge lines or break the mount's
# folder, an empty export) gets the same verdict from the
# independent verifier written from docs/rules.md and docs/room-format.md.
n=0
for f in "$T"/f/*.export; do
	v=$(expect_verifiers_agree "$f") || exit 1
	case "$(basename "$f")" in
	rules-completed-ok.* | rules-failed-class-ok.* | rules-failed-class-ok-tmp.* | \
		rules-privacy-ok.* | \
		rules-privacy-ok-having.* | \
		rules-sql-does-not-compile.* | \
		rules-quoted-identifiers.* | \
		rules-reprovisioned-old-hash.* | rules-drops-ok.* | rules-file-name-ok.* | rules-dev-ok.* | rules-request-ok.* | \
		rules-request-auto-ok.* | valid.*)
		case "$v" in valid:*) ;; *) e2e_fail "$f: expected valid, got $v" ;; esac ;;
	*) case "$v" in invalid:*) ;; *) e2e_fail "$f: expected invalid, got $v" ;; esac ;;
	esac
	n=$((n + 1))
done
[ "$n" -ge 66 ] || e2e_fail "only $n crafted exports"

# The offline log of the valid file: one line per event.
expect_ok dcr audit log "$T/f/valid.export"
expect_eq "$(wc -l <"$E2E_OUT")" 12 "log lines"
expect_contains "$E2E_OUT" "anna@bank.example created the room forge-test"
expect_contains "$E2E_OUT" "dcrd completed run"

echo "audit_forge: ok"
