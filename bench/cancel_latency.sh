#!/bin/sh
# Cancel latency per backend and phase (issue 14): bench/cancel_latency.py on a Release build
# without sanitizers, which this script configures and builds in its own tree.
# Usage: bench/cancel_latency.sh [CANCELS_PER_ROW]   (default 50; smoke-run with 2)
#   env TETHER_BENCH_BUILD: the Release tree (default build-bench, bench/lib.sh)
# Root (solverd needs a writable cgroup v2 directory for the job cgroups). Measure on an idle
# machine: `uptime` is printed before and after, and figures taken under load are not figures.
set -eu
. "$(dirname "$0")/lib.sh"
top=$bench_top
build=$(bench_tree "${TETHER_BENCH_BUILD:-}")
n=${1:-50}
cmake --build "$build" -j2 --target solverd solverd-worker
echo "== cancel latency, $n cancels per row, Release build in $build"
echo "load before: $(uptime)"
/usr/bin/python3 "$top/bench/cancel_latency.py" "$build/bin" "$top/tests/solverd/models" "$n"
echo "load after:  $(uptime)"
echo "targets: p99 <= 10 ms in every phase with a hook, incumbent kept where one exists;"
echo "         kill (frame to empty, removed cgroup) p99 <= 2 ms; phases without a hook: docs/cancel-latency.md"
