"""Every Responses API answer a test receives, checked against the Open Responses specification.

``Recorder`` is an event hook for an httpx (or the openai client's httpx2) client: it reads each
answer whole as it arrives and keeps it; ``check()`` then validates every kept answer with
jsonschema against ``openresponses_schema.json``: a response object (POST .../responses, GET
.../responses/{id}) as ``ResponseResource``, each streamed event as ``StreamingEvent`` (and the
stream's ``event:`` names and final ``data: [DONE]``), a compaction as ``CompactResource``, listed
input items as ``ItemField``s, and an error as OpenAI's error object.

With ``OPENRESPONSES_OPENAPI`` naming a copy of the specification's OpenAPI document (not kept in
this repository), the same answers are also validated against the document's own schemas.
"""

import json
import os
from pathlib import Path

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

SCHEMA = json.loads((Path(__file__).with_name("openresponses_schema.json")).read_text())

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type", "param", "code"],
    "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                   "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}}


def _document():
    path = os.environ.get("OPENRESPONSES_OPENAPI")
    return json.loads(Path(path).read_text())["components"] if path else None


DOCUMENT = _document()


def _validators(name):
    found = [Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": SCHEMA["$defs"]})]
    if DOCUMENT and name in DOCUMENT["schemas"]:
        found.append(Draft202012Validator({"$ref": f"#/components/schemas/{name}",
                                           "components": DOCUMENT}))
    return found


def conforms(name, instance, where=""):
    """Assert that ``instance`` is valid as the specification's schema ``name``."""
    for validator in _validators(name):
        error = best_match(validator.iter_errors(instance))
        assert error is None, (f"{where} is not a valid {name}: {error.message} at "
                               f"{'/'.join(map(str, error.absolute_path))}\n"
                               f"{json.dumps(instance)[:2000]}")


def _event_types():
    """Event type -> the name of its schema, from the union's members."""
    types = {}
    for member in SCHEMA["$defs"]["StreamingEvent"]["oneOf"]:
        name = member["$ref"].rsplit("/", 1)[1]
        schema = SCHEMA["$defs"][name]
        parts = schema.get("allOf", []) + [schema]
        for part in parts:
            const = part.get("properties", {}).get("type", {}).get("const")
            if const:
                types[const] = name
    return types


EVENT_TYPES = _event_types()


def event_conforms(event, where="event"):
    """A streamed event: one of the specification's events, valid as its type's schema."""
    kind = event.get("type")
    assert kind in EVENT_TYPES, f"{where}: {kind!r} is not an event of the specification"
    conforms(EVENT_TYPES[kind], event, f"{where} {kind}")
    conforms("StreamingEvent", event, f"{where} {kind}")


def sse_events(raw):
    """The events of an SSE body (``event:`` name, data) and whether it ended with [DONE]."""
    events, done = [], False
    for block in raw.decode().split("\n\n"):
        name, data = None, None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        if data == "[DONE]":
            done = True
        elif data is not None:
            events.append((name, json.loads(data)))
    return events, done


def stream_conforms(raw, where="stream"):
    events, done = sse_events(raw)
    assert done, f"{where} does not end with data: [DONE]"
    for name, event in events:
        assert name == event.get("type"), f"{where}: event: {name} for a {event.get('type')}"
        event_conforms(event, where)
    return [event for _, event in events]


class Recorder:
    """An httpx event hook that keeps every Responses API answer for ``check()``."""

    def __init__(self):
        self.answers = []

    def __call__(self, response):
        if "/responses" in response.request.url.path:
            response.read()
            self.answers.append((response.request.method, response.request.url.path,
                                 response.status_code,
                                 response.headers.get("content-type", ""), response.content))

    def check(self):
        """Validate every answer kept since the last check; returns how many were checked."""
        answers, self.answers = self.answers, []
        for method, path, status, content_type, body in answers:
            where = f"{method} {path} ({status})"
            if status >= 400:
                conforms_error(json.loads(body), where)
            elif "text/event-stream" in content_type:
                stream_conforms(body, where)
            elif path.endswith("/compact"):
                conforms("CompactResource", json.loads(body), where)
            elif path.endswith("/input_items"):
                for item in json.loads(body)["data"]:
                    conforms("ItemField", item, where)
            elif method in ("POST", "GET"):
                conforms("ResponseResource", json.loads(body), where)
        return len(answers)


def conforms_error(body, where="error"):
    error = best_match(Draft202012Validator(ERROR).iter_errors(body))
    assert error is None, f"{where}: not OpenAI's error shape: {error.message}: {body}"
