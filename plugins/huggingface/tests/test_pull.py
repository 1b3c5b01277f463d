"""Pulling hf.co/org/repo[:quant] from a real Hub endpoint (olah serving local git repositories)."""

import hashlib
import json

import httpx
import pytest

from modelrunner import SourceError, references

GGUF = "application/vnd.docker.ai.gguf.v3"
MMPROJ = "application/vnd.docker.ai.mmproj"
TEMPLATE = "application/vnd.docker.ai.chat.template.jinja"
V01 = "application/vnd.docker.ai.model.config.v0.1+json"
V02 = "application/vnd.docker.ai.model.config.v0.2+json"


def layers(model, media_type=None):
    return [layer for layer in model.manifest["layers"] if media_type in (None, layer["mediaType"])]


def filepath(layer):
    return layer["annotations"]["org.cncf.model.filepath"]


def sha(hub, repo, path):
    return "sha256:" + hub.files[repo][path]


def test_pull_default_quant_picks_Q4_K_M(pull, hub, hf_endpoint, store):
    model, rec = pull("hf.co/org/multi-gguf")

    assert model.tags == ["huggingface.co/org/multi-gguf:latest"]
    assert model.manifest["config"]["mediaType"] == V01
    weights = layers(model, GGUF)
    assert [filepath(layer) for layer in weights] == ["model-Q4_K_M.gguf"]
    assert weights[0]["digest"] == sha(hub, "org/multi-gguf", "model-Q4_K_M.gguf")
    assert model.inner_config["format"] == "gguf"
    assert model.inner_config["quantization"] == "Q4_K_M"
    # the repository's chat template travels with it; README and the other quants do not
    assert [filepath(layer) for layer in layers(model, TEMPLATE)] == ["template.jinja"]
    assert len(model.manifest["layers"]) == 3
    # created is the repository's lastModified, not the time of the pull
    assert model.config["descriptor"]["created"] == "2024-05-01T12:00:00Z"
    # every blob is in the store and the tag resolves
    assert store.get("hf.co/org/multi-gguf").id == model.id
    for digest in model.files:
        assert store.has_blob(digest)
    assert not (store.root / ".hf-staging").exists()  # no staging links left behind
    assert any(m["message"].startswith("Downloaded") for m in rec.messages)
    assert all(m.get("layer", {}).get("current", 0) <= m.get("layer", {}).get("size", 0) for m in rec.messages)


@pytest.mark.parametrize("tag", ["UD-Q4_K_XL", "ud-q4_k_xl"])
def test_pull_quant_in_subfolder(pull, hub, hf_endpoint, tag):
    model, _ = pull(f"hf.co/org/multi-gguf:{tag}")

    weights = layers(model, GGUF)
    assert [filepath(layer) for layer in weights] == ["model-UD-Q4_K_XL.gguf"]
    assert weights[0]["digest"] == sha(hub, "org/multi-gguf", "UD-Q4_K_XL/model-UD-Q4_K_XL.gguf")
    assert model.tags == [f"huggingface.co/org/multi-gguf:{tag}"]


def test_pull_sharded_quant_keeps_all_shards_in_order(pull, hub, hf_endpoint, store):
    model, _ = pull("hf.co/org/multi-gguf:Q2_K")

    weights = layers(model, GGUF)
    assert [filepath(layer) for layer in weights] == ["model-Q2_K-00001-of-00002.gguf",
                                                      "model-Q2_K-00002-of-00002.gguf"]
    assert [layer["digest"] for layer in weights] == [
        sha(hub, "org/multi-gguf", "Q2_K/model-Q2_K-00001-of-00002.gguf"),
        sha(hub, "org/multi-gguf", "Q2_K/model-Q2_K-00002-of-00002.gguf")]
    assert model.inner_config["quantization"] == "Q2_K"
    # the bundle a runner gets has both shards side by side, under their names
    bundle = store.bundle(model)
    names = sorted(p.name for p in (bundle.path / "model").glob("*.gguf"))
    assert names == ["mmproj-model-F16.gguf", "model-Q2_K-00001-of-00002.gguf", "model-Q2_K-00002-of-00002.gguf"]


def test_mmproj_is_its_own_layer(pull, hub, hf_endpoint):
    model, _ = pull("hf.co/org/multi-gguf:Q8_0")

    projectors = layers(model, MMPROJ)
    assert len(projectors) == 1
    assert projectors[0]["digest"] == sha(hub, "org/multi-gguf", "mmproj-model-F16.gguf")
    assert filepath(projectors[0]) == "mmproj-model-F16.gguf"
    weights = layers(model, GGUF)
    assert [filepath(layer) for layer in weights] == ["model-Q8_0.gguf"]
    assert model.inner_config["quantization"] == "Q8_0"


def test_F16_quant_is_the_model_not_the_projector(pull, hub, hf_endpoint):
    model, _ = pull("hf.co/org/multi-gguf:F16")

    assert [filepath(layer) for layer in layers(model, GGUF)] == ["model-F16.gguf"]
    assert [filepath(layer) for layer in layers(model, MMPROJ)] == ["mmproj-model-F16.gguf"]


def test_missing_quant_is_404_listing_available_quants(pull, hf_endpoint, store):
    with pytest.raises(SourceError) as err:
        pull("hf.co/org/multi-gguf:Q5_K_S")

    assert err.value.status == 404
    message = str(err.value)
    assert "Q5_K_S" in message
    for quant in ("Q4_K_M", "Q8_0", "F16", "UD-Q4_K_XL", "Q2_K"):
        assert quant in message
    assert "mmproj" not in message
    assert store.models() == []


def test_missing_repo_is_404(pull, hf_endpoint, store):
    with pytest.raises(SourceError) as err:
        pull("hf.co/org/does-not-exist")

    assert err.value.status == 404
    assert "hf.co/org/does-not-exist" in str(err.value)
    assert "HF_TOKEN" in str(err.value)  # it may be private: say how to authenticate
    assert store.models() == []


def test_gated_repo_is_401_without_token_and_403_with_one(pull, relay, store):
    relay.gated.add("org/multi-gguf")

    with pytest.raises(SourceError) as err:
        pull("hf.co/org/multi-gguf")
    assert err.value.status == 401
    assert "gated" in str(err.value) and "HF_TOKEN" in str(err.value)

    with pytest.raises(SourceError) as err:
        pull("hf.co/org/multi-gguf", token="hf_no_access")
    assert err.value.status == 403
    assert "gated" in str(err.value)
    assert store.models() == []


def test_safetensors_repo_becomes_v02_artifact_with_config_and_tokenizer(pull, hub, hf_endpoint):
    model, _ = pull("hf.co/org/tiny-safetensors")

    assert model.manifest["config"]["mediaType"] == V02
    paths = {filepath(layer): layer for layer in model.manifest["layers"]}
    assert set(paths) == {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "README.md"}
    assert paths["model.safetensors"]["mediaType"] == "application/vnd.docker.ai.safetensors"
    assert paths["model.safetensors"]["digest"] == sha(hub, "org/tiny-safetensors", "model.safetensors")
    assert paths["config.json"]["digest"] == sha(hub, "org/tiny-safetensors", "config.json")
    config = model.inner_config
    assert config["format"] == "safetensors"
    assert config["architecture"] == "LlamaForCausalLM"
    assert config["context_size"] == 2048
    assert config["parameters"] == "136"
    assert model.tags == ["huggingface.co/org/tiny-safetensors:latest"]


def test_same_repo_state_gives_same_model_id(pull, hf_endpoint, tmp_path):
    from modelrunner.testing import FilesystemStore

    first, _ = pull("hf.co/org/multi-gguf:Q2_K", into=FilesystemStore(tmp_path / "a"))
    second, _ = pull("hf.co/org/multi-gguf:Q2_K", into=FilesystemStore(tmp_path / "b"))
    assert first.id == second.id

    st_a, _ = pull("hf.co/org/tiny-safetensors", into=FilesystemStore(tmp_path / "a"))
    st_b, _ = pull("hf.co/org/tiny-safetensors", into=FilesystemStore(tmp_path / "b"))
    assert st_a.id == st_b.id


def test_interrupted_download_resumes(pull, hub, relay, store):
    path = "model-Q8_0.gguf"
    digest = sha(hub, "org/multi-gguf", path)
    data = httpx.get(f"{hub.url}/org/multi-gguf/resolve/main/{path}").content
    assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    partial = store.blob_path(digest).with_name(store.blob_path(digest).name + ".incomplete")
    partial.write_bytes(data[:300])  # what an interrupted pull left behind

    model, _ = pull("hf.co/org/multi-gguf:Q8_0")

    assert relay.downloads("/" + path) == [("bytes=300-", len(data) - 300)]
    assert store.blob_path(digest).read_bytes() == data
    assert not partial.exists()
    assert layers(model, GGUF)[0]["digest"] == digest


def test_server_ignoring_range_restarts_the_file(pull, hub, hf_endpoint, store):
    """olah's mirror route answers 200 with the whole file to a Range request: start over."""
    path = "model-F16.gguf"
    digest = sha(hub, "org/multi-gguf", path)
    partial = store.blob_path(digest).with_name(store.blob_path(digest).name + ".incomplete")
    partial.write_bytes(b"GGUF" + b"\0" * 100)

    model, _ = pull("hf.co/org/multi-gguf:F16")

    assert "sha256:" + hashlib.sha256(store.blob_path(digest).read_bytes()).hexdigest() == digest
    assert layers(model, GGUF)[0]["digest"] == digest


def test_corrupt_partial_download_fails_then_recovers(pull, hub, relay, store):
    path = "model-Q8_0.gguf"
    digest = sha(hub, "org/multi-gguf", path)
    partial = store.blob_path(digest).with_name(store.blob_path(digest).name + ".incomplete")
    partial.write_bytes(b"X" * 300)  # not the file's first bytes

    with pytest.raises(SourceError) as err:
        pull("hf.co/org/multi-gguf:Q8_0")
    assert err.value.status == 502
    assert not partial.exists() and not store.has_blob(digest)
    assert store.models() == []

    model, _ = pull("hf.co/org/multi-gguf:Q8_0")
    assert store.has_blob(digest)


def test_cached_pull_says_using_cached_model(pull, relay, store):
    first, _ = pull("hf.co/org/tiny-safetensors")
    downloads_before = len(relay.downloads(""))
    assert downloads_before == 5

    again, rec = pull("hf.co/org/tiny-safetensors")

    assert again.id == first.id
    assert [m["message"] for m in rec.messages] == [f"Using cached model: {_size(first.size)}"]
    assert len(relay.downloads("")) == downloads_before  # nothing fetched again

    gguf_model, _ = pull("hf.co/org/multi-gguf:Q2_K")
    _, rec = pull("hf.co/org/multi-gguf:Q2_K")
    assert rec.texts()[-1].startswith("Using cached model: ")


def test_other_quant_of_a_cached_repo_downloads_only_what_is_new(pull, relay, store):
    pull("hf.co/org/multi-gguf:Q8_0")
    relay.requests.clear()

    model, _ = pull("hf.co/org/multi-gguf:F16")

    fetched = sorted(path.rsplit("/", 1)[-1] for path, _, _ in relay.requests if "/resolve/" in path)
    assert fetched == ["model-F16.gguf"]  # the projector and template blobs were already there
    assert {m.id for m in store.models()} == {store.get("hf.co/org/multi-gguf:Q8_0").id, model.id}


def test_repository_name_keeps_its_case_for_the_hub(pull, hf_endpoint, store):
    model, _ = pull("hf.co/Org/CasedRepo")

    assert model.tags == ["huggingface.co/org/casedrepo:latest"]
    assert [filepath(layer) for layer in layers(model, GGUF)] == ["cased-Q4_K_M.gguf"]


def test_token_and_HF_TOKEN_are_sent_as_bearer(pull, relay, monkeypatch):
    pull("hf.co/org/tiny-safetensors", token="hf_request_token")
    assert relay.authorizations and set(relay.authorizations) == {"Bearer hf_request_token"}

    relay.authorizations.clear()
    monkeypatch.setenv("HF_TOKEN", "hf_env_token")
    pull("hf.co/org/multi-gguf:Q8_0")
    assert relay.authorizations and set(relay.authorizations) == {"Bearer hf_env_token"}


def test_source_is_registered_through_the_entry_point():
    from modelrunner.testing import make_plugin_manager
    from modelrunner_huggingface import HuggingFaceSource

    sources = []
    make_plugin_manager().hook.register_sources(register=sources.append, settings=None)
    hf = [s for s in sources if isinstance(s, HuggingFaceSource)]
    assert len(hf) == 1 and hf[0].fallback is False
    assert hf[0].handles(references.parse("hf.co/org/repo:Q4_K_M"))
    assert not hf[0].handles(references.parse("ai/smollm2"))


def _size(n):
    from modelrunner import units
    return units.format_size(n)


def test_config_json_of_stored_model_is_valid(pull, hf_endpoint, store):
    model, _ = pull("hf.co/org/multi-gguf:Q8_0")
    config_blob = store.blob_path(model.manifest["config"]["digest"]).read_bytes()
    config = json.loads(config_blob)
    assert config["rootfs"]["diff_ids"] == [layer["digest"] for layer in model.manifest["layers"]]


def test_the_token_never_travels_in_clear_to_a_mirror_on_another_machine(monkeypatch):
    from modelrunner_huggingface.source import _token
    monkeypatch.setenv("HF_TOKEN", "hf_env_token")
    assert _token(None, "https://huggingface.co") == "hf_env_token"
    assert _token(None, "http://127.0.0.1:8090") == "hf_env_token"  # a local mirror
    assert _token("hf_request_token", "http://mirror.lan:8090") is False  # False: send none
    assert _token(None, "http://mirror.lan:8090") is False
