"""Server-Sent Events from runners: one reader, and one reassembler of a streamed answer.

Runners answer a streamed request with OpenAI's SSE (``data: {json}`` lines, ``data: [DONE]``
at the end); llama-server writes ``error: ...`` lines for a failure after the stream started.
Dialects that translate a stream (Ollama, the Responses API, Anthropic), the request inspector
and ``model run`` all read it with :func:`sse_events`.
"""

import json

from .errors import ModelRunnerError


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


def sse_events(chunks, raise_errors=True):
    """Yield the JSON objects of an SSE stream read from ``chunks`` (an iterable of bytes).

    Stops at ``data: [DONE]``; skips comments, other fields and data that is not JSON. With
    ``raise_errors`` an ``error:`` line, or an event whose ``error`` is set, raises
    :class:`StreamError` with the runner's message, and so does a ``ModelRunnerError`` raised by
    ``chunks`` (the runner died mid-answer).
    """
    pending = b""
    try:
        for chunk in chunks:
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                line = line.strip()
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
    except StreamError:
        raise
    except ModelRunnerError as e:
        if not raise_errors:
            return
        raise StreamError(str(e), status=e.status) from None


def reassemble(events):
    """One response object from the JSON events of a stream (OpenAI chat or text completion
    chunks, or Anthropic message events); None when the events are of no known kind."""
    events = [e for e in events if isinstance(e, dict)]
    if not events:
        return None
    if any(e.get("type") == "message_start" for e in events):
        return _reassemble_anthropic(events)
    if any("choices" in e for e in events):
        return _reassemble_openai(events)
    return None


def _reassemble_openai(events):
    out = {"id": None, "object": "chat.completion", "created": None, "model": None}
    choices = {}
    text_completion = False
    for e in events:
        for k in ("id", "created", "model", "system_fingerprint"):
            if e.get(k) is not None and out.get(k) is None:
                out[k] = e[k]
        if e.get("usage"):
            out["usage"] = e["usage"]
        if e.get("timings"):
            out["timings"] = e["timings"]
        if e.get("object") == "text_completion":
            text_completion = True
        for c in e.get("choices") or []:
            i = c.get("index", 0)
            ch = choices.setdefault(i, {"index": i, "message": {"role": "assistant", "content": ""},
                                        "finish_reason": None})
            msg = ch["message"]
            if "text" in c and "delta" not in c:
                text_completion = True
                ch.setdefault("text", "")
                ch["text"] += c.get("text") or ""
            delta = c.get("delta") or {}
            if delta.get("role"):
                msg["role"] = delta["role"]
            if delta.get("content"):
                msg["content"] += delta["content"]
            if delta.get("reasoning_content"):
                msg["reasoning_content"] = msg.get("reasoning_content", "") + delta["reasoning_content"]
            for tc in delta.get("tool_calls") or []:
                calls = msg.setdefault("tool_calls", [])
                idx = tc.get("index", len(calls))
                while len(calls) <= idx:
                    calls.append({"id": None, "type": "function",
                                  "function": {"name": "", "arguments": ""}})
                call = calls[idx]
                if tc.get("id"):
                    call["id"] = tc["id"]
                if tc.get("type"):
                    call["type"] = tc["type"]
                fn = tc.get("function") or {}
                if fn.get("name"):
                    call["function"]["name"] += fn["name"]
                if fn.get("arguments"):
                    call["function"]["arguments"] += fn["arguments"]
            if c.get("finish_reason"):
                ch["finish_reason"] = c["finish_reason"]
    if text_completion:
        out["object"] = "text_completion"
        out["choices"] = [{"index": ch["index"], "text": ch.get("text", ""),
                           "finish_reason": ch["finish_reason"]} for _, ch in sorted(choices.items())]
    else:
        out["choices"] = [ch for _, ch in sorted(choices.items())]
    return out


def _reassemble_anthropic(events):
    message, blocks = {}, {}
    for e in events:
        kind = e.get("type")
        if kind == "message_start":
            message = dict(e.get("message") or {})
        elif kind == "content_block_start":
            blocks[e.get("index", 0)] = dict(e.get("content_block") or {})
        elif kind == "content_block_delta":
            block = blocks.setdefault(e.get("index", 0), {"type": "text", "text": ""})
            d = e.get("delta") or {}
            if d.get("type") == "text_delta":
                block["text"] = block.get("text", "") + d.get("text", "")
            elif d.get("type") == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + d.get("thinking", "")
            elif d.get("type") == "input_json_delta":
                block["_json"] = block.get("_json", "") + d.get("partial_json", "")
        elif kind == "message_delta":
            message.update({k: v for k, v in (e.get("delta") or {}).items() if v is not None})
            if e.get("usage"):
                message["usage"] = {**(message.get("usage") or {}), **e["usage"]}
    content = []
    for _, block in sorted(blocks.items()):
        if "_json" in block:
            raw = block.pop("_json")
            try:
                block["input"] = json.loads(raw) if raw else {}
            except ValueError:
                block["input"] = raw
        content.append(block)
    message["content"] = content
    return message
