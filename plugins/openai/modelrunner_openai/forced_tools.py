"""Forced tool calls: ``tool_choice: "required"`` or a named function, made to hold.

OpenAI's contract is that a forced choice makes the answer a tool call; llama-server keeps it only
loosely, so a forced choice is held with the core's JSON-schema mechanism
(``modelrunner.forced_calls``: the tools stay in the request, for templates that describe them to
the model), and the answer is turned back into an assistant message with ``tool_calls``
(finish_reason "tool_calls").

Exactly one call is made. An answer cut off by max_tokens is not valid JSON and is passed on as
it is, with finish_reason "length".
"""

import json
import secrets

from modelrunner import GatewayError, tool_forcing


class ToolChoiceError(ValueError):
    """A tool_choice that cannot be honoured: a 400 for the client."""


def _tools_by_name(tools):
    named = {}
    for tool in tools or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            named[function["name"]] = function
    return named


def forced_functions(data):
    """The functions a chat request forces one of, or None when the model may answer freely."""
    choice = data.get("tool_choice")
    if choice in (None, "auto", "none"):
        return None
    named = _tools_by_name(data.get("tools"))
    if choice == "required":
        if not named:
            raise ToolChoiceError('tool_choice "required" needs at least one function in tools')
        return list(named.values())
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name not in named:
            raise ToolChoiceError(f"tool_choice names {name!r}, which is not in tools")
        return [named[name]]
    raise ToolChoiceError('tool_choice must be "auto", "none", "required" or '
                          '{"type": "function", "function": {"name": ...}}')


def call_schema(functions):
    """The JSON schema of one call to any of ``functions``."""
    return tool_forcing.forced_call_schema([(f["name"], f.get("parameters")) for f in functions])


def constrained_request(data, functions):
    """The chat request the runner gets: free choice of tools, output held to one call."""
    body = dict(data)
    body["tool_choice"] = "auto"
    body["tools"] = [{"type": "function", "function": f} for f in functions]
    body["response_format"] = tool_forcing.call_format(
        [(f["name"], f.get("parameters")) for f in functions])
    return body


def parse_call(text):
    """``(name, arguments JSON)`` from the constrained answer, or None if it is not a call."""
    call = tool_forcing.parse_forced_call(text)
    return (call[0], json.dumps(call[1])) if call else None


def tool_call(name, arguments, index=None):
    call = {"id": "call_" + secrets.token_hex(12), "type": "function",
            "function": {"name": name, "arguments": arguments}}
    if index is not None:
        call = {"index": index, **call}
    return call


class ForcedCallAnswer:
    """A runner's answer to a constrained request, read back as tool calls.

    Looks like the gateway's ``RunnerResponse`` (status, content_type, streaming, iteration,
    ``read()``, ``close()``) so the chat route and the Responses translation use it unchanged.
    """

    def __init__(self, answer):
        self.answer = answer
        self.status = answer.status
        self.content_type = answer.content_type
        self.streaming = answer.streaming

    def close(self):
        self.answer.close()

    def read(self):
        return b"".join(self)

    def __iter__(self):
        if self.streaming:
            yield from self._stream()
        else:
            yield self._completion(self.answer.read())

    # -- whole answers ---------------------------------------------------------------------------

    def _completion(self, raw):
        try:
            completion = json.loads(raw)
        except ValueError:
            raise GatewayError("the runner's answer is not JSON", status=502) from None
        for choice in completion.get("choices") or []:
            message = choice.get("message") or {}
            call = parse_call(message.get("content"))
            if call:
                choice["message"] = {"role": "assistant", "content": None,
                                     "tool_calls": [tool_call(*call)]}
                choice["finish_reason"] = "tool_calls"
        return json.dumps(completion).encode()

    # -- streams ---------------------------------------------------------------------------------

    def _stream(self):
        """Hold back content deltas; at each choice's end, send its call as one delta."""
        texts = {}
        buffer = b""
        for chunk in self.answer:
            buffer += chunk
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                out = self._event(event, texts)
                if out:
                    yield out + b"\n\n"
        if buffer.strip():
            yield buffer

    def _event(self, event, texts):
        payload = event.strip()
        if not payload.startswith(b"data:"):
            return event
        try:
            data = json.loads(payload[5:])
        except ValueError:
            return event  # [DONE], or something this layer need not understand
        if not isinstance(data, dict) or not data.get("choices"):
            return event
        choices = []
        events = []
        for choice in data["choices"]:
            index = choice.get("index", 0)
            delta = dict(choice.get("delta") or {})
            texts[index] = texts.get(index, "") + (delta.pop("content", None) or "")
            finish = choice.get("finish_reason")
            if finish:
                call = parse_call(texts[index])
                if call:
                    events.append({**data, "choices": [{
                        "index": index, "finish_reason": None,
                        "delta": {**delta, "tool_calls": [tool_call(*call, index=0)]}}]})
                    choices.append({**choice, "delta": {}, "finish_reason": "tool_calls"})
                else:
                    choices.append({**choice, "delta": {**delta, "content": texts[index]}})
            elif delta:
                choices.append({**choice, "delta": delta})
        if choices:
            events.append({**data, "choices": choices})
        return b"\n\n".join(b"data: " + json.dumps(e).encode() for e in events)
