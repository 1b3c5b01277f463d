"""Every chat, completion, embedding, model and error answer a test receives, checked against
OpenAI's schemas (``openai_schema.json``, written from OpenAI's OpenAPI description).

``Recorder`` is an event hook for an httpx (or the openai client's httpx2) client: it reads each
answer of those routes whole and keeps it; ``check()`` validates every kept answer with
jsonschema: a chat completion as ``CreateChatCompletionResponse``, each streamed chunk as
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

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

SCHEMA = json.loads(Path(__file__).with_name("openai_schema.json").read_text())


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
    return _nullable(json.loads(Path(path).read_text())["components"]) if path else None


DOCUMENT = _document()
_CACHE = {}


def _validators(name):
    if name not in _CACHE:
        found = [Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": SCHEMA["$defs"]})]
        if DOCUMENT and name in DOCUMENT["schemas"]:
            found.append(Draft202012Validator({"$ref": f"#/components/schemas/{name}",
                                               "components": DOCUMENT}))
        _CACHE[name] = found
    return _CACHE[name]


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
    for number, validator in enumerate(_validators(name)):
        if number:  # the document's own schema
            instance = _floats(instance)
        error = best_match(validator.iter_errors(instance))
        assert error is None, (f"{where} is not a valid {name}: {error.message} at "
                               f"{'/'.join(map(str, error.absolute_path))}\n"
                               f"{json.dumps(instance)[:2000]}")


def sse_data(raw):
    """The JSON events of an SSE body and whether it ended with ``data: [DONE]``."""
    events, done = [], False
    for block in raw.decode().split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data:"):
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                else:
                    events.append(json.loads(data))
    return events, done


def stream_conforms(raw, name, where="stream"):
    """Each event of an SSE answer valid as ``name`` (an error event as ``ErrorResponse``);
    returns the events."""
    events, done = sse_data(raw)
    assert done, f"{where} does not end with data: [DONE]"
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


class Recorder:
    """An httpx event hook that keeps every answer of the routes above for ``check()``."""

    def __init__(self):
        self.answers = []

    def __call__(self, response):
        path = response.request.url.path
        if any(path.endswith(route[0]) for route in ROUTES) or "/models/" in path:
            response.read()
            self.answers.append((response.request.method, path, response.status_code,
                                 response.headers.get("content-type", ""), response.content))

    def check(self):
        """Validate every answer kept since the last check; returns how many were checked."""
        answers, self.answers = self.answers, []
        for answer in answers:
            answer_conforms(*answer)
        return len(answers)
