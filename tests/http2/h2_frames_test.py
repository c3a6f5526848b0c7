#!/usr/bin/python3
"""Raw HTTP/2 frames (python3-h2) through tether-proxy (`http2 on;`) to solverd over HTTP/1.1.

    h2_frames_test.py SOURCE_DIR BIN_DIR [CASE...]      default: every case

The /v1/solve location cancels with `on_disconnect interrupt`; solverd's own watch is off, so each
cancel a job gets is the proxy's frame. For a stream that the client gives up on, "stopped" means:
solverd logs the job interrupted with its incumbent (objective) and the proxy's reason, its worker
process and its cgroup are gone, and the proxy's access log has 499 for that stream's id.

  rst-waiting      RST_STREAM while the stream waits for solverd's JSON answer
  rst-response     RST_STREAM mid-response (an NDJSON stream, after its first incumbent)
  two-streams      two solves on one connection: one reset, the other completes (200)
  goaway-error     GOAWAY(INTERNAL_ERROR) with two solves open: both stopped
  goaway-no-error  GOAWAY(NO_ERROR) with a solve open: it completes
  rapid-reset      open+reset of 3 x http2_max_concurrent_streams streams at once: GOAWAY
                   ENHANCE_YOUR_CALM, and another connection is served meanwhile
  big-headers      a 40 KB header list (above http2_max_header_list_size 32k): refused on that
                   stream (431 or RST_STREAM) or the connection (GOAWAY with an error code)
  bad-preface      a preface that is not HTTP/2's nor an HTTP/1.1 request line: a clear answer
                   (GOAWAY PROTOCOL_ERROR, or HTTP/1.1 4xx or 505) and the connection closed
Exits 77 (skip) when python3-h2 is missing.
"""
import json
import os
import re
import socket
import sys
import time
import urllib.request

try:
    import h2.errors
except ImportError:
    print("SKIP: python3-h2 is not installed (apt-get install python3-h2)")
    sys.exit(77)

from h2_client import H2Client
from h2_stack import Stack, run, run_cases

MAX_STREAMS = 16
HARD = "market_split_hard.lp"


def new_id():
    return os.urandom(16).hex()


def solve_headers(rid, stream=False):
    h = [("content-type", "text/x-lp"), ("x-request-id", rid)]
    if stream:
        h.append(("accept", "application/x-ndjson"))
    return h


def job(s, rid):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{s.solverd_port}/v1/jobs/{rid}", timeout=5) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError:
        return None


def wait_job(s, rid, condition, timeout=15):
    """solverd's record of job `rid` once condition(record) holds, or a failure."""
    deadline = time.monotonic() + timeout
    while True:
        j = job(s, rid)
        if j is not None and condition(j):
            return j
        if time.monotonic() > deadline:
            s.fail(f"job {rid}: condition not met in {timeout} s; last record: {j}")
        time.sleep(0.02)  # polling solverd's API with a deadline, as the C++ harness's waitFor


def running_with_incumbent(s, rid):
    """Waits until the job runs and has found an incumbent; returns its record (worker, cgroup)."""
    return wait_job(s, rid, lambda j: j["state"] == "running" and j.get("incumbents", 0) > 0 and "worker_pid" in j)


def expect_stopped(s, rid, record, phase):
    """The job of `rid` interrupted by the proxy's frame, its incumbent logged, worker and cgroup
    gone, and a 499 in the proxy's access log."""
    m = s.solverd.wait_for(rf"job={re.escape(rid)} .*status=interrupted objective=(\S+) .*cancel=interrupt "
                           rf"reason=client_disconnect", 10)
    if not m:
        s.fail(f"solverd logged no interrupted end of job {rid} with the proxy's reason")
    if m.group(1) == "-":
        s.fail(f"job {rid} ended without its incumbent: {m.group(0)}")
    pid, cgroup = record["worker_pid"], record.get("cgroup")
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") or (cgroup and os.path.exists(cgroup)):
        if time.monotonic() > deadline:
            s.fail(f"job {rid}: worker pid {pid} or cgroup {cgroup} still there 5 s after the interrupt")
        time.sleep(0.01)
    if not s.proxy.wait_for(rf'HTTP/2\.0" 499 .*rid={re.escape(rid)}.*phase={phase}', 5):
        s.fail(f"no access-log line with HTTP/2.0, 499 and phase={phase} for rid={rid}")
    if not s.proxy.wait_for(rf"rid={re.escape(rid)} cancel interrupt sent", 5):
        s.fail(f"the proxy logged no cancel frame sent for rid={rid}")
    print(f"  rid={rid}: interrupted with incumbent {m.group(1)}, worker {pid} and its cgroup gone, 499 ({phase})")


def expect_served(s, client, what):
    """A GET /health on `client` gets 200."""
    health = client.request("GET", "/health")
    if not client.wait(lambda: health.ended, 10) or health.status != 200:
        s.fail(f"{what}: {health.headers} {health.data[:200]!r} goaway={client.goaway}")


def case_rst_waiting(s, port):
    c = H2Client(port)
    rid = new_id()
    stream = c.request("POST", "/v1/solve", s.model(HARD), solve_headers(rid))
    record = running_with_incumbent(s, rid)
    c.pump(0.01)
    if stream.headers is not None:
        s.fail(f"a JSON solve answered before its result: {stream.headers}")
    c.reset(stream)
    expect_stopped(s, rid, record, "awaiting_response")
    expect_served(s, c, "a stream after the reset on the same connection")  # the connection carries on
    c.close()


def case_rst_response(s, port):
    c = H2Client(port)
    rid = new_id()
    stream = c.request("POST", "/v1/solve", s.model(HARD), solve_headers(rid, stream=True))
    if not c.wait(lambda: b'"event":"incumbent"' in stream.data or stream.ended, 20):
        s.fail(f"no incumbent event on the NDJSON stream: {stream.headers} {stream.data[-300:]!r}")
    if stream.status != 200 or stream.ended:
        s.fail(f"the NDJSON stream: {stream.headers} ended={stream.ended}")
    record = running_with_incumbent(s, rid)
    c.reset(stream)
    expect_stopped(s, rid, record, "response_body")
    c.close()


def case_two_streams(s, port):
    c = H2Client(port)
    gone, kept = new_id(), new_id()
    a = c.request("POST", "/v1/solve", s.model(HARD), solve_headers(gone))
    b = c.request("POST", "/v1/solve?time_limit=2", s.model(HARD), solve_headers(kept))
    record = running_with_incumbent(s, gone)
    wait_job(s, kept, lambda j: j["state"] == "running")
    c.reset(a)
    expect_stopped(s, gone, record, "awaiting_response")
    if not c.wait(lambda: b.ended, 20):
        s.fail(f"the other stream did not complete: {b.headers} reset={b.reset_code} goaway={c.goaway}")
    body = json.loads(b.data)
    if b.status != 200 or body.get("status") != "time_limit" or body.get("id") != kept:
        s.fail(f"the other stream: {b.headers} {b.data[:300]!r}")
    if not s.proxy.wait_for(rf'HTTP/2\.0" 200 .*rid={kept}', 5):
        s.fail(f"no 200 access-log line for rid={kept}")
    print(f"  rid={kept} on the same connection: 200 time_limit objective {body.get('objective')}")
    c.close()


def case_goaway_error(s, port):
    c = H2Client(port)
    rids = [new_id(), new_id()]
    for rid in rids:
        c.request("POST", "/v1/solve", s.model(HARD), solve_headers(rid))
    records = [running_with_incumbent(s, rid) for rid in rids]
    c.send_goaway(h2.errors.ErrorCodes.INTERNAL_ERROR)
    # The TCP connection stays open: the GOAWAY alone must end every open stream.
    for rid, record in zip(rids, records):
        expect_stopped(s, rid, record, "awaiting_response")
    c.close()


def case_goaway_no_error(s, port):
    c = H2Client(port)
    rid = new_id()
    stream = c.request("POST", "/v1/solve?time_limit=1", s.model(HARD), solve_headers(rid))
    wait_job(s, rid, lambda j: j["state"] == "running")
    c.send_goaway(h2.errors.ErrorCodes.NO_ERROR)
    if not c.wait(lambda: stream.ended or stream.reset_code is not None, 15):
        s.fail(f"the open stream after GOAWAY(NO_ERROR) never ended: closed={c.closed}")
    if stream.status != 200 or json.loads(stream.data).get("status") != "time_limit":
        s.fail(f"the open stream after GOAWAY(NO_ERROR): {stream.headers} reset={stream.reset_code} {stream.data[:200]!r}")
    j = job(s, rid)
    if j and "cancel" in j:
        s.fail(f"a GOAWAY(NO_ERROR) cancelled the open stream's job: {j['cancel']}")
    print(f"  rid={rid}: completed after the client's GOAWAY(NO_ERROR): 200 time_limit")
    c.close()


def case_rapid_reset(s, port):
    bystander = H2Client(port)
    flood = H2Client(port)
    count = 3 * MAX_STREAMS
    started = time.monotonic()
    for _ in range(count):
        try:
            stream = flood.request("GET", "/health")
            flood.reset(stream)
        except OSError:  # the proxy closed the connection under the flood: its GOAWAY came first
            break
    sent = time.monotonic() - started
    if not flood.wait(lambda: flood.goaway is not None, 5):
        s.fail(f"{count} streams opened and reset in {sent * 1000:.0f} ms: no GOAWAY (closed={flood.closed})")
    if flood.goaway[0] != h2.errors.ErrorCodes.ENHANCE_YOUR_CALM:
        s.fail(f"the flood got GOAWAY with error {flood.goaway[0]!r}, not ENHANCE_YOUR_CALM")
    print(f"  {count} open+reset in {sent * 1000:.0f} ms: GOAWAY ENHANCE_YOUR_CALM (last stream {flood.goaway[1]})")
    flood.close()
    expect_served(s, bystander, "the other connection after the flood")
    bystander.close()


def case_big_headers(s, port):
    c = H2Client(port)
    stream = c.request("GET", "/health", headers=[("x-big", "a" * 40000)])
    c.wait(lambda: stream.ended or stream.reset_code is not None or c.goaway is not None, 10)
    if stream.status == 431:
        how = "431"
    elif stream.reset_code is not None:
        how = f"RST_STREAM {stream.reset_code!r}"
    elif c.goaway is not None and c.goaway[0] != h2.errors.ErrorCodes.NO_ERROR:
        how = f"GOAWAY {c.goaway[0]!r}"
    else:
        s.fail(f"a 40 KB header list was not refused: status={stream.status} goaway={c.goaway} closed={c.closed}")
    print(f"  40 KB header list: {how}")
    c.close()
    other = H2Client(port)
    expect_served(s, other, "another connection after the big header list")
    other.close()


def case_bad_preface(s, port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\x00" * 64)
        got = b""
        closed = False
        deadline = time.monotonic() + 5
        while not closed and time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            closed = not chunk
            got += chunk
        if not closed:
            s.fail(f"the connection with a bad preface is still open after 5 s; got {got[:100]!r}")
    if re.match(rb"HTTP/1\.1 (4\d\d|505) ", got):
        print(f"  bad preface: {got.splitlines()[0].decode()}")
        return
    # Frames: 3-byte length, type, flags, 4-byte stream id. GOAWAY is type 7: last stream id, error code.
    pos = 0
    while pos + 9 <= len(got):
        length = int.from_bytes(got[pos:pos + 3], "big")
        ftype = got[pos + 3]
        payload = got[pos + 9:pos + 9 + length]
        if ftype == 7 and len(payload) >= 8:
            code = int.from_bytes(payload[4:8], "big")
            if code == h2.errors.ErrorCodes.PROTOCOL_ERROR:
                print("  bad preface: GOAWAY PROTOCOL_ERROR")
                return
            s.fail(f"bad preface: GOAWAY with error {code}, not PROTOCOL_ERROR")
        pos += 9 + length
    s.fail(f"bad preface: neither an HTTP/1.1 4xx or 505 nor a GOAWAY PROTOCOL_ERROR: {got[:200]!r}")


CASES = {
    "rst-waiting": case_rst_waiting,
    "rst-response": case_rst_response,
    "two-streams": case_two_streams,
    "goaway-error": case_goaway_error,
    "goaway-no-error": case_goaway_no_error,
    "rapid-reset": case_rapid_reset,
    "big-headers": case_big_headers,
    "bad-preface": case_bad_preface,
}


def main(source_dir, bin_dir):
    with Stack(source_dir, bin_dir, "frames") as s:
        port = s.solverd_behind_proxy(server_extra=f"    trust_request_id on;\n    http2_max_concurrent_streams {MAX_STREAMS};\n")
        run_cases(s, CASES, port)
    print("PASS")
    return 0

if __name__ == "__main__":
    run(main)
