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

# bench_nginx_temp_paths DIR: nginx's temporary paths, all in DIR (one private prefix per nginx).
bench_nginx_temp_paths() {
  echo "client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1; uwsgi_temp_path $1; scgi_temp_path $1;"
}

# bench_upstream_conf DIR PORT: writes DIR/nginx.conf for the upstream the proxy benchmarks share:
# nginx, one worker, a small body from memory, on 127.0.0.1:PORT.
bench_upstream_conf() {
  cat > "$1/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; error_log stderr error; pid $1/pid;
worker_rlimit_nofile 65536;
events { worker_connections 20000; }
http { access_log off; keepalive_requests 1000000; $(bench_nginx_temp_paths "$1")
  server { listen 127.0.0.1:$2 backlog=4096; location / { return 200 "hello from upstream\n"; } } }
CONF
}

# bench_nginx_front_conf DIR PORT UPSTREAM_PORT KEEPALIVE [LISTEN_OPTION]: writes DIR/nginx.conf for
# nginx as the reverse proxy measured against tether-proxy: 1 worker (master_process off: the
# measured pid is the worker), keep-alive HTTP/1.1 to the upstream (Connection cleared), and
# LISTEN_OPTION on its listen line (`http2` for h2c, nginx 1.22's form).
bench_nginx_front_conf() {
  cat > "$1/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; error_log stderr error; pid $1/pid;
worker_rlimit_nofile 65536;
events { worker_connections 20000; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s; $(bench_nginx_temp_paths "$1")
  upstream app { server 127.0.0.1:$3; keepalive $4; }
  server { listen 127.0.0.1:$2 ${5:-} backlog=4096;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
}

# bench_wait_http [--http2-prior-knowledge] PORT...: waits up to 10 s for each port to answer a
# GET / with curl (over h2c with the option: nginx's `listen ... http2` without TLS speaks nothing
# else); fails naming the first that does not.
bench_wait_http() {
  local opt=--http1.1
  if [ "$1" = --http2-prior-knowledge ]; then opt=$1; shift; fi
  for p in "$@"; do
    for _ in $(seq 1 200); do
      curl -fsS "$opt" -o /dev/null "http://127.0.0.1:$p/" 2>/dev/null && break
      sleep 0.05
    done
    curl -fsS "$opt" -o /dev/null "http://127.0.0.1:$p/" || { echo "port $p does not answer ($opt)" >&2; return 1; }
  done
}
