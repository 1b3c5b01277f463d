"""Every Anthropic Messages answer a test receives, checked against Anthropic's schemas
(``anthropic_schema.json``, written from Anthropic's API reference as its SDKs publish it).

``Recorder`` is an httpx event hook (the anthropic client's http_client takes it): it keeps each
answer of .../messages and .../messages/count_tokens whole; ``check()`` validates the raw JSON
(the client is lenient): a message as ``Message``, each streamed event as its type's schema with
the SSE ``event:`` name equal to its type, a count as ``MessageTokensCount``, any 4xx/5xx as
``ErrorResponse``.
"""

import json
from pathlib import Path

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

SCHEMA = json.loads(Path(__file__).with_name("anthropic_schema.json").read_text())
EVENTS = {"message_start": "RawMessageStartEvent", "message_delta": "RawMessageDeltaEvent",
          "message_stop": "RawMessageStopEvent", "content_block_start": "RawContentBlockStartEvent",
          "content_block_delta": "RawContentBlockDeltaEvent",
          "content_block_stop": "RawContentBlockStopEvent", "ping": "PingEvent",
          "error": "ErrorEvent"}


def conforms(name, instance, where=""):
    """Assert that ``instance`` is valid as Anthropic's schema ``name``."""
    validator = Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": SCHEMA["$defs"]})
    error = best_match(validator.iter_errors(instance))
    assert error is None, (f"{where} is not a valid {name}: {error.message} at "
                           f"{'/'.join(map(str, error.absolute_path))}\n"
                           f"{json.dumps(instance)[:2000]}")


def stream_conforms(raw, where="stream"):
    """Each event of an SSE answer valid as its type; returns the events."""
    events = []
    for block in raw.decode().split("\n\n"):
        name = data = None
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:])
        if data is None:
            continue
        kind = data.get("type")
        assert name == kind, f"{where}: event: {name} for a {kind}"
        assert kind in EVENTS, f"{where}: {kind!r} is not an event of the Messages API"
        conforms(EVENTS[kind], data, f"{where} {kind}")
        events.append(data)
    return events


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


class Recorder:
    """An httpx event hook that keeps every Messages answer for ``check()``."""

    def __init__(self):
        self.answers = []

    def __call__(self, response):
        if response.request.url.path.endswith(("/messages", "/messages/count_tokens")):
            response.read()
            self.answers.append((response.request.method, response.request.url.path,
                                 response.status_code,
                                 response.headers.get("content-type", ""), response.content))

    def check(self):
        answers, self.answers = self.answers, []
        for answer in answers:
            answer_conforms(*answer)
        return len(answers)
