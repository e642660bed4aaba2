# backup.sh: `dcr admin backup` of a running host under write load, and
# `dcrd restore` (docs/operations.md "Backup and restore").
#
# Two rooms; while a loop provisions new versions of a dataset in one room
# (each replacing the last, whose blob dcrd removes at once) and runs and
# reads the overlap in the other, the operator backs the host up. Then the
# backup is restored into a fresh data directory and a dcrd started on it:
# every room has exactly the size and Merkle root of the original at the
# backup's point (the original's root computed independently, by
# audit_indep.py, from its later export; the restored one by dcr audit
# verify), every provisioned dataset and the result read back bit for bit
# through the CLI, and a run works on the restored data. Refused: a backup
# whose log was altered (one byte of an event), one whose blob was altered,
# a non-empty target, a backup without keys and no --keys.
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"

e2e_setup
e2e_start_daemon
story_identities
story_csvs

# ---- two rooms, provisioned, one run each
story_room_json "$T/room1.json" room-one
story_room_json "$T/room2.json" room-two false
R1=$(e2e_as anna dcr room create "$T/room1.json") || e2e_fail "create room one"
R2=$(e2e_as anna dcr room create "$T/room2.json") || e2e_fail "create room two"
for r in "$R1" "$R2"; do
	expect_ok e2e_as anna dcr room publish "$r"
	expect_ok e2e_as ian dcr provision "$r" insurer_customers "$T/insurer.csv"
done
expect_ok e2e_as anna dcr provision "$R1" bank_customers "$T/bank.csv"
expect_ok e2e_as anna dcr run "$R1" overlap --wait --timeout 120
e2e_as anna dcr result "$R1" overlap >"$T/result1.csv" || e2e_fail "result before the backup"
story_expected "$T/expected.csv"
tr -d '\r"' <"$T/result1.csv" | cmp -s - "$T/expected.csv" || e2e_fail "overlap result is wrong"

# versions of the bank's data for room two: v_i has 2000 + i rows
mkdir -p "$T/v"
for i in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19; do
	awk -v n=$((2000 + i)) 'BEGIN {
		print "email,age,city,balance";
		for (k = 0; k < n; k++)
			printf "c%05d@mail.example,%d,%s,%.2f\n", k, 20 + (k * 7) % 50, (k % 2 ? "Berlin" : "Bonn"), k * 1.5;
	}' >"$T/v/$i.csv"
done
expect_ok e2e_as anna dcr provision "$R2" bank_customers "$T/v/0.csv"

# ---- the write load: provisions (replacing the last version), runs and
# result reads, until $T/stop exists; each finished round bumps $T/rounds
echo 0 >"$T/rounds"
(
	i=1
	while [ ! -e "$T/stop" ]; do
		DCR_IDENTITY="$T/anna.pem" dcr provision "$R2" bank_customers "$T/v/$((i % 20)).csv" \
			>>"$T/load.log" 2>&1 || { echo "provision failed" >>"$T/load.err"; break; }
		DCR_IDENTITY="$T/anna.pem" dcr run "$R1" overlap --wait --timeout 120 \
			>>"$T/load.log" 2>&1 || { echo "run failed" >>"$T/load.err"; break; }
		DCR_IDENTITY="$T/anna.pem" dcr result "$R1" overlap >"$T/load.result" 2>>"$T/load.log" ||
			{ echo "result failed" >>"$T/load.err"; break; }
		echo "$i" >"$T/rounds"
		i=$((i + 1))
	done
) &
LOAD=$!
E2E_PIDS="$E2E_PIDS $LOAD"

wait_rounds() { # wait_rounds N: until the load finished more than N rounds
	_j=0
	while [ "$(cat "$T/rounds")" -le "$1" ]; do
		[ ! -s "$T/load.err" ] || e2e_fail "the load failed: $(cat "$T/load.err"); $(tail -n 5 "$T/load.log")"
		[ $_j -lt 1200 ] || e2e_fail "the load made no progress in 120 s"
		sleep 0.1
		_j=$((_j + 1))
	done
}

wait_rounds 1
before=$(cat "$T/rounds")
expect_ok dcr admin backup "$T/backup"
expect_contains "$E2E_OUT" "2 rooms"
wait_rounds "$before" # the load went on during and after the backup
# a second backup while the load goes on, with the keys, into an existing
# empty directory
mkdir "$T/backup2"
# the host has a TLS key (as one that listens on TCP): --with-keys keeps
# it, so a restored host keeps its fingerprint (remote participants' pins)
FP0=$(dcrd --data "$T/data" --fingerprint 2>/dev/null) || e2e_fail "dcrd --fingerprint"
expect_ok dcr admin backup "$T/backup2" --with-keys
[ -s "$T/backup2/daemon.pem" ] && [ -s "$T/backup2/master.key" ] ||
	e2e_fail "a backup made --with-keys lacks a key"
[ -s "$T/backup2/tls/tls.key" ] && [ -s "$T/backup2/tls/tls.crt" ] ||
	e2e_fail "a backup made --with-keys lacks the TLS key"
wait_rounds "$(cat "$T/rounds")"
touch "$T/stop"
wait "$LOAD" || true
[ ! -s "$T/load.err" ] || e2e_fail "the load failed: $(cat "$T/load.err")"
e2e_log "load: $(cat "$T/rounds") rounds"

# the backup holds no key, and backup.json describes it
[ ! -e "$T/backup/daemon.pem" ] && [ ! -e "$T/backup/master.key" ] ||
	e2e_fail "a backup without --with-keys holds a key"
python3 - "$T/backup" <<'EOF' || e2e_fail "backup.json does not describe the files"
import hashlib, json, os, sys
d = sys.argv[1]
m = json.load(open(os.path.join(d, "backup.json")))
assert m["format"] == "dcr-backup/1" and len(m["rooms"]) == 2, m
names = {f["name"] for f in m["files"]}
assert "events/data.mdb" in names and any(n.startswith("blobs/") for n in names), names
for f in m["files"]:
    b = open(os.path.join(d, f["name"]), "rb").read()
    assert len(b) == f["size"] and hashlib.sha256(b).hexdigest() == f["sha256"], f["name"]
EOF

# exports of the original rooms now, with the events after the backup
for r in "$R1" "$R2"; do
	expect_ok e2e_as anna dcr audit export "$r" -o "$T/orig.$r.export"
done
# what room two held at the backup's point is one of the versions: the
# one whose rows the restored host gives back (checked below)
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"
mv "$T/data" "$T/orig"

# ---- refusals
# no keys in the backup and no --keys
expect_fail dcrd restore --data "$T/data" "$T/backup"
expect_stderr "holds no keys" "--keys"
e2e_log "$(cat "$E2E_ERR")"
[ ! -e "$T/data" ] || e2e_fail "a refused restore left $T/data"
# a non-empty target
mkdir "$T/full" && echo x >"$T/full/file"
expect_fail dcrd restore --data "$T/full" --keys "$T/orig" "$T/backup"
expect_stderr "is not empty"
e2e_log "$(cat "$E2E_ERR")"
[ "$(ls "$T/full")" = file ] || e2e_fail "a refused restore changed a non-empty target"
# one byte of an event changed: the name of room one in its room.created
cp -r "$T/backup" "$T/bad1"
python3 - "$T/bad1/events/data.mdb" <<'EOF' || e2e_fail "could not tamper with the log"
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
i = b.find(b"room-one")
assert i >= 0
b[i] = ord("R")
open(p, "wb").write(b)
EOF
expect_fail dcrd restore --data "$T/data" --keys "$T/orig" "$T/bad1"
expect_stderr "refused: the backup's logs do not verify" "room $R1" "seq 0"
e2e_log "$(cat "$E2E_ERR")"
[ ! -e "$T/data" ] || e2e_fail "a refused restore left $T/data"
# one byte of a blob changed (the last byte of the largest: room two's data)
cp -r "$T/backup" "$T/bad2"
big=$(find "$T/bad2/blobs" -type f -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2)
[ -n "$big" ] || e2e_fail "the backup has no blob"
python3 - "$big" <<'EOF' || e2e_fail "could not tamper with a blob"
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[-20] ^= 1
open(p, "wb").write(b)
EOF
mkdir "$T/data"
expect_fail dcrd restore --data "$T/data" --keys "$T/orig" "$T/bad2"
expect_stderr "refused: the backup's blobs do not verify" "blob $(basename "$big")"
e2e_log "$(cat "$E2E_ERR")"
[ -d "$T/data" ] && [ -z "$(ls -A "$T/data")" ] || e2e_fail "a refused restore left files in $T/data"
rmdir "$T/data"

# ---- the restore
expect_ok dcrd restore --data "$T/data" --keys "$T/orig" "$T/backup"
expect_contains "$E2E_OUT" "restored 2 rooms"
e2e_start_daemon
# the participants saw events the restored host lost: their clients refuse
# it (docs/security.md, "A lying host") until they accept the restore
for r in "$R1" "$R2"; do
	expect_fail e2e_as anna dcr status "$r"
	expect_stderr "room $r: the host" "refused" "evidence"
	for who in anna ian; do
		e2e_as "$who" dcr audit witness "$r" --forget 2>/dev/null || true
	done
done
for r in "$R1" "$R2"; do
	expect_ok e2e_as anna dcr audit export "$r" -o "$T/rest.$r.export"
	e2e_as anna dcr audit verify "$T/rest.$r.export" >"$T/rest.$r.verify" 2>&1 ||
		e2e_fail "restored room $r does not verify: $(cat "$T/rest.$r.verify")"
done
# sizes and roots: the manifest's, the restored host's, and the original's
# at the manifest's size (computed by the independent verifier)
python3 - "$T" "$R1" "$R2" <<'EOF' || e2e_fail "Merkle roots differ"
import json, os, re, sys
sys.path.insert(0, os.path.join(os.environ["DCR_SOURCE_DIR"], "tests", "e2e"))
import audit_indep as A
t = sys.argv[1]
m = json.load(open(os.path.join(t, "backup", "backup.json")))
rooms = {r["id"]: r for r in m["rooms"]}
assert sorted(rooms) == sorted(sys.argv[2:]), rooms
for rid, r in rooms.items():
    orig = A.dec_all(open(os.path.join(t, "orig.%s.export" % rid), "rb").read())
    assert len(orig["entries"]) >= r["size"] > 0
    root = A.mth([A.leaf(e) for e in orig["entries"][: r["size"]]]).hex()
    assert root == r["root"], (rid, root, r["root"])
    v = open(os.path.join(t, "rest.%s.verify" % rid)).read()
    got = re.search(r"valid: room \S+ \"[^\"]*\", (\d+) events, root ([0-9a-f]+)", v)
    assert got, v
    # the restored host may have appended since it started (a run that was
    # queued when the backup was taken completes there): the backup's
    # entries are the restored log's first ones, with the same root
    rest = A.dec_all(open(os.path.join(t, "rest.%s.export" % rid), "rb").read())
    assert int(got.group(1)) == len(rest["entries"]) >= r["size"], (rid, v, r)
    assert A.mth([A.leaf(e) for e in rest["entries"][: r["size"]]]).hex() == r["root"], (rid, v, r)
    assert rest["entries"][: r["size"]] == orig["entries"][: r["size"]], rid
    print("room %s: %d events, root %s (original at the backup: %d of %d events)"
          % (rid, r["size"], root, r["size"], len(orig["entries"])))
EOF

# every provisioned dataset and the result, bit for bit
e2e_as anna dcr data "$R1" bank_customers >"$T/r1.bank" || e2e_fail "data of room one (bank)"
cmp -s "$T/r1.bank" "$T/bank.csv" || e2e_fail "room one's bank data differs after the restore"
for r in "$R1" "$R2"; do
	e2e_as ian dcr data "$r" insurer_customers >"$T/r.ins" || e2e_fail "data of $r (insurer)"
	cmp -s "$T/r.ins" "$T/insurer.csv" || e2e_fail "$r's insurer data differs after the restore"
done
e2e_as anna dcr data "$R2" bank_customers >"$T/r2.bank" || e2e_fail "data of room two (bank)"
match=
for f in "$T"/v/*.csv; do
	cmp -s "$T/r2.bank" "$f" && match=$f
done
[ -n "$match" ] || e2e_fail "room two's bank data is none of the versions provisioned"
expect_ok e2e_as anna dcr status "$R2"
expect_contains "$E2E_OUT" "$(sha256sum "$match" | cut -d' ' -f1)"
e2e_as anna dcr result "$R1" overlap >"$T/result.restored" || e2e_fail "result after the restore"
cmp -s "$T/result.restored" "$T/result1.csv" || e2e_fail "the result differs after the restore"
# the restored host computes on the restored data
expect_ok e2e_as anna dcr run "$R1" overlap --wait --timeout 120
e2e_as anna dcr result "$R1" overlap >"$T/result.new" || e2e_fail "result of a new run"
cmp -s "$T/result.new" "$T/result1.csv" || e2e_fail "a run on the restored host differs"
e2e_stop_daemon || e2e_fail "restored dcrd did not stop cleanly"

# the second backup restores without --keys (it holds them), into an
# existing empty directory
mkdir "$T/data2"
expect_ok dcrd restore --data "$T/data2" "$T/backup2"
expect_contains "$E2E_OUT" "restored 2 rooms"
cmp -s "$T/data2/daemon.pem" "$T/orig/daemon.pem" || e2e_fail "the restored daemon key differs"
[ "$(stat -c %a "$T/data2/tls/tls.key")" = 600 ] || e2e_fail "the restored TLS key is not 0600"
expect_eq "$(dcrd --data "$T/data2" --fingerprint 2>/dev/null)" "$FP0" \
	"the restored host's TLS fingerprint"

echo "backup: ok"
