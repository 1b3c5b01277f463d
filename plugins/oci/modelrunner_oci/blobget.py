"""Blob bodies over http.client: the plain path of a download, without httpx's cost per chunk.

httpx reads a body 64 KiB at a time through h11 and httpcore: about 0.3 s of Python per 500 MB
here, as long as the network read itself. http.client's ``readinto`` fills a 4 MiB buffer in one
call. So a blob GET goes out on http.client with the Authorization the Registry already settled
(the manifest came first, through httpx), following redirects (to a CDN: without the registry's
Authorization, as Docker does). Anything but a 200/206, a connection that fails, or a proxy in
the environment gives None, and the caller asks again through ``Registry.request``, which owns
auth challenges, retries and error messages.
"""

import http.client
import urllib.request
from urllib.parse import urljoin, urlsplit

from .registry import tls_context

REDIRECTS = 5


class RawBlobResponse:
    """An open 200/206 answer: ``status_code``, ``headers``, ``readinto(view)``, ``close()``."""

    def __init__(self, conn, response):
        self.conn = conn
        self.response = response
        self.status_code = response.status
        self.headers = response.headers  # case-insensitive .get, like httpx's

    def readinto(self, view):
        return self.response.readinto(view)

    def close(self):
        self.response.close()
        self.conn.close()


def _proxied(url):
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    return bool(proxies.get(parts.scheme) or proxies.get("all")) and \
        not urllib.request.proxy_bypass(parts.hostname or "")


def open_blob(url, headers, authorization=None, user_agent=None, timeout=60.0):
    """GET ``url``; an open RawBlobResponse for 200/206, else None (ask through httpx)."""
    first = urlsplit(url)
    origin = (first.scheme, first.netloc)
    for _ in range(REDIRECTS + 1):
        if _proxied(url):
            return None
        parts = urlsplit(url)
        sent = dict(headers)
        if user_agent:
            sent["User-Agent"] = user_agent
        if authorization and (parts.scheme, parts.netloc) == origin:  # never to http on a downgrade
            sent["Authorization"] = authorization
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout,
                                               context=tls_context())
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request("GET", path, headers=sent)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException):
            conn.close()
            return None
        if response.status in (200, 206):
            return RawBlobResponse(conn, response)
        location = response.getheader("Location")
        response.close()
        conn.close()
        if response.status not in (301, 302, 303, 307, 308) or not location:
            return None
        url = urljoin(url, location)
    return None
