"""The runner is simply there: `model run` (and `pull`, `package`) start a server on this machine
when none answers, `model start-runner`/`stop-runner`/`restart-runner` (DMR's names, also as
`docker model ...`) manage it, and a stop leaves no process behind.

Every server here is a real `model serve` (gunicorn, its worker, the scheduler daemon, a real
llama-server for the tiny GGUF) on a free port with its own store; whatever a test leaves running
is stopped by the fixture.
"""

import os
import subprocess
import sys
import time

import httpx
import pytest

from modelrunner.cli.launch import forget, recorded_spec
from modelrunner.cli.processes import alive, family, find_server, stop_server
from modelrunner.testing import free_port
from modelrunner.testing.tiny_gguf import write_tiny_llama_gguf


class Machine:
    """A shell on this machine whose MODEL_RUNNER_HOST is a free local port and whose store is
    its own; ``model(...)`` runs the CLI there."""

    def __init__(self, root):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.models_path = root / "models"
        self.env = {name: value for name, value in os.environ.items()
                    if name not in ("MODELRUNNER_AUTOSTART", "MODELRUNNER_PORT")}
        self.env.update(MODELS_PATH=str(self.models_path), MODEL_RUNNER_HOST=self.url)
        self.gguf = write_tiny_llama_gguf(root / "tiny.gguf")

    def model(self, *args, env=None, check=True):
        result = subprocess.run([sys.executable, "-m", "modelrunner.cli", *args],
                                env=env or self.env, capture_output=True, text=True, timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"model {' '.join(args)} failed: {result.stderr}{result.stdout}")
        return result

    def answers(self):
        try:
            return httpx.get(self.url + "/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def processes(self):
        master, _ = find_server(self.port)
        return family(master) if master else None


@pytest.fixture
def machine(tmp_path):
    machine = Machine(tmp_path)
    yield machine
    master, _ = find_server(machine.port)
    if master:
        stop_server(master)
    forget(machine.port)


def chat(machine, model="ai/tiny"):
    return httpx.post(machine.url + "/engines/v1/chat/completions", timeout=120, json={
        "model": model, "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]})


def test_start_runner_starts_a_server_once_and_stop_runner_leaves_nothing_behind(machine):
    started = machine.model("start-runner")
    assert started.stdout.startswith(f"modelrunner is serving at {machine.url} (pid ")
    assert machine.answers()
    again = machine.model("start-runner")
    assert again.stdout.strip() == f"modelrunner is already running at {machine.url}"

    machine.model("package", "--gguf", str(machine.gguf), "ai/tiny")
    assert chat(machine).status_code == 200  # loads a llama-server runner
    roles = machine.processes()
    assert roles["workers"] and roles["scheduler"] and len(roles["runners"]) == 1
    everything = [pid for pids in roles.values() for pid in pids]

    stopped = machine.model("stop-runner")
    assert stopped.stdout.strip() == (f"Stopped modelrunner at {machine.url}: pid "
                                      f"{roles['master'][0]} and its scheduler, 1 worker, 1 runner")
    assert [pid for pid in everything if alive(pid)] == []
    assert not machine.answers() and find_server(machine.port) == (None, None)
    assert recorded_spec(machine.port) is None
    assert machine.model("stop-runner").stdout.strip() == \
        f"modelrunner is not running at {machine.url}; nothing to stop"


def test_start_runner_takes_any_engine_an_installed_plugin_provides(machine):
    """DMR's --backend picks the engine's container; here every installed engine runs in the one
    server, so the name is checked against the installed plugins' engines (this one is the
    third-party example's), never against a list of the CLI's own."""
    started = machine.model("start-runner", "--backend", "llama-cpp-python")
    assert started.stdout.startswith(f"modelrunner is serving at {machine.url} (pid ")
    machine.model("stop-runner")
    assert not machine.answers()


def test_a_started_server_is_recorded_with_the_installed_engines_variables(machine):
    """restart-runner brings back what configured the engines too: the variables of the prefixes
    the installed engines declare (learned from the plugins), never a secret among them."""
    env = dict(machine.env, VLLM_LOGGING_LEVEL="INFO", LLAMA_ARG_THREADS="2",
               LLAMA_API_KEY="not-to-be-written")
    machine.model("start-runner", env=env)
    recorded = recorded_spec(machine.port)["env"]
    assert recorded["VLLM_LOGGING_LEVEL"] == "INFO" and recorded["LLAMA_ARG_THREADS"] == "2"
    assert "LLAMA_API_KEY" not in recorded
    machine.model("stop-runner")


def test_model_run_starts_the_server_when_none_answers_on_this_machine(machine):
    packaged = machine.model("package", "--gguf", str(machine.gguf), "ai/tiny")
    assert f"modelrunner is not running at {machine.url}; starting it" in packaged.stderr
    machine.model("stop-runner")
    assert not machine.answers()

    ran = machine.model("run", "ai/tiny", "Hi", "--max-tokens", "4")
    assert ran.stderr.splitlines()[0] == f"modelrunner is not running at {machine.url}; starting it"
    assert "`model stop-runner` stops it" in ran.stderr
    assert machine.answers()  # detached: the server outlives the command, as DMR's does
    assert machine.model("run", "ai/tiny", "Hi", "--max-tokens", "4").stderr == ""


def test_restart_runner_brings_back_the_same_store_and_workers_from_any_shell(machine):
    machine.model("serve", "--detach", "--workers", "2", "--port", str(machine.port))
    machine.model("package", "--gguf", str(machine.gguf), "ai/tiny")
    before = machine.processes()
    assert len(before["workers"]) == 2

    elsewhere = {k: v for k, v in machine.env.items() if k != "MODELS_PATH"}  # another shell
    restarted = machine.model("restart-runner", env=elsewhere)
    lines = restarted.stdout.splitlines()
    assert lines[0].startswith(f"Stopped modelrunner at {machine.url}: pid {before['master'][0]}")
    assert lines[1].startswith(f"modelrunner is serving at {machine.url} (pid ")
    after = machine.processes()
    assert after["master"] != before["master"] and len(after["workers"]) == 2
    assert not any(alive(pid) for pid in before["master"] + before["workers"])
    assert "tiny" in machine.model("ls", env=elsewhere).stdout  # the same store


def test_a_server_on_another_machine_is_never_started_nor_stopped(machine):
    env = dict(machine.env, MODEL_RUNNER_HOST="http://nonexistent.invalid:12434")
    ran = machine.model("run", "ai/tiny", "Hi", env=env, check=False)
    assert ran.returncode == 1
    assert ran.stderr.strip() == (
        "Error: modelrunner is not running at http://nonexistent.invalid:12434 (MODEL_RUNNER_HOST "
        "names another machine: start modelrunner there; `model` starts a server only on this one)")
    for command in ("start-runner", "stop-runner", "restart-runner"):
        result = machine.model(command, env=env, check=False)
        assert result.returncode == 1
        assert "another machine" in result.stderr
    assert not machine.answers()


@pytest.mark.parametrize("argv, reason", [
    (("start-runner", "--gpu", "cuda"), "--gpu cuda: modelrunner uses the accelerator its engines "
                                        "were built for"),
    (("start-runner", "--backend", "mlx"), "--backend mlx: no installed plugin provides that "
                                           "engine (installed: "),
    (("start-runner", "--tls-port", "12444"), "--tls-port is not supported"),
    (("restart-runner", "--llama-server-version", "b1"), "--llama-server-version is not supported"),
    (("stop-runner", "--models"), "`model purge` removes every model"),
], ids=["gpu-cuda", "backend-mlx", "tls-port", "llama-server-version", "stop-models"])
def test_dmr_flags_that_make_no_sense_here_are_refused_with_the_reason(machine, argv, reason):
    result = machine.model(*argv, check=False)
    assert result.returncode != 0
    assert reason in result.stderr
    assert not machine.answers()


def test_docker_model_start_restart_and_stop_runner(machine, docker_cli):
    out = docker_cli.run("model", "start-runner", "--do-not-track", env=machine.env).stdout
    assert out.startswith(f"modelrunner is serving at {machine.url}")
    assert recorded_spec(machine.port)["env"]["DO_NOT_TRACK"] == "1"
    out = docker_cli.run("model", "restart-runner", env=machine.env).stdout
    assert "Stopped modelrunner" in out and "modelrunner is serving at" in out
    assert recorded_spec(machine.port)["env"]["DO_NOT_TRACK"] == "1"  # the same settings
    master = machine.processes()["master"][0]
    out = docker_cli.run("model", "stop-runner", env=machine.env).stdout
    assert out.startswith(f"Stopped modelrunner at {machine.url}: pid {master}")
    assert not machine.answers() and not alive(master)


def test_stop_runner_never_stops_a_process_that_only_mentions_gunicorn_and_modelrunner(machine):
    """Another program of this user listening on the port is left alone, whatever its argv."""
    listener = subprocess.Popen([sys.executable, "-c", (
        "import socket, sys, time; s = socket.socket(); "
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
        f"s.bind(('127.0.0.1', {machine.port})); s.listen(); time.sleep(120)"),
        "/srv/gunicorn-notes/not-modelrunner.txt"])
    try:
        for _ in range(50):
            if find_server(machine.port) != (None, None):
                break
            time.sleep(0.1)
        assert find_server(machine.port) == (None, listener.pid)
        result = machine.model("stop-runner", check=False)
        assert result.returncode != 0 and "not a modelrunner server" in result.stderr
        assert listener.poll() is None
    finally:
        listener.kill()
        listener.wait()
