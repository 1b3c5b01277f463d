"""Anthropic's error object, ``{"type": "error", "error": {"type", "message"}, "request_id"}``.

``request_id`` is required and nullable in Anthropic's ErrorResponse: null, as this server
gives its requests no id.

The SDK maps the HTTP status to its exception classes (404 NotFoundError, 400 BadRequestError),
and tools read ``error.type``; Anthropic's names differ from the core's kinds in a few places.
"""

import json

from modelrunner import ContextExceeded, Dialect, hide_paths

TYPES = {"invalid_request_error": "invalid_request_error",
         "authentication_error": "authentication_error",
         "permission_error": "permission_error",
         "not_found_error": "not_found_error",
         "request_too_large": "request_too_large",
         "rate_limit_error": "rate_limit_error",
         "overloaded_error": "overloaded_error",
         "conflict_error": "invalid_request_error"}


def error_type(status, kind=None):
    if kind in TYPES:
        return TYPES[kind]
    if status == 404:
        return "not_found_error"
    if 400 <= status < 500:
        return "invalid_request_error"
    return "overloaded_error" if status in (503, 529) else "api_error"


def error_object(status, message, kind=None):
    return {"type": "error", "error": {"type": error_type(status, kind),
                                       "message": hide_paths(message)},  # no path of the machine
            "request_id": None}


def error_body(status, message, kind=None):
    return json.dumps(error_object(status, message, kind)).encode()


def sse_error(message):
    """The last event of a stream whose runner failed after the answer started."""
    return b"event: error\ndata: " + json.dumps(error_object(500, message)).encode() + b"\n\n"


class AnthropicDialect(Dialect):
    """The errors of the routes whose resources say ``dialect = "anthropic"``."""

    name = "anthropic"

    def error_body(self, error):
        message = str(error)
        if isinstance(error, ContextExceeded) and error.prompt_over:
            # Anthropic's own words for it, which agents match to compact their history
            message = f"prompt is too long: {error.prompt_tokens} tokens > {error.context} maximum"
        return error_body(error.status, message, error.kind)
