#!/usr/bin/python3
"""The measurement of bench/abandoned_solve.sh (run that script; it builds the binaries).

    abandoned_solve.py SOURCE_DIR BIN_DIR CAP_SECONDS

(a) nginx (1 worker) in front of examples/python-service/service.py with TETHER_RUN=off, which
    runs cbc directly: the client sends market_split_hard.lp, leaves 1 s later, and we watch the
    cbc it started: how long it runs on after the client left (up to CAP_SECONDS, then "still
    running at the cap" and we kill it), and the CPU seconds it burns in that time
    (utime + stime from /proc/PID/stat, sampled every 10 ms).
(b) tether-proxy (on_disconnect interrupt) in front of solverd: the same client, and the time
    from its close to solverd's job line (logged once the worker has exited and the job ended:
    an upper bound on the worker's exit), that line's status and objective (the incumbent the
    interrupted solver returned) and solverd's own received->exited.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "examples"))
from run_example import Daemon  # noqa: E402  the same child-process helper as the examples' test

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (proc(5) fields 14, 15)
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def cbc_pids(marker):
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == b"cbc" and any(marker.encode() in a for a in argv):
            pids.append(int(entry))
    return pids


def send_hard_solve(port, path, model, content_type="text/x-lp"):
    client = socket.create_connection(("127.0.0.1", port))
    client.sendall(f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: {content_type}\r\n"
                   f"Content-Length: {len(model)}\r\n\r\n".encode() + model)
    return client, time.monotonic()


def behind_nginx(source_dir, model, cap, work, daemons):
    env = dict(os.environ, TETHER_RUN="off", PORT="0", TMPDIR=work)
    service = Daemon("service", [os.path.join(source_dir, "examples", "python-service", "service.py")], env)
    daemons.append(service)
    service_port = service.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1)
    with socket.socket() as s:  # nginx cannot listen on port 0 and tell: a free port, taken at once
        s.bind(("127.0.0.1", 0))
        nginx_port = s.getsockname()[1]
    temp = " ".join(f"{d}_temp_path {work};" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(f"daemon off; master_process off; worker_processes 1; error_log stderr notice; pid {work}/nginx.pid;\n"
                f"events {{ worker_connections 1024; }}\n"
                f"http {{ access_log {work}/access.log; {temp}\n"
                f"  server {{ listen 127.0.0.1:{nginx_port}; client_max_body_size 64m;\n"
                f"    location /solve {{ proxy_pass http://127.0.0.1:{service_port}; proxy_http_version 1.1;\n"
                f"      proxy_read_timeout 2h; }} }} }}\n")
    nginx = Daemon("nginx", ["nginx", "-p", work, "-c", os.path.join(work, "nginx.conf"), "-e", "stderr"])
    daemons.append(nginx)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # nginx says nothing when it is up: connect until it answers
        try:
            socket.create_connection(("127.0.0.1", nginx_port), 0.1).close()
            break
        except OSError:
            time.sleep(0.02)

    client, sent = send_hard_solve(nginx_port, "/solve", model)
    pid = None
    while pid is None and time.monotonic() < sent + 10:
        found = cbc_pids(work)  # the service's model is under TMPDIR=work
        pid = found[0] if found else None
        time.sleep(0.01)
    if pid is None:
        raise SystemExit("nginx: cbc never started\n" + service.text() + nginx.text())
    time.sleep(max(0.0, sent + 1.0 - time.monotonic()))  # the client's patience
    cpu_at_close = cpu_seconds(pid)
    client.close()
    left = time.monotonic()
    last_cpu = cpu_at_close
    while time.monotonic() < left + cap:
        cpu = cpu_seconds(pid)
        if cpu is None:
            break
        last_cpu = cpu
        time.sleep(0.01)
    ran_on = time.monotonic() - left
    still_running = cpu_seconds(pid) is not None
    if still_running:
        os.kill(pid, 9)  # the benchmark's own cleanup, not part of the figure
    return {"ran_on": ran_on, "still_running": still_running, "cpu": last_cpu - cpu_at_close}


def start_daemon(daemons, work, name, binary, conf):
    """Writes NAME.conf, starts BINARY -c on it, returns the port of its `listening on` line."""
    path = os.path.join(work, name + ".conf")
    with open(path, "w") as f:
        f.write(conf)
    daemon = Daemon(name, [binary, "-c", path])
    daemons.append(daemon)
    m = daemon.wait_for(r"listening on 127\.0\.0\.1:(\d+)")
    if not m:
        raise SystemExit(f"{name} did not start\n" + daemon.text())
    return daemon, m.group(1)


def behind_tether(bin_dir, model, work, cgroup, daemons):
    solverd, solverd_port = start_daemon(
        daemons, work, "solverd", os.path.join(bin_dir, "solverd"),
        f"error_log stderr info;\nlisten 127.0.0.1:0;\ncontrol {{ listen unix:{work}/control.sock; }}\n"
        f"admin {{ listen unix:{work}/solverd-admin.sock; }}\n"
        f"cgroup_root {cgroup};\nworker_path {bin_dir}/solverd-worker;\nworkers 1;\nshutdown_timeout 2s;\n")
    solverd.wait_for("ready:")
    proxy, proxy_port = start_daemon(
        daemons, work, "proxy", os.path.join(bin_dir, "tether-proxy"),
        f"error_log stderr info;\nadmin {{ listen unix:{work}/proxy-admin.sock; }}\n"
        f"upstream solverd {{ server 127.0.0.1:{solverd_port}; control unix:{work}/control.sock; }}\n"
        f"server {{ listen 127.0.0.1:0; client_max_body_size 64m;\n"
        f"  location /v1/solve {{ proxy_pass http://solverd; on_disconnect interrupt; kill_after 5s;\n"
        f"    proxy_read_timeout 2h; }} }}\n")

    client, sent = send_hard_solve(int(proxy_port), "/v1/solve", model)
    time.sleep(max(0.0, sent + 1.0 - time.monotonic()))
    client.close()
    left = time.monotonic()
    line = solverd.wait_for(r"job=(\S+) solver=\S+ status=(\S+) objective=(\S+).*?(received->exited=\S+)?$", 30)
    if not line:
        raise SystemExit("solverd logged no end of the job within 30 s\n" + solverd.text() + proxy.text())
    return {"to_job_line": time.monotonic() - left, "status": line.group(2), "objective": line.group(3),
            "received_exited": (line.group(4) or "").split("=")[-1]}


def main():
    source_dir, bin_dir, cap = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with open(os.path.join(source_dir, "tests", "solverd", "models", "market_split_hard.lp"), "rb") as f:
        model = f.read()
    cgroup2 = subprocess.run(["findmnt", "-n", "-t", "cgroup2", "-o", "TARGET"], capture_output=True,
                             text=True).stdout.split()
    if not cgroup2:
        raise SystemExit("no cgroup v2 mount: solverd needs one")
    cgroup = os.path.join(cgroup2[0], f"tether-abandoned-solve-{os.getpid()}")
    work = tempfile.mkdtemp(prefix="tether-abandoned-")
    daemons = []
    try:
        a = behind_nginx(source_dir, model, cap, work, daemons)
        for d in reversed(daemons):
            d.stop()
        daemons.clear()
        b = behind_tether(bin_dir, model, work, cgroup, daemons)
    finally:
        for d in reversed(daemons):
            d.stop()
        shutil.rmtree(work, ignore_errors=True)
        if os.path.isdir(cgroup):
            for path, _, _ in sorted(os.walk(cgroup), key=lambda w: -len(w[0])):
                os.rmdir(path)  # deepest first; cgroupfs refuses rmdir of a cgroup with children

    ran_on = f"still running at the cap ({cap:.0f} s)" if a["still_running"] else f"{a['ran_on']:.2f} s"
    rows = [("front", "the solver after the client left", "CPU s after", "what came back"),
            ("nginx -> service, plain cbc", "cbc ran on: " + ran_on, f"{a['cpu']:.2f}", "nothing (nobody is told)"),
            ("tether-proxy -> solverd", f"worker gone <= {1000 * b['to_job_line']:.0f} ms after the close",
             "-", f"status={b['status']} objective={b['objective']}")]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print("A client leaves a hard solve (market_split_hard.lp) 1 s after sending it:\n")
    for n, row in enumerate(rows):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print(f"\nsolverd's own count for the job: cancel received -> worker exited {b['received_exited']}")

if __name__ == "__main__":
    main()
