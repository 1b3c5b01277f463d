"""Every chat, completion, embedding, model and error answer a test receives, checked against
OpenAI's schemas (``openai_schema.json``, written from OpenAI's OpenAPI description).

``Recorder`` (an ``AnswerRecorder`` of modelrunner.testing, an httpx event hook) keeps each
answer of those routes whole; ``check()`` validates every kept answer with jsonschema: a chat
completion as ``CreateChatCompletionResponse``, each streamed chunk as
``CreateChatCompletionStreamResponse`` (and the stream's final ``data: [DONE]``), a completion as
``CreateCompletionResponse`` (streamed: ``CompletionStreamEvent``), embeddings as
``CreateEmbeddingResponse``, models as ``ListModelsResponse``/``Model``, and any 4xx/5xx as
``ErrorResponse``. The raw bytes are checked, not what the (lenient) client made of them.

With ``OPENAI_OPENAPI`` naming a copy of openai/openai-openapi's ``openapi.json`` (not kept in
this repository), the same answers are also validated against the document's own schemas.
"""

import base64
import json
import os
from array import array
from pathlib import Path

from modelrunner.testing import AnswerRecorder, Schemas, sse_data

SCHEMAS = Schemas(Path(__file__).with_name("openai_schema.json"))


def _nullable(node):
    """The document's OpenAPI 3.0 ``nullable: true``, as JSON Schema reads it (or null)."""
    if isinstance(node, list):
        return [_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _nullable(v) for k, v in node.items()}
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


def _document():
    path = os.environ.get("OPENAI_OPENAPI")
    if not path:
        return None
    return Schemas({"components": _nullable(json.loads(Path(path).read_text())["components"])},
                   defs="components/schemas")


DOCUMENT = _document()


def _floats(instance):
    """Embeddings answered as base64 (``encoding_format``), as the client decodes them: the
    document's Embedding names only the list of floats."""
    if isinstance(instance, dict) and isinstance(instance.get("data"), list):
        data = [{**d, "embedding": list(array("f", base64.b64decode(d["embedding"])))}
                if isinstance(d, dict) and isinstance(d.get("embedding"), str) else d
                for d in instance["data"]]
        return {**instance, "data": data}
    return instance


def conforms(name, instance, where=""):
    """Assert that ``instance`` is valid as OpenAI's schema ``name``."""
    SCHEMAS.conforms(name, instance, where)
    if DOCUMENT and name in DOCUMENT:
        DOCUMENT.conforms(name, _floats(instance), where)


def stream_conforms(raw, name, where="stream"):
    """Each event of an SSE answer valid as ``name`` (an error event as ``ErrorResponse``);
    returns the events."""
    events, done = sse_data(raw)
    assert done, f"{where} does not end with data: [DONE]"
    events = [event for _, event in events]
    for event in events:
        conforms("ErrorResponse" if "error" in event else name, event, where)
    return events


ROUTES = (("/chat/completions", "CreateChatCompletionResponse",
           "CreateChatCompletionStreamResponse"),
          ("/completions", "CreateCompletionResponse", "CompletionStreamEvent"),
          ("/embeddings", "CreateEmbeddingResponse", None),
          ("/models", "ListModelsResponse", None))


def answer_conforms(method, path, status, content_type, body):
    """One answer of an OpenAI route, checked as its schema; returns the parsed answer."""
    where = f"{method} {path} ({status})"
    if status >= 400:
        answer = json.loads(body)
        conforms("ErrorResponse", answer, where)
        return answer
    if "/models/" in path:
        answer = json.loads(body)
        conforms("Model", answer, where)
        return answer
    for suffix, plain, streamed in ROUTES:
        if path.endswith(suffix):
            if "text/event-stream" in content_type:
                return stream_conforms(body, streamed, where)
            answer = json.loads(body)
            conforms(plain, answer, where)
            return answer
    raise AssertionError(f"{where}: not a route this check knows")


def _checked(path):
    return any(path.endswith(route[0]) for route in ROUTES) or "/models/" in path


class Recorder(AnswerRecorder):
    """Keeps every answer of the routes above for ``check()``."""

    def __init__(self):
        super().__init__(_checked, answer_conforms)
