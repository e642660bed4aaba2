# quota.sh: disk quotas (docs/daemon.md "Limits and quotas", docs/compute.md
# "Temporary disk") through the dcr CLI and the mount against a real dcrd:
#   1. a sort that spills to disk past the run's temporary disk quota
#      (--max-run-tmp-mb 1) fails with the class "temp disk limit" while a
#      run in another room succeeds at the same time;
#   2. the key's disk quota (--max-key-disk-mb) covers the temporary files
#      of its runs: what its uploads leave is too little for the same sort;
#   3. an upload past the key's quota (--max-key-blob-mb) is refused with
#      ELIMIT naming the quota, by `dcr provision` and by `cp` into the
#      mount; the data provisioned before is intact; a small file fits.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/mount_lib.inc"

e2e_setup
ANNA=$(e2e_identity anna anna@bank.example) || e2e_fail "keygen anna"
ANNA_KEY=${ANNA#* }

room_json() {
	cat >"$1" <<JSON
{
  "format": "dcr.room/1",
  "name": "$2",
  "description": "quota test",
  "settings": {"interactive": true, "development": false, "require_provisioned": true},
  "participants": [
    {"email": "anna@bank.example", "key": "$ANNA_KEY", "owner_of": ["big"],
     "analyst_of": ["sorted"]}
  ],
  "datasets": [
    {"name": "big", "kind": "table", "required": true,
     "columns": [{"name": "id", "type": "integer", "nullable": false},
                 {"name": "s", "type": "string", "nullable": false}]}
  ],
  "computations": [
    {"name": "sorted", "kind": "sql", "query": "SELECT id, s FROM big ORDER BY s"}
  ]
}
JSON
}

# 120,000 rows of about 40 bytes: sorting them spills far more than 1 MiB
awk 'BEGIN { print "id,s"; for (i = 0; i < 120000; i++)
	printf "%d,k%08d-%024d\n", i, (i * 7919) % 120000, i }' >"$T/big.csv"
printf 'id,s\n1,b\n2,a\n' >"$T/small.csv"

e2e_start_daemon --max-run-tmp-mb 1
room_json "$T/a.json" spill-room
room_json "$T/b.json" other-room
A=$(e2e_as anna dcr room create "$T/a.json") || e2e_fail "room create a"
B=$(e2e_as anna dcr room create "$T/b.json") || e2e_fail "room create b"
expect_ok e2e_as anna dcr room publish "$A"
expect_ok e2e_as anna dcr room publish "$B"
expect_ok e2e_as anna dcr provision "$A" big "$T/big.csv"
expect_ok e2e_as anna dcr provision "$B" big "$T/small.csv"

# 1. Both at once: the spill fails with its class, the other room's run
# completes with the right result.
e2e_as anna dcr run "$A" sorted --wait --timeout 300 >"$T/a.out" 2>"$T/a.err" &
apid=$!
expect_ok e2e_as anna dcr run "$B" sorted --wait --timeout 300
wait $apid && e2e_fail "the spilling sort succeeded: $(cat "$T/a.out")"
grep -q "temp disk limit" "$T/a.err" "$T/a.out" ||
	e2e_fail "the failed run does not say temp disk limit: $(cat "$T/a.err" "$T/a.out")"
e2e_as anna dcr result "$B" sorted >"$T/b.csv" || e2e_fail "result of the other room"
expect_eq "$(cat "$T/b.csv" | tr -d '\r')" "$(printf 'id,s\n2,a\n1,b')" "the other room's result"
expect_ok e2e_as anna dcr audit log "$A"
expect_contains "$E2E_OUT" "temp disk limit"
# no temporary file stays in dcrd's directory for them
expect_eq "$(ls -A "$T/data/sqltmp")" "" "files left in sqltmp"
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"

# Within the default quota the same sort succeeds.
e2e_start_daemon
expect_ok e2e_as anna dcr run "$A" sorted --wait --timeout 300
e2e_as anna dcr result "$A" sorted | tail -n +2 | wc -l >"$T/n" || e2e_fail "result a"
expect_eq "$(tr -d ' ' <"$T/n")" "120000" "rows of the sorted result"
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"

# 2. The key's disk quota: its uploads (about 5 MiB) leave 1 MiB of 6 for
# the temporary files of its runs: the sort fails the same way.
e2e_start_daemon --max-key-disk-mb 6
expect_fail e2e_as anna dcr run "$A" sorted --wait --timeout 300
expect_stderr "temp disk limit"
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"

# 3. The key's upload quota: 5 MiB are stored, 6 allowed; 2 MiB more are
# refused, through the CLI and through the mount; a small file fits.
e2e_start_daemon --max-key-blob-mb 6
head -c 2200000 "$T/big.csv" | sed '$d' >"$T/more.csv"
blobs_before=$(find "$T/data/blobs" -type f | sort)
expect_fail e2e_as anna dcr provision "$B" big "$T/more.csv"
expect_stderr "key upload quota" "--max-key-blob-mb"
expect_eq "$(find "$T/data/blobs" -type f | sort)" "$blobs_before" "blobs after the refusal"
expect_eq "$(ls -A "$T/data/tmp")" "" "temporary files after the refusal"
e2e_as anna dcr data "$B" big >"$T/back.csv" || e2e_fail "dcr data"
cmp -s "$T/back.csv" "$T/small.csv" || e2e_fail "the stored file changed: $(cat "$T/back.csv")"
if [ -c /dev/fuse ] && command -v fusermount3 >/dev/null 2>&1; then
	mount_as anna "$B" "$T/anna"
	expect_fail cp "$T/more.csv" "$T/anna/datasets/big/"
	expect_stderr "File too large"
	expect_contains "$T/anna/datasets/big/status" "key upload quota"
	mount_stop "$T/anna"
	mount_check_logs
	e2e_as anna dcr data "$B" big >"$T/back.csv" || e2e_fail "dcr data"
	cmp -s "$T/back.csv" "$T/small.csv" || e2e_fail "the stored file changed after cp"
fi
printf 'id,s\n3,c\n' >"$T/tiny.csv"
expect_ok e2e_as anna dcr provision "$B" big "$T/tiny.csv"
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"
