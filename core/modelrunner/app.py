"""create_app(): the Falcon WSGI app with the core's routes and every plugin's routes.

    gunicorn -c conf/gunicorn.conf.py 'modelrunner.app:create_app()'

Nothing here imports an engine library: engines run in their own processes.
"""

import logging

import falcon

from .api.errors import DMRError, handle_dmr_error
from .runtime import Runtime


class BodyLimit:
    """413 for bodies over ``max_body`` (DMR: 10 MiB); model uploads are exempt."""

    UNLIMITED = ("/models/load", "/api/blobs/")

    def __init__(self, limit):
        self.limit = limit

    def process_request(self, req, resp):
        if req.content_length and req.content_length > self.limit and not any(
                req.path.startswith(p) for p in self.UNLIMITED):
            raise falcon.HTTPPayloadTooLarge(
                description=f"request body is {req.content_length} bytes; the limit is {self.limit}")


class ForwardedPrefix:
    """WSGI middleware: behind a reverse proxy that keeps a path prefix (X-Forwarded-Prefix, or
    the ``root_path`` setting), route as if the prefix were not there."""

    def __init__(self, app, root_path=""):
        self.app = app
        self.root_path = root_path.rstrip("/")

    def __call__(self, environ, start_response):
        prefix = environ.get("HTTP_X_FORWARDED_PREFIX", "").rstrip("/") or self.root_path
        path = environ.get("PATH_INFO", "")
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
            environ["PATH_INFO"] = path[len(prefix):] or "/"
        return self.app(environ, start_response)


def collect_at_start(store):
    """Remove what crashed or failed operations left (unreferenced blobs, temp files, stale
    bundles, staging folders) before serving; partial downloads younger than a week stay for
    resuming. Skipped when another worker's operations are already in flight."""
    collect = getattr(store, "collect_at_start", None)
    if collect is None:
        return None
    try:
        report = collect()
    except Exception:
        logging.getLogger("modelrunner").exception("collecting the store's garbage failed")
        return None
    removed = {k: v for k, v in report.items() if v and k not in ("bytes", "deferred")}
    if removed:
        logging.getLogger("modelrunner").info("store: collected %s (%d bytes)", removed,
                                              report["bytes"])
    return report


def create_app(settings=None, runtime=None):
    runtime = runtime or Runtime(settings)
    collect_at_start(runtime.store)
    app = falcon.App(middleware=[BodyLimit(int(runtime.settings.get("max_body", 10 << 20)))])
    app.req_options.strip_url_path_trailing_slash = True
    app.resp_options.default_media_type = falcon.MEDIA_JSON

    def handle_http_error(req, resp, ex, params):
        formatted = runtime.hook.format_error(req=req, status=int(ex.status_code),
                                              message=ex.description or ex.title)
        resp.status = ex.status
        for name, value in (ex.headers or {}).items():
            resp.set_header(name, value)
        if formatted:
            resp.content_type, resp.data = formatted
        else:
            resp.content_type = "text/plain; charset=utf-8"
            resp.text = (ex.description or ex.title) + "\n"

    app.add_error_handler(falcon.HTTPError, handle_http_error)
    app.add_error_handler(DMRError, handle_dmr_error)
    runtime.hook.register_routes(app=app, runtime=runtime)
    wsgi = ForwardedPrefix(app, str(runtime.settings.get("root_path", "") or ""))
    wsgi.runtime = runtime
    wsgi.falcon_app = app
    return wsgi
