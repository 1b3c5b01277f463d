"""Real llama-server runners started from the engine's RunnerCommand, on real and tiny weights."""

import json
import threading
import time

import pytest

from modelrunner import RunnerConfig
from plugins.llamacpp.tests.llamacpp_helpers import Runner, make_bundle
from modelrunner.testing import write_not_gguf, write_truncated_gguf


def test_tiny_gguf_loads_and_generates(engine, llama_server, tiny_gguf, tmp_path):
    bundle = make_bundle(tmp_path, tiny_gguf, {"format": "gguf", "context_size": 256})
    with Runner(engine, bundle) as runner:
        assert runner.proc.poll() is None, runner.stderr
        with runner.client() as client:
            body = client.post("/v1/chat/completions", json={
                "messages": [{"role": "user", "content": "hello world"}],
                "max_tokens": 8, "temperature": 0, "ignore_eos": True}).json()
            assert body["usage"]["completion_tokens"] == 8
            assert body["choices"][0]["finish_reason"] == "length"
            props = client.get("/props").json()
            assert props["total_slots"] == 4
            assert props["default_generation_settings"]["n_ctx"] == 256  # per slot


def test_tiny_gguf_embeddings(engine, llama_server, tiny_gguf, tmp_path):
    bundle = make_bundle(tmp_path, tiny_gguf, {"format": "gguf", "context_size": 256})
    with Runner(engine, bundle, RunnerConfig(mode="embedding")) as runner:
        assert runner.proc.poll() is None, runner.stderr
        with runner.client() as client:
            body = client.post("/v1/embeddings", json={"input": ["hello", "world"]}).json()
    assert [len(d["embedding"]) for d in body["data"]] == [64, 64]


@pytest.mark.parametrize("writer", [write_not_gguf, write_truncated_gguf],
                         ids=["not-gguf", "truncated"])
def test_broken_gguf_exits_with_a_readable_error(engine, llama_server, tmp_path, writer):
    broken = writer(tmp_path / "broken.gguf")
    bundle = make_bundle(tmp_path / "bundle", broken)
    runner = Runner(engine, bundle)
    try:
        runner.start(timeout=60)
        assert runner.wait_exit(timeout=60) != 0
        err = runner.stderr
        assert "failed to load model" in err or "error loading model" in err, err
        assert str(bundle.gguf_files[0]) in err  # says which file
    finally:
        runner.stop()


def test_smollm2_knows_the_capital_of_france(smollm2_runner):
    with smollm2_runner.client() as client:
        body = client.post("/v1/chat/completions", json={
            # With SmolLM2's default system prompt ("You are a helpful AI assistant named
            # SmolLM...") this Q4_1 build answers "L'Étoile, la Marseillaise..."; a plain system
            # prompt gets "The capital of France is Paris."
            "messages": [{"role": "system", "content": "You are a helpful assistant."},
                         {"role": "user", "content": "What is the capital of France?"}],
            "temperature": 0, "max_tokens": 48}).json()
    answer = body["choices"][0]["message"]["content"]
    assert "Paris" in answer, answer
    timings = body["timings"]
    print(f"\nSmolLM2: loaded in {smollm2_runner.load_seconds:.2f}s; "
          f"{timings['predicted_per_second']:.1f} tokens/s single stream "
          f"({timings['predicted_n']} tokens), prompt {timings['prompt_per_second']:.1f} tokens/s")


def _stream(runner, prompt, marks, index):
    """One streamed completion; records (first token time, last token time, tokens)."""
    first = last = None
    tokens = 0
    with runner.client() as client:
        with client.stream("POST", "/v1/chat/completions", json={
                "messages": [{"role": "user", "content": prompt}], "stream": True,
                "temperature": 0, "max_tokens": 24, "ignore_eos": True}) as response:
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                    now = time.monotonic()
                    first = first or now
                    last = now
                    tokens += 1
    marks[index] = (first, last, tokens)


def test_four_requests_decode_together(smollm2_runner):
    """With 4 slots and continuous batching, every request gets its first token before any
    request gets its last: they are decoded in the same batches, not one after another."""
    prompts = ["Count from one to ten.", "Name three colours.", "Say hello in French.",
               "What is two plus two?"]
    marks = [None] * 4
    threads = [threading.Thread(target=_stream, args=(smollm2_runner, p, marks, i))
               for i, p in enumerate(prompts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(m and m[2] >= 20 for m in marks), marks
    latest_first = max(m[0] for m in marks)
    earliest_last = min(m[1] for m in marks)
    assert latest_first < earliest_last, marks
    with smollm2_runner.client() as client:
        metrics = client.get("/metrics").text
    assert "llamacpp:" in metrics  # --metrics is on
