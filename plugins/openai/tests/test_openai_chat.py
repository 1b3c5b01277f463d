"""OpenAI routes through the official client: chat, completions, embeddings, models, structured
output, tools, usage, errors, engine selection, aliases, preload, disconnects."""

import json
import math

import httpx
import jsonschema
import openai
import pytest
from openai import OpenAI

from modelrunner import Engine, EngineError
from modelrunner.testing import select_engine

from openai_helpers import MODEL

CAPITAL = [{"role": "system", "content": "Answer in one word."},
           {"role": "user", "content": "What is the capital of France?"}]


def test_chat_says_paris(client):
    answer = client.chat.completions.create(model=MODEL, messages=CAPITAL, temperature=0,
                                            max_tokens=16)
    text = answer.choices[0].message.content
    assert "Paris" in text
    assert answer.object == "chat.completion"
    assert answer.usage.completion_tokens > 0


def test_streamed_text_equals_plain_text(client):
    messages = [{"role": "user", "content": "Name three fruits."}]
    params = dict(model=MODEL, messages=messages, temperature=0, seed=42, max_tokens=24)
    plain = client.chat.completions.create(**params).choices[0].message.content
    chunks = list(client.chat.completions.create(stream=True, **params))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert plain and streamed == plain
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")


def test_stream_include_usage_gives_a_usage_chunk(client):
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=CAPITAL, temperature=0, max_tokens=8, stream=True,
        stream_options={"include_usage": True}))
    usage = [c for c in chunks if c.usage is not None]
    assert usage and usage[-1].choices == []
    assert usage[-1].usage.completion_tokens > 0
    assert usage[-1].usage.total_tokens == (usage[-1].usage.prompt_tokens
                                            + usage[-1].usage.completion_tokens)


def test_completions(client):
    answer = client.completions.create(model=MODEL, prompt="The capital of France is",
                                       temperature=0, max_tokens=8)
    assert answer.choices[0].text.strip()
    assert answer.usage.completion_tokens > 0


def test_embeddings_have_the_model_width_and_unit_norm(client):
    answer = client.embeddings.create(model=MODEL, input=["hello world", "bonjour"])
    assert len(answer.data) == 2
    for item in answer.data:
        # SmolLM2-135M: embedding_length 576; llama-server's /v1/embeddings L2-normalises
        # (embd_normalize 2) the mean-pooled vector.
        assert len(item.embedding) == 576
        assert math.isclose(math.sqrt(sum(x * x for x in item.embedding)), 1.0, rel_tol=1e-3)


def test_models_list_has_the_dmr_block(client):
    models = client.models.list()
    entry = next(m for m in models.data if m.id == "docker.io/ai/smollm2:latest"
                 or m.id.endswith("ai/smollm2:latest"))
    assert entry.object == "model" and entry.owned_by == "docker"
    dmr = entry.model_extra["dmr"]
    assert dmr["architecture"] == "llama"
    assert dmr["context_window"] == 8192
    assert set(dmr) >= {"context_window", "architecture", "parameters", "quantization", "size"}
    one = client.models.retrieve(MODEL)
    assert one.id == entry.id


def test_json_schema_output_parses_and_validates(client):
    schema = {"type": "object",
              "properties": {"city": {"type": "string", "maxLength": 16},
                             "country": {"type": "string", "maxLength": 16}},
              "required": ["city", "country"], "additionalProperties": False}
    answer = client.chat.completions.create(
        model=MODEL, temperature=0, max_tokens=64,
        messages=[{"role": "user", "content": "Give the capital of France and its country."}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "capital", "schema": schema, "strict": True}})
    data = json.loads(answer.choices[0].message.content)
    jsonschema.validate(data, schema)


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
                   "required": ["city"], "additionalProperties": False}}}


@pytest.mark.parametrize("choice", ["required",
                                    {"type": "function", "function": {"name": "get_weather"}}])
def test_forced_tool_call_names_the_tool_with_json_arguments(client, choice):
    answer = client.chat.completions.create(
        model=MODEL, temperature=0, max_tokens=64, tools=[WEATHER], tool_choice=choice,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    assert answer.choices[0].finish_reason == "tool_calls"
    calls = answer.choices[0].message.tool_calls
    assert len(calls) == 1 and calls[0].id.startswith("call_")
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}


def test_streamed_forced_tool_call_arrives_as_tool_call_deltas(client):
    stream = client.chat.completions.create(
        model=MODEL, temperature=0, max_tokens=64, tools=[WEATHER], tool_choice="required",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}], stream=True)
    name, arguments, content, finish = "", "", "", None
    for chunk in stream:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                name += call.function.name or ""
                arguments += call.function.arguments or ""
            finish = choice.finish_reason or finish
    assert (name, content, finish) == ("get_weather", "", "tool_calls")
    assert json.loads(arguments) == {"city": "Paris"}


def test_tool_choice_naming_an_unknown_function_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL, max_tokens=8, tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "get_time"}},
            messages=[{"role": "user", "content": "What time is it?"}])
    assert "get_time" in info.value.message


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="ai/no-such-model", messages=CAPITAL, max_tokens=4)
    assert "not found" in info.value.message


def test_missing_model_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="", messages=CAPITAL, max_tokens=4)
    assert "model is required" in info.value.message
    with pytest.raises(openai.BadRequestError) as info:  # not a name at all: still the caller's
        client.chat.completions.create(model=5, messages=CAPITAL, max_tokens=4)
    assert "model must be a string" in info.value.message


def test_malformed_json_is_a_bad_request(server):
    resp = httpx.post(server.url + "/engines/v1/chat/completions", content=b"{not json",
                      headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_body_over_the_limit_is_413(server, client):
    big = "x" * (10 * 1024 * 1024 + 100)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": big}],
                                       max_tokens=1)
    assert info.value.status_code == 413
    assert info.value.body["type"] == "invalid_request_error"


def _engine_status(server):
    return httpx.get(server.url + "/engines/status").json()


def test_engine_that_is_not_installed_is_412(server):
    status = _engine_status(server)
    name = next(n for n in ("vllm", "sglang", "mlx")
                if status.get(n, "Not Installed").startswith("Not Installed"))
    client = OpenAI(base_url=server.url + f"/engines/{name}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=MODEL, messages=CAPITAL, max_tokens=4)
    assert info.value.status_code == 412
    assert f"pip install modelrunner-{name}" in info.value.message


def test_engine_that_cannot_serve_gguf_is_400(server):
    if _engine_status(server).get("vllm", "Not Installed").startswith("Not Installed"):
        pytest.skip("vllm is not installed (the 412 case); select_engine is checked below")
    client = OpenAI(base_url=server.url + "/engines/vllm/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=CAPITAL, max_tokens=4)
    assert "cannot serve gguf" in info.value.message


def test_select_engine_rules():
    class Fake(Engine):
        def __init__(self, name, formats):
            self.name, self.formats = name, formats

    engines = {"llama.cpp": Fake("llama.cpp", ("gguf",)), "vllm": Fake("vllm", ("safetensors",))}
    assert select_engine(engines, "gguf").name == "llama.cpp"
    with pytest.raises(EngineError) as info:
        select_engine(engines, "gguf", "vllm")
    assert info.value.status == 400
    with pytest.raises(EngineError) as info:
        select_engine({"llama.cpp": engines["llama.cpp"]}, "gguf", "vllm")
    assert info.value.status == 412


def test_named_llamacpp_engine_and_v1_alias(server):
    for base in ("/engines/llama.cpp/v1", "/v1"):
        client = OpenAI(base_url=server.url + base, api_key="unused", max_retries=0, timeout=600)
        answer = client.chat.completions.create(model=MODEL, messages=CAPITAL, temperature=0,
                                                max_tokens=4)
        assert answer.choices[0].message.content
        assert any(m.id.endswith("ai/smollm2:latest") for m in client.models.list().data)


def test_preload_only_loads_without_generating(server):
    resp = httpx.post(server.url + "/engines/v1/chat/completions",
                      json={"model": MODEL, "messages": []},
                      headers={"X-Preload-Only": "true"}, timeout=600)
    assert resp.status_code == 200
    assert "choices" not in resp.json()
    ps = httpx.get(server.url + "/engines/ps").json()
    assert any(r["model_name"].endswith("ai/smollm2:latest") and r["mode"] == "completion"
               for r in ps)


def test_client_disconnect_mid_stream_does_not_break_the_next_request(server, client):
    body = {"model": MODEL, "stream": True, "max_tokens": 200, "temperature": 0.8,
            "messages": [{"role": "user", "content": "Write a long story about a dragon."}]}
    with httpx.stream("POST", server.url + "/engines/v1/chat/completions", json=body,
                      timeout=600) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data:"):
                break  # hang up after the first token
    answer = client.chat.completions.create(model=MODEL, messages=CAPITAL, temperature=0,
                                            max_tokens=16)
    assert "Paris" in answer.choices[0].message.content
