"""The CLI's socket HTTP client (modelrunner.cli.http) against a stdlib HTTP/1.1 server."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from modelrunner.cli.http import HTTP, ConnectError, HTTPError


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding") == "chunked":
            data = b""
            while (size := int(self.rfile.readline().strip(), 16)):
                data += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return data
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status, body, chunked=False, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in body:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/hostile/"):  # a chunk that announces more than it sends
            size = self.path.rsplit("/", 1)[1].encode()
            self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             + size + b"\r\nabc")
            self.wfile.flush()
            self.close_connection = True
        elif self.path.startswith("/lines"):
            self._send(200, [b"data: 1\r\n", b"\r\nda", b"ta: 2\n", b"last"], chunked=True,
                       ctype="text/event-stream")
        else:
            self._send(404 if self.path.endswith("missing") else 200,
                       json.dumps({"path": self.path, "host": self.headers["Host"]}).encode())

    def do_POST(self):
        body = self._body()
        self._send(200, json.dumps({"path": self.path, "body": body.decode(),
                                    "type": self.headers.get("Content-Type")}).encode())


@pytest.fixture(scope="module")
def base():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_get_with_params_and_a_base_path(base):
    resp = HTTP(base + "/v1/").get("/models", params={"force": "true"})
    assert resp.status_code == 200
    assert resp.json()["path"] == "/v1/models?force=true"
    assert resp.json()["host"] == base.split("//")[1]
    assert HTTP(base).get("/missing").status_code == 404


def test_post_json_and_a_chunked_iterator(base):
    http = HTTP(base)
    data = http.post("/x", json={"a": 1}).json()
    assert json.loads(data["body"]) == {"a": 1} and data["type"] == "application/json"
    data = http.post("/y", content=iter([b"ab", b"", b"cd"])).json()
    assert data["body"] == "abcd"


def test_streamed_lines_across_chunks(base):
    with HTTP(base).stream("GET", "/lines") as resp:
        assert resp.status_code == 200
        assert list(resp.iter_lines()) == ["data: 1", "", "data: 2", "last"]
    with HTTP(base).stream("GET", "/lines") as resp:
        assert b"".join(resp.iter_bytes()) == b"data: 1\r\n\r\ndata: 2\nlast"


def test_nothing_listening_is_a_connect_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectError):
        HTTP(f"http://127.0.0.1:{port}").get("/version")
    assert issubclass(ConnectError, HTTPError)


@pytest.mark.parametrize("size", ["ffffffffffff", "-1", "zz"])
def test_a_server_announcing_a_huge_or_bad_chunk_is_an_error_not_a_huge_read(base, size):
    with pytest.raises(HTTPError):
        HTTP(base).get(f"/hostile/{size}").read()
