"""The OpenAI routes write the model's name as the request asked into the runner's answer
(naming.py): pure functions, no runner needed. The whole story, with llama-server, is in
tests/core/test_hostile_input.py."""

import json

from modelrunner_openai.naming import renamed
from modelrunner_openai.shapes import completed, completed_stream

PATH = "/home/me/.docker/models/bundles/sha256/ab/model/model.gguf"


def test_every_model_member_gets_the_asked_name_and_text_keeps_its_words():
    answer = {"id": "x", "model": PATH, "choices": [{"message": {
        "content": 'I am "model": "' + PATH + '"', "tool_calls": [
            {"function": {"name": "f", "arguments": json.dumps({"model": "kept"})}}]}}]}
    for raw in (json.dumps(answer), json.dumps(answer, separators=(",", ":"))):
        out = json.loads(renamed(raw.encode(), "my/alias:v1"))
        assert out["model"] == "my/alias:v1"
        assert out["choices"][0]["message"] == answer["choices"][0]["message"]


def test_a_stream_is_renamed_whatever_its_chunks_cut():
    events = b"".join(b"data: " + json.dumps({"model": PATH, "choices": [
        {"index": 0, "delta": {"content": f"word{i} \u00e9"}}]}).encode() + b"\n\n"
        for i in range(5))
    events += b"data: [DONE]\n\n"
    closed = []
    for size in (1, 7, 64, len(events)):
        chunks = [events[i:i + size] for i in range(0, len(events), size)]
        out = b"".join(completed_stream(iter(chunks), "/v1/chat/completions", "smollm2",
                                        lambda: closed.append(1)))
        lines = [json.loads(line[6:]) for line in out.split(b"\n") if line.startswith(b"data: {")]
        assert [event["model"] for event in lines] == ["smollm2"] * 5
        assert [event["choices"][0]["delta"]["content"] for event in lines] == \
            [f"word{i} \u00e9" for i in range(5)]
        assert PATH.encode() not in out and out.endswith(b"data: [DONE]\n\n")
    assert len(closed) == 4  # the answer is closed once per stream


def test_a_whole_answer_is_renamed_on_every_route():
    chat = {"id": "x", "object": "chat.completion", "model": PATH,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}
    out = json.loads(completed(json.dumps(chat).encode(), "/v1/chat/completions", "m:v1"))
    assert out["model"] == "m:v1" and out["choices"][0]["message"]["content"] == "hi"
    embeddings = {"object": "list", "model": PATH, "data": []}
    out = json.loads(completed(json.dumps(embeddings).encode(), "/v1/embeddings", "m:v1"))
    assert out["model"] == "m:v1"
