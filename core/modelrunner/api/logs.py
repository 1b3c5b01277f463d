"""GET /logs[?follow=true&no-engines=true&tail=N]: the server's, the scheduler's and every runner's
log files under <store>/logs, merged (text/plain, each line prefixed with ``[source]``, ordered by
the timestamps the lines carry), as DMR merges its service and engine logs.

With follow=true the answer goes on with new lines as they are written (polled every 0.3 s) until
the client goes away.
"""

import time

from .. import logfiles
from .inspector import MAX_FOLLOW_SECONDS, client_gone

POLL_SECONDS = 0.3


def _true(req, name):
    return (req.get_param(name) or "").lower() in ("1", "true", "yes")


class LogsResource:
    def __init__(self, runtime):
        self.runtime = runtime

    def on_get(self, req, resp):
        models_path = self.runtime.settings.models_path
        engines = not _true(req, "no-engines")
        text, offsets = logfiles.merged(models_path, engines)
        tail = req.get_param_as_int("tail", min_value=0)
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = b"".join(lines[-tail:]) if tail else b""
        resp.content_type = "text/plain; charset=utf-8"
        if not _true(req, "follow"):
            resp.data = text
            return
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("X-Accel-Buffering", "no")
        resp.stream = self._follow(req, models_path, engines, text, offsets)

    def _follow(self, req, models_path, engines, text, offsets):
        yield text  # even empty: the first chunk sends the headers
        started = time.monotonic()
        while time.monotonic() - started < MAX_FOLLOW_SECONDS:
            time.sleep(POLL_SECONDS)
            if client_gone(req):
                return
            new = logfiles.poll(models_path, offsets, engines)
            if new:
                yield new
