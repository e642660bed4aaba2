# mount_requests.sh: requests through real mounts (docs/mount.md
# "Requests"): the analyst proposes with `cp churn.json requests/`, the
# request shows as requests/ID/ (request.json is the text signed, status
# the state and the votes); the one affected owner previews it
# (preview/run, preview/NAME.csv, hers only), then writes a reason to
# approve and the computation appears in both mounts; the analyst runs it
# and reads result.csv. Refusals: a request the rules refuse fails cp and
# status says why; an owner who is not affected cannot open approve
# (EACCES, mode 0444); an approval of a withdrawn request; no preview of a
# request over both parties' data; a name taken by the time of the merge
# (the request fails, status says why); a room without interactivity
# fails cp with the reason in status.
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
cp "$T/bank.csv" "$A/datasets/bank_customers/" || e2e_fail "cp bank.csv"
# ian's mount learns of the publication by its next poll
wait_for "$I/status" "status: published"

cat >"$T/churn.json" <<'JSON'
{"title": "Bank customers by city",
 "computations": [
   {"name": "bank_by_city", "kind": "sql", "privacy": {"min_rows_aggregated": 10},
    "query": "SELECT city, COUNT(*) AS n FROM bank_customers GROUP BY city ORDER BY city",
    "analysts": ["ian@insurer.example"]}]}
JSON

# a request the rules refuse: cp fails, status says why, nothing is listed
sed 's/ian@insurer.example/nobody@else.example/' "$T/churn.json" >"$T/bad.json"
expect_fail cp "$T/bad.json" "$I/requests/"
expect_contains "$I/status" "\"nobody@else.example\" is not a participant of the room"
[ -z "$(ls "$I/requests")" ] || e2e_fail "a refused request is listed: $(ls "$I/requests")"

cp "$T/churn.json" "$I/requests/" || e2e_fail "cp churn.json: $(cat "$I/status")"
Q=$(ls "$I/requests")
echo "$Q" | grep -q -E '^[0-9a-f]{32}$' || e2e_fail "requests/ lists \"$Q\""
[ -e "$I/requests/churn.json" ] && e2e_fail "the proposal file stays"
cmp -s "$I/requests/$Q/request.json" "$T/churn.json" || e2e_fail "request.json is not the text"
expect_contains "$I/requests/$Q/status" "state:        open"
expect_contains "$I/requests/$Q/status" "  anna@bank.example: pending"
wait_for "$A/requests/$Q/status" "state:        open"
[ -e "$I/computations/bank_by_city" ] && e2e_fail "listed before the merge"

# only the affected owner approves: the analyst's approve is read-only
expect_eacces sh -c "echo yes >'$I/requests/$Q/approve'"
ls -l "$A/requests/$Q/approve" | grep -q '^--w-------' ||
	e2e_fail "approve mode for the owner: $(ls -l "$A/requests/$Q/approve")"
# the sole affected owner previews it; the analyst may not
expect_eacces sh -c "echo >'$I/requests/$Q/preview/run'"
echo >"$A/requests/$Q/preview/run" || e2e_fail "preview: $(cat "$A/status")"
head -n 1 "$A/requests/$Q/preview/bank_by_city.csv" | tr -d '\r' | grep -q '^city,n$' ||
	e2e_fail "preview result: $(cat "$A/requests/$Q/preview/bank_by_city.csv")"
wait_for "$A/audit.log" "previewed request"
[ -e "$I/requests/$Q/preview/bank_by_city.csv" ] && e2e_fail "the analyst sees the preview"
echo "city counts are fine" >"$A/requests/$Q/approve" || e2e_fail "approve: $(cat "$A/status")"
expect_contains "$A/requests/$Q/status" "state:        merged"
expect_contains "$A/requests/$Q/status" "  anna@bank.example: approved (city counts are fine)"
expect_contains "$A/requests/$Q/status" "merged:       definition version 2"
# a second approval: the file is no longer writable
expect_eacces sh -c "echo again >'$A/requests/$Q/approve'"
wait_for "$I/room.json" "bank_by_city"
[ -d "$I/computations/bank_by_city" ] || e2e_fail "no computations/bank_by_city after the merge"
echo >"$I/computations/bank_by_city/run" || e2e_fail "run: $(cat "$I/status")"
head -n 1 "$I/computations/bank_by_city/result.csv" | tr -d '\r' | grep -q '^city,n$' ||
	e2e_fail "result.csv: $(cat "$I/computations/bank_by_city/result.csv")"

# withdrawn by its author; then nobody approves it
sed 's/bank_by_city/by_city_2/' "$T/churn.json" >"$T/second.json"
cp "$T/second.json" "$I/requests/" || e2e_fail "cp second.json: $(cat "$I/status")"
Q2=$(ls "$I/requests" | grep -v "$Q")
# anna's mount learns of the request by its next poll
wait_for "$A/requests/$Q2/status" "state:        open"
expect_eacces sh -c "echo mine >'$A/requests/$Q2/withdraw'"
echo >"$I/requests/$Q2/withdraw" || e2e_fail "withdraw: $(cat "$I/status")"
expect_contains "$I/requests/$Q2/status" "state:        withdrawn"
wait_for "$A/requests/$Q2/status" "state:        withdrawn"
expect_eacces sh -c "echo late >'$A/requests/$Q2/approve'"

# over both parties' data: no preview for either owner
cat >"$T/both.json" <<'JSON'
{"title": "Risk mix",
 "computations": [
   {"name": "risk_mix", "kind": "sql", "privacy": {"min_rows_aggregated": 10},
    "query": "SELECT i.risk_class, COUNT(*) AS n FROM bank_customers b JOIN insurer_customers i ON b.email = i.email GROUP BY i.risk_class",
    "analysts": ["ian@insurer.example"]}]}
JSON
before=$(ls "$I/requests")
cp "$T/both.json" "$I/requests/" || e2e_fail "cp both.json: $(cat "$I/status")"
Q3=$(ls "$I/requests" | grep -v -F "$before")
expect_contains "$I/requests/$Q3/status" "  ian@insurer.example: pending"
wait_for "$A/requests/$Q3/status" "  anna@bank.example: pending"
expect_eacces sh -c "echo >'$A/requests/$Q3/preview/run'"
expect_eacces sh -c "echo >'$I/requests/$Q3/preview/run'"

# a name taken by the time of the merge: the approval stands, the request
# fails, status says why
sed 's/bank_by_city/same_name/' "$T/churn.json" >"$T/same1.json"
sed 's/bank_by_city/same_name/; s/ORDER BY city/ORDER BY n/' "$T/churn.json" >"$T/same2.json"
before=$(ls "$I/requests")
cp "$T/same1.json" "$I/requests/" || e2e_fail "cp same1.json"
Q4=$(ls "$I/requests" | grep -v -F "$before")
before=$(ls "$I/requests")
cp "$T/same2.json" "$I/requests/" || e2e_fail "cp same2.json"
Q5=$(ls "$I/requests" | grep -v -F "$before")
wait_for "$A/requests/$Q5/status" "state:        open"
echo >"$A/requests/$Q4/approve" || e2e_fail "approve Q4: $(cat "$A/status")"
echo >"$A/requests/$Q5/approve" || e2e_fail "approve Q5: $(cat "$A/status")"
expect_contains "$A/requests/$Q5/status" "state:        failed"
expect_contains "$A/requests/$Q5/status" "merged:       no; the merge failed:"
expect_contains "$A/requests/$Q5/status" "same_name"

# a room without interactivity: cp fails, status says why
sed 's/"interactive": true/"interactive": false/; s/"name": "bank-insurer-overlap"/"name": "frozen"/' \
	"$T/room.json" >"$T/frozen.json"
fid=$(e2e_as anna dcr room create "$T/frozen.json") || e2e_fail "room create frozen"
e2e_as anna dcr room publish "$fid" >/dev/null || e2e_fail "publish frozen"
F=$T/ianf
mount_as ian "$fid" "$F"
expect_fail cp "$T/churn.json" "$F/requests/"
expect_contains "$F/status" "the room is not interactive (settings.interactive is false)"

grep -q "requests/" "$I/README" || e2e_fail "README does not explain requests/"
mount_stop "$A"
mount_stop "$I"
mount_stop "$F"
mount_check_logs
e2e_log "ok"
