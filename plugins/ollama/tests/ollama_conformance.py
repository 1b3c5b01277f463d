"""Every Ollama answer a test receives, checked against Ollama's schemas (``ollama_schema.json``,
written from ollama/ollama's api/types.go and docs/api.md).

``Recorder`` is an httpx event hook (``ollama.Client`` passes its keyword arguments to httpx, so
``event_hooks`` reaches it): it keeps each answer of /api/chat, generate, embed, tags, show and
ps whole; ``check()`` validates the raw JSON (the client is lenient: pydantic fills in what is
missing). A 4xx/5xx is an ``ErrorResponse``; an NDJSON stream is checked line by line: every
line before the last not done, the last done (or an error line); a done answer that generated
text is the ``*Final`` type (done_reason and the six metrics), a load or unload the plain one.

The same jsonschema plumbing (``conforms``) lives beside the OpenAI and Anthropic tests: each
plugin's tests stand alone, no test imports another plugin's.
"""

import json
from pathlib import Path

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

SCHEMA = json.loads(Path(__file__).with_name("ollama_schema.json").read_text())
PATHS = {"/api/chat": "ChatResponse", "/api/generate": "GenerateResponse",
         "/api/embed": "EmbedResponse", "/api/tags": "ListResponse", "/api/show": "ShowResponse",
         "/api/ps": "ProcessResponse"}
NOT_GENERATED = ("load", "unload")  # done_reason of an empty prompt's answer


def conforms(name, instance, where=""):
    """Assert that ``instance`` is valid as Ollama's schema ``name``."""
    validator = Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": SCHEMA["$defs"]})
    error = best_match(validator.iter_errors(instance))
    assert error is None, (f"{where} is not a valid {name}: {error.message} at "
                           f"{'/'.join(map(str, error.absolute_path))}\n"
                           f"{json.dumps(instance)[:2000]}")


def generation_conforms(name, line, where):
    """One chat/generate object: a line still generating, or the done one."""
    if line.get("done") and line.get("done_reason") not in NOT_GENERATED:
        conforms(name + "Final", line, where)
    else:
        conforms(name, line, where)


def stream_conforms(name, raw, where="stream"):
    """Each NDJSON line valid; returns the objects."""
    lines = [json.loads(text) for text in raw.decode().splitlines() if text.strip()]
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


class Recorder:
    """An httpx event hook that keeps every answer of the checked routes for ``check()``."""

    def __init__(self):
        self.answers = []

    def __call__(self, response):
        request = response.request
        if request.url.path in PATHS and request.method != "HEAD":
            response.read()
            self.answers.append((request.method, request.url.path, response.status_code,
                                 response.headers.get("content-type", ""), response.content))

    def check(self):
        """Validate and forget what was recorded; returns how many answers."""
        answers, self.answers = self.answers, []
        for answer in answers:
            answer_conforms(*answer)
        return len(answers)
