# Sourced by the benchmark scripts (POSIX sh). Benchmarks run on a Release tree without sanitizers
# of their own (build-bench, tests included since several benchmarks are test binaries), never on
# the sanitized tree that scripts/test builds, and print the load average beside their figures:
# figures taken on a busy machine do not reproduce.
bench_top=$(cd "$(dirname "$0")/.." && pwd)

# bench_tree [DIR]: configures DIR (default build-bench) as a Release tree without sanitizers and
# prints its path; refuses a sanitized tree.
bench_tree() {
  dir=${1:-$bench_top/build-bench}
  cmake -S "$bench_top" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTETHER_SANITIZE=OFF \
    -DTETHER_TSAN=OFF -DTETHER_FUZZ=OFF >/dev/null
  echo "$dir"
}

bench_load() {
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores) at $(date -u +%H:%M:%SZ)"
}
