#!/usr/bin/python3
"""Debian's real Prometheus server scrapes the admin listeners of solverd, tether-proxy and
tether-agent while solves run and clients leave, evaluates packaging/prometheus's rules, and
PromQL over the scraped series shows the cancels counted on each side.

Usage: scrape_test.py SOURCE_DIR BIN_DIR. Exit 77 (skipped) without prometheus or a binary.
Everything binds port 0 (admin listeners on 127.0.0.3, so their `listening on` lines tell
them apart), lives in one temp directory and one cgroup, and is stopped at the end.
"""
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

src, bin_dir = sys.argv[1], sys.argv[2]
PROMETHEUS = shutil.which("prometheus")
if PROMETHEUS is None:
    print("SKIP: prometheus is not installed (Debian's prometheus package; scripts/setup-deps)")
    sys.exit(77)
for b in ("solverd", "solverd-worker", "tether-proxy", "tether-agent", "tether-run"):
    if not os.access(os.path.join(bin_dir, b), os.X_OK):
        print(f"SKIP: {b} is not built in {bin_dir}")
        sys.exit(77)

CLIENTS_THAT_LEAVE = 3
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
started = time.monotonic()
failures = 0


def check(what, ok, detail=""):
    global failures
    print(("ok: " if ok else "FAILED: ") + what, flush=True)
    if not ok:
        failures += 1
        if detail:
            print(detail)


class Daemon:
    """A child process whose stderr is read line by line (non-blocking, by select)."""

    def __init__(self, name, argv):
        self.name = name
        self.lines = []
        self.buf = b""
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)

    def pump(self, timeout):
        fd = self.proc.stderr.fileno()
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            return
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        self.buf += chunk
        *done, self.buf = self.buf.split(b"\n")
        self.lines += [d.decode("utf-8", "replace") for d in done]

    def wait_line(self, pattern, timeout=15.0):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                m = rx.search(line)
                if m:
                    return m
            seen = len(self.lines)
            if self.proc.poll() is not None:
                self.pump(0)
                if len(self.lines) == seen:
                    return None
            self.pump(min(0.2, max(0.0, deadline - time.monotonic())))
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        while True:
            before = len(self.lines)
            self.pump(0)
            if len(self.lines) == before:
                break

    def errors(self):
        return [l for l in self.lines if "[error]" in l or "[critical]" in l]


def http(host, port, method, target, body=b"", headers=None, timeout=10):
    conn = socket.create_connection((host, port), timeout=timeout)
    head = f"{method} {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    conn.sendall(head.encode() + b"\r\n" + body)
    data = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    conn.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.") else 0
    return status, data.split(b"\r\n\r\n", 1)[-1]


def frame(obj):
    payload = json.dumps(obj).encode()
    return struct.pack("<I", len(payload)) + payload


def read_frame(sock):
    def exact(n):
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise EOFError
            out += chunk
        return out
    (n,) = struct.unpack("<I", exact(4))
    return json.loads(exact(n))


def cgroup_root():
    for base in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        if os.path.exists(base + "/cgroup.procs"):
            root = f"{base}/tether-prom-{os.getpid()}"
            try:
                os.mkdir(root)
                return root
            except OSError:
                pass
    return None


tmp = tempfile.mkdtemp(prefix="tprom-", dir="/tmp")
cg = cgroup_root()
daemons = []
try:
    # --- the three daemons, admin listeners on 127.0.0.3:0 -----------------------------------
    def launch(name, conf, patterns):
        """Starts bin/NAME -c TMP/NAME.conf; returns it and the matches of `patterns`, in order."""
        with open(f"{tmp}/{name}.conf", "w") as f:
            f.write("error_log stderr info;\nadmin { listen 127.0.0.3:0; }\n" + conf)
        d = Daemon(name, [f"{bin_dir}/{name}", "-c", f"{tmp}/{name}.conf"])
        daemons.append(d)
        found = [d.wait_line(p) for p in patterns]
        if not all(found):
            raise RuntimeError(f"{name} did not start:\n" + "\n".join(d.lines))
        return d, found

    api, admin = r"listening on 127\.0\.0\.1:(\d+)", r"listening on 127\.0\.0\.3:(\d+)"
    cg_line = f"cgroup_root {cg};\n" if cg else ""
    solverd, (m_api, m_sadmin, _) = launch(
        "solverd", f"listen 127.0.0.1:0;\ncontrol {{ listen unix:{tmp}/control.sock; }}\nworkers 2;\n"
                   f"queue_size 10;\n{cg_line}worker_path {bin_dir}/solverd-worker;\nshutdown_timeout 2s;\n"
                   f"on_disconnect none;\n", [api, admin, "ready:"])
    agent, (m_aadmin,) = launch(
        "tether-agent", f"control {{ listen unix:{tmp}/agent.sock; }}\n{cg_line}default_grace 1s;\n", [admin])
    proxy, (m_plisten, m_padmin, _) = launch(
        "tether-proxy", f"upstream solverd {{ server 127.0.0.1:{m_api[1]}; control unix:{tmp}/control.sock; }}\n"
                        f"server {{ listen 127.0.0.1:0; access_log off;\n"
                        f"  location /v1/solve {{ proxy_pass http://solverd; on_disconnect interrupt; kill_after 2s; }}\n"
                        f"  location / {{ proxy_pass http://solverd; on_disconnect none; }}\n}}\n",
        [api, admin, r"control connected"])
    proxy_port = int(m_plisten[1])

    # --- Prometheus, scraping every second, with the shipped rules ------------------------------
    with socket.socket() as s:  # a free port for Prometheus' own web listener
        s.bind(("127.0.0.1", 0))
        prom_port = s.getsockname()[1]
    rules = [f"{src}/packaging/prometheus/tether-recording.rules.yml",
             f"{src}/packaging/prometheus/tether-alerts.rules.yml"]
    with open(f"{tmp}/prometheus.yml", "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "rule_files:\n" + "".join(f"  - {r}\n" for r in rules) +
                "scrape_configs:\n" +
                "".join(f"  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.3:{port}']\n"
                        for job, port in (("solverd", m_sadmin[1]), ("tether-proxy", m_padmin[1]),
                                          ("tether-agent", m_aadmin[1]))))
    prometheus = Daemon("prometheus", [PROMETHEUS, f"--config.file={tmp}/prometheus.yml",
                                       f"--storage.tsdb.path={tmp}/data",
                                       f"--web.listen-address=127.0.0.1:{prom_port}"])
    daemons.append(prometheus)
    if not prometheus.wait_line(r"Server is ready to receive web requests", 20):
        raise RuntimeError("prometheus did not start:\n" + "\n".join(prometheus.lines[-20:]))

    def query(promql):
        url = f"http://127.0.0.1:{prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as r:
            reply = json.load(r)
        if reply.get("status") != "success":
            raise RuntimeError(f"{promql}: {reply}")
        return reply["data"]["result"]

    def value(promql):
        result = query(promql)
        return float(result[0]["value"][1]) if result else None

    def wait_value(promql, predicate, timeout=15.0):
        deadline = time.monotonic() + timeout
        v = None
        while time.monotonic() < deadline:
            v = value(promql)
            if v is not None and predicate(v):
                return v
            prometheus.pump(0.25)  # waits a quarter second on the server's own output
        return v

    up = wait_value('count(up{job=~"solverd|tether-proxy|tether-agent"} == 1)', lambda v: v == 3)
    check("Prometheus scrapes the three admin listeners (up == 1)", up == 3, f"count: {up}")

    # --- solves through the proxy: some complete, some clients leave mid-solve -------------------
    with open(f"{src}/tests/solverd/models/knapsack.lp", "rb") as f:
        small = f.read()
    with open(f"{src}/tests/solverd/models/market_split_hard.lp", "rb") as f:
        hard = f.read()
    status, _ = http("127.0.0.1", proxy_port, "POST", "/v1/solve?solver=cbc", small, {"Content-Type": "text/x-lp"})
    check("a small solve through the proxy completes", status == 200, f"status {status}")
    for i in range(CLIENTS_THAT_LEAVE):
        c = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
        c.sendall(f"POST /v1/solve?solver=cbc HTTP/1.1\r\nHost: t\r\nContent-Type: text/x-lp\r\n"
                  f"Accept: application/x-ndjson\r\nContent-Length: {len(hard)}\r\n\r\n".encode() + hard)
        got = b""
        while b"\r\n\r\n" not in got:  # the head (sent with the `accepted` event): the job exists
            chunk = c.recv(4096)
            if not chunk:
                break
            got += chunk
        check(f"client {i + 1} that leaves got its response head", got.startswith(b"HTTP/1.1 200"), got[:80])
        c.close()
    # A supervised command under tether-agent, cancelled by a frame as the proxy would send it.
    # The service passes its request's trace to the command in $TRACEPARENT (OpenTelemetry's
    # environment carrier); tether-run hands it to the agent with the registration.
    run = subprocess.Popen([f"{bin_dir}/tether-run", "--agent", f"unix:{tmp}/agent.sock", "--id",
                            "prom-scrape-1", "--require-agent", "--", "sleep", "30"],
                           env=dict(os.environ, TRACEPARENT=f"00-{TRACE_ID}-b7ad6b7169203331-01"))
    check("tether-agent logs the registration with the trace id of $TRACEPARENT",
          agent.wait_line(r"registered rid=prom-scrape-1 .* trace=" + TRACE_ID) is not None, "\n".join(agent.lines))
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(f"{tmp}/agent.sock")
        s.sendall(frame({"type": "hello", "version": 1, "role": "proxy"}))
        read_frame(s)
        s.sendall(frame({"type": "status"}))
        targets = read_frame(s).get("targets", [])
        check("the agent's status record of the command has its trace id",
              [t.get("trace_id") for t in targets if t.get("id") == "prom-scrape-1"] == [TRACE_ID], str(targets))
        s.sendall(frame({"type": "cancel", "id": "prom-scrape-1", "action": "interrupt", "grace_ms": 1000,
                         "reason": "client_disconnect", "trace_id": TRACE_ID}))
        ack = read_frame(s)
    check("tether-agent acknowledges the cancel of a running command", ack.get("state") == "running", str(ack))
    check("tether-agent logs the cancel frame's trace id with the cancel and the command's end",
          agent.wait_line(r"cancel rid=prom-scrape-1 .* trace=" + TRACE_ID) is not None and
          agent.wait_line(r"target rid=prom-scrape-1 .* trace=" + TRACE_ID) is not None, "\n".join(agent.lines))
    try:
        run.wait(10)
    except subprocess.TimeoutExpired:
        run.kill()
        run.wait()

    # --- the cancels, counted by PromQL over the scraped series ----------------------------------
    n = CLIENTS_THAT_LEAVE
    v = wait_value('sum(tether_proxy_cancels_total{action="interrupt",result="sent"})', lambda v: v >= n)
    check(f"PromQL: tether-proxy sent {n} interrupt cancels", v == n, f"value {v}")
    v = wait_value('sum(tether_proxy_disconnects_total)', lambda v: v >= n)
    check(f"PromQL: tether-proxy counted {n} client disconnects", v == n, f"value {v}")
    v = wait_value('sum(solverd_cancels_total{action="interrupt"})', lambda v: v >= n)
    check(f"PromQL: solverd counted {n} interrupt cancels", v == n, f"value {v}")
    v = wait_value('sum(solverd_jobs_total{status="interrupted"})', lambda v: v >= n)
    check(f"PromQL: solverd finished {n} jobs as interrupted", v == n, f"value {v}")
    v = wait_value('sum(tether_agent_cancels_total{action="interrupt",result="running"})', lambda v: v >= 1)
    check("PromQL: tether-agent counted the cancel of its running command", v == 1, f"value {v}")
    # A counter born at its first cancel has no increase to rate yet: the recorded series exists.
    v = wait_value('count(instance_action_result:tether_proxy_cancels:rate5m{result="sent"})', lambda v: v >= 1)
    check("the shipped recording rules evaluate over the scraped series", v == 1, f"count {v}")
    with open(f"{src}/packaging/prometheus/tether-dashboard.json") as f:
        panels = json.load(f)["panels"]
    bad = []
    for p in panels:
        for t in p.get("targets", []):
            try:
                query(t["expr"])
            except Exception as e:  # noqa: BLE001 - any failure is the panel's
                bad.append(f"{p['title']}: {e}")
    check("every dashboard panel's query runs on the live server", not bad, "\n".join(bad))
    alerts = query('ALERTS{alertstate="firing",alertname=~"TetherControlConnectionDown|TetherDaemonDown"}')
    check("no down alert fires while everything runs", not alerts, json.dumps(alerts))
finally:
    for d in reversed(daemons):
        d.stop()
    for d in daemons:
        if d.name != "prometheus" and d.errors():
            check(f"{d.name} logged no error", False, "\n".join(d.errors()))
    shutil.rmtree(tmp, ignore_errors=True)
    if cg:
        for entry in os.listdir(cg) if os.path.isdir(cg) else []:
            if entry.startswith("job-") or entry.startswith("target-"):
                try:
                    os.rmdir(os.path.join(cg, entry))
                except OSError:
                    pass
        try:
            os.rmdir(cg)
        except OSError as e:
            check(f"cgroup {cg} removed", False, str(e))

print(f"{time.monotonic() - started:.1f} s; load average {os.getloadavg()}")
print(f"{failures} failed")
sys.exit(1 if failures else 0)
