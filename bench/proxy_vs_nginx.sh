#!/usr/bin/env bash
# tether-proxy against nginx and HAProxy, in one run: wrk drives the same upstream (an nginx
# answering a small 200) directly, through tether-proxy, through nginx (1 worker, keep-alive
# upstream) and through HAProxy (1 thread), at 64 and at 1,000 connections, and prints
# requests/s, p50 and p99 for each, the ratios to nginx, and the CPU each proxy spent per
# request (user + system time of its process from /proc/PID/stat over the cell, divided by the
# requests wrk completed), with the load average before and after.
#
#   bench/proxy_vs_nginx.sh                 # builds a Release tether-proxy in build-release if needed
#   TETHER_PROXY=/path/to/tether-proxy DURATION=10s CONNECTIONS="64 1000" bench/proxy_vs_nginx.sh
#
# Needs: wrk, nginx, haproxy (scripts/setup-deps installs them). Uses ports 18080-18083.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
duration=${DURATION:-10s}
connections=${CONNECTIONS:-"64 1000"}
threads=${WRK_THREADS:-1}
# Idle upstream connections kept by nginx and tether-proxy alike (HAProxy's http-reuse keeps
# what it has). With 64, a run at 1,000 connections mostly measures connection churn to the
# upstream (and the machine's TIME_WAIT handling) rather than proxying.
keepalive=${UPSTREAM_KEEPALIVE:-1024}
proxy_bin=${TETHER_PROXY:-$root/build-release/bin/tether-proxy}
if [ ! -x "$proxy_bin" ]; then
  echo "building a Release tether-proxy in $root/build-release" >&2
  cmake -S "$root" -B "$root/build-release" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTETHER_BUILD_TESTS=OFF -DTETHER_BUILD_BENCH=OFF >/dev/null
  cmake --build "$root/build-release" --target tether-proxy >/dev/null
fi
for tool in wrk nginx haproxy; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/setup-deps" >&2; exit 1; }
done
ulimit -n 65536 2>/dev/null || ulimit -n 8192

work=$(mktemp -d /tmp/tpbench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

up=18080 tp=18081 ng=18082 hp=18083

# The upstream: nginx with one worker answering a small body from memory.
mkdir -p "$work/up" "$work/ng"
cat > "$work/up/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; error_log stderr error; pid $work/up/pid;
worker_rlimit_nofile 65536;
events { worker_connections 20000; }
http { access_log off; keepalive_requests 1000000;
  client_body_temp_path $work/up; proxy_temp_path $work/up; fastcgi_temp_path $work/up; uwsgi_temp_path $work/up; scgi_temp_path $work/up;
  server { listen 127.0.0.1:$up backlog=4096; location / { return 200 "hello from upstream\n"; } } }
CONF
nginx -p "$work/up" -c "$work/up/nginx.conf" -e stderr & pids+=($!); pid_upstream=$!

# nginx as a reverse proxy: 1 worker, keep-alive to the upstream (HTTP/1.1, Connection cleared).
cat > "$work/ng/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; error_log stderr error; pid $work/ng/pid;
worker_rlimit_nofile 65536;
events { worker_connections 20000; }
http { access_log off; keepalive_requests 1000000;
  client_body_temp_path $work/ng; proxy_temp_path $work/ng; fastcgi_temp_path $work/ng; uwsgi_temp_path $work/ng; scgi_temp_path $work/ng;
  upstream app { server 127.0.0.1:$up; keepalive $keepalive; }
  server { listen 127.0.0.1:$ng backlog=4096;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
nginx -p "$work/ng" -c "$work/ng/nginx.conf" -e stderr & pids+=($!); pid_nginx=$!

# HAProxy: 1 thread, connection reuse to the upstream.
cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 3000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend f
  bind 127.0.0.1:$hp
  default_backend b
backend b
  server s1 127.0.0.1:$up maxconn 1000
CONF
haproxy -f "$work/haproxy.cfg" -db & pids+=($!); pid_haproxy=$!

# tether-proxy: same shape (keep-alive to the upstream), logs at warn, no access log.
cat > "$work/tether.conf" <<CONF
error_log stderr warn;
upstream app { server 127.0.0.1:$up; keepalive $keepalive; }
server { listen 127.0.0.1:$tp; access_log off; keepalive_timeout 75s;
  location / { proxy_pass http://app; on_disconnect close; } }
CONF
"$proxy_bin" -c "$work/tether.conf" & pids+=($!); pid_tether=$!

# Wait until all four answer.
for port in $up $tp $ng $hp; do
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break
    sleep 0.05
  done
done

# utime + stime of a process in clock ticks (fields 14 and 15 of /proc/PID/stat, counted after
# the command name, which may hold spaces).
cpu_ticks() {
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
hz=$(getconf CLK_TCK)

# wrk's output -> "rps p50_ms p99_ms cpu_us_per_request", the CPU of process `pid`.
measure() {
  local port=$1 conns=$2 pid=$3
  local before after
  before=$(cpu_ticks "$pid")
  wrk -t"$threads" -c"$conns" -d"$duration" --latency "http://127.0.0.1:$port/" > "$work/wrk.out" 2>&1 || true
  after=$(cpu_ticks "$pid")
  awk -v ticks=$((after - before)) -v hz="$hz" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /requests in/ { total = $1 }
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /Non-2xx|Socket errors/ { errs = errs " " $0 }
    END { printf "%s %s %s %.1f%s\n", rps, p50, p99, (total > 0 ? ticks / hz * 1e6 / total : 0),
          (errs == "" ? "" : " #" errs) }' "$work/wrk.out"
}

echo "load before: $(uptime)"

printf '%-14s %6s %12s %10s %10s %10s %10s %12s\n' target conns "req/s" "p50 ms" "p99 ms" "rps/nginx" "p99/nginx" \
  "cpu us/req"
for conns in $connections; do
  declare -A rps p50 p99 cpu
  for t in upstream tether nginx haproxy; do
    case $t in
      upstream) port=$up pid=$pid_upstream ;;
      tether) port=$tp pid=$pid_tether ;;
      nginx) port=$ng pid=$pid_nginx ;;
      haproxy) port=$hp pid=$pid_haproxy ;;
    esac
    read -r r a b u rest <<<"$(measure "$port" "$conns" "$pid")"
    rps[$t]=$r p50[$t]=$a p99[$t]=$b cpu[$t]=$u
    [ -n "${rest:-}" ] && echo "  $t: $rest" >&2
  done
  for t in upstream tether nginx haproxy; do
    awk -v t="$t" -v c="$conns" -v r="${rps[$t]}" -v a="${p50[$t]}" -v b="${p99[$t]}" -v u="${cpu[$t]}" \
        -v nr="${rps[nginx]}" -v nb="${p99[nginx]}" 'BEGIN {
      printf "%-14s %6d %12.0f %10.3f %10.3f %10.2f %10.2f %12.1f\n", t, c, r, a, b, (nr > 0 ? r / nr : 0),
             (nb > 0 ? b / nb : 0), u }'
  done
  unset rps p50 p99 cpu
done
echo "load after: $(uptime)"
