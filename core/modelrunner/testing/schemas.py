"""Holding raw HTTP answers to a published schema: the mechanism every dialect's conformance
tests share (OpenAI chat and Responses, Anthropic Messages, Ollama).

A client is lenient (pydantic fills in what an answer lacks), so these checks read the raw bytes:
``AnswerRecorder`` is an httpx event hook that keeps each answer of the routes a test cares about
whole, and ``check()`` hands each one to the dialect's own rule, which parses it (``sse_data``,
``ndjson_lines``) and asserts each object against a named schema of a JSON Schema document
(``Schemas.conforms``, jsonschema's Draft 2020-12 with its best-matching error). Which route
answers which schema, and any rule a schema cannot say, stay with each plugin's tests.
"""

import json
from pathlib import Path

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

__all__ = ["Schemas", "sse_data", "ndjson_lines", "AnswerRecorder"]


class Schemas:
    """The named schemas of one JSON Schema document, each checked with a cached validator.

    ``source`` is a path to the document or the document itself; ``defs`` is where its named
    schemas are (``"$defs"``; ``"components/schemas"`` for an OpenAPI document), and ``$ref``s
    inside them resolve against that part of the document.
    """

    def __init__(self, source, defs="$defs"):
        document = source if isinstance(source, dict) else json.loads(Path(source).read_text())
        top = defs.split("/")[0]
        self._root = {top: document[top]}
        self._defs = defs
        self._named = document
        for part in defs.split("/"):
            self._named = self._named[part]
        self._validators = {}

    def __contains__(self, name):
        return name in self._named

    def __getitem__(self, name):
        """The schema ``name`` as the document writes it."""
        return self._named[name]

    def validator(self, name):
        if name not in self._validators:
            self._validators[name] = Draft202012Validator(
                {"$ref": f"#/{self._defs}/{name}", **self._root})
        return self._validators[name]

    def conforms(self, name, instance, where=""):
        """Assert that ``instance`` is valid as the schema ``name``; the message names the
        best-matching error, where in ``instance`` it is, and (the start of) ``instance``."""
        error = best_match(self.validator(name).iter_errors(instance))
        assert error is None, (f"{where} is not a valid {name}: {error.message} at "
                               f"{'/'.join(map(str, error.absolute_path))}\n"
                               f"{json.dumps(instance)[:2000]}")


def sse_data(raw):
    """The events of a server-sent events body and whether one was ``data: [DONE]``.

    Returns ``(events, done)``: ``events`` a list of ``(name, data)``, ``name`` the event's
    ``event:`` field (None without one), ``data`` its ``data:`` lines parsed as JSON. Blocks
    without data (comments, keep-alives) are skipped; ``[DONE]`` is not an event.
    """
    events, done = [], False
    for block in raw.decode().split("\n\n"):
        name, data = None, []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if not data:
            continue
        text = "\n".join(data)
        if text.strip() == "[DONE]":
            done = True
        else:
            events.append((name, json.loads(text)))
    return events, done


def ndjson_lines(raw):
    """The JSON objects of a newline-delimited JSON body (blank lines skipped)."""
    return [json.loads(text) for text in raw.decode().splitlines() if text.strip()]


class AnswerRecorder:
    """An httpx event hook (``event_hooks={"response": [recorder]}``; the openai, anthropic and
    ollama clients take such a client or its arguments) that keeps the answers it is asked to.

    ``wants(path)`` says whether to keep an answer to that URL path; a kept answer is read whole
    as it arrives (a stream too) and held as ``(method, path, status, content_type, body)``.
    ``check()`` hands each held answer to ``check(method, path, status, content_type, body)``
    (which asserts), forgets them, and returns how many it checked. An answer to HEAD has no body
    and is never kept.
    """

    def __init__(self, wants, check):
        self.wants, self._check, self.answers = wants, check, []

    def __call__(self, response):
        request = response.request
        if request.method != "HEAD" and self.wants(request.url.path):
            response.read()
            self.answers.append((request.method, request.url.path, response.status_code,
                                 response.headers.get("content-type", ""), response.content))

    def check(self):
        """Check every answer kept since the last check; returns how many were checked."""
        answers, self.answers = self.answers, []
        for answer in answers:
            self._check(*answer)
        return len(answers)
