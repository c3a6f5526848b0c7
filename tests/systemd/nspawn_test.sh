#!/bin/bash
# tether under a real systemd as PID 1: boots this machine's own Debian in a systemd-nspawn
# container, installs the built .deb there and runs tests/systemd/scenarios.py inside it (socket
# activation, a cancelled solve in solverd's delegated subtree, reload, restart, stop order, the
# journal's REQUEST_ID= field, systemd-analyze security).
#   nspawn_test.sh BUILD_DIR
# The container's root is a directory made here: a copy of /etc (with /etc/os-release a real file,
# which nspawn -b needs), /usr overlaid on the host's (the .deb writes to the overlay's upper
# directory, never to the host), /var with a copy of /var/lib/dpkg, and empty /tmp and /run.
# SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 gives it a pure cgroup v2 hierarchy on a hybrid host. The
# host needs no systemd of its own (--register=no --keep-unit: no machined, no scope); nspawn
# runs in a cgroup of this script's, which is how every exit path finds and ends what it started.
# --private-network: the container's ports (tether-proxy.socket's 8080, the admin ports) are its
# own and cannot collide with anything on the host. Skips (77) where the machine cannot do this.
set -uo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
started=$(date +%s%N)
elapsed_ms() { echo $(( ($(date +%s%N) - started) / 1000000 )); }

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "booting a container with systemd-nspawn needs root"
command -v systemd-nspawn >/dev/null || skip "systemd-nspawn is missing (Debian package systemd-container, scripts/setup-deps)"
command -v nsenter >/dev/null || skip "nsenter is missing (util-linux)"
[ -x /lib/systemd/systemd ] || skip "no /lib/systemd/systemd to boot"
for binary in tether-proxy solverd solverd-worker tether-agent tether-run; do
    [ -x "$build/bin/$binary" ] || skip "$build/bin/$binary is not built, so the package would be incomplete"
done
# The cgroup v2 mount: /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one.
cgroot=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$cgroot" ] || skip "no cgroup v2 hierarchy is mounted"
[ -w "$cgroot/cgroup.procs" ] || skip "the cgroup v2 hierarchy at $cgroot is not writable"

# A run that was killed outright (SIGKILL from ctest's timeout reaches no trap) left its cgroup
# and root behind: each names the pid of its script, and those whose script is gone are ended
# and removed here.
for stale in "$cgroot"/tether-nspawn-*; do
    [ -d "$stale" ] || continue
    kill -0 "${stale##*-}" 2>/dev/null && continue
    echo 1 >"$stale/cgroup.kill" 2>/dev/null
    for _ in $(seq 50); do grep -q 'populated 0' "$stale/cgroup.events" 2>/dev/null && break; sleep 0.1; done
    find "$stale" -depth -type d -exec rmdir {} + 2>/dev/null
done
for stale in /tmp/tether-nspawn.*; do
    [ -f "$stale/pid" ] || continue
    kill -0 "$(cat "$stale/pid")" 2>/dev/null || rm -rf "$stale"
done

work=$(mktemp -d /tmp/tether-nspawn.XXXXXX)
echo $$ >"$work/pid"
machine="tether-nspawn-$$"
cg="$cgroot/$machine"
nspawn_pid=""

# Every exit path (success, failure, a signal from ctest's timeout) comes here: power the
# container off (nspawn turns SIGTERM into a clean shutdown of its systemd), then kill whatever
# is left in our cgroup, remove the cgroup tree and the root directory.
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        kill -TERM "$nspawn_pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
    fi
    if [ -d "$cg" ]; then
        echo 1 >"$cg/cgroup.kill" 2>/dev/null
        for _ in $(seq 50); do grep -q 'populated 0' "$cg/cgroup.events" 2>/dev/null && break; sleep 0.1; done
        find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
        [ -d "$cg" ] && echo "WARNING: cgroup $cg could not be removed"
    fi
    rm -rf "/run/systemd/nspawn/propagate/$machine" 2>/dev/null
    rmdir /run/systemd/nspawn/propagate /run/systemd/nspawn/locks /run/systemd/nspawn 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The package, exactly as packaging/ builds it (TETHER_NSPAWN_DEB names one built already).
if [ -n "${TETHER_NSPAWN_DEB:-}" ]; then
    deb=$TETHER_NSPAWN_DEB
elif (cd "$work" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/deb" >"$work/cpack.log" 2>&1); then
    deb=$(ls "$work"/deb/tether_*.deb)
else
    cat "$work/cpack.log"
    echo "FAILED: cpack -G DEB"
    exit 1
fi
echo "package $(basename "$deb") ($(elapsed_ms) ms)"

root="$work/root"
mkdir -p "$root" "$work/usr-upper"
cp -a /etc "$root/etc"
rm -f "$root/etc/os-release"
cp /usr/lib/os-release "$root/etc/os-release"
# A machine id of its own: nspawn refuses a container whose id is the host's.
rm -f "$root/etc/machine-id"
systemd-id128 new >"$root/etc/machine-id"
mkdir -p "$root/usr" "$root/var/lib" "$root/tmp" "$root/run" "$root/proc" "$root/sys" "$root/dev"
cp -a /var/lib/dpkg "$root/var/lib/dpkg"
for link in bin sbin lib lib32 lib64 libx32; do
    [ -L "/$link" ] && ln -s "$(readlink "/$link")" "$root/$link"
done
mkdir -p "$root/var/lib/tether-test"
cp "$deb" "$root/var/lib/tether-test/tether.deb"
cp "$here/scenarios.py" "$root/var/lib/tether-test/"
cp "$here/../solverd/models/market_split_hard.lp" "$here/../solverd/models/knapsack.lp" "$root/var/lib/tether-test/"

# A sanitizer build (CI builds with -DTETHER_SANITIZE=ON): LeakSanitizer's check at exit stops
# the world with ptrace, which the units' SystemCallFilter=@system-service rightly refuses, and
# the daemon then spins at exit; and ASan's start-up setrlimit(RLIMIT_CORE) is in @resources,
# which tether-proxy.service and solverd.service filter out. The container's manager turns both
# off for every unit (the units stay as shipped); the rest of the suite checks leaks.
if grep -q __asan_init "$build/bin/solverd"; then
    mkdir -p "$root/etc/systemd/system.conf.d"
    printf '[Manager]\nDefaultEnvironment=ASAN_OPTIONS=detect_leaks=0:disable_coredump=0\n' \
        >"$root/etc/systemd/system.conf.d/tether-test-sanitizers.conf"
fi

mkdir "$cg" || { echo "FAILED: cannot create cgroup $cg"; exit 1; }
# basic.target: sockets, journald and D-Bus, without the services this host enables for itself
# (their units are in the copied /etc); ours are started by hand below, as an operator would.
(
    echo "$BASHPID" >"$cg/cgroup.procs"
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 exec systemd-nspawn --quiet --directory="$root" \
        --overlay="/usr:$work/usr-upper:/usr" --machine="$machine" --register=no --keep-unit \
        --link-journal=no --private-network --console=passive --boot systemd.unit=basic.target
) >"$work/console.log" 2>&1 &
nspawn_pid=$!

# The container's PID 1 is the process in payload/init.scope once nspawn has set it up.
init_pid=""
for _ in $(seq 300); do
    kill -0 "$nspawn_pid" 2>/dev/null || break
    init_pid=$(head -n1 "$cg/payload/init.scope/cgroup.procs" 2>/dev/null)
    [ -n "$init_pid" ] && break
    sleep 0.1
done
if [ -z "$init_pid" ]; then
    cat "$work/console.log"
    skip "systemd-nspawn could not boot a container on this machine (console above)"
fi
inside() { nsenter --target "$init_pid" --all "$@"; }
# systemctl talks to PID 1 over /run/systemd/private, which exists a moment after PID 1 starts.
for _ in $(seq 300); do
    [ -S "/proc/$init_pid/root/run/systemd/private" ] && break
    kill -0 "$init_pid" 2>/dev/null || break
    sleep 0.05
done
state=$(inside systemctl is-system-running --wait 2>&1)
echo "container booted to basic.target: $state ($(elapsed_ms) ms)"
case "$state" in
    running|degraded) ;;
    *) cat "$work/console.log"; echo "FAILED: the container's systemd is $state"; exit 1 ;;
esac

# In the background and waited for: bash runs the INT/TERM trap (ctest's timeout) only between
# commands, and `wait` is one it interrupts.
inside /usr/bin/python3 /var/lib/tether-test/scenarios.py &
wait $!
rc=$?
echo "scenarios exited $rc ($(elapsed_ms) ms)"
exit $rc
