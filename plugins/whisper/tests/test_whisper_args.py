"""whisper-server's command line, built without starting anything (args.py)."""

import pytest

from modelrunner import EngineError
from modelrunner.testing import load_settings
from modelrunner_whisper.args import build_argv
from modelrunner_whisper.engine import WhisperEngine


def test_the_runner_listens_on_the_schedulers_socket_with_the_model():
    argv = build_argv("/bin/whisper-server", "/m/ggml-tiny.en.bin", "unix:///run/runner-1.sock")
    assert argv == ["/bin/whisper-server", "-m", "/m/ggml-tiny.en.bin",
                    "--host", "/run/runner-1.sock"]


def test_threads_gpu_and_configured_flags_come_in_that_order():
    argv = build_argv("w", "m.bin", "unix:///r.sock", ["--beam-size", "5"], threads=3, gpu=False)
    assert argv[5:] == ["--threads", "3", "--no-gpu", "--beam-size", "5"]


def test_a_runner_on_another_machine_listens_on_its_host_and_port():
    assert build_argv("w", "m.bin", "http://10.0.0.2:8123")[3:] == [
        "--host", "10.0.0.2", "--port", "8123"]


def test_a_socket_whisper_server_would_take_for_a_host_name_is_refused():
    with pytest.raises(EngineError, match="ends in .sock"):
        build_argv("w", "m.bin", "unix:///run/runner-1")


def test_only_allow_listed_runtime_flags_pass():
    engine = WhisperEngine(load_settings())
    engine.validate_runtime_flags(["--beam-size", "5", "--no-fallback"])
    with pytest.raises(EngineError, match="not allowed"):
        engine.validate_runtime_flags(["--public", "x"])   # serves a folder's files
    with pytest.raises(EngineError, match="path"):
        engine.validate_runtime_flags(["--threads", "../4"])
