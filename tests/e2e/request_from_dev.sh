# request_from_dev.sh: a development script proposed as a request through
# the CLI against a real dcrd (issue 12, docs/cli.md "dcr request"): the
# bank's owner develops a python script on her own table (dcr dev run),
# proposes it unchanged with `dcr request submit --from-dev` for the
# insurer as analyst (the request text is built from the script: kind from
# the extension, inputs from its "# inputs:" line), approves it, and the
# insurer runs it and reads the result (checked against awk). An sql
# script's inputs come from its query (validate shows the owner). Refusals:
# no --name, an unknown extension, an input that is not in the room, a
# JSON file and --from-dev together, --name without --from-dev, an
# outsider without --analyst.
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

cat >"$T/by_city.py" <<'PY'
# inputs: bank_customers
import csv
n = {}
for r in csv.DictReader(open("/input/bank_customers/dataset.csv")):
    n[r["city"]] = n.get(r["city"], 0) + 1
with open("/output/by_city.txt", "w") as f:
    for c in sorted(n):
        f.write("%s,%d\n" % (c, n[c]))
PY
awk -F, 'NR > 1 { n[$3]++ } END { for (c in n) print c "," n[c] }' "$T/bank.csv" |
	LC_ALL=C sort >"$T/by_city.expected"

# developed on her own data first
expect_ok e2e_as anna dcr dev run "$ROOM" "$T/by_city.py" --wait --timeout 300

# proposed from the file, for the insurer
Q=$(e2e_as anna dcr request submit "$ROOM" --from-dev "$T/by_city.py" --name bank_by_city_py \
	--analyst ian@insurer.example --description "customers per city" 2>"$T/sub.err") ||
	e2e_fail "submit --from-dev: $(cat "$T/sub.err")"
echo "$Q" | grep -q -E '^[0-9a-f]{32}$' || e2e_fail "submit printed no id: $Q"
expect_contains "$T/sub.err" "affected data owners (each must approve): anna@bank.example"
expect_ok e2e_as anna dcr request show "$ROOM" "$Q" --text
cp "$E2E_OUT" "$T/q.json"
expect_contains "$T/q.json" "\"title\": \"bank_by_city_py (from $T/by_city.py)\""
expect_contains "$T/q.json" "\"description\": \"customers per city\""
expect_contains "$T/q.json" "\"kind\": \"python\", \"inputs\": [\"bank_customers\"]"
expect_contains "$T/q.json" "\"analysts\": [\"ian@insurer.example\"]"
python3 -c 'import json,sys; d = json.load(open(sys.argv[1])); c = d["computations"][0]
assert c["script"] == open(sys.argv[2]).read(), "script differs"' "$T/q.json" "$T/by_city.py" ||
	e2e_fail "the request's script is not the file's"
expect_ok e2e_as anna dcr request approve "$ROOM" "$Q" --reason "counts only"
expect_ok e2e_as ian dcr run "$ROOM" bank_by_city_py --wait --timeout 300
expect_ok e2e_as ian dcr result "$ROOM" bank_by_city_py -o "$T/out"
cmp -s "$T/out/by_city.txt" "$T/by_city.expected" ||
	e2e_fail "result differs: $(cat "$T/out/by_city.txt")"

# an sql script: its inputs are what the query reads; the analyst is you
printf 'SELECT risk_class, COUNT(*) AS n FROM insurer_customers GROUP BY risk_class\n' \
	>"$T/by_class.sql"
expect_ok e2e_as ian dcr request validate "$ROOM" --from-dev "$T/by_class.sql" --name by_class
expect_contains "$E2E_OUT" "affected data owners (each must approve): ian@insurer.example"
expect_contains "$E2E_OUT" "by_class (sql): risk_class string, n integer"

# refusals
expect_fail e2e_as anna dcr request submit "$ROOM" --from-dev "$T/by_city.py"
expect_status 2
expect_stderr "--from-dev needs --name NAME"
cp "$T/by_city.py" "$T/by_city.txt"
expect_fail e2e_as anna dcr request submit "$ROOM" --from-dev "$T/by_city.txt" --name x
expect_stderr "the language comes from the extension"
sed '1s/.*/# inputs: nosuch/' "$T/by_city.py" >"$T/nosuch.py"
expect_fail e2e_as anna dcr request validate "$ROOM" --from-dev "$T/nosuch.py" --name x
expect_stderr "nosuch"
expect_fail e2e_as anna dcr request submit "$ROOM" "$T/q.json" --from-dev "$T/by_city.py" \
	--name x
expect_status 2
expect_stderr "FILE.json and --from-dev are exclusive"
expect_fail e2e_as anna dcr request submit "$ROOM" "$T/q.json" --name x
expect_stderr "go with --from-dev"
expect_fail e2e_as eve dcr request validate "$ROOM" --from-dev "$T/by_city.py" --name x
expect_stderr "dcr request validate:"
expect_ok e2e_as anna dcr request list "$ROOM"
[ "$(grep -c . "$E2E_OUT")" -eq 1 ] || e2e_fail "a refused request was recorded: $(cat "$E2E_OUT")"

expect_ok e2e_stop_daemon
echo "request_from_dev: ok"
