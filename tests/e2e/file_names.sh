# file_names.sh: the file name rule (docs/rules.md "File names") the way a
# user meets it. Through the CLI and then through a real mount, a file
# named with a newline (which would forge a line in every participant's
# datasets/NAME/status), with an ANSI escape, with a C1 control or a
# bidirectional override, or called `status`, is refused before anything is
# sent: the command fails, the message says what is wrong and where without
# echoing the control bytes, and nothing stored changes (the log has the
# same events, the dataset the same provision). A name outside ASCII is
# accepted and shown as it is.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"
. "$DCR_SOURCE_DIR/tests/e2e/mount_lib.inc"

e2e_setup
e2e_start_daemon
story_identities
story_room_json "$T/room.json"
story_csvs
id=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"
expect_ok e2e_as anna dcr room publish "$id"

NL=$(printf 'x\nmallory provisioned bank_customers.csv')
ESC=$(printf '\033[2J\033[31mred.csv')
C1=$(printf 'c1\302\2332J.csv')
RLO=$(printf 'invoice\342\200\256vsc.exe')
mkdir -p "$T/src"
for n in "$NL" "$ESC" "$C1" "$RLO" status; do
	cp "$T/bank.csv" "$T/src/$n" || e2e_fail "cp to a local file"
done

events() { e2e_as anna dcr audit log "$id" | wc -l; }

# a message never carries a control byte of the refused name
no_control_bytes() {
	if LC_ALL=C grep -q "$(printf '\033')" "$1" || LC_ALL=C grep -q "$(printf '\302\233')" "$1"; then
		e2e_fail "$2: the message echoes control bytes: $(od -c "$1" | head -5)"
	fi
}

# ---- the CLI ----
n0=$(events)
expect_fail e2e_as anna dcr provision "$id" bank_customers "$T/src/$NL"
expect_stderr "cannot provision dataset bank_customers under this file name" \
	"the file name has a control character at byte 1 (0x0a)"
[ "$(wc -l <"$E2E_ERR")" -eq 1 ] || e2e_fail "the newline forged a line: $(cat "$E2E_ERR")"
expect_fail e2e_as anna dcr provision "$id" bank_customers "$T/src/$ESC"
expect_stderr "control character at byte 0 (0x1b)"
no_control_bytes "$E2E_ERR" "cli, ANSI escape"
expect_fail e2e_as anna dcr provision "$id" bank_customers "$T/src/$C1"
expect_stderr "control character at byte 2 (U+009B)"
no_control_bytes "$E2E_ERR" "cli, C1"
expect_fail e2e_as anna dcr provision "$id" bank_customers "$T/src/$RLO"
expect_stderr "bidirectional formatting character at byte 7 (U+202E)"
expect_fail e2e_as anna dcr provision "$id" bank_customers "$T/src/status"
expect_stderr "the name of a file of the mount's own"
expect_eq "$(events)" "$n0" "events after refused provisions"
expect_ok e2e_as anna dcr datasets --json
grep -q '"dataset": "bank_customers"' "$E2E_OUT" && e2e_fail "a refused name provisioned: $(cat "$E2E_OUT")"

# accepted: a name outside ASCII, shown as it is
cp "$T/bank.csv" "$T/src/données 2026.csv"
expect_ok e2e_as anna dcr provision "$id" bank_customers "$T/src/données 2026.csv"
expect_eq "$(events)" "$((n0 + 1))" "events after an accepted provision"
expect_ok e2e_as anna dcr audit log "$id"
expect_contains "$E2E_OUT" "file données 2026.csv"
SHA=$(e2e_as anna dcr datasets --json | python3 -c '
import json, sys
for r in json.load(sys.stdin):
    if r.get("dataset") == "bank_customers":
        print(r.get("sha256"))')
[ -n "$SHA" ] && [ "$SHA" != None ] || e2e_fail "no sha256 for bank_customers"

# ---- the mount ----
if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null 2>&1; then
	echo "file_names: ok (cli only; no fuse)"
	exit 0
fi
A=$T/anna
I=$T/ian
mount_as anna "$id" "$A"
mount_as ian "$id" "$I"
DS=$A/datasets/bank_customers
expect_contains "$DS/status" "file: données 2026.csv"
st0=$(grep -E '^(sha256|file|rows):' "$DS/status")
n1=$(events)

expect_fail cp "$T/src/$NL" "$DS/"
expect_contains "$DS/status" "refused a file name: the file name has a control character at byte 1 (0x0a)"
grep -q '^mallory' "$I/datasets/bank_customers/status" && e2e_fail "a forged line in ian's status"
expect_fail cp "$T/src/$ESC" "$DS/"
expect_contains "$DS/status" "control character at byte 0 (0x1b)"
no_control_bytes "$DS/status" "mount, ANSI escape"
expect_fail cp "$T/src/$C1" "$DS/"
expect_contains "$DS/status" "(U+009B)"
no_control_bytes "$DS/status" "mount, C1"
expect_fail cp "$T/src/$RLO" "$DS/"
expect_contains "$DS/status" "(U+202E)"
# status is the mount's own file: writing over it is refused
expect_fail cp "$T/src/status" "$DS/"
expect_fail sh -c "cat '$T/bank.csv' >'$DS/status'"
# a rename of the provisioned file to a refused name
expect_fail mv "$DS/données 2026.csv" "$DS/$NL"
expect_eq "$(grep -E '^(sha256|file|rows):' "$DS/status")" "$st0" "provision after refused names"
expect_eq "$(events)" "$n1" "events after refused names in the mount"
ls "$DS" >"$T/ls.out" || e2e_fail "ls of the dataset folder"
expect_eq "$(LC_ALL=C sort "$T/ls.out" | tr '\n' ' ')" "données 2026.csv schema.json stats.json status " "listing"

# accepted: the same data under a plain name
cp "$T/bank.csv" "$DS/bank.csv" || e2e_fail "cp bank.csv"
expect_contains "$DS/status" "file: bank.csv"
expect_eq "$(events)" "$((n1 + 1))" "events after an accepted cp"

echo "file_names: ok"
