"""The tools coding agents send to the Responses API: namespaces, custom (freeform) tools and
hosted tools, and the reasoning and tool outputs they send back.

Codex CLI 0.171 groups its sub-agent functions in a ``namespace`` tool and offers ``web_search`` on
every request; before this, its first request was a 400 ("only function tools are supported, not
'namespace'"). Answers are checked against the Open Responses schemas (``conformance``); a
``custom_tool_call`` is OpenAI's, beyond that specification, so those answers are checked against
the official client's own types instead.
"""

import json

import httpx
import httpx2
import pytest
from openai import OpenAI
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from conformance import Recorder, conforms
from modelrunner_openai.params import RequestError
from modelrunner_openai.responses.chat_request import build_chat_request
from modelrunner_openai.responses.items import items_to_messages
from modelrunner_openai.responses.objects import assistant_message, base_response, chat_to_response
from modelrunner_openai.responses.stream import EventStream
from modelrunner_openai.responses.tools import ToolMap
from modelrunner_openai.responses.validation import validate
from openai_helpers import MODEL

AGENTS = {"type": "namespace", "name": "multi_agent_v1",
          "description": "Tools for spawning and managing sub-agents.",
          "tools": [{"type": "function", "name": "close_agent", "description": "Close an agent.",
                     "strict": False,
                     "parameters": {"type": "object", "required": ["target"],
                                    "properties": {"target": {"type": "string",
                                                              "maxLength": 12}},
                                    "additionalProperties": False}}]}
PATCH = {"type": "custom", "name": "apply_patch", "description": "Apply a patch to a file.",
         "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}
EXEC = {"type": "function", "name": "exec_command", "description": "Run a command.",
        "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}},
                       "required": ["cmd"]}}
WEB_SEARCH = {"type": "web_search", "external_web_access": False}


def chat_answer(*calls, content=None):
    """A runner's chat completion with ``calls`` ((id, name, arguments)...)."""
    message = {"role": "assistant", "content": content, "tool_calls": [
        {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
        for i, n, a in calls]}
    return {"choices": [{"finish_reason": "tool_calls", "message": message}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}


# -- translation, without a runner --------------------------------------------------------------


def test_codex_namespace_tools_are_flat_functions_for_the_model_and_calls_keep_their_namespace():
    data = {"model": "m", "input": "Close agent a.", "tools": [EXEC, AGENTS, WEB_SEARCH]}
    validate(data)
    body, _, _ = build_chat_request(data, None)
    assert [t["function"]["name"] for t in body["tools"]] == [
        "exec_command", "multi_agent_v1.close_agent"]  # web_search: declined, not offered
    response = base_response("resp_1", data, 1)
    assert [t["name"] for t in response["tools"]] == ["exec_command", "multi_agent_v1.close_agent"]
    chat_to_response(response, chat_answer(("c1", "multi_agent_v1.close_agent",
                                            '{"target": "a"}')), tools=ToolMap(data["tools"]))
    conforms("ResponseResource", response)
    TypeAdapter(Response).validate_python(response)
    [call] = response["output"]
    assert (call["type"], call["name"], call["namespace"]) == (
        "function_call", "close_agent", "multi_agent_v1")
    # the next turn: the call (as the client sends it back) and its output, flat again
    assert assistant_message(response)["tool_calls"][0]["function"]["name"] == \
        "multi_agent_v1.close_agent"
    messages = items_to_messages([
        {"type": "function_call", "call_id": "c1", "name": "close_agent",
         "namespace": "multi_agent_v1", "arguments": '{"target": "a"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "closed"}])
    assert messages == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {
                "name": "multi_agent_v1.close_agent", "arguments": '{"target": "a"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "closed"}]


def test_a_custom_tool_is_a_one_string_function_and_its_call_a_custom_tool_call():
    data = {"model": "m", "input": "Patch it.", "tools": [PATCH],
            "tool_choice": {"type": "custom", "name": "apply_patch"}}
    validate(data)
    body, _, _ = build_chat_request(data, None)
    [tool] = body["tools"]
    assert tool["function"]["name"] == "apply_patch"
    assert tool["function"]["parameters"]["required"] == ["input"]
    assert "start: /.+/" in tool["function"]["description"]  # the grammar, told to the model
    assert body["tool_choice"] == {"type": "function", "function": {"name": "apply_patch"}}
    response = base_response("resp_1", data, 1)
    chat_to_response(response, chat_answer(("c1", "apply_patch",
                                            json.dumps({"input": "*** Begin Patch"}))),
                     tools=ToolMap(data["tools"]))
    TypeAdapter(Response).validate_python(response)
    [call] = response["output"]
    assert (call["type"], call["name"], call["input"]) == (
        "custom_tool_call", "apply_patch", "*** Begin Patch")
    messages = items_to_messages([
        {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch",
         "input": "*** Begin Patch"},
        {"type": "custom_tool_call_output", "call_id": "c1", "output": "Done."}])
    assert messages[0]["tool_calls"][0]["function"] == {
        "name": "apply_patch", "arguments": json.dumps({"input": "*** Begin Patch"})}
    assert messages[1] == {"role": "tool", "tool_call_id": "c1", "content": "Done."}
    assert assistant_message(response)["tool_calls"] == messages[0]["tool_calls"]


def test_reasoning_items_reach_the_next_assistant_message_as_its_reasoning():
    messages = items_to_messages([
        {"type": "message", "role": "user", "content": "List files."},
        {"type": "reasoning", "id": "rs_1", "summary": [],
         "content": [{"type": "reasoning_text", "text": "I should run ls."}],
         "encrypted_content": None},
        {"type": "function_call", "call_id": "c1", "name": "exec_command",
         "arguments": '{"cmd": "ls"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "a.txt"},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "One file."}]},
        {"type": "message", "role": "assistant", "content": "There is a.txt."}])
    assert messages[1]["reasoning_content"] == "I should run ls."
    assert messages[1]["tool_calls"][0]["function"]["name"] == "exec_command"
    assert messages[3] == {"role": "assistant", "content": "There is a.txt.",
                           "reasoning_content": "One file."}


class RunnerStream:
    """A runner's chat SSE answer as the gateway hands it on (bytes, split anywhere)."""

    def __init__(self, events):
        raw = ("".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n").encode()
        self.chunks = [raw[i:i + 9] for i in range(0, len(raw), 9)]

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        pass


def test_streamed_custom_and_namespaced_calls_are_the_official_clients_events():
    tools = [PATCH, AGENTS]
    delta = lambda d: {"choices": [{"index": 0, "delta": d, "finish_reason": None}]}  # noqa: E731
    answer = RunnerStream([
        delta({"tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {
            "name": "apply_patch", "arguments": '{"input": "*** Begin'}}]}),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": ' Patch"}'}}]}),
        delta({"tool_calls": [{"index": 1, "id": "c2", "type": "function", "function": {
            "name": "multi_agent_v1.close_agent", "arguments": '{"target": "a"}'}}]}),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
         "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}}])
    stored = []
    response = base_response("resp_x", {"model": "m", "input": "x", "tools": tools}, 1)
    raw = b"".join(EventStream(response, answer, stored.append, tools=ToolMap(tools)))
    events = [json.loads(line[6:]) for line in raw.decode().splitlines()
              if line.startswith("data: {")]
    adapter = TypeAdapter(ResponseStreamEvent)
    parsed = [adapter.validate_python(e) for e in events]
    inputs = [e for e in parsed if e.type.startswith("response.custom_tool_call_input")]
    assert [e.type for e in inputs] == ["response.custom_tool_call_input.delta",
                                        "response.custom_tool_call_input.done"]
    assert inputs[1].input == "*** Begin Patch"
    [final] = stored
    TypeAdapter(Response).validate_python(final)
    custom, function = final["output"]
    assert (custom["type"], custom["input"]) == ("custom_tool_call", "*** Begin Patch")
    assert (function["name"], function["namespace"]) == ("close_agent", "multi_agent_v1")


# -- against a real server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorder():
    return Recorder()


@pytest.fixture(autouse=True)
def every_answer_conforms(recorder):
    """Every Responses API answer recorded in a test validates against the specification."""
    recorder.check()
    yield
    recorder.check()


@pytest.fixture(scope="module")
def client(server, recorder):
    http = httpx2.Client(timeout=600, event_hooks={"response": [recorder]})
    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, http_client=http)


@pytest.fixture(scope="module")
def unchecked(server):
    """The official client, its answers not held to the Open Responses schemas (custom tool
    calls are OpenAI's, not the specification's): the client's own types check them."""
    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=600)


@pytest.mark.parametrize("tool, param", [
    ({"type": "file_search", "vector_store_ids": ["vs_1"]}, "tools[1]"),
    ({"type": "code_interpreter", "container": {"type": "auto"}}, "tools[1]"),
    ({"type": "image_generation"}, "tools[1]"),
    ({"type": "mcp", "server_label": "x", "server_url": "https://example.com/mcp"}, "tools[1]"),
    ({"type": "namespace", "name": "ns", "description": "d", "tools": [WEB_SEARCH]},
     "tools[1].tools[0]"),
])
def test_hosted_tools_the_server_cannot_run_are_refused_by_name(server, recorder, tool, param):
    with httpx.Client(base_url=server.url, timeout=60,
                      event_hooks={"response": [recorder]}) as http:
        resp = http.post("/v1/responses", json={"model": MODEL, "input": "hi",
                                                "tools": [EXEC, tool, WEB_SEARCH]})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert error["code"] in ("unsupported_value", "invalid_value")


def test_a_namespaced_call_round_trips_through_previous_response_id(client):
    """Forced, so that the small model calls; plain and streamed; the tool's output continues
    the conversation the stored response kept."""
    tools = [AGENTS, WEB_SEARCH]
    first = client.responses.create(model=MODEL, input="Close the agent named scout.",
                                    tools=tools, tool_choice="required", temperature=0,
                                    max_output_tokens=64)
    [call] = [o for o in first.output if o.type == "function_call"]
    assert (call.name, call.namespace) == ("close_agent", "multi_agent_v1")
    assert "target" in json.loads(call.arguments)
    with client.responses.stream(model=MODEL, input="Close the agent named scout.", tools=tools,
                                 tool_choice="required", temperature=0,
                                 max_output_tokens=64) as stream:
        list(stream)
        streamed = stream.get_final_response()
    [streamed_call] = [o for o in streamed.output if o.type == "function_call"]
    assert streamed_call.namespace == "multi_agent_v1"
    second = client.responses.create(
        model=MODEL, previous_response_id=first.id, tools=tools, temperature=0,
        max_output_tokens=24, input=[{"type": "function_call_output", "call_id": call.call_id,
                                      "output": "scout closed"}])
    assert second.status in ("completed", "incomplete") and second.output


def test_a_forced_custom_tool_answers_a_custom_tool_call_plain_and_streamed(unchecked):
    kwargs = dict(model=MODEL, input="Patch the file README.", tools=[PATCH],
                  tool_choice={"type": "custom", "name": "apply_patch"}, temperature=0,
                  max_output_tokens=64)
    plain = unchecked.responses.create(**kwargs)
    [call] = [o for o in plain.output if o.type == "custom_tool_call"]
    assert call.name == "apply_patch" and isinstance(call.input, str)
    with unchecked.responses.stream(**kwargs) as stream:
        types = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.custom_tool_call_input.done" in types
    assert [o.type for o in final.output] == ["custom_tool_call"]
    # the client sends the call and its output back without previous_response_id
    after = unchecked.responses.create(
        model=MODEL, temperature=0, max_output_tokens=24, tools=[PATCH],
        input=[{"type": "message", "role": "user", "content": "Patch the file README."},
               {"type": "custom_tool_call", "call_id": call.call_id, "name": "apply_patch",
                "input": call.input},
               {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done."}])
    assert after.output


def test_a_function_call_output_for_no_call_is_refused(client):
    """The outputs a client sends back must answer calls of the conversation (a 400 naming
    ``input``, not a runner's 500)."""
    with pytest.raises(Exception) as info:
        client.responses.create(model=MODEL, input=[
            {"type": "custom_tool_call_output", "call_id": "nope", "output": "x"}])
    assert info.value.status_code == 400 and info.value.body["param"] == "input"


def test_request_error_is_raised_for_a_namespace_without_tools():
    with pytest.raises(RequestError) as info:
        validate({"model": "m", "input": "x",
                  "tools": [{"type": "namespace", "name": "n", "description": "d", "tools": []}]})
    assert info.value.param == "tools[0].tools"


def test_two_tools_of_one_name_are_refused():
    """The model's call would not say which it means (a function's JSON arguments came back as
    a custom tool's raw input)."""
    from modelrunner_openai.responses.tools import ToolMap
    with pytest.raises(RequestError) as e:
        ToolMap([{"type": "function", "name": "f", "parameters": {}},
                 {"type": "custom", "name": "f"}])
    assert e.value.status == 400 and e.value.param == "tools"


def test_reasoning_before_text_and_before_a_call_is_all_the_turns_reasoning():
    from modelrunner_openai.responses.items import items_to_messages
    messages = items_to_messages([
        {"type": "message", "role": "user", "content": "q"},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "A"}]},
        {"type": "message", "role": "assistant", "content": "x"},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "B"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}])
    assert messages[-1]["reasoning_content"] == "A\nB"


def test_a_text_part_that_is_no_string_is_the_callers_400():
    from modelrunner_openai.responses.items import items_to_messages
    with pytest.raises(RequestError) as e:
        items_to_messages([{"type": "message", "role": "user",
                            "content": [{"type": "input_text", "text": 5}]}])
    assert e.value.status == 400
