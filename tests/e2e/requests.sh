# requests.sh: interactivity through the CLI against a real dcrd (issue 12,
# docs/rules.md "Requests"): the analyst proposes a computation over one
# bank's table, validate shows the one affected owner and the result
# columns, the owner approves with a reason, it merges (definition version
# 2, room show has it), the analyst runs it and reads the result (checked
# against awk); before approving, the owner previews it (the same result,
# for the owner only; refused to the analyst, and for a request over both
# parties' data). A request over both parties' data: one approves, the
# other rejects, nothing merges; a second is approved by both and merges.
# Refusals with their messages: a room without interactivity, a
# non-participant, an owner who is not affected, a double approval, an
# approval of a withdrawn and of a merged request, a vote bound to another
# hash, a name taken by the time of the merge (the request fails, the room
# goes on). An owner's auto_approve policy: dcrd approves for the bank,
# the insurer completes the request; a request outside the policy waits
# for the bank. The audit log words every step, and both verifiers accept
# the exports.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"

e2e_setup
e2e_start_daemon
story_identities
story_csvs
story_room_json "$T/room.json"
ROOM=$(e2e_as anna dcr room create "$T/room.json") || e2e_fail "room create"
expect_ok e2e_as anna dcr room publish "$ROOM"
expect_ok e2e_as anna dcr provision "$ROOM" bank_customers "$T/bank.csv"
expect_ok e2e_as ian dcr provision "$ROOM" insurer_customers "$T/insurer.csv"

# ---- one affected owner ----------------------------------------------------
cat >"$T/by_city.json" <<'JSON'
{"title": "Bank customers by city",
 "description": "How many bank customers live in each city (groups of 10 or more).",
 "computations": [
   {"name": "bank_by_city", "kind": "sql", "privacy": {"min_rows_aggregated": 10},
    "query": "SELECT city, COUNT(*) AS n FROM bank_customers GROUP BY city ORDER BY city",
    "analysts": ["ian@insurer.example"]}]}
JSON
expect_ok e2e_as ian dcr request validate "$ROOM" "$T/by_city.json"
expect_contains "$E2E_OUT" "affected data owners (each must approve): anna@bank.example"
expect_contains "$E2E_OUT" "bank_by_city (sql): city string, n integer"
# a query SQLite refuses: the admission check, before anything is signed
sed 's/COUNT(\*) AS n/COUNT(*) AS n, nosuch/' "$T/by_city.json" >"$T/bad_col.json"
expect_fail e2e_as ian dcr request validate "$ROOM" "$T/bad_col.json"
expect_status 1
expect_stderr "dcr request validate:" "nosuch"
expect_fail e2e_as ian dcr request submit "$ROOM" "$T/bad_col.json"
expect_stderr "dcr request submit:" "nosuch"

Q1=$(e2e_as ian dcr request submit "$ROOM" "$T/by_city.json" 2>"$T/sub.err") ||
	e2e_fail "submit: $(cat "$T/sub.err")"
echo "$Q1" | grep -q -E '^[0-9a-f]{32}$' || e2e_fail "submit printed no id: $Q1"
expect_ok e2e_as anna dcr request list "$ROOM"
expect_contains "$E2E_OUT" "$Q1 open      0/1 approved  ian@insurer.example  Bank customers by city"
expect_ok e2e_as anna dcr request show "$ROOM" "$Q1"
expect_contains "$E2E_OUT" "request $Q1: open"
expect_contains "$E2E_OUT" "  anna@bank.example: pending"
expect_ok e2e_as anna dcr request show "$ROOM" "$Q1" --text
cmp -s "$E2E_OUT" "$T/by_city.json" || e2e_fail "show --text is not the text signed"
SHA=$(sha256sum "$T/by_city.json" | cut -c1-64)
expect_ok e2e_as anna dcr request show "$ROOM" "$Q1"
expect_contains "$E2E_OUT" "sha256: $SHA"

# not runnable before the merge
expect_fail e2e_as ian dcr run "$ROOM" bank_by_city
expect_stderr "no computation named \"bank_by_city\""
# refusals
expect_fail e2e_as eve dcr request submit "$ROOM" "$T/by_city.json"
expect_stderr "dcr request submit:"
expect_fail e2e_as ian dcr request approve "$ROOM" "$Q1"
expect_stderr "is not an affected owner of request $Q1"
expect_fail e2e_as anna dcr request approve "$ROOM" "$Q1" \
	--sha256 0000000000000000000000000000000000000000000000000000000000000000
expect_stderr "request_sha256 000000000000 is not the SHA-256 of request $Q1"
expect_fail e2e_as anna dcr request withdraw "$ROOM" "$Q1"
expect_stderr "is not the author of request $Q1"

# the sole affected owner previews it before approving; nobody else may
expect_fail e2e_as ian dcr request preview "$ROOM" "$Q1"
expect_stderr "is not the affected owner of request $Q1"
expect_ok e2e_as anna dcr request preview "$ROOM" "$Q1" -o "$T/preview.csv"
awk -F, 'NR > 1 { n[$3]++ } END { for (c in n) if (n[c] >= 10) print c "," n[c] }' \
	"$T/bank.csv" | LC_ALL=C sort >"$T/want.body"
{ echo "city,n"; cat "$T/want.body"; } >"$T/want.csv"
tr -d "\r" <"$T/preview.csv" | cmp -s - "$T/want.csv" ||
	e2e_fail "preview differs: $(cat "$T/preview.csv")"
PRUN=$(sed -n 's/^preview run \([0-9a-f]*\) of bank_by_city$/\1/p' "$E2E_ERR")
[ -n "$PRUN" ] || e2e_fail "preview printed no run id: $(cat "$E2E_ERR")"
# the preview is not the analyst's result
expect_fail e2e_as ian dcr result "$ROOM" bank_by_city
expect_stderr "dcr result:"

# a python request: its preview is the declared table (checked against the
# log's hash), or, with -o on a computation without columns, its files
cat >"$T/py_req.json" <<'JSON'
{"title": "Bank rows by python",
 "computations": [
   {"name": "bank_rows_py", "kind": "python", "inputs": ["bank_customers"],
    "columns": [{"name": "n", "type": "integer"}],
    "script": "import csv\nrows = list(csv.DictReader(open('/input/bank_customers/dataset.csv')))\nopen('/output/dataset.csv', 'w').write('n\\n%d\\n' % len(rows))\nopen('/output/note.txt', 'w').write('counted')\n",
    "analysts": ["ian@insurer.example"]},
   {"name": "bank_files_py", "kind": "python", "inputs": ["bank_customers"],
    "script": "open('/output/note.txt', 'w').write('only files')\n",
    "analysts": ["ian@insurer.example"]}]}
JSON
QP=$(e2e_as ian dcr request submit "$ROOM" "$T/py_req.json" 2>"$T/sub.err") ||
	e2e_fail "submit py_req: $(cat "$T/sub.err")"
expect_ok e2e_as anna dcr request preview "$ROOM" "$QP" bank_rows_py --timeout 120
printf 'n\n%d\n' "$(($(wc -l <"$T/bank.csv") - 1))" >"$T/py_want.csv"
tr -d "\r" <"$E2E_OUT" | cmp -s - "$T/py_want.csv" ||
	e2e_fail "python preview: $(cat "$E2E_OUT")"
expect_fail e2e_as anna dcr request preview "$ROOM" "$QP" bank_files_py --timeout 120
expect_stderr "the result of python computation bank_files_py is files: give -o DIR"
expect_ok e2e_as anna dcr request preview "$ROOM" "$QP" bank_files_py -o "$T/pyprev" --timeout 120
[ "$(cat "$T/pyprev/note.txt")" = "only files" ] || e2e_fail "python preview files"
expect_ok e2e_as ian dcr request withdraw "$ROOM" "$QP"

expect_ok e2e_as anna dcr request approve "$ROOM" "$Q1" --reason "city counts are fine" \
	--sha256 "$SHA"
expect_contains "$E2E_OUT" "approved request $Q1: merged, definition version 2"
expect_ok e2e_as anna dcr request show "$ROOM" "$Q1"
expect_contains "$E2E_OUT" "  anna@bank.example: approved (city counts are fine)"
expect_contains "$E2E_OUT" "merged: definition version 2"
expect_fail e2e_as anna dcr request approve "$ROOM" "$Q1"
expect_stderr "request $Q1 is merged; only an open request can be approved or rejected"
expect_ok e2e_as ian dcr room show "$ROOM"
expect_contains "$E2E_OUT" "\"bank_by_city\""

# the analyst runs it and reads the result
expect_ok e2e_as ian dcr run "$ROOM" bank_by_city --wait --timeout 120
expect_ok e2e_as ian dcr result "$ROOM" bank_by_city -o "$T/by_city.csv"
tr -d "\r" <"$T/by_city.csv" | cmp -s - "$T/want.csv" ||
	e2e_fail "bank_by_city result differs: $(cat "$T/by_city.csv")"
expect_fail e2e_as anna dcr result "$ROOM" bank_by_city
expect_stderr "dcr result:"

# ---- two affected owners ----------------------------------------------------
cat >"$T/risk.json" <<'JSON'
{"title": "Risk classes of shared customers",
 "computations": [
   {"name": "risk_mix", "kind": "sql", "privacy": {"min_rows_aggregated": 10},
    "query": "SELECT i.risk_class, COUNT(*) AS n FROM bank_customers b JOIN insurer_customers i ON b.email = i.email GROUP BY i.risk_class",
    "analysts": ["ian@insurer.example", "anna@bank.example"]}]}
JSON
expect_ok e2e_as ian dcr request validate "$ROOM" "$T/risk.json"
expect_contains "$E2E_OUT" "affected data owners (each must approve): anna@bank.example, ian@insurer.example"
Q2=$(e2e_as ian dcr request submit "$ROOM" "$T/risk.json" 2>/dev/null) || e2e_fail "submit risk"
expect_fail e2e_as anna dcr request preview "$ROOM" "$Q2"
expect_stderr "request $Q2 reads the data of 2 owners: a preview would show one owner the others' data before they agreed"
expect_ok e2e_as anna dcr request approve "$ROOM" "$Q2" --reason "ok for the bank"
expect_contains "$E2E_OUT" "approved request $Q2: 1 of 2 affected owners approved"
expect_fail e2e_as anna dcr request approve "$ROOM" "$Q2"
expect_stderr "has already approved request $Q2"
expect_ok e2e_as ian dcr request reject "$ROOM" "$Q2" --reason "risk classes stay with us"
expect_ok e2e_as anna dcr request show "$ROOM" "$Q2"
expect_contains "$E2E_OUT" "request $Q2: rejected"
expect_contains "$E2E_OUT" "  ian@insurer.example: rejected (risk classes stay with us)"
expect_contains "$E2E_OUT" "merged: no"
expect_fail e2e_as ian dcr run "$ROOM" risk_mix
expect_stderr "no computation named \"risk_mix\""

Q3=$(e2e_as anna dcr request submit "$ROOM" "$T/risk.json" 2>/dev/null) || e2e_fail "submit risk 2"
expect_ok e2e_as ian dcr request approve "$ROOM" "$Q3"
expect_ok e2e_as anna dcr request approve "$ROOM" "$Q3"
expect_contains "$E2E_OUT" "approved request $Q3: merged, definition version 3"
expect_ok e2e_as anna dcr run "$ROOM" risk_mix --wait --timeout 120

# ---- withdrawn, and a name taken by the time of the merge --------------------
sed 's/bank_by_city/city_again/; s/Bank customers by city/Again/' "$T/by_city.json" >"$T/again.json"
Q4=$(e2e_as ian dcr request submit "$ROOM" "$T/again.json" 2>/dev/null) || e2e_fail "submit again"
expect_ok e2e_as ian dcr request withdraw "$ROOM" "$Q4"
expect_fail e2e_as anna dcr request approve "$ROOM" "$Q4"
expect_stderr "request $Q4 is withdrawn"
Q5=$(e2e_as ian dcr request submit "$ROOM" "$T/again.json" 2>/dev/null) || e2e_fail "submit Q5"
sed 's/ORDER BY city/ORDER BY n/' "$T/again.json" >"$T/again2.json"
Q6=$(e2e_as ian dcr request submit "$ROOM" "$T/again2.json" 2>/dev/null) || e2e_fail "submit Q6"
expect_ok e2e_as anna dcr request approve "$ROOM" "$Q5"
expect_contains "$E2E_OUT" "merged, definition version 4"
expect_ok e2e_as anna dcr request approve "$ROOM" "$Q6"
expect_contains "$E2E_OUT" "approved request $Q6: every owner approved but the merge failed:"
expect_contains "$E2E_OUT" "city_again"
expect_ok e2e_as ian dcr request list "$ROOM"
expect_contains "$E2E_OUT" "$Q6 failed    1/1 approved"
expect_contains "$E2E_OUT" "$Q4 withdrawn 0/1 approved"
# the room goes on
expect_ok e2e_as ian dcr run "$ROOM" city_again --wait --timeout 120

# ---- a room without interactivity -------------------------------------------
sed 's/"interactive": true/"interactive": false/; s/"name": "bank-insurer-overlap"/"name": "frozen"/' \
	"$T/room.json" >"$T/frozen.json"
FROZEN=$(e2e_as anna dcr room create "$T/frozen.json") || e2e_fail "room create frozen"
expect_ok e2e_as anna dcr room publish "$FROZEN"
expect_fail e2e_as ian dcr request validate "$FROZEN" "$T/by_city.json"
expect_stderr "the room is not interactive (settings.interactive is false)"
expect_fail e2e_as ian dcr request submit "$FROZEN" "$T/by_city.json"
expect_stderr "the room is not interactive"
# the client check skipped: dcrd refuses the signed event itself
expect_fail e2e_as ian dcr request approve "$FROZEN" 11111111111111111111111111111111
expect_stderr "no request 11111111111111111111111111111111"

# ---- an owner's auto_approve policy -------------------------------------------
# The bank approves sql requests with groups of at least 10 for ian by
# itself; the insurer approves by hand and completes the request.
sed 's/"name": "bank-insurer-overlap"/"name": "policy"/; s/"share_statistics": false,/"share_statistics": false, "auto_approve": {"kinds": ["sql"], "privacy_min_rows_aggregated_at_least": 10, "analysts": ["ian@insurer.example"]},/' \
	"$T/room.json" >"$T/policy.json"
grep -q auto_approve "$T/policy.json" || e2e_fail "policy room has no policy"
POL=$(e2e_as anna dcr room create "$T/policy.json") || e2e_fail "room create policy"
expect_ok e2e_as anna dcr room publish "$POL"
expect_ok e2e_as anna dcr room show "$POL"
expect_contains "$E2E_OUT" '"privacy_min_rows_aggregated_at_least": 10'
sed 's/, "anna@bank.example"//' "$T/risk.json" >"$T/risk_ian.json"
Q7=$(e2e_as ian dcr request submit "$POL" "$T/risk_ian.json" 2>/dev/null) || e2e_fail "submit Q7"
expect_ok e2e_as ian dcr request show "$POL" "$Q7"
expect_contains "$E2E_OUT" "request $Q7: open"
expect_contains "$E2E_OUT" "  anna@bank.example: approved automatically, by the owner's auto_approve policy"
expect_contains "$E2E_OUT" "  ian@insurer.example: pending"
expect_ok e2e_as ian dcr request approve "$POL" "$Q7"
expect_contains "$E2E_OUT" "approved request $Q7: merged, definition version 2"
# outside the policy (an analyst it does not list): the bank decides by hand
Q8=$(e2e_as ian dcr request submit "$POL" "$T/by_city.json" 2>/dev/null) || e2e_fail "submit Q8"
expect_ok e2e_as ian dcr request show "$POL" "$Q8"
expect_contains "$E2E_OUT" "  anna@bank.example: approved automatically"
sed 's/"ian@insurer.example"\]/"anna@bank.example"]/' "$T/again.json" >"$T/for_anna.json"
Q9=$(e2e_as ian dcr request submit "$POL" "$T/for_anna.json" 2>/dev/null) || e2e_fail "submit Q9"
expect_ok e2e_as ian dcr request show "$POL" "$Q9"
expect_contains "$E2E_OUT" "  anna@bank.example: pending"
expect_ok e2e_as anna dcr audit log "$POL"
expect_contains "$E2E_OUT" "dcrd approved request ${Q7%????????????????????????} \"Risk classes of shared customers\" for anna@bank.example by the auto_approve policy of its datasets (1 more approval needed)"
expect_ok e2e_as anna dcr audit export "$POL" -o "$T/policy.export"
expect_verifiers_agree "$T/policy.export" >/dev/null

# ---- audit -------------------------------------------------------------------
expect_ok e2e_as anna dcr audit log "$ROOM"
expect_contains "$E2E_OUT" "ian@insurer.example submitted request ${Q1%????????????????????????} \"Bank customers by city\": bank_by_city (sha256 "
expect_contains "$E2E_OUT" "anna@bank.example approved request ${Q1%????????????????????????} \"Bank customers by city\": city counts are fine; merged as definition version 2"
expect_contains "$E2E_OUT" "ian@insurer.example rejected request ${Q2%????????????????????????} \"Risk classes of shared customers\": risk classes stay with us"
expect_contains "$E2E_OUT" "anna@bank.example previewed request ${Q1%????????????????????????} \"Bank customers by city\": run ${PRUN%????????????????????????} of bank_by_city"
expect_contains "$E2E_OUT" "anna@bank.example retrieved the result of run ${PRUN%????????????????????????} of bank_by_city"
expect_contains "$E2E_OUT" "ian@insurer.example withdrew request ${Q4%????????????????????????}"
expect_contains "$E2E_OUT" "every owner approved but the merge failed:"
expect_ok e2e_as anna dcr audit export "$ROOM" -o "$T/room.export"
expect_verifiers_agree "$T/room.export" >/dev/null
e2e_log "ok"
