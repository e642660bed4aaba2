#!/bin/sh
# tests/package/test.sh: the Debian packages on a bare bookworm, used the
# way an operator and a participant would (docs/operations.md).
#
#  1. builds dist/dcr_*.deb and dist/dcrd_*.deb (tools/package; skipped with
#     --no-build when they are there);
#  2. makes a throwaway bookworm (debootstrap --variant=minbase, with systemd)
#     and boots it with systemd-nspawn, so that systemd is PID 1 in it;
#  3. in it: apt-get install ./dcr_*.deb ./dcrd_*.deb (with the Recommends,
#     as apt does by default), man dcr / dcrd / dcr-room.json,
#     systemctl start dcrd, checks the unit (systemd-analyze verify), the
#     user, the directories and the socket's group, that a user outside the
#     group dcr cannot connect, the README's story (tools/demo --socket)
#     as a member of the group against the service, systemctl reload (a
#     good and a bad configuration), restart, and apt-get purge.
#
# Not part of tools/test (it downloads a few hundred MB the first time and
# takes minutes): run it by hand, as root, on bookworm. Downloaded packages
# are kept in /var/cache/dcr-pkgtest between runs. Everything else lives in
# a temporary directory under /var/tmp and is removed at the end, the
# container stopped, even on failure (--keep keeps the directory).
# Usage: tests/package/test.sh [--no-build] [--keep]
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=1
keep=0
for a in "$@"; do
	case "$a" in
	--no-build) build=0 ;;
	--keep) keep=1 ;;
	-h|--help) sed -n '2,23p' "$0"; exit 0 ;;
	*) echo "test.sh: unknown argument $a" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" -eq 0 ] || { echo "test.sh: run as root" >&2; exit 2; }
mirror=${DCR_PKG_MIRROR:-http://deb.debian.org/debian}
started=$(date +%s)
step() { printf '== %s (%ss)\n' "$*" "$(($(date +%s) - started))"; }
fail() { printf 'test.sh: FAIL: %s\n' "$*" >&2; exit 1; }

T=""
NSPAWN=""
cleanup() {
	rc=$?
	trap - EXIT INT TERM
	if [ -n "$NSPAWN" ] && kill -0 "$NSPAWN" 2>/dev/null; then
		# SIGTERM to systemd-nspawn shuts the container's systemd down
		kill -TERM "$NSPAWN" 2>/dev/null || true
		i=0
		while kill -0 "$NSPAWN" 2>/dev/null && [ $i -lt 300 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL "$NSPAWN" 2>/dev/null || true
		wait "$NSPAWN" 2>/dev/null || true
	fi
	if [ -n "$T" ]; then
		awk -v t="$T/" 'index($2, t) == 1 { print $2 }' /proc/mounts | sort -r |
			while read -r m; do umount -l "$m" 2>/dev/null || true; done
		if [ "$keep" = 1 ]; then echo "test.sh: kept $T"; else rm -rf "$T"; fi
	fi
	printf 'test.sh: %s after %ss\n' "$([ $rc -eq 0 ] && echo passed || echo FAILED)" \
		"$(($(date +%s) - started))"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. the packages
if [ "$build" = 1 ] || ! ls "$root"/dist/dcr_*.deb "$root"/dist/dcrd_*.deb >/dev/null 2>&1; then
	step "tools/package"
	"$root/tools/package" >/dev/null
fi
DCR_DEB=$(ls "$root"/dist/dcr_*.deb | tail -n 1)
DCRD_DEB=$(ls "$root"/dist/dcrd_*.deb | tail -n 1)

missing=""
for p in debootstrap systemd-container systemd; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	step "installing$missing"
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# ---- 2. a bare bookworm with systemd, booted
T=$(mktemp -d /var/tmp/dcr-pkgtest-XXXXXX)
R="$T/root"
step "debootstrap bookworm from $mirror"
cache=/var/cache/dcr-pkgtest
mkdir -p "$cache/archives/partial"
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,ca-certificates \
	--cache-dir="$cache/archives" bookworm "$R" "$mirror" >"$T/debootstrap.log" 2>&1 ||
	{ tail -n 20 "$T/debootstrap.log" >&2; fail "debootstrap"; }
cat >"$R/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
echo dcr-pkgtest >"$R/etc/hostname"
mkdir -p "$R/srv/debs"
cp "$DCR_DEB" "$DCRD_DEB" "$R/srv/debs/"
cp "$root/tools/demo" "$R/srv/demo"

step "booting it (systemd-nspawn -b)"
# /proc/sys writable as on a host (bwrap --disable-userns writes
# /proc/sys/user/max_user_namespaces in its own user namespace); the
# container's apt downloads into the cache kept between runs.
SYSTEMD_NSPAWN_API_VFS_WRITABLE=1 systemd-nspawn --register=no --keep-unit --quiet \
	-D "$R" -b --console=passive --bind="$cache/archives:/var/cache/apt/archives" \
	>"$T/nspawn.log" 2>&1 </dev/null &
NSPAWN=$!
LEADER=""
i=0
while [ -z "$LEADER" ]; do
	kill -0 "$NSPAWN" 2>/dev/null || { cat "$T/nspawn.log" >&2; fail "systemd-nspawn exited"; }
	[ $i -lt 600 ] || fail "no systemd in the container after 60 s"
	for p in $(pgrep -P "$NSPAWN" 2>/dev/null); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd ] && LEADER=$p
	done
	sleep 0.1
	i=$((i + 1))
done
ct() { nsenter -t "$LEADER" -a "$@"; }
# until systemd has booted (before its bus is up systemctl cannot ask)
i=0
while :; do
	state=$(ct systemctl is-system-running 2>&1 || true)
	case "$state" in
	running|degraded) break ;;
	esac
	[ $i -lt 1200 ] || fail "systemd in the container did not come up in 120 s: $state"
	sleep 0.1
	i=$((i + 1))
done
echo "  systemd in the container: $state"
# what udev does on a host: /dev/fuse for everyone (fusermount3 is setuid)
ct sh -c 'rm -f /dev/fuse && mknod -m 0666 /dev/fuse c 10 229'

# ---- 3. install, as a user of the packages would
step "apt-get install ./$(basename "$DCR_DEB") ./$(basename "$DCRD_DEB") (and man-db)"
ct sh -c 'cd /srv/debs && export DEBIAN_FRONTEND=noninteractive &&
	apt-get update -qq && apt-get install -y -qq man-db ./dcr_*.deb ./dcrd_*.deb' \
	>"$T/apt.log" 2>&1 || { tail -n 30 "$T/apt.log" >&2; fail "apt-get install"; }
grep -E "^(Setting up|Unpacking) (dcr|dcrd|bubblewrap|fuse3|python3-pandas|r-base-core) " \
	"$T/apt.log" | sed 's/^/  /' | sort -u

step "man pages"
for page in "1 dcr" "8 dcrd" "5 dcr-room.json"; do
	# shellcheck disable=SC2086
	ct env MANWIDTH=80 man $page >"$T/man.txt" 2>"$T/man.err" || {
		cat "$T/man.err" >&2
		fail "man $page"
	}
	printf '  man %s: %s lines, %s\n' "$page" "$(wc -l <"$T/man.txt")" \
		"$(sed -n '1p' "$T/man.txt" | tr -s ' ')"
done
ct env MANWIDTH=80 man 8 dcrd | grep -q -e "--config FILE" || fail "dcrd(8) lacks --config"
ct env MANWIDTH=80 man 1 dcr | grep -q "room create FILE.json" || fail "dcr(1) lacks room create"
ct man 8 dcrd-no-such-page >/dev/null 2>&1 && fail "man found a page that does not exist"

step "the unit"
ct systemd-analyze verify /lib/systemd/system/dcrd.service ||
	fail "systemd-analyze verify dcrd.service"
ct systemctl start dcrd || { ct journalctl -u dcrd --no-pager | tail -n 20; fail "systemctl start dcrd"; }
i=0
until ct test -S /run/dcr/dcr.sock; do
	[ $i -lt 300 ] || { ct journalctl -u dcrd --no-pager | tail -n 20; fail "no /run/dcr/dcr.sock"; }
	sleep 0.1
	i=$((i + 1))
done
ct systemctl is-active dcrd >/dev/null || fail "dcrd not active"
ct systemctl is-enabled dcrd >/dev/null || fail "dcrd not enabled"
main=$(ct systemctl show -p MainPID --value dcrd)
ct ps -o user=,group=,args= -p "$main" | sed 's/^/  process: /'
[ "$(ct ps -o user= -p "$main")" = dcr ] || fail "dcrd does not run as user dcr"
ct stat -c '  %A %U:%G %n' /run/dcr /run/dcr/dcr.sock /var/lib/dcr /etc/dcr/dcrd.conf
[ "$(ct stat -c %U:%G:%a /run/dcr/dcr.sock)" = dcr:dcr:660 ] || fail "socket owner or mode"
[ "$(ct stat -c %U:%a /var/lib/dcr)" = dcr:700 ] || fail "/var/lib/dcr owner or mode"
ct grep -q NoNewPrivs:.*1 "/proc/$main/status" || fail "dcrd without NoNewPrivileges"
ct systemd-analyze security dcrd --no-pager 2>/dev/null | tail -n 1 | sed 's/^/  /' || true

step "participants: tester in group dcr, outsider not"
ct useradd -m -G dcr tester
ct useradd -m outsider
ct runuser -u outsider -- sh -c 'cd && dcr keygen --email o@x.example >/dev/null &&
	DCR_SOCKET=/run/dcr/dcr.sock dcr room list' >"$T/outsider.out" 2>&1 &&
	fail "a user outside the group dcr reached dcrd"
grep -q "Permission denied" "$T/outsider.out" || fail "outsider: $(cat "$T/outsider.out")"
echo "  outsider: $(tail -n 1 "$T/outsider.out")"

step "the README's story against the service (tools/demo --socket /run/dcr/dcr.sock, as tester)"
ct runuser -u tester -- sh -c 'cd /tmp && sh /srv/demo --keep --socket /run/dcr/dcr.sock' \
	>"$T/story.out" 2>&1 || { tail -n 30 "$T/story.out" >&2; fail "the story"; }
for want in "state: done" "Berlin,high,25,560.0" "Berlin,75" "medium    552.5" \
	"Permission denied" "valid: room"; do
	grep -q -F -e "$want" "$T/story.out" || fail "the story's output lacks \"$want\""
done
grep -E "^valid: room|^Berlin,75|^cities|by_city.csv$" "$T/story.out" | sed 's/^/  /' | sort -u

step "an R development run in the sandbox of the service (Ian, the story's room)"
kept=$(sed -n 's/^(kept \(.*\))$/\1/p' "$T/story.out")
room=$(sed -n 's/^room id: //p' "$T/story.out")
[ -n "$kept" ] && [ -n "$room" ] || fail "no room id or kept directory in the story's output"
cat >"$R/srv/rows.R" <<'RSCRIPT'
d <- read.csv("/input/insurer/dataset.csv")
cat(nrow(d), "rows\n")
RSCRIPT
ct runuser -u tester -- sh -c "cd $kept && DCR_SOCKET=/run/dcr/dcr.sock DCR_IDENTITY=ian.pem \
	dcr dev run $room /srv/rows.R --input insurer --wait" \
	>"$T/r.out" 2>&1 || { cat "$T/r.out" >&2; fail "the R development run"; }
grep -q "(r): done" "$T/r.out" || fail "R run: $(cat "$T/r.out")"
sed 's/^/  /' "$T/r.out"

step "systemctl reload dcrd"
ct sed -i 's/^log-level = info$/log-level = debug/' /etc/dcr/dcrd.conf
ct systemctl reload dcrd || fail "systemctl reload dcrd"
i=0
until ct journalctl -u dcrd --no-pager | grep -q "reloaded: log-level debug"; do
	[ $i -lt 100 ] || fail "no \"reloaded: log-level debug\" in the journal"
	sleep 0.1
	i=$((i + 1))
done
ct sh -c 'echo "log-level = chatty" >>/etc/dcr/dcrd.conf'
ct systemctl reload dcrd || fail "systemctl reload dcrd (bad file)"
i=0
until ct journalctl -u dcrd --no-pager | grep -q "the settings stay as they were"; do
	[ $i -lt 100 ] || fail "a bad configuration was not reported on reload"
	sleep 0.1
	i=$((i + 1))
done
ct systemctl is-active dcrd >/dev/null || fail "dcrd died of a bad reload"
ct journalctl -u dcrd --no-pager -o cat | grep -E "reload" | sed 's/^/  journal: /'
ct sed -i '$d' /etc/dcr/dcrd.conf

step "systemctl restart dcrd: the rooms are still there"
ct systemctl restart dcrd || fail "systemctl restart dcrd"
i=0
until ct journalctl -u dcrd --no-pager -o cat | grep -q "replayed [1-9][0-9]* rooms"; do
	[ $i -lt 300 ] || fail "dcrd did not replay the story's room after a restart"
	sleep 0.1
	i=$((i + 1))
done
ct journalctl -u dcrd --no-pager -o cat | grep "replayed" | tail -n 1 | sed 's/^/  journal: /'

step "apt-get purge dcrd dcr"
ct sh -c 'DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq dcrd dcr' >"$T/purge.log" 2>&1 ||
	{ tail -n 20 "$T/purge.log" >&2; fail "apt-get purge"; }
ct systemctl is-active dcrd >/dev/null 2>&1 && fail "dcrd still running after purge"
ct test -e /var/lib/dcr && fail "/var/lib/dcr left after purge"
ct test -e /usr/sbin/dcrd && fail "/usr/sbin/dcrd left after purge"
echo "  removed: service stopped, /var/lib/dcr and /etc/dcr gone"
step "all package checks passed"
