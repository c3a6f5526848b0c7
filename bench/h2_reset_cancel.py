#!/usr/bin/python3
"""RST_STREAM-to-cancel latency of tether-proxy over HTTP/2, over N resets (default 1,000).

For each round: a python3-h2 client opens a stream on an h2c connection (prior knowledge) to a
location with `on_disconnect interrupt`, the upstream (in this script) receives the request and
holds it, the client sends RST_STREAM(CANCEL) on that stream (its connection stays open), and the
control socket (in this script) receives the cancel frame. The time from the RST_STREAM's send()
to the frame's arrival (both CLOCK_MONOTONIC, one process) is recorded; p50, p99 and max are
printed with the load average. Target: p99 <= 1 ms. A connection carries --per-connection resets
(default 100), one at a time, well under the Rapid Reset bound (more than twice
http2_max_concurrent_streams resets in a second gets GOAWAY ENHANCE_YOUR_CALM), then the next
connection takes over.

  bench/h2_reset_cancel.py [--proxy build-release/bin/tether-proxy] [--rounds 1000] [--per-connection 100]

Needs Debian's python3-h2 (run with /usr/bin/python3). Benchmarks use a Release build without
sanitizers (bench/lib.sh's bench_tree); a smoke run: --rounds 20 on any build.
"""
import asyncio
import os
import socket
import sys
import time

import h2.config
import h2.connection
import h2.errors
import h2.events

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proxy_cancel_latency import Bench, percentile, proxy_argument, proxy_missing  # noqa: E402


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Connection:
    """One h2c connection (blocking socket, python3-h2), its frames read on demand."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.goaway = None
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.setblocking(True)
            self.sock.sendall(data)
            self.sock.setblocking(False)

    def read_pending(self):
        """Feeds whatever the proxy sent (SETTINGS, their ACKs, WINDOW_UPDATE, GOAWAY) to h2."""
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                break
            if not data:
                raise SystemExit("tether-proxy closed the HTTP/2 connection")
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.ConnectionTerminated):
                    self.goaway = event.error_code
        self.flush()

    def open(self, path):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "b")],
                               end_stream=True)
        self.flush()
        return sid

    def reset(self, sid):
        self.conn.reset_stream(sid, error_code=h2.errors.ErrorCodes.CANCEL)
        self.sock.setblocking(True)
        data = self.conn.data_to_send()
        t0 = time.monotonic_ns()
        self.sock.sendall(data)
        self.sock.setblocking(False)
        return t0

    def close(self):
        self.sock.close()


async def main():
    ap = proxy_argument("RST_STREAM-to-cancel latency of tether-proxy over HTTP/2")
    ap.add_argument("--per-connection", type=int, default=100)
    args = ap.parse_args()
    if proxy_missing(args.proxy):
        return 1
    print(f"load before: {load_average()} ({os.cpu_count()} cores)")
    bench = Bench(args.proxy)
    latencies = []
    connections = 0
    try:
        port = await bench.start("http2 on;")
        if port is None:
            return 1
        c = None
        for i in range(args.rounds):
            if i % args.per_connection == 0:
                if c is not None:
                    c.close()
                c = Connection(port)
                connections += 1
            sid = c.open("/hold")
            rid = await asyncio.wait_for(bench.waiting.get(), 5)
            c.read_pending()
            if c.goaway is not None:
                print(f"GOAWAY {c.goaway!r} after {i} resets", file=sys.stderr)
                return 1
            fut = bench.cancel_future(rid)
            t0 = c.reset(sid)
            t1 = await asyncio.wait_for(fut, 5)
            latencies.append((t1 - t0) / 1e6)
        c.close()
    finally:
        await bench.stop()

    print(f"RST_STREAM -> cancel frame at the control socket, {len(latencies)} resets on {connections} "
          f"HTTP/2 connection(s):")
    print(f"  p50 {percentile(latencies, 50):.3f} ms   p99 {percentile(latencies, 99):.3f} ms   "
          f"max {max(latencies):.3f} ms   (target: p99 <= 1 ms)")
    print(f"load after: {load_average()} ({os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
