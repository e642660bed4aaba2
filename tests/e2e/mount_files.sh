# mount_files.sh: files in the mount the way tools write them. A bad CSV
# fails cp and status names the line while the earlier data stays; a large
# CSV (500 MB, 50 MB under sanitizers) streams through cp; rsync and
# temp-then-rename drops provision once renamed; an editor's swap file is
# never ingested and the file rewritten in place is; concurrent readers of
# result.csv see whole results while a new run finishes; `(cat a; cat b) >
# x.csv` provisions both parts; a writer killed mid-file provisions
# nothing; the mount survives a daemon restart; a crashed mount (ENOTCONN)
# is cleared by the next dcr mount.
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
echo publish >"$A/ctl" || e2e_fail "publish"
DS=$A/datasets/bank_customers

# 1. A bad file fails cp, status says where, the earlier data stays.
cp "$T/bank.csv" "$DS/" || e2e_fail "cp bank.csv"
sha_before=$(grep '^sha256:' "$DS/status")
awk -F, 'NR == 5 { print $1 ",not-a-number," $3 "," $4; next } { print }' "$T/bank.csv" >"$T/bad.csv"
expect_fail cp "$T/bad.csv" "$DS/"
expect_contains "$DS/status" "rejected bad.csv"
expect_contains "$DS/status" "line 5"
expect_contains "$DS/status" "file: bank.csv"
expect_eq "$(grep '^sha256:' "$DS/status")" "$sha_before" "sha256 after a rejected file"
[ -e "$DS/bad.csv" ] && e2e_fail "a rejected file stays listed"

# 2. A large file through cp (streamed; the mount never holds it whole).
mb=500
[ -n "${DCR_SANITIZED:-}" ] && mb=50
awk -v mb=$mb 'BEGIN {
	print "email,age,city,balance";
	n = int(mb * 1048576 / 52);
	for (i = 0; i < n; i++)
		printf "customer%09d@bank-mail.example,%d,Berlin,%d.%02d\n", i, 20 + i % 60, i % 100000, i % 100;
}' >"$T/big.csv"
rows=$(($(wc -l <"$T/big.csv") - 1))
cp "$T/big.csv" "$DS/" || e2e_fail "cp of a ${mb} MB file"
expect_contains "$DS/status" "rows: $rows"
expect_contains "$DS/status" "file: big.csv"
rm -f "$T/big.csv"

# 3. rsync (writes .NAME.XXXXXX, then renames) and a legacy drop (x.tmp,
# renamed to x.csv): nothing is ingested before the rename.
IS=$I/datasets/insurer_customers
rsync "$T/insurer.csv" "$IS/ins.csv" || e2e_fail "rsync"
expect_contains "$IS/status" "file: ins.csv"
n0=$(ls "$I/events" | wc -l)
cp "$T/insurer.csv" "$IS/drop.tmp" || e2e_fail "cp to drop.tmp"
expect_eq "$(ls "$I/events" | wc -l)" "$n0" "events after writing a .tmp"
ls "$IS" | grep -q -x drop.tmp || e2e_fail "drop.tmp not listed"
mv "$IS/drop.tmp" "$IS/drop.csv" || e2e_fail "rename drop.tmp to drop.csv"
expect_contains "$IS/status" "file: drop.csv"
ls "$IS" | grep -q -x drop.tmp && e2e_fail "drop.tmp still listed after the rename"
# A bad drop fails the rename and stays as it was.
cp "$T/bad.csv" "$IS/bad.tmp" || e2e_fail "cp to bad.tmp"
expect_fail mv "$IS/bad.tmp" "$IS/bad.csv"
expect_contains "$IS/status" "file: drop.csv"
rm "$IS/bad.tmp" || e2e_fail "rm bad.tmp"

# 4. An editor: swap file written and removed, never ingested; the file
# rewritten in place is. Anna's mount first sees ian's last provision: a
# mount fetches new events at most every FS_FRESH_MS (20 ms), so a listing
# right after another participant's event may not show it yet.
n0=$(ls "$I/events" | wc -l)
i=0
while [ "$(ls "$A/events" | wc -l)" != "$n0" ] && [ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done
expect_eq "$(ls "$A/events" | wc -l)" "$n0" "anna's events before the swap file"
printf 'b0VIM swap\n' >"$DS/.big.csv.swp" || e2e_fail "swap file"
cat "$DS/.big.csv.swp" >/dev/null || e2e_fail "reading the swap file back"
rm "$DS/.big.csv.swp" || e2e_fail "rm swap"
expect_eq "$(ls "$A/events" | wc -l)" "$n0" "events after a swap file"
head -n 51 "$T/bank.csv" >"$T/bank50.csv"
cat "$T/bank50.csv" >"$DS/big.csv" || e2e_fail "rewrite in place"
expect_contains "$DS/status" "rows: 50"
cp "$T/bank.csv" "$DS/" || e2e_fail "cp bank.csv back"

# 5. Shell-composed writes: children that close their copy of the
# descriptor do not end the file, the opener's close does. A writer killed
# by a signal provisions nothing.
head -n 101 "$T/bank.csv" >"$T/part1.csv"
tail -n +102 "$T/bank.csv" >"$T/part2.csv"
(cat "$T/part1.csv"; cat "$T/part2.csv") >"$DS/composed.csv" || e2e_fail "(cat; cat) > composed.csv"
expect_contains "$DS/status" "file: composed.csv"
expect_contains "$DS/status" "rows: 200"
n0=$(ls "$A/events" | wc -l)
sh -c 'cat "$1"; exec sleep 30' sh "$T/part1.csv" >"$DS/cut.csv" &
kp=$!
wait_for "$DS/status" "uploading: cut.csv"
kill -KILL "$kp"
wait "$kp" 2>/dev/null
wait_for "$DS/status" "writer was killed"
expect_eq "$(ls "$A/events" | wc -l)" "$n0" "events after a killed writer"
expect_contains "$DS/status" "file: composed.csv"

# 6. Concurrent readers of result.csv while a new run finishes.
cp "$T/insurer.csv" "$IS/" || e2e_fail "cp insurer.csv"
R=$A/computations/overlap
echo >"$R/run" || e2e_fail "first run"
story_expected "$T/expected.norm"
cat "$R/result.csv" >"$T/expected.csv" || e2e_fail "reading result.csv"
tr -d '\r"' <"$T/expected.csv" | cmp -s - "$T/expected.norm" || e2e_fail "first result differs"
for r in 1 2 3; do
	(
		i=0
		while [ $i -lt 20 ]; do
			cat "$R/result.csv" >"$T/reader$r.csv" || exit 1
			cmp -s "$T/reader$r.csv" "$T/expected.csv" || exit 2
			i=$((i + 1))
		done
	) &
	eval "reader$r=\$!"
done
echo >"$R/run" || e2e_fail "second run (with readers)"
cmp -s "$R/result.csv" "$T/expected.csv" || e2e_fail "second result differs"
for r in 1 2 3; do
	eval "p=\$reader$r"
	wait "$p" || e2e_fail "reader $r saw a failed or partial result"
done
expect_contains "$R/status" "state: done"

# 7. The daemon restarts under a live mount: while it is away writes fail
# with EIO; afterwards the mount reconnects by itself.
e2e_stop_daemon || e2e_fail "daemon did not stop cleanly"
expect_fail cp "$T/bank50.csv" "$DS/"
expect_stderr "Input/output error"
e2e_start_daemon
cp "$T/bank50.csv" "$DS/" || e2e_fail "cp after the daemon restarted"
expect_contains "$DS/status" "file: bank50.csv"
expect_contains "$DS/status" "rows: 50"

# 8. A crashed mount (ENOTCONN) is cleared by the next mount.
pa=$(mount_pid "$A") || e2e_fail "no mount process for $A"
kill -KILL "$pa"
i=0
while kill -0 "$pa" 2>/dev/null; do
	[ $i -lt 50 ] || e2e_fail "mount process survived SIGKILL"
	sleep 0.1
	i=$((i + 1))
done
expect_fail ls "$A"
expect_stderr "Transport endpoint is not connected"
mount_as anna "$id" "$A"
expect_contains "$A/status" "status: published"
mount_stop "$A"
mount_stop "$I"
mount_check_logs
e2e_log "ok"
