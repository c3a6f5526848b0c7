#!/usr/bin/python3
"""gRPC (python3-grpcio) through tether-proxy's `grpc_pass` to examples/grpc-service, with
tether-agent beside it, all from the example's own files (agent.conf and proxy.conf rewritten only
for temporary paths and ports).

    grpc_example_test.py SOURCE_DIR BIN_DIR [CASE...]      default: every case

  complete    a call that completes returns cbc's result (knapsack: objective 309)
  cancel      a call the client cancels: cbc stops (tether-agent logs the cancel and the end of
              the cbc that tether-run registered, and that pid is gone); the proxy logs 499
  deadline    a call with a 1 s deadline ends with DEADLINE_EXCEEDED and cbc stops (grpcio resets
              the stream at its deadline too: reason `deadline` or `client_disconnect`)
  proxy-deadline  raw frames (python3-h2) with grpc-timeout 1S and no reset of their own: the
              proxy answers grpc-status 4 and cbc stops with reason `deadline`
  two-calls   two calls on one channel: the cancelled one's cbc stops, the other returns its result
Fails when a daemon logged an error, or left a process or a cgroup behind. Exits 77 (skip) when
cbc or python3-grpcio is missing.
"""
import os
import re
import select
import shutil
import sys
import time

try:
    import grpc
except ImportError:
    print("SKIP: python3-grpcio is not installed (apt-get install python3-grpcio)")
    sys.exit(77)

from h2_client import H2Client
from h2_stack import SKIP, Stack, run, run_cases
from run_example import example_proxy_conf, rewrite

METHOD = "/tether.example.Solver/Solve"


def start_example(s):
    example = os.path.join(s.source_dir, "examples", "grpc-service")
    sock = os.path.join(s.tmp, "a.sock")
    with open(os.path.join(example, "agent.conf")) as f:
        conf = f.read()
    example_sock = re.search(r"listen unix:(\S+);", conf).group(1)
    conf = rewrite(conf, [
        (f"listen unix:{example_sock};", f"listen unix:{sock};"),
        (re.search(r"admin \{ listen (\S+); \}", conf).group(1) + ";", "127.0.0.1:0;"),
        (re.search(r"cgroup_root \S+;", conf).group(0), f"cgroup_root {s.cgroup};" if s.cgroup else ""),
    ], "agent.conf")
    with open(os.path.join(s.tmp, "agent.conf"), "w") as f:
        f.write(conf)
    s.agent, _ = s.start("agent", [os.path.join(s.bin_dir, "tether-agent"), "-c", os.path.join(s.tmp, "agent.conf")],
                         re.escape(f"listening on unix:{sock}"))
    s.service, m = s.start("service", [os.path.join(example, "service.py")],
                           r"listening on 127\.0\.0\.1:(\d+)", dict(s.env, PORT="0", TETHER_AGENT=f"unix:{sock}"))
    conf = example_proxy_conf(example, m.group(1), example_sock, sock, s.tmp)
    return s.start_proxy(conf)


SEEN_RIDS = set()


def registered(s, since, timeout=15):
    """(rid, pidfd, pid) of the next cbc that tether-run registered with the agent. The agent's
    lines are read by a thread, so the previous case's registration may land after `since`:
    rids already taken are skipped."""
    skip = "".join(f"(?!{re.escape(r)} )" for r in SEEN_RIDS)
    m = s.agent.wait_for(rf"registered rid={skip}(\S+) pid=(\d+)", timeout, since)
    if not m:
        s.fail("no call registered its cbc with tether-agent")
    rid, pid = m.group(1), int(m.group(2))
    SEEN_RIDS.add(rid)
    try:
        return rid, os.pidfd_open(pid), pid
    except ProcessLookupError:
        s.fail(f"cbc (pid {pid}) of rid={rid} ended before the test could watch it: the model is too easy")


def expect_cbc_stopped(s, rid, pidfd, pid, reasons, started):
    """cbc `pid` of `rid` ends, and tether-agent logs the cancel with one of `reasons` (a
    regular expression) and the end of that cbc."""
    try:
        if not select.select([pidfd], [], [], 10)[0]:
            s.fail(f"cbc (pid {pid}) of rid={rid} still runs 10 s after its call ended")
    finally:
        os.close(pidfd)
    gone_ms = 1000 * (time.monotonic() - started)
    m = s.agent.wait_for(rf"cancel rid={re.escape(rid)} action=interrupt .*reason=({reasons}) ", 5)
    if not m:
        s.fail(f"tether-agent logged no cancel (reason {reasons}) for rid={rid}")
    if not s.agent.wait_for(rf"target rid={re.escape(rid)} pid={pid} done", 5):
        s.fail(f"tether-agent logged no end of cbc of rid={rid}")
    print(f"  rid={rid}: cbc pid {pid} gone {gone_ms:.0f} ms after the call ended (reason {m.group(1)})")


def case_complete(s, solve):
    result, call = solve.with_call(s.model("knapsack.lp"), timeout=30)
    if not result.startswith(b"Optimal - objective value 309"):
        s.fail(f"knapsack over gRPC: {result[:200]!r}")
    rid = dict(call.initial_metadata()).get("x-request-id")
    SEEN_RIDS.add(rid)  # its registration may still be on its way from the agent's log
    if not rid or not s.proxy.wait_for(rf'"POST {METHOD} HTTP/2\.0" 200 .*rid={re.escape(rid)}', 5):
        s.fail(f"no access-log line with HTTP/2.0 and 200 for the call (x-request-id {rid})")
    print(f"  {result.splitlines()[0].decode()} (rid={rid})")


def case_cancel(s, solve):
    since = s.agent.mark()
    call = solve.future(s.model("market_split_hard.lp"), timeout=60)
    rid, pidfd, pid = registered(s, since)
    call.cancel()
    started = time.monotonic()
    if not call.cancelled():
        s.fail(f"the client's cancel did not take: {call}")
    expect_cbc_stopped(s, rid, pidfd, pid, "client_disconnect", started)
    if not s.proxy.wait_for(rf'HTTP/2\.0" 499 .*rid={re.escape(rid)}', 5):
        s.fail(f"no access-log line with HTTP/2.0 and 499 for rid={rid}")


def case_deadline(s, solve):
    # grpcio keeps the deadline too and resets the stream when it passes; its reset and the
    # proxy's deadline are some milliseconds apart, either may come first: both stop cbc.
    since = s.agent.mark()
    call = solve.future(s.model("market_split_hard.lp"), timeout=1)
    rid, pidfd, pid = registered(s, since)
    try:
        call.result(timeout=10)
        s.fail("a hard solve with a 1 s deadline returned a result")
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            s.fail(f"a hard solve with a 1 s deadline ended with {e.code()}: {e.details()}")
    expect_cbc_stopped(s, rid, pidfd, pid, "deadline|client_disconnect", time.monotonic())


def case_proxy_deadline(s, solve):
    """The proxy's own deadline: a gRPC request from raw frames (python3-h2) with grpc-timeout
    1S that never resets its stream. The proxy answers grpc-status 4 (DEADLINE_EXCEEDED), and
    cbc stops on its cancel frame, reason `deadline`."""
    model = s.model("market_split_hard.lp")
    since = s.agent.mark()
    c = H2Client(s.port)
    stream = c.request("POST", METHOD, b"\0" + len(model).to_bytes(4, "big") + model,
                       [("content-type", "application/grpc"), ("te", "trailers"), ("grpc-timeout", "1S")])
    rid, pidfd, pid = registered(s, since)
    sent = time.monotonic()
    if not c.wait(lambda: stream.ended or stream.reset_code is not None, 10):
        s.fail(f"no answer 10 s after a 1 s grpc-timeout: {stream.headers}")
    status = (stream.trailers or {}).get("grpc-status") or (stream.headers or {}).get("grpc-status")
    if status != "4":
        s.fail(f"the proxy's deadline: grpc-status {status}, not 4: {stream.headers} {stream.trailers} "
               f"reset={stream.reset_code}")
    print(f"  grpc-status 4 after {1000 * (time.monotonic() - sent):.0f} ms")
    c.close()
    # The proxy sends the service the remaining budget as its grpc-timeout, so the service's own
    # deadline may pass a moment before the proxy's: its DEADLINE_EXCEEDED must still count as
    # the deadline, with a cancel frame, since the service's cbc runs on regardless.
    if not s.proxy.wait_for(rf"rid={re.escape(rid)} (deadline passed|cancel interrupt sent)", 3):
        s.fail(f"rid={rid}: the proxy relayed grpc-status 4 without passing its deadline or sending a cancel "
               f"(the service's own deadline, from the forwarded grpc-timeout, ended the call first)")
    expect_cbc_stopped(s, rid, pidfd, pid, "deadline", time.monotonic())


def case_two_calls(s, solve):
    since = s.agent.mark()
    gone = solve.future(s.model("market_split_hard.lp"), timeout=60)
    rid, pidfd, pid = registered(s, since)
    since = s.agent.mark()
    kept = solve.future(s.model("market_split_medium.lp"), timeout=60)
    s.agent.wait_for(r"registered rid=", 15, since)
    gone.cancel()
    expect_cbc_stopped(s, rid, pidfd, pid, "client_disconnect", time.monotonic())
    result = kept.result(timeout=60)
    if not result.startswith(b"Optimal"):
        s.fail(f"the other call on the channel: {result[:200]!r}")
    print(f"  the other call on the same channel: {result.splitlines()[0].decode()}")


CASES = {"complete": case_complete, "cancel": case_cancel, "deadline": case_deadline,
         "proxy-deadline": case_proxy_deadline, "two-calls": case_two_calls}


def main(source_dir, bin_dir):
    if not shutil.which("cbc"):
        print("SKIP: cbc (coinor-cbc) is not installed")
        return SKIP
    for name in ("tether-agent", "tether-run"):
        if not os.access(os.path.join(bin_dir, name), os.X_OK):
            print(f"FAIL: {name} is not built in {bin_dir}")
            return 1
    with Stack(source_dir, bin_dir, "grpc") as s:
        port = start_example(s)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            run_cases(s, CASES, channel.unary_unary(METHOD))  # bytes in and out: no (de)serializers
    print("PASS")
    return 0

if __name__ == "__main__":
    run(main)
