#!/bin/sh
# Every manual page the package ships renders with man(1) without a warning from groff, and
# tether.conf(5) lists every directive of the three daemons' tables.
#   check_man_pages.sh MAN_DIR BIN_DIR
set -u
man_dir=$1
bin=$2
if ! command -v man >/dev/null 2>&1; then
    echo "SKIP: man is not installed (scripts/setup-deps installs man-db)"
    exit 77
fi
failures=0
for page in tether-proxy.8 solverd.8 tether-agent.8 tether-run.1 tether.conf.5; do
    if [ ! -f "$man_dir/$page" ]; then
        echo "FAILED: $man_dir/$page was not built (the man-pages target)"
        failures=$((failures + 1))
        continue
    fi
    # --warnings makes groff report what lintian's manpage-has-errors-from-man reports.
    out=$(MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -E UTF-8 -l "$man_dir/$page" 2>&1 >/dev/null)
    rendered=$(MANWIDTH=80 LC_ALL=C.UTF-8 man -E UTF-8 -l "$man_dir/$page" 2>/dev/null | wc -l)
    if [ -n "$out" ] || [ "$rendered" -lt 20 ]; then
        echo "FAILED: man -l $page ($rendered lines):"
        echo "$out"
        failures=$((failures + 1))
    else
        echo "ok: man -l $page renders $rendered lines without a warning"
    fi
done
# The directive list of tether.conf(5) is the daemons' own: every name their -h lists is there.
text=$(MANWIDTH=200 LC_ALL=C.UTF-8 man -E UTF-8 -l "$man_dir/tether.conf.5" 2>/dev/null)
for daemon in tether-proxy solverd tether-agent; do
    if [ ! -x "$bin/$daemon" ]; then
        echo "FAILED: $daemon is not built"
        failures=$((failures + 1))
        continue
    fi
    # Rendered: a .SH heading at column 0, a .SS (one per daemon) at 3 spaces, a .TP tag at 7.
    section=$(printf '%s\n' "$text" | awk -v d="$daemon" '
        /^[^ ]/ { on = 0; next }
        /^   [^ ]/ { on = ($1 == d); next }
        on')
    missing=""
    for name in $("$bin/$daemon" -h | sed -n '/^Directives:/,$p' | awk 'NR > 1 { print $1 }' | sort -u); do
        printf '%s\n' "$section" | grep -Eq "^ {7}$name( |;|$)" || missing="$missing $name"
    done
    if [ -n "$missing" ]; then
        echo "FAILED: tether.conf(5) lacks $daemon's:$missing"
        failures=$((failures + 1))
    else
        echo "ok: tether.conf(5) has every directive of $daemon"
    fi
done
echo "$failures failed"
[ "$failures" -eq 0 ]
