#!/bin/bash
# The Debian package, end to end on this machine: cpack builds it from the build tree, dpkg
# installs it, the files, conffiles, user and units are checked (systemd-analyze verify on the
# installed units, each daemon's -t on its shipped configuration), nothing was enabled or started,
# and `dpkg --purge` leaves nothing behind.
#   deb_install_test.sh BUILD_DIR
# Installs into the real system (as root): a chroot or `dpkg --root` would need every runtime
# dependency installed there too. Skips (77) when not root or when a tether package that this
# test did not install is present. The machine is left as found: the `tether` user, which the
# package keeps on purge as Debian policy asks, is removed again if this test created it.
set -uo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: installing a .deb into the system needs root"
    exit 77
fi
# dpkg's state of a package it knows: "not-installed" is the one that leaves nothing behind.
dpkg_knows_tether() {
    dpkg-query -W -f='${Status}\n' tether 2>/dev/null | grep -qv ' not-installed$'
}
if dpkg_knows_tether; then
    echo "SKIP: a tether package is already installed on this machine; not touching it"
    exit 77
fi
for binary in tether-proxy solverd solverd-worker tether-agent tether-run; do
    if [ ! -x "$build/bin/$binary" ]; then
        echo "SKIP: $build/bin/$binary is not built, so the package would be incomplete"
        exit 77
    fi
done

failures=0
check() {  # check "what" command...
    local what=$1
    shift
    if "$@"; then echo "ok: $what"; else echo "FAILED: $what"; failures=$((failures + 1)); fi
}
tether_user_before=0
getent passwd tether >/dev/null && tether_user_before=1

work=$(mktemp -d /tmp/tether-deb.XXXXXX)
cleanup() {
    if dpkg_knows_tether; then
        dpkg --purge tether >/dev/null 2>&1
    fi
    if [ "$tether_user_before" = 0 ] && getent passwd tether >/dev/null; then
        deluser --system --quiet tether >/dev/null 2>&1
        delgroup --system --quiet tether >/dev/null 2>&1
    fi
    rm -rf "$work"
}
trap cleanup EXIT

started_ns=$(date +%s%N)
if ! (cd "$work" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work" >"$work/cpack.log" 2>&1); then
    cat "$work/cpack.log"
    echo "FAILED: cpack -G DEB"
    exit 1
fi
deb=$(ls "$work"/tether_*.deb)
echo "built $(basename "$deb") in $(( ($(date +%s%N) - started_ns) / 1000000 )) ms"
dpkg-deb --field "$deb" Package Version Architecture Depends

# Debian's standard: lintian finds no error and no warning (an override lives in
# packaging/debian/lintian-overrides, each with a comment that says why).
if command -v lintian >/dev/null 2>&1; then
    lintian_out=$(lintian --fail-on error,warning --display-level '>=warning' "$deb" 2>&1)
    lintian_rc=$?
    [ -n "$lintian_out" ] && echo "$lintian_out"
    check "lintian reports no error or warning" test "$lintian_rc" -eq 0
else
    echo "FAILED: lintian is not installed (scripts/setup-deps installs it)"
    failures=$((failures + 1))
fi

# Nothing may be started by the installation: remember which of our binaries run now.
running_installed() {
    local pid exe
    for pid in /proc/[0-9]*; do
        exe=$(readlink "$pid/exe" 2>/dev/null) || continue
        case "$exe" in
            /usr/bin/solverd|/usr/bin/tether-proxy|/usr/bin/tether-agent|/usr/lib/tether/solverd-worker)
                echo "${pid#/proc/} $exe" ;;
        esac
    done
}

if ! DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" >"$work/dpkg-i.log" 2>&1; then
    cat "$work/dpkg-i.log"
    echo "FAILED: dpkg -i"
    exit 1
fi
echo "installed with dpkg -i"

for f in /usr/bin/tether-proxy /usr/bin/solverd /usr/bin/tether-agent /usr/bin/tether-run \
         /usr/lib/tether/solverd-worker; do
    check "$f is an executable" test -x "$f"
done
units="solverd.service solverd.socket tether-proxy.service tether-proxy.socket tether-agent.service tether-agent.socket"
for u in $units; do
    check "/lib/systemd/system/$u installed" test -f "/lib/systemd/system/$u"
done
conffiles=$(dpkg-query -W -f='${Conffiles}\n' tether)
for c in proxy.conf solverd.conf agent.conf; do
    check "/etc/tether/$c installed" test -f "/etc/tether/$c"
    check "/etc/tether/$c is a conffile" grep -q "/etc/tether/$c" <<<"$conffiles"
done
check "system user tether exists" bash -c 'getent passwd tether >/dev/null'
check "system group tether exists" bash -c 'getent group tether >/dev/null'
check "the user tether is a system user without a login shell" \
    test "$(getent passwd tether | cut -d: -f7)" = /usr/sbin/nologin
check "/etc/tether is root:tether 0750" test "$(stat -c %U:%G:%a /etc/tether)" = root:tether:750
check "/usr/share/doc/tether/operator-guide.md installed" test -f /usr/share/doc/tether/operator-guide.md
check "/usr/share/doc/tether/directives.md installed" test -s /usr/share/doc/tether/directives.md
enabled=$(find /etc/systemd/system -name 'solverd*' -o -name 'tether-*' 2>/dev/null)
check "no unit was enabled by the installation${enabled:+: $enabled}" test -z "$enabled"
now_running=$(running_installed)
check "no daemon was started by the installation${now_running:+: $now_running}" test -z "$now_running"
check "the installed units pass systemd-analyze verify" "$here/verify_units.sh" /lib/systemd/system
check "tether-proxy -t passes on the shipped /etc/tether/proxy.conf" \
    /usr/bin/tether-proxy -t -c /etc/tether/proxy.conf
check "solverd -t passes on the shipped /etc/tether/solverd.conf" \
    /usr/bin/solverd -t -c /etc/tether/solverd.conf
check "tether-agent -t passes on the shipped /etc/tether/agent.conf" \
    /usr/bin/tether-agent -t -c /etc/tether/agent.conf
check "tether-proxy -V runs from /usr/bin" /usr/bin/tether-proxy -V
# man(1) finds every page where the package put it (man-db's own search path, not -l).
for page in tether-proxy:8 solverd:8 tether-agent:8 tether-run:1 tether.conf:5; do
    name=${page%:*} section=${page#*:}
    check "man $section $name finds /usr/share/man/man$section/$name.$section.gz" \
        test "$(man -w "$section" "$name" 2>/dev/null)" = "/usr/share/man/man$section/$name.$section.gz"
done
check "man tether-proxy renders" bash -c 'MANWIDTH=80 man tether-proxy 2>/dev/null | grep -Eq "tether-proxy +- +reverse +proxy"'
check "/usr/share/doc/tether/copyright installed" test -s /usr/share/doc/tether/copyright

files=$(dpkg -L tether | grep -v '^/\.$')
if ! DEBIAN_FRONTEND=noninteractive dpkg --purge tether >"$work/dpkg-purge.log" 2>&1; then
    cat "$work/dpkg-purge.log"
    echo "FAILED: dpkg --purge"
    exit 1
fi
echo "purged with dpkg --purge"
check "dpkg no longer knows the package" bash -c '! dpkg-query -W -f="\${Status}\n" tether 2>/dev/null | grep -qv " not-installed$"'
left=""
for f in $files; do
    # Directories shared with other packages (/usr/bin, /lib/systemd/system, ...) stay, ours go.
    if [ -e "$f" ] && { [ ! -d "$f" ] || case "$f" in */tether) true ;; *) false ;; esac; }; then
        left="$left $f"
    fi
done
check "no file of the package is left${left:+:$left}" test -z "$left"
check "/etc/tether is gone" test ! -e /etc/tether
check "/run/tether is gone" test ! -e /run/tether
now_running=$(running_installed)
check "no daemon of the package runs${now_running:+: $now_running}" test -z "$now_running"

echo "$failures failed"
[ "$failures" -eq 0 ]
