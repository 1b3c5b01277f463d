"""One request cannot stall the server: what multiplies an answer's size is capped, and recording
an answer (the inspector's record, the metrics' token counts) is bounded and linear in its size.

Before: ``"logprobs": true, "top_logprobs": 100000`` made a 30-token chat answer ~140 MB, and
recording it re-split everything received so far for every 64 KiB chunk (quadratic, in the
gevent loop): the worker was busy for minutes and another client's GET /v1/models took 16 s.
"""

import json
import threading
import time

import httpx
import ollama
import openai
import pytest

from modelrunner.telemetry import RequestRecord
from modelrunner.testing import Server
from tests.telemetry.telemetry_helpers import MODEL, client

FLOOD = 100000
MESSAGES = [{"role": "user", "content": "Count from one to ten."}]


def records(server):
    resp = httpx.get(server.url + "/engines/requests", params={"model": MODEL}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()[0]["records"]


# -- what multiplies an answer is refused, naming the parameter --------------------------------


def test_a_top_logprobs_flood_is_refused_on_chat_completions(server):
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=1,
                                               logprobs=True, top_logprobs=FLOOD)
    assert caught.value.status_code == 400
    assert caught.value.param == "top_logprobs"
    assert "top_logprobs" in caught.value.message and "20" in caught.value.message


def test_a_logprobs_flood_is_refused_on_completions(server):
    c = client(server)
    with pytest.raises(openai.BadRequestError) as caught:
        c.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=1,
                             logprobs=FLOOD)
    assert caught.value.param == "logprobs" and "logprobs" in caught.value.message
    # the chat name, passed to /v1/completions by a client that mixes them up
    with pytest.raises(openai.BadRequestError) as caught:
        c.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=1,
                             extra_body={"top_logprobs": FLOOD})
    assert caught.value.param == "top_logprobs" and "top_logprobs" in caught.value.message


def test_runner_names_and_choice_counts_are_bounded_too(server):
    c = client(server)
    cases = [  # (what the client asked for, the parameter named in the 400)
        (lambda: c.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=1,
                                           extra_body={"n_probs": FLOOD}), "n_probs"),
        (lambda: c.completions.create(model=MODEL, prompt="Hi", max_tokens=1,
                                      extra_body={"n_probs": FLOOD}), "n_probs"),
        (lambda: c.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=1,
                                           n=100), "n"),
        (lambda: c.completions.create(model=MODEL, prompt="Hi", max_tokens=1,
                                      extra_body={"n_cmpl": 100}), "n_cmpl"),
        (lambda: c.completions.create(model=MODEL, prompt=["Hi"] * 1000, max_tokens=1),
         "prompt"),
        (lambda: c.embeddings.create(model=MODEL, input=["a"] * 5000), "input"),
        (lambda: c.images.generate(model=MODEL, prompt="a cat", n=50), "n"),
    ]
    for ask, param in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            ask()
        assert caught.value.param == param, caught.value.message
        assert param in caught.value.message


def test_ollama_top_logprobs_follows_ollamas_bound(server):
    c = ollama.Client(host=server.url, timeout=300)
    for ask in (lambda: c.chat(model=MODEL, messages=MESSAGES, logprobs=True,
                               top_logprobs=FLOOD, options={"num_predict": 1}),
                lambda: c.generate(model=MODEL, prompt="Hi", logprobs=True, top_logprobs=FLOOD,
                                   options={"num_predict": 1})):
        with pytest.raises(ollama.ResponseError) as caught:
            ask()
        assert caught.value.status_code == 400
        assert caught.value.error == "top_logprobs must be between 0 and 20"


# -- a large answer does not stall anyone else --------------------------------------------------


def _poll(url, go, stop, latencies):
    with httpx.Client(timeout=30) as http:
        go.wait(600)
        while not stop.is_set():
            started = time.perf_counter()
            assert http.get(url).status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.002)


def test_models_stay_fast_while_a_large_answer_is_recorded(server):
    # 4 choices of 250 tokens with 20 log probabilities each: a legitimate ~2 MB stream. Once
    # its last event is sent the server records it (before main: every event re-split out of
    # all the rest, then parsed one by one, ~0.3 s of CPU for this answer in the event loop).
    # GET /models is timed from the [DONE] event to the end of the answer and a little after:
    # by then llama-server has stopped computing, so its work on these 2 cores does not blur
    # what is timed (while it generates, a request can wait for a core, whoever serves it).
    client(server).chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=1)
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 250, "n": 4, "logprobs": True,
            "top_logprobs": 20, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True}}
    go, stop, latencies = threading.Event(), threading.Event(), []
    poller = threading.Thread(target=_poll, args=(server.url + "/models", go, stop, latencies))
    poller.start()
    size, usage = 0, None
    try:
        with httpx.stream("POST", server.url + "/engines/v1/chat/completions", json=body,
                          timeout=900) as resp:
            assert resp.status_code == 200
            for line in resp.iter_lines():
                size += len(line) + 1
                if line.startswith("data: {") and json.loads(line[6:]).get("choices") == []:
                    usage = json.loads(line[6:])["usage"]
                if line == "data: [DONE]":
                    go.set()
        time.sleep(0.3)  # the record is written; later requests wait for nothing
    finally:
        go.set()
        stop.set()
        poller.join(30)
    assert size > 1_500_000
    assert len(latencies) > 10
    assert max(latencies) < 0.050, sorted(latencies)[-5:]
    record = records(server)[-1]
    # llama-server sends one usage event per choice (250 tokens each); the record has the last
    assert record["usage"] == usage and usage["completion_tokens"] == 250
    assert len(record["response"]) <= 512 << 10  # record_body_bytes' default


# -- a record keeps at most record_body_bytes, and the right usage -------------------------------


KEEP = 64 << 10


@pytest.fixture(scope="module")
def small_records(tmp_path_factory, smollm2):
    srv = Server(tmp_path_factory.mktemp("records") / "models",
                 env={"MODELRUNNER_RECORD_BODY_BYTES": str(KEEP)}).start()
    srv.package(smollm2, MODEL)
    yield srv
    srv.stop()


LOGPROB_TOKENS = 250


def _logprob_chat(server, stream):
    """A chat with 20 log probabilities per token: ~0.8 KB per streamed token (a CI run saw
    127 KB for 150) and ~1.3 KB per token in one JSON answer, so LOGPROB_TOKENS outgrow twice
    KEEP either way. Returns (answer bytes, usage, finish_reason) as the client got them."""
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": LOGPROB_TOKENS, "logprobs": True,
            "top_logprobs": 20, "ignore_eos": True, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    resp = httpx.post(server.url + "/engines/v1/chat/completions", json=body, timeout=300)
    assert resp.status_code == 200, resp.text
    if not stream:
        answer = resp.json()
        return resp.content, answer["usage"], answer["choices"][0]["finish_reason"]
    usage = finish = None
    for line in resp.text.splitlines():
        if line.startswith("data: {"):
            event = json.loads(line[6:])
            usage = event.get("usage") or usage
            for choice in event.get("choices") or []:
                finish = choice.get("finish_reason") or finish
    return resp.content, usage, finish


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_large_answer_is_recorded_cut_with_its_usage(small_records, stream):
    raw, usage, finish = _logprob_chat(small_records, stream)
    assert len(raw) > 2 * KEEP
    record = records(small_records)[-1]
    assert len(record["response"]) <= KEEP
    # counted, not kept (the runner's bytes: the client's differ by the model name written back)
    assert record["response_bytes"] > 0.9 * len(raw)
    assert record["usage"]["completion_tokens"] == usage["completion_tokens"] == LOGPROB_TOKENS
    assert record["usage"]["prompt_tokens"] == usage["prompt_tokens"]
    assert record["finish_reason"] == finish == "length"
    assert record["timings"]["ttft"] is not None
    if stream:  # reassembled from the kept start: whole JSON, with the usage from the end
        response = json.loads(record["response"])
        assert response["usage"]["completion_tokens"] == usage["completion_tokens"]
        assert response["choices"][0]["finish_reason"] == finish
        assert response["choices"][0]["message"]["content"]


def test_a_large_request_body_is_recorded_cut(small_records):
    text = "All work and no play makes Jack a dull boy. " * 4000  # 176 KB
    body = {"model": MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": text}]}
    sent = json.dumps(body).encode()
    httpx.post(small_records.url + "/engines/v1/chat/completions", content=sent, timeout=300,
               headers={"Content-Type": "application/json"})
    record = records(small_records)[-1]
    assert record["request_bytes"] == len(sent)
    assert len(record["request"]) <= KEEP
    assert record["request"].startswith('{"model": "ai/smollm2"')


# -- the record itself: bounded state, linear work ----------------------------------------------


def test_add_chunk_keeps_bounded_state_for_an_answer_without_newlines():
    from modelrunner.telemetry import TAIL_BYTES
    keep, chunk, chunks = 32 << 10, b"x" * 65536, 400  # 26 MB, one line
    record = RequestRecord(model=MODEL, model_id="sha256:" + "0" * 64, engine="llama.cpp",
                           mode="completion", path="/v1/chat/completions", keep=keep)
    largest = 0
    for i in range(chunks):
        record.add_chunk(chunk, i * 0.001)
        held = [len(v) for v in vars(record).values() if isinstance(v, (bytes, bytearray))]
        largest = max(largest, sum(held))
    # the kept start, the tail (at most twice TAIL_BYTES between trims) and a few bytes of the
    # unfinished line: nothing that grows with what came before
    assert largest <= keep + 2 * TAIL_BYTES + 4096 + 64
    assert record.size == chunks * len(chunk) and len(record.raw) == keep
    assert record.chunk_times == []


def _huge_json_chunks(tokens):
    """A non-streamed chat completion with logprobs, as llama-server writes it (usage and
    timings at the end, no newline), in blocks of ~70 KB, never held whole."""
    entry = json.dumps({"id": 7, "token": " word", "bytes": [32, 119, 111, 114, 100],
                        "logprob": -0.5, "top_logprobs": [{"id": k, "token": f" t{k}",
                                                           "bytes": [32], "logprob": -1.5 - k}
                                                          for k in range(20)]},
                       separators=(",", ":")).encode()
    yield (b'{"choices":[{"finish_reason":"length","index":0,"message":{"role":"assistant",'
           b'"content":"' + b" word" * 100 + b'"},"logprobs":{"content":[' + entry)
    block = (b"," + entry) * 64
    for _ in range(tokens // 64):
        yield block
    usage = {"completion_tokens": tokens, "prompt_tokens": 12, "total_tokens": tokens + 12,
             "prompt_tokens_details": {"cached_tokens": 0}}
    yield (b']}}],"created":1,"model":"ai/smollm2","object":"chat.completion","usage":'
           + json.dumps(usage, separators=(",", ":")).encode() + b',"id":"chatcmpl-1",'
           b'"timings":{"prompt_n":12,"predicted_n":' + str(tokens).encode() + b'}}')


def test_a_huge_json_answer_keeps_the_configured_bytes_and_its_usage():
    from modelrunner.inspector import to_record
    keep, tokens = 100_000, 64 * 300  # ~22 MB
    record = RequestRecord(model=MODEL, model_id="sha256:" + "0" * 64, engine="llama.cpp",
                           mode="completion", path="/v1/chat/completions", keep=keep,
                           body=json.dumps({"model": MODEL, "messages": MESSAGES}).encode())
    for chunk in _huge_json_chunks(tokens):
        record.add_chunk(chunk, 1.0)
    record.finish(status=200)
    assert record.size > 20_000_000
    assert record.usage["completion_tokens"] == tokens and record.usage["prompt_tokens"] == 12
    assert record.finish_reason == "length"
    assert record.ttft is not None
    entry = to_record(record)
    assert len(entry["response"]) <= keep and entry["response_bytes"] == record.size
    assert entry["usage"]["completion_tokens"] == tokens


def test_usage_is_read_from_the_end_of_a_cut_answer_and_never_from_its_text():
    def record_of(*chunks):
        record = RequestRecord(model=MODEL, model_id="sha256:" + "0" * 64, engine="llama.cpp",
                               mode="completion", path="/v1/chat/completions", keep=1000)
        for chunk in chunks:
            record.add_chunk(chunk, 0.5)
        record.finish(status=200)
        return record

    # the model wrote '"usage":{"prompt_tokens":9}' (escaped in the JSON): not the answer's usage
    written = b'{"choices":[{"message":{"content":"\\"usage\\":{\\"prompt_tokens\\":9}'
    record = record_of(written, b"x" * 5_000_000,
                       b'"}}],"usage":{"prompt_tokens":3,"completion_tokens":4}}')
    assert record.usage == {"prompt_tokens": 3, "completion_tokens": 4}
    # an answer cut inside its usage object: no usage rather than a guess
    record = record_of(written, b"x" * 200_000, b'"}}],"usage":{"prompt_tokens":1')
    assert record.usage == {}
