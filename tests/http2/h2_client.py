"""A raw HTTP/2 client for the tests: python3-h2's state machine over a blocking socket, so that a
test sends exactly the frames it means (RST_STREAM, GOAWAY, floods) and sees every frame back."""
import socket
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import hyperframe.frame


class Stream:
    def __init__(self, stream_id):
        self.id = stream_id
        self.headers = None      # the response's headers, a dict of str
        self.trailers = None
        self.data = b""
        self.ended = False       # END_STREAM from the server
        self.reset_code = None   # the server's RST_STREAM error code

    @property
    def status(self):
        return int(self.headers[":status"]) if self.headers else None


class H2Client:
    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.streams = {}
        self.goaway = None       # the server's GOAWAY: (error code, last stream id)
        self.closed = False      # the server closed the TCP connection
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method, path, body=b"", headers=(), end=True):
        """Opens a stream; returns its Stream."""
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "test")]
        hdrs += list(headers)
        if body:
            hdrs.append(("content-length", str(len(body))))
        self.conn.send_headers(sid, hdrs, end_stream=end and not body)
        if body:
            self.conn.send_data(sid, body, end_stream=end)
        self.flush()
        self.streams[sid] = Stream(sid)
        return self.streams[sid]

    def reset(self, stream, code=h2.errors.ErrorCodes.CANCEL):
        self.conn.reset_stream(stream.id, error_code=code)
        self.flush()

    def send_goaway(self, code):
        """Sends GOAWAY past h2's state machine, which takes its own GOAWAY as the end of the
        connection and would refuse what the server still sends on the open streams (RFC 9113
        section 6.8: after a GOAWAY NO_ERROR they may finish)."""
        self.flush()
        self.sock.sendall(hyperframe.frame.GoAwayFrame(0, last_stream_id=0, error_code=code).serialize())

    def pump(self, timeout):
        """Reads what arrives within `timeout` seconds (at most one recv that blocks)."""
        if self.closed:
            return
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        except (ConnectionResetError, BrokenPipeError):
            self.closed = True
            return
        if not data:
            self.closed = True
            return
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            raise AssertionError(f"the server broke HTTP/2: {e!r}")
        for e in events:
            stream = self.streams.get(getattr(e, "stream_id", None))
            if isinstance(e, h2.events.ResponseReceived):
                stream.headers = dict(e.headers)
            elif isinstance(e, h2.events.TrailersReceived):
                stream.trailers = dict(e.headers)
            elif isinstance(e, h2.events.DataReceived):
                stream.data += e.data
                self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, h2.events.StreamEnded):
                stream.ended = True
            elif isinstance(e, h2.events.StreamReset):
                if stream is not None:
                    stream.reset_code = e.error_code
            elif isinstance(e, h2.events.ConnectionTerminated):
                self.goaway = (e.error_code, e.last_stream_id)
        try:
            self.flush()
        except OSError:
            self.closed = True

    def wait(self, condition, timeout=10):
        """Pumps until condition() holds; returns whether it did within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0 or (self.closed and not condition()):
                return condition()
            self.pump(left)
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
