"""The llama.cpp engine's contract without starting a runner: registration, arguments, flags,
binary resolution and the memory estimate's arithmetic."""

import importlib.metadata
import os
import stat

import pytest

from modelrunner import EngineError, RunnerConfig, model_files
from modelrunner.testing import load_settings, select_engine
from plugins.llamacpp.tests.llamacpp_helpers import make_bundle

from modelrunner_llamacpp import build
from modelrunner_llamacpp.engine import LlamaCppEngine


def test_registered_through_the_entry_point():
    eps = [ep for ep in importlib.metadata.entry_points(group="modelrunner")
           if ep.name == "llamacpp"]
    assert eps, "pip install -e plugins/llamacpp"
    module = eps[0].load()
    registered = []
    module.register_engines(register=registered.append, settings=None)
    [engine] = registered
    assert engine.name == "llama.cpp"
    assert engine.install_hint == "run: modelrunner-llamacpp-build"
    assert engine.formats == ("gguf",)
    assert set(engine.modes) == {"completion", "embedding", "reranking"}
    assert select_engine({"llama.cpp": engine}, "gguf") is engine


def test_installed_reports_version_and_path(engine, llama_server):
    ok, details = engine.installed()
    assert ok and details.startswith("llama-server ") and " at /" in details


def test_installed_false_names_the_build_command(monkeypatch, tmp_path):
    monkeypatch.setenv("MODELRUNNER_LLAMA_SERVER_PATH", str(tmp_path / "nowhere"))
    ok, details = LlamaCppEngine(settings=load_settings()).installed()
    assert not ok and details == "run: modelrunner-llamacpp-build"


def _fake_binary(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_binary_resolution_order(monkeypatch, tmp_path):
    """Setting/env, then the binary shipped in the package, then the cache, then PATH."""
    for var in ("MODELRUNNER_LLAMA_SERVER_PATH", "LLAMA_SERVER_PATH", "CMAKE_ARGS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MODELRUNNER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(build, "cuda_available", lambda: False)
    monkeypatch.setattr(build, "shipped_binary", lambda: tmp_path / "pkg" / "bin" / "llama-server")
    on_path = _fake_binary(tmp_path / "pathdir" / "llama-server")
    monkeypatch.setenv("PATH", f"{on_path.parent}{os.pathsep}/usr/bin:/bin")
    assert build.find_llama_server() == on_path

    cached = _fake_binary(tmp_path / "cache" / "llama-server" / build.LLAMA_CPP_PYTHON_VERSION
                          / "bin" / "llama-server")
    assert build.cached_binary() == cached
    assert build.find_llama_server() == cached

    shipped = _fake_binary(tmp_path / "pkg" / "bin" / "llama-server")
    assert build.find_llama_server() == shipped

    dmr_dir = tmp_path / "dmr"
    dmr = _fake_binary(dmr_dir / "com.docker.llama-server")
    monkeypatch.setenv("LLAMA_SERVER_PATH", str(dmr_dir))  # DMR's name: a directory
    assert build.find_llama_server() == dmr

    ours = _fake_binary(tmp_path / "ours" / "llama-server")
    monkeypatch.setenv("MODELRUNNER_LLAMA_SERVER_PATH", str(ours))
    assert build.find_llama_server() == ours


def test_cmake_args_choose_the_build_and_its_cache_folder(monkeypatch, tmp_path):
    """CMAKE_ARGS as llama-cpp-python's users know it: a GPU build has a cache folder of its own
    (never mistaken for the CPU build), and the user's flags come last, so they win."""
    monkeypatch.setenv("MODELRUNNER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(build, "cuda_available", lambda: False)
    monkeypatch.delenv("CMAKE_ARGS", raising=False)
    cpu = build.cache_dir()
    assert cpu == tmp_path / "llama-server" / build.LLAMA_CPP_PYTHON_VERSION
    monkeypatch.setenv("CMAKE_ARGS", "-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES='86;89'")
    assert build.extra_cmake_args() == ["-DGGML_CUDA=on", "-DCMAKE_CUDA_ARCHITECTURES=86;89"]
    cuda = build.cache_dir()
    assert cuda != cpu and cuda.name.startswith(build.LLAMA_CPP_PYTHON_VERSION + "-")
    flags = build.cmake_flags(extra=build.extra_cmake_args())
    assert flags[-2:] == ["-DGGML_CUDA=on", "-DCMAKE_CUDA_ARCHITECTURES=86;89"]
    assert build.describe_gpu(flags) == "CUDA"
    monkeypatch.setenv("CMAKE_ARGS", "-DGGML_VULKAN=on")
    assert build.cache_dir() not in (cpu, cuda)
    assert build.describe_gpu(build.cmake_flags(extra=["-DGGML_VULKAN=on"])) == "Vulkan"
    # ggml turns Metal on by itself on macOS
    assert build.describe_gpu(build.cmake_flags(), system="Darwin") == "Metal"
    assert build.describe_gpu(build.cmake_flags(extra=["-DGGML_METAL=OFF"]), system="Darwin") \
        == "none"
    assert build.describe_gpu(build.cmake_flags()) == "none" or build.platform.system() == "Darwin"


def test_a_wheel_build_ships_the_finished_build_from_the_cache(monkeypatch, tmp_path):
    """What the wheel build does before setuptools packs: the cached build is copied into the
    package with its build-info.json, and nothing is compiled (no cmake is even looked for)."""
    monkeypatch.setenv("MODELRUNNER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(build, "cuda_available", lambda: False)
    monkeypatch.delenv("CMAKE_ARGS", raising=False)
    cached = _fake_binary(build.cached_binary())
    monkeypatch.setattr(build, "build", lambda **kw: pytest.fail("compiled instead of reusing"))
    shipped = build.ship(tmp_path / "pkg" / "bin")
    assert shipped.read_bytes() == cached.read_bytes() and os.access(shipped, os.X_OK)
    info = build.read_build_info(shipped)
    assert info["llama_cpp_python"] == build.LLAMA_CPP_PYTHON_VERSION
    assert info["cmake_args"] == [] and info["gpu"] in ("none", "Metal")


def test_build_is_idempotent_when_cached(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MODELRUNNER_CACHE_DIR", str(tmp_path))
    cached = _fake_binary(build.cached_binary())
    assert build.build() == cached
    assert "nothing to do" in capsys.readouterr().out


def test_build_flags():
    flags = build.cmake_flags(cuda=False)
    for flag in ("-DLLAMA_CURL=OFF", "-DBUILD_SHARED_LIBS=OFF", "-DGGML_NATIVE=ON",
                 "-DCMAKE_BUILD_TYPE=Release"):
        assert flag in flags
    assert "-DGGML_CUDA=ON" not in flags
    assert "-DGGML_CUDA=ON" in build.cmake_flags(cuda=True)


def _argv(engine, bundle, config, sock="/tmp/x.sock"):
    return engine.runner_command(bundle, config, sock).argv


def _value(argv, flag):
    return argv[argv.index(flag) + 1]


def test_runner_command_completion(engine, llama_server, tiny_gguf, tmp_path):
    bundle = make_bundle(tmp_path, tiny_gguf, {"format": "gguf", "context_size": 256},
                         extra_files=[("template.jinja", "{{ messages }}")])
    cmd = engine.runner_command(bundle, RunnerConfig(), "/tmp/r.sock")
    argv = cmd.argv
    assert argv[0].endswith("llama-server")
    assert _value(argv, "--model") == str(tmp_path / "model" / "model.gguf")
    assert _value(argv, "--host") == "/tmp/r.sock"
    assert "--metrics" in argv and "--jinja" in argv and "--cont-batching" in argv
    assert _value(argv, "--chat-template-file") == str(tmp_path / "model" / "template.jinja")
    assert "--embeddings" not in argv
    # each of the 4 slots gets the whole configured context
    assert _value(argv, "--parallel") == "4"
    assert _value(argv, "--ctx-size") == str(256 * 4)
    assert _value(argv, "--kv-unified-per-slot") == "256"
    assert int(_value(argv, "--threads")) >= 1
    assert "-ngl" not in argv  # CPU build here; a GPU build adds -ngl 999
    assert cmd.health_path == "/health"


def test_runner_command_modes_and_context(engine, llama_server, tiny_gguf, tmp_path):
    bundle = make_bundle(tmp_path, tiny_gguf, {"format": "gguf"},
                         extra_files=[("template.jinja", "x")])
    emb = _argv(engine, bundle, RunnerConfig(mode="embedding", context_size=128))
    assert "--embeddings" in emb and "--reranking" not in emb
    assert "--chat-template-file" not in emb
    assert _value(emb, "--ctx-size") == "512"
    rerank = _argv(engine, bundle, RunnerConfig(mode="reranking"))
    assert "--embeddings" in rerank and "--reranking" in rerank
    assert "--ctx-size" not in rerank  # no context anywhere: the model's own, as in DMR
    with pytest.raises(EngineError):
        _argv(engine, bundle, RunnerConfig(mode="image-generation"))


def test_runtime_flags_pass_through_last(engine, llama_server, tiny_gguf, tmp_path):
    bundle = make_bundle(tmp_path, tiny_gguf, {"format": "gguf", "context_size": 256})
    argv = _argv(engine, bundle, RunnerConfig(runtime_flags=[
        "--temp", "0.2", "--seed=-1", "-np", "2", "--ctx-size", "512", "--flash-attn", "off"]))
    assert argv[-6:] == ["--temp", "0.2", "--seed", "-1", "--flash-attn", "off"]
    # --parallel and --ctx-size mean slots and per-request context, as the settings do
    assert _value(argv, "--parallel") == "2" and argv.count("--parallel") == 1
    assert _value(argv, "--ctx-size") == "1024" and argv.count("--ctx-size") == 1


@pytest.mark.parametrize("flags", [
    ["--model", "x.gguf"], ["--host", "0.0.0.0"], ["--mmproj", "p"], ["--chat-template-file", "t"],
    ["--embeddings"], ["--api-key", "k"], ["--slot-save-path", "tmp"], ["--log-file", "x"],
    ["--temp", "/etc/passwd"], ["--temp", "..\\x"], ["--temp=--model"], ["--lora", "a"],
    ["-m", "x"], [3],
])
def test_runtime_flags_rejected(engine, tiny_gguf, tmp_path, flags):
    bundle = make_bundle(tmp_path, tiny_gguf)
    with pytest.raises(EngineError) as err:
        engine.runner_command(bundle, RunnerConfig(runtime_flags=flags), "/tmp/x.sock")
    assert err.value.status == 400


def test_runtime_flags_allowed(engine):
    engine.validate_runtime_flags(["--temp", "0.7", "--top-k", "40", "-ngl", "0", "--seed", "-1",
                                   "--cache-type-k", "q8_0", "--reasoning-budget=0", "-fa", "on",
                                   "--no-mmap", "--mlock", "--ubatch-size", "256"])
    for flag in engine.runtime_flags:
        assert flag not in {"--model", "-m", "--host", "--port", "--mmproj",
                            "--chat-template-file", "--embeddings", "--reranking"}


def test_no_gguf_is_an_error(engine, tmp_path):
    (tmp_path / "model").mkdir()
    from modelrunner import Bundle
    with pytest.raises(EngineError):
        engine.runner_command(Bundle("m", tmp_path, {"format": "gguf"}), RunnerConfig(), "/s")


def test_estimate_reads_metadata_from_config_or_file(engine, tiny_gguf, tmp_path):
    meta = model_files.read_gguf(tiny_gguf)["gguf"]
    assert meta["llama.block_count"] == "2" and meta["llama.embedding_length"] == "64"
    from_file = make_bundle(tmp_path / "a", tiny_gguf, {"format": "gguf", "context_size": 256})
    from_config = make_bundle(tmp_path / "b", tiny_gguf,
                              {"format": "gguf", "context_size": 256, "gguf": {
                                  "general.architecture": "llama", "llama.block_count": "2",
                                  "llama.embedding_length": "64",
                                  "llama.attention.head_count": "4",
                                  "llama.attention.head_count_kv": "2",
                                  "llama.context_length": "256", "llama.vocab_size": "320"}})
    config = RunnerConfig()
    a, b = engine.estimate_memory(from_file, config), engine.estimate_memory(from_config, config)
    assert a == b
    # KV: 2 layers * (2 kv heads * 16 dims) * (K+V) * 2 bytes * 4 slots * 256 tokens
    kv = 2 * 2 * 16 * 2 * 2 * 4 * 256
    weights = tiny_gguf.stat().st_size
    assert a > weights + kv
    bigger = engine.estimate_memory(from_file, RunnerConfig(context_size=512))
    assert bigger - a == kv  # doubling the context doubles the KV cache
