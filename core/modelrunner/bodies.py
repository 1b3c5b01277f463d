"""Reading a request's JSON body, the same way on every route of every dialect."""

import json

from .errors import ModelRunnerError


def read_json_body(req, required=True):
    """The request's body as a JSON object (a dict).

    An empty body is ``{}`` unless ``required``; a body that is not JSON, or not an object, is a
    400 ``ModelRunnerError`` (the route's dialect shapes it). The body is read through Falcon's
    ``bounded_stream``, so it never reads past Content-Length.
    """
    raw = req.bounded_stream.read()
    if not raw:
        if required:
            raise ModelRunnerError("missing request body", status=400)
        return {}
    try:
        body = json.loads(raw)
    except ValueError as e:
        raise ModelRunnerError(f"invalid JSON body: {e}", status=400) from None
    if not isinstance(body, dict):
        raise ModelRunnerError("the body must be a JSON object", status=400)
    return body
