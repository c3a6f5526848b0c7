#!/usr/bin/python3
"""curl --http2-prior-knowledge through tether-proxy (`http2 on;`) to solverd.

    curl_h2_test.py SOURCE_DIR BIN_DIR

1. A knapsack solve over h2c with prior knowledge: curl -v shows HTTP/2 both ways, the response
   is 200 with solverd's optimal result and an x-request-id; the proxy's access log has the line
   with HTTP/2.0 and that id.
2. The same listener still speaks HTTP/1.1 (curl --http1.1): 200, HTTP/1.1.
3. A client's own Request-Timeout (HTTP/1.1 and HTTP/2) reaches solverd: the job's time limit is
   capped by it.
4. A hard model with Request-Timeout: 3 over HTTP/2 gets 200 with status time_limit and an
   incumbent (solverd stopped the solver in time), not the proxy's 504.
Exits 77 (skip) when curl is missing or has no HTTP/2.
"""
import json
import os
import re
import shutil
import subprocess

from h2_stack import SKIP, Stack, run


def curl(args, body_path, timeout=60):
    return subprocess.run(["curl", "-sS", "-v", "--max-time", str(timeout), "-H", "Content-Type: text/x-lp",
                           "--data-binary", f"@{body_path}"] + args, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout + 10)


def main(source_dir, bin_dir):
    if not shutil.which("curl"):
        print("SKIP: curl is not installed")
        return SKIP
    version = subprocess.run(["curl", "--version"], stdout=subprocess.PIPE, text=True).stdout
    if "HTTP2" not in version:
        print("SKIP: this curl has no HTTP/2")
        return SKIP
    with Stack(source_dir, bin_dir, "curl") as s:
        # deadline_reserve 1s: a sanitized worker takes up to half a second to exit after its result.
        port = s.solverd_behind_proxy(solverd_extra="spare_workers 1;\ndeadline_reserve 1s;\n")
        knapsack = os.path.join(s.models, "knapsack.lp")
        url = f"http://127.0.0.1:{port}/v1/solve"

        # 1. h2c, prior knowledge.
        r = curl(["--http2-prior-knowledge", url], knapsack)
        if r.returncode != 0:
            s.fail(f"curl --http2-prior-knowledge failed ({r.returncode}): {r.stderr}")
        if not re.search(r"(?m)^> POST /v1/solve HTTP/2\r?$", r.stderr) or not re.search(r"(?m)^< HTTP/2 200", r.stderr):
            s.fail(f"curl did not speak HTTP/2 both ways:\n{r.stderr}")
        m = re.search(r"(?mi)^< x-request-id: (\S+)", r.stderr)
        if not m:
            s.fail(f"no x-request-id in the HTTP/2 response:\n{r.stderr}")
        rid = m.group(1)
        body = json.loads(r.stdout)
        if body.get("status") != "optimal" or body.get("objective") != 309:
            s.fail(f"knapsack over HTTP/2: {r.stdout}")
        if not s.proxy.wait_for(rf'"POST /v1/solve HTTP/2\.0" 200 .*rid={re.escape(rid)}', 5):
            s.fail(f"no access-log line with HTTP/2.0, 200 and rid={rid}")
        print(f"HTTP/2 prior knowledge: 200 optimal 309, x-request-id {rid}")

        # 2. HTTP/1.1 on the same listener.
        r = curl(["--http1.1", url], knapsack)
        if r.returncode != 0 or not re.search(r"(?m)^< HTTP/1\.1 200", r.stderr):
            s.fail(f"HTTP/1.1 on the http2 listener: {r.returncode} {r.stderr}")
        if json.loads(r.stdout).get("objective") != 309:
            s.fail(f"knapsack over HTTP/1.1: {r.stdout}")
        print("HTTP/1.1 on the same listener: 200 optimal 309")

        # 3. A client's own Request-Timeout, over both protocols, caps the job's time limit.
        for flag in ("--http1.1", "--http2-prior-knowledge"):
            r = curl([flag, "-H", "Request-Timeout: 20", url], knapsack)
            m = re.search(r"(?mi)^< x-request-id: (\S+)", r.stderr)
            if r.returncode != 0 or not m:
                s.fail(f"Request-Timeout over {flag}: {r.returncode} {r.stderr}")
            job = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{s.solverd_port}/v1/jobs/{m.group(1)}"],
                                 stdout=subprocess.PIPE, text=True).stdout
            limit = json.loads(job).get("time_limit")
            # solverd keeps back at most a tenth of the budget; the proxy may have spent a little.
            if not isinstance(limit, (int, float)) or not 17 <= limit <= 18:
                s.fail(f"Request-Timeout: 20 over {flag}: the job's time limit is {limit}, not about 18: {job}")
            print(f"Request-Timeout: 20 over {flag}: job time limit {limit}")

        # 4. A deadline that a hard model cannot meet: solverd stops the solver early enough that
        # its incumbent (status time_limit) reaches the client before the proxy's deadline (504).
        r = curl(["--http2-prior-knowledge", "-H", "Request-Timeout: 3", "-w", "\n%{time_total}", url],
                 os.path.join(s.models, "market_split_hard.lp"))
        body, _, took = r.stdout.rpartition("\n")
        if r.returncode != 0 or not re.search(r"(?m)^< HTTP/2 200", r.stderr):
            s.fail(f"a hard model with Request-Timeout: 3: {r.returncode} {r.stderr[-500:]} {body[:300]}")
        result = json.loads(body)
        if result.get("status") != "time_limit" or not isinstance(result.get("objective"), (int, float)):
            s.fail(f"a hard model with Request-Timeout: 3: not time_limit with an incumbent: {body[:300]}")
        print(f"hard model, Request-Timeout: 3 over HTTP/2: 200 time_limit, incumbent {result['objective']}, "
              f"after {float(took):.2f} s")
        s.stop()
    print("PASS")
    return 0


if __name__ == "__main__":
    run(main)
