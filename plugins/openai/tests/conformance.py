"""Every Responses API answer a test receives, checked against the Open Responses specification.

``Recorder`` (an ``AnswerRecorder`` of modelrunner.testing, an httpx event hook) keeps every
answer of .../responses whole; ``check()`` validates each against ``openresponses_schema.json``:
a response object (POST .../responses, GET .../responses/{id}) as ``ResponseResource``, each
streamed event as ``StreamingEvent`` and its type's own schema (and the stream's ``event:`` names
and final ``data: [DONE]``), a compaction as ``CompactResource``, listed input items as
``ItemField``s, and an error as OpenAI's error object.

With ``OPENRESPONSES_OPENAPI`` naming a copy of the specification's OpenAPI document (not kept in
this repository), the same answers are also validated against the document's own schemas.
"""

import json
import os
from pathlib import Path

from modelrunner.testing import AnswerRecorder, Schemas, sse_data

SCHEMAS = Schemas(Path(__file__).with_name("openresponses_schema.json"))

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type", "param", "code"],
    "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                   "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}}
ERRORS = Schemas({"$defs": {"OpenAIError": ERROR}})


def _document():
    path = os.environ.get("OPENRESPONSES_OPENAPI")
    if not path:
        return None
    return Schemas({"components": json.loads(Path(path).read_text())["components"]},
                   defs="components/schemas")


DOCUMENT = _document()


def conforms(name, instance, where=""):
    """Assert that ``instance`` is valid as the specification's schema ``name``."""
    SCHEMAS.conforms(name, instance, where)
    if DOCUMENT and name in DOCUMENT:
        DOCUMENT.conforms(name, instance, where)


def _event_types():
    """Event type -> the name of its schema, from the union's members."""
    types = {}
    for member in SCHEMAS["StreamingEvent"]["oneOf"]:
        name = member["$ref"].rsplit("/", 1)[1]
        schema = SCHEMAS[name]
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


def stream_conforms(raw, where="stream"):
    events, done = sse_data(raw)
    assert done, f"{where} does not end with data: [DONE]"
    for name, event in events:
        assert name == event.get("type"), f"{where}: event: {name} for a {event.get('type')}"
        event_conforms(event, where)
    return [event for _, event in events]


def conforms_error(body, where="error"):
    ERRORS.conforms("OpenAIError", body, where)


def answer_conforms(method, path, status, content_type, body):
    """One answer of a Responses route, checked as its schema."""
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


class Recorder(AnswerRecorder):
    """Keeps every Responses API answer for ``check()``."""

    def __init__(self):
        super().__init__(lambda path: "/responses" in path, answer_conforms)
