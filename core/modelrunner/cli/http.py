"""A small HTTP/1.1 client over a plain socket, for the `model` CLI.

Why not httpx, nor even http.client: the CLI makes one request to a local server, and its
start-up is most of what a user waits for. httpx's imports (httpcore, h11, anyio...) cost about
0.1 s of CPU here; http.client's (email.parser, ssl...) still about 0.06 s; socket about 4 ms.
This module keeps the part of httpx's interface the CLI and its plugins use: ``get``/``post``/
``request``/``stream`` with ``params``, ``json``, ``content`` (bytes, or an iterator of bytes:
sent chunked), ``headers`` and ``timeout``; responses with ``status_code``, ``headers``,
``read()``, ``content``, ``text``, ``json()``, ``iter_bytes()`` and ``iter_lines()``; and two
errors, :class:`ConnectError` (nothing answers) under :class:`HTTPError` (any transport
failure). https (``model run --openaiurl https://...``) imports ssl when used; ``ca_file``
names a CA bundle to trust besides the system's (a self-signed server: MODEL_RUNNER_TLS_CA), and
``api_key`` is sent as ``Authorization: Bearer`` on every request (MODEL_RUNNER_API_KEY).

One connection per request (``Connection: close``): the server is local and a command makes a
handful of requests. As with httpx, only the connect has a timeout by default (5 s): answers may
take minutes.
"""

import json as jsonlib
import socket
from contextlib import contextmanager
from urllib.parse import urlencode, urlsplit

from .. import __version__

CONNECT_TIMEOUT = 5.0
USER_AGENT = f"modelrunner-cli/{__version__}"
MAX_LINE = 65536


class HTTPError(Exception):
    """The connection failed, or broke while a request or response was under way."""


class ConnectError(HTTPError):
    """Nothing answers at the address (refused, unknown host, connect timed out)."""


class Headers(dict):
    """Response headers, looked up case-insensitively (keys stored lower-case)."""

    def get(self, name, default=None):
        return super().get(name.lower(), default)

    def __getitem__(self, name):
        return super().__getitem__(name.lower())

    def __contains__(self, name):
        return super().__contains__(name.lower())


class Response:
    """A response whose body is read on demand (streamed) or at once (``read()``)."""

    def __init__(self, sock, reader, method):
        self._sock, self._reader = sock, reader
        status_line = self._line()
        try:
            version, status, *reason = status_line.decode("latin-1").split(None, 2)
            self.status_code = int(status)
        except ValueError:
            raise HTTPError(f"not an HTTP response: {status_line[:80]!r}") from None
        self.reason_phrase = reason[0].strip() if reason else ""
        self.headers = Headers()
        while line := self._line().rstrip(b"\r\n"):
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()
        if self.status_code == 100:  # never asked for, but harmless to skip
            self.__init__(sock, reader, method)
            return
        self._bodiless = method == "HEAD" or self.status_code in (204, 304)
        self._content = b"" if self._bodiless else None

    def _line(self):
        line = self._reader.readline(MAX_LINE)
        if not line:
            raise HTTPError("the server closed the connection")
        return line

    def _pieces(self):
        """The body's bytes as they arrive, de-chunked."""
        reader = self._reader
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            while True:
                field = self._line().split(b";")[0].strip() or b"0"
                if not all(c in b"0123456789abcdefABCDEF" for c in field) or len(field) > 16:
                    raise HTTPError(f"bad chunk size {field[:20]!r} in the response")
                size = int(field, 16)
                if size == 0:
                    while self._line().strip():  # trailers
                        pass
                    return
                while size:  # in pieces: a chunk's announced size is never allocated at once
                    data = reader.read(min(size, 65536))
                    if not data:
                        raise HTTPError("the response ended inside a chunk")
                    size -= len(data)
                    yield data
                self._line()
        length = self.headers.get("content-length")
        left = int(length) if length is not None else None
        while left is None or left > 0:
            data = reader.read1(65536 if left is None else min(left, 65536))
            if not data:
                if left:
                    raise HTTPError("the response ended before its Content-Length")
                return
            if left is not None:
                left -= len(data)
            yield data

    def _stream(self):
        try:
            yield from self._pieces()
        except (OSError, ValueError) as e:
            raise HTTPError(str(e) or type(e).__name__) from e
        finally:
            self.close()

    def read(self):
        if self._content is None:
            self._content = b"".join(self._stream())
        return self._content

    @property
    def content(self):
        return self.read()

    @property
    def text(self):
        charset = "utf-8"
        for param in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = param.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.read().decode(charset, errors="replace")
        except LookupError:
            return self.read().decode("utf-8", errors="replace")

    def json(self):
        return jsonlib.loads(self.read())

    def iter_bytes(self):
        """Pieces of the body as they arrive."""
        if self._content is not None:
            if self._content:
                yield self._content
            return
        yield from self._stream()

    def iter_lines(self):
        """Decoded lines without their line endings, each as soon as its newline arrives."""
        if self._content is not None:
            yield from self.text.splitlines()
            return
        pending = b""
        for piece in self._stream():
            pending += piece
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.rstrip(b"\r").decode("utf-8", errors="replace")
        if pending:
            yield pending.rstrip(b"\r").decode("utf-8", errors="replace")

    def close(self):
        self._reader.close()
        self._sock.close()


class HTTP:
    """Requests relative to ``base_url`` (its path is a prefix, as in httpx)."""

    def __init__(self, base_url, connect_timeout=CONNECT_TIMEOUT, api_key=None, ca_file=None):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        default = (self._port == 443) if self._https else (self._port == 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if default else f"{host}:{self._port}"
        self._prefix = parts.path.rstrip("/")
        self._connect_timeout = connect_timeout
        self._api_key = api_key
        self._ca_file = ca_file

    def _connect(self, timeout):
        # An ASCII host goes to getaddrinfo as bytes: a str one imports the idna codec (10 ms).
        try:
            host = self._host.encode("ascii")
        except UnicodeEncodeError:
            host = self._host
        try:
            sock = socket.create_connection(
                (host, self._port), self._connect_timeout if timeout is None else timeout)
            if self._https:
                import ssl
                context = ssl.create_default_context()
                if self._ca_file:
                    context.load_verify_locations(cafile=self._ca_file)
                sock = context.wrap_socket(sock, server_hostname=self._host)
        except OSError as e:  # refused, unreachable, socket.gaierror, timeout, ssl errors
            raise ConnectError(str(e) or type(e).__name__) from e
        sock.settimeout(timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _send(self, method, path, params=None, json=None, content=None, headers=None,
              timeout=None):
        target = self._prefix + "/" + path.lstrip("/")
        if params:
            target += ("&" if "?" in target else "?") + urlencode(params)
        sent = {"Host": self._host_header, "Accept": "*/*", "User-Agent": USER_AGENT,
                "Connection": "close"}
        if self._api_key:
            sent["Authorization"] = f"Bearer {self._api_key}"
        body = content
        if json is not None:
            body = jsonlib.dumps(json).encode()
            sent["Content-Type"] = "application/json"
        if isinstance(body, str):
            body = body.encode()
        sent.update(headers or {})
        chunked = body is not None and not isinstance(body, (bytes, bytearray))
        if chunked:
            sent["Transfer-Encoding"] = "chunked"
        elif body is not None or method in ("POST", "PUT", "PATCH"):
            sent["Content-Length"] = str(len(body or b""))
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in sent.items()) + "\r\n"
        sock = self._connect(timeout)
        try:
            try:
                sock.sendall(head.encode("latin-1") + (body if body and not chunked else b""))
                if chunked:
                    for piece in body:
                        if piece:
                            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                    sock.sendall(b"0\r\n\r\n")
            except OSError as e:
                # A server may answer before it has read the whole body (a full disk, a size
                # cap) and close: its answer is the error to show, so read it if it is there.
                try:
                    return Response(sock, sock.makefile("rb"), method)
                except (OSError, ValueError, HTTPError):
                    raise e from None
            return Response(sock, sock.makefile("rb"), method)
        except (OSError, ValueError) as e:
            sock.close()
            raise HTTPError(str(e) or type(e).__name__) from e
        except BaseException:
            sock.close()
            raise

    def request(self, method, path, **kwargs):
        """The whole response, read."""
        resp = self._send(method, path, **kwargs)
        resp.read()
        return resp

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    @contextmanager
    def stream(self, method, path, **kwargs):
        """The response with its body unread; the connection closes on exit."""
        resp = self._send(method, path, **kwargs)
        try:
            yield resp
        finally:
            resp.close()
