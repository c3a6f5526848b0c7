#!/usr/bin/python3
"""A small gRPC solver service, the kind tether-agent fronts: Debian's python3-grpcio, no protoc.

    /tether.example.Solver/Solve   unary; request: a model in CPLEX LP format (raw bytes)
        -> runs `tether-run --id "$REQUEST_ID" -- cbc MODEL solve solu OUT`
        <- cbc's solution file (first line: status and objective), or
           INTERNAL with cbc's output when cbc failed or was stopped

The method is served by a generic handler with bytes in and bytes out (no serializers), so no
.proto file and no generated code are needed; any gRPC client can call it with identity
(de)serializers. REQUEST_ID is the `x-request-id` metadata that tether-proxy adds to every call
it forwards with `grpc_pass`; when the client cancels the call (or its deadline passes)
tether-proxy sends the same id to tether-agent, and tether-agent stops the cbc that tether-run
registered under it. This handler only stops waiting: gRPC tells a server that its call was
cancelled, but it does not stop the server's work, and that is what tether adds. Without an id
(a client that came straight here) cbc runs on its own.

Environment:
    PORT=50051         the port to listen on (0: any free port)
    TETHER_AGENT=...   tether-agent's control socket, passed on to tether-run
    TETHER_RUN=off     run cbc directly, without tether-run (what a service looks like before tether)

Prints `listening on 127.0.0.1:PORT` on stderr once it accepts calls, and one line per call.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent import futures

import grpc

SERVICE = "tether.example.Solver"


def solve_command(request_id, model, solution):
    cbc = ["cbc", model, "solve", "solu", solution]
    if not request_id or os.environ.get("TETHER_RUN") == "off":
        return cbc
    return ["tether-run", "--id", request_id, "--"] + cbc


def log(text):
    print(text, file=sys.stderr, flush=True)


def solve(request, context):
    request_id = dict(context.invocation_metadata()).get("x-request-id", "")
    workdir = tempfile.mkdtemp(prefix="grpc-solve-")
    model = os.path.join(workdir, "model.lp")  # cbc reads LP format by the extension
    solution = os.path.join(workdir, "solution.txt")
    with open(model, "wb") as f:
        f.write(request)
    run = subprocess.Popen(solve_command(request_id, model, solution), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log(f"call rid={request_id or '-'} started pid={run.pid}")
    # Either cbc ends or the call does (cancelled by the client, its deadline passed, the
    # connection lost): whichever comes first ends the wait.
    ended = threading.Event()
    result = {}

    def wait_cbc():
        output = run.communicate()[0]  # also reaps cbc, whenever it ends
        if os.path.exists(solution):
            with open(solution, "rb") as f:
                result["solution"] = f.read()
        result["output"] = output
        shutil.rmtree(workdir, ignore_errors=True)  # only once cbc no longer uses it
        ended.set()

    threading.Thread(target=wait_cbc, daemon=True).start()
    if not context.add_callback(ended.set):
        ended.set()  # the call had already ended: add_callback runs nothing then
    ended.wait()
    if not context.is_active():
        # Nobody is waiting for this answer: the handler returns at once. cbc is left to
        # tether-agent, which stops it on the proxy's cancel frame; the thread above reaps it.
        log(f"call rid={request_id or '-'} ended by the client while cbc pid={run.pid} ran")
        return b""
    log(f"call rid={request_id or '-'} cbc exited with {run.returncode}")
    if run.returncode == 0 and "solution" in result:
        return result["solution"]
    text = result.get("output", b"").decode(errors="replace")[-2000:]
    context.abort(grpc.StatusCode.INTERNAL, f"cbc exited with {run.returncode}\n{text}")


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    handler = grpc.method_handlers_generic_handler(SERVICE, {
        # No (de)serializers: the request and the response are the bytes on the wire.
        "Solve": grpc.unary_unary_rpc_method_handler(solve),
    })
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"127.0.0.1:{int(os.environ.get('PORT', '50051'))}")
    server.start()
    log(f"listening on 127.0.0.1:{port}")
    server.wait_for_termination()


if __name__ == "__main__":
    main()
