"""A stand-in for a hostile (or just broken) remote: an HTTP server on 127.0.0.1 that answers
every GET and POST with the same bytes and headers, for testing how a source (or the CLI, given
it as its server) reads what it is sent."""

import contextlib
import http.server
import threading


@contextlib.contextmanager
def answering_server(body, headers=None, status=200):
    """``with answering_server(b"...", {"Content-Encoding": "gzip"}) as url:``; records the
    paths it was asked for in ``url.requests``."""
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = _URL(f"http://127.0.0.1:{server.server_address[1]}")
    url.requests = requests
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


class _URL(str):
    requests: list
