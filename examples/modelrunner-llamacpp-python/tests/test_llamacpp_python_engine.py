"""The example third-party engine, examples/modelrunner-llamacpp-python: its code uses only the
public API (``import modelrunner``), and once installed it serves SmolLM2 through
/engines/llama-cpp-python/v1 with llama-cpp-python's own server."""

import ast
import importlib.metadata
import importlib.util
from pathlib import Path

import pytest
from openai import OpenAI

from modelrunner import Bundle, EngineError, RunnerConfig

EXAMPLE = Path(__file__).resolve().parents[1]
PACKAGE = EXAMPLE / "modelrunner_llamacpp_python"
CAPITAL = [{"role": "system", "content": "Answer in one word."},
           {"role": "user", "content": "What is the capital of France?"}]


def _installed():
    try:
        importlib.metadata.distribution("modelrunner-llamacpp-python")
    except importlib.metadata.PackageNotFoundError:
        return False
    return importlib.util.find_spec("llama_cpp") is not None


needs_install = pytest.mark.skipif(
    not _installed(), reason="modelrunner-llamacpp-python is not installed: CMAKE_ARGS="
    "-DLLAVA_BUILD=OFF pip install -e examples/modelrunner-llamacpp-python")


@pytest.fixture(scope="module")
def engine_module():
    import modelrunner_llamacpp_python  # noqa: F401 - the hookimpls import too
    from modelrunner_llamacpp_python import engine
    return engine


def test_example_imports_only_the_public_api():
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name == "modelrunner" or not name.startswith("modelrunner."), \
                    f"{path.name} imports {name}: plugins import from `modelrunner` only"


def test_example_is_under_80_lines():
    assert sum(len(p.read_text().splitlines()) for p in PACKAGE.glob("*.py")) < 80


@needs_install
def test_command_runs_the_launcher_on_the_socket(engine_module, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.gguf").write_bytes(b"GGUF")
    bundle = Bundle(model_id="sha256:abc", path=tmp_path, config={"format": "gguf"})
    engine = engine_module.LlamaCppPythonEngine({})
    config = RunnerConfig(mode="embedding", context_size=1024,
                          runtime_flags=["--n_threads", "2", "--seed=-1"])
    command = engine.runner_command(bundle, config, "unix:///tmp/runner-1.sock")
    assert command.argv[1:4] == ["-m", "modelrunner_llamacpp_python.serve",
                                 "unix:///tmp/runner-1.sock"]
    assert command.health_path == "/v1/models"
    assert '"n_ctx": 1024' in command.argv[4] and '"embedding": true' in command.argv[4]
    assert '"n_threads": "2"' in command.argv[4] and '"seed": "-1"' in command.argv[4]
    with pytest.raises(EngineError):
        engine.runner_command(bundle, RunnerConfig(runtime_flags=["--model", "x"]), "unix:///s")
    with pytest.raises(EngineError):
        engine.runner_command(bundle, RunnerConfig(mode="reranking"), "unix:///s")


@pytest.fixture(scope="module")
def client(server):
    return OpenAI(base_url=server.url + "/engines/llama-cpp-python/v1", api_key="unused",
                  max_retries=0, timeout=600)


@needs_install
def test_chat_with_smollm2_says_paris(client):
    answer = client.chat.completions.create(model="ai/smollm2", messages=CAPITAL,
                                            temperature=0, max_tokens=16)
    assert "Paris" in answer.choices[0].message.content


@needs_install
def test_streamed_chat_with_smollm2_says_paris(client):
    stream = client.chat.completions.create(model="ai/smollm2", messages=CAPITAL,
                                            temperature=0, max_tokens=16, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert "Paris" in text
