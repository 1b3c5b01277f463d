"""ollama push / ollama pull against a real registry on 127.0.0.1 (plugins/oci/tests' fixture)."""

import sys
from pathlib import Path

import ollama
import pytest

from ollama_helpers import MODEL
from modelrunner.testing import Server

from plugins.oci.tests.oci_registry import start_registry, stop_registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    server = start_registry(tmp_path_factory.mktemp("ollama-registry"))
    yield server
    stop_registry(server)


def test_push_then_pull_into_an_empty_store(own, registry, tmp_path):
    name = f"{registry.host}/team/smollm2:v1"
    own.client.copy(MODEL, name)
    pushed = list(own.client.push(name, insecure=True, stream=True))
    statuses = [p.status for p in pushed]
    assert statuses[0] == "retrieving manifest"
    assert statuses[-2:] == ["pushing manifest", "success"]
    uploads = [p for p in pushed if p.status.startswith("pushing ") and p.digest]
    assert uploads and uploads[-1].completed == uploads[-1].total
    own.client.delete(name)

    with Server(tmp_path / "models") as empty:
        client = ollama.Client(host=empty.url, timeout=300)
        pulled = list(client.pull(name, insecure=True, stream=True))
        statuses = [p.status for p in pulled]
        assert statuses[0] == "pulling manifest"
        assert statuses[-1] == "success"
        layers = [p for p in pulled if p.digest]
        assert layers and all(p.status == f"pulling {p.digest.split(':')[1][:12]}" for p in layers)
        big = max(layers, key=lambda p: p.total)
        assert big.total > 50_000_000
        assert max(p.completed for p in layers if p.digest == big.digest) == big.total
        assert name in [m.model for m in client.list().models]
        assert client.show(name).details.family == "llama"
        # again: nothing to download, still a success
        assert client.pull(name, stream=False).status == "success"


def test_pull_of_a_missing_model_is_an_ollama_error(own, registry):
    with pytest.raises(ollama.ResponseError) as err:
        own.client.pull(f"{registry.host}/team/absent:v1", stream=False)
    assert err.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as err:  # streamed: the status is kept too
        list(own.client.pull(f"{registry.host}/team/absent:v1", stream=True))
    assert err.value.status_code == 404
