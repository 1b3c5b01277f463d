"""The Responses API (translated to chat completions) through the official client, held to the
Open Responses specification; and its translation, streaming and storage as units.

Every answer the server gives in these tests, plain or streamed (each event), is validated with
jsonschema against the specification's schemas after the test (``every_answer_conforms``)."""

import json
import os
import time

import httpx
import httpx2
import jsonschema
import openai
import pytest

from openai import OpenAI
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from conformance import Recorder, conforms, event_conforms, stream_conforms
from modelrunner_openai.params import RequestError
from modelrunner_openai.responses.chat_request import build_chat_request
from modelrunner_openai.responses.stream import EventStream
from modelrunner_openai.responses.objects import base_response, chat_to_response
from modelrunner_openai.responses.items import new_id
from modelrunner_openai.responses.store import ResponseStore
from modelrunner_openai.responses.validation import validate
from openai_helpers import MODEL

ONE_WORD = "Answer in one word."
STORY = "Write a long story about a dragon who learns to fly."
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object",
                          "properties": {"city": {"type": "string", "maxLength": 20}},
                          "required": ["city"], "additionalProperties": False}}
# A 1x1 PNG.
PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
       "DwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


@pytest.fixture(scope="module")
def recorder():
    return Recorder()


@pytest.fixture(autouse=True)
def every_answer_conforms(recorder):
    """After each test, every Responses API answer it received validates against the
    specification's schemas."""
    recorder.check()
    yield
    recorder.check()


@pytest.fixture(scope="module")
def client(server, recorder):
    http = httpx2.Client(timeout=600, event_hooks={"response": [recorder]})
    return OpenAI(base_url=server.url + "/engines/v1", api_key="unused", max_retries=0,
                  http_client=http)


@pytest.fixture(scope="module")
def http(server, recorder):
    with httpx.Client(base_url=server.url, timeout=600,
                      event_hooks={"response": [recorder]}) as c:
        yield c


def error_of(info):
    return info.value.response.json()["error"]


def user(text):
    return {"type": "message", "role": "user", "content": text}


# -- round trips with the official client -------------------------------------------------------


def test_create_stateless(client, recorder):
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
    assert recorder.check() == 2   # both answers were validated against the specification


def test_every_required_field_says_the_value_in_force(client):
    plain = client.responses.create(model=MODEL, input="Say hi.", max_output_tokens=16,
                                    tools=[WEATHER]).to_dict()
    assert (plain["temperature"], plain["top_p"]) == (1.0, 1.0)   # the API's defaults
    assert (plain["presence_penalty"], plain["frequency_penalty"]) == (0.0, 0.0)
    assert plain["top_logprobs"] == 0 and plain["service_tier"] == "default"
    assert plain["safety_identifier"] is None and plain["prompt_cache_key"] is None
    assert plain["tools"] == [{**WEATHER, "strict": None}]

    events = list(client.responses.create(
        model=MODEL, input="Say hi.", max_output_tokens=16, stream=True, temperature=0.2,
        top_p=0.5, top_logprobs=3, service_tier="flex", safety_identifier="user-1",
        prompt_cache_key="greetings", metadata={"team": "docs"},
        extra_body={"presence_penalty": 0.1, "frequency_penalty": 0.3}))
    created, final = events[0].response.to_dict(), events[-1].response.to_dict()
    assert events[0].type == "response.created" and created["completed_at"] is None
    for response in (created, final):
        assert (response["temperature"], response["top_p"]) == (0.2, 0.5)
        assert (response["presence_penalty"], response["frequency_penalty"]) == (0.1, 0.3)
        assert response["top_logprobs"] == 3 and response["service_tier"] == "default"
        assert response["safety_identifier"] == "user-1"
        assert response["prompt_cache_key"] == "greetings"
        assert response["metadata"] == {"team": "docs"}
    assert (final["completed_at"] is not None) == (final["status"] == "completed")


def test_cut_off_message_is_incomplete_in_plain_and_streamed_answers(client):
    plain = client.responses.create(model=MODEL, input=STORY, temperature=0,
                                    max_output_tokens=16)
    assert plain.status == "incomplete"
    assert plain.incomplete_details.reason == "max_output_tokens"
    assert plain.output[-1].type == "message" and plain.output[-1].status == "incomplete"
    assert plain.completed_at is None

    events = list(client.responses.create(model=MODEL, input=STORY, temperature=0,
                                          max_output_tokens=16, stream=True))
    done = [e for e in events if e.type == "response.output_item.done"]
    assert done[-1].item.type == "message" and done[-1].item.status == "incomplete"
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.output[-1].status == "incomplete"
    stored = client.responses.retrieve(events[-1].response.id)
    assert stored.status == "incomplete" and stored.output[-1].status == "incomplete"


def test_input_items_are_paged_with_limit_and_after(client, http):
    r = client.responses.create(
        model=MODEL, max_output_tokens=16,
        input=[user("One."), {"type": "message", "role": "assistant", "content": "Two."},
               user("Three.")])
    first = client.responses.input_items.list(r.id, limit=1)
    assert [i.content[0].text for i in first.data] == ["Three."] and first.has_more
    # the client pages on with after=<last id> while has_more
    assert [i.content[0].text for i in client.responses.input_items.list(r.id, limit=1)] == \
        ["Three.", "Two.", "One."]
    asc = client.responses.input_items.list(r.id, order="asc", limit=2)
    assert [i.content[0].text for i in asc.data] == ["One.", "Two."] and asc.has_more
    rest = client.responses.input_items.list(r.id, order="asc", after=asc.last_id)
    assert [i.content[0].text for i in rest.data] == ["Three."] and not rest.has_more
    for query, param in (("limit=0", "limit"), ("limit=101", "limit"), ("order=up", "order"),
                         ("after=msg_unknown", "after")):
        answer = http.get(f"/v1/responses/{r.id}/input_items?{query}")
        assert answer.status_code == 400, query
        assert answer.json()["error"]["param"] == param


INVALID = {
    "temperature above 2": ({"temperature": 5}, "temperature"),
    "top_p above 1": ({"top_p": 3}, "top_p"),
    "max_output_tokens below 16": ({"max_output_tokens": 15}, "max_output_tokens"),
    "tool_choice required without tools": ({"tool_choice": "required"}, "tool_choice"),
    "json_schema format without a schema": (
        {"text": {"format": {"type": "json_schema", "name": "city"}}}, "text.format.schema"),
    "function_call_output answering no call": (
        {"input": [user("What is the weather?"),
                   {"type": "function_call_output", "call_id": "call_nope", "output": "21C"}]},
        "input"),
    "top_logprobs above 20": ({"top_logprobs": 21}, "top_logprobs"),
    "safety_identifier over 64 characters": ({"safety_identifier": "u" * 65},
                                             "safety_identifier"),
    "unknown service_tier": ({"service_tier": "turbo"}, "service_tier"),
    "more than 16 metadata pairs": ({"metadata": {f"k{i}": "v" for i in range(17)}},
                                    "metadata"),
}


@pytest.mark.parametrize("fields,param", INVALID.values(), ids=INVALID.keys())
def test_requests_the_specification_makes_invalid_are_refused(client, fields, param):
    body = {"model": MODEL, "input": "What is the weather in Paris?", **fields}
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(**body)
    error = error_of(info)
    assert error["type"] == "invalid_request_error" and error["param"] == param


@pytest.mark.parametrize("field,value", [("background", True), ("truncation", "auto"),
                                         ("conversation", "conv_1")])
def test_what_a_local_runner_cannot_do_is_refused_by_name(client, field, value):
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="hi", extra_body={field: value})
    assert field in error_of(info)["param"]


def test_images_to_a_model_without_a_projector_are_the_callers_error(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input=[{"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "What is in this picture?"},
            {"type": "input_image", "image_url": PNG, "detail": "auto"}]}])
    error = error_of(info)
    assert error["type"] == "invalid_request_error" and error["param"] == "input"
    assert "does not support images" in error["message"]


def test_a_compacted_conversation_continues_from_its_compaction_item(client):
    said = ["My name is Alice and I live in Lyon.", "Please remember that."]
    compacted = client.responses.compact(model=MODEL, input=[
        user(said[0]), {"type": "message", "role": "assistant", "content": "Hello Alice!"},
        user(said[1])])
    assert compacted.object == "response.compaction" and compacted.usage.output_tokens > 0
    assert [o.type for o in compacted.output] == ["message", "message", "compaction"]
    assert [o.content[0].text for o in compacted.output[:2]] == said   # user turns kept

    # (warnings off: the client types the kept user messages as output messages, which
    # hold output_text, and warns on their input_text; the specification keeps them as they were)
    window = [o.to_dict(warnings=False) for o in compacted.output]
    question = user("What is my name?")
    follow = client.responses.create(model=MODEL, input=window + [question], temperature=0,
                                     max_output_tokens=16)
    without = client.responses.create(model=MODEL, input=window[:2] + [question],
                                      temperature=0, max_output_tokens=16)
    # the compaction item brought the summary of the conversation back to the model
    assert follow.usage.input_tokens > without.usage.input_tokens + 12

    again = client.responses.compact(model=MODEL, previous_response_id=follow.id)
    assert [o.content[0].text for o in again.output if o.type == "message"] == \
        said + ["What is my name?"]


def test_compaction_refuses_a_missing_model_and_items_it_did_not_make(client, http):
    answer = http.post("/v1/responses/compact", json={"input": "Compact this."})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "model"
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, max_output_tokens=16, input=[
            {"type": "compaction", "encrypted_content": "gAAAA-not-ours"}, user("Hi")])
    assert "compaction" in error_of(info)["message"]


def test_logprobs_come_with_the_text_when_asked(client):
    asked = {"include": ["message.output_text.logprobs"], "top_logprobs": 2}
    r = client.responses.create(model=MODEL, input="Say hi.", temperature=0,
                                max_output_tokens=16, **asked)
    part = r.output[0].content[0]
    assert part.logprobs and "".join(lp.token for lp in part.logprobs) == part.text
    assert all(len(lp.top_logprobs) == 2 for lp in part.logprobs)
    events = list(client.responses.create(model=MODEL, input="Say hi.", temperature=0,
                                          max_output_tokens=16, stream=True, **asked))
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert all(e.logprobs for e in deltas)
    assert not client.responses.create(model=MODEL, input="Say hi.", temperature=0,
                                       max_output_tokens=16).output[0].content[0].logprobs


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
                                max_output_tokens=16)


def test_input_items_with_function_call_and_output(client):
    r = client.responses.create(
        model=MODEL, temperature=0, max_output_tokens=24, tools=[WEATHER],
        input=[{"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "What is the weather in Paris?"}]},
               {"type": "function_call", "call_id": "call_1", "name": "get_weather",
                "arguments": json.dumps({"city": "Paris"})},
               {"type": "function_call_output", "call_id": "call_1",
                "output": json.dumps({"temperature_c": 21, "sky": "sunny"})}])
    assert r.output_text.strip()
    listed = client.responses.input_items.list(r.id, order="asc")
    assert [i.type for i in listed.data] == ["message", "function_call", "function_call_output"]


def test_delete(client):
    r = client.responses.create(model=MODEL, input="Hi", max_output_tokens=16)
    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


def test_forced_function_call(client):
    r = client.responses.create(
        model=MODEL, temperature=0, max_output_tokens=64, tool_choice="required",
        tools=[{**WEATHER, "strict": True}], input="What is the weather in Paris?")
    calls = [o for o in r.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and calls[0].call_id
    assert json.loads(calls[0].arguments) == {"city": "Paris"}
    assert r.tools[0].strict is True


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
    assert r.text.format.type == "json_schema" and r.text.format.name == "city"


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
    with client.responses.stream(model=MODEL, input="What is the weather in Paris?",
                                 tools=[{**WEATHER, "strict": True}], tool_choice="required",
                                 temperature=0, max_output_tokens=64) as stream:
        types = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in types
    assert "response.function_call_arguments.done" in types
    call = next(o for o in final.output if o.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments)["city"]


def test_missing_model_and_aliases(http):
    resp = http.post("/v1/responses", json={"input": "hi"})
    assert resp.status_code == 400 and resp.json()["error"]["message"] == "model is required"
    for path in ("/responses", "/engines/responses", "/engines/llama.cpp/v1/responses"):
        resp = http.get(path + "/resp_unknown")
        assert resp.status_code == 404, path
        assert resp.json()["error"]["type"] == "not_found_error"


# -- units ----------------------------------------------------------------------------------


def test_translation():
    data = {"model": "m", "instructions": "Be brief.", "max_output_tokens": 16, "temperature": 0,
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
    assert body["max_tokens"] == 16 and body["temperature"] == 0 and body["top_p"] == 0.5
    assert "presence_penalty" not in body and "frequency_penalty" not in body
    assert body["tools"] == [{"type": "function",
                              "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "object"}, "strict": True}}
    with pytest.raises(RequestError):
        validate({"model": "m", "input": "x", "tools": [{"type": "file_search"}]})


def test_a_models_configured_sampling_holds_when_the_request_names_none():
    """Codex sends no temperature: the runner must use the model's configured one (``model
    configure MODEL -- --temp 0``), not the API's default 1.0, while the response still says the
    API's defaults, as its schema requires numbers."""
    data = {"model": "m", "input": "Say hi"}
    validate(data)
    body, _, _ = build_chat_request(data, None)
    assert not {"temperature", "top_p", "presence_penalty", "frequency_penalty"} & set(body)
    echoed = base_response("resp_1", data, 1)
    assert (echoed["temperature"], echoed["top_p"]) == (1.0, 1.0)


def test_allowed_tools_offer_the_model_only_the_allowed_functions():
    data = {"model": "m", "input": "x",
            "tools": [{"type": "function", "name": "f"}, {"type": "function", "name": "g"}],
            "tool_choice": {"type": "allowed_tools", "mode": "required",
                            "tools": [{"type": "function", "name": "g"}]}}
    validate(data)
    body, _, _ = build_chat_request(data, None)
    assert [t["function"]["name"] for t in body["tools"]] == ["g"]
    assert body["tool_choice"] == "required"
    echoed = base_response("resp_1", data, 1)["tool_choice"]
    assert echoed == {"type": "allowed_tools", "mode": "required",
                      "tools": [{"type": "function", "name": "g"}]}
    with pytest.raises(RequestError) as info:
        validate({**data, "tool_choice": {"type": "allowed_tools",
                                          "tools": [{"type": "function", "name": "h"}]}})
    assert info.value.param == "tool_choice.tools"


def test_chat_answer_to_response():
    data = {"model": "m", "input": "x", "max_tool_calls": 1}
    response = base_response("resp_1", data, 1)
    call = lambda i: {"id": f"c{i}", "type": "function",  # noqa: E731
                      "function": {"name": "f", "arguments": "{\"a\":1}"}}
    chat = {"choices": [{"finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": [call(1), call(2)]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}
    chat_to_response(response, chat)
    conforms("ResponseResource", response)
    TypeAdapter(Response).validate_python(response)  # and the official client's own types
    assert response["status"] == "completed" and response["completed_at"]
    assert [o["call_id"] for o in response["output"]] == ["c1"]   # max_tool_calls: 1
    assert response["usage"]["input_tokens"] == 3 and response["usage"]["total_tokens"] == 7
    length = chat_to_response(base_response("resp_2", data, 1), {"choices": [
        {"finish_reason": "length", "message": {"content": "abc"}}]})
    conforms("ResponseResource", length)
    assert length["status"] == "incomplete" and length["completed_at"] is None
    assert length["incomplete_details"] == {"reason": "max_output_tokens"}
    assert length["output"][-1]["status"] == "incomplete"


def test_conformance_check_catches_the_fields_the_issue_found_missing():
    response = base_response("resp_1", {"model": "m", "input": "x", "tools": [
        {"type": "function", "name": "f"}]}, 1)
    conforms("ResponseResource", response)
    for field in ("presence_penalty", "frequency_penalty", "top_logprobs", "service_tier",
                  "safety_identifier", "prompt_cache_key", "completed_at"):
        broken = {k: v for k, v in response.items() if k != field}
        with pytest.raises(AssertionError):
            conforms("ResponseResource", broken)
    with pytest.raises(AssertionError):
        conforms("ResponseResource", {**response, "temperature": None})
    with pytest.raises(AssertionError):
        conforms("ResponseResource", {**response, "tools": [{"type": "function", "name": "f",
                                                             "description": None,
                                                             "parameters": None}]})


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

    def __init__(self, events, end="data: [DONE]\n\n"):
        text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + end
        raw = text.encode()
        self.chunks = [raw[i:i + 7] for i in range(0, len(raw), 7)]
        self.closed = False

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        self.closed = True


def chunk(delta, finish=None):
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def stream(answer, data=None):
    stored = []
    response = base_response("resp_x", data or {"model": "m", "input": "x"}, 1)
    raw = b"".join(EventStream(response, answer, stored.append))
    return stream_conforms(raw), stored


def test_event_stream_with_text_then_tool_calls_validates_against_the_sdk_types():
    answer = FakeAnswer([
        chunk({"role": "assistant", "content": "Let me "}), chunk({"content": "check."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": " \"Paris\"}"}}]}),
        chunk({}, "tool_calls"),
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}}])
    events, stored = stream(answer)
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


def test_streamed_cut_off_marks_only_the_last_item_incomplete():
    answer = FakeAnswer([chunk({"reasoning_content": "Hmm."}), chunk({"content": "Once upon"}),
                         chunk({}, "length")])
    events, stored = stream(answer)
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [(i["type"], i["status"]) for i in done] == [("reasoning", "completed"),
                                                        ("message", "incomplete")]
    assert events[-1]["type"] == "response.incomplete"
    assert stored[0]["output"][-1]["status"] == "incomplete"


def test_a_reasoning_model_streams_the_reasoning_text_events_codex_and_the_sdk_read():
    """Codex shows a model's thinking from ``response.reasoning_text.delta`` (the SDK's types
    and the specification's schemas have the same names): a reasoning runner's
    ``reasoning_content`` streams as those, each event valid as the SDK's and the spec's."""
    answer = FakeAnswer([chunk({"role": "assistant", "reasoning_content": "The user "}),
                         chunk({"reasoning_content": "greets me."}), chunk({"content": "Hi!"}),
                         chunk({}, "stop")])
    events, stored = stream(answer)   # each event valid as the specification's
    adapter = TypeAdapter(ResponseStreamEvent)
    parsed = [adapter.validate_python(e) for e in events]
    reasoning = stored[0]["output"][0]
    deltas = [e for e in parsed if e.type == "response.reasoning_text.delta"]
    assert "".join(d.delta for d in deltas) == "The user greets me."
    assert {(d.item_id, d.output_index, d.content_index) for d in deltas} == {
        (reasoning["id"], 0, 0)}
    [done] = [e for e in parsed if e.type == "response.reasoning_text.done"]
    assert (done.item_id, done.text) == (reasoning["id"], "The user greets me.")
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "The user greets me."}]
    assert parsed[-1].response.output_text == "Hi!"


def test_a_runner_failing_mid_stream_ends_with_an_error_event_and_response_failed():
    answer = FakeAnswer([chunk({"content": "Once"})],
                        end='data: {"error": {"message": "out of memory"}}\n\n')
    events, stored = stream(answer)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["error"]["message"] == "out of memory"
    assert events[-1]["response"]["error"] == {"code": "server_error", "message": "out of memory"}
    assert not stored and answer.closed
    event_conforms(events[-2])


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


def test_stored_responses_cannot_fill_the_disk_or_the_workers_memory(tmp_path):
    from modelrunner_openai.responses import store as responses_store
    store = ResponseStore(tmp_path, max_bytes=64 * 1024)
    big = "x" * 4096
    for n in range(300):
        store.put({"response": {"id": f"resp_{n}"}, "messages": [big], "input_items": []})
    store._last_sweep = 0
    store._sweep()
    on_disk = sum(p.stat().st_size for p in tmp_path.glob("*.json"))
    assert on_disk <= 64 * 1024
    assert len(store.memory) <= responses_store.MEMORY_ENTRIES
    assert store.get("resp_299") is not None      # the newest stay
    assert ResponseStore(tmp_path).get("resp_0") is None   # the oldest went first
