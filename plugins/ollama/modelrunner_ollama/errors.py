"""Ollama's errors: ``{"error": "message"}`` with the HTTP status, or one such NDJSON line inside
a stream that already started (the status then stays 200, as Ollama does)."""

import json

import falcon

from modelrunner import hide_paths


class OllamaError(falcon.HTTPError):
    """Raised by the resources; the app's HTTPError handler asks ``format_error`` for the body."""

    def __init__(self, status, message):
        super().__init__(falcon.code_to_http_status(status), description=message)
        self.status_code_int = status
        self.message = message


def error_body(message):
    return json.dumps({"error": hide_paths(message)}).encode()  # no path of the machine


def error_line(message):
    return error_body(message) + b"\n"


def not_found(name):
    return OllamaError(404, f"model '{name}' not found")
