# Sourced by the benchmark scripts (POSIX sh). Benchmarks run on a Release tree without sanitizers
# of their own (build-bench, tests included since several benchmarks are test binaries), never on
# the sanitized tree that scripts/test builds, and print the load average beside their figures:
# figures taken on a busy machine do not reproduce.
bench_top=$(cd "$(dirname "$0")/.." && pwd)

# bench_tree [DIR]: configures DIR (default build-bench) as a Release tree without sanitizers and
# prints its path; refuses a sanitized tree.
bench_tree() {
  dir=${1:-$bench_top/build-bench}
  launcher=""
  if command -v ccache >/dev/null 2>&1; then
    launcher="-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache"
  fi
  # shellcheck disable=SC2086
  cmake -S "$bench_top" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTETHER_SANITIZE=OFF \
    -DTETHER_TSAN=OFF -DTETHER_FUZZ=OFF $launcher >/dev/null
  echo "$dir"
}

bench_load() {
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores) at $(date -u +%H:%M:%SZ)"
}
