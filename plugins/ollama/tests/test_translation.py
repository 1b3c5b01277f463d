"""The translation between Ollama's and OpenAI's shapes, without a server."""

import json

import pytest

from modelrunner_ollama import convert
from modelrunner_ollama.errors import OllamaError
from modelrunner_ollama.inference import Turn
from modelrunner_ollama.transfer import translate


def test_options_map_to_runner_fields():
    fields = convert.sampling_fields({"temperature": 0.2, "top_p": 0.9, "top_k": 20,
                                      "min_p": 0.05, "seed": 7, "stop": "END",
                                      "repeat_penalty": 1.1, "presence_penalty": 0.5,
                                      "frequency_penalty": 0.3, "num_predict": 12,
                                      "num_ctx": 4096})
    assert fields == {"temperature": 0.2, "top_p": 0.9, "top_k": 20, "min_p": 0.05, "seed": 7,
                      "stop": ["END"], "repeat_penalty": 1.1, "presence_penalty": 0.5,
                      "frequency_penalty": 0.3, "max_tokens": 12}
    assert "max_tokens" not in convert.sampling_fields({"num_predict": -1})
    assert convert.num_ctx({"num_ctx": 2048}) == 2048
    assert convert.num_ctx({}) is None


def test_format_becomes_response_format():
    assert convert.response_format("") is None
    assert convert.response_format("json") == {"type": "json_object"}
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert convert.response_format(schema)["json_schema"]["schema"] == schema
    with pytest.raises(OllamaError):
        convert.response_format("yaml")


def test_tool_calls_go_out_as_json_strings_and_come_back_as_objects():
    messages = convert.messages_to_openai([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
    ])
    call = messages[1]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert messages[2]["tool_call_id"] == call["id"]

    turn = Turn()
    for delta in ({"index": 0, "id": "call_1", "function": {"name": "get_weather",
                                                            "arguments": '{"ci'}},
                  {"index": 0, "function": {"arguments": 'ty": "Paris"}'}}):
        turn.feed({"choices": [{"delta": {"tool_calls": [delta]}}]})
    turn.feed({"choices": [{"delta": {}, "finish_reason": "tool_calls"}],
               "timings": {"prompt_n": 5, "prompt_ms": 2.5, "predicted_n": 3,
                           "predicted_ms": 4.0}})
    assert turn.tool_calls() == [{"id": "call_1", "function": {
        "index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}}]
    assert convert.done_reason(turn.finish_reason) == "stop"
    metrics = turn.metrics(started=0, load_seconds=0.5)
    assert metrics["prompt_eval_count"] == 5 and metrics["prompt_eval_duration"] == 2_500_000
    assert metrics["eval_count"] == 3 and metrics["eval_duration"] == 4_000_000
    assert metrics["load_duration"] == 500_000_000


def test_images_become_data_urls():
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    msg = {"role": "user", "content": "what?", "images": [png]}
    out = convert.messages_to_openai([msg])[0]["content"]
    assert out[0] == {"type": "text", "text": "what?"}
    assert out[1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_image_parts_in_content_are_refused_as_ollama_does():
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    with pytest.raises(OllamaError) as err:
        convert.messages_to_openai([{"role": "user", "content": [part]}])
    assert err.value.status_code_int == 400 and "must be a string" in err.value.message


def test_simple_go_templates_render():
    template = "{{ if .System }}<s>{{ .System }}</s>{{ end }}{{ .Prompt }}{{ .Response }}"
    assert convert.render_template(template, {"System": "be brief", "Prompt": "hi"}) == \
        "<s>be brief</s>hi"
    assert convert.render_template(template, {"Prompt": "hi"}) == "hi"
    assert convert.render_template("{{- if .System }}a{{ else }}b{{ end -}}\n x", {}) == "bx"
    with pytest.raises(convert.TemplateError):
        convert.render_template("{{ range .Messages }}{{ .Content }}{{ end }}", {})


def test_pull_progress_translates_to_ollama_status_lines():
    digest = "sha256:" + "ab" * 32
    line = translate({"type": "progress", "message": "Downloaded: 1.00MiB", "total": 10,
                      "layer": {"id": digest, "size": 10, "current": 4}}, "pulling")
    assert line == {"status": "pulling abababababab", "digest": digest, "total": 10,
                    "completed": 4}
    assert translate({"type": "progress", "message": "Using cached model: 93.81MiB"},
                     "pulling") == {"status": "using cached model: 93.81MiB"}
