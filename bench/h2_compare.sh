#!/usr/bin/env bash
# HTTP/2 (h2c, prior knowledge) through tether-proxy (`http2 on;`) and through nginx (1.22 syntax:
# `listen ... http2`, 1 worker), both in front of the same HTTP/1.1 upstream (an nginx answering
# a small 200 from memory, keep-alive from both proxies), measured with h2load in one run:
# ROUNDS rounds (default 3) with the order of the two proxies alternated (A/B), the median of the
# rounds taken. Per proxy: requests/s, p50 and p99 of the request time (from h2load's per-request
# log), each with its ratio to nginx; the issue's targets are rps/ng >= 1.2 and p99/ng <= 1. The
# load average is printed before and after: run it with nothing else running.
#
#   bench/h2_compare.sh                               # builds a Release tree without sanitizers
#   DURATION=2 ROUNDS=1 CLIENTS=4 STREAMS=4 bench/h2_compare.sh      # a smoke run
#   TETHER_PROXY=/path/to/tether-proxy bench/h2_compare.sh
#
# Needs: h2load (nghttp2-client), nginx, curl (scripts/setup-deps installs them). Ports 18185-18187.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
duration=${DURATION:-10}      # seconds of each h2load run, after WARMUP seconds
warmup=${WARMUP:-1}
rounds=${ROUNDS:-3}
clients=${CLIENTS:-64}        # h2load -c: connections
streams=${STREAMS:-10}        # h2load -m: concurrent streams per connection
threads=${H2LOAD_THREADS:-1}
keepalive=${UPSTREAM_KEEPALIVE:-1024}
if [ -z "${TETHER_PROXY:-}" ]; then
  build=$(bench_tree "${BUILD_DIR:-}")
  echo "building a Release tether-proxy (no sanitizers) in $build" >&2
  cmake --build "$build" --target tether-proxy >/dev/null
  proxy_bin=$build/bin/tether-proxy
else
  proxy_bin=$TETHER_PROXY
fi
for tool in h2load nginx curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/setup-deps" >&2; exit 1; }
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "load before: $(uptime)"
bench_load
work=$(mktemp -d /tmp/th2cmp.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

up=18185 tp=18186 ng=18187
declare -A port=([tether]=$tp [nginx]=$ng) pid
mkdir -p "$work/up" "$work/ng"
# The upstream, shared by both: nginx, one worker, a small body from memory, HTTP/1.1.
bench_upstream_conf "$work/up" $up
nginx -p "$work/up" -c "$work/up/nginx.conf" -e stderr & pids+=($!)

# nginx as the HTTP/2 front: 1 worker, `listen ... http2` (1.22; 1.25 writes `http2 on;`),
# h2c with prior knowledge, keep-alive HTTP/1.1 to the upstream. Its stream limit is nginx's
# default, 128, as tether-proxy's.
bench_nginx_front_conf "$work/ng" $ng $up $keepalive http2
nginx -p "$work/ng" -c "$work/ng/nginx.conf" -e stderr & pid[nginx]=$!; pids+=(${pid[nginx]})

# tether-proxy: the same shape, logs at warn, no access log.
cat > "$work/tether.conf" <<CONF
error_log stderr warn;
upstream app { server 127.0.0.1:$up; keepalive $keepalive; }
server { listen 127.0.0.1:$tp; http2 on; access_log off; keepalive_timeout 300s; client_header_timeout 300s;
  location / { proxy_pass http://app; on_disconnect close; } }
CONF
"$proxy_bin" -c "$work/tether.conf" & pid[tether]=$!; pids+=(${pid[tether]})

bench_wait_http $up
bench_wait_http --http2-prior-knowledge $tp $ng

# One h2load run against a proxy: "rps p50_ms p99_ms [# failures]". h2load prints no
# percentiles; its per-request log (start, status, microseconds) gives them.
measure() {
  local name=$1
  rm -f "$work/h2load.log"
  h2load -t"$threads" -c"$clients" -m"$streams" -D"$duration" --warm-up-time="$warmup" \
    --log-file="$work/h2load.log" "http://127.0.0.1:${port[$name]}/" > "$work/h2load.out" 2>&1 || true
  local rps fails
  rps=$(awk '/^finished in/ { gsub(",", "", $4); print $4 }' "$work/h2load.out")
  fails=$(awk '/^requests:/ { if ($10 + $12 + $14 > 0) printf "# %s failed, %s errored, %s timeout", $10, $12, $14 }' \
    "$work/h2load.out")
  [ -n "$rps" ] || { echo "  h2load against $name printed no result:" >&2; cat "$work/h2load.out" >&2; rps=0; }
  cut -f3 "$work/h2load.log" | sort -n | awk -v rps="$rps" -v fails="$fails" '
    { v[NR] = $1 }
    END { if (NR == 0) { print rps, 0, 0, "# no requests logged"; exit }
          i50 = int(NR * 0.50); if (i50 < 1) i50 = 1; i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
          printf "%s %.3f %.3f %s\n", rps, v[i50] / 1000, v[i99] / 1000, fails }'
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

names=(tether nginx)
declare -A all_rps all_p50 all_p99
for name in "${names[@]}"; do all_rps[$name]="" all_p50[$name]="" all_p99[$name]=""; done
for round in $(seq 1 "$rounds"); do
  # A/B: the order flips every round, so that drift on the machine falls on both alike.
  if [ $((round % 2)) -eq 1 ]; then order=(tether nginx); else order=(nginx tether); fi
  for name in "${order[@]}"; do
    read -r r a b rest <<<"$(measure "$name")"
    all_rps[$name]+=" $r" all_p50[$name]+=" $a" all_p99[$name]+=" $b"
    echo "  round $round $name: $r req/s, p50 $a ms, p99 $b ms${rest:+ $rest}" >&2
  done
done
printf '\nh2load -c %s -m %s -t %s, %s s (+%s s warm-up) per run, median of %s A/B rounds\n' \
  "$clients" "$streams" "$threads" "$duration" "$warmup" "$rounds"
printf '%-8s %10s %9s %9s %9s %9s %9s\n' proxy "req/s" "p50 ms" "p99 ms" "rps/ng" "p50/ng" "p99/ng"
declare -A m_rps m_p50 m_p99
for name in "${names[@]}"; do
  # shellcheck disable=SC2086
  m_rps[$name]=$(median ${all_rps[$name]}) m_p50[$name]=$(median ${all_p50[$name]}) m_p99[$name]=$(median ${all_p99[$name]})
done
for name in "${names[@]}"; do
  awk -v t="$name" -v r="${m_rps[$name]}" -v a="${m_p50[$name]}" -v b="${m_p99[$name]}" \
      -v nr="${m_rps[nginx]}" -v na="${m_p50[nginx]}" -v nb="${m_p99[nginx]}" \
      'function q(x, y) { return y > 0 ? x / y : 0 } BEGIN {
    printf "%-8s %10.0f %9.3f %9.3f %9.2f %9.2f %9.2f\n", t, r, a, b, q(r, nr), q(a, na), q(b, nb) }'
done
echo "targets: tether rps/ng >= 1.20 and p99/ng <= 1.00"
echo
echo "load after: $(uptime)"
bench_load
