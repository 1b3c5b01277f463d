"""The Responses API (translated to chat completions) through the official client, and its
translation and storage as units."""

import json
import os
import time

import httpx
import jsonschema
import openai
import pytest

from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from modelrunner_openai.responses import (EventStream, RequestError, ResponseStore, new_id,
                                          base_response, build_chat_request, chat_to_response,
                                          validate)
from openai_helpers import MODEL

ONE_WORD = "Answer in one word."


def test_create_stateless(client):
    r = client.responses.create(model=MODEL, instructions=ONE_WORD,
                                input="What is the capital of France?", temperature=0,
                                max_output_tokens=16)
    assert r.object == "response" and r.id.startswith("resp_")
    assert r.status in ("completed", "incomplete")
    assert "Paris" in r.output_text
    assert r.output[0].type == "message" and r.output[0].role == "assistant"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.instructions == ONE_WORD
    got = client.responses.retrieve(r.id)
    assert got.id == r.id and got.output_text == r.output_text


def test_previous_response_id_continues_the_conversation(client):
    first = client.responses.create(model=MODEL, instructions=ONE_WORD,
                                    input="What is the capital of France?", temperature=0,
                                    max_output_tokens=16)
    second = client.responses.create(model=MODEL, instructions=ONE_WORD,
                                     input="And the capital of Germany?", temperature=0,
                                     max_output_tokens=16, previous_response_id=first.id)
    assert second.previous_response_id == first.id
    assert second.output_text.strip()
    # the history (first question and answer) went to the model
    assert second.usage.input_tokens > first.usage.input_tokens + 5
    items = client.responses.input_items.list(second.id)
    assert [i.content[0].text for i in items.data] == ["And the capital of Germany?"]


def test_unknown_previous_response_is_not_found(client):
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, input="hi", previous_response_id="resp_nope",
                                max_output_tokens=4)


def test_input_items_with_function_call_and_output(client):
    r = client.responses.create(
        model=MODEL, temperature=0, max_output_tokens=24,
        tools=[{"type": "function", "name": "get_weather", "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"]}}],
        input=[{"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "What is the weather in Paris?"}]},
               {"type": "function_call", "call_id": "call_1", "name": "get_weather",
                "arguments": json.dumps({"city": "Paris"})},
               {"type": "function_call_output", "call_id": "call_1",
                "output": json.dumps({"temperature_c": 21, "sky": "sunny"})}])
    assert r.output_text.strip()


def test_delete(client):
    r = client.responses.create(model=MODEL, input="Hi", max_output_tokens=4)
    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


def test_forced_function_call(client):
    r = client.responses.create(
        model=MODEL, temperature=0, max_output_tokens=64, tool_choice="required",
        tools=[{"type": "function", "name": "get_weather", "description": "Weather in a city",
                "parameters": {"type": "object",
                               "properties": {"city": {"type": "string", "maxLength": 20}},
                               "required": ["city"], "additionalProperties": False},
                "strict": True}],
        input="What is the weather in Paris?")
    calls = [o for o in r.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and calls[0].call_id
    assert json.loads(calls[0].arguments) == {"city": "Paris"}


def test_text_format_json_schema(client):
    schema = {"type": "object",
              "properties": {"city": {"type": "string", "maxLength": 16},
                             "population_millions": {"type": "integer"}},
              "required": ["city", "population_millions"], "additionalProperties": False}
    r = client.responses.create(
        model=MODEL, temperature=0, max_output_tokens=64,
        input="Give the capital of France and its population in millions.",
        text={"format": {"type": "json_schema", "name": "city", "schema": schema,
                         "strict": True}})
    jsonschema.validate(json.loads(r.output_text), schema)


def test_streamed_events_parse(client):
    events = list(client.responses.create(model=MODEL, instructions=ONE_WORD,
                                          input="What is the capital of France?",
                                          temperature=0, max_output_tokens=16, stream=True))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] in ("response.completed", "response.incomplete")
    for kind in ("response.output_item.added", "response.content_part.added",
                 "response.output_text.delta", "response.output_text.done",
                 "response.content_part.done", "response.output_item.done"):
        assert kind in types
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = next(e for e in events if e.type == "response.output_text.done")
    assert deltas == done.text and "Paris" in deltas
    final = events[-1].response
    assert final.output_text == deltas and final.usage.output_tokens > 0
    assert client.responses.retrieve(final.id).output_text == deltas


def test_stream_helper_gets_the_final_response(client):
    with client.responses.stream(model=MODEL, instructions="Reply with exactly one word.",
                                 input="Say hello.", temperature=0,
                                 max_output_tokens=48) as stream:
        events = list(stream)
        deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        if events[-1].type != "response.completed":
            pytest.xfail("the model did not stop within max_output_tokens (response.incomplete)")
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text == deltas and deltas.strip()


def test_stream_helper_and_function_call_events(client):
    tools = [{"type": "function", "name": "get_weather", "description": "Weather in a city",
              "parameters": {"type": "object",
                             "properties": {"city": {"type": "string", "maxLength": 20}},
                             "required": ["city"], "additionalProperties": False},
              "strict": True}]
    with client.responses.stream(model=MODEL, input="What is the weather in Paris?",
                                 tools=tools, tool_choice="required", temperature=0,
                                 max_output_tokens=64) as stream:
        types = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in types
    assert "response.function_call_arguments.done" in types
    call = next(o for o in final.output if o.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments)["city"]


@pytest.mark.parametrize("field,value", [("background", True), ("truncation", "auto"),
                                         ("service_tier", "flex"), ("top_logprobs", 2),
                                         ("include", ["message.output_text.logprobs"]),
                                         ("safety_identifier", "u1")])
def test_rejected_fields(client, field, value):
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="hi", **{field: value})
    assert field in info.value.message


def test_missing_model_and_aliases(server):
    resp = httpx.post(server.url + "/v1/responses", json={"input": "hi"})
    assert resp.status_code == 400 and resp.json()["error"]["message"] == "model is required"
    for path in ("/responses", "/engines/responses", "/engines/llama.cpp/v1/responses"):
        resp = httpx.get(server.url + path + "/resp_unknown")
        assert resp.status_code == 404, path
        assert resp.json()["error"]["type"] == "not_found_error"


# -- units ----------------------------------------------------------------------------------


def test_translation():
    data = {"model": "m", "instructions": "Be brief.", "max_output_tokens": 9, "temperature": 0,
            "top_p": 0.5, "tool_choice": {"type": "function", "name": "f"},
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"},
                                "strict": True}},
            "input": [{"role": "developer", "content": "Use tools."},
                      {"type": "message", "role": "user",
                       "content": [{"type": "input_text", "text": "a"},
                                   {"type": "input_text", "text": "b"}]},
                      {"type": "message", "role": "assistant",
                       "content": [{"type": "output_text", "text": "c"}]},
                      {"type": "function_call", "call_id": "k", "name": "f", "arguments": "{}"},
                      {"type": "function_call_output", "call_id": "k", "output": "42"}]}
    validate(data)
    body, conversation, items = build_chat_request(data, None)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "ab"},
        {"role": "assistant", "content": "c", "tool_calls": [
            {"id": "k", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "k", "content": "42"}]
    assert conversation == body["messages"][1:]
    assert body["max_tokens"] == 9 and body["temperature"] == 0 and body["top_p"] == 0.5
    assert body["tools"] == [{"type": "function",
                              "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "object"}, "strict": True}}
    with pytest.raises(RequestError):
        build_chat_request({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}, None)


def test_chat_answer_to_response():
    data = {"model": "m", "input": "x"}
    response = base_response("resp_1", data, 1)
    chat = {"choices": [{"finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None,
        "tool_calls": [{"id": "c1", "type": "function",
                        "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}
    chat_to_response(response, chat)
    TypeAdapter(Response).validate_python(response)  # strict: every required field is there
    assert response["status"] == "completed"
    assert [o["type"] for o in response["output"]] == ["function_call"]
    assert response["output"][0]["call_id"] == "c1"
    assert response["usage"]["input_tokens"] == 3 and response["usage"]["total_tokens"] == 7
    length = chat_to_response(base_response("resp_2", data, 1), {"choices": [
        {"finish_reason": "length", "message": {"content": "abc"}}]})
    assert length["status"] == "incomplete"
    assert length["incomplete_details"] == {"reason": "max_output_tokens"}


def test_store_is_shared_by_workers_through_files_and_expires(tmp_path):
    one, two = ResponseStore(tmp_path), ResponseStore(tmp_path)
    record = {"response": {"id": "resp_abc"}, "messages": [], "input_items": []}
    one.put(record)
    assert two.get("resp_abc") == record          # another worker reads the file
    assert two.get("../etc/passwd") is None
    old = time.time() - 2 * 3600
    os.utime(tmp_path / "resp_abc.json", (old, old))
    assert ResponseStore(tmp_path).get("resp_abc") is None   # expired after 1 h
    one.put(record)
    assert two.delete("resp_abc") and not (tmp_path / "resp_abc.json").exists()


class FakeAnswer:
    """A runner's SSE answer, as RunnerResponse yields it (chunks split anywhere)."""

    def __init__(self, events):
        text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        raw = text.encode()
        self.chunks = [raw[i:i + 7] for i in range(0, len(raw), 7)]
        self.closed = False

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        self.closed = True


def _sse_events(raw):
    out = []
    for block in raw.decode().split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                out.append(json.loads(line[6:]))
    return out


def test_event_stream_with_text_then_tool_calls_validates_against_the_sdk_types():
    chunk = lambda delta, finish=None: {"choices": [{"index": 0, "delta": delta,  # noqa: E731
                                                     "finish_reason": finish}]}
    answer = FakeAnswer([
        chunk({"role": "assistant", "content": "Let me "}), chunk({"content": "check."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": " \"Paris\"}"}}]}),
        chunk({}, "tool_calls"),
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}}])
    stored = []
    response = base_response("resp_x", {"model": "m", "input": "x"}, 1)
    raw = b"".join(EventStream(response, answer, stored.append))
    events = _sse_events(raw)
    adapter = TypeAdapter(ResponseStreamEvent)
    parsed = [adapter.validate_python(e) for e in events]
    types = [e.type for e in parsed]
    assert types == ["response.created", "response.in_progress",
                     "response.output_item.added", "response.content_part.added",
                     "response.output_text.delta", "response.output_text.delta",
                     "response.output_text.done", "response.content_part.done",
                     "response.output_item.done",
                     "response.output_item.added", "response.function_call_arguments.delta",
                     "response.function_call_arguments.delta",
                     "response.function_call_arguments.done", "response.output_item.done",
                     "response.completed"]
    final = parsed[-1].response
    assert final.output_text == "Let me check."
    call = final.output[1]
    assert call.type == "function_call" and call.call_id == "call_a"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert final.usage.total_tokens == 11
    assert stored and stored[0]["id"] == "resp_x" and answer.closed


def test_stored_responses_on_disk_are_readable_by_the_servers_user_only(tmp_path):
    old = os.umask(0o022)
    try:
        store = ResponseStore(tmp_path / "responses")
        record = {"response": {"id": new_id("resp")}, "input": "my private question"}
        store.put(record)
    finally:
        os.umask(old)
    [path] = (tmp_path / "responses").glob("*.json")
    assert "my private question" in path.read_text()
    assert os.stat(tmp_path / "responses").st_mode & 0o777 == 0o700
    assert os.stat(path).st_mode & 0o777 == 0o600
