#!/bin/sh
# Many-hosts benchmark (issue 7): two solver hosts as network namespaces (solverd + tether-proxy
# each), nginx in the root namespace in front with its defaults; a client leaves through nginx and
# its worker on the host that ran it exits. Repeats the ctest case N times and prints the
# distribution of the client-close -> worker-exit time across the two hops.
# Needs root (ip netns), nginx and iproute2. Usage: bench/multihost_latency.sh [BUILD_DIR (default build-bench, Release)] [N=20]
set -eu
. "$(dirname "$0")/lib.sh"
build=$(bench_tree "${1:-}")
n=${2:-20}
cmake --build "$build" --target hostile_multihost_test solverd solverd-worker tether-proxy
bench_load
"$build/bin/hostile_multihost_test" --gtest_repeat="$n" --gtest_brief=1 |
  sed -n 's/.*worker exit across nginx and tether-proxy: \([0-9.]*\) ms.*/\1/p' | sort -n |
  awk '{ v[NR] = $1; s += $1 } END {
    if (NR == 0) { print "no measurement (see the test output)"; exit 1 }
    p90 = int(NR * 0.9 + 0.5); if (p90 < 1) p90 = 1
    printf "client close -> worker exit over nginx + tether-proxy, %d runs: min %.2f ms, median %.2f ms, p90 %.2f ms, max %.2f ms, mean %.2f ms\n",
      NR, v[1], v[int((NR + 1) / 2)], v[p90], v[NR], s / NR }'
