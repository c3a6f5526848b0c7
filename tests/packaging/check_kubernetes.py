#!/usr/bin/env python3
"""Checks packaging/kubernetes/tether.yaml: it parses, the pod has solverd and tether-proxy
sharing an emptyDir at /run/tether, probes on /health, solverd starts before and stops after the
proxy (native sidecar), terminationGracePeriodSeconds covers the drain computed from the
ConfigMap's own configurations, and those configurations pass the daemons' `-t` when built.

    check_kubernetes.py MANIFEST BIN_DIR
"""
import os
import re
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:
    print("SKIP: python3-yaml is not installed (scripts/setup-deps installs it)")
    sys.exit(77)

failures = []


def check(condition, what):
    print(("ok: " if condition else "FAILED: ") + what)
    if not condition:
        failures.append(what)


def seconds(duration):
    """A DESIGN.md duration (`25s`, `1m30s`, `250ms`) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a duration: {duration!r}")
    return sum(int(n) * units[u] for n, u in parts)


def directive(conf, name):
    match = re.search(rf"(?m)(?:^|;)\s*{name}\s+([^;]+);", conf)
    return match.group(1).strip() if match else None


manifest_path, bin_dir = sys.argv[1], sys.argv[2]
with open(manifest_path, encoding="utf-8") as f:
    docs = [d for d in yaml.safe_load_all(f) if d]
by_kind = {d["kind"]: d for d in docs}
check(set(by_kind) == {"ConfigMap", "Deployment", "Service"}, "a ConfigMap, a Deployment and a Service")

config = by_kind["ConfigMap"]["data"]
pod = by_kind["Deployment"]["spec"]["template"]["spec"]
sidecars = {c["name"]: c for c in pod.get("initContainers", [])}
mains = {c["name"]: c for c in pod["containers"]}
solverd, proxy = sidecars.get("solverd"), mains.get("tether-proxy")
check(solverd is not None and solverd.get("restartPolicy") == "Always",
      "solverd is a native sidecar (starts before, stops after tether-proxy)")
check(proxy is not None, "tether-proxy is the pod's main container")
if solverd is None or proxy is None:
    sys.exit(1)

shared = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
for c in (solverd, proxy):
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    check(mounts.get("/run/tether") in shared, f"{c['name']} mounts the shared emptyDir at /run/tether")
    for probe in ("readinessProbe", "livenessProbe"):
        check(c.get(probe, {}).get("httpGet", {}).get("path") == "/health", f"{c['name']} {probe} on /health")
    check("requests" in c.get("resources", {}) and "limits" in c.get("resources", {}),
          f"{c['name']} has resource requests and limits")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    probe_port = c["livenessProbe"]["httpGet"]["port"]
    check(probe_port in ports, f"{c['name']} probes a declared port ({probe_port})")

proxy_conf, solverd_conf = config["proxy.conf"], config["solverd.conf"]
check("/run/tether/solverd.sock" in directive(proxy_conf, "server")
      and directive(solverd_conf, "listen") == "unix:/run/tether/solverd.sock",
      "the proxy's upstream is solverd's socket on the emptyDir")
check(directive(proxy_conf, "control") == "unix:/run/tether/control.sock"
      and "unix:/run/tether/control.sock" in solverd_conf,
      "cancel frames go to solverd's control socket on the emptyDir")
check(str(proxy["livenessProbe"]["httpGet"]["port"]) in ("proxy-admin", "9901")
      and "listen 9901;" in proxy_conf, "the proxy's probe port is its admin listener")

pre_stop = 0
command = proxy.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
if command[:1] == ["sleep"]:
    pre_stop = int(command[1])
need = (pre_stop + seconds(directive(proxy_conf, "shutdown_timeout"))
        + seconds(directive(proxy_conf, "kill_after")) + seconds(directive(solverd_conf, "max_grace")))
grace = pod["terminationGracePeriodSeconds"]
check(grace > need, f"terminationGracePeriodSeconds {grace} > preStop + shutdown_timeout + kill_after "
      f"+ max_grace = {need:g}")

# The configurations themselves: each daemon's `-t`, where it is built.
with tempfile.TemporaryDirectory() as tmp:
    for daemon, name in (("tether-proxy", "proxy.conf"), ("solverd", "solverd.conf")):
        binary = os.path.join(bin_dir, daemon)
        if not os.access(binary, os.X_OK):
            print(f"not built, -t not run: {daemon}")
            continue
        path = os.path.join(tmp, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(config[name])
        result = subprocess.run([binary, "-t", "-c", path], capture_output=True, text=True, timeout=30)
        check(result.returncode == 0, f"{daemon} -t accepts the ConfigMap's {name}: {result.stderr.strip()}")

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
