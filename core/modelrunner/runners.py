"""Runner addresses are URLs: ``unix:///path/to.sock`` today, ``http://host:port`` when a
scheduler places a runner on another machine. ``runner_connection`` opens an ``http.client``
connection to either, so the gateway and telemetry never care where a runner lives.

A bare path (no scheme) is taken as a Unix socket, so addresses stored by older versions work.
"""

import http.client
import socket
from urllib.parse import urlsplit


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket (the runner's and the scheduler's transport)."""

    def __init__(self, path, timeout=None):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def unix_url(path):
    """The address of a runner listening on the Unix socket ``path``."""
    return "unix://" + str(path)


def socket_path(address):
    """The filesystem path of a ``unix://`` address (or a bare path); None for http://."""
    if "://" not in address:
        return address
    parts = urlsplit(address)
    return parts.path if parts.scheme == "unix" else None


def listen_on(address):
    """Where a runner given ``address`` listens, for its command line: ``(path, None)`` for a
    unix:// address (or a bare path), ``(host, port)`` for http:// (IPv6 brackets removed)."""
    path = socket_path(address or "")
    if path:
        return path, None
    parts = urlsplit(address or "")
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise ValueError(f"a runner cannot listen on {address!r}")
    return parts.hostname, parts.port


def runner_healthy(address, health_path, timeout=2):
    """Whether the runner at ``address`` answers ``GET health_path`` with 200 (the readiness
    check of every placement: a Unix socket here, a port on another node)."""
    try:
        conn = runner_connection(address, timeout=timeout)
    except ValueError:
        return False
    try:
        conn.request("GET", health_path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def runner_connection(address, timeout=None):
    """An ``http.client`` connection to the runner at ``address`` (unix://, http://, https://)."""
    path = socket_path(address)
    if path is not None:
        return UnixHTTPConnection(path, timeout=timeout)
    parts = urlsplit(address)
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=timeout)
    if parts.scheme == "http":
        return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    raise ValueError(f"unsupported runner address {address!r}")
