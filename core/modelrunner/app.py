"""create_app(): the Falcon WSGI app with the core's routes and every plugin's routes.

    gunicorn -c conf/gunicorn.conf.py 'modelrunner.app:create_app()'

Nothing here imports an engine library: engines run in their own processes.
"""

import logging

import falcon

from .after_response import AfterResponse
from .api.errors import DMRError, handle_dmr_error
from .dialects import Remember, Router, as_error, collect, render, resource_of
from .errors import ModelRunnerError
from .machine_paths import add_root, hide_paths
from .runtime import Runtime
from .trust import Trust
from .uploads import UPLOAD, check_upload, parse_upload_cap

log = logging.getLogger("modelrunner")


class BodyLimit:
    """413 for bodies over ``max_body`` (DMR: 10 MiB). A resource may set its own ``max_body``
    (None: no limit); model uploads set ``UPLOAD``: the ``max_upload`` setting and the store's
    free disk space apply (see modelrunner.uploads)."""

    def __init__(self, limit, upload_cap=0, store_path="."):
        self.limit = limit
        self.upload_cap = upload_cap
        self.store_path = store_path

    def process_resource(self, req, resp, resource, params):
        limit = getattr(resource, "max_body", self.limit)
        if limit == UPLOAD:
            if req.method in ("POST", "PUT"):
                check_upload(req, self.upload_cap, self.store_path)
            return
        if limit is not None and req.content_length and req.content_length > limit:
            raise falcon.HTTPContentTooLarge(
                description=f"request body is {req.content_length} bytes; the limit is {limit}")


class ForwardedPrefix:
    """WSGI middleware: behind a reverse proxy that keeps a path prefix (X-Forwarded-Prefix, or
    the ``root_path`` setting), route as if the prefix were not there.

    X-Forwarded-Prefix counts only from the proxies in ``forwarded_allow_ips`` (as gunicorn does
    for X-Forwarded-Proto): from anyone else it would let a client rewrite the paths it is shown.
    """

    def __init__(self, app, root_path="", trusted="127.0.0.1"):
        self.app = app
        self.root_path = root_path.rstrip("/")
        names = trusted.split(",") if isinstance(trusted, str) else trusted
        self.trusted = {str(ip).strip() for ip in names if str(ip).strip()}

    def __call__(self, environ, start_response):
        prefix = ""
        if "*" in self.trusted or environ.get("REMOTE_ADDR") in self.trusted:
            prefix = environ.get("HTTP_X_FORWARDED_PREFIX", "").rstrip("/")
        prefix = prefix or self.root_path
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
    settings = runtime.settings
    add_root(settings.models_path)  # answers name it <store> (machine_paths)
    # Trust first: a request it refuses reaches nothing else (see trust.py).
    router = Router()
    app = falcon.App(router=router,
                     middleware=[Trust(settings), Remember(),
                                 BodyLimit(int(settings.get("max_body", 10 << 20)),
                                           parse_upload_cap(settings.get("max_upload", 0)),
                                           settings.models_path)])
    app.req_options.strip_url_path_trailing_slash = True
    app.resp_options.default_media_type = falcon.MEDIA_JSON

    dialects = collect(runtime.hook)

    def answer_error(req, resp, error, headers=None):
        """The one error path: the dialect of the route's resource shapes the body
        (modelrunner.dialects); the core's routes answer as DMR does, in plain text. No path of
        this machine reaches the client (machine_paths.hide_paths); the server log keeps the
        whole message."""
        message = str(error)
        public = hide_paths(message)
        if public != message or error.status >= 500:
            log.warning("%s %s answered %d: %s", req.method, req.path, error.status, message)
        if public != message:
            error.args = (public,)
        resp.status = falcon.code_to_http_status(error.status)
        for name, value in (headers or {}).items():
            resp.set_header(name, value)
        formatted = render(dialects, resource_of(req, router), error)
        if formatted:
            resp.content_type, resp.data = formatted
        else:
            resp.content_type = "text/plain; charset=utf-8"
            resp.text = public + "\n"

    def handle_http_error(req, resp, ex, params):
        answer_error(req, resp, as_error(int(ex.status_code), ex.description or ex.title),
                     ex.headers)

    def handle_modelrunner_error(req, resp, ex, params):
        answer_error(req, resp, ex)

    app.add_error_handler(falcon.HTTPError, handle_http_error)
    app.add_error_handler(ModelRunnerError, handle_modelrunner_error)
    app.add_error_handler(DMRError, handle_dmr_error)
    runtime.hook.register_routes(app=app, runtime=runtime)
    for name in sorted({getattr(r, "dialect", None) for _, r in router.routes} - {None}
                       - set(dialects)):
        # its routes would answer errors in DMR's plain text, not the shape their clients read
        log.warning("routes name the dialect %r, which no plugin registers", name)
    # a request's recording and lease release run after its answer is sent (after_response)
    wsgi = ForwardedPrefix(AfterResponse(app), str(runtime.settings.get("root_path", "") or ""),
                           runtime.settings.get("forwarded_allow_ips", "127.0.0.1"))
    wsgi.runtime = runtime
    wsgi.falcon_app = app
    wsgi.routes = router.routes
    wsgi.dialects = dialects
    return wsgi
