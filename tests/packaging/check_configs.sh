#!/bin/sh
# The default configurations that the package ships in /etc/tether pass each daemon's `-t`.
#   check_configs.sh PACKAGING_ETC_DIR BIN_DIR
# The shipped files name the group `tether`, which the package creates. On a machine without
# it (a build machine), the files are tested with that one word replaced by root's group, so
# that everything else in them is still checked; the deb test checks the files as shipped.
set -u
etc=$1
bin=$2
work=$(mktemp -d /tmp/tether-conf.XXXXXX)
trap 'rm -rf "$work"' EXIT
if ! getent group tether >/dev/null; then
    echo "no group tether on this machine: testing with \"group tether\" read as \"group root\""
    for f in "$etc"/*.conf; do
        sed 's/\bgroup tether;/group root;/g' "$f" > "$work/$(basename "$f")"
    done
    etc=$work
fi
tested=0
failed=0
for pair in tether-proxy:proxy.conf solverd:solverd.conf tether-agent:agent.conf; do
    daemon=${pair%%:*}
    conf=${pair#*:}
    if [ ! -x "$bin/$daemon" ]; then
        echo "not built, not tested: $daemon"
        continue
    fi
    tested=$((tested + 1))
    if "$bin/$daemon" -t -c "$etc/$conf"; then
        echo "ok: $daemon -t -c $etc/$conf"
    else
        echo "FAILED: $daemon -t -c $etc/$conf"
        failed=$((failed + 1))
    fi
done
if [ "$tested" -eq 0 ]; then
    echo "SKIP: none of tether-proxy, solverd, tether-agent is built in $bin"
    exit 77
fi
[ "$failed" -eq 0 ]
