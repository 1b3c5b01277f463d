"""The Diffusers runner on a TCP address (placed on another machine, e.g. by the Ray plugin):
only the holder of its API key gets images; without a key it will not listen at all."""

import base64
import os
import socket
import subprocess
import sys
import time

import httpx

from modelrunner_diffusers.engine import DiffusersEngine
from modelrunner_diffusers.runner import API_KEY_ENV


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def runner(model, port, env):
    return subprocess.Popen(
        [sys.executable, "-m", "modelrunner_diffusers.runner", "--model", str(model),
         "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--steps", "2",
         "--threads", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_an_image_runner_on_the_network_answers_only_its_key_holder(tiny_sd_dir):
    assert API_KEY_ENV == DiffusersEngine.api_key_env  # the engine puts the key where the runner reads it
    port, key = free_port(), "the-schedulers-secret"
    process = runner(tiny_sd_dir, port, {**os.environ, API_KEY_ENV: key})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read()
            try:
                if httpx.get(url + "/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        body = {"prompt": "a red square", "size": "64x64", "seed": 1}
        refused = httpx.post(url + "/v1/images/generations", json=body, timeout=60)
        assert refused.status_code == 401
        assert refused.json()["error"]["type"] == "authentication_error"
        wrong = httpx.post(url + "/v1/images/generations", json=body, timeout=60,
                           headers={"Authorization": "Bearer guess"})
        assert wrong.status_code == 401
        assert httpx.get(url + "/v1/models", timeout=30).status_code == 401

        answer = httpx.post(url + "/v1/images/generations", json=body, timeout=300,
                            headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200
        assert base64.b64decode(answer.json()["data"][0]["b64_json"]).startswith(b"\x89PNG")
    finally:
        process.terminate()
        process.wait(30)


def test_an_image_runner_without_a_key_refuses_to_listen_on_the_network(tiny_sd_dir):
    env = {k: v for k, v in os.environ.items() if k != API_KEY_ENV}
    port = free_port()
    process = runner(tiny_sd_dir, port, env)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "without an API key" in output
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing listens there
