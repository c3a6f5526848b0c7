#!/usr/bin/python3
"""Tiny jobs through solverd, warm workers off and on (issue 15), in one run.

For each backend (cbc, clp, glpk) solving tests/solverd/models/knapsack.lp, with `spare_workers 0`
and with `spare_workers N` (default 2), in two shapes: one client sending its jobs one after
another, and 4 keep-alive clients on `workers 2`. For every run it prints:

  overhead  the job's `run` (GET /v1/jobs/ID run_ms: start to end in solverd) minus the worker's
            `solve_time_ms`: process start (or spare hand-off), the model's trip, set-up, exit;
            p50 and p99
  rtt       the request's round trip seen by the client, p50 and p99
  jobs/s    jobs over the run's wall time
  cpu/job   cpu.stat usage of the job cgroups (the result's cpu_ms, which includes a spare's own
            start) plus solverd's own CPU (/proc/PID/stat utime+stime) over the run, per job;
            and the CPU bound this implies: 2 cores / cpu-per-job
  spare     how many jobs got a warm worker (worker_start "spare")

`uptime` is printed before and after: figures mean something only on an idle machine.

It builds a Release tree without sanitizers (build-release) unless --bin-dir is given. Run as
root (solverd makes job cgroups under a cgroup v2 root of its own, removed at the end):

  bench/solverd_warm.py [--jobs 200] [--spares 2] [--bin-dir build-release/bin]
  bench/solverd_warm.py --jobs 5      # smoke run
"""
import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(p / 100.0 * len(values) + 0.5)) - 1))
    return values[k]


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split(" - ")
            if len(parts) == 2 and parts[1].startswith("cgroup2 "):
                return line.split()[4]
    return None


def proc_cpu_ms(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) * 1000.0 / ticks  # utime + stime


class Solverd:
    def __init__(self, bin_dir, cgroup_root, workers, spares):
        self.dir = tempfile.mkdtemp(prefix="sdw", dir="/tmp")
        conf = os.path.join(self.dir, "solverd.conf")
        with open(conf, "w") as f:
            # info, solverd's default: the port is read from its `listening on` line.
            f.write(f"""error_log stderr info;
listen 127.0.0.1:0;
cgroup_root {cgroup_root};
worker_path {os.path.join(bin_dir, "solverd-worker")};
workers {workers};
spare_workers {spares};
queue_size 10000;
""")
        self.proc = subprocess.Popen([os.path.join(bin_dir, "solverd"), "-c", conf], stderr=subprocess.PIPE, text=True)
        self.port = None
        self.lines = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if m and self.port is None:
                self.port = int(m.group(1))
            if " ready: " in line:
                break
        if self.port is None:
            raise RuntimeError("solverd did not start:\n" + "".join(self.lines))
        # Keep draining stderr so that solverd never blocks on a full pipe.
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self):
        for line in self.proc.stderr:
            if "[error]" in line or "[critical]" in line:
                self.lines.append(line)

    def get_json(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return json.loads(body)

    def wait_spares(self, n, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            c.request("GET", "/metrics")
            text = c.getresponse().read().decode()
            c.close()
            m = re.search(r"^solverd_spare_workers (\S+)$", text, re.M)
            if m and float(m.group(1)) >= n:
                return True
            time.sleep(0.02)  # polling a gauge: there is no event to wait on from outside
        return False

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def run(d, solver, model, clients, jobs):
    per_client = max(1, jobs // clients)
    results = [[] for _ in range(clients)]
    errors = []

    def client(i):
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
        for _ in range(per_client):
            rid = uuid.uuid4().hex
            t = time.monotonic()
            c.request("POST", f"/v1/solve?solver={solver}", body=model,
                      headers={"Content-Type": "text/x-lp", "X-Request-Id": rid})
            r = c.getresponse()
            body = r.read()
            rtt = (time.monotonic() - t) * 1000.0
            if r.status != 200:
                errors.append(f"{r.status} {body[:200]!r}")
                return
            results[i].append((rid, rtt))
        c.close()

    cpu0 = proc_cpu_ms(d.proc.pid)
    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    own_ms = proc_cpu_ms(d.proc.pid) - cpu0
    if errors:
        raise RuntimeError(f"{solver}: {len(errors)} failed request(s), first: {errors[0]}")

    overhead, rtts, job_cpu, spare = [], [], [], 0
    for per in results:
        for rid, rtt in per:
            j = d.get_json(f"/v1/jobs/{rid}")
            res = j.get("result", {})
            rtts.append(rtt)
            # solve_time_us when the worker reports it: solve_time_ms is truncated to whole ms.
            solve_ms = res["solve_time_us"] / 1000.0 if "solve_time_us" in res else float(res.get("solve_time_ms", 0))
            overhead.append(j["run_ms"] - solve_ms)
            job_cpu.append(float(j.get("cpu_ms", 0)))
            spare += 1 if j.get("worker_start") == "spare" else 0
    n = len(rtts)
    cpu_per_job = (sum(job_cpu) + own_ms) / n
    return {
        "n": n, "spare": spare, "wall": wall,
        "ovh50": percentile(overhead, 50), "ovh99": percentile(overhead, 99),
        "rtt50": percentile(rtts, 50), "rtt99": percentile(rtts, 99),
        "jps": n / wall, "cpu": cpu_per_job, "own": own_ms / n,
        "bound": 2000.0 / cpu_per_job if cpu_per_job > 0 else float("nan"),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=200, help="jobs per run (per shape, backend and setting)")
    ap.add_argument("--spares", type=int, default=2, help="spare_workers for the 'on' runs")
    ap.add_argument("--bin-dir", default=None, help="solverd and solverd-worker (default: a Release build in build-release)")
    ap.add_argument("--solvers", default="cbc,clp,glpk")
    args = ap.parse_args()

    bin_dir = args.bin_dir
    if bin_dir is None:
        build = os.path.join(ROOT, "build-release")
        print(f"building Release solverd and solverd-worker (no sanitizers) in {build}", file=sys.stderr)
        subprocess.run(["cmake", "-S", ROOT, "-B", build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                        "-DTETHER_SANITIZE=OFF", "-DTETHER_BUILD_TESTS=OFF", "-DTETHER_BUILD_BENCH=OFF"],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", build, "--target", "solverd", "solverd-worker"], check=True,
                       stdout=subprocess.DEVNULL)
        bin_dir = os.path.join(build, "bin")

    mount = cgroup2_mount()
    if mount is None or not os.access(mount, os.W_OK):
        print("no writable cgroup v2: run as root on a machine with cgroup v2", file=sys.stderr)
        return 1
    cgroup_root = os.path.join(mount, f"tether-bench-{os.getpid()}")
    os.makedirs(cgroup_root, exist_ok=True)
    with open(os.path.join(ROOT, "tests/solverd/models/knapsack.lp"), "rb") as f:
        model = f.read()

    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(f"tiny jobs: knapsack.lp, {args.jobs} jobs per run, binaries from {bin_dir}")
    header = (f"{'solver':6} {'spares':>6} {'shape':22} {'jobs':>5} {'spare':>5} {'ovh p50':>8} {'ovh p99':>8} "
              f"{'rtt p50':>8} {'rtt p99':>8} {'jobs/s':>8} {'cpu/job':>8} {'own/job':>8} {'bound/s':>8}")
    print(header)
    print("-" * len(header))
    shapes = [("1 client, sequential", 1, 2), ("4 clients, 2 workers", 4, 2)]
    try:
        for solver in args.solvers.split(","):
            for spares in (0, args.spares):
                for name, clients, workers in shapes:
                    d = Solverd(bin_dir, cgroup_root, workers, spares)
                    try:
                        if spares:
                            d.wait_spares(spares)
                        run(d, solver, model, 1, 2)  # warm the page cache and the connection path
                        if spares:
                            d.wait_spares(spares)
                        r = run(d, solver, model, clients, args.jobs)
                    finally:
                        d.stop()
                    bad = [l for l in d.lines if "[error]" in l or "[critical]" in l]
                    print(f"{solver:6} {spares:>6} {name:22} {r['n']:>5} {r['spare']:>5} {r['ovh50']:>6.2f}ms "
                          f"{r['ovh99']:>6.2f}ms {r['rtt50']:>6.2f}ms {r['rtt99']:>6.2f}ms {r['jps']:>8.1f} "
                          f"{r['cpu']:>6.2f}ms {r['own']:>6.2f}ms {r['bound']:>8.1f}", flush=True)
                    for l in bad[:3]:
                        print("   solverd logged:", l.strip())
    finally:
        for entry in os.listdir(cgroup_root):
            path = os.path.join(cgroup_root, entry)
            if os.path.isdir(path):
                try:
                    os.rmdir(path)
                except OSError as e:
                    print(f"left behind: {path} ({e})", file=sys.stderr)
        try:
            os.rmdir(cgroup_root)
        except OSError as e:
            print(f"left behind: {cgroup_root} ({e})", file=sys.stderr)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print("targets with spares on: overhead p50 <= 2 ms; jobs/s >= 3x the spares-off figure of the same shape, "
          "or within 10% of bound/s (2 cores / cpu per job)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
