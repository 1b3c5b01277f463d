"""OpenAI's error object, with the type names its clients map to exceptions: the OpenAI
dialect's renderer (every error on a route whose resource says ``dialect = "openai"``)."""

import json

from modelrunner import ContextExceeded, Dialect, hide_paths

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
         404: "not_found_error", 405: "invalid_request_error", 409: "conflict_error", 412: "invalid_request_error",
         413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
         503: "server_error"}


def openai_error(status, message, code=None):
    """OpenAI's error object; no path of the machine in its message (modelrunner.hide_paths)."""
    return {"error": {"message": hide_paths(message), "type": TYPES.get(status, "server_error"),
                      "param": None, "code": code}}


def openai_error_body(status, message, code=None):
    return json.dumps(openai_error(status, message, code)).encode()


def sse_error(message):
    """An error inside a stream that already started: one last event the client can read."""
    return f"data: {json.dumps(openai_error(500, message))}\n\n".encode()


class OpenAIDialect(Dialect):
    """OpenAI's ``{"error": {"message", "type", "param", "code"}}`` for every error of its routes
    (chat, completions, embeddings, models, images, rerank and score, the Responses API)."""

    name = "openai"

    def error_body(self, error):
        message = str(error)
        if isinstance(error, ContextExceeded) and error.prompt_over:
            # OpenAI's own words for it (clients and agents match them to trim their history)
            message = (f"This model's maximum context length is {error.context} tokens. However, "
                       f"your messages resulted in {error.prompt_tokens} tokens. Please reduce "
                       f"the length of the messages.")
        body = openai_error(error.status, message, error.code)
        body["error"]["param"] = error.param
        return json.dumps(body).encode()
