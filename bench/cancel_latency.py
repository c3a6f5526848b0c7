#!/usr/bin/python3
"""Cancel latency per backend and phase (issue 14): from a cancel's arrival in solverd to the
worker's exit, over N cancels per row; p50, p99, max, and how many came back with an incumbent
(or, for an LP, a point). The kill row: DELETE ...?action=kill, to the job's exit (solverd stamps
`exited` once the job's cgroup is empty and removed).

Run through bench/cancel_latency.sh, which builds a Release tree without sanitizers and prints the
machine's load. Usage: cancel_latency.py BIN_DIR MODELS_DIR [N]

Each trial: POST /v1/solve (ndjson stream) on solverd's unix socket; wait until the solver's log or
events say it is in the phase (the row's marker); DELETE /v1/jobs/ID?action=interrupt (or kill);
read the job's line in solverd's log: `received->exited=` and `objective=`. A trial whose solve
ended before the marker or before the cancel is counted as missed, not measured.
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

BIN, MODELS = sys.argv[1], sys.argv[2]
N = int(sys.argv[3]) if len(sys.argv) > 3 else 50
# TETHER_BENCH_ROWS="glpk,kill": only the rows whose "backend phase" contains one of these.
ONLY = [o for o in os.environ.get("TETHER_BENCH_ROWS", "").split(",") if o]


def transportation_lp(n, demand=99, integer_cols=0):
    """tests/support/transportation_lp.hpp, the same generator: its simplex takes seconds at n=300."""
    state = 12345
    out = ["Minimize\n obj:"]
    for i in range(n):
        row = []
        for j in range(n):
            state = (state * 1103515245 + 12345) & 0xFFFFFFFF
            row.append(f" + {(state >> 8) % 1000 + 1} x{i}_{j}")
        out.append("".join(row) + "\n")
    out.append("Subject To\n")
    for i in range(n):
        out.append(f" s{i}:" + "".join(f" + x{i}_{j}" for j in range(n)) + " <= 100\n")
    for j in range(n):
        out.append(f" d{j}:" + "".join(f" + x{i}_{j}" for i in range(n)) + f" >= {demand}\n")
    if integer_cols:
        out.append("General\n" + "".join(f" x{i}_0" for i in range(integer_cols)) + "\n")
    out.append("End\n")
    return "".join(out)


def read_model(name):
    with open(os.path.join(MODELS, name)) as f:
        return f.read()


# backend, phase, model, marker (a regex on a log line, or "incumbent" for the first incumbent
# event), action, and the delay after the marker (so that the phase is well under way).
hard = read_model("market_split_hard.lp")
big_lp = transportation_lp(300)
big_milp = transportation_lp(300, integer_cols=300)
# The markers are the solvers' own log lines at the worker's log level 1 (looked up on these
# models): CBC prints "command line" as CbcMain1 starts (then the root LP and CglPreProcess run,
# with no line between them), "processed model has" when preprocessing is done (then the root
# node's heuristics and cut rounds); CLP prints Coin0506I after its presolve and Clp0006I during
# the dual simplex. CLP's presolve has no line before it ends, so it has no row
# (docs/cancel-latency.md).
ROWS = [
    ("cbc", "root LP + preprocess", big_milp, r"^command line", "interrupt", 0.0),
    ("cbc", "root node: heur+cuts", hard, r"^processed model has", "interrupt", 0.0),
    ("cbc", "branch and bound", hard, "incumbent", "interrupt", 0.3),
    ("clp", "dual simplex", big_lp, r"^Clp0006I", "interrupt", 0.0),
    ("glpk", "LP simplex", big_lp, r"obj =", "interrupt", 0.2),
    ("glpk", "MILP root LP", big_milp, r"obj =", "interrupt", 0.2),
    ("glpk", "branch and bound", hard, "incumbent", "interrupt", 0.3),
    ("cbc", "kill (cgroup.kill)", hard, "incumbent", "kill", 0.1),
    # Phases without a hook, cancelled with a 200 ms grace: the kill ends them at the grace.
    ("cbc", "root LP, grace 200ms", big_milp, r"^command line", "interrupt&grace_ms=200", 0.0),
]


class Solverd:
    def __init__(self, workdir, cgroup):
        self.api = os.path.join(workdir, "api.sock")
        self.log_path = os.path.join(workdir, "solverd.log")
        conf = os.path.join(workdir, "solverd.conf")
        with open(conf, "w") as f:
            f.write(f"error_log stderr info;\nlisten unix:{self.api};\nworkers 2;\nqueue_size 64;\n"
                    f"worker_path {BIN}/solverd-worker;\ncgroup_root {cgroup};\nmax_grace 10s;\n"
                    "default_time_limit 120s;\n")
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen([f"{BIN}/solverd", "-c", conf], stdout=self.log, stderr=subprocess.STDOUT)
        # Ready once a connect succeeds: the socket file exists from bind(), before listen().
        deadline = time.monotonic() + 10
        while True:
            try:
                connect(self.api).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("solverd did not start: " + open(self.log_path).read())
                time.sleep(0.01)

    def job_line(self, rid, timeout=30):
        deadline = time.monotonic() + timeout
        pattern = re.compile(rf"job={re.escape(rid)} solver=\S+ status=(\S+) objective=(\S+).*?received->exited=(\S+)")
        while time.monotonic() < deadline:
            with open(self.log_path) as f:
                for line in f:
                    m = pattern.search(line)
                    if m:
                        return m.group(1), m.group(2), m.group(3)
            time.sleep(0.02)
        return None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def trial(solverd, backend, model, marker, action, delay, rid):
    s = connect(solverd.api)
    body = model.encode()
    s.sendall((f"POST /v1/solve?solver={backend} HTTP/1.1\r\nHost: x\r\nContent-Type: text/x-lp\r\n"
               f"Accept: application/x-ndjson\r\nX-Request-Id: {rid}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
              + body)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            s.close()
            return "missed"
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    # solverd names the job after the request id it chose (it trusts no client id by default).
    m = re.search(rb"(?im)^x-request-id:\s*(\S+)", head)
    if m:
        rid = m.group(1).decode()
    seen = False
    regex = None if marker == "incumbent" else re.compile(marker)
    deadline = time.monotonic() + 120
    while not seen and time.monotonic() < deadline:
        for line in re.findall(rb"\{[^\r\n]*\}\n", buf):
            ev = json.loads(line)
            if ev.get("event") == "result":
                s.close()
                return "missed"
            if marker == "incumbent" and ev.get("event") == "incumbent":
                seen = True
            elif regex and ev.get("event") == "log" and regex.search(ev.get("line", "")):
                seen = True
        buf = buf[buf.rfind(b"\n") + 1:] if not seen else b""
        if seen:
            break
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    if not seen:
        s.close()
        return "missed"
    if delay:
        time.sleep(delay)
    c = connect(solverd.api)
    c.sendall(f"DELETE /v1/jobs/{rid}?action={action} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    c.recv(4096)
    c.close()
    got = solverd.job_line(rid)
    s.close()
    if not got:
        return "missed"
    status, objective, exited = got
    if exited == "-" or not exited.endswith("ms"):
        return "missed"
    return float(exited[:-2]), objective != "-", status


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(p / 100.0 * len(v) + 0.5)) - 1))]


def main():
    cgroot = next((l.split()[1] for l in open("/proc/mounts") if l.split()[2] == "cgroup2"), None)
    work = tempfile.mkdtemp(prefix="tcl.", dir="/tmp")
    cgroup = os.path.join(cgroot, f"tether-bench-{os.getpid()}") if cgroot else None
    if cgroup:
        os.mkdir(cgroup)
    solverd = Solverd(work, cgroup)
    print(f"{'backend':8} {'phase':20} {'n':>4} {'missed':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  incumbent/point kept, statuses")
    try:
        for backend, phase, model, marker, action, delay in ROWS:
            if ONLY and not any(o in f"{backend} {phase}" for o in ONLY):
                continue
            times, kept, missed, statuses = [], 0, 0, {}
            for i in range(N):
                r = trial(solverd, backend, model, marker, action, delay, f"bench-{backend}-{len(times)}-{i}-{time.time_ns()}")
                if r == "missed":
                    missed += 1
                    continue
                times.append(r[0])
                kept += 1 if r[1] else 0
                statuses[r[2]] = statuses.get(r[2], 0) + 1
            if times:
                print(f"{backend:8} {phase:20} {len(times):4} {missed:6} {pct(times, 50):8.2f} {pct(times, 99):8.2f} "
                      f"{max(times):8.2f}  {kept}/{len(times)}  {statuses}", flush=True)
            else:
                print(f"{backend:8} {phase:20} {0:4} {missed:6}        -        -        -  (phase never reached)", flush=True)
    finally:
        solverd.stop()
        if cgroup:
            for d in sorted((os.path.join(r, x) for r, ds, _ in os.walk(cgroup) for x in ds), reverse=True):
                os.rmdir(d)
            os.rmdir(cgroup)
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
