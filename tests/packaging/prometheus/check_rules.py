#!/usr/bin/python3
"""packaging/prometheus checked by Prometheus' own promtool:
  - `promtool check rules` on the recording and alert rules;
  - every expression of the Grafana dashboard, written out as a recording rule, through
    `promtool check rules` too (Grafana is not in Debian, so this is where a panel's PromQL is
    parsed), and every panel reads at least one series;
  - every metric the rules and panels read is named in docs/DESIGN.md "Metrics", so that a
    renamed metric cannot leave a silent alert behind;
  - `promtool test rules` on alerts_test.yml: each alert fires on its synthetic series.
Usage: check_rules.py SOURCE_DIR. Exit 77 (skipped) without promtool.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

src = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
prom = os.path.join(src, "packaging", "prometheus")
rule_files = [os.path.join(prom, f) for f in ("tether-recording.rules.yml", "tether-alerts.rules.yml")]
promtool = shutil.which("promtool")
if promtool is None:
    print("SKIP: promtool is not installed (Debian's prometheus package; scripts/setup-deps)")
    sys.exit(77)

failures = 0


def check(what, ok, detail=""):
    global failures
    print(("ok: " if ok else "FAILED: ") + what)
    if not ok:
        failures += 1
        if detail:
            print(detail)


def run(args):
    p = subprocess.run(args, capture_output=True, text=True)
    return p.returncode == 0, p.stdout + p.stderr


ok, out = run([promtool, "check", "rules", *rule_files])
check("promtool check rules on the recording and alert rules", ok, out)

with open(os.path.join(prom, "tether-dashboard.json")) as f:
    dashboard = json.load(f)
exprs = []
for panel in dashboard["panels"]:
    if panel.get("type") == "row":
        continue
    targets = panel.get("targets", [])
    check(f"panel {panel['id']} \"{panel['title']}\" has a query", len(targets) > 0)
    for t in targets:
        exprs.append((f"dashboard:panel_{panel['id']}_{t['refId']}", t["expr"]))
recorded = {r["record"] for f in rule_files for g in yaml.safe_load(open(f))["groups"]
            for r in g["rules"] if "record" in r}
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "dashboard.rules.yml")
    with open(path, "w") as f:
        yaml.safe_dump({"groups": [{"name": "tether.dashboard",
                                    "rules": [{"record": r, "expr": e} for r, e in exprs]}]}, f)
    ok, out = run([promtool, "check", "rules", path])
    check(f"promtool check rules on the dashboard's {len(exprs)} panel expressions as recording rules",
          ok, out)

# Which recording rules the panels use must exist; every raw metric must be in DESIGN.md.
all_exprs = [e for _, e in exprs]
for f in rule_files:
    for g in yaml.safe_load(open(f))["groups"]:
        all_exprs += [r["expr"] for r in g["rules"]]
with open(os.path.join(src, "docs", "DESIGN.md")) as f:
    design = f.read()
for e in all_exprs:
    for name in re.findall(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", e):
        if name not in recorded:
            check(f"recording rule {name} (used in {e!r}) exists", False)
metrics = set()
for e in all_exprs:
    for name in re.findall(r"(?<![:\w])((?:tether_proxy|tether_agent|solverd)_[a-z_]+)", e):
        metrics.add(re.sub(r"_(bucket|sum|count)$", "", name))
missing = sorted(m for m in metrics if m not in design)
check(f"the {len(metrics)} metrics read by rules and panels are named in docs/DESIGN.md",
      not missing, "missing: " + ", ".join(missing))

ok, out = run([promtool, "test", "rules", os.path.join(here, "alerts_test.yml")])
tests = len(yaml.safe_load(open(os.path.join(here, "alerts_test.yml")))["tests"])
check(f"promtool test rules: {tests} alert tests", ok, out)
alerts = {r["alert"] for g in yaml.safe_load(open(rule_files[1]))["groups"] for r in g["rules"]}
tested = set(re.findall(r"alertname: (\w+)", open(os.path.join(here, "alerts_test.yml")).read()))
check("every alert has a unit test", alerts <= tested, "untested: " + ", ".join(sorted(alerts - tested)))

print(f"{failures} failed")
sys.exit(1 if failures else 0)
