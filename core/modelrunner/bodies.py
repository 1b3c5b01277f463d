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


# content parts a runner reads as images (OpenAI's image_url; input_image/image as some clients
# and dialect translations write them)
IMAGE_PARTS = ("image_url", "input_image", "image")


def chat_has_images(chat):
    """Whether an OpenAI chat body (as a client sent it, or as a dialect translated it) carries
    an image part: with ``Model.reads_images``, the one check every dialect makes before images
    reach a runner that cannot read them."""
    messages = chat.get("messages") if isinstance(chat, dict) else None
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") in IMAGE_PARTS
                                             for p in content):
            return True
    return False
