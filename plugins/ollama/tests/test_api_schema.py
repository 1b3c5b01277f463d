"""Chat, generate, embed, tags, show, ps and errors, held to Ollama's schemas.

Real requests to SmolLM2 through a real server with the official `ollama` client and plain
httpx; every answer (each NDJSON line) is validated with jsonschema after each test against
``ollama_schema.json`` (``every_answer_conforms``, see ollama_conformance.py)."""

import time

import httpx
import ollama
import pytest

from modelrunner_ollama import inference
from ollama_conformance import Recorder, answer_conforms, conforms
from ollama_helpers import MODEL, QUESTION, SHORT

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


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
    return ollama.Client(host=server.url, timeout=300, event_hooks={"response": [recorder]})


@pytest.fixture(scope="module")
def http(server, recorder):
    with httpx.Client(base_url=server.url, timeout=300,
                      event_hooks={"response": [recorder]}) as c:
        yield c


def test_a_chat_conforms_whole_and_line_by_line(client, http):
    answer = client.chat(model=MODEL, messages=QUESTION, options=SHORT)
    assert answer.message.content and answer.eval_count > 0
    lines = list(client.chat(model=MODEL, messages=QUESTION, options=SHORT, stream=True))
    assert lines[-1].done and not lines[0].done
    raw = http.post("/api/chat", json={"model": MODEL, "messages": QUESTION, "options": SHORT,
                                       "stream": False}).json()
    assert raw["done"] is True and raw["prompt_eval_count"] >= 1


def test_a_generate_conforms_whole_and_line_by_line(client, http):
    assert client.generate(model=MODEL, prompt="The capital of France is",
                           options=SHORT).response
    lines = list(client.generate(model=MODEL, prompt="The capital of France is",
                                 options=SHORT, stream=True))
    assert lines[-1].done and lines[-1].eval_duration > 0
    raw = http.post("/api/generate", json={"model": MODEL, "prompt": "Paris is", "raw": True,
                                           "options": SHORT})  # /v1/completions underneath
    assert raw.headers["content-type"].startswith("application/x-ndjson")


def test_a_chat_with_tools_and_a_tool_turn_conforms(client):
    history = QUESTION + [
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "sunny, 22 C", "tool_name": "get_weather"}]
    client.chat(model=MODEL, messages=history, tools=[WEATHER], options=SHORT)
    list(client.chat(model=MODEL, messages=history, tools=[WEATHER], options=SHORT,
                     stream=True))


def test_a_tool_call_the_runner_streams_comes_out_as_ollamas_tool_call():
    """SmolLM2's template has no tools, so the real server's answers above carry none: the
    final line is built here from the runner's streamed deltas, as the resource builds it."""
    turn = inference.Turn()
    for delta in ({"index": 0, "id": "call_1", "function": {"name": "get_weather",
                                                            "arguments": '{"ci'}},
                  {"index": 0, "function": {"arguments": 'ty": "Paris"}'}}):
        turn.feed({"choices": [{"delta": {"tool_calls": [delta]}}]})
    turn.feed({"choices": [{"delta": {}, "finish_reason": "tool_calls"}],
               "timings": {"prompt_n": 9, "prompt_ms": 1.5, "predicted_n": 7,
                           "predicted_ms": 3.0}})
    final = inference.ChatResource(None).final(MODEL, turn, time.monotonic(), 0.0, whole=True)
    conforms("ChatResponseFinal", final)
    assert final["message"]["tool_calls"][0]["function"] == {
        "index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}


def test_a_load_and_an_unload_answer_conform(client):
    """An empty prompt loads (done_reason load) and keep_alive 0 unloads: plain answers, no
    metrics to give."""
    assert client.generate(model=MODEL).done_reason == "load"
    assert client.chat(model=MODEL, messages=[]).done_reason == "load"
    assert client.generate(model=MODEL, keep_alive=0).done_reason == "unload"
    assert client.generate(model=MODEL).done_reason == "load"


def test_embeddings_of_one_and_many_inputs_conform(client):
    assert len(client.embed(model=MODEL, input="Paris").embeddings) == 1
    many = client.embed(model=MODEL, input=["Paris", "Rome", "Berlin"])
    assert len(many.embeddings) == 3 and many.prompt_eval_count > 0


def test_tags_show_and_ps_conform(client, http):
    client.generate(model=MODEL, prompt="Hi", options={"num_predict": 1})
    (tag,) = [m for m in client.list().models if m.model.startswith(MODEL)]
    assert tag.details.family == "llama"
    shown = client.show(MODEL)
    assert shown.modelinfo and shown.details.quantization_level
    http.post("/api/show", json={"model": MODEL, "verbose": True})
    running = [m for m in http.get("/api/ps").json()["models"] if m["model"].startswith(MODEL)]
    assert running  # its completion runner, and its embedding runner after the embed test
    for entry in running:
        assert entry["context_length"] >= 1 and entry["size"] > 0
        assert entry["size_vram"] == 0  # these tests run llama-server on CPUs
    client.ps()


def test_errors_conform(client, http):
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model="no/such-model", messages=QUESTION)
    assert e.value.status_code == 404
    with pytest.raises(ollama.ResponseError):
        client.show("no/such-model")
    for path in ("/api/chat", "/api/generate", "/api/embed", "/api/show"):
        r = http.post(path, content=b'{"model": ', headers={"content-type": "application/json"})
        assert r.status_code == 400, path
        assert http.post(path, json={"messages": QUESTION}).status_code == 400  # no model
    assert http.post("/api/embed", json={"model": MODEL, "input": 3}).status_code == 400


def test_the_check_rejects_answers_that_miss_what_ollama_always_sends():
    final = {"model": MODEL, "created_at": "2026-12-06T00:12:53.003123Z",
             "message": {"role": "assistant", "content": ""}, "done": True,
             "done_reason": "stop", "total_duration": 33917376, "load_duration": 0,
             "prompt_eval_count": 1, "prompt_eval_duration": 11237000, "eval_count": 3,
             "eval_duration": 15708000}
    conforms("ChatResponseFinal", final)
    with pytest.raises(AssertionError):  # the final line of a generation has its metrics
        conforms("ChatResponseFinal", {k: v for k, v in final.items() if k != "eval_count"})
    with pytest.raises(AssertionError):  # time.Time is RFC 3339, not epoch seconds
        conforms("ChatResponse", dict(final, created_at=1765000000))
    with pytest.raises(AssertionError):
        conforms("ChatResponse", dict(final, message={"role": "assistant"}))
    with pytest.raises(AssertionError):  # durations are integers of nanoseconds
        conforms("ChatResponse", dict(final, total_duration=0.034))
    details = {"parent_model": "", "format": "gguf", "family": "llama", "families": None,
               "parameter_size": "134.52M", "quantization_level": "Q4_1"}
    running = {"name": "m:latest", "model": "m:latest", "size": 1, "digest": "ab",
               "details": details, "expires_at": "2026-12-06T00:17:52.847274+00:00",
               "size_vram": 0, "context_length": 8192}
    conforms("ProcessResponse", {"models": [running]})
    for field in ("size_vram", "context_length", "expires_at", "details"):
        with pytest.raises(AssertionError):
            conforms("ProcessModelResponse", {k: v for k, v in running.items() if k != field})
    with pytest.raises(AssertionError):
        conforms("ProcessModelResponse", dict(running, context_length=0))
    with pytest.raises(AssertionError):
        conforms("ModelDetails", {k: v for k, v in details.items() if k != "families"})
    with pytest.raises(AssertionError):  # the line must mark its end: done on the last only
        answer_conforms("POST", "/api/chat", 200, "application/x-ndjson",
                        b'{"model": "m", "created_at": "2026-12-06T00:12:53Z", "message": '
                        b'{"role": "assistant", "content": "hi"}, "done": false}\n')
    with pytest.raises(AssertionError):
        conforms("ErrorResponse", {"error": {"message": "model 'x' not found"}})
