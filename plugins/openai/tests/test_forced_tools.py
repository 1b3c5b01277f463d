"""The translation behind forced tool calls, on answers shaped like llama-server's.

The end-to-end behaviour (SmolLM2 calls get_weather with {"city": "Paris"}) is in
test_openai_chat.py; these cover what a small model rarely shows: fences, cut-off answers,
several choices, and events split across reads.
"""

import json

import pytest

from modelrunner_openai.forced_tools import (
    ForcedCallAnswer, ToolChoiceError, call_schema, constrained_request, forced_functions,
    parse_call)

WEATHER = {"name": "get_weather", "parameters": {"type": "object",
                                                 "properties": {"city": {"type": "string"}}}}
TIME = {"name": "get_time"}
TOOLS = [{"type": "function", "function": WEATHER}, {"type": "function", "function": TIME}]


class RecordedAnswer:
    """The bytes a runner wrote, replayed in the given pieces."""

    def __init__(self, pieces, streaming):
        self.pieces = pieces
        self.status = 200
        self.content_type = "text/event-stream" if streaming else "application/json"
        self.streaming = streaming

    def __iter__(self):
        return iter(self.pieces)

    def read(self):
        return b"".join(self.pieces)

    def close(self):
        pass


def sse(*events):
    return b"".join(b"data: " + (e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n\n"
                    for e in events)


def chunk(index=0, finish=None, **delta):
    return {"object": "chat.completion.chunk", "id": "c1",
            "choices": [{"index": index, "finish_reason": finish, "delta": delta}]}


def test_only_required_and_named_choices_are_forced():
    assert forced_functions({"tools": TOOLS}) is None
    assert forced_functions({"tools": TOOLS, "tool_choice": "none"}) is None
    assert forced_functions({"tools": TOOLS, "tool_choice": "required"}) == [WEATHER, TIME]
    named = {"type": "function", "function": {"name": "get_time"}}
    assert forced_functions({"tools": TOOLS, "tool_choice": named}) == [TIME]
    for bad in ({"type": "function", "function": {"name": "nope"}}, "always"):
        with pytest.raises(ToolChoiceError):
            forced_functions({"tools": TOOLS, "tool_choice": bad})
    with pytest.raises(ToolChoiceError):
        forced_functions({"tool_choice": "required"})


def test_the_schema_allows_one_call_to_any_offered_function():
    schema = call_schema([WEATHER, TIME])
    assert [s["properties"]["name"]["const"] for s in schema["anyOf"]] == ["get_weather",
                                                                          "get_time"]
    assert schema["anyOf"][1]["properties"]["arguments"] == {"type": "object"}
    body = constrained_request({"model": "m", "tools": TOOLS, "tool_choice": "required"},
                               [WEATHER])
    assert body["tool_choice"] == "auto" and body["tools"] == [TOOLS[0]]
    assert body["response_format"]["json_schema"]["schema"] == call_schema([WEATHER])


def test_a_fenced_answer_is_still_a_call():
    assert parse_call('```json\n{"name": "get_time", "arguments": {}}\n```') == ("get_time", "{}")
    assert parse_call('{"name": "get_weather", "arguments": {"city": "Pa') is None


def test_whole_answer_becomes_tool_calls_and_a_cut_off_one_stays_text():
    completion = {"choices": [
        {"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": '{"name": "get_weather", "arguments": {"city": "Oslo"}}'}},
        {"index": 1, "finish_reason": "length", "message": {
            "role": "assistant", "content": '{"name": "get_weather", "argu'}}]}
    raw = json.dumps(completion).encode()
    out = json.loads(ForcedCallAnswer(RecordedAnswer([raw[:10], raw[10:]], False)).read())
    first, second = out["choices"]
    assert first["finish_reason"] == "tool_calls" and first["message"]["content"] is None
    call = first["message"]["tool_calls"][0]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert second == completion["choices"][1]


def test_stream_holds_the_json_back_and_sends_one_tool_call_delta():
    body = sse(chunk(role="assistant", content=None), chunk(content='{"name": "get_'),
               chunk(content='time", "arguments": {}}'), chunk(finish="stop"),
               {"object": "chat.completion.chunk", "choices": [], "usage": {"total_tokens": 9}},
               b"[DONE]")
    pieces = [body[i:i + 7] for i in range(0, len(body), 7)]  # events split across reads
    out = b"".join(ForcedCallAnswer(RecordedAnswer(pieces, True)))
    events = [e[len(b"data: "):] for e in out.split(b"\n\n") if e]
    assert events[-1] == b"[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    deltas = [c["choices"][0] for c in chunks if c["choices"]]
    assert deltas[0]["delta"] == {"role": "assistant"}
    assert all("content" not in d["delta"] for d in deltas)
    calls = [d["delta"]["tool_calls"][0] for d in deltas if d["delta"].get("tool_calls")]
    assert len(calls) == 1 and calls[0]["index"] == 0
    assert calls[0]["function"] == {"name": "get_time", "arguments": "{}"}
    assert deltas[-1]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"] == {"total_tokens": 9}


def test_stream_cut_off_by_max_tokens_ends_with_its_text():
    body = sse(chunk(content='{"name": "get_'), chunk(finish="length"), b"[DONE]")
    out = b"".join(ForcedCallAnswer(RecordedAnswer([body], True)))
    last = json.loads(out.split(b"\n\n")[-3][len(b"data: "):])["choices"][0]
    assert last == {"index": 0, "finish_reason": "length", "delta": {"content": '{"name": "get_'}}
