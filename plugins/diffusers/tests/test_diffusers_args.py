"""The diffusers runner's command line from the engine's settings: a pure function (args.py), no
torch, nothing started. What each setting means is in the README."""

import pytest

from modelrunner import EngineError

from modelrunner_diffusers.args import build_argv


def value(argv, flag):
    assert argv.count(flag) == 1, argv
    return argv[argv.index(flag) + 1]


@pytest.mark.parametrize("address, expected", [
    ("unix:///run/r.sock", ["--socket", "/run/r.sock"]),
    ("/run/r.sock", ["--socket", "/run/r.sock"]),
    ("http://10.0.0.5:8000", ["--host", "10.0.0.5", "--port", "8000"]),
])
def test_the_runner_loads_the_pipeline_where_the_scheduler_says(address, expected):
    argv = build_argv("/venv/bin/python", "/m/model", address)
    assert argv[:5] == ["/venv/bin/python", "-m", "modelrunner_diffusers.runner", "--model",
                        "/m/model"]
    assert argv[5:5 + len(expected)] == expected


def test_an_address_no_runner_can_listen_on_is_the_schedulers_error():
    with pytest.raises(EngineError, match="cannot listen") as caught:
        build_argv("python", "/m/model", "ftp://x")
    assert caught.value.status == 500


def test_device_dtype_steps_scale_and_threads_from_the_settings():
    argv = build_argv("python", "/m/x.dduf", "/s", device="cuda:1", dtype="float16", steps=4,
                      max_scale=1.5, threads=2)
    assert value(argv, "--device") == "cuda:1" and value(argv, "--dtype") == "float16"
    assert value(argv, "--steps") == "4" and value(argv, "--max-scale") == "1.5"
    assert value(argv, "--threads") == "2"
    # auto is the runner's to resolve (it imports torch); 0 threads leaves torch its default
    argv = build_argv("python", "/m/x.dduf", "/s")
    assert value(argv, "--device") == "auto" and value(argv, "--dtype") == "auto"
    assert "--threads" not in argv
