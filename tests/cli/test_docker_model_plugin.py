"""A Docker user types `docker model ...` and the docker-model plugin runs it against modelrunner.

Every call goes through the real `docker` client, which finds the plugin in DOCKER_CONFIG, asks
its metadata and runs it; no Docker engine is running.
"""

import json
import os
import subprocess

import pytest

from modelrunner.testing import Server


def test_install_docker_plugin_links_the_script_into_cli_plugins(docker_cli):
    link = docker_cli.plugin_path
    assert link.is_symlink() and os.access(link, os.X_OK)
    meta = json.loads(docker_cli.plugin("docker-cli-plugin-metadata").stdout)
    assert meta["SchemaVersion"] == "0.1.0" and meta["Vendor"] == "modelrunner"
    assert meta["ShortDescription"] == "Docker Model Runner (modelrunner)"


def test_docker_lists_the_plugin_and_its_help_needs_no_engine(docker_cli):
    top = docker_cli.run("--help").stdout
    assert "Docker Model Runner (modelrunner)" in top
    help_text = docker_cli.run("model", "--help").stdout
    assert "Usage: docker model" in help_text
    for command in ("pull", "ls", "status", "configure", "purge", "show", "stop", "config"):
        assert f"  {command} " in help_text
    assert "  compose " not in help_text  # hidden, as in DMR: Compose calls it, people do not


def test_docker_model_version_and_status_json(docker_cli, server):
    out = docker_cli.run("model", "version", env=server.env).stdout
    assert "Server: modelrunner" in out
    status = json.loads(docker_cli.run("model", "status", "--json", env=server.env).stdout)
    assert status["running"] is True
    assert status["endpoint"] == f"{server.url}/v1/" == status["endpointHost"]
    assert status["kind"] == "Docker Engine (Manual Install)"
    assert any(text.startswith("Running") for text in status["backends"].values())


def test_status_json_says_not_running_when_nothing_answers(docker_cli, server):
    env = dict(server.env, MODEL_RUNNER_HOST="http://127.0.0.1:9")
    result = docker_cli.run("model", "status", "--json", env=env, check=False)
    assert result.returncode == 1
    assert json.loads(result.stdout)["running"] is False


def test_ls_inspect_show_and_df_through_docker(docker_cli, server):
    env = server.env
    assert "smollm2" in docker_cli.run("model", "ls", env=env).stdout
    models = json.loads(docker_cli.run("model", "ls", "--json", env=env).stdout)
    assert any("docker.io/ai/smollm2:latest" in m["tags"] for m in models)
    openai = json.loads(docker_cli.run("model", "ls", "--openai", env=env).stdout)
    assert openai["object"] == "list"
    assert any(m["id"].endswith("smollm2:latest") for m in openai["data"])
    one = json.loads(docker_cli.run("model", "inspect", "ai/smollm2", env=env).stdout)
    assert one["config"]["architecture"] == "llama"
    oa = json.loads(docker_cli.run("model", "inspect", "--openai", "ai/smollm2", env=env).stdout)
    assert oa["object"] == "model" and oa["dmr"]["architecture"] == "llama"
    shown = docker_cli.run("model", "show", "ai/smollm2", env=env).stdout
    assert shown.startswith(f"Model:       {one['id']}")
    assert "Architecture: llama" in shown and "GGUF Metadata:" in shown
    assert "Models" in docker_cli.run("model", "df", env=env).stdout


def test_inspect_remote_reaches_the_remote_route(docker_cli, server):
    result = docker_cli.run("model", "inspect", "-r", "ai/smollm2", env=server.env, check=False)
    # the server answers 501 for remote inspect today; the CLI must ask for it, not the store
    assert result.returncode == 1 and "remote" in result.stderr


def test_configure_and_its_config_alias_persist_a_context_size(docker_cli, server):
    env = server.env
    docker_cli.run("model", "configure", "--context-size", "2048", "ai/smollm2", env=env)
    shown = json.loads(docker_cli.run("model", "configure", "show", "ai/smollm2", env=env).stdout)
    assert shown[0]["Config"]["context_size"] == 2048
    docker_cli.run("model", "config", "--context-size", "4096", "ai/smollm2", "--", "--temp", "0",
                   env=env)
    shown = json.loads(docker_cli.run("model", "configure", "show", "ai/smollm2", env=env).stdout)
    assert shown[0]["Config"]["context_size"] == 4096
    assert shown[0]["Config"]["runtime_flags"] == ["--temp", "0"]


def test_run_ps_requests_logs_and_stop(docker_cli, server):
    env = server.env
    answer = docker_cli.run("model", "run", "ai/smollm2", "Say hello.", env=env).stdout
    assert answer.strip()
    assert "smollm2" in docker_cli.run("model", "ps", env=env).stdout
    assert "smollm2" in docker_cli.run("model", "requests", env=env).stdout
    docker_cli.run("model", "logs", "-n", "5", env=env)
    assert "Unloaded 1 model(s)" in docker_cli.run("model", "stop", "ai/smollm2", env=env).stdout
    assert "smollm2" not in docker_cli.run("model", "ps", env=env).stdout
    docker_cli.run("model", "run", "ai/smollm2", "Hi", env=env)
    assert "Unloaded 1" in docker_cli.run("model", "unload", "ai/smollm2", env=env).stdout


def test_package_tag_push_rm_and_pull_through_a_registry(docker_cli, server, smollm2, registry):
    env = server.env
    name = f"{registry.host}/tests/smollm2-docker:v1"
    docker_cli.run("model", "package", "--gguf", str(smollm2), "ai/smollm2-docker", env=env)
    docker_cli.run("model", "tag", "ai/smollm2-docker", name, env=env)
    docker_cli.run("model", "push", name, env=env)
    out = docker_cli.run("model", "rm", name, "ai/smollm2-docker", env=env).stdout
    assert "Untagged" in out
    assert "smollm2-docker" not in docker_cli.run("model", "ls", env=env).stdout
    docker_cli.run("model", "pull", name, env=env)
    tags = [t for m in json.loads(docker_cli.run("model", "ls", "--json", env=env).stdout)
            for t in m["tags"]]
    assert f"{name}" in tags
    docker_cli.run("model", "rm", name, env=env)


def test_purge_empties_the_store_after_asking(docker_cli, tmp_path, smollm2):
    with Server(tmp_path / "models") as srv:
        srv.package(smollm2, "ai/purge-me")
        refused = docker_cli.run("model", "purge", env=srv.env, input="n\n", check=False)
        assert refused.returncode == 1
        assert "purge-me" in docker_cli.run("model", "ls", env=srv.env).stdout
        assert "Purged" in docker_cli.run("model", "purge", "-f", env=srv.env).stdout
        assert json.loads(docker_cli.run("model", "ls", "--json", env=srv.env).stdout) == []
