# remote.sh: the bank/insurer story through the CLI with dcrd on
# 127.0.0.1 over TLS 1.3 and every participant using --server only (no
# unix socket): trust on first use (the fingerprint shown once, remembered
# in known_servers, silent afterwards), --pin and DCR_PIN, DCR_SERVER, the
# whole story (create, publish, provision with progress on a terminal,
# run, result equal to awk's, refusals, audit log), invitations (dcr room invite, dcr join, then every
# command by room name without --server) with their refusals and the
# errors of a broken invitation or known_servers (file and line); and,
# with dcrd still serving good clients: a wrong --pin, and a changed
# server key (dcrd restarted with a new TLS key: the old known_servers
# entry refuses with the two fingerprints and the line to remove, nothing
# is sent; --pin then records the new key); IPv6 ([::1]:PORT).
. "$DCR_SOURCE_DIR/tests/e2e/lib.sh"
. "$DCR_SOURCE_DIR/tests/e2e/cli_story.inc"
. "$DCR_SOURCE_DIR/tests/e2e/remote_lib.inc"

e2e_setup
remote_start_daemon
story_identities
story_room_json "$T/room.json"
story_csvs
A() { rem anna dcr --server "$SERVER" "$@"; }
I() { rem ian dcr --server "$SERVER" "$@"; }

# ---- addresses: usage errors, nothing to reach
expect_fail rem anna dcr room list
expect_stderr "no daemon socket" "--server HOST:PORT"
expect_fail rem anna dcr --server "$SERVER" --socket "$T/sock" room list
expect_stderr "--server and --socket both given"
expect_fail rem anna dcr --socket "$T/sock" --pin "$FP" room list
expect_stderr "--pin is the key of a --server"
expect_fail rem anna env DCR_SERVER="$SERVER" DCR_SOCKET="$T/sock" dcr room list
expect_stderr "DCR_SERVER and DCR_SOCKET are both set"
expect_fail rem anna dcr --server "127.0.0.1" room list
expect_stderr "expected HOST:PORT"
expect_fail rem anna dcr --server "::1:$REMOTE_PORT" room list
expect_stderr "[ADDR]:PORT"
[ ! -e "$T/cfg-anna/known_servers" ] || e2e_fail "a refused command wrote known_servers"

# ---- trust on first use: shown once, remembered, then silent
expect_ok A room list
expect_stderr "first connection to $SERVER: its key fingerprint is $FP" \
	"$T/cfg-anna/known_servers line 1" "dcrd --fingerprint"
expect_eq "$(cat "$T/cfg-anna/known_servers")" "$SERVER $FP" "anna's known_servers"
expect_ok A room list
[ ! -s "$E2E_ERR" ] || e2e_fail "a known server is not silent: $(cat "$E2E_ERR")"
# DCR_SERVER is --server
id=$(rem anna env DCR_SERVER="$SERVER" dcr room create "$T/room.json") || e2e_fail "room create"
# --pin: checked and recorded, no first-use message; DCR_PIN the same
expect_ok I --pin "$FP" room list
grep -q "first connection" "$E2E_ERR" && e2e_fail "--pin printed the first-use message"
expect_eq "$(cat "$T/cfg-ian/known_servers")" "$SERVER $FP" "ian's known_servers"
expect_ok rem eve env DCR_PIN="$FP" dcr --server "$SERVER" room list
expect_eq "$(cat "$T/cfg-eve/known_servers")" "$SERVER $FP" "eve's known_servers (DCR_PIN)"

# no configuration directory (no HOME): the pin alone decides; without it, refused
expect_ok env -u HOME -u DCR_CONFIG_DIR -u XDG_CONFIG_HOME DCR_IDENTITY="$T/eve.pem" \
	dcr --server "$SERVER" --pin "$FP" room list
expect_fail env -u HOME -u DCR_CONFIG_DIR -u XDG_CONFIG_HOME DCR_IDENTITY="$T/eve.pem" \
	dcr --server "$SERVER" room list
expect_stderr "no configuration directory"

# ---- a wrong pin is refused before anything is sent; dcrd serves on
BAD=sha256:$(printf '%064d' 0)
expect_fail rem eve dcr --server "$SERVER" --pin "$BAD" room list
expect_stderr "has the key $FP, not the pinned $BAD" "nothing was sent"
expect_fail rem eve dcr --server "$SERVER" --pin "sha256:1234" room list
expect_stderr "--pin"
expect_ok A room list

# ---- the story, every participant over --server
expect_ok A room publish bank-insurer-overlap
expect_ok A provision bank-insurer-overlap bank_customers "$T/bank.csv"
expect_contains "$E2E_OUT" "provisioned bank_customers: 200 rows, $(wc -c <"$T/bank.csv") bytes"
expect_contains "$E2E_OUT" "sha256 $(sha256sum "$T/bank.csv" | cut -d' ' -f1)"
# on a terminal the upload over TLS shows its progress, as over the socket
if command -v script >/dev/null 2>&1 && [ -c /dev/ptmx ]; then
	script -qec "DCR_IDENTITY='$T/anna.pem' DCR_CONFIG_DIR='$T/cfg-anna' dcr --server '$SERVER' provision bank-insurer-overlap bank_customers '$T/bank.csv'" \
		/dev/null >"$T/tty.out" 2>&1 || e2e_fail "provision on a terminal: $(cat "$T/tty.out")"
	expect_contains "$T/tty.out" "dcr provision: bank_customers 7.1 KiB of 7.1 KiB (100%)"
	expect_contains "$T/tty.out" "provisioned bank_customers: 200 rows"
else
	e2e_log "no script(1) or /dev/ptmx: progress lines not checked"
fi
printf 'email,risk_class,premium\nx@y.example,low,12a\n' >"$T/insurer_bad.csv"
expect_fail I provision bank-insurer-overlap insurer_customers "$T/insurer_bad.csv"
expect_stderr 'line 2, column "premium": expected float, got "12a"'
expect_ok I provision bank-insurer-overlap insurer_customers "$T/insurer.csv"
expect_fail I provision bank-insurer-overlap bank_customers "$T/bank.csv"
expect_stderr "not an owner of dataset bank_customers"
expect_ok A run bank-insurer-overlap overlap --wait
expect_contains "$E2E_OUT" "done: "
A result bank-insurer-overlap overlap >"$T/result.csv" || e2e_fail "result"
story_expected "$T/expected.csv"
tr -d '\r"' <"$T/result.csv" >"$T/result.norm"
cmp -s "$T/expected.csv" "$T/result.norm" ||
	e2e_fail "overlap over TLS differs from awk: $(diff "$T/expected.csv" "$T/result.norm")"
expect_fail I result bank-insurer-overlap overlap
expect_stderr "not an analyst of computation overlap"
expect_fail rem eve dcr --server "$SERVER" room show "$id"
expect_stderr "no room $id"
# the owner's file back, byte for byte (a download)
A data bank-insurer-overlap bank_customers >"$T/bank.back" || e2e_fail "dcr data"
cmp -s "$T/bank.csv" "$T/bank.back" || e2e_fail "dcr data over TLS differs"
expect_ok I status bank-insurer-overlap
expect_contains "$E2E_OUT" "signed by the daemon, matches the events replayed"
expect_ok I audit log bank-insurer-overlap
expect_contains "$E2E_OUT" "ian@insurer.example provisioned insurer_customers"
expect_contains "$E2E_OUT" "anna@bank.example retrieved the result of run"

# ---- invitations
expect_fail rem eve dcr --server "$SERVER" room invite "$id" eve@elsewhere.example -o "$T/eve.inv"
expect_stderr "no room $id"
[ ! -e "$T/eve.inv" ] || e2e_fail "an outsider wrote an invitation"
expect_fail A room invite bank-insurer-overlap not-an-email -o "$T/x.inv"
expect_status 2
expect_fail A room invite bank-insurer-overlap ian@insurer.example
expect_status 2
expect_ok A room invite bank-insurer-overlap ian@insurer.example -o "$T/ian.inv"
expect_stderr "invitation for ian@insurer.example"
for l in "format dcr.invitation/1" "server $SERVER" "fingerprint $FP" "room $id" \
	"name bank-insurer-overlap" "email ian@insurer.example" "invited-by anna@bank.example"; do
	grep -q -x -F "$l" "$T/ian.inv" || e2e_fail "the invitation lacks \"$l\": $(cat "$T/ian.inv")"
done
expect_ok A room invite "$id" new@partner.example -o -
expect_contains "$E2E_OUT" "email new@partner.example"
expect_stderr "new@partner.example is not a participant of bank-insurer-overlap yet"
# over the unix socket there is no key to put in it
expect_fail rem anna dcr --socket "$T/sock" room invite "$id" ian@insurer.example -o "$T/y.inv"
expect_stderr "--server HOST:PORT"
# ian on a new machine: join, then everything by name, without --server
J() { DCR_IDENTITY="$T/ian.pem" DCR_CONFIG_DIR="$T/cfg-ian2" "$@"; }
expect_fail J dcr status bank-insurer-overlap
expect_stderr "dcr join an invitation"
expect_ok J dcr join "$T/ian.inv"
expect_contains "$E2E_OUT" "joined bank-insurer-overlap ($id) at $SERVER, key $FP"
expect_eq "$(cat "$T/cfg-ian2/known_servers")" "$SERVER $FP" "known_servers after join"
expect_eq "$(cat "$T/cfg-ian2/rooms")" "$id $SERVER bank-insurer-overlap" "rooms after join"
expect_ok J dcr status bank-insurer-overlap
expect_contains "$E2E_OUT" "you       ian@insurer.example: owner of insurer_customers"
[ ! -s "$E2E_ERR" ] || e2e_fail "a joined room's server is not silent: $(cat "$E2E_ERR")"
expect_ok J dcr audit log "$id"
expect_ok J dcr room list
expect_contains "$E2E_OUT" "bank-insurer-overlap"
sed 's/$/\r/' "$T/ian.inv" >"$T/crlf.inv" # CRLF line ends, as from a mail client
expect_ok J dcr join "$T/crlf.inv" # again: one line each
expect_eq "$(wc -l <"$T/cfg-ian2/rooms")" 1 "rooms lines after a second join"
expect_eq "$(wc -l <"$T/cfg-ian2/known_servers")" 1 "known_servers lines after a second join"
# a room not joined, by name: nothing to reach
expect_fail J dcr status some-other-room
# broken invitations: file and line
sed 's/^email /mail /' "$T/ian.inv" >"$T/bad1.inv"
expect_fail J dcr join "$T/bad1.inv"
expect_stderr "$T/bad1.inv line 7: unknown key \"mail\""
sed 's/^fingerprint sha256:\(.*\)..$/fingerprint sha256:\1/' "$T/ian.inv" >"$T/bad2.inv"
expect_fail J dcr join "$T/bad2.inv"
expect_stderr "$T/bad2.inv line 4" "fingerprint"
grep -v '^server ' "$T/ian.inv" >"$T/bad3.inv"
expect_fail J dcr join "$T/bad3.inv"
expect_stderr "$T/bad3.inv: no \"server\" line"
sed 's/^room .*/room 1234/' "$T/ian.inv" >"$T/bad4.inv"
expect_fail J dcr join "$T/bad4.inv"
expect_stderr "$T/bad4.inv line 5: room \"1234\" is not a room id"
expect_fail J dcr join "$T/missing.inv"
expect_stderr "$T/missing.inv"
# an invitation naming another key for a known server: refused
sed "s/^fingerprint .*/fingerprint $BAD/" "$T/ian.inv" >"$T/other.inv"
expect_fail J dcr join "$T/other.inv"
expect_stderr "THE KEY OF SERVER $SERVER HAS CHANGED" "the invitation names another key"
expect_eq "$(cat "$T/cfg-ian2/known_servers")" "$SERVER $FP" "known_servers after a refused join"
# ... and to an unknown server with a key it does not have: refused, nothing recorded
expect_fail env DCR_IDENTITY="$T/eve.pem" DCR_CONFIG_DIR="$T/cfg-new" dcr join "$T/other.inv"
expect_stderr "not the pinned $BAD"
[ ! -s "$T/cfg-new/known_servers" ] || e2e_fail "a refused join recorded its key"
[ ! -s "$T/cfg-new/rooms" ] || e2e_fail "a refused join recorded the room"

# ---- a broken known_servers line: refused with its file and line
cp "$T/cfg-anna/known_servers" "$T/known.good"
echo "$SERVER" >>"$T/cfg-anna/known_servers"
expect_fail A room list
expect_stderr "$T/cfg-anna/known_servers line 2: expected \"HOST:PORT sha256:HEX\""
echo "$SERVER sha256:zz" >"$T/cfg-anna/known_servers"
expect_fail A room list
expect_stderr "$T/cfg-anna/known_servers line 1"
cp "$T/known.good" "$T/cfg-anna/known_servers"
expect_ok A room list

# ---- a changed server key: dcrd restarted with a new TLS key
# (a comment and a blank line in known_servers: kept when a line changes)
{ echo "# servers anna checked with their operators"; echo; cat "$T/known.good"; } \
	>"$T/cfg-anna/known_servers"
n_before=$(A room show "$id" --status) || e2e_fail "status before the key change"
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"
mv "$T/data/tls" "$T/tls.old"
OLD_FP=$FP
remote_start_daemon
[ "$FP" != "$OLD_FP" ] || e2e_fail "the new TLS key has the old fingerprint"
expect_fail A room stop "$id" --reason "sent through the new key"
expect_stderr "THE KEY OF SERVER $SERVER HAS CHANGED" \
	"$T/cfg-anna/known_servers line 3 remembers the key $OLD_FP" \
	"the server now presents the key $FP" "Nothing was sent" \
	"remove line 3 of $T/cfg-anna/known_servers" "--pin $FP"
# the joined room too, without --server
expect_fail J dcr status bank-insurer-overlap
expect_stderr "HAS CHANGED"
# dcrd still serves a good client, and the room was not stopped
expect_ok I --pin "$FP" room show "$id" --status
expect_eq "$(cat "$E2E_OUT")" "$n_before" "room status after the refused stop"
expect_contains "$T/cfg-ian/known_servers" "$SERVER $FP"
# --pin overrides the remembered key and records the new one
expect_ok A --pin "$FP" room list
expect_stderr "known_servers line 3: the key of $SERVER is now the pinned $FP (was $OLD_FP)"
printf '# servers anna checked with their operators\n\n%s\n' "$SERVER $FP" >"$T/known.want"
cmp -s "$T/known.want" "$T/cfg-anna/known_servers" ||
	e2e_fail "known_servers after --pin: $(cat "$T/cfg-anna/known_servers")"
expect_ok A room list
[ ! -s "$E2E_ERR" ] || e2e_fail "not silent after --pin recorded the key: $(cat "$E2E_ERR")"

# ---- IPv6: [ADDR]:PORT, a known_servers line of its own
if grep -q '^00000000000000000000000000000001 ' /proc/net/if_inet6 2>/dev/null; then
	e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"
	remote_start_daemon --listen "[::1]:0"
	P6=$(sed -n 's/^dcrd: listening on tls:\[::1\]:\([0-9][0-9]*\) .*/\1/p' "$T/dcrd.log" | tail -n 1)
	[ -n "$P6" ] || e2e_fail "dcrd printed no [::1] listening line"
	expect_ok rem anna dcr --server "[::1]:$P6" room list
	expect_stderr "first connection to [::1]:$P6: its key fingerprint is $FP"
	expect_contains "$E2E_OUT" "bank-insurer-overlap"
	grep -q -x -F "[::1]:$P6 $FP" "$T/cfg-anna/known_servers" ||
		e2e_fail "no [::1] line in known_servers: $(cat "$T/cfg-anna/known_servers")"
else
	e2e_log "no ::1 here: IPv6 not checked"
fi

# ---- first contacts at the same moment: every one keeps its line
# (known_servers is edited under a lock): eight servers by name, one dcrd
# listening on 127.0.0.2-9, eight clients of one configuration directory
e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly"
set --
pids=
for k in 2 3 4 5 6 7 8 9; do set -- "$@" --listen "127.0.0.$k:0"; done
remote_start_daemon "$@"
for k in 2 3 4 5 6 7 8 9; do
	pk=$(sed -n "s/^dcrd: listening on tls:127\.0\.0\.$k:\([0-9][0-9]*\) .*/\1/p" "$T/dcrd.log" |
		tail -n 1)
	[ -n "$pk" ] || e2e_fail "dcrd printed no 127.0.0.$k listening line"
	DCR_IDENTITY="$T/eve.pem" DCR_CONFIG_DIR="$T/cfg-zoe" dcr --server "127.0.0.$k:$pk" room list >"$T/zoe.$k.out" 2>&1 &
	pids="$pids $!"
done
# shellcheck disable=SC2086 # (the list of pids)
wait $pids
expect_eq "$(grep -c "^127\.0\.0\.[2-9]:[0-9]* $FP\$" "$T/cfg-zoe/known_servers")" 8 \
	"known_servers lines after 8 first contacts at once"

e2e_stop_daemon || e2e_fail "dcrd did not stop cleanly (status $?)"
e2e_log "ok"
