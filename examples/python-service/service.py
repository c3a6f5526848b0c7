#!/usr/bin/python3
"""A small solver web service, the kind tether-agent fronts: Python's standard library only.

    POST /solve   body: a model in CPLEX LP format
                  -> runs `tether-run --id "$REQUEST_ID" -- cbc MODEL solve solu OUT`
                  <- 200 and cbc's solution file (first line: status and objective), or
                     500 and cbc's output when cbc failed or was stopped

REQUEST_ID is the X-Request-Id header that tether-proxy adds to every request it forwards;
tether-proxy sends the same id to tether-agent when the client leaves, and tether-agent stops
the cbc that tether-run registered under it. tether-run finds the agent through $TETHER_AGENT
(unix:PATH). Without an id (a client that came straight here) cbc runs on its own.

Environment:
    PORT=8000          the port to listen on (0: any free port)
    TETHER_AGENT=...   tether-agent's control socket, passed on to tether-run
    TETHER_RUN=off     run cbc directly, without tether-run (what a service looks like before
                       tether; bench/abandoned_solve.sh uses it)

Prints `listening on 127.0.0.1:PORT` on stderr once it accepts connections.
"""
import os
import subprocess
import sys
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def solve_command(request_id, model, solution):
    cbc = ["cbc", model, "solve", "solu", solution]
    if not request_id or os.environ.get("TETHER_RUN") == "off":
        return cbc
    return ["tether-run", "--id", request_id, "--"] + cbc


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, code, text):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client left while cbc ran: nobody is waiting for this answer

    def do_POST(self):
        if self.path != "/solve":
            self.reply(404, "not found\n")
            return
        model_text = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request_id = self.headers.get("X-Request-Id", "")
        with tempfile.TemporaryDirectory(prefix="solve-") as workdir:
            model = os.path.join(workdir, "model.lp")  # cbc reads LP format by the extension
            solution = os.path.join(workdir, "solution.txt")
            with open(model, "wb") as f:
                f.write(model_text)
            run = subprocess.run(solve_command(request_id, model, solution),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if run.returncode == 0 and os.path.exists(solution):
                with open(solution) as f:
                    self.reply(200, f.read())
            else:
                self.reply(500, f"cbc exited with {run.returncode}\n{run.stdout[-2000:]}")


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8000"))), Handler)
    server.daemon_threads = True
    print(f"listening on 127.0.0.1:{server.server_address[1]}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
