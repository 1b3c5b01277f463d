"""What a model cannot do is found once, by the gateway, for every dialect, before anything
loads, and no body can make the check skip (findings of a hostile review of the dialect layer).
Real server with SmolLM2 (a GGUF without a multimodal projector), official clients."""

import base64
import json

import anthropic
import httpx
import openai
import pytest

from modelrunner.streams import runner_error

MODEL = "ai/smollm2"
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")).decode()


def _post(server, path, raw):
    return httpx.post(server.url + path, content=raw, timeout=120,
                      headers={"Content-Type": "application/json"})


def _chat_runners(server):
    return [(r["pid"], r["context_size"]) for r in httpx.get(server.url + "/engines/ps").json()
            if r["mode"] == "completion"]


def test_a_number_too_large_for_a_float_is_a_400_not_a_skipped_image_check(server):
    """1e400 is JSON; Python reads it as infinity and a dialect's translation wrote it back as
    `Infinity`, which the gateway could not parse, so it skipped the image and remote-URL checks
    and llama-server answered 500 after loading the model."""
    tool = {"name": "f", "description": "d", "input_schema": {
        "type": "object", "properties": {"x": {"type": "number", "maximum": "HUGE"}}}}
    body = {"model": MODEL, "max_tokens": 3, "tools": [tool], "messages": [
        {"role": "user", "content": [{"type": "image", "source": {
            "type": "url", "url": "http://169.254.169.254/latest/meta-data/x.png"}}]}]}
    raw = json.dumps(body).replace('"HUGE"', "1e400").encode()
    answer = _post(server, "/v1/messages", raw)
    assert answer.status_code == 400, answer.text
    assert answer.json()["type"] == "error"
    assert "out of range" in answer.json()["error"]["message"]


def test_audio_for_a_model_without_a_projector_is_refused_before_it_loads(server):
    """The runner's "audio input is not supported" came back as a 500 after loading."""
    client = openai.OpenAI(base_url=server.url + "/engines/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, max_tokens=3, messages=[
            {"role": "user", "content": [{"type": "input_audio",
                                          "input_audio": {"data": PNG, "format": "wav"}}]}])
    assert "does not support audio" in info.value.body["message"]
    assert info.value.body["code"] == "model_not_supported"


def test_a_refused_ollama_request_leaves_the_loaded_context_alone(server):
    """Ollama's num_ctx reloads the runner for everyone; a request the gateway refuses (images
    for a model without a projector) must not get that far."""
    client = openai.OpenAI(base_url=server.url + "/engines/v1", api_key="x", max_retries=0)
    client.chat.completions.create(model=MODEL, max_tokens=1,
                                   messages=[{"role": "user", "content": "hi"}])
    before = _chat_runners(server)
    answer = _post(server, "/api/chat", json.dumps({
        "model": MODEL, "stream": False, "options": {"num_ctx": 2048},
        "messages": [{"role": "user", "content": "what", "images": [PNG]}]}).encode())
    assert answer.status_code == 400
    assert answer.json() == {"error": f"{MODEL} does not support images"}
    assert _chat_runners(server) == before


def test_one_count_tokens_is_one_request_in_metrics(server):
    """Its helper call (the runner's chat template) is not the client's request."""
    def successes():
        return sum(float(line.rsplit(" ", 1)[1]) for line in
                   httpx.get(server.url + "/metrics").text.splitlines()
                   if line.startswith("modelrunner:request_success_total"))
    client = anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0)
    client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    before = successes()
    client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert successes() == before + 1


@pytest.mark.parametrize("message, prompt, over", [
    # vLLM < 0.10.2: what it "requested" is the prompt and the answer's max_tokens together
    ("This model's maximum context length is 4096 tokens. However, you requested 5000 tokens "
     "(4000 in the messages, 1000 in the completion). Please reduce the length of the messages "
     "or completion.", 4000, False),
    # vLLM >= 0.10.2 (the plugin needs >= 0.11): the prompt alone
    ("This model's maximum context length is 4096 tokens. However, your request has 5000 input "
     "tokens. Please reduce the length of the input messages.", 5000, True),
    ("This model's maximum context length is 4096 tokens. However, you requested 1000 output "
     "tokens and your prompt contains at least 3500 input tokens, for a total of at least 4500 "
     "tokens.", 3500, False),
])
def test_vllm_context_errors_count_the_prompt_not_the_answer(message, prompt, over):
    raw = json.dumps({"error": {"message": message, "type": "BadRequestError",
                                "code": 400}}).encode()
    error = runner_error(MODEL, 400, raw)
    assert (error.code, error.prompt_tokens, error.context) == ("context_length_exceeded",
                                                                prompt, 4096)
    assert error.prompt_over is over
    if not over:  # the prompt fits: the runner's own words, never "prompt is too long"
        assert str(error) == message


def test_an_embedding_input_longer_than_a_default_batch_is_embedded(server):
    """601 tokens with a context of 8192 was a 500 "increase the physical batch size" (a knob
    the client cannot turn): the runner's batch is now its context (llamacpp args.py)."""
    client = openai.OpenAI(base_url=server.url + "/engines/v1", api_key="x", max_retries=0)
    answer = client.embeddings.create(model=MODEL, input="hi " * 600)
    assert answer.usage.prompt_tokens > 512 and len(answer.data[0].embedding) > 0
