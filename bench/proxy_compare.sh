#!/usr/bin/env bash
# tether-proxy against nginx (1 worker, keep-alive upstream) and HAProxy (1 thread), issue 11's
# judge: the same upstream (an nginx answering a small 200), wrk at 64 and at 1,000 connections,
# each cell run three times with the order of the proxies alternated (A/B), and the median of
# the three taken. Prints per proxy and cell: requests/s, p50, p99, CPU microseconds per request
# (utime + stime from /proc/PID/stat over the run, divided by wrk's request count), each with its
# ratio to nginx; then the resident memory per idle keep-alive client connection (IDLE_CONNS,
# default 5,000, each after one request); and the load average (`uptime`) before and after, since
# the figures mean little on a busy machine: run it with nothing else running.
#
#   bench/proxy_compare.sh                  # builds a Release tree without sanitizers in build-bench
#   DURATION=2s ROUNDS=1 CONNECTIONS="8" IDLE_CONNS=50 bench/proxy_compare.sh   # a smoke run
#   TETHER_PROXY=/path/to/tether-proxy bench/proxy_compare.sh
#   PROFILE=1 bench/proxy_compare.sh        # then perf: where each proxy's CPU goes at 1,000 connections
#
# Needs: wrk, nginx, haproxy, curl, python3 (scripts/setup-deps installs them). Ports 18180-18183.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
duration=${DURATION:-10s}
connections=${CONNECTIONS:-"64 1000"}
rounds=${ROUNDS:-3}
idle_conns=${IDLE_CONNS:-5000}
threads=${WRK_THREADS:-1}
# Idle upstream connections kept by nginx and tether-proxy alike (HAProxy's http-reuse keeps what
# it has): with fewer than the client connections, a 1,000-connection cell measures upstream
# connection churn (TIME_WAIT) rather than proxying.
keepalive=${UPSTREAM_KEEPALIVE:-1024}
build=${BUILD_DIR:-$root/build-bench}
proxy_bin=${TETHER_PROXY:-$build/bin/tether-proxy}
if [ -z "${TETHER_PROXY:-}" ]; then
  # Its own tree, Release and explicitly without sanitizers, whatever the developer's tree has.
  echo "building a Release tether-proxy (no sanitizers) in $build" >&2
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTETHER_SANITIZE=OFF -DTETHER_FUZZ=OFF \
    -DTETHER_BUILD_TESTS=OFF -DTETHER_BUILD_BENCH=OFF >/dev/null
  cmake --build "$build" --target tether-proxy >/dev/null
fi
for tool in wrk nginx haproxy curl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/setup-deps" >&2; exit 1; }
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((idle_conns * 2 + 1024)) ]; then
  idle_conns=$((($(ulimit -n) - 1024) / 2))
  echo "RLIMIT_NOFILE $(ulimit -n): measuring $idle_conns idle connections" >&2
fi
clk_tck=$(getconf CLK_TCK)
page_kb=$(($(getconf PAGESIZE) / 1024))

echo "load before: $(uptime)"
work=$(mktemp -d /tmp/tpcmp.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

up=18180 tp=18181 ng=18182 hp=18183
declare -A port=([tether]=$tp [nginx]=$ng [haproxy]=$hp) pid

mkdir -p "$work/up" "$work/ng"
# The upstream: nginx, one worker, a small body from memory.
bench_upstream_conf "$work/up" $up
nginx -p "$work/up" -c "$work/up/nginx.conf" -e stderr & pids+=($!)

# nginx as the reverse proxy: 1 worker (master_process off: the measured pid is the worker),
# keep-alive to the upstream (HTTP/1.1, Connection cleared).
bench_nginx_front_conf "$work/ng" $ng $up $keepalive
nginx -p "$work/ng" -c "$work/ng/nginx.conf" -e stderr & pid[nginx]=$!; pids+=(${pid[nginx]})

# HAProxy: 1 thread, connection reuse to the upstream.
cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn $(((($(ulimit -n)) - 64) / 2))
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 60s
  timeout http-keep-alive 300s
  http-reuse always
frontend f
  bind 127.0.0.1:$hp
  default_backend b
backend b
  server s1 127.0.0.1:$up maxconn 1000
CONF
haproxy -f "$work/haproxy.cfg" -db & pid[haproxy]=$!; pids+=(${pid[haproxy]})

# tether-proxy: the same shape, logs at warn, no access log.
cat > "$work/tether.conf" <<CONF
error_log stderr warn;
upstream app { server 127.0.0.1:$up; keepalive $keepalive; }
server { listen 127.0.0.1:$tp; access_log off; keepalive_timeout 300s; client_header_timeout 300s;
  location / { proxy_pass http://app; on_disconnect close; } }
CONF
"$proxy_bin" -c "$work/tether.conf" & pid[tether]=$!; pids+=(${pid[tether]})

bench_wait_http $up $tp $ng $hp

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# One wrk run against a proxy: "rps p50_ms p99_ms cpu_us_per_request".
measure() {
  local name=$1 conns=$2 before after
  before=$(cpu_ticks "${pid[$name]}")
  wrk -t"$threads" -c"$conns" -d"$duration" --latency "http://127.0.0.1:${port[$name]}/" > "$work/wrk.out" 2>&1 || true
  after=$(cpu_ticks "${pid[$name]}")
  awk -v ticks=$((after - before)) -v hz="$clk_tck" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    / requests in / { n = $1 }
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /Non-2xx|Socket errors/ { errs = errs " " $0 }
    END { printf "%s %s %s %s%s\n", rps, p50, p99, (n > 0 ? ticks * 1e6 / hz / n : 0), (errs == "" ? "" : " #" errs) }' "$work/wrk.out"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

names=(tether nginx haproxy)
printf '\n%-8s %6s %5s %10s %9s %9s %10s %9s %9s %9s %9s\n' proxy conns runs "req/s" "p50 ms" "p99 ms" "cpu us/req" \
  "rps/ng" "p50/ng" "p99/ng" "cpu/ng"
for conns in $connections; do
  declare -A all_rps all_p50 all_p99 all_cpu
  for name in "${names[@]}"; do all_rps[$name]="" all_p50[$name]="" all_p99[$name]="" all_cpu[$name]=""; done
  for round in $(seq 1 "$rounds"); do
    # A/B: the order flips every round, so that drift on the machine falls on every proxy alike.
    if [ $((round % 2)) -eq 1 ]; then order=("${names[@]}"); else order=(haproxy nginx tether); fi
    for name in "${order[@]}"; do
      read -r r a b c rest <<<"$(measure "$name" "$conns")"
      all_rps[$name]+=" $r" all_p50[$name]+=" $a" all_p99[$name]+=" $b" all_cpu[$name]+=" $c"
      echo "  round $round $name c=$conns: $r req/s, p50 $a ms, p99 $b ms, $c us/req${rest:+ $rest}" >&2
    done
  done
  declare -A m_rps m_p50 m_p99 m_cpu
  for name in "${names[@]}"; do
    # shellcheck disable=SC2086
    m_rps[$name]=$(median ${all_rps[$name]}) m_p50[$name]=$(median ${all_p50[$name]})
    # shellcheck disable=SC2086
    m_p99[$name]=$(median ${all_p99[$name]}) m_cpu[$name]=$(median ${all_cpu[$name]})
  done
  for name in "${names[@]}"; do
    awk -v t="$name" -v c="$conns" -v n="$rounds" -v r="${m_rps[$name]}" -v a="${m_p50[$name]}" -v b="${m_p99[$name]}" \
        -v u="${m_cpu[$name]}" -v nr="${m_rps[nginx]}" -v na="${m_p50[nginx]}" -v nb="${m_p99[nginx]}" -v nu="${m_cpu[nginx]}" \
        'function q(x, y) { return y > 0 ? x / y : 0 } BEGIN {
      printf "%-8s %6d %5d %10.0f %9.3f %9.3f %10.2f %9.2f %9.2f %9.2f %9.2f\n", t, c, n, r, a, b, u, q(r, nr), q(a, na), q(b, nb), q(u, nu) }'
  done
  unset all_rps all_p50 all_p99 all_cpu m_rps m_p50 m_p99 m_cpu
done

# Resident memory per idle keep-alive client connection: N clients each make one request and
# stay connected; (RSS with them - RSS before) / N, measured on each proxy in turn.
cat > "$work/idle.py" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
req = b"GET / HTTP/1.1\r\nHost: b\r\n\r\n"
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    socks.append(s)
for s in socks:  # every response read: the connections are idle and kept alive
    got = b""
    while b"hello from upstream" not in got:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("connection closed")
        got += chunk
print("ready", flush=True)
sys.stdin.readline()  # held until the caller has read the RSS
PY
echo
declare -A per_conn
for name in "${names[@]}"; do
  before=$(rss_kb "${pid[$name]}")
  coproc IDLE { /usr/bin/python3 "$work/idle.py" "${port[$name]}" "$idle_conns" 2>&1; }
  read -r line <&"${IDLE[0]}" || line=""
  after=$(rss_kb "${pid[$name]}")
  echo >&"${IDLE[1]}"
  wait "$IDLE_PID" 2>/dev/null || true
  [ "$line" = ready ] || echo "  $name: idle clients failed: $line" >&2
  per_conn[$name]=$(((after - before) * 1024 / idle_conns))
  echo "  $name: RSS $before kB -> $after kB with $idle_conns idle connections" >&2
done
printf '%-8s %8s %26s %9s\n' proxy idle "bytes per idle connection" "/nginx"
for name in "${names[@]}"; do
  awk -v t="$name" -v n="$idle_conns" -v b="${per_conn[$name]}" -v nb="${per_conn[nginx]}" \
    'BEGIN { printf "%-8s %8d %26d %9.2f\n", t, n, b, (nb > 0 ? b / nb : 0) }'
done
printf '%-8s %8s %26s %9s\n' "" "" "(RSS growth, VmRSS, ${page_kb} kB pages)" ""
# Where the time goes (PROFILE=1): perf samples of tether-proxy and nginx under the same wrk load
# (the last cell's connections), by kernel/user share and by symbol.
if [ -n "${PROFILE:-}" ] && command -v perf >/dev/null; then
  conns=${connections##* }
  for name in tether nginx; do
    wrk -t"$threads" -c"$conns" -d"$duration" "http://127.0.0.1:${port[$name]}/" >/dev/null 2>&1 &
    wrk_pid=$!
    sleep 1
    perf record -q -F 999 -p "${pid[$name]}" -o "$work/$name.perf" -- sleep 5 >/dev/null 2>&1 || true
    wait "$wrk_pid" || true
    echo
    echo "profile: $name, c=$conns, 5 s of samples"
    perf report -q -i "$work/$name.perf" --stdio --no-children --sort dso 2>/dev/null | awk 'NF { printf "  %-8s %s\n", $1, $2 }' | head -8 || true
    perf report -q -i "$work/$name.perf" --stdio --no-children --sort sym 2>/dev/null | awk 'NF { $1 = sprintf("%-8s", $1); print "  " $0 }' | head -30 || true
  done
fi

echo
echo "load after: $(uptime)"
