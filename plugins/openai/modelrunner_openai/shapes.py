"""The runner's OpenAI answers, completed to the fields OpenAI's schema requires.

llama-server answers chat completions without ``choices[].logprobs`` (when none were asked),
``message.refusal`` and ``message.annotations`` (and ``logprobs.refusal`` when logprobs were
asked), and the errors it writes into a stream as ``{"code": 500, "message", "type"}``: an
integer code and no ``param``. OpenAI's OpenAPI description (openai/openai-openapi,
openapi.json 2.3.0) requires ``logprobs`` and ``refusal`` (nullable, but present), and the error
object's ``type``, ``message``, ``param`` and ``code`` (``code`` a string or null). Strict clients
(the TypeScript SDK's types, Go's, compliance testers) read them. So the OpenAI routes set each
missing one to its true value: null where nothing applies (no logprobs asked, the model refused
nothing, the error has no parameter), ``[]`` for annotations (a local model cites nothing).
A value the runner gave is never replaced, except an error's integer ``code`` (it only repeats
the HTTP status) and llama-server's context-overflow error, which gets OpenAI's own code for that
condition, ``context_length_exceeded``.

A usage (a whole answer's, or a stream's last event) says the prompt tokens the runner took from
its cache in ``usage.prompt_tokens_details.cached_tokens``, as OpenAI's API does: newer
llama-server builds write it, older ones only ``timings.cache_n``, which is then copied there
(``modelrunner.cached_prompt_tokens``: every dialect reads the same number).

These work on parsed JSON, one answer or one streamed event at a time: a chat answer is a few
KB, a streamed event less than one.
"""

import json

from modelrunner import cached_prompt_tokens

from .naming import renamed

# llama-server's error type -> OpenAI's (type, code, param) for the same condition
_RUNNER_ERRORS = {"exceed_context_size_error": ("invalid_request_error",
                                                "context_length_exceeded", "messages")}


def _logprobs(choice):
    """``logprobs`` null when none were asked; when given, with ``refusal`` beside ``content``
    (both required, nullable: llama-server writes only ``content``)."""
    logprobs = choice.setdefault("logprobs", None)
    if isinstance(logprobs, dict):
        logprobs.setdefault("content", None)
        logprobs.setdefault("refusal", None)


def _usage(answer):
    """``usage.prompt_tokens_details.cached_tokens`` where the runner said it only in its
    ``timings`` (or not at all: 0)."""
    usage = answer.get("usage") if isinstance(answer, dict) else None
    if not isinstance(usage, dict):
        return
    details = usage.get("prompt_tokens_details")
    if details is None:
        details = usage["prompt_tokens_details"] = {}
    if isinstance(details, dict) and "cached_tokens" not in details:
        details["cached_tokens"] = cached_prompt_tokens(usage, answer.get("timings"))


def chat_completion(answer):
    """A chat completion (``object: chat.completion``), completed in place; returns it."""
    _usage(answer)
    for choice in _choices(answer):
        _logprobs(choice)
        message = choice.get("message")
        if isinstance(message, dict):
            message.setdefault("content", None)
            message.setdefault("refusal", None)
            message.setdefault("annotations", [])
    return answer


def chat_chunk(chunk):
    """A streamed chat completion chunk, completed in place (``logprobs`` as OpenAI streams it:
    null in each choice when none were asked); returns it."""
    _usage(chunk)
    for choice in _choices(chunk):
        _logprobs(choice)
    return chunk


def completion(answer):
    """A legacy completion (plain or one streamed event): ``choices[].logprobs`` present."""
    _usage(answer)
    for choice in _choices(answer):
        choice.setdefault("logprobs", None)
    return answer


def error(body):
    """A runner's error body in OpenAI's error object: ``param`` and a string-or-null ``code``."""
    inner = body.get("error") if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        message = inner if isinstance(inner, str) else json.dumps(body)[:500]
        return {"error": {"message": message, "type": "server_error", "param": None,
                          "code": None}}
    kind, code, param = _RUNNER_ERRORS.get(inner.get("type"), (None, None, None))
    if kind:
        inner["type"] = kind
    if not isinstance(inner.get("code"), str):
        inner["code"] = code
    inner.setdefault("param", param)
    inner.setdefault("type", "server_error")
    inner["message"] = str(inner.get("message", ""))
    return body


def _choices(answer):
    choices = answer.get("choices") if isinstance(answer, dict) else None
    return [c for c in choices if isinstance(c, dict)] if isinstance(choices, list) else []


SHAPES = {"/v1/chat/completions": (chat_completion, chat_chunk),
          "/v1/completions": (completion, completion)}


def completed(data, runner_path, model=None):
    """A whole JSON answer (bytes) of ``runner_path`` with the fields its schema requires and
    each ``"model"`` the name the request asked (``model``; naming.py). A runner's error answer
    never gets here: the gateway raises it, the OpenAI dialect renders it."""
    shape = SHAPES.get(runner_path, (None,))[0]
    if shape is None:
        return renamed(data, model)
    try:
        answer = json.loads(data)
    except ValueError:
        return renamed(data, model)
    return _dumps(_named(shape(answer), model))


def completed_stream(chunks, runner_path, model=None, close=None):
    """The SSE chunks of ``runner_path`` with each ``data:`` event completed (an error event
    in OpenAI's error shape) and named as the request asked; calls ``close`` (the answer's) when
    done or closed early (the client went away). Lines are whole when rewritten: a line cut
    between two chunks waits for its end (kept as a list of pieces, so a long line costs no
    more than its length)."""
    shape = SHAPES.get(runner_path, (None, None))[1]
    pending = []
    try:
        for chunk in chunks:
            cut = chunk.rfind(b"\n") + 1
            if not cut:
                pending.append(chunk)
                continue
            pending.append(chunk[:cut])
            yield _lines(b"".join(pending), shape, model)
            pending = [chunk[cut:]] if cut < len(chunk) else []
        if pending:
            yield _lines(b"".join(pending), shape, model)
    finally:
        if close is not None:
            close()


def _lines(data, shape, model):
    if shape is None:
        return renamed(data, model)
    out = []
    for line in data.split(b"\n"):
        if line.startswith(b"data: {") or line.startswith(b"data:{"):
            try:
                event = json.loads(line[5:])
            except ValueError:
                out.append(line)
                continue
            event = error(event) if "error" in event and "choices" not in event else shape(event)
            line = b"data: " + _dumps(_named(event, model))
        out.append(line)
    return b"\n".join(out)


def _named(answer, model):
    if isinstance(model, str) and isinstance(answer, dict) and "model" in answer:
        answer["model"] = model
    return answer


def _dumps(answer):
    """Compact, as the runner writes its JSON."""
    return json.dumps(answer, separators=(",", ":")).encode()
