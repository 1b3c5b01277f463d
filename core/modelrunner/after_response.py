"""Work that a request causes but its client need not wait for: run once the answer is sent.

When a runner's answer ends, the gateway records the request (``on_request`` observers: the
inspector appends to a shared file under a lock, Prometheus counts) and releases the runner's
lease (a round trip to the scheduler). Done inside the request, that was about 3 ms of every
non-streamed chat's time and of a stream's last bytes. ``defer`` queues such work for the WSGI
request the caller is serving; ``AfterResponse``, the app's WSGI wrapper, runs it from the
answer's ``close()``, which the WSGI server calls after it has written the answer's last byte.

Outside a request (a script using the Runtime, a background greenlet) ``defer`` runs the work
at once. The queue is per request: a context variable, which each gevent greenlet (and each
thread) holds its own of.

Deferred work runs in order, before the worker serves its next request on that connection, and
before the worker yields to any other request unless it waits on I/O: the gateway sends the
release, runs the observers, then waits for the release's answer (the one wait), so a client that
reads the inspector or the runners right after an answer finds the request there and the runner
free.
"""

import contextvars
import logging

log = logging.getLogger("modelrunner")

_pending = contextvars.ContextVar("modelrunner_after_response", default=None)


def defer(fn, *args):
    """Run ``fn(*args)`` after the current request's answer is sent (at once outside one)."""
    pending = _pending.get()
    if pending is None:
        fn(*args)
    else:
        pending.append((fn, args))


def _run(pending):
    while pending:
        fn, args = pending.pop(0)
        try:
            fn(*args)
        except Exception:
            log.exception("work after an answer failed")


class AfterResponse:
    """WSGI middleware: deferred work of a request runs when its answer is closed."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        pending = []
        token = _pending.set(pending)
        try:
            result = self.app(environ, start_response)
        except BaseException:
            _pending.reset(token)
            _run(pending)
            raise
        file_wrapper = environ.get("wsgi.file_wrapper")
        if not pending and isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
            # a file the server sends with sendfile(), which it does only for its own wrapper
            _pending.reset(token)
            return result
        return _Answer(result, pending, token)


class _Answer:
    """The app's answer, passed through; ``close()`` closes it, then runs the deferred work."""

    def __init__(self, result, pending, token):
        self.result = result
        self.pending = pending
        self.token = token

    def __iter__(self):
        return iter(self.result)

    def close(self):
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()  # a stream closing here may defer its own finishing: it runs below
        finally:
            try:
                _pending.reset(self.token)
            except (ValueError, RuntimeError):  # closed from another context, or twice
                pass
            _run(self.pending)
