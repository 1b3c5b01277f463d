"""Runners placed on a two-node Ray cluster: what a user relies on when they scale out.

Real parts: a Ray cluster of two nodes on this machine (conftest), a real server, llama-server
on the real SmolLM2 weights, the official openai client.
"""

import base64
import hashlib
import json
import os
import signal
import time

import httpx
import openai
import pytest

from modelrunner import RunnerConfig
from modelrunner.testing import (FilesystemStore, Server, add_to_store, load_settings, process_gone,
                                 write_small_gguf)
from modelrunner_llamacpp.engine import LlamaCppEngine

from plugins.ray.tests.ray_helpers import server_env

CHAT = "/engines/v1/chat/completions"


def ps(server):
    return httpx.get(server.url + "/engines/ps", timeout=30).json()


def row(server, name):
    return next(r for r in ps(server) if name in r["model_name"])


@pytest.fixture(scope="module")
def placed(ray_cluster, tmp_path_factory, smollm2, tiny_gguf):
    """A server placing runners on the cluster: SmolLM2 labelled for node "a", each node's
    budget one byte short of SmolLM2 and the tiny model together."""
    tmp = tmp_path_factory.mktemp("ray")
    models = tmp / "models"
    store = FilesystemStore(models)
    smol = add_to_store(store, smollm2, ["ai/smollm2"], context_size=1024)
    tiny = add_to_store(store, tiny_gguf, ["ai/tiny"], context_size=256)
    add_to_store(store, write_small_gguf(tmp / "nowhere.gguf"), ["ai/nowhere"])
    engine = LlamaCppEngine(settings=load_settings(models_path=str(models)))
    estimate = {m.tags[0]: engine.estimate_memory(store.bundle(m), RunnerConfig(
        context_size=m.inner_config.get("context_size"))) for m in (smol, tiny)}
    budget = sum(estimate.values()) - 1
    server = Server(models, env=server_env(
        tmp, ray_cluster, ray_node_memory=str(budget),
        ray_node_labels={"ai/smollm2": "a", "ai/nowhere": "c"}, keep_alive="5m"))
    server.start(timeout=60)
    server.estimate = estimate
    try:
        yield server
    finally:
        server.stop()


def client(server):
    return openai.OpenAI(base_url=server.url + "/engines/v1", api_key="unused", timeout=120)


def test_smollm2_placed_on_its_labelled_node_answers_and_streams_as_before(placed):
    answer = client(placed).chat.completions.create(
        model="ai/smollm2", max_tokens=8, messages=[{"role": "user", "content": "Say hi."}])
    assert answer.choices[0].message.content
    runner = row(placed, "ai/smollm2")
    assert runner["node"] == "a"
    assert runner["address"].startswith("http://127.0.0.1:")
    assert "secret" not in json.dumps(runner)

    chunks = list(client(placed).chat.completions.create(
        model="ai/smollm2", max_tokens=8, stream=True,
        messages=[{"role": "user", "content": "Count to three."}]))
    assert any(c.choices and c.choices[0].delta.content for c in chunks)
    assert chunks[-1].choices == [] or chunks[-1].choices[0].finish_reason
    assert "NODE" in placed.model("ps").stdout


def test_a_model_that_does_not_fit_beside_it_lands_on_the_other_node(placed):
    client(placed).chat.completions.create(
        model="ai/smollm2", max_tokens=1, messages=[{"role": "user", "content": "Hi"}])
    client(placed).completions.create(model="ai/tiny", prompt="a", max_tokens=1)
    nodes = {r["model_name"].split(":")[0].removeprefix("docker.io/"): r["node"] for r in ps(placed)}
    assert nodes["ai/smollm2"] == "a" and nodes["ai/tiny"] != "a"
    assert {r["memory"] for r in ps(placed)} == set(placed.estimate.values())


def test_a_model_whose_node_is_missing_gets_a_503_that_says_where_things_fit(placed):
    response = httpx.post(placed.url + CHAT, timeout=60, json={
        "model": "ai/nowhere", "messages": [{"role": "user", "content": "Hi"}]})
    assert response.status_code == 503
    assert "labelled 'c'" in response.text and "(nodes: a, b)" in response.text


def test_a_request_straight_to_a_runner_without_its_secret_is_refused(placed):
    client(placed).chat.completions.create(
        model="ai/smollm2", max_tokens=1, messages=[{"role": "user", "content": "Hi"}])
    address = row(placed, "ai/smollm2")["address"]
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    assert httpx.post(address + "/v1/chat/completions", json=body, timeout=30).status_code == 401
    wrong = {"Authorization": "Bearer not-the-secret"}
    assert httpx.post(address + "/v1/chat/completions", json=body, headers=wrong,
                      timeout=30).status_code == 401
    # the scheduler's secret is what opens it; it is in the runner's environment, never logged
    runner = row(placed, "ai/smollm2")
    with open(f"/proc/{runner['pid']}/environ", "rb") as f:
        environ = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
    secret = environ[b"LLAMA_API_KEY"].decode()
    right = {"Authorization": f"Bearer {secret}"}
    assert httpx.post(address + "/v1/chat/completions", json=body, headers=right,
                      timeout=60).status_code == 200
    logs = "".join(p.read_text(errors="replace") for p in placed.models_path.rglob("*.log"))
    assert secret not in logs and secret not in json.dumps(ps(placed))


def test_killing_the_runner_mid_stream_ends_the_stream_with_an_error_and_it_is_placed_again(placed):
    body = {"model": "ai/smollm2", "stream": True, "max_tokens": 256, "ignore_eos": True,
            "messages": [{"role": "user", "content": "Tell me a very long story about a fox."}]}
    events, killed = [], None
    with httpx.stream("POST", placed.url + CHAT, json=body,
                      timeout=httpx.Timeout(60, read=30)) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            events.append(line[len("data: "):])
            if killed is None and '"content"' in line:
                killed = row(placed, "ai/smollm2")["pid"]
                os.kill(killed, signal.SIGKILL)
    assert killed is not None, "the stream produced no content before it ended"
    assert events[-1] != "[DONE]"
    assert "error" in json.loads(events[-1]), events[-3:]
    assert process_gone(killed)

    answer = client(placed).chat.completions.create(
        model="ai/smollm2", max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content is not None
    runner = row(placed, "ai/smollm2")
    assert runner["pid"] != killed and runner["node"] == "a"


def test_unload_ends_the_runner_on_its_node_and_frees_the_node_budget(placed):
    client(placed).chat.completions.create(
        model="ai/smollm2", max_tokens=1, messages=[{"role": "user", "content": "Hi"}])
    pids = [r["pid"] for r in ps(placed)]
    assert placed.model("unload", "--all").returncode == 0
    assert all(process_gone(pid) for pid in pids)
    assert ps(placed) == []
    # node "a" holds nothing now: SmolLM2 fits there again, twice in a row
    for _ in range(2):
        client(placed).chat.completions.create(
            model="ai/smollm2", max_tokens=1, messages=[{"role": "user", "content": "Hi"}])
        assert row(placed, "ai/smollm2")["node"] == "a"
        assert placed.model("unload", "ai/smollm2").returncode == 0
        assert ps(placed) == []


def test_a_node_that_does_not_see_the_store_gets_a_verified_private_copy_of_the_model(
        ray_cluster, tmp_path, smollm2):
    """No shared volume: node "b" keeps its own store (ray_models_path), filled through Ray."""
    models, node_store = tmp_path / "models", tmp_path / "node-store"
    add_to_store(FilesystemStore(models), smollm2, ["ai/smollm2"], context_size=1024)
    server = Server(models, env=server_env(tmp_path, ray_cluster, ray_models_path=str(node_store),
                                           ray_node_labels={"ai/smollm2": "b"}))
    server.start(timeout=60)
    try:
        answer = client(server).chat.completions.create(
            model="ai/smollm2", max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
        assert answer.choices[0].message.content is not None

        copies = list(node_store.glob("bundles/sha256/*/model/*.gguf"))
        assert len(copies) == 1
        assert hashlib.sha256(copies[0].read_bytes()).digest() == \
            hashlib.sha256(smollm2.read_bytes()).digest()
        assert copies[0].stat().st_mode & 0o077 == 0 and node_store.stat().st_mode & 0o077 == 0
        assert not list(node_store.rglob("*.partial-*"))
        runner = row(server, "ai/smollm2")
        assert runner["node"] == "b"
        with open(f"/proc/{runner['pid']}/cmdline", "rb") as f:
            assert str(copies[0]).encode() in f.read()  # the runner reads the node's copy

        # the next load on that node finds the copy complete and sends nothing
        mtime = copies[0].stat().st_mtime_ns
        assert server.model("unload", "ai/smollm2").returncode == 0
        client(server).chat.completions.create(
            model="ai/smollm2", max_tokens=1, messages=[{"role": "user", "content": "Hi"}])
        assert copies[0].stat().st_mtime_ns == mtime
    finally:
        server.stop()


def test_an_image_model_placed_on_a_node_answers_the_images_api_behind_its_key(
        ray_cluster, tmp_path, tiny_sd_dir):
    server = Server(tmp_path / "models", env=server_env(
        tmp_path, ray_cluster, ray_node_labels={"ai/tiny-sd": "b"}, diffusers_device="cpu",
        diffusers_steps="2", diffusers_threads="1"))
    server.start(timeout=60)
    try:
        server.model("package", "--safetensors-dir", str(tiny_sd_dir), "ai/tiny-sd")
        images = openai.OpenAI(base_url=server.url + "/engines/v1", api_key="unused",
                               timeout=600, max_retries=0).images.generate(
            model="ai/tiny-sd", prompt="a red square", size="64x64", response_format="b64_json")
        assert base64.b64decode(images.data[0].b64_json).startswith(b"\x89PNG")
        runner = row(server, "ai/tiny-sd")
        assert runner["node"] == "b" and runner["address"].startswith("http://127.0.0.1:")
        body = {"prompt": "x", "size": "64x64"}
        assert httpx.post(runner["address"] + "/v1/images/generations", json=body,
                          timeout=60).status_code == 401
    finally:
        server.stop()


def test_a_ray_cluster_that_does_not_answer_is_a_503_in_bounded_time(tmp_path, smollm2):
    """The Ray address accepts connections and never answers (a hung head): the request gets a
    503 within ray_call_timeout, and the scheduler answers other calls meanwhile and after (no
    Ray call holds its lock for good)."""
    import socket
    models = tmp_path / "models"
    add_to_store(FilesystemStore(models), smollm2, ["ai/smollm2"], context_size=1024)
    with socket.socket() as black_hole:
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(16)  # never accepted: every handshake waits
        address = f"127.0.0.1:{black_hole.getsockname()[1]}"
        server = Server(models, env=server_env(tmp_path, (address, "token"), ray_call_timeout="3"))
        server.start(timeout=60)
        try:
            started = time.monotonic()
            response = httpx.post(server.url + CHAT, timeout=120, json={
                "model": "ai/smollm2", "max_tokens": 1,
                "messages": [{"role": "user", "content": "Hi"}]})
            waited = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert "Ray cluster" in response.text
            assert waited < 30, f"the request waited {waited:.0f}s"
            assert ps(server) == []
        finally:
            server.stop()
