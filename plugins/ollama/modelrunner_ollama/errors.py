"""Ollama's errors: ``{"error": "message"}`` with the HTTP status, or one such NDJSON line inside
a stream that already started (the status then stays 200, as Ollama does)."""

import json

import falcon

from modelrunner import ContextExceeded, Dialect, Unsupported, hide_paths


class OllamaError(falcon.HTTPError):
    """Raised by the resources; the app's HTTPError handler has the Ollama dialect render it."""

    def __init__(self, status, message):
        super().__init__(falcon.code_to_http_status(status), description=message)
        self.status_code_int = status
        self.message = message


def error_body(message):
    return json.dumps({"error": hide_paths(message)}).encode()  # no path of the machine


class OllamaDialect(Dialect):
    """``{"error": "..."}`` for every error of the routes whose resources say
    ``dialect = "ollama"``, with Ollama's words where a client may match them."""

    name = "ollama"

    def error_body(self, error):
        message = str(error)
        if isinstance(error, Unsupported):
            message = f"{error.model} does not support {error.capability}"  # Ollama's words
        elif isinstance(error, ContextExceeded) and error.prompt_over:
            message = (f"the input length exceeds the context length ({error.prompt_tokens} "
                       f"tokens; the context is {error.context})")
        return error_body(message)


def error_line(message):
    return error_body(message) + b"\n"


def not_found(name):
    return OllamaError(404, f"model '{name}' not found")
