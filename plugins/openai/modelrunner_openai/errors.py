"""OpenAI's error object, with the type names its clients map to exceptions."""

import json

import falcon

from modelrunner import hide_paths

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


def send_error(resp, status, message, param=None, code=None):
    """Answer a Falcon response with OpenAI's error object (``param`` and ``code`` filled in)."""
    resp.status = falcon.code_to_http_status(status)
    resp.content_type = "application/json"
    body = openai_error(status, message, code)
    body["error"]["param"] = param
    resp.data = json.dumps(body).encode()
