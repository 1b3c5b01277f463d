"""Chat completions, completions, embeddings, models and errors, held to OpenAI's schemas.

Real requests to SmolLM2 through a real server, with the official client and with plain httpx;
every answer (each streamed chunk too) is validated with jsonschema after each test against
``openai_schema.json`` (``every_answer_conforms``, see chat_conformance.py): the raw JSON, since
the client accepts answers that lack required fields."""

import httpx
import httpx2
import openai
import pytest
from openai import OpenAI

from chat_conformance import Recorder, answer_conforms, conforms
from modelrunner_openai.shapes import chat_completion, error
from openai_helpers import MODEL

HI = [{"role": "user", "content": "Say hi."}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
                   "required": ["city"]}}}


@pytest.fixture(scope="module")
def recorder():
    return Recorder()


@pytest.fixture(autouse=True)
def every_answer_conforms(recorder):
    """After each test, every answer it received validates against OpenAI's schemas."""
    recorder.check()
    yield
    recorder.check()


@pytest.fixture(scope="module")
def client(server, recorder):
    return OpenAI(base_url=server.url + "/engines/v1", api_key="unused", max_retries=0,
                  http_client=httpx2.Client(timeout=600, event_hooks={"response": [recorder]}))


@pytest.fixture(scope="module")
def http(server, recorder):
    with httpx.Client(base_url=server.url, timeout=600,
                      event_hooks={"response": [recorder]}) as c:
        yield c


def test_a_chat_answer_has_every_field_openais_schema_requires(client, http):
    r = client.chat.completions.create(model=MODEL, messages=HI, max_tokens=5)
    choice = r.choices[0]
    assert choice.logprobs is None                  # none asked: null, present
    assert choice.message.refusal is None           # a local model refuses nothing by name
    assert choice.message.annotations == []         # and cites nothing
    raw = http.post("/engines/v1/chat/completions",
                    json={"model": MODEL, "messages": HI, "max_tokens": 3}).json()
    assert {"logprobs", "message", "finish_reason", "index"} <= raw["choices"][0].keys()
    assert {"role", "content", "refusal", "annotations"} <= raw["choices"][0]["message"].keys()
    assert raw["model"] == MODEL


def test_a_chat_with_logprobs_keeps_them_and_conforms(client):
    r = client.chat.completions.create(model=MODEL, messages=HI, max_tokens=3, logprobs=True,
                                       top_logprobs=2)
    tokens = r.choices[0].logprobs.content
    assert tokens and all(len(t.top_logprobs) == 2 for t in tokens)


def test_two_choices_conform(client):
    r = client.chat.completions.create(model=MODEL, messages=HI, max_tokens=3, n=2)
    assert [c.index for c in r.choices] == [0, 1]
    assert all(c.message.refusal is None and c.logprobs is None for c in r.choices)


def test_a_forced_tool_call_conforms(client):
    r = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER], tool_choice="required", max_tokens=60)
    message = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls[0].function.name == "get_weather"
    assert message.content is None and message.refusal is None


def test_each_streamed_chunk_conforms(client):
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=HI, max_tokens=4, stream=True,
        stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" and c.model == MODEL for c in chunks)
    assert all(choice.logprobs is None for c in chunks for choice in c.choices)
    assert chunks[-1].usage.completion_tokens == 4 and chunks[-1].choices == []


def test_streamed_logprobs_conform(http):
    with http.stream("POST", "/engines/v1/chat/completions",
                     json={"model": MODEL, "messages": HI, "max_tokens": 2, "stream": True,
                           "logprobs": True, "top_logprobs": 1}) as r:
        events = answer_conforms("POST", r.url.path, r.status_code,
                                 r.headers["content-type"], r.read())
    assert sum(len((c.get("logprobs") or {}).get("content") or [])
               for e in events for c in e["choices"]) >= 1


def test_a_streamed_forced_tool_call_conforms(client):
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER], tool_choice="required", max_tokens=120, temperature=0, stream=True))
    # greedy, with room for the arguments: at the default temperature the call was sometimes cut
    calls = [t for c in chunks for ch in c.choices for t in ch.delta.tool_calls or []]
    assert calls and calls[0].function.name == "get_weather"


def test_completions_plain_and_streamed_conform(client):
    r = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=3)
    assert r.choices[0].logprobs is None and r.object == "text_completion"
    events = list(client.completions.create(model=MODEL, prompt="Once upon a time",
                                            max_tokens=3, stream=True))
    assert events[-1].choices[0].finish_reason == "length"


def test_embeddings_conform(client):
    r = client.embeddings.create(model=MODEL, input=["one", "two"])
    assert [d.index for d in r.data] == [0, 1] and r.data[0].object == "embedding"
    assert r.usage.prompt_tokens > 0


def test_models_conform(client):
    listed = client.models.list().data
    assert MODEL + ":latest" in [m.id.removeprefix("docker.io/") for m in listed]
    assert client.models.retrieve(MODEL).object == "model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no/such-model")


def test_a_runners_context_overflow_is_openais_error(client, http):
    long = [{"role": "user", "content": "hi " * 9000}]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=long, max_tokens=2)
    assert info.value.code == "context_length_exceeded"
    body = http.post("/engines/v1/chat/completions",
                     json={"model": MODEL, "messages": long, "stream": True}).json()["error"]
    assert body["type"] == "invalid_request_error" and body["param"] == "messages"
    assert body["code"] == "context_length_exceeded"
    assert "maximum context length is" in body["message"]  # OpenAI's words, which agents match


def test_a_runners_own_400_is_openais_error(http):
    r = http.post("/engines/v1/chat/completions", json={"model": MODEL, "messages": "x"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] is None and r.json()["error"]["param"] is None
    r = http.post("/engines/v1/completions", json={"model": MODEL})
    assert r.status_code == 400


def test_the_gateways_own_errors_conform(http):
    assert http.post("/engines/v1/chat/completions",
                     json={"model": "no/such-model", "messages": HI}).status_code == 404
    r = http.post("/engines/v1/chat/completions",
                  json={"model": MODEL, "messages": HI, "logprobs": True, "top_logprobs": 99})
    assert r.status_code == 400 and r.json()["error"]["param"] == "top_logprobs"
    assert http.post("/engines/v1/embeddings", content=b"{not json",
                     headers={"content-type": "application/json"}).status_code == 400


def test_the_check_catches_the_fields_the_issue_found_missing():
    # llama-server's own answer and error, as they came before the OpenAI routes completed them
    runner = {"choices": [{"finish_reason": "stop", "index": 0,
                           "message": {"role": "assistant", "content": "Hello"}}],
              "created": 1, "model": "m", "object": "chat.completion", "id": "chatcmpl-1"}
    with pytest.raises(AssertionError, match="logprobs"):
        conforms("CreateChatCompletionResponse", runner)
    runner["choices"][0]["logprobs"] = None
    with pytest.raises(AssertionError, match="refusal"):
        conforms("CreateChatCompletionResponse", runner)
    conforms("CreateChatCompletionResponse", chat_completion(runner))
    failed = {"error": {"code": 400, "message": "Expected 'messages' to be an array",
                        "type": "invalid_request_error"}}
    with pytest.raises(AssertionError):
        conforms("ErrorResponse", failed)
    conforms("ErrorResponse", error(failed))
