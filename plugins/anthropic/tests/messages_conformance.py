"""Every Anthropic Messages answer a test receives, checked against Anthropic's schemas
(``anthropic_schema.json``, written from Anthropic's API reference as its SDKs publish it).

``Recorder`` (an ``AnswerRecorder`` of modelrunner.testing, an httpx event hook the anthropic
client's http_client takes) keeps each answer of .../messages and .../messages/count_tokens
whole; ``check()`` validates the raw JSON (the client is lenient): a message as ``Message``, each
streamed event as its type's schema with the SSE ``event:`` name equal to its type, a count as
``MessageTokensCount``, any 4xx/5xx as ``ErrorResponse``.
"""

import json
from pathlib import Path

from modelrunner.testing import AnswerRecorder, Schemas, sse_data

SCHEMAS = Schemas(Path(__file__).with_name("anthropic_schema.json"))
EVENTS = {"message_start": "RawMessageStartEvent", "message_delta": "RawMessageDeltaEvent",
          "message_stop": "RawMessageStopEvent", "content_block_start": "RawContentBlockStartEvent",
          "content_block_delta": "RawContentBlockDeltaEvent",
          "content_block_stop": "RawContentBlockStopEvent", "ping": "PingEvent",
          "error": "ErrorEvent"}
conforms = SCHEMAS.conforms  # conforms(name, instance, where=""): valid as Anthropic's ``name``


def stream_conforms(raw, where="stream"):
    """Each event of an SSE answer valid as its type; returns the events."""
    events, done = sse_data(raw)
    assert not done, f"{where}: data: [DONE] is not an event of the Messages API"
    for name, data in events:
        kind = data.get("type")
        assert name == kind, f"{where}: event: {name} for a {kind}"
        assert kind in EVENTS, f"{where}: {kind!r} is not an event of the Messages API"
        conforms(EVENTS[kind], data, f"{where} {kind}")
    return [data for _, data in events]


def answer_conforms(method, path, status, content_type, body):
    where = f"{method} {path} ({status})"
    if status >= 400:
        conforms("ErrorResponse", json.loads(body), where)
    elif "text/event-stream" in content_type:
        return stream_conforms(body, where)
    elif path.endswith("/count_tokens"):
        conforms("MessageTokensCount", json.loads(body), where)
    else:
        conforms("Message", json.loads(body), where)
    return json.loads(body)


class Recorder(AnswerRecorder):
    """Keeps every Messages answer for ``check()``."""

    def __init__(self):
        super().__init__(lambda path: path.endswith(("/messages", "/messages/count_tokens")),
                         answer_conforms)
