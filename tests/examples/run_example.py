#!/usr/bin/python3
"""Runs one example of examples/ as its README does, on temporary paths and free ports.

    run_example.py python-service|shell-service SOURCE_DIR BIN_DIR

Starts tether-agent, the service and tether-proxy from the example's own files (agent.conf and
proxy.conf rewritten only for temporary paths and ports), then through tether-proxy:
  1. a knapsack solve that completes: 200 and cbc's optimal objective 309;
  2. a hard solve (market_split_hard.lp) whose client leaves after one second: the agent logs the
     cancel for that request id, and the cbc that tether-run registered is gone soon after.
Fails when a daemon logged an error, or left a process or a cgroup behind. Exits 77 (skip) when
the machine lacks cbc or, for the shell service, systemd-socket-activate.
"""
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SKIP = 77
CGROUP2 = "/sys/fs/cgroup/unified"  # where the team's machines mount a writable cgroup v2


class Daemon:
    """A child process whose stderr (merged with stdout) is collected line by line."""

    def __init__(self, name, argv, env=None, cwd=None):
        self.name = name
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd,
                                     start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def mark(self):
        """The number of lines so far: wait_for(..., since=mark()) looks only at later lines."""
        with self.cond:
            return len(self.lines)

    def wait_for(self, pattern, timeout=10.0, since=0):
        """The first line from `since` on matching the regular expression `pattern`, or None at
        the deadline."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        with self.cond:
            while True:
                for line in self.lines[since:]:
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    return None
                self.cond.wait(left)

    def text(self):
        with self.cond:
            return "\n".join(f"  {self.name}: {l}" for l in self.lines)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.reader.join(5)


def rewrite(text, replacements, what):
    """Each (old, new) must occur exactly once: an example that changed shape fails the test
    instead of running on its own paths and ports."""
    for old, new in replacements:
        count = text.count(old)
        if count != 1:
            raise SystemExit(f"FAIL: {what}: expected `{old}` once, found {count} times")
        text = text.replace(old, new)
    return text


def example_proxy_conf(example_dir, service_port, example_sock, sock, tmp):
    """The example's proxy.conf on temporary paths: the service's port, the agent's socket, the
    admin listener on a unix socket (so that the one TCP `listening on` line is the server's)
    and the server on port 0."""
    with open(os.path.join(example_dir, "proxy.conf")) as f:
        proxy_conf = f.read()
    return rewrite(proxy_conf, [
        (re.search(r"server (127\.0\.0\.1:\d+);", proxy_conf).group(0), f"server 127.0.0.1:{service_port};"),
        (f"control unix:{example_sock};", f"control unix:{sock};"),
        (re.search(r"admin \{ listen (\S+); \}", proxy_conf).group(0),
         f"admin {{ listen unix:{tmp}/proxy-admin.sock; }}"),
        (re.search(r"(?m)^\s*listen 127\.0\.0\.1:\d+;", proxy_conf).group(0), "\n    listen 127.0.0.1:0;"),
    ], "proxy.conf")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fail(message, daemons):
    print(f"FAIL: {message}")
    for d in daemons:
        print(d.text())
    return 1


def main():
    example, source_dir, bin_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    example_dir = os.path.join(source_dir, "examples", example)
    models = os.path.join(source_dir, "tests", "solverd", "models")
    if not shutil.which("cbc"):
        print("SKIP: cbc (coinor-cbc) is not installed")
        return SKIP
    if example == "shell-service" and not shutil.which("systemd-socket-activate"):
        print("SKIP: systemd-socket-activate (systemd) is not installed")
        return SKIP
    for name in ("tether-agent", "tether-run", "tether-proxy"):
        if not os.access(os.path.join(bin_dir, name), os.X_OK):
            print(f"FAIL: {name} is not built in {bin_dir}")
            return 1

    tmp = tempfile.mkdtemp(prefix=f"tether-{example}-")
    cgroup = ""
    if os.access(os.path.join(CGROUP2, "cgroup.procs"), os.W_OK):
        cgroup = os.path.join(CGROUP2, f"tether-example-test-{os.getpid()}")
    daemons = []
    try:
        return run(example, example_dir, models, bin_dir, tmp, cgroup, daemons)
    finally:
        for d in reversed(daemons):
            d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        if cgroup and os.path.isdir(cgroup):
            for entry in os.scandir(cgroup):
                if entry.is_dir():
                    os.rmdir(entry.path)
            os.rmdir(cgroup)


def run(example, example_dir, models, bin_dir, tmp, cgroup, daemons):
    env = dict(os.environ, PATH=bin_dir + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
    python = example == "python-service"
    sock = os.path.join(tmp, "agent.sock")

    # tether-agent, from agent.conf.
    with open(os.path.join(example_dir, "agent.conf")) as f:
        agent_conf = f.read()
    example_sock = re.search(r"listen unix:(\S+);", agent_conf).group(1)
    example_cgroup = re.search(r"cgroup_root (\S+);", agent_conf).group(1)
    agent_conf = rewrite(agent_conf, [
        (f"listen unix:{example_sock};", f"listen unix:{sock};"),
        (re.search(r"admin \{ listen (\S+); \}", agent_conf).group(1) + ";", "127.0.0.1:0;"),
        (f"cgroup_root {example_cgroup};", f"cgroup_root {cgroup};" if cgroup else ""),
    ], "agent.conf")
    with open(os.path.join(tmp, "agent.conf"), "w") as f:
        f.write(agent_conf)
    agent = Daemon("agent", [os.path.join(bin_dir, "tether-agent"), "-c", os.path.join(tmp, "agent.conf")], env)
    daemons.append(agent)
    if not agent.wait_for(re.escape(f"listening on unix:{sock}")):
        return fail("tether-agent did not start", daemons)

    # The service, as its README starts it, with TETHER_AGENT pointing at the agent.
    service_env = dict(env, TETHER_AGENT=f"unix:{sock}")
    if python:
        service = Daemon("service", [os.path.join(example_dir, "service.py")], dict(service_env, PORT="0"))
        daemons.append(service)
        m = service.wait_for(r"listening on 127\.0\.0\.1:(\d+)")
    else:
        # systemd-socket-activate cannot listen on port 0 and say which port it got: a free
        # port, taken again at once.
        service = Daemon("service", ["systemd-socket-activate", "--inetd", "--accept", "--listen",
                                     f"127.0.0.1:{free_port()}", "-E", "PATH", "-E", "TETHER_AGENT",
                                     os.path.join(example_dir, "solve.sh")],
                         service_env)
        daemons.append(service)
        m = service.wait_for(r"Listening on 127\.0\.0\.1:(\d+)")
    if not m:
        return fail("the service did not start", daemons)
    service_port = m.group(1)

    # tether-proxy, from proxy.conf; its admin listener on a unix socket so that the one TCP
    # `listening on` line is the server's.
    proxy_conf = example_proxy_conf(example_dir, service_port, example_sock, sock, tmp)
    with open(os.path.join(tmp, "proxy.conf"), "w") as f:
        f.write(proxy_conf)
    proxy = Daemon("proxy", [os.path.join(bin_dir, "tether-proxy"), "-c", os.path.join(tmp, "proxy.conf")], env)
    daemons.append(proxy)
    m = proxy.wait_for(r"listening on 127\.0\.0\.1:(\d+)")
    if not m:
        return fail("tether-proxy did not start", daemons)
    proxy_port = int(m.group(1))

    # 1. A solve that completes.
    with open(os.path.join(models, "knapsack.lp"), "rb") as f:
        request = urllib.request.Request(f"http://127.0.0.1:{proxy_port}/solve", data=f.read(),
                                         headers={"Content-Type": "text/x-lp"})
    with urllib.request.urlopen(request, timeout=30) as response:
        status, body = response.status, response.read().decode()
    if status != 200 or "Optimal - objective value 309" not in body:
        return fail(f"knapsack: {status} {body!r}", daemons)
    print(f"knapsack through tether-proxy: {status} {body.splitlines()[0]}")

    # 2. A hard solve whose client leaves after one second.
    with open(os.path.join(models, "market_split_hard.lp"), "rb") as f:
        model = f.read()
    since = agent.mark()
    client = socket.create_connection(("127.0.0.1", proxy_port))
    client.sendall(f"POST /solve HTTP/1.1\r\nHost: example\r\nContent-Type: text/x-lp\r\n"
                   f"Content-Length: {len(model)}\r\n\r\n".encode() + model)
    sent = time.monotonic()
    # tether-run execs cbc in its own place: the registered pid is cbc's.
    m = agent.wait_for(r"registered rid=(\S+) pid=(\d+)", 10, since)
    if not m:
        return fail("the hard solve never registered with tether-agent", daemons)
    rid, pid = m.group(1), int(m.group(2))
    try:
        cbc = os.pidfd_open(pid)  # readable once that process has ended (pidfd_open(2))
    except ProcessLookupError:
        return fail(f"cbc (pid {pid}) ended before the client left: the model is too easy", daemons)
    try:
        time.sleep(max(0.0, 1.0 - (time.monotonic() - sent)))  # the client's patience, not a synchronization
        if select.select([cbc], [], [], 0)[0]:
            return fail(f"cbc (pid {pid}) ended before the client left: the model is too easy", daemons)
        client.close()
        left = time.monotonic()
        if not select.select([cbc], [], [], 10)[0]:
            return fail(f"cbc (pid {pid}) of rid={rid} still runs 10 s after its client left", daemons)
        gone_ms = 1000 * (time.monotonic() - left)
    finally:
        os.close(cbc)
    if not agent.wait_for(rf"cancel rid={re.escape(rid)} action=interrupt", 5):
        return fail(f"tether-agent logged no cancel for rid={rid}", daemons)
    if not agent.wait_for(rf"target rid={re.escape(rid)} pid={pid} done", 5):
        return fail(f"tether-agent logged no end of cbc of rid={rid}", daemons)
    print(f"hard solve rid={rid}: client left, cbc pid {pid} gone {gone_ms:.0f} ms later")
    if not proxy.wait_for(rf"{re.escape(rid)}.* 499|499 .*{re.escape(rid)}", 5):
        return fail(f"tether-proxy logged no 499 for rid={rid}", daemons)

    for d in reversed(daemons):
        d.stop()
    errors = [l for d in (agent, proxy) for l in d.lines if re.search(r"\[(error|critical)\]", l)]
    if errors:
        return fail("a daemon logged an error:\n" + "\n".join(errors), daemons)
    leftovers = [e.name for e in os.scandir(cgroup) if e.is_dir()] if cgroup and os.path.isdir(cgroup) else []
    if leftovers:
        return fail(f"tether-agent left cgroups behind: {leftovers}", daemons)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
