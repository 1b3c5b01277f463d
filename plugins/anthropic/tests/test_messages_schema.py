"""Messages, stream events, token counts and errors, held to Anthropic's schemas.

Real requests to SmolLM2 through a real server with the official `anthropic` client and plain
httpx; every answer (each streamed event) is validated with jsonschema after each test against
``anthropic_schema.json`` (``every_answer_conforms``, see messages_conformance.py)."""

import anthropic
import httpx
import httpx2
import pytest
from anthropic import Anthropic

from messages_conformance import Recorder, answer_conforms, conforms
from modelrunner_anthropic import translate

MODEL = "ai/smollm2"
ASK = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
WEATHER = {"name": "get_weather", "description": "Get the current weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}


@pytest.fixture(scope="module")
def recorder():
    return Recorder()


@pytest.fixture(autouse=True)
def every_answer_conforms(recorder):
    recorder.check()
    yield
    recorder.check()


@pytest.fixture(scope="module")
def client(server, recorder):
    return Anthropic(base_url=server.url + "/anthropic", api_key="unused", max_retries=0,
                     http_client=httpx2.Client(timeout=600,
                                               event_hooks={"response": [recorder]}))


@pytest.fixture(scope="module")
def http(server, recorder):
    with httpx.Client(base_url=server.url + "/anthropic", timeout=600,
                      event_hooks={"response": [recorder]}) as c:
        yield c


def test_a_message_has_every_field_the_schema_requires(client, http):
    message = client.messages.create(model=MODEL, max_tokens=8, messages=ASK)
    assert message.container is None and message.stop_details is None
    usage = message.usage
    assert usage.service_tier == "standard" and usage.server_tool_use is None
    assert usage.cache_creation_input_tokens == 0
    assert usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert usage.input_tokens >= 1 and usage.cache_read_input_tokens >= 0
    (text,) = message.content
    raw = http.post("/v1/messages", json={"model": MODEL, "max_tokens": 4,
                                         "messages": ASK}).json()
    assert raw["content"][0]["citations"] is None
    assert {"container", "stop_details"} <= raw.keys()


def test_a_repeated_prompt_is_counted_as_a_cache_read(client):
    """Input is input_tokens + cache reads + cache writes, as Anthropic counts it; the runner's
    cached prompt tokens are the reads."""
    counted = client.messages.count_tokens(model=MODEL, messages=ASK).input_tokens
    client.messages.create(model=MODEL, max_tokens=2, messages=ASK)
    again = client.messages.create(model=MODEL, max_tokens=2, messages=ASK).usage
    assert again.cache_read_input_tokens > 0
    assert (again.input_tokens + again.cache_read_input_tokens
            + again.cache_creation_input_tokens) == counted


def test_each_streamed_event_conforms(client, http):
    with client.messages.stream(model=MODEL, max_tokens=8, messages=ASK) as stream:
        message = stream.get_final_message()
    assert message.usage.output_tokens > 0
    with http.stream("POST", "/v1/messages", json={"model": MODEL, "max_tokens": 4,
                                                   "messages": ASK, "stream": True}) as r:
        events = answer_conforms("POST", r.url.path, r.status_code,
                                 r.headers["content-type"], r.read())
    delta = [e for e in events if e["type"] == "message_delta"][0]
    assert delta["delta"]["stop_details"] is None and delta["delta"]["container"] is None
    assert delta["usage"]["output_tokens"] == 4 and delta["usage"]["input_tokens"] >= 1


def test_a_forced_tool_use_block_conforms_plain_and_streamed(client):
    kwargs = dict(model=MODEL, max_tokens=60, tools=[WEATHER],
                  tool_choice={"type": "tool", "name": "get_weather"},
                  messages=[{"role": "user", "content": "What's the weather in Paris?"}])
    (call,) = [b for b in client.messages.create(**kwargs).content if b.type == "tool_use"]
    assert call.caller.type == "direct" and call.name == "get_weather"
    with client.messages.stream(**kwargs) as stream:
        message = stream.get_final_message()
    assert message.stop_reason == "tool_use"


def test_count_tokens_conforms(client):
    assert client.messages.count_tokens(model=MODEL, messages=ASK).input_tokens > 0


def test_errors_conform(client, http):
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="no/such-model", max_tokens=4, messages=ASK)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=MODEL, max_tokens=4, messages=[
            {"role": "user", "content": "hi " * 9000}])
    r = http.post("/v1/messages", json={"model": MODEL, "messages": ASK})  # no max_tokens
    assert r.status_code == 400 and r.json()["request_id"] is None
    assert http.post("/v1/messages/count_tokens", json={"messages": ASK}).status_code == 400


def test_the_check_catches_the_fields_the_issue_found_missing():
    old = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
           "content": [{"type": "text", "text": "Paris"}], "stop_reason": "end_turn",
           "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 1}}
    with pytest.raises(AssertionError):
        conforms("Message", old)
    new = translate.message({"choices": [{"finish_reason": "stop", "message": {
        "content": "Paris"}}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}, "m")
    conforms("Message", new)
    for field in ("container", "stop_details"):
        with pytest.raises(AssertionError):
            conforms("Message", {k: v for k, v in new.items() if k != field})
    for field in ("cache_creation", "cache_read_input_tokens", "service_tier", "server_tool_use"):
        with pytest.raises(AssertionError):
            conforms("Usage", {k: v for k, v in new["usage"].items() if k != field})
    with pytest.raises(AssertionError):
        conforms("TextBlock", {"type": "text", "text": "Paris"})
    with pytest.raises(AssertionError):
        conforms("ErrorResponse", {"type": "error", "error": {"type": "api_error",
                                                               "message": "x"}})
