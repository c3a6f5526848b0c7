#!/usr/bin/env python3
"""Disconnect-to-cancel latency of tether-proxy, over N disconnects (default 1,000).

For each round: a client sends a request, the upstream (in this script) receives it and holds
it, the client closes, and the control socket (in this script) receives the cancel frame. The
time from the client's close() to the frame's arrival (both CLOCK_MONOTONIC, one process) is
recorded; p50, p99 and max are printed. Target: p99 under 1 ms.

  bench/proxy_cancel_latency.py [--proxy build-release/bin/tether-proxy] [--rounds 1000]
"""
import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import socket
import struct
import sys
import tempfile
import time


def percentile(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(p / 100.0 * len(values) + 0.5)) - 1))
    return values[k]


class Bench:
    """The pieces both latency scripts share (this one and bench/h2_reset_cancel.py): an upstream
    that holds every request, a control socket that timestamps each cancel frame (DESIGN.md
    "Control protocol": a 4-byte little-endian length, then JSON), and tether-proxy between."""

    def __init__(self, proxy):
        self.proxy = proxy
        self.work = tempfile.mkdtemp(prefix="tpcl", dir="/tmp")
        self.control_path = os.path.join(self.work, "c.sock")
        self.cancels = {}                 # request id -> future set with the frame's arrival time
        self.waiting = asyncio.Queue()    # request ids the upstream holds, in arrival order
        self.hello = asyncio.Event()
        self.proc = None
        self.servers = []
        self.drain_task = None

    async def upstream(self, reader, writer):
        # Reads one request head and holds it until the proxy closes the connection.
        head = await reader.readuntil(b"\r\n\r\n")
        m = re.search(rb"\r\nx-request-id: *([0-9a-f]+)", head, re.I)
        if m:
            self.waiting.put_nowait(m.group(1).decode())
        await reader.read()
        writer.close()

    async def control(self, reader, writer):
        while True:
            try:
                hdr = await reader.readexactly(4)
                body = await reader.readexactly(struct.unpack("<I", hdr)[0])
            except asyncio.IncompleteReadError:
                return
            now = time.monotonic_ns()
            msg = json.loads(body)
            if msg.get("type") == "hello":
                self.hello.set()
                reply = {"type": "hello", "version": 1, "server": "bench"}
            elif msg.get("type") == "cancel":
                fut = self.cancel_future(msg["id"])
                if not fut.done():
                    fut.set_result(now)
                reply = {"type": "cancel_ack", "id": msg["id"], "state": "running"}
            else:
                continue
            data = json.dumps(reply).encode()
            writer.write(struct.pack("<I", len(data)) + data)

    def cancel_future(self, rid):
        return self.cancels.setdefault(rid, asyncio.get_running_loop().create_future())

    async def start(self, server_extra=""):
        """Starts the upstream, the control socket and tether-proxy (one server, location / on
        `on_disconnect interrupt`, plus `server_extra`); returns the proxy's port or None."""
        up_server = await asyncio.start_server(self.upstream, "127.0.0.1", 0)
        up_port = up_server.sockets[0].getsockname()[1]
        self.servers = [up_server, await asyncio.start_unix_server(self.control, self.control_path)]
        conf = os.path.join(self.work, "p.conf")
        with open(conf, "w") as f:
            f.write(f"""error_log stderr info;
upstream app {{ server 127.0.0.1:{up_port}; keepalive 0; control unix:{self.control_path}; }}
server {{ listen 127.0.0.1:0; access_log off; {server_extra}
  location / {{ proxy_pass http://app; on_disconnect interrupt; kill_after 5s; }} }}
""")
        self.proc = await asyncio.create_subprocess_exec(self.proxy, "-c", conf, stderr=asyncio.subprocess.PIPE)
        port = None
        deadline = time.monotonic() + 10
        while port is None and time.monotonic() < deadline:
            line = (await self.proc.stderr.readline()).decode()
            if not line:
                break
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
        if port is None:
            print("tether-proxy did not start", file=sys.stderr)
            return None

        async def drain_stderr():
            while await self.proc.stderr.readline():
                pass
        self.drain_task = asyncio.create_task(drain_stderr())
        # Measure only once the control connection is up (its hello arrived). Python's cyclic
        # garbage collector would add its own pauses of milliseconds to a few rounds.
        await asyncio.wait_for(self.hello.wait(), 5)
        gc.disable()
        return port

    async def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            await self.proc.wait()
        if self.drain_task is not None:
            self.drain_task.cancel()
        for server in self.servers:
            server.close()
        shutil.rmtree(self.work, ignore_errors=True)


def proxy_argument(description):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--proxy", default=os.environ.get("TETHER_PROXY", os.path.join(root, "build-release/bin/tether-proxy")))
    ap.add_argument("--rounds", type=int, default=1000)
    return ap


def proxy_missing(proxy):
    if os.access(proxy, os.X_OK):
        return False
    print(f"no tether-proxy at {proxy}: build it (cmake --build build-release --target tether-proxy) or pass --proxy",
          file=sys.stderr)
    return True


async def main():
    args = proxy_argument("disconnect-to-cancel latency of tether-proxy").parse_args()
    if proxy_missing(args.proxy):
        return 1
    bench = Bench(args.proxy)
    latencies = []
    try:
        port = await bench.start()
        if port is None:
            return 1
        for i in range(args.rounds):
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(b"GET /hold HTTP/1.1\r\nHost: b\r\n\r\n")
            rid = await asyncio.wait_for(bench.waiting.get(), 5)
            fut = bench.cancel_future(rid)
            t0 = time.monotonic_ns()
            s.close()
            t1 = await asyncio.wait_for(fut, 5)
            latencies.append((t1 - t0) / 1e6)
    finally:
        await bench.stop()

    print(f"disconnect -> cancel frame at the control socket, {len(latencies)} disconnects:")
    print(f"  p50 {percentile(latencies, 50):.3f} ms   p99 {percentile(latencies, 99):.3f} ms   "
          f"max {max(latencies):.3f} ms   (target: p99 < 1 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
