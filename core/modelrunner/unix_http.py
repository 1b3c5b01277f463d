"""One small HTTP/1.1 server on a Unix socket, for the processes that speak JSON to the server:
the scheduler daemon, the Diffusers runner and the tests' fake runner.

``http.server`` with one thread per connection: these serve a handful of local clients (API
workers), and a runner's work happens in its own threads anyway.
"""

import json
import socketserver
from http.server import BaseHTTPRequestHandler


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _ = super().get_request()
        return request, ("unix", 0)  # http.server logs a (host, port) client address


class JSONRequestHandler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1, JSON in and out. Subclasses write ``do_GET``/``do_POST``."""

    protocol_version = "HTTP/1.1"
    max_body = 16 << 20

    def log_message(self, fmt, *args):
        pass  # subclasses log where their process logs

    def send_json(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        """The request body (at most ``max_body`` bytes; ValueError for more or a bad length)."""
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > self.max_body:
            raise ValueError(f"request body of {length} bytes")
        return self.rfile.read(length) if length else b""

    def read_json(self):
        return json.loads(self.read_body() or b"{}")
