"""One error style for the core and every plugin: raise a ``ModelRunnerError``.

The app turns any ``ModelRunnerError`` that escapes a route into an HTTP answer: its ``status``
is the HTTP status, and the ``format_error`` hook of the dialect that owns the route shapes the
body (OpenAI's error object, Ollama's ``{"error"}``, Anthropic's ``{"type": "error"}``); the
core's own routes answer with DMR's plain text. ``kind`` is a dialect-neutral hint of what went
wrong ("invalid_request_error", "not_found_error", ...) for dialects whose error has a type.
"""

KIND_BY_STATUS = {400: "invalid_request_error", 401: "authentication_error",
                  403: "permission_error", 404: "not_found_error", 409: "conflict_error",
                  412: "invalid_request_error", 413: "request_too_large",
                  422: "invalid_request_error", 429: "rate_limit_error",
                  503: "overloaded_error"}


class ModelRunnerError(Exception):
    """A failure with the HTTP status to answer with; subclasses set a default ``status``."""

    status = 500

    def __init__(self, message="", status=None, kind=None):
        super().__init__(message)
        if status is not None:
            self.status = status
        self.kind = kind or KIND_BY_STATUS.get(self.status, "server_error")

    @property
    def message(self):
        return str(self)
