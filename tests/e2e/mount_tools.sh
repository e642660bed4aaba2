# mount_tools.sh: everyday file tools against a mounted room (issue 17),
# each with the real tool: sed -i and perl -pi edit the provisioned file;
# install, tar -x and rsync --delete given a bad file keep the earlier data;
# `touch x; cat f > x` and a write right after a rejection work; a bad row
# fails the shell redirection that wrote it; one open-write-close of `run`
# is one run; a writer blocked on a long run dies of SIGINT and SIGKILL;
# tail -f audit.log shows new lines; tar -c of a fresh mount stores the
# generated files whole; rsync -a twice sends nothing the second time; a
# second writer is refused at open and the first succeeds; a killed dcrd
# shows in status and README; a stopped room advertises no writing.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"
. "$DCR_SOURCE_DIR/tests/e2e/mount_lib.inc"

mount_require
for tool in rsync perl tar install bash timeout sed; do
	command -v $tool >/dev/null 2>&1 || e2e_fail "$tool not installed (tools/deps installs it)"
done
e2e_setup
e2e_start_daemon
story_identities
story_csvs
# The story's room, plus a computation that runs long (a recursive count
# seeded by one row of the bank's data: instant on the empty tables of the
# definition check, seconds on real data; unfiltered, as filtered queries
# may not use WITH).
story_room_json "$T/story.json"
awk '{ print }
/"computations": \[/ {
	print "    {\"name\": \"slow\", \"kind\": \"sql\","
	print "     \"query\": \"WITH RECURSIVE r(i) AS (SELECT 1 FROM (SELECT email FROM bank_customers LIMIT 1) UNION ALL SELECT i + 1 FROM r WHERE i < 100000000) SELECT COUNT(*) AS n FROM r\"},"
}' "$T/story.json" | sed 's/"analyst_of": \["overlap"\]/"analyst_of": ["overlap", "slow"]/' >"$T/room.json"
id=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create: $(cat "$T/room.json")"
A=$T/anna
I=$T/ian
mount_as anna "$id" "$A"
mount_as ian "$id" "$I"
echo publish >"$A/ctl" || e2e_fail "publish"
DS=$A/datasets/bank_customers
IS=$I/datasets/insurer_customers
awk -F, 'NR == 5 { print $1 ",not-a-number," $3 "," $4; next } { print }' "$T/bank.csv" >"$T/bad.csv"
nevents() { ls "$A/events" | wc -l; }
sha() { grep '^sha256:' "$DS/status"; }

cp "$T/bank.csv" "$DS/" || e2e_fail "cp bank.csv"

# 12. Replaced data leaves dcrd's store while it runs (not at its next start).
nblobs() { find "$T/data/blobs" -type f | wc -l; }
for i in 1 2 3 4 5; do
	cp "$T/bank.csv" "$DS/" || e2e_fail "cp bank.csv again ($i)"
done
sleep 1
# The store holds one provision: its file, statistics and prepared table
# (made in the background, so maybe not yet); six uploads kept would be 18.
[ "$(nblobs)" -le 3 ] || e2e_fail "blob files after six uploads of one dataset: $(nblobs)"
grep -q "blobs of withdrawn data" "$T/dcrd.log" || e2e_fail "dcrd did not log the removal"

# 1. sed -i and perl -pi: the work file is renamed over the real name.
sed -i 's/Berlin/Potsdam/' "$DS/bank.csv" || e2e_fail "sed -i"
expect_contains "$DS/status" "state: provisioned"
expect_contains "$DS/status" "file: bank.csv"
grep -q Potsdam "$DS/bank.csv" || e2e_fail "sed -i: the edit is not in the provisioned file"
ls "$DS" | grep -q '^sed' && e2e_fail "sed's work file stays listed"
perl -pi -e 's/Potsdam/Berlin/' "$DS/bank.csv" || e2e_fail "perl -pi"
expect_contains "$DS/status" "file: bank.csv"
cmp -s "$DS/bank.csv" "$T/bank.csv" || e2e_fail "perl -pi: the provisioned file is not the edited one"
expect_eq "$(ls "$DS" | LC_ALL=C sort | tr '\n' ' ')" "bank.csv schema.json stats.json status " "listing after sed and perl"

# 2. Tools that delete before they write, given a bad file: the data stays.
before=$(sha)
expect_fail install -m 0644 "$T/bad.csv" "$DS/bank.csv"
expect_contains "$DS/status" "state: provisioned"
expect_contains "$DS/status" "is undone"
expect_eq "$(sha)" "$before" "sha256 after install of a bad file"
mkdir -p "$T/tarsrc"
cp "$T/bad.csv" "$T/tarsrc/bank.csv"
tar -cf "$T/bad.tar" -C "$T/tarsrc" bank.csv
expect_fail tar -xf "$T/bad.tar" -C "$DS"
expect_eq "$(sha)" "$before" "sha256 after tar -x of a bad file"
mkdir -p "$T/rsrc"
cp "$T/bad.csv" "$T/rsrc/other.csv"
expect_fail rsync -r --delete --exclude schema.json --exclude status --exclude stats.json "$T/rsrc/" "$DS/"
sleep 3 # past the grace period of the rm
expect_contains "$DS/status" "state: provisioned"
expect_eq "$(sha)" "$before" "sha256 after rsync --delete with a bad file"
ls "$DS" | grep -q -x bank.csv || e2e_fail "bank.csv not listed after rsync --delete with a bad file"
# ... and with a good file, install replaces it (no deprovision in between).
n0=$(nevents)
install -m 0644 "$T/bank.csv" "$DS/bank.csv" || e2e_fail "install of a good file"
sleep 3
expect_eq "$(nevents)" "$((n0 + 1))" "events after install (one provision, no deprovision)"
# A plain rm still deprovisions, after the grace period.
head -n 51 "$T/bank.csv" >"$T/bank50.csv"
cp "$T/bank50.csv" "$DS/" || e2e_fail "cp bank50.csv"
rm "$DS/bank50.csv" || e2e_fail "rm bank50.csv"
wait_for "$DS/status" "state: not provisioned" 10

# 3. touch then write; a write right after a rejection.
touch "$DS/x.csv" || e2e_fail "touch x.csv"
cat "$T/bank.csv" >"$DS/x.csv" || e2e_fail "cat > x.csv right after touch"
expect_contains "$DS/status" "file: x.csv"
expect_fail cp "$T/bad.csv" "$DS/y.csv"
cp "$T/bank.csv" "$DS/y.csv" || e2e_fail "cp right after a rejected upload of the name"
expect_contains "$DS/status" "file: y.csv"

# 9. A bad row fails the shell redirection that wrote it.
expect_fail bash -c '{ cat "$1"; } >"$2"' sh "$T/bad.csv" "$DS/z.csv"
expect_contains "$DS/status" "line 5"
expect_fail bash -c 'printf "email,age,city,balance\na@b.example,x,Berlin,1\n" >"$1"' sh "$DS/z.csv"
expect_contains "$DS/status" "file: y.csv"

# 11. Two writers: the second is refused at open, the first succeeds.
head -n 101 "$T/bank.csv" >"$T/part1.csv"
tail -n +102 "$T/bank.csv" >"$T/part2.csv"
sh -c 'cat "$1"; sleep 2; cat "$2"' sh "$T/part1.csv" "$T/part2.csv" >"$DS/two.csv" &
w1=$!
wait_for "$DS/status" "uploading: two.csv"
expect_fail sh -c 'cat "$1" >"$2"' sh "$T/bank.csv" "$DS/two.csv"
expect_stderr "busy"
expect_contains "$DS/status" "being written by another process"
wait "$w1" || e2e_fail "the first writer failed"
expect_contains "$DS/status" "file: two.csv"
expect_contains "$DS/status" "rows: 200"

# 8. rsync -a twice: the second run sends nothing and adds no event.
mkdir -p "$T/isrc"
cp "$T/insurer.csv" "$T/isrc/ins.csv"
touch -d '2026-01-02 03:04:05.123456789' "$T/isrc/ins.csv"
rsync -a "$T/isrc/" "$IS/" || e2e_fail "rsync -a"
expect_contains "$IS/status" "file: ins.csv"
n0=$(nevents)
out=$(rsync -a --itemize-changes "$T/isrc/" "$IS/") || e2e_fail "second rsync -a"
expect_eq "$(nevents)" "$n0" "events after an rsync -a of an unchanged file"
echo "$out" | grep -q 'ins.csv' && e2e_fail "the second rsync -a sent ins.csv again: $out"
expect_eq "$(stat -c %Y "$IS/ins.csv")" "$(stat -c %Y "$T/isrc/ins.csv")" "mtime kept"
chmod 0600 "$IS/ins.csv" || e2e_fail "chmod"
expect_eq "$(stat -c %a "$IS/ins.csv")" "600" "mode kept"

# 4. One open-write-close of run is one run; touch and : > start none.
R=$A/computations/overlap
runs() { grep -c "requested run" "$A/audit.log"; }
r0=$(runs)
printf 'a\nb\nc\n' >"$R/run" || e2e_fail "printf > run"
expect_eq "$(runs)" "$((r0 + 1))" "runs after printf of three lines"
yes | head -c 3000000 >"$R/run" || e2e_fail "yes | head > run"
expect_eq "$(runs)" "$((r0 + 2))" "runs after 3 MB written to run"
touch "$R/run" || e2e_fail "touch run"
: >"$R/run" || e2e_fail ": > run"
expect_eq "$(runs)" "$((r0 + 2))" "runs after touch and : >"

# 6. tail -f audit.log shows the lines added while it follows.
timeout 8 tail -n 0 -f "$A/audit.log" >"$T/tail.out" 2>&1 &
tp=$!
sleep 1
echo >"$R/run" || e2e_fail "run while tail -f follows"
wait_for "$T/tail.out" "completed run" 6
kill "$tp" 2>/dev/null
wait "$tp" 2>/dev/null

# 7. tar -c of a fresh mount stores the generated files whole.
F=$T/fresh
mount_as anna "$id" "$F"
tar -cf "$T/fresh.tar" -C "$F" datasets/bank_customers/stats.json computations/overlap/status ||
	e2e_fail "tar -c of a fresh mount"
mkdir -p "$T/untar"
tar -xf "$T/fresh.tar" -C "$T/untar" || e2e_fail "tar -x of the backup"
[ -s "$T/untar/datasets/bank_customers/stats.json" ] || e2e_fail "tar -c stored stats.json empty"
cmp -s "$T/untar/datasets/bank_customers/stats.json" "$F/datasets/bank_customers/stats.json" ||
	e2e_fail "tar -c stored a different stats.json"
grep -q "state: done" "$T/untar/computations/overlap/status" || e2e_fail "tar -c stored status without its contents"
mount_stop "$F"

# 10. dcrd killed: status and README say so; back when it is.
kill -KILL "$E2E_DAEMON_PID"
wait "$E2E_DAEMON_PID" 2>/dev/null
E2E_DAEMON_PID=
wait_for "$A/status" "daemon: unreachable" 10
expect_contains "$A/README" "the daemon does not answer"
e2e_start_daemon
wait_for "$A/status" "daemon: connected" 20

# 5. A writer blocked on a long run dies of SIGINT, and of SIGKILL.
S=$A/computations/slow
for sig in INT KILL; do
	# (a background job of a script ignores SIGINT: perl restores it)
	perl -e '$SIG{INT} = "DEFAULT"; open(my $f, ">", $ARGV[0]) or die; syswrite($f, "\n");' "$S/run" &
	wp=$!
	wait_for "$S/status" "run: " 10
	sleep 1
	kill -$sig "$wp" 2>/dev/null
	i=0
	while kill -0 "$wp" 2>/dev/null; do
		[ $i -lt 50 ] || e2e_fail "a writer blocked on run survived SIG$sig for 5 s ($(cat /proc/$wp/stat 2>/dev/null))"
		sleep 0.1
		i=$((i + 1))
	done
	wait "$wp" 2>/dev/null
	grep -q "state: done" "$S/status" && e2e_fail "the slow run ended before SIG$sig: nothing was interrupted"
done

# A stopped room advertises no writing.
echo stop >"$A/ctl" || e2e_fail "stop"
wait_for "$A/status" "status: stopped"
# (the kernel keeps attributes up to 1 s: wait for them to be asked again)
wait_mode() {
	_i=0
	while [ "$(stat -c %A "$1")" != "$2" ]; do
		[ $_i -lt 30 ] || e2e_fail "mode of $1 in a stopped room: $(stat -c %A "$1"), expected $2"
		sleep 0.1
		_i=$((_i + 1))
	done
}
wait_mode "$R/run" "----------"
wait_mode "$A/ctl" "----------"
wait_mode "$DS" "dr-xr-xr-x"
expect_contains "$A/README" "The room is stopped"
grep -q "provision bank_customers" "$A/README" && e2e_fail "the README of a stopped room still offers provisioning"
mount_stop "$A"
mount_stop "$I"
mount_check_logs
e2e_log "ok"
