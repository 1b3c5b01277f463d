"""Chat, generate and embed with SmolLM2 through the official client."""

import json

import httpx
import ollama
import pytest

from ollama_helpers import MODEL, QUESTION, SHORT


def assert_measured(final):
    assert final.done is True
    assert final.done_reason in ("stop", "length")
    assert final.eval_count > 0
    assert final.prompt_eval_count > 0
    assert final.eval_duration > 0
    assert final.prompt_eval_duration > 0
    assert final.total_duration >= final.eval_duration
    assert final.load_duration is not None


def test_chat_without_streaming_answers_with_measured_metrics(client):
    answer = client.chat(model=MODEL, messages=QUESTION, options=SHORT, stream=False)
    assert answer.message.role == "assistant"
    assert answer.message.content.strip()
    assert answer.model == MODEL
    assert_measured(answer)
    assert answer.eval_count <= SHORT["num_predict"]


def test_chat_streamed_yields_fragments_then_a_done_line(client):
    parts = list(client.chat(model=MODEL, messages=QUESTION, options=SHORT, stream=True))
    assert len(parts) > 2
    assert all(not p.done for p in parts[:-1])
    text = "".join(p.message.content for p in parts)
    assert text.strip()
    assert_measured(parts[-1])
    assert parts[-1].message.content == ""  # the text came in the fragments
    assert parts[-1].eval_count >= len([p for p in parts[:-1] if p.message.content]) - 1


def test_chat_stream_is_ndjson(server):
    with httpx.stream("POST", server.url + "/api/chat", timeout=300,
                      json={"model": MODEL, "messages": QUESTION,
                            "options": {"num_predict": 4}}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "length"
    assert lines[-1]["eval_count"] == 4
    assert all("created_at" in line for line in lines)


def test_num_predict_limits_the_answer_and_says_length(client):
    answer = client.chat(model=MODEL, messages=QUESTION, options={"num_predict": 3})
    assert answer.done_reason == "length"
    assert answer.eval_count == 3


def test_generate_streamed_and_not(client):
    answer = client.generate(model=MODEL, prompt="What is the capital of France?",
                             options=SHORT)
    assert answer.response.strip()
    assert_measured(answer)
    parts = list(client.generate(model=MODEL, prompt="Say hello.", options=SHORT, stream=True))
    assert "".join(p.response for p in parts).strip()
    assert parts[-1].done and parts[-1].eval_count > 0


def test_generate_raw_completes_the_prompt_as_is(client):
    answer = client.generate(model=MODEL, prompt="The capital of France is", raw=True,
                             options={"num_predict": 8, "temperature": 0})
    assert answer.response.strip()
    assert answer.eval_count > 0


def test_generate_with_a_template_and_system(client):
    answer = client.generate(model=MODEL, prompt="Name a colour.", system="Answer in one word.",
                             template="<|im_start|>system\n{{ .System }}<|im_end|>\n"
                                      "<|im_start|>user\n{{ .Prompt }}<|im_end|>\n"
                                      "<|im_start|>assistant\n",
                             options=SHORT)
    assert answer.response.strip()


def test_format_json_gives_parseable_json(client):
    answer = client.chat(model=MODEL, format="json",
                         messages=[{"role": "user",
                                    "content": 'Reply with {"city": "Paris"} and nothing else.'}],
                         options={"num_predict": 64, "temperature": 0})
    assert answer.done_reason == "stop"  # the grammar closed the object
    assert isinstance(json.loads(answer.message.content), dict)


def test_format_schema_is_followed(client):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    answer = client.generate(model=MODEL, prompt="Is Paris in France? Answer in JSON.",
                             format=schema, options={"num_predict": 32, "temperature": 0})
    value = json.loads(answer.response)
    assert isinstance(value["ok"], bool)


def test_embed_one_and_several_inputs(client):
    one = client.embed(model=MODEL, input="Paris is in France.")
    assert len(one.embeddings) == 1
    assert len(one.embeddings[0]) == 576  # llama.embedding_length
    several = client.embed(model=MODEL, input=["first text", "second text", "third"])
    assert len(several.embeddings) == 3
    assert all(len(v) == 576 for v in several.embeddings)
    assert several.embeddings[0] != several.embeddings[1]
    assert several.prompt_eval_count > 0
    assert several.total_duration > 0


def test_embed_dimensions_truncates_and_normalizes(client):
    short = client.embed(model=MODEL, input="hello", dimensions=64)
    vector = short.embeddings[0]
    assert len(vector) == 64
    assert abs(sum(x * x for x in vector) - 1) < 1e-3


def test_legacy_embeddings(client):
    result = client.embeddings(model=MODEL, prompt="hello")
    assert len(result.embedding) == 576


def test_ps_after_a_chat_lists_the_loaded_model(client):
    client.chat(model=MODEL, messages=QUESTION, options={"num_predict": 2})
    running = client.ps().models
    entry = next(m for m in running if m.model == "ai/smollm2:latest")
    assert entry.size > 0
    assert entry.size_vram == 0
    assert entry.context_length > 0
    assert entry.expires_at is not None
    assert len(entry.digest) == 64


def test_unknown_model_is_404_for_inference(client):
    for call in (lambda: client.chat(model="missing-model", messages=QUESTION),
                 lambda: client.generate(model="missing-model", prompt="hi"),
                 lambda: client.embed(model="missing-model", input="hi")):
        with pytest.raises(ollama.ResponseError) as err:
            call()
        assert err.value.status_code == 404
        assert "missing-model" in err.value.error


def test_images_for_a_model_without_projector_is_400(client):
    tiny_png = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGA"
                "WjR9awAAAABJRU5ErkJggg==")
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model=MODEL, messages=[{"role": "user", "content": "what is this?",
                                            "images": [tiny_png]}])
    assert err.value.status_code == 400
    assert "images" in err.value.error


def test_bad_keep_alive_and_options_are_400(client):
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model=MODEL, messages=QUESTION, keep_alive="forever")
    assert err.value.status_code == 400
    r = httpx.post(client._client.base_url.join("/api/generate"),
                   json={"model": MODEL, "prompt": "hi", "format": "yaml"})
    assert r.status_code == 400 and "format" in r.json()["error"]


def test_a_num_ctx_that_is_no_whole_number_is_400_and_reloads_nothing(server):
    """``true`` reloaded the runner with a context of 1 token for every client; ``Infinity``
    (which Python's JSON reader accepts) was a 500."""
    for value in ("true", "false", "Infinity", "-Infinity", "1e400"):
        r = httpx.post(server.url + "/api/generate", timeout=300,
                       headers={"Content-Type": "application/json"},
                       content=f'{{"model": "{MODEL}", "prompt": "hi", "stream": false, '
                               f'"options": {{"num_ctx": {value}, "num_predict": 2}}}}')
        # Infinity is no JSON at all and 1e400 no float: the body reader refuses them before
        # the option is read
        named = ("Infinity is not a JSON value" if "Infinity" in value else
                 "1e400 is out of range" if value == "1e400" else "num_ctx")
        assert r.status_code == 400 and named in r.json()["error"], (value, r.text)


def test_empty_values_the_client_sends_are_accepted(server):
    r = httpx.post(server.url + "/api/chat", timeout=300,
                   json={"model": MODEL, "messages": QUESTION, "format": "",
                         "options": {"num_predict": 4},
                         "tools": [], "keep_alive": None, "stream": False,
                         "think": None})
    assert r.status_code == 200, r.text
    assert r.json()["done"] is True
