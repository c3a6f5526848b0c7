#!/usr/bin/python3
"""Writes the HTTP/2 fuzz seeds (tests/proxy/fuzz-corpus-h2): client frame sequences that follow
the connection preface (the harness sends the preface itself). Made with python3-h2, so the
seeds are valid HPACK and framing that the fuzzer then mutates. Run with Debian's python3."""
import os

import h2.config
import h2.connection
import h2.errors

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz-corpus-h2")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def conn():
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    c.initiate_connection()
    return c


def head(path, method="GET", extra=()):
    return [(":method", method), (":scheme", "http"), (":authority", "f"), (":path", path)] + list(extra)


def frames(c):
    data = c.data_to_send()
    return data[len(PREFACE):] if data.startswith(PREFACE) else data


SEEDS = {}
c = conn(); c.send_headers(1, head("/ok"), end_stream=True); SEEDS["get"] = frames(c)
c = conn(); c.send_headers(1, head("/echo", "POST", [("content-length", "5")])); c.send_data(1, b"hello", end_stream=True)
SEEDS["post-length"] = frames(c)
c = conn(); c.send_headers(1, head("/echo", "POST")); c.send_data(1, b"abc"); c.send_data(1, b"def", end_stream=True)
SEEDS["post-chunked"] = frames(c)
c = conn(); c.send_headers(1, head("/slow")); c.reset_stream(1, h2.errors.ErrorCodes.CANCEL); SEEDS["reset"] = frames(c)
c = conn()
for i in range(1, 40, 2):
    c.send_headers(i, head("/r")); c.reset_stream(i, h2.errors.ErrorCodes.CANCEL)
SEEDS["rapid-reset"] = frames(c)
c = conn(); c.send_headers(1, head("/a"), end_stream=True); c.send_headers(3, head("/b"), end_stream=True)
c.close_connection(h2.errors.ErrorCodes.PROTOCOL_ERROR); SEEDS["goaway-error"] = frames(c)
c = conn(); c.send_headers(1, head("/a"), end_stream=True); c.close_connection(); SEEDS["goaway-noerror"] = frames(c)
c = conn(); c.ping(b"12345678"); c.increment_flow_control_window(1 << 20); SEEDS["ping-window"] = frames(c)
c = conn(); c.send_headers(1, head("/t.S/Solve", "POST", [("content-type", "application/grpc"), ("te", "trailers"),
                                                       ("grpc-timeout", "100m")]))
c.send_data(1, b"\x00\x00\x00\x00\x02hi", end_stream=True); SEEDS["grpc"] = frames(c)
c = conn(); c.send_headers(1, head("/big", extra=[("x-big", "v" * 40000)]), end_stream=True); SEEDS["big-headers"] = frames(c)

os.makedirs(HERE, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
print(len(SEEDS), "seeds")
