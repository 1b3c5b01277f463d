"""`model search --source dockerhub` against a real registry (DEFAULT_REGISTRY: its catalog)
and Docker Hub's repositories API answers (hub_results)."""

import pytest

from modelrunner import SourceError, references
from modelrunner.testing import answering_server, load_settings
from modelrunner_oci.push import push_artifact
from modelrunner_oci.search import backend_for, hub_results
from modelrunner_oci.source import OciSource

from plugins.oci.tests.oci_helpers import gguf_artifact

NAMES = ["ai/srch-llama", "ai/srch-qwen-vllm", "team/srch-llama"]


@pytest.fixture(scope="module")
def catalog(registry, tmp_path_factory):
    folder = tmp_path_factory.mktemp("search")
    for seed, name in enumerate(NAMES):
        push_artifact(references.parse(f"{registry.host}/{name}:latest"),
                      gguf_artifact(folder, seed=100 + seed))
    return registry


def test_the_ai_namespace_of_the_default_registry_is_searched(catalog, monkeypatch):
    monkeypatch.setenv("DEFAULT_REGISTRY", catalog.host)
    found = OciSource().search("srch", 32)
    assert [r.name for r in found] == ["ai/srch-llama", "ai/srch-qwen-vllm"]  # not team/
    assert [r.backend for r in found] == ["llama.cpp", "vllm"]
    assert {r.source for r in found} == {catalog.host}
    assert [r.name for r in OciSource().search("QWEN", 32)] == ["ai/srch-qwen-vllm"]
    assert len(OciSource().search("srch", 1)) == 1
    everything = OciSource().search("", 1000)
    assert {"ai/srch-llama", "ai/srch-qwen-vllm"} <= {r.name for r in everything}
    assert all(r.name.startswith("ai/") for r in everything)


def test_docker_hubs_answer_is_filtered_and_kept_in_its_order():
    page = {"count": 3, "next": None, "results": [
        {"name": "smollm2", "namespace": "ai", "description": "Tiny LLM, GGUF for llama.cpp",
         "pull_count": 1500000, "star_count": 12, "last_updated": "2025-05-01T00:00:00Z"},
        {"name": "qwen3", "namespace": "ai", "description": "Qwen3 in safetensors for vLLM",
         "pull_count": 900, "star_count": 3},
        {"name": "secret", "namespace": "ai", "description": "smol", "is_private": True},
    ]}
    found = hub_results(page, "smol")
    assert [(r.name, r.downloads, r.stars, r.official, r.source) for r in found] == [
        ("ai/smollm2", 1500000, 12, True, "Docker Hub")]
    assert [r.name for r in hub_results(page, "")] == ["ai/smollm2", "ai/qwen3"]
    assert [r.backend for r in hub_results(page, "")] == ["llama.cpp", "vllm"]
    assert backend_for("gemma3", "GGUF and safetensors") == "llama.cpp, vllm"


def test_an_unreachable_hub_search_endpoint_is_a_502_naming_it():
    source = OciSource(load_settings(dockerhub_search_url="http://127.0.0.1:9"))
    with pytest.raises(SourceError) as caught:
        source.search("x", 5)
    assert caught.value.status == 502 and "127.0.0.1:9" in str(caught.value)


def test_a_hostile_hubs_gzip_bomb_is_refused_not_inflated():
    import gzip
    import resource
    from modelrunner_oci.search import search_hub

    bomb = gzip.compress(b'{"results": [' + b" " * (300 << 20) + b"]}", compresslevel=9)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with answering_server(bomb, {"Content-Type": "application/json",
                                 "Content-Encoding": "gzip"}) as hub:
        with pytest.raises(SourceError) as caught:
            search_hub(hub, "x", 10)
    assert caught.value.status == 502 and "larger than" in str(caught.value)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 100, f"the search grew the process by {grown_mib:.0f} MiB"


def test_a_hubs_next_page_on_another_host_and_odd_counts_are_not_trusted():
    import json
    from modelrunner_oci.search import search_hub

    page = {"next": "http://169.254.169.254/latest/meta-data/", "results": [
        {"name": "smollm2", "namespace": "ai", "pull_count": "1.2K", "star_count": None}]}
    with answering_server(json.dumps(page).encode(), {"Content-Type": "application/json"}) as hub:
        found = search_hub(hub, "", 10)  # would hang or fail on the metadata address
    assert len(hub.requests) == 1
    assert [(r.name, r.downloads, r.stars) for r in found] == [("ai/smollm2", 0, 0)]
