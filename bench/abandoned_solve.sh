#!/bin/sh
# The headline figure: a client leaves a hard solve (tests/solverd/models/market_split_hard.lp)
# one second after sending it.
#   (a) behind nginx (Debian's nginx-light, 1 worker) in front of a plain Python service that
#       runs cbc directly (examples/python-service/service.py with TETHER_RUN=off): how long cbc
#       runs on after the client left (up to CAP seconds, default 30) and the CPU seconds it burns;
#   (b) behind tether-proxy in front of solverd: the time from the client's close to the end of
#       the worker, and whether the incumbent came back (solverd's job line: status=interrupted
#       and the objective).
# Prints a table and the load average: figures taken on a busy machine do not reproduce.
#
#   bench/abandoned_solve.sh                   # builds a Release tree without sanitizers in build-bench
#   BIN_DIR=build-release/bin bench/abandoned_solve.sh   # binaries already built (Release)
#   CAP=5 bench/abandoned_solve.sh              # a smoke run
#
# Needs: root (solverd's cgroups), cgroup v2, nginx, cbc, python3 (scripts/setup-deps).
set -eu
. "$(dirname "$0")/lib.sh"
for tool in nginx cbc python3 findmnt; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/setup-deps" >&2; exit 1; }
done
if [ -z "${BIN_DIR:-}" ]; then
  build=$(bench_tree)
  echo "building tether-proxy, solverd and solverd-worker (Release, no sanitizers) in $build" >&2
  cmake --build "$build" --target tether-proxy solverd solverd-worker >/dev/null
  BIN_DIR=$build/bin
fi
bench_load
/usr/bin/python3 "$bench_top/bench/abandoned_solve.py" "$bench_top" "$(cd "$BIN_DIR" && pwd)" "${CAP:-30}"
echo
echo "uptime: $(uptime)"
