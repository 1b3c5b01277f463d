"""Listing, showing, copying and deleting models through Ollama's API."""

import httpx
import ollama
import pytest

from ollama_helpers import MODEL


def test_version_answers_json(server):
    r = httpx.get(server.url + "/api/version")
    assert r.status_code == 200
    assert r.json()["version"]


def test_list_shows_the_packaged_model_with_its_details(client):
    models = client.list().models
    entry = next(m for m in models if m.model == "ai/smollm2:latest")
    assert entry.size > 50_000_000  # the GGUF's real size
    assert len(entry.digest) == 64
    assert entry.details.format == "gguf"
    assert entry.details.family == "llama"
    assert entry.details.quantization_level == "Q4_1"
    assert entry.details.parameter_size.endswith("M")
    assert entry.modified_at is not None


def test_head_tags_is_ok(server):
    assert httpx.head(server.url + "/api/tags").status_code == 200


def test_show_gives_gguf_metadata_template_and_capabilities(client):
    info = client.show(MODEL)
    assert info.details.family == "llama"
    assert info.modelinfo["general.architecture"] == "llama"
    assert info.modelinfo["llama.context_length"] == 8192  # typed, not a string
    assert info.modelinfo["general.parameter_count"] > 100_000_000
    assert "im_start" in info.template  # SmolLM2's own chat template
    assert "completion" in info.capabilities
    assert "embedding" not in info.capabilities
    assert info.modelfile.startswith("# Modelfile")


def test_show_of_an_unknown_model_is_404(client):
    with pytest.raises(ollama.ResponseError) as err:
        client.show("no-such-model")
    assert err.value.status_code == 404
    assert err.value.error == "model 'no-such-model' not found"


def test_copy_then_delete_leaves_the_original(client):
    client.copy(MODEL, "team/smollm2-copy:v1")
    names = [m.model for m in client.list().models]
    assert "team/smollm2-copy:v1" in names
    assert client.show("team/smollm2-copy:v1").details.family == "llama"
    client.delete("team/smollm2-copy:v1")
    names = [m.model for m in client.list().models]
    assert "team/smollm2-copy:v1" not in names
    assert "ai/smollm2:latest" in names


def test_delete_and_copy_of_unknown_models_are_404(client):
    with pytest.raises(ollama.ResponseError) as err:
        client.delete("nothing-here")
    assert err.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as err:
        client.copy("nothing-here", "other")
    assert err.value.status_code == 404


def test_errors_are_ollama_json(server):
    r = httpx.post(server.url + "/api/show", content=b"not json")
    assert r.status_code == 400
    assert "error" in r.json()
    r = httpx.post(server.url + "/api/chat", json={"messages": []})
    assert r.status_code == 400
    assert r.json() == {"error": "model is required"}
    r = httpx.get(server.url + "/api/nothing")  # no route: a plain 404, as Ollama's own server
    assert r.status_code == 404


def test_blobs_head_and_upload(server, tmp_path):
    import hashlib
    data = b"hello blob"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert httpx.head(f"{server.url}/api/blobs/{digest}").status_code == 404
    assert httpx.post(f"{server.url}/api/blobs/{digest}", content=data).status_code == 201
    assert httpx.head(f"{server.url}/api/blobs/{digest}").status_code == 200
    wrong = "sha256:" + "0" * 64
    r = httpx.post(f"{server.url}/api/blobs/{wrong}", content=data)
    assert r.status_code == 400 and "error" in r.json()
