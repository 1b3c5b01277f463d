"""Server-Sent Events from runners: one reader, one reassembler of a streamed answer, and the
reading of a runner's error answer.

Runners answer a streamed request with OpenAI's SSE (``data: {json}`` lines, ``data: [DONE]``
at the end); llama-server writes ``error: ...`` lines for a failure after the stream started.
Dialects that translate a stream (Ollama, the Responses API, Anthropic), the request inspector
and ``model run`` all read it with :func:`sse_events`.
"""

import json
import re

from .errors import ContextExceeded, ModelRunnerError


class StreamError(ModelRunnerError):
    """The runner reported an error, or stopped, after its answer had started."""


def _error_message(error):
    if isinstance(error, dict):
        return error.get("message") or json.dumps(error)
    return str(error)


def runner_error_message(raw):
    """The message of a runner's error answer (OpenAI's error object, or any text it sent)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace").strip() or "the runner failed"
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return error.get("message") or json.dumps(error)
    return str(error or data)


# llama-server's error type for a prompt over the context, and its 500 for an embedding input
# longer than its physical batch
_LLAMA_CONTEXT_ERROR = "exceed_context_size_error"
_LLAMA_BATCH = re.compile(r"input \((\d+) tokens\) is too large to process.*?current batch "
                          r"size: (\d+)", re.S)
# vLLM's messages for the same, across its versions: (pattern, group of the prompt's tokens);
# group 1 is always the context. "requested N tokens (P in the messages, C in the completion)"
# counts the completion too: the prompt is P.
_VLLM_CONTEXT = [
    (re.compile(r"maximum context length is (\d+) tokens.*?your request has (\d+) input tokens",
                re.S), 2),
    (re.compile(r"maximum context length is (\d+) tokens.*?\((\d+) in the messages", re.S), 2),
    (re.compile(r"maximum context length is (\d+) tokens.*?your prompt contains at least (\d+)",
                re.S), 2),
    (re.compile(r"maximum context length is (\d+) tokens.*?(?:resulted in|requested) (\d+) "
                r"tokens", re.S), 2),
]


def runner_error(model, status, raw):
    """A runner's error answer (``status``, body ``raw``) as the error of the request: a
    ``ContextExceeded`` for a prompt longer than the context (llama-server's
    ``exceed_context_size_error``, vLLM's "maximum context length"), else a ``GatewayError``
    with the runner's status and message. The gateway raises it; the route's dialect renders
    it."""
    from .gateway import GatewayError  # the gateway imports this module
    message = runner_error_message(raw)
    error = None
    try:
        data = json.loads(raw)
        error = data.get("error") if isinstance(data, dict) else None
    except ValueError:
        pass
    if isinstance(error, dict) and error.get("type") == _LLAMA_CONTEXT_ERROR:
        return ContextExceeded(model, _int(error.get("n_prompt_tokens")), _int(error.get("n_ctx")))
    found = _LLAMA_BATCH.search(message)
    if found:  # an input longer than an embedding runner's batch: the caller's to shorten
        return ContextExceeded(model, int(found.group(1)), int(found.group(2)))
    for pattern, prompt in _VLLM_CONTEXT if status == 400 else ():
        found = pattern.search(message)
        if found:
            tokens, context = int(found.group(prompt)), int(found.group(1))
            # a prompt that fits, with too many tokens asked for the answer: vLLM's own words
            return ContextExceeded(model, tokens, context,
                                   message=None if tokens > context else message)
    return GatewayError(message, status=status)


def _int(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def sse_events(chunks, raise_errors=True):
    """Yield the JSON objects of an SSE stream read from ``chunks`` (an iterable of bytes).

    Stops at ``data: [DONE]``; skips comments, other fields and data that is not JSON. With
    ``raise_errors`` an ``error:`` line, or an event whose ``error`` is set, raises
    :class:`StreamError` with the runner's message, and so does a ``ModelRunnerError`` raised by
    ``chunks`` (the runner died mid-answer).

    Linear in the stream's size: each byte is searched for a newline once, however long a line
    is or however many lines a chunk holds.
    """
    buf = bytearray()
    try:
        for chunk in chunks:
            searched = len(buf)  # the unfinished line kept from before has no newline
            buf += chunk
            start = 0
            while True:
                end = buf.find(b"\n", max(start, searched))
                if end < 0:
                    break
                line = buf[start:end].strip()
                start = end + 1
                if line.startswith(b"error:") and raise_errors:
                    raise StreamError(line[6:].strip().decode(errors="replace"))
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    return
                try:
                    event = json.loads(data)
                except ValueError:
                    continue
                if raise_errors and isinstance(event, dict) and event.get("error"):
                    raise StreamError(_error_message(event["error"]))
                yield event
            del buf[:start]
    except StreamError:
        raise
    except ModelRunnerError as e:
        if not raise_errors:
            return
        raise StreamError(str(e), status=e.status) from None


def sse_text_events(data):
    """The JSON objects of SSE text held whole in memory (a recorded answer, perhaps cut: an
    unfinished last line is left out), as ``sse_events(..., raise_errors=False)`` gives them.

    All ``data:`` payloads are parsed by one ``json.loads`` of a JSON array made of them, several
    times faster than one call per event; when that array is not exactly one value per payload
    (a payload that is not JSON), the events are read one by one instead.
    """
    data = bytes(data)
    end = data.rfind(b"\n")
    if end < 0:
        return []
    payloads = [line[5:].strip() for line in data[:end].split(b"\n") if line[:5] == b"data:"]
    if b"[DONE]" in payloads:
        del payloads[payloads.index(b"[DONE]"):]
    if not payloads:
        return []
    try:
        events = json.loads(b"[" + b",".join(payloads) + b"]")
    except (ValueError, RecursionError):
        events = None
    if events is None or len(events) != len(payloads):
        events = list(sse_events([data[:end + 1]], raise_errors=False))
    return events


def reassemble(events):
    """One response object from the JSON events of a runner's stream (OpenAI chat or text
    completion chunks, which every runner speaks); None when the events are of no known kind.
    A dialect that translates a stream reassembles its own events (they live with it)."""
    events = [e for e in events if isinstance(e, dict)]
    if not events:
        return None
    if any("choices" in e for e in events):
        return _reassemble_openai(events)
    return None


def _reassemble_openai(events):
    # Pieces are gathered in lists and joined once: appending to a growing string copies it.
    # This runs over every event of an answer the inspector records, so each event costs a
    # few dictionary lookups: a delta is walked by its own keys (usually just "content").
    out = {"id": None, "object": "chat.completion", "created": None, "model": None}
    missing = ["id", "created", "model", "system_fingerprint"]  # taken from the first event
    choices = {}
    text_completion = False
    for e in events:
        if missing:
            for k in [k for k in missing if e.get(k) is not None]:
                out[k] = e[k]
                missing.remove(k)
        if e.get("usage"):
            out["usage"] = e["usage"]
        if e.get("timings"):
            out["timings"] = e["timings"]
        if e.get("object") == "text_completion":
            text_completion = True
        for c in e.get("choices") or ():
            if not isinstance(c, dict):
                continue
            i = c.get("index", 0)
            ch = choices.get(i)
            if ch is None:
                ch = choices[i] = {"index": i, "role": "assistant", "text": [], "content": [],
                                   "reasoning": [], "calls": [], "finish_reason": None}
            delta = c.get("delta")
            if delta is None and "text" in c:
                text_completion = True
                if isinstance(c["text"], str):
                    ch["text"].append(c["text"])
            if delta and isinstance(delta, dict):
                for key, value in delta.items():
                    if not value:
                        continue
                    if key in ("content", "reasoning_content") and not isinstance(value, str):
                        continue
                    if key == "content":
                        ch["content"].append(value)
                    elif key == "reasoning_content":
                        ch["reasoning"].append(value)
                    elif key == "role":
                        ch["role"] = value
                    elif key == "tool_calls":
                        _add_tool_calls(ch["calls"], value)
            if c.get("finish_reason"):
                ch["finish_reason"] = c["finish_reason"]
    ordered = [ch for _, ch in sorted(choices.items())]
    if text_completion:
        out["object"] = "text_completion"
        out["choices"] = [{"index": ch["index"], "text": "".join(ch["text"]),
                           "finish_reason": ch["finish_reason"]} for ch in ordered]
        return out
    out["choices"] = []
    for ch in ordered:
        msg = {"role": ch["role"], "content": "".join(ch["content"])}
        if ch["reasoning"]:
            msg["reasoning_content"] = "".join(ch["reasoning"])
        if ch["calls"]:
            msg["tool_calls"] = [{"id": call["id"], "type": call["type"],
                                  "function": {"name": "".join(call["name"]),
                                               "arguments": "".join(call["arguments"])}}
                                 for call in ch["calls"]]
        out["choices"].append({"index": ch["index"], "message": msg,
                               "finish_reason": ch["finish_reason"]})
    return out


def _add_tool_calls(calls, deltas):
    for tc in deltas:
        if not isinstance(tc, dict):
            continue
        idx = tc.get("index", len(calls))
        while len(calls) <= idx:
            calls.append({"id": None, "type": "function", "name": [], "arguments": []})
        call = calls[idx]
        if tc.get("id"):
            call["id"] = tc["id"]
        if tc.get("type"):
            call["type"] = tc["type"]
        fn = tc.get("function") or {}
        if fn.get("name"):
            call["name"].append(fn["name"])
        if fn.get("arguments"):
            call["arguments"].append(fn["arguments"])
