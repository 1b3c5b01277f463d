"""A small HTTP/1.1 client over the standard library's http.client, for the `model` CLI.

httpx cost the CLI about 0.1 s of CPU in imports (httpcore, h11, anyio, trio...) before its one
request to a local server; http.client is already loaded by Python's own modules. This module
keeps the part of httpx's interface the CLI and its plugins use: ``get``/``post``/``request``/
``stream`` with ``params``, ``json``, ``content`` (bytes or an iterator: sent chunked),
``headers`` and ``timeout``; responses with ``status_code``, ``headers``, ``read()``,
``content``, ``text``, ``json()``, ``iter_bytes()`` and ``iter_lines()``; and two errors,
:class:`ConnectError` (nothing answers) under :class:`HTTPError` (any transport failure).

One connection per request: the server is local and a command makes a handful of requests.
Like httpx, only the connect has a timeout by default (5 s): answers may take minutes.
"""

import http.client
import json as jsonlib
from contextlib import contextmanager
from urllib.parse import urlencode, urlsplit

from .. import __version__

CONNECT_TIMEOUT = 5.0
USER_AGENT = f"modelrunner-cli/{__version__}"


class HTTPError(Exception):
    """The connection failed, or broke while a request or response was under way."""


class ConnectError(HTTPError):
    """Nothing answers at the address (refused, unknown host, connect timed out)."""


class Response:
    """A response whose body is read on demand (streamed) or at once (``read()``)."""

    def __init__(self, raw, conn):
        self._raw, self._conn = raw, conn
        self.status_code = raw.status
        self.reason_phrase = raw.reason
        self.headers = raw.headers
        self._content = None

    def read(self):
        if self._content is None:
            try:
                self._content = self._raw.read()
            except (OSError, http.client.HTTPException) as e:
                raise HTTPError(str(e) or type(e).__name__) from e
            finally:
                self.close()
        return self._content

    @property
    def content(self):
        return self.read()

    @property
    def text(self):
        charset = self.headers.get_content_charset() or "utf-8"
        return self.read().decode(charset, errors="replace")

    def json(self):
        return jsonlib.loads(self.read())

    def iter_bytes(self, size=65536):
        """Chunks as they arrive (read1: no waiting for a full buffer)."""
        if self._content is not None:
            yield self._content
            return
        try:
            while chunk := self._raw.read1(size):
                yield chunk
        except (OSError, http.client.HTTPException) as e:
            raise HTTPError(str(e) or type(e).__name__) from e

    def iter_lines(self):
        """Decoded lines without their line endings, each as soon as its newline arrives."""
        if self._content is not None:
            yield from self.text.splitlines()
            return
        try:
            while line := self._raw.readline():
                yield line.decode("utf-8", errors="replace").rstrip("\r\n")
        except (OSError, http.client.HTTPException) as e:
            raise HTTPError(str(e) or type(e).__name__) from e

    def close(self):
        self._raw.close()
        self._conn.close()


class HTTP:
    """Requests relative to ``base_url`` (its path is a prefix, as in httpx)."""

    def __init__(self, base_url, connect_timeout=CONNECT_TIMEOUT):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._connect_timeout = connect_timeout

    def _send(self, method, path, params=None, json=None, content=None, headers=None,
              timeout=None):
        url = self._prefix + "/" + path.lstrip("/")
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        sent = {"Accept": "*/*", "User-Agent": USER_AGENT}
        body = content
        if json is not None:
            body = jsonlib.dumps(json).encode()
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port,
                   timeout=self._connect_timeout if timeout is None else timeout)
        try:
            conn.connect()
        except OSError as e:  # refused, unreachable, socket.gaierror, timeout
            conn.close()
            raise ConnectError(str(e) or type(e).__name__) from e
        conn.sock.settimeout(timeout)
        try:
            conn.request(method, url, body=body, headers=sent)
            return Response(conn.getresponse(), conn)
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise HTTPError(str(e) or type(e).__name__) from e

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
