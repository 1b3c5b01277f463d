"""`docker model search` through the real `docker` client: the server searches the registry that
`ai/...` names pull from (here DEFAULT_REGISTRY, a real registry) and Hugging Face."""

import json

import pytest

from modelrunner.testing import Server


@pytest.fixture(scope="module")
def searching_server(tmp_path_factory, registry, tiny_gguf):
    env = {"DEFAULT_REGISTRY": registry.host, "HF_ENDPOINT": "http://127.0.0.1:9"}
    srv = Server(tmp_path_factory.mktemp("search") / "models", env=env).start()
    srv.package(tiny_gguf, "ai/clisearch-tiny")
    srv.model("push", "ai/clisearch-tiny")  # to DEFAULT_REGISTRY, as `ai/...` names resolve
    yield srv
    srv.stop()


def test_search_lists_what_the_registry_offers_under_ai(docker_cli, searching_server, registry):
    out = docker_cli.run("model", "search", "--source", "dockerhub", "clisearch",
                         env=searching_server.env).stdout
    header, row, *rest = out.splitlines()
    assert header.split() == ["NAME", "DESCRIPTION", "BACKEND", "SIZE", "DOWNLOADS", "STARS",
                              "SOURCE"]
    assert row.split() == ["ai/clisearch-tiny", "llama.cpp", "-", "0", "0", registry.host]
    assert rest == []
    found = json.loads(docker_cli.run("model", "search", "--json", "-n", "5", "--source",
                                      "dockerhub", "clisearch", env=searching_server.env).stdout)
    assert [r["name"] for r in found] == ["ai/clisearch-tiny"]
    # what search shows, pull takes
    docker_cli.run("model", "rm", "ai/clisearch-tiny", env=searching_server.env)
    docker_cli.run("model", "pull", found[0]["name"], env=searching_server.env)


def test_one_unreachable_source_is_a_warning_when_searching_all(docker_cli, searching_server):
    result = docker_cli.run("model", "search", "clisearch", env=searching_server.env)
    assert "ai/clisearch-tiny" in result.stdout
    assert "Warning: huggingface: cannot reach Hugging Face at http://127.0.0.1:9" in result.stderr
    alone = docker_cli.run("model", "search", "--source", "huggingface", "x",
                           env=searching_server.env, check=False)
    assert alone.returncode == 1 and "cannot reach Hugging Face" in alone.stderr


def test_nothing_found_and_bad_flags_say_so(docker_cli, searching_server):
    out = docker_cli.run("model", "search", "--source", "dockerhub", "zzz-nothing",
                         env=searching_server.env).stdout
    assert out.strip() == 'No models found matching "zzz-nothing"'
    bad = docker_cli.run("model", "search", "--source", "quay", env=searching_server.env,
                         check=False)
    assert bad.returncode == 2 and "quay" in bad.stderr
