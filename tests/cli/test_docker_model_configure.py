"""`docker model configure` for a thinking model and a vLLM model, through the real `docker`
client against a real server: what a user sets is what the engine is started with.

The llama.cpp runner is real (the tiny random GGUF, which loads in a second); its command line is
read from /proc. The vLLM model is a hand-written safetensors folder: configuring it starts
nothing, and the vLLM argv it leads to is tested in plugins/vllm/tests.
"""

import json
import struct
from pathlib import Path

import httpx
import pytest

from modelrunner.testing import Server

HEADERS = {"Host": "127.0.0.1", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def own_server(tmp_path_factory, tiny_gguf):
    root = tmp_path_factory.mktemp("configure")
    srv = Server(root / "models").start()
    srv.package(tiny_gguf, "ai/thinker")
    srv.model("package", "--safetensors-dir", str(write_safetensors_dir(root / "st")), "ai/st")
    yield srv
    srv.stop()


def write_safetensors_dir(folder):
    """The smallest Hugging Face folder `model package --safetensors-dir` takes: config.json and
    one safetensors file holding one f32 tensor."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(
        {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
         "max_position_embeddings": 512}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header
                                               + struct.pack("<2f", 1.0, 2.0))
    return folder


def test_think_false_starts_llama_server_with_no_thinking_budget(docker_cli, own_server):
    env = own_server.env
    docker_cli.run("model", "configure", "--think=false", "ai/thinker", env=env)
    argv = own_server.runner_argv("ai/thinker")
    assert argv[argv.index("--reasoning-budget") + 1] == "0"

    # --think again, and the idle runner is restarted with an unlimited budget
    out = docker_cli.run("model", "configure", "--think", "ai/thinker", env=env).stdout
    assert '"reasoning-budget": -1' in out
    argv = own_server.runner_argv("ai/thinker")
    assert argv[argv.index("--reasoning-budget") + 1] == "-1"

    docker_cli.run("model", "config", "--reasoning-budget", "64", "ai/thinker", env=env)
    shown = json.loads(docker_cli.run("model", "configure", "show", "ai/thinker", env=env).stdout)
    assert shown[0]["Config"]["extra"]["llamacpp"] == {"reasoning-budget": 64}


def test_a_bad_reasoning_budget_is_a_400_and_changes_nothing(own_server):
    before = httpx.get(own_server.url + "/engines/_configure", timeout=30).json()
    for bad in ("lots", -5, 2.5):
        resp = httpx.post(own_server.url + "/engines/_configure", headers=HEADERS, timeout=30,
                          json={"model": "ai/thinker", "llamacpp": {"reasoning-budget": bad}})
        assert resp.status_code == 400 and "reasoning-budget" in resp.text
    assert httpx.get(own_server.url + "/engines/_configure", timeout=30).json() == before


def test_vllm_overrides_and_gpu_share_are_kept_for_the_runner(docker_cli, own_server):
    env = own_server.env
    docker_cli.run("model", "configure", "--hf_overrides", '{"rope_theta": 500000}',
                   "ai/st", env=env)
    docker_cli.run("model", "configure", "--gpu-memory-utilization", "0.6", "ai/st", env=env)
    [shown] = json.loads(docker_cli.run("model", "configure", "show", "ai/st", env=env).stdout)
    assert shown["Backend"] == "vllm"
    assert shown["Config"]["extra"]["vllm"] == {"hf-overrides": {"rope_theta": 500000},
                                               "gpu-memory-utilization": 0.6}


@pytest.mark.parametrize("args, says", [
    (["--hf_overrides", '{"tokenizer": "../../secrets"}'], "may not name a path"),
    (["--hf_overrides", "[1]"], "JSON object"),
    (["--hf_overrides", "{not json"], "not JSON"),
    (["--gpu-memory-utilization", "1.5"], "(0, 1]"),
])
def test_bad_vllm_options_are_refused_with_a_clear_message(docker_cli, own_server, args, says):
    result = docker_cli.run("model", "configure", *args, "ai/st", env=own_server.env, check=False)
    assert result.returncode == 1 and says in result.stderr


def test_a_draft_model_starts_llama_server_with_speculative_decoding(docker_cli, own_server,
                                                                     tiny_gguf):
    own_server.package(tiny_gguf, "ai/draft")
    docker_cli.run("model", "configure", "--speculative-draft-model", "ai/draft",
                   "--speculative-num-tokens", "4", "--speculative-min-acceptance-rate", "0.5",
                   "ai/thinker", env=own_server.env)
    argv = own_server.runner_argv("ai/thinker")
    draft = Path(argv[argv.index("--model-draft") + 1])
    assert "bundles" in draft.parts and draft.read_bytes()[:4] == b"GGUF"
    assert argv[argv.index("--spec-draft-n-max") + 1] == "4"
    assert argv[argv.index("--spec-draft-p-min") + 1] == "0.5"


def test_a_draft_model_that_is_not_there_or_bad_numbers_are_refused_at_configure(own_server):
    before = httpx.get(own_server.url + "/engines/_configure", timeout=30).json()
    missing = httpx.post(own_server.url + "/engines/_configure", headers=HEADERS, timeout=30,
                         json={"model": "ai/thinker", "speculative": {"draft_model": "ai/nope"}})
    assert missing.status_code == 404 and "ai/nope" in missing.text
    for bad in ({"num_tokens": -1}, {"num_tokens": "4"}, {"min_acceptance_rate": 2}):
        resp = httpx.post(own_server.url + "/engines/_configure", headers=HEADERS, timeout=30,
                          json={"model": "ai/thinker", "speculative": bad})
        assert resp.status_code == 400, (bad, resp.text)
    assert httpx.get(own_server.url + "/engines/_configure", timeout=30).json() == before
