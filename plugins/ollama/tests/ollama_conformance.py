"""Every Ollama answer a test receives, checked against Ollama's schemas (``ollama_schema.json``,
written from ollama/ollama's api/types.go and docs/api.md).

``Recorder`` (an ``AnswerRecorder`` of modelrunner.testing, an httpx event hook: ``ollama.Client``
passes its keyword arguments to httpx, so ``event_hooks`` reaches it) keeps each answer of
/api/chat, generate, embed, tags, show and ps whole; ``check()`` validates the raw JSON (the
client is lenient: pydantic fills in what is missing). A 4xx/5xx is an ``ErrorResponse``; an
NDJSON stream is checked line by line: every line before the last not done, the last done (or an
error line); a done answer that generated text is the ``*Final`` type (done_reason and the six
metrics), a load or unload the plain one.
"""

import json
from pathlib import Path

from modelrunner.testing import AnswerRecorder, Schemas, ndjson_lines

SCHEMAS = Schemas(Path(__file__).with_name("ollama_schema.json"))
PATHS = {"/api/chat": "ChatResponse", "/api/generate": "GenerateResponse",
         "/api/embed": "EmbedResponse", "/api/tags": "ListResponse", "/api/show": "ShowResponse",
         "/api/ps": "ProcessResponse"}
NOT_GENERATED = ("load", "unload")  # done_reason of an empty prompt's answer
conforms = SCHEMAS.conforms  # conforms(name, instance, where=""): valid as Ollama's ``name``


def generation_conforms(name, line, where):
    """One chat/generate object: a line still generating, or the done one."""
    if line.get("done") and line.get("done_reason") not in NOT_GENERATED:
        conforms(name + "Final", line, where)
    else:
        conforms(name, line, where)


def stream_conforms(name, raw, where="stream"):
    """Each NDJSON line valid; returns the objects."""
    lines = ndjson_lines(raw)
    assert lines, f"{where}: an empty stream"
    for number, line in enumerate(lines):
        at = f"{where} line {number + 1}"
        last = number == len(lines) - 1
        if "error" in line:
            assert last, f"{at}: an error line before the end"
            conforms("ErrorResponse", line, at)
            continue
        assert line.get("done") is last, f"{at}: done is {line.get('done')!r}"
        generation_conforms(name, line, at)
    return lines


def answer_conforms(method, path, status, content_type, body):
    """The answer valid as its route's type; returns its JSON (a list for a stream)."""
    where = f"{method} {path} ({status})"
    name = PATHS[path]
    if status >= 400:
        conforms("ErrorResponse", json.loads(body), where)
        return json.loads(body)
    if "ndjson" in content_type:
        return stream_conforms(name, body, where)
    obj = json.loads(body)
    if name in ("ChatResponse", "GenerateResponse"):
        assert obj.get("done") is True, f"{where}: a whole answer not done"
        generation_conforms(name, obj, where)
    else:
        conforms(name, obj, where)
    return obj


class Recorder(AnswerRecorder):
    """Keeps every answer of the checked routes for ``check()``."""

    def __init__(self):
        super().__init__(lambda path: path in PATHS, answer_conforms)
