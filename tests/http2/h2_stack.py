"""The real daemons for the HTTP/2 tests: solverd (with solverd-worker) or the gRPC example
service with tether-agent, behind tether-proxy with `http2 on;`, on free ports and short temp
paths, each in a cgroup root of its own that must be empty at the end.

Daemon, rewrite and the skip code come from tests/examples/run_example.py, the harness of the
examples these tests extend.
"""
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from run_example import CGROUP2, SKIP, Daemon  # noqa: E402,F401  (the path above first; SKIP for the tests)

H2_PYTHON = "/usr/bin/python3"  # Debian's python3-h2 and python3-grpcio are for this one


class Failure(Exception):
    """A check that failed: the message and every daemon's log are printed."""


_stacks = []  # every Stack made, for the logs of a failure


class Stack:
    """solverd and tether-proxy (`http2 on;`), or, with the grpc example, the example's agent,
    service and proxy. Use as a context manager; stop() checks that no daemon logged an error
    and that no process or job cgroup is left."""

    def __init__(self, source_dir, bin_dir, name):
        self.source_dir = source_dir
        self.bin_dir = bin_dir
        self.models = os.path.join(source_dir, "tests", "solverd", "models")
        self.tmp = tempfile.mkdtemp(prefix=f"th2-{name}-", dir="/tmp")
        self.cgroup = ""
        if os.access(os.path.join(CGROUP2, "cgroup.procs"), os.W_OK):
            self.cgroup = os.path.join(CGROUP2, f"tether-h2-{name}-{os.getpid()}")
            os.mkdir(self.cgroup)
        self.daemons = []
        self.env = dict(os.environ, PATH=bin_dir + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
        self.proxy = None
        self.port = 0
        self.allowed_errors = []  # regular expressions of error lines a test provokes on purpose
        _stacks.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for d in reversed(self.daemons):
            d.stop()
        if self.cgroup and os.path.isdir(self.cgroup):
            for entry in os.scandir(self.cgroup):
                if entry.is_dir():
                    try:
                        os.rmdir(entry.path)
                    except OSError:
                        pass
            try:
                os.rmdir(self.cgroup)
            except OSError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)
        return False

    def model(self, name):
        with open(os.path.join(self.models, name), "rb") as f:
            return f.read()

    def start(self, name, argv, ready, env=None, timeout=15):
        d = Daemon(name, argv, env or self.env)
        self.daemons.append(d)
        m = d.wait_for(ready, timeout)
        if not m:
            raise Failure(f"{name} did not start")
        return d, m

    def start_solverd(self, extra=""):
        """solverd with its control socket; returns (daemon, port, control path)."""
        control = os.path.join(self.tmp, "s.sock")
        conf = (f"error_log stderr info;\nlisten 127.0.0.1:0;\ncontrol {{ listen unix:{control}; }}\n"
                f"worker_path {self.bin_dir}/solverd-worker;\nshutdown_timeout 2s;\nworkers 4;\n"
                + ("" if "spare_workers" in extra else "spare_workers 0;\n")
                + (f"cgroup_root {self.cgroup};\n" if self.cgroup else "") + extra)
        path = os.path.join(self.tmp, "solverd.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.solverd, m = self.start("solverd", [os.path.join(self.bin_dir, "solverd"), "-c", path],
                                     r"listening on 127\.0\.0\.1:(\d+)")
        if not self.solverd.wait_for(r"ready:", 10):
            raise Failure("solverd did not say ready")
        return self.solverd, int(m.group(1)), control

    def start_proxy(self, conf):
        """tether-proxy from `conf`, whose one server listens on 127.0.0.1:0; returns its port."""
        path = os.path.join(self.tmp, "proxy.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.proxy, m = self.start("proxy", [os.path.join(self.bin_dir, "tether-proxy"), "-c", path],
                                   r"listening on 127\.0\.0\.1:(\d+)")
        self.port = int(m.group(1))
        return self.port

    def solverd_behind_proxy(self, location_extra="", server_extra="", solverd_extra=""):
        """solverd behind tether-proxy (`http2 on;`): /v1/solve with `on_disconnect interrupt`
        and `kill_after 2s`; / (health, jobs) with `on_disconnect none`. solverd's own watch is
        off, so that each cancel seen is the proxy's frame."""
        _, sport, control = self.start_solverd("on_disconnect none;\n" + solverd_extra)
        self.solverd_port = sport
        return self.start_proxy(f"""error_log stderr info;
admin {{ listen unix:{self.tmp}/pa.sock; }}
upstream solverd {{
    server 127.0.0.1:{sport};
    control unix:{control};
}}
server {{
    listen 127.0.0.1:0;
    http2 on;
    access_log stderr;
{server_extra}
    location /v1/solve {{
        proxy_pass http://solverd;
        on_disconnect interrupt;
        kill_after 2s;
{location_extra}
    }}
    location / {{ proxy_pass http://solverd; on_disconnect none; }}
}}
""")

    def fail(self, message):
        raise Failure(message)

    def errors(self):
        lines = []
        for d in self.daemons:
            for line in d.lines:
                if re.search(r"\[(error|critical)\]", line) and not any(re.search(a, line) for a in self.allowed_errors):
                    lines.append(f"{d.name}: {line}")
        return lines

    def stop(self):
        """Stops every daemon and checks for logged errors and leftovers."""
        for d in reversed(self.daemons):
            d.stop()
        errors = self.errors()
        if errors:
            raise Failure("a daemon logged an error:\n" + "\n".join(errors))
        if self.cgroup and os.path.isdir(self.cgroup):
            left = [e.name for e in os.scandir(self.cgroup) if e.is_dir()]
            if left:
                raise Failure(f"job cgroups left behind: {left}")

    def dump(self):
        return "\n".join(d.text() for d in self.daemons)


def run_cases(stack, cases, *args):
    """Runs the cases named on the command line (after SOURCE_DIR BIN_DIR), or all of `cases`,
    each as cases[name](stack, *args); one failing does not hide the others. Then stops the
    stack (no error logged, nothing left) and fails naming every failed case."""
    failed = []
    for name in sys.argv[3:] or list(cases):
        print(f"{name}:", flush=True)
        try:
            cases[name](stack, *args)
        except Exception as e:  # Failure, or an assertion of the client: the next case still runs
            print(f"FAIL {name}: {e}", flush=True)
            failed.append(name)
    stack.stop()
    if failed:
        raise Failure(f"cases failed: {', '.join(failed)}")


def run(main):
    """Runs `main(source_dir, bin_dir)`, which returns 0 or SKIP or raises Failure."""
    source_dir, bin_dir = sys.argv[1], sys.argv[2]
    for name in ("tether-proxy", "solverd", "solverd-worker"):
        if not os.access(os.path.join(bin_dir, name), os.X_OK):
            print(f"FAIL: {name} is not built in {bin_dir}")
            sys.exit(1)
    try:
        code = main(source_dir, bin_dir)
    except Failure as failure:
        print(f"FAIL: {failure}")
        for stack in _stacks:
            print(stack.dump())
        sys.exit(1)
    sys.exit(code)
