"""`docker model package --from MODEL` makes a new model with another context size or chat
template without copying the weights, and the new model runs with what was set (DMR #962: a
repackaged context size that never reached the engine)."""

import json
from pathlib import Path

import httpx
import pytest

from modelrunner.testing import Server

HEADERS = {"Host": "127.0.0.1", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def own_server(tmp_path_factory, tiny_gguf):
    srv = Server(tmp_path_factory.mktemp("package-from") / "models").start()
    srv.package(tiny_gguf, "ai/base")
    yield srv
    srv.stop()


def blobs(server):
    return {p.name for p in (server.models_path / "blobs" / "sha256").iterdir()}


def model(server, name):
    resp = httpx.get(f"{server.url}/models/{name}", timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def layers(server, model_id):
    path = server.models_path / "manifests" / "sha256" / model_id.split(":")[1]
    return json.loads(path.read_bytes())["layers"]


def test_a_new_context_size_shares_the_weights_and_is_what_the_runner_gets(docker_cli, own_server):
    before = blobs(own_server)
    out = docker_cli.run("model", "package", "--from", "ai/base", "--context-size", "1024",
                         "ai/base-1k", env=own_server.env).stdout
    assert "Model packaged as base-1k" in out
    base, made = model(own_server, "ai/base"), model(own_server, "ai/base-1k")
    assert made["config"]["context_size"] == 1024 != base["config"]["context_size"]
    assert made["id"] != base["id"]
    assert layers(own_server, made["id"]) == layers(own_server, base["id"])
    assert len(blobs(own_server) - before) == 1  # the config; the weights were not copied
    argv = own_server.runner_argv("ai/base-1k")
    slots = int(argv[argv.index("--parallel") + 1])
    assert int(argv[argv.index("--ctx-size") + 1]) == 1024 * slots


def test_a_new_chat_template_is_the_one_llama_server_loads(docker_cli, own_server, tmp_path):
    template = tmp_path / "mine.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    before = blobs(own_server)
    docker_cli.run("model", "package", "--from", "ai/base", "--chat-template", str(template),
                   "ai/base-tpl", env=own_server.env)
    assert len(blobs(own_server) - before) == 2  # the config and the template
    argv = own_server.runner_argv("ai/base-tpl")
    loaded = Path(argv[argv.index("--chat-template-file") + 1])
    assert loaded.read_text() == template.read_text()


def test_an_unknown_model_is_404_and_a_bad_body_400_leaving_the_store_sound(own_server):
    url = own_server.url + "/models/{}/repackage"
    before = blobs(own_server)
    resp = httpx.post(url.format("ai/nope"), headers=HEADERS, json={"target": "ai/x",
                                                                    "context_size": 8})
    assert resp.status_code == 404
    for body in ({"context_size": 8}, {"target": "ai/x"}, {"target": "ai/x", "context_size": -3},
                 {"target": "Not A Ref!", "context_size": 8},
                 {"target": "ai/x", "chat_template": ["no"]},
                 # a digest as the name: a pinned ai/x@sha256:... would then find this model
                 {"target": "ai/x@sha256:" + "1" * 64, "context_size": 8}):
        resp = httpx.post(url.format("ai/base"), headers=HEADERS, json=body)
        assert resp.status_code == 400, (body, resp.text)
    assert blobs(own_server) == before
    assert not any("ai/x" in t for m in httpx.get(own_server.url + "/models").json()
                   for t in m["tags"])
    fsck = httpx.post(own_server.url + "/models/fsck", headers=HEADERS, json={}, timeout=60)
    assert fsck.json()["ok"] is True, fsck.json()


def test_package_from_refuses_weights_and_wants_a_change(docker_cli, own_server, tiny_gguf):
    env = own_server.env
    result = docker_cli.run("model", "package", "--from", "ai/base", "--gguf", str(tiny_gguf),
                            "ai/y", env=env, check=False)
    assert result.returncode == 1 and "--from takes only" in result.stderr
    result = docker_cli.run("model", "package", "--from", "ai/base", "ai/y", env=env, check=False)
    assert result.returncode == 1 and "--context-size and/or --chat-template" in result.stderr
