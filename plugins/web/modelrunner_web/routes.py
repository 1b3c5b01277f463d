"""The web UI's routes: its static files (public, strict CSP), the browser redirect from ``/``,
and the pulls the page started (pulls.py).

The static files are ``scope = "public"`` for GET/HEAD: the page must load to ask for an API key.
They hold no data; every datum comes from the API, under the key the user gives the page.
"""

import mimetypes
from importlib import resources

import falcon

from .pulls import PullsResource

# Model output is shown in this page: even if it slipped past the renderer's escaping, it could
# run no script, load nothing remote and send nothing anywhere but this server.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")

STATIC = resources.files(__package__) / "static"


def _security_headers(resp):
    resp.set_header("Content-Security-Policy", CSP)
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.set_header("Referrer-Policy", "no-referrer")
    resp.set_header("X-Frame-Options", "DENY")
    resp.set_header("Cache-Control", "no-cache")


def _static_names():
    return {entry.name for entry in STATIC.iterdir() if entry.is_file()}


class StaticResource:
    """GET /ui/ (index.html) and /ui/{file}: only the files shipped in static/, by exact name."""

    scope = "public"

    def __init__(self):
        self.names = _static_names()

    def on_get(self, req, resp, file="index.html"):
        if file == "index.html" and not req.env.get("PATH_INFO", "").endswith("/") \
                and req.path == "/ui":
            # /ui without the slash: the page's relative URLs need /ui/
            raise falcon.HTTPFound(req.env.get("SCRIPT_NAME", "") + "/ui/")
        if file not in self.names:
            raise falcon.HTTPNotFound(description=f"no file {file!r} in the web UI")
        kind = mimetypes.guess_type(file)[0] or "application/octet-stream"
        resp.content_type = kind + ("; charset=utf-8" if kind.startswith("text/")
                                    or kind.endswith("javascript") else "")
        resp.data = (STATIC / file).read_bytes()
        _security_headers(resp)

    def on_head(self, req, resp, file="index.html"):
        self.on_get(req, resp, file)
        resp.data = None


class BrowserRedirect:
    """Middleware: a browser asking for ``/`` (Accept naming text/html) goes to /ui/; every other
    client keeps DMR's text there, which the core's own resource answers."""

    def process_request(self, req, resp):
        if req.method == "GET" and req.path == "/" and "text/html" in (req.accept or ""):
            raise falcon.HTTPFound(req.env.get("SCRIPT_NAME", "") + "/ui/")


def add_routes(app, runtime):
    static = StaticResource()
    app.add_route("/ui", static)
    app.add_route("/ui/{file}", static)
    app.add_route("/ui/api/pulls", PullsResource(runtime))
    app.add_middleware(BrowserRedirect())
