"""Fixtures for the llama.cpp engine tests: the engine, tiny GGUFs, a SmolLM2 runner."""

import pytest

from modelrunner import RunnerConfig
from modelrunner.testing import load_settings, write_tiny_llama_gguf
from plugins.llamacpp.tests.llamacpp_helpers import Runner, make_bundle, require_llama_server

from modelrunner_llamacpp.engine import LlamaCppEngine


@pytest.fixture(scope="session")
def engine():
    return LlamaCppEngine(settings=load_settings(llamacpp_slots=4))


@pytest.fixture(scope="session")
def llama_server(engine):
    """Fails (never skips) when llama-server is missing, saying how to build it."""
    return require_llama_server(engine)


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory):
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("tiny") / "tiny.gguf", n_ctx=256)


@pytest.fixture(scope="module")
def smollm2_runner(engine, llama_server, smollm2, tmp_path_factory):
    """SmolLM2-135M-Instruct in completion mode, 4 slots of 2048 tokens each."""
    bundle = make_bundle(tmp_path_factory.mktemp("smollm2"), smollm2,
                         {"format": "gguf", "context_size": 2048}, model_id="ai/smollm2")
    runner = Runner(engine, bundle, RunnerConfig(mode="completion")).start()
    if runner.proc.poll() is not None:
        pytest.fail(f"llama-server exited {runner.proc.returncode}:\n{runner.stderr}")
    yield runner
    runner.stop()
