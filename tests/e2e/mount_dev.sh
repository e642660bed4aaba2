# mount_dev.sh: development runs through a real mount (dev/, docs/mount.md):
# writing dev/NAME.sql, .py or .R runs it at close; dev/NAME.out/ holds
# status, the output files, stdout and stderr; results compared with the
# same numbers computed independently (awk); another participant's dataset
# is refused (the write fails, status says why); a room without
# settings.development refuses every write; the runs are in the audit log
# and both verifiers accept the export.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"
. "$DCR_SOURCE_DIR/tests/e2e/mount_lib.inc"

mount_require
e2e_setup
e2e_start_daemon
story_identities
story_room_json "$T/room.json"
story_csvs
id=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"
A=$T/anna
I=$T/ian
mount_as anna "$id" "$A"
mount_as ian "$id" "$I"
# a draft room: dev/ takes no script
expect_eacces cp /dev/null "$A/dev/early.sql"
echo publish >"$A/ctl" || e2e_fail "publish"
cp "$T/bank.csv" "$A/datasets/bank_customers/" || e2e_fail "cp bank.csv"
cp "$T/insurer.csv" "$I/datasets/insurer_customers/" || e2e_fail "cp insurer.csv"

# SQL over one's own dataset: the close runs it
printf 'SELECT city, COUNT(*) AS n FROM bank_customers GROUP BY city ORDER BY city\n' \
	>"$T/by_city.sql"
cp "$T/by_city.sql" "$A/dev/" || e2e_fail "cp by_city.sql: $(cat "$A/status")"
expect_contains "$A/dev/by_city.out/status" "(sql): done"
expect_contains "$A/dev/by_city.out/status" "inputs: bank_customers"
{
	echo "city,n"
	awk -F, 'NR > 1 { n[$3]++ } END { for (c in n) print c "," n[c] }' "$T/bank.csv" |
		LC_ALL=C sort
} >"$T/by_city.want"
tr -d '\r' <"$A/dev/by_city.out/result.csv" | cmp -s - "$T/by_city.want" ||
	e2e_fail "dev/by_city.out/result.csv: $(cat "$A/dev/by_city.out/result.csv")"
cmp -s "$A/dev/by_city.sql" "$T/by_city.sql" || e2e_fail "dev/by_city.sql reads back"
expect_eq "$(ls "$A/dev" | tr '\n' ' ')" "by_city.out by_city.sql " "dev/ listing"

# python, inputs from its first line; stdout and stderr are the requester's
cat >"$T/counts.py" <<'PY'
# inputs: bank_customers
import collections, csv, sys
c = collections.Counter(r["city"] for r in csv.DictReader(open("/input/bank_customers/dataset.csv")))
with open("/output/counts.csv", "w") as f:
    f.write("city,n\n")
    for k in sorted(c):
        f.write("%s,%d\n" % (k, c[k]))
print("cities", len(c))
print("a warning", file=sys.stderr)
PY
cp "$T/counts.py" "$A/dev/" || e2e_fail "cp counts.py: $(cat "$A/status")"
expect_contains "$A/dev/counts.out/status" "(python): done"
cmp -s "$A/dev/counts.out/counts.csv" "$T/by_city.want" || e2e_fail "python result in the mount"
expect_eq "$(cat "$A/dev/counts.out/stdout")" "cities 4" "python stdout"
expect_eq "$(cat "$A/dev/counts.out/stderr")" "a warning" "python stderr"
# R, written with a shell redirection
printf '# inputs: bank_customers\nx <- read.csv("/input/bank_customers/dataset.csv")\nwriteLines(as.character(nrow(x)), "/output/rows.txt")\n' \
	>"$A/dev/rows.R" || e2e_fail "write rows.R"
expect_eq "$(cat "$A/dev/rows.out/rows.txt")" "200" "R result in the mount"

# someone else's dataset: the write fails, status says why, nothing ran
expect_fail cp "$T/by_city.sql" "$I/dev/"
expect_contains "$I/dev/by_city.out/status" "refused: "
expect_contains "$I/dev/by_city.out/status" "is not an owner of dataset bank_customers"
[ -e "$I/dev/by_city.out/result.csv" ] && e2e_fail "a refused script shows a result"
expect_contains "$I/status" "is not an owner of dataset bank_customers"
# ian's runs are his own: anna's mount does not show them, nor the reverse
printf 'SELECT COUNT(*) AS n FROM insurer_customers\n' >"$I/dev/mine.sql" || e2e_fail "ian mine.sql"
expect_eq "$(tr -d '\r' <"$I/dev/mine.out/result.csv")" "$(printf 'n\n200')" "ian's count"
[ -e "$A/dev/mine.sql" ] && e2e_fail "anna's mount shows ian's dev script"
# a failing script: status has the class and the message, to its requester
printf 'SELECT nosuchcolumn FROM bank_customers\n' >"$A/dev/bad.sql" || e2e_fail "bad.sql close"
expect_contains "$A/dev/bad.out/status" "failed"
expect_contains "$A/dev/bad.out/status" "error: sql error"
expect_contains "$A/dev/bad.out/status" "nosuchcolumn"
[ -e "$A/dev/bad.out/result.csv" ] && e2e_fail "a failed run shows a result"
# not a script name
expect_fail cp "$T/by_city.sql" "$A/dev/notes.txt"

# every run is in the audit log; both verifiers accept the export
expect_contains "$A/audit.log" "requested development run"
expect_contains "$A/audit.log" "(python, script sha256"
grep -q "a warning" "$A/audit.log" && e2e_fail "the audit log shows a script's output"
expect_ok e2e_as ian dcr audit export "$id" -o "$T/room.export"
v=$(expect_verifiers_agree "$T/room.export") || exit 1
case "$v" in valid:*) ;; *) e2e_fail "export: $v" ;; esac

# development off: dev/ refuses every script
story_room_json "$T/off.json" dev-off
sed -i 's/"development": true/"development": false/' "$T/off.json"
off=$(e2e_as anna dcr room create "$T/off.json") || e2e_fail "room create (off)"
expect_ok e2e_as anna dcr room publish "$off"
O=$T/anna-off
mount_as anna "$off" "$O"
expect_eacces cp "$T/by_city.sql" "$O/dev/"
expect_contains "$O/status" "development runs are off in this room"

mount_stop "$O"
mount_stop "$A"
mount_stop "$I"
mount_check_logs
e2e_stop_daemon || e2e_fail "dcrd did not exit cleanly on SIGTERM"
echo "mount_dev: ok"
