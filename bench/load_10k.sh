#!/bin/sh
# Load benchmark (issue 7): 10,000 concurrent clients with in-flight solves through tether-proxy,
# then all leave at once. Prints the time to the last cancel and the proxy's memory per connection;
# fails if a cancel is lost or an fd leaks. The same test runs in CI with 1,000 clients
# (tests/hostile/hostile_load_test.cpp); this only raises the numbers.
# Usage: bench/load_10k.sh [BUILD_DIR (default build-bench, Release)]   (env: TETHER_LOAD_CLIENTS, default 10000)
set -eu
. "$(dirname "$0")/lib.sh"
build=$(bench_tree "${1:-}")
clients=${TETHER_LOAD_CLIENTS:-10000}
# The proxy holds two fds per client, solverd one; the daemons inherit this limit from the test.
# Root may raise the hard limit; others get what their hard limit allows and the test says so.
want=$((clients * 2 + 4096))
if ! ulimit -n "$want" 2>/dev/null; then
  hard=$(ulimit -Hn)
  ulimit -n "$hard"
  fit=$(((hard - 512) / 2))
  if [ "$fit" -lt "$clients" ]; then
    echo "warning: cannot raise RLIMIT_NOFILE to $want (hard limit $hard): running $fit clients instead of $clients" >&2
    clients=$fit
  fi
fi
echo "RLIMIT_NOFILE $(ulimit -n), $clients clients"
cmake --build "$build" --target hostile_load_test solverd solverd-worker tether-proxy
bench_load
TETHER_LOAD_CLIENTS=$clients exec "$build/bin/hostile_load_test" \
  --gtest_filter='LoadTest.ThousandClientsLeaveAtOnceAndEveryJobIsCancelled'
