#!/usr/bin/python3
"""Tiny jobs through solverd, warm workers off, exec'd and forked (issue 15), in one run.

For each backend (cbc, clp, glpk) solving tests/solverd/models/knapsack.lp, with `spare_workers 0`
(start "off"), and with `spare_workers N` (default 2) made by exec (`spare_start exec`) and by the
fork server (`spare_start fork`), in two shapes: one client sending its jobs one after another,
and 4 keep-alive clients on `workers 2`. For every run it prints:

  overhead  the job's `run` (GET /v1/jobs/ID run_ms: start to end in solverd) minus the worker's
            `solve_time_ms`: process start (or spare hand-off), the model's trip, set-up, exit;
            p50 and p99
  rtt       the request's round trip seen by the client, p50 and p99
  jobs/s    jobs over the run's wall time
  cpu/job   cpu.stat usage of the job cgroups (the result's cpu_ms, which includes an exec'd
            spare's own start) plus solverd's own CPU and the fork server's (/proc/PID/stat
            utime+stime: a fork is charged to the server, not to the job) over the run, per job
  own/job   solverd's and the fork server's part of it
  cli/job   the bench's own CPU (getrusage(RUSAGE_SELF) around the run: the Python clients, which
            share the 2 cores with solverd)
  bound/s   the CPU bound: 2 cores / cpu-per-job
  bnd-cli/s the same with the clients' share taken out: (2 cores - the clients' CPU / wall time)
            / cpu-per-job; %bnd-cli is jobs/s against it (the issue's target: >= 90%)
  spare     how many jobs got a warm worker (worker_start "spare"); forked: spares the fork
            server made during the run (solverd_spare_workers_forked_total)

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
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from benchlib import cgroup2_mount, proc_cpu_ms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(p / 100.0 * len(values) + 0.5)) - 1))
    return values[k]


class Solverd:
    def __init__(self, bin_dir, cgroup_root, workers, spares, start):
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
spare_start {start};
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
        self.cgroup_root = cgroup_root

    def fork_server_pids(self):
        """The fork server's processes (in a job-fork-server* cgroup); none with spare_start exec."""
        pids = []
        for entry in os.listdir(self.cgroup_root):
            if entry.startswith("job-fork-server"):
                try:
                    with open(os.path.join(self.cgroup_root, entry, "cgroup.procs")) as f:
                        pids += [int(p) for p in f.read().split()]
                except OSError:
                    pass
        return pids

    def own_cpu_ms(self):
        """solverd's CPU plus the fork server's (its children are solverd's, not in its figure)."""
        total = proc_cpu_ms(self.proc.pid)
        for pid in self.fork_server_pids():
            try:
                total += proc_cpu_ms(pid)
            except OSError:
                pass
        return total

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

    def metric(self, name):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
        return float(m.group(1)) if m else float("nan")

    def wait_spares(self, n, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.metric("solverd_spare_workers") >= n:
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

    forked0 = d.metric("solverd_spare_workers_forked_total")
    cpu0 = d.own_cpu_ms()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    own_ms = d.own_cpu_ms() - cpu0
    client_ms = ((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)) * 1000.0
    forked = d.metric("solverd_spare_workers_forked_total") - forked0
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
    jps = n / wall
    # The cores left to solverd once the clients took theirs (client_ms over wall seconds = ms/s).
    cores_left = 2.0 - client_ms / (wall * 1000.0)
    bound_cli = cores_left * 1000.0 / cpu_per_job if cpu_per_job > 0 else float("nan")
    return {
        "n": n, "spare": spare, "forked": int(forked) if forked == forked else -1, "wall": wall,
        "cli": client_ms / n, "bound_cli": bound_cli, "pct_cli": 100.0 * jps / bound_cli if bound_cli > 0 else float("nan"),
        "ovh50": percentile(overhead, 50), "ovh99": percentile(overhead, 99),
        "rtt50": percentile(rtts, 50), "rtt99": percentile(rtts, 99),
        "jps": jps, "cpu": cpu_per_job, "own": own_ms / n,
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
    header = (f"{'solver':6} {'start':5} {'spares':>6} {'shape':22} {'jobs':>5} {'spare':>5} {'forked':>6} "
              f"{'ovh p50':>8} {'ovh p99':>8} {'rtt p50':>8} {'rtt p99':>8} {'jobs/s':>8} {'cpu/job':>8} "
              f"{'own/job':>8} {'cli/job':>8} {'bound/s':>8} {'bnd-cli/s':>9} {'%bnd-cli':>8}")
    print(header)
    print("-" * len(header))
    shapes = [("1 client, sequential", 1, 2), ("4 clients, 2 workers", 4, 2)]
    try:
        for solver in args.solvers.split(","):
            for start, spares in (("off", 0), ("exec", args.spares), ("fork", args.spares)):
                for name, clients, workers in shapes:
                    d = Solverd(bin_dir, cgroup_root, workers, spares, "exec" if start == "off" else start)
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
                    print(f"{solver:6} {start:5} {spares:>6} {name:22} {r['n']:>5} {r['spare']:>5} {r['forked']:>6} "
                          f"{r['ovh50']:>6.2f}ms {r['ovh99']:>6.2f}ms {r['rtt50']:>6.2f}ms {r['rtt99']:>6.2f}ms "
                          f"{r['jps']:>8.1f} {r['cpu']:>6.2f}ms {r['own']:>6.2f}ms {r['cli']:>6.2f}ms "
                          f"{r['bound']:>8.1f} {r['bound_cli']:>9.1f} {r['pct_cli']:>7.1f}%", flush=True)
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
          "or within 10% of the CPU bound: bound/s is 2 cores / cpu per job, bnd-cli/s the same with the "
          "bench clients' CPU taken out of the 2 cores (the clients run on the same machine); %bnd-cli >= 90")
    return 0


if __name__ == "__main__":
    sys.exit(main())
