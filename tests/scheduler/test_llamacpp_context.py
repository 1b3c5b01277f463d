"""A model that declares a 128K context loads on a small machine: with no context configured it
gets the largest one that fits the memory budget with all its slots; a configured context is kept
exactly, and one that does not fit is refused with the figures. A real `model serve` with a small
memory budget, the tiny random llama GGUF declaring 131072 tokens, and the real llama-server
(whose command line is read from /proc)."""

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from modelrunner.testing import Server
from modelrunner.testing.tiny_gguf import write_tiny_llama_gguf

CHAT = "/engines/v1/chat/completions"
BUDGET = 80 * 2**20   # MODELRUNNER_MEMORY_BUDGET: room for the tiny model and ~30K tokens x 4 slots


@pytest.fixture(scope="module")
def small_machine(tmp_path_factory):
    """A server whose memory budget is 80 MiB, with ai/long: a GGUF declaring 131072 tokens."""
    root = tmp_path_factory.mktemp("long-context")
    gguf = write_tiny_llama_gguf(root / "long.gguf", n_ctx=131072)
    server = Server(root / "models", env={"MODELRUNNER_MEMORY_BUDGET": str(BUDGET)}).start()
    try:
        server.package(gguf, "ai/long")
        yield server
    finally:
        server.stop()


def chat(server, model="ai/long"):
    return httpx.post(server.url + CHAT, timeout=120, json={
        "model": model, "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]})


def configure(server, context_size):
    response = httpx.post(server.url + "/engines/_configure", timeout=60,
                          json={"model": "ai/long", "context-size": context_size})
    assert response.status_code == 202, response.text


def the_runner(server):
    [runner] = httpx.get(server.url + "/engines/ps", timeout=30).json()
    return runner


def ctx_size_flag(pid):
    """llama-server's --ctx-size (the KV pool of all slots) and --parallel, from /proc."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    return int(argv[argv.index("--ctx-size") + 1]), int(argv[argv.index("--parallel") + 1])


def test_an_unconfigured_long_context_model_gets_the_largest_context_that_fits(small_machine):
    assert chat(small_machine).status_code == 200
    runner = the_runner(small_machine)
    context = runner["context_size"]
    assert 4096 <= context < 131072 and context % 256 == 0
    assert runner["context_reason"] == \
        "fits memory budget of 0.08 GiB with 4 slots; model max 131072"
    pool, slots = ctx_size_flag(runner["pid"])
    assert (pool, slots) == (context * 4, 4)
    assert runner["memory"] <= BUDGET  # the scheduler reserved what fits, for that very context
    shown = subprocess.run([sys.executable, "-m", "modelrunner.cli", "ps"], env=small_machine.env,
                           capture_output=True, text=True, check=True).stdout
    assert f"{context} (fits memory budget of 0.08 GiB with 4 slots; model max 131072)" in shown


def test_a_configured_context_is_kept_exactly_and_one_too_big_is_refused_with_the_figures(
        small_machine):
    configure(small_machine, 2048)
    assert chat(small_machine).status_code == 200
    runner = the_runner(small_machine)
    assert (runner["context_size"], runner["context_reason"]) == (2048, "configured")
    assert ctx_size_flag(runner["pid"]) == (2048 * 4, 4)

    configure(small_machine, 131072)  # the model's maximum: 128 MiB of KV cache for 4 slots
    refused = chat(small_machine)
    assert refused.status_code == 503, refused.text
    message = refused.json()["error"]["message"]
    assert message.startswith("not enough memory to load docker.io/ai/long:latest with context "
                              "131072 (configured): it needs 0.17 GiB, the budget is 0.08 GiB"), \
        message
    assert "model configure --context-size" in message
    assert httpx.get(small_machine.url + "/engines/ps", timeout=30).json() == []
