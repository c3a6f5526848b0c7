#!/bin/sh
# Soak benchmark (issue 7): steady load through tether-proxy for 10 minutes, half quick solves
# answered in full, half hard solves abandoned after a random 1-300 ms (queued, running or
# streaming). Prints both daemons' resident memory and fd count every 10 s (the trend), and fails
# if either grows (beyond 20% + 1 MB after warm-up), an fd is left, a request fails, or a daemon
# logs an error line. Not part of CI.
# Usage: bench/load_soak.sh [BUILD_DIR (default build-bench, Release)]   (env: TETHER_SOAK_SECONDS=600, TETHER_SOAK_CLIENTS=32)
set -eu
. "$(dirname "$0")/lib.sh"
build=$(bench_tree "${1:-}")
cmake --build "$build" --target hostile_load_test solverd solverd-worker tether-proxy
bench_load
TETHER_SOAK_SECONDS=${TETHER_SOAK_SECONDS:-600} TETHER_SOAK_CLIENTS=${TETHER_SOAK_CLIENTS:-32} \
  exec "$build/bin/hostile_load_test" --gtest_also_run_disabled_tests \
  --gtest_filter='LoadTest.DISABLED_SoakWithRandomDisconnectsKeepsMemoryAndFdsFlat'
