# mount_drops.sh: a drop folder for a legacy export job (issue 17), through
# a real mount with real tools, then the same through the CLI. A dataset
# with "drops": "append" takes five daily exports copied in by a script;
# the same file again is counted once; a bad drop fails cp and changes
# nothing; rm withdraws one drop (install of a bad file over a drop keeps
# it); mv renames one; rsync -a of the export
# folder sends nothing new; the SQL count over the union equals the count
# computed independently (awk over the files still in); the statistics are
# over the union; the audit log names the file of every drop; both
# verifiers agree on the exported log, also after the CLI's drops and
# withdrawal.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/mount_lib.inc"

mount_require
for tool in rsync awk python3 install; do
	command -v $tool >/dev/null 2>&1 || e2e_fail "$tool not installed (tools/deps installs it)"
done
e2e_setup
e2e_start_daemon
ANNA=$(e2e_identity anna anna@bank.example) || e2e_fail "keygen anna"
IAN=$(e2e_identity ian ian@insurer.example) || e2e_fail "keygen ian"
cat >"$T/room.json" <<JSON
{
  "format": "dcr.room/1",
  "name": "daily-exports",
  "settings": {"require_provisioned": true},
  "participants": [
    {"email": "anna@bank.example", "key": "${ANNA#* }",
     "owner_of": ["transactions"], "analyst_of": []},
    {"email": "ian@insurer.example", "key": "${IAN#* }",
     "owner_of": [], "analyst_of": ["daily_count"]}
  ],
  "datasets": [
    {"name": "transactions", "drops": "append", "share_statistics": true,
     "columns": [{"name": "id", "type": "integer", "nullable": false},
                 {"name": "day", "type": "string", "format": "date", "nullable": false},
                 {"name": "amount", "type": "float"}]}
  ],
  "computations": [
    {"name": "daily_count", "kind": "sql",
     "query": "SELECT COUNT(*) AS n, COUNT(DISTINCT day) AS days FROM transactions"}
  ]
}
JSON
id=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"
A=$T/anna
I=$T/ian
mount_as anna "$id" "$A"
mount_as ian "$id" "$I"
echo publish >"$A/ctl" || e2e_fail "publish"
DS=$A/datasets/transactions

# The legacy job's exports: a different number of rows each day; day 4
# writes its columns in another order, day 5 starts with a BOM and has CRLF
# line ends (each drop is validated on its own, with its own header).
mkdir -p "$T/exports"
for d in 1 2 3 4 5; do
	f=$T/exports/export_2026-12-0$d.csv
	awk -v d=$d 'BEGIN {
		if (d == 4) print "amount,id,day"; else print "id,day,amount";
		for (i = 0; i < 10 + 7 * d; i++) {
			id = d * 1000 + i;
			if (d == 4) printf "%.2f,%d,2026-12-0%d\n", i * 1.5, id, d;
			else printf "%d,2026-12-0%d,%.2f\n", id, d, i * 1.5;
		}
	}' >"$f"
done
printf '\357\273\277' | cat - "$T/exports/export_2026-12-05.csv" | sed 's/$/\r/' >"$T/x" &&
	mv "$T/x" "$T/exports/export_2026-12-05.csv"
nevents() { ls "$A/events" | wc -l; }
# rows of the exports named, counted independently of dcr
rows_of() { for f in "$@"; do tail -n +2 "$T/exports/$f"; done | wc -l; }

# 1. Five daily drops by a script, one cp a day.
for d in 1 2 3 4 5; do
	cp "$T/exports/export_2026-12-0$d.csv" "$DS/" || e2e_fail "cp of day $d"
done
ls "$DS" >"$T/ls.out"
for d in 1 2 3 4 5; do
	expect_contains "$T/ls.out" "export_2026-12-0$d.csv"
done
expect_contains "$DS/status" "drops: append"
expect_contains "$DS/status" "drop_count: 5"
expect_contains "$DS/status" "rows: $(rows_of export_2026-12-01.csv export_2026-12-02.csv \
	export_2026-12-03.csv export_2026-12-04.csv export_2026-12-05.csv)"
# Each drop reads back byte for byte (its owner only).
for d in 1 4 5; do
	cmp "$DS/export_2026-12-0$d.csv" "$T/exports/export_2026-12-0$d.csv" ||
		e2e_fail "drop of day $d does not read back"
done
[ "$(stat -c %s "$DS/export_2026-12-02.csv")" = "$(stat -c %s "$T/exports/export_2026-12-02.csv")" ] ||
	e2e_fail "size of a drop"
# ian (no owner) sees the folder but not the drops.
ls "$I/datasets/transactions" >"$T/ls-ian.out"
grep -q export_ "$T/ls-ian.out" && e2e_fail "a non-owner sees the drops: $(cat "$T/ls-ian.out")"
expect_fail cat "$I/datasets/transactions/export_2026-12-01.csv"
expect_fail rm "$I/datasets/transactions/export_2026-12-01.csv"
n0=$(nevents)

# 2. The same file dropped twice counts once: cp succeeds, no event.
cp "$T/exports/export_2026-12-03.csv" "$DS/" || e2e_fail "cp of a drop already in"
expect_eq "$(nevents)" "$n0" "events after dropping the same file again"
expect_contains "$DS/status" "export_2026-12-03.csv unchanged"
expect_contains "$DS/status" "drop_count: 5"
# rsync -a of the whole export folder: every file is already in.
rsync -a "$T/exports/" "$DS/" || e2e_fail "rsync -a of the exports"
rsync -a "$T/exports/" "$DS/" || e2e_fail "rsync -a of the exports, again"
expect_eq "$(nevents)" "$n0" "events after rsync -a of drops already in"

# 3. A bad drop: cp fails, nothing changes.
awk -F, 'NR == 4 { print $1 ",2026-13-45," $3; next } { print }' \
	"$T/exports/export_2026-12-01.csv" >"$T/export_2026-12-06.csv"
expect_fail cp "$T/export_2026-12-06.csv" "$DS/"
expect_eq "$(nevents)" "$n0" "events after a bad drop"
[ -e "$DS/export_2026-12-06.csv" ] && e2e_fail "a rejected drop is listed"
expect_contains "$DS/status" "rejected export_2026-12-06.csv"
expect_contains "$DS/status" "drop_count: 5"

# 4. A corrected re-export under the same name replaces that drop.
awk 'NR <= 3' "$T/exports/export_2026-12-03.csv" >"$T/fixed.csv"
cp "$T/fixed.csv" "$DS/export_2026-12-03.csv" || e2e_fail "cp of a corrected day 3"
cp "$T/fixed.csv" "$T/exports/export_2026-12-03.csv"
expect_eq "$(nevents)" "$((n0 + 1))" "events after a re-export"
expect_contains "$DS/status" "drop_count: 5"

# 5. Withdrawal of one drop: rm, a signed event naming the file.
# It leaves the listing at once and is withdrawn after the grace period
# (2 s), like the rm of a replace dataset's file.
rm "$DS/export_2026-12-02.csv" || e2e_fail "rm of a drop"
ls "$DS" >"$T/ls.out"
grep -q export_2026-12-02.csv "$T/ls.out" && e2e_fail "a withdrawn drop is listed"
expect_contains "$DS/status" "pending_rm: export_2026-12-02.csv"
wait_for "$A/audit.log" "withdrew from transactions, file export_2026-12-02.csv"
expect_eq "$(nevents)" "$((n0 + 2))" "events after rm of a drop"
expect_contains "$DS/status" "drop_count: 4"
# install deletes the name before it writes it: a bad file so installed
# must not cost the drop of that name.
expect_fail install -m 0644 "$T/export_2026-12-06.csv" "$DS/export_2026-12-04.csv"
sleep 3
expect_eq "$(nevents)" "$((n0 + 2))" "events after install of a bad file over a drop"
[ -e "$DS/export_2026-12-04.csv" ] || e2e_fail "install of a bad file cost the drop"
expect_contains "$DS/status" "the earlier rm of export_2026-12-04.csv is undone"
cmp "$DS/export_2026-12-04.csv" "$T/exports/export_2026-12-04.csv" || e2e_fail "day 4 changed"
# mv of a drop: dropped again under the new name, the old name withdrawn.
mv "$DS/export_2026-12-05.csv" "$DS/export_2026-12-05-final.csv" || e2e_fail "mv of a drop"
ls "$DS" >"$T/ls.out"
expect_contains "$T/ls.out" "export_2026-12-05-final.csv"
grep -q "export_2026-12-05.csv" "$T/ls.out" && e2e_fail "mv left the old name"
cmp "$DS/export_2026-12-05-final.csv" "$T/exports/export_2026-12-05.csv" || e2e_fail "mv changed bytes"
cp "$T/exports/export_2026-12-05.csv" "$T/exports/export_2026-12-05-final.csv"
rm "$T/exports/export_2026-12-05.csv" "$T/exports/export_2026-12-02.csv"

# rsync --delete mirrors the export folder: a drop no longer in it is
# withdrawn, the others stay as they are (nothing sent, no event).
awk 'NR <= 5' "$T/exports/export_2026-12-01.csv" | sed 's/2026-12-01/2026-12-08/' >"$T/export_2026-12-08.csv"
cp "$T/export_2026-12-08.csv" "$DS/" || e2e_fail "cp of day 8"
n2=$(nevents)
rsync -a --delete --exclude schema.json --exclude status --exclude stats.json \
	"$T/exports/" "$DS/" || e2e_fail "rsync -a --delete"
wait_for "$A/audit.log" "withdrew from transactions, file export_2026-12-08.csv"
expect_eq "$(nevents)" "$((n2 + 1))" "events after rsync --delete"
expect_contains "$DS/status" "drop_count: 4"

# 6. SQL sees one table: the union of the drops still in, counted
# independently (awk/wc over the files).
IN="export_2026-12-01.csv export_2026-12-03.csv export_2026-12-04.csv export_2026-12-05-final.csv"
want=$(rows_of $IN)
echo >"$I/computations/daily_count/run" || e2e_fail "run"
wait_for "$I/computations/daily_count/status" "state: done" 120
got=$(sed -n 2p "$I/computations/daily_count/result.csv" | tr -d '\r')
expect_eq "$got" "$want,4" "COUNT(*) and days over the union"
# The statistics are over the union too (shared with ian by the definition).
expect_contains "$I/datasets/transactions/stats.json" "\"rows\":$want,"
# The run recorded the union hash: SHA-256 of the drops' sha256 in drop order.
union=$(for f in export_2026-12-01.csv export_2026-12-04.csv export_2026-12-03.csv \
	export_2026-12-05-final.csv; do sha256sum "$T/exports/$f" | cut -c1-64; done |
	python3 -c 'import sys, hashlib; print(hashlib.sha256(b"".join(bytes.fromhex(l.strip()) for l in sys.stdin)).hexdigest())')
expect_contains "$A/datasets/transactions/status" "sha256: $union"

# 7. The audit log names the file of every drop, for every participant.
for f in 01 02 03 04 05 05-final; do
	expect_contains "$I/audit.log" "dropped transactions:"
	expect_contains "$I/audit.log" "file export_2026-12-$f.csv"
done
grep -q "export_2026-12-06" "$I/audit.log" && e2e_fail "the rejected drop is in the log"

# 8. The CLI does what the mount does.
cp "$T/exports/export_2026-12-01.csv" "$T/export_2026-12-07.csv"
sed -i 's/2026-12-01/2026-12-07/' "$T/export_2026-12-07.csv"
expect_ok e2e_as anna dcr provision "$id" transactions "$T/export_2026-12-07.csv"
expect_contains "$E2E_OUT" "dropped export_2026-12-07.csv into transactions: $(rows_of ../export_2026-12-07.csv) rows"
expect_contains "$E2E_OUT" "transactions now holds 5 drops"
# The statistics follow the union (made once per union, then kept).
r7=$(rows_of ../export_2026-12-07.csv)
wait_for "$I/datasets/transactions/stats.json" "\"rows\":$((want + r7)),"
expect_ok e2e_as ian dcr stats "$id" transactions --json
expect_contains "$E2E_OUT" "\"rows\":$((want + r7)),"
n1=$(e2e_as anna dcr status "$id" | grep -c "drop export_")
expect_eq "$n1" 5 "drops in dcr status"
expect_ok e2e_as anna dcr provision "$id" transactions "$T/export_2026-12-07.csv"
expect_contains "$E2E_OUT" "already in"
expect_contains "$E2E_OUT" "counted once"
expect_fail e2e_as anna dcr provision "$id" transactions "$T/export_2026-12-06.csv"
expect_stderr "line 4"
wait_for "$DS/status" "drop_count: 5"
expect_contains "$T/anna/datasets/transactions/status" "export_2026-12-07.csv"
e2e_as anna dcr data "$id" transactions --drop export_2026-12-07.csv -o "$T/back.csv" ||
	e2e_fail "dcr data --drop"
cmp "$T/back.csv" "$T/export_2026-12-07.csv" || e2e_fail "dcr data --drop: other bytes"
expect_fail e2e_as anna dcr data "$id" transactions
expect_stderr "append dataset" "--drop"
expect_fail e2e_as ian dcr data "$id" transactions --drop export_2026-12-07.csv
expect_stderr "not an owner"
expect_fail e2e_as anna dcr deprovision "$id" transactions
expect_stderr "append dataset" "one at a time"
expect_fail e2e_as anna dcr deprovision "$id" transactions --drop export_2026-12-09.csv
expect_stderr "no drop named \"export_2026-12-09.csv\""
expect_fail e2e_as ian dcr deprovision "$id" transactions --drop export_2026-12-07.csv
expect_stderr "not an owner"
expect_ok e2e_as anna dcr deprovision "$id" transactions --drop export_2026-12-07.csv
expect_contains "$E2E_OUT" "withdrew export_2026-12-07.csv from transactions"
wait_for "$DS/status" "drop_count: 4"
# From stdin the drop is named "stdin"; the same bytes again count once.
expect_ok sh -c "DCR_IDENTITY='$T/anna.pem' dcr provision '$id' transactions - <'$T/export_2026-12-07.csv'"
expect_contains "$E2E_OUT" "dropped stdin into transactions"
expect_ok sh -c "DCR_IDENTITY='$T/anna.pem' dcr provision '$id' transactions - <'$T/export_2026-12-07.csv'"
expect_contains "$E2E_OUT" "drop stdin of transactions is already in: unchanged, counted once"
expect_ok e2e_as anna dcr deprovision "$id" transactions --drop stdin
wait_for "$DS/status" "drop_count: 4"
expect_ok e2e_as anna dcr datasets --brief
expect_contains "$E2E_OUT" "4 drops"
wait_for "$I/datasets/transactions/stats.json" "\"rows\":$want,"
expect_ok e2e_as ian dcr audit log "$id"
expect_contains "$E2E_OUT" "anna@bank.example dropped transactions:"
expect_contains "$E2E_OUT" "file export_2026-12-07.csv"
expect_contains "$E2E_OUT" "withdrew from transactions, file export_2026-12-07.csv"
# A run after the CLI's withdrawal counts the same union as before.
echo >"$I/computations/daily_count/run" || e2e_fail "run 2"
sleep 0.2
wait_for "$I/computations/daily_count/status" "state: done" 120
got=$(sed -n 2p "$I/computations/daily_count/result.csv" | tr -d '\r')
expect_eq "$got" "$want,4" "COUNT(*) after the CLI's drop and withdrawal"

# 9. Both verifiers agree on the whole log.
e2e_as ian dcr audit export "$id" -o "$T/room.export" || e2e_fail "audit export"
v=$(expect_verifiers_agree "$T/room.export") || exit 1
case "$v" in valid:*) ;; *) e2e_fail "the room's log: $v" ;; esac

mount_stop "$A"
mount_stop "$I"
mount_check_logs

# 10. A restart keeps every drop (the start's sweep of unreferenced blobs
# keeps the drops, their statistics and the union's table) and the union.
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"
e2e_start_daemon
expect_ok e2e_as ian dcr run "$id" daily_count --wait
e2e_as ian dcr result "$id" daily_count >"$T/result.csv" || e2e_fail "dcr result after restart"
expect_eq "$(sed -n 2p "$T/result.csv" | tr -d '\r')" "$want,4" "COUNT(*) after a restart"
for f in $IN; do
	e2e_as anna dcr data "$id" transactions --drop "$f" -o "$T/back.csv" || e2e_fail "drop $f after restart"
	cmp "$T/back.csv" "$T/exports/$f" || e2e_fail "drop $f changed across a restart"
done
expect_ok e2e_as ian dcr stats "$id" transactions --json
expect_contains "$E2E_OUT" "\"rows\":$want,"
echo "mount_drops: ok"
