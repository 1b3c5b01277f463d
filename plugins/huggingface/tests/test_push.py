"""Pushing a stored model as a Hugging Face repository.

olah is a read-only mirror (``POST /api/repos/create`` answers 405), so the upload itself is
checked against huggingface_hub's HfApi with its two network calls recorded; against olah only
the refusal is checked: a clear SourceError, not a traceback.
"""

import pytest

from modelrunner import SourceError, references


@pytest.fixture
def pulled(pull, hf_endpoint):
    model, _ = pull("hf.co/org/multi-gguf:Q2_K")
    return model


def test_push_uploads_every_layer_under_its_bundle_name(pulled, source, store, monkeypatch, hf_endpoint, recorder):
    import huggingface_hub
    calls = []
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo",
                        lambda self, repo_id, **kw: calls.append(("create_repo", repo_id, kw, self.endpoint, self.token)))
    monkeypatch.setattr(huggingface_hub.HfApi, "create_commit",
                        lambda self, repo_id, operations, **kw: calls.append(("create_commit", repo_id, operations, kw)))
    rec = recorder

    source.push(references.parse("hf.co/Me/My-Model"), pulled, store, rec.progress, token="hf_write")

    (_, repo_id, kw, endpoint, token), (_, commit_repo, operations, commit_kw) = calls
    assert repo_id == commit_repo == "Me/My-Model"  # the case the user typed
    assert kw.get("exist_ok") is True
    assert endpoint == hf_endpoint and token == "hf_write"
    assert commit_kw.get("revision") == "main"
    uploaded = {op.path_in_repo: op.path_or_fileobj for op in operations}
    assert set(uploaded) == {"model-Q2_K-00001-of-00002.gguf", "model-Q2_K-00002-of-00002.gguf",
                             "mmproj-model-F16.gguf", "template.jinja"}
    by_name = {layer["annotations"]["org.cncf.model.filepath"]: layer["digest"] for layer in pulled.manifest["layers"]}
    for name, path in uploaded.items():
        assert str(path) == str(store.blob_path(by_name[name]))
    assert rec.messages[-1]["message"].startswith("Uploaded")


def test_push_to_a_read_only_mirror_fails_clearly(pulled, source, store, hf_endpoint, recorder):
    with pytest.raises(SourceError) as err:
        source.push(references.parse("hf.co/org/pushed"), pulled, store, recorder.progress, token="hf_write")

    assert "push to hf.co/org/pushed failed" in str(err.value)
    assert "405" in str(err.value) and "read-only mirror" in str(err.value)
    assert err.value.status == 502
