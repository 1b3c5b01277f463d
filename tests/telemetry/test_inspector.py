"""The request inspector (GET /engines/requests, `model requests`) against a real server."""

import json
import threading

import httpx

from modelrunner.testing import Server
from tests.telemetry.telemetry_helpers import MODEL, chat, client


def records(server, **params):
    resp = httpx.get(server.url + "/engines/requests", params=params, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def model_records(server):
    groups = records(server, model=MODEL)
    assert len(groups) == 1
    return groups[0]


def test_streamed_chat_is_reassembled(server):
    content, usage = chat(server, "Tell me about the sea.", stream=True)
    group = model_records(server)
    assert set(group) >= {"count", "model", "config", "records"}
    assert "smollm2" in group["model"] and group["count"] == len(group["records"])
    record = group["records"][-1]
    assert set(record) >= {"id", "model", "method", "url", "request", "response", "error",
                           "timestamp", "status_code", "user_agent", "origin"}
    assert record["method"] == "POST" and record["url"] == "/engines/v1/chat/completions"
    assert record["status_code"] == 200 and record["user_agent"].startswith("OpenAI/Python")
    assert json.loads(record["request"])["messages"][0]["content"] == "Tell me about the sea."
    response = json.loads(record["response"])
    assert response["object"] == "chat.completion"
    message = response["choices"][0]["message"]
    assert message["role"] == "assistant" and message["content"] == content
    assert response["choices"][0]["finish_reason"] in ("length", "stop")
    assert response["usage"]["completion_tokens"] == usage["completion_tokens"]
    assert record["streamed"] is True


def test_plain_chat_and_cli(server):
    content, usage = chat(server, "What is two plus two?")
    record = model_records(server)["records"][-1]
    assert json.loads(record["response"])["choices"][0]["message"]["content"] == content
    out = server.model("requests", "--model", MODEL).stdout
    assert "What is two plus two?" in out
    assert f"completion {usage['completion_tokens']}" in out
    assert "ttft" in out


def test_secrets_are_never_recorded(server):
    resp = httpx.post(server.url + "/engines/v1/chat/completions", timeout=120,
                      headers={"Authorization": "Bearer secret-7f3a", "X-Api-Key": "secret-7f3a"},
                      json={"model": MODEL, "api_key": "secret-7f3a", "max_tokens": 8,
                            "messages": [{"role": "user", "content": "Hi there"}]})
    assert resp.status_code == 200
    c = client(server, api_key="secret-c0ffee")
    c.chat.completions.create(model=MODEL, max_tokens=8,
                              messages=[{"role": "user", "content": "Hello again"}])
    text = httpx.get(server.url + "/engines/requests", timeout=30).text
    assert "Hi there" in text and "Hello again" in text
    assert "secret" not in text
    assert "Bearer" not in text


def test_base64_media_is_shortened(server):
    # a file part (OpenAI's input files): SmolLM2 has no projector, so an image would be
    # refused before the runner (and not recorded); a file goes through and is recorded
    document = "data:application/pdf;base64," + "JVBERi0xLjQK" * 1000
    httpx.post(server.url + "/engines/v1/chat/completions", timeout=120, json={
        "model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this document?"},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": document}}]}]})
    record = model_records(server)["records"][-1]
    request = json.loads(record["request"])
    url = request["messages"][0]["content"][1]["file"]["file_data"]
    assert url.startswith("data:application/pdf;base64,") and len(url) <= 103
    assert len(record["request"]) < 1000


def test_oldest_records_are_dropped(tmp_path, smollm2):
    srv = Server(tmp_path / "models", env={"MODELRUNNER_REQUEST_RECORDS": "2"}).start()
    try:
        srv.package(smollm2, MODEL)
        for word in ("first", "second", "third"):
            chat(srv, f"Say the word {word}.", max_tokens=4)
        group = model_records(srv)
        assert group["count"] == 2
        prompts = [json.loads(r["request"])["messages"][0]["content"] for r in group["records"]]
        assert prompts == ["Say the word second.", "Say the word third."]
    finally:
        srv.stop()


def test_live_feed(server):
    chat(server, "Before the feed.", max_tokens=4)
    events = []
    done = threading.Event()

    def listen():
        with httpx.stream("GET", server.url + "/engines/requests",
                          params={"include_existing": "true", "model": MODEL},
                          headers={"Accept": "text/event-stream"}, timeout=60) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            event = None
            for line in resp.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    events.append((event, json.loads(line[5:])))
                    if event == "connected":
                        done.set()
                    if event == "new_request":
                        return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert done.wait(30)
    chat(server, "During the feed.", max_tokens=4)
    t.join(60)
    assert not t.is_alive()
    kinds = [e for e, _ in events]
    assert kinds[0] == "connected" and "existing_request" in kinds
    assert kinds[-1] == "new_request"
    new = events[-1][1]
    assert json.loads(new["request"])["messages"][0]["content"] == "During the feed."


def test_recording_can_be_turned_off(tmp_path, smollm2):
    with Server(tmp_path / "models", env={"MODELRUNNER_RECORD_REQUESTS": "false"}) as srv:
        srv.package(smollm2, MODEL)
        chat(srv, "Hello", max_tokens=4)
        assert records(srv) == []


def test_reassembly_of_reasoning_and_tool_calls():
    from modelrunner.streams import reassemble
    from modelrunner.inspector import shorten_media
    chunks = [
        {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Let me "}}]},
        {"choices": [{"index": 0, "delta": {"reasoning_content": "think."}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\":"}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": "\"Paris\"}"}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}},
    ]
    out = reassemble(chunks)
    assert out["object"] == "chat.completion" and out["id"] == "c1"
    msg = out["choices"][0]["message"]
    assert msg["reasoning_content"] == "Let me think." and msg["content"] == ""
    assert msg["tool_calls"] == [{"id": "call_1", "type": "function", "function": {
        "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert out["usage"]["completion_tokens"] == 7
    media = shorten_media({"images": ["QUJD" * 100], "b64_json": "QUJD" * 100,
                           "url": "data:image/png;base64," + "A" * 500, "text": "x " * 100})
    assert len(media["images"][0]) == 103 and len(media["b64_json"]) == 103
    assert len(media["url"]) == 103 and media["text"] == "x " * 100
