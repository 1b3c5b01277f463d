"""Reading a request's JSON body, the same way on every route of every dialect.

Every JSON a client sends (a body, or JSON inside one of its strings: tool-call arguments, an
Ollama ``format``) is parsed by :func:`parse_json`, which caps how deeply it may nest. Why a cap:
CPython's ``json`` recurses once per level and raises ``RecursionError`` somewhere under ~1000
levels (where depends on how deep the stack already is), so ``[`` x 200,000 answered 500 on every
route; and a body that parses at 900 levels still breaks whatever walks it next (``json.dumps``
for the runner, the translators of each dialect, the request inspector). Bodies nested deeper than
:data:`MAX_JSON_DEPTH` are a 400 in the route's dialect.
"""

import json
import re

from .errors import ModelRunnerError

# 64 levels: far deeper than any real request (OpenAI's structured outputs allow a schema 10
# levels of objects deep, about 25 levels of a body; chat messages are 4 or 5), and shallow
# enough that everything that recurses over a body afterwards (json.dumps, the dialects'
# translations, the inspector) stays far from Python's recursion limit.
MAX_JSON_DEPTH = 64


class JSONBodyError(ModelRunnerError, ValueError):
    """JSON a client sent that is not JSON, or nests deeper than :data:`MAX_JSON_DEPTH` (a 400).
    A ``ValueError`` too, so code that already treats bad JSON as ``ValueError`` keeps doing so."""

    status = 400


def _too_deep(value, limit):
    """Whether ``value`` nests deeper than ``limit`` levels, found level by level (no recursion;
    scalars are looked at once and never descended into)."""
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below = []
        for container in level:
            items = container.values() if type(container) is dict else container
            below += [item for item in items if type(item) in (dict, list)]
        level = below
    return False


def _no_constant(name):
    """``NaN``, ``Infinity`` and ``-Infinity`` are Python's extension, not JSON: a client's
    ``"temperature": NaN`` would reach a runner that cannot parse it (a 500 from llama-server) or
    a number that compares false with every bound."""
    raise ValueError(f"{name} is not a JSON value")


def _finite(text):
    """A JSON number too large for a float (``1e400``) is read by Python as infinity, which a
    dialect's translation then writes as ``Infinity``: not JSON, so the runner answered 500 and
    the gateway could not read the body it checks for images. Refused here, as the 400 it is."""
    value = float(text)
    if value - value != 0:  # inf - inf is nan
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def parse_json(raw, max_depth=MAX_JSON_DEPTH):
    """``json.loads(raw)`` for JSON from a client: any JSON value, or :class:`JSONBodyError` (400)
    when ``raw`` is not JSON or nests deeper than ``max_depth`` levels (``{}`` is one level); its
    message says why, as ``json``'s own ValueError does, for the caller to prefix.

    O(size): a text with no more brackets than ``max_depth`` cannot nest deeper and is not walked;
    otherwise the parsed value's containers are walked once, level by level. A text nested past
    what ``json`` itself can recurse into (``RecursionError``) is refused the same way.
    """
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw)
        brackets = raw.count(b"[") + raw.count(b"{")
    else:
        brackets = raw.count("[") + raw.count("{")
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        value, brackets = None, None
    except ValueError as e:  # UnicodeDecodeError included
        raise JSONBodyError(str(e)) from None
    if brackets is None or (brackets > max_depth and _too_deep(value, max_depth)):
        raise JSONBodyError(f"nested deeper than {max_depth} levels")
    return value


def parse_json_body(raw, required=True):
    """A request body (bytes) as a JSON object (a dict), through :func:`parse_json`.

    An empty body is ``{}`` unless ``required``; a body that is not JSON, nests too deeply, or is
    not an object is a 400 ``ModelRunnerError`` (the route's dialect shapes it). For routes that
    also need the raw bytes (to send them on to a runner as they came).
    """
    if not raw:
        if required:
            raise JSONBodyError("missing request body")
        return {}
    try:
        body = parse_json(raw)
    except JSONBodyError as e:
        raise JSONBodyError(f"invalid JSON body: {e}") from None
    if not isinstance(body, dict):
        raise JSONBodyError("the body must be a JSON object")
    return body


def read_json_body(req, required=True):
    """The request's body as a JSON object (a dict): :func:`parse_json_body` of the body read
    through Falcon's ``bounded_stream``, so it never reads past Content-Length."""
    return parse_json_body(req.bounded_stream.read(), required)


# content parts a runner reads as images (OpenAI's image_url; input_image/image as some clients
# and dialect translations write them)
IMAGE_PARTS = ("image_url", "input_image", "image")


def chat_media(chat):
    """What an OpenAI chat body (as a client sent it, or as a dialect translated it) carries
    besides text: a set of "images", "audio", "video". With ``Model.reads_images`` (a GGUF reads
    them only through a multimodal projector), the one check the gateway makes for every dialect
    before media reach a runner that cannot read them."""
    kinds = set()
    messages = chat.get("messages") if isinstance(chat, dict) else None
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else ():
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in IMAGE_PARTS:
                kinds.add("images")
            elif kind in ("input_audio", "audio_url"):
                kinds.add("audio")
            elif kind in ("input_video", "video_url"):
                kinds.add("video")
    return kinds


def chat_has_images(chat):
    """Whether an OpenAI chat body carries an image part (see :func:`chat_media`)."""
    return "images" in chat_media(chat)


def _part_url(part):
    """The URL of an image part in any of the shapes a chat carries it, or None."""
    for key in ("image_url", "url", "image"):
        value = part.get(key)
        if isinstance(value, dict):
            value = value.get("url")
        if isinstance(value, str):
            return value
    return None


# audio and video parts, as llama-server and vLLM read them (vLLM also takes audio_url):
# {"type": T, T: {"data" or "url": ...}}. Their
# "data" is raw base64 in OpenAI's input_audio, so a value is remote when it names a scheme
# (base64 has no ":"): llama-server downloads any value that starts with "http".
MEDIA_PARTS = ("input_audio", "audio_url", "input_video", "video_url")
_SCHEME = re.compile(r"\s*[A-Za-z][A-Za-z0-9+.-]*:")


def _media_urls(part):
    media = part.get(part.get("type"))
    for key in ("data", "url"):
        value = media.get(key) if isinstance(media, dict) else None
        if isinstance(value, str) and _SCHEME.match(value) \
                and not value.lstrip().lower().startswith("data:"):
            yield value


def remote_image_urls(chat):
    """The image, audio and video URLs of an OpenAI chat body that are not ``data:`` URLs (for
    audio and video: base64). A runner fetches those itself (llama-server and vLLM download
    http(s) media), from the server's machine: whoever may chat could make it reach addresses
    only that machine reaches (a cloud's metadata service, a router's admin page). The gateway
    refuses them unless ``allow_image_urls``."""
    urls = []
    messages = chat.get("messages") if isinstance(chat, dict) else None
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("type") in IMAGE_PARTS:
                url = _part_url(part)
                if url is not None and not url.lstrip().lower().startswith("data:"):
                    urls.append(url)
            elif isinstance(part, dict) and part.get("type") in MEDIA_PARTS:
                urls.extend(_media_urls(part))
    return urls
