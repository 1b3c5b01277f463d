"""The local store: DMR's layout, atomic writes, safe concurrent writers, shared blobs."""

import json
import multiprocessing

import pytest

from modelrunner.store import Conflict, DigestMismatch, FilesystemStore, NotFound
from modelrunner.testing import add_to_store, snapshot, write_small_gguf


@pytest.fixture
def store(tmp_path):
    return FilesystemStore(tmp_path / "models")


def test_store_has_dmr_layout(store, tmp_path):
    model = add_to_store(store, write_small_gguf(tmp_path / "a.gguf"), ["ai/tiny"])
    root = store.root
    assert json.loads((root / "layout.json").read_text()) == {"version": "1.0.0"}
    index = json.loads((root / "models.json").read_text())
    assert index["models"][0]["id"] == model.id
    assert index["models"][0]["tags"] == ["docker.io/ai/tiny:latest"]
    for digest in index["models"][0]["files"]:
        assert (root / "blobs" / "sha256" / digest.split(":")[1]).is_file()
    manifest = (root / "manifests" / "sha256" / model.id.split(":")[1]).read_bytes()
    import hashlib
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == model.id


def test_bundle_files_are_hardlinks_of_the_blobs(store, tmp_path):
    model = add_to_store(store, write_small_gguf(tmp_path / "a.gguf"), ["ai/tiny"])
    bundle = store.bundle(model)
    gguf = bundle.gguf_files[0]
    assert bundle.path == store.root / "bundles" / "sha256" / model.id.split(":")[1]
    assert gguf.stat().st_ino == store.blob_path(model.manifest["layers"][0]["digest"]).stat().st_ino
    assert json.loads((bundle.path / "config.json").read_text())["config"]["format"] == "gguf"


def test_blob_shared_by_two_models_is_removed_only_with_the_last(store, tmp_path):
    gguf = write_small_gguf(tmp_path / "a.gguf")
    licence = tmp_path / "LICENSE"
    licence.write_text("MIT")
    first = add_to_store(store, gguf, ["ai/one"])
    second = add_to_store(store, gguf, ["ai/two"], licenses=[licence])
    assert first.id != second.id
    weights = first.manifest["layers"][0]["digest"]
    assert weights == second.manifest["layers"][0]["digest"]
    store.delete("ai/one")
    assert store.has_blob(weights)
    store.delete("ai/two")
    assert not store.has_blob(weights)
    assert list((store.root / "blobs" / "sha256").iterdir()) == []


def test_delete_by_tag_of_a_multi_tag_model_only_untags(store, tmp_path):
    model = add_to_store(store, write_small_gguf(tmp_path / "a.gguf"), ["ai/tiny"])
    store.tag("ai/tiny", "ai/tiny:v2")
    assert store.delete("ai/tiny:v2") == [{"Untagged": "docker.io/ai/tiny:v2"}]
    assert store.get("ai/tiny").id == model.id
    with pytest.raises(NotFound):
        store.get("ai/tiny:v2")


def test_delete_by_id_of_a_multi_tag_model_needs_force(store, tmp_path):
    model = add_to_store(store, write_small_gguf(tmp_path / "a.gguf"), ["ai/tiny"])
    store.tag("ai/tiny", "ai/other")
    with pytest.raises(Conflict):
        store.delete(model.short_id)
    result = store.delete(model.short_id, force=True)
    assert result[-1] == {"Deleted": model.id}
    assert store.models() == []


def test_id_prefix_and_partial_name_find_a_model(store, tmp_path):
    model = add_to_store(store, write_small_gguf(tmp_path / "a.gguf"), ["ai/tiny:Q4"])
    assert store.get(model.short_id).id == model.id
    assert store.get(model.id).id == model.id
    with pytest.raises(NotFound):
        store.get("tiny")
    assert store.get("tiny", partial=True).id == model.id


def test_blob_with_wrong_digest_never_enters_the_store(store):
    import io
    before = snapshot(store.root)
    with pytest.raises(DigestMismatch):
        store.write_blob("sha256:" + "0" * 64, io.BytesIO(b"not these bytes"))
    assert snapshot(store.root) == before


def test_manifest_with_missing_blobs_is_refused_and_nothing_changes(store, tmp_path):
    from modelrunner.packaging import build_gguf_artifact
    from modelrunner.store import InvalidModel
    artifact = build_gguf_artifact(write_small_gguf(tmp_path / "a.gguf"))
    before = snapshot(store.root)
    with pytest.raises(InvalidModel):
        store.add_model(artifact.manifest_bytes, tags=["ai/tiny"])
    assert snapshot(store.root) == before


def _add_many(root, gguf, start):
    store = FilesystemStore(root)
    for i in range(start, start + 10):
        add_to_store(store, gguf, [f"ai/model-{i}"])


def test_concurrent_writers_in_several_processes_lose_no_model(store, tmp_path):
    ggufs = [write_small_gguf(tmp_path / f"{i}.gguf", values=16 + i) for i in range(4)]
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add_many, args=(store.root, ggufs[i], i * 10)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    tags = {t for m in store.models() for t in m.tags}
    assert tags == {f"docker.io/ai/model-{i}:latest" for i in range(40)}


def test_same_inputs_give_the_same_model_id(store, tmp_path):
    gguf = write_small_gguf(tmp_path / "a.gguf")
    assert add_to_store(store, gguf, ["ai/a"]).id == add_to_store(store, gguf, ["ai/b"]).id
    assert len(store.models()) == 1
    assert sorted(store.models()[0].tags) == ["docker.io/ai/a:latest", "docker.io/ai/b:latest"]


def test_interrupted_blob_write_resumes_from_its_offset(store):
    import hashlib
    data = b"x" * 5000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    writer = store.blob_writer(digest, len(data))
    writer.write(data[:2000])
    writer.close()
    assert not store.has_blob(digest)
    writer = store.blob_writer(digest, len(data))
    assert writer.offset == 2000
    writer.write(data[2000:])
    writer.commit()
    assert store.blob_path(digest).read_bytes() == data


def test_runner_configuration_is_persisted(store):
    store.set_runner_config("llama.cpp|sha256:x|completion", {"context_size": 2048})
    assert FilesystemStore(store.root).runner_configs() == {
        "llama.cpp|sha256:x|completion": {"context_size": 2048}}


def test_fsck_repair_rebuilds_an_unreadable_index_from_the_manifests(store, tmp_path):
    from modelrunner.store import StoreError
    model = add_to_store(store, write_small_gguf(tmp_path / "a.gguf"), ["ai/tiny"])
    (store.root / "models.json").write_bytes(b'{"models": [')  # a torn write of an old version
    with pytest.raises(StoreError, match="fsck --repair"):
        store.listing()
    report = store.fsck()
    assert not report["ok"] and report["problems"][0]["what"] == "models.json"
    assert store.fsck(repair=True)["problems"][0]["repaired"].startswith("rebuilt from 1")
    assert [m.id for m in store.models()] == [model.id]  # untagged: the tags were in the index
    assert store.fsck()["ok"]


def test_a_blob_writer_whose_file_was_swapped_underneath_publishes_nothing(store):
    import hashlib
    import os
    data = b"y" * 5000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    writer = store.blob_writer(digest, len(data))
    writer.write(data)
    partial = writer.path
    os.unlink(partial)
    partial.write_bytes(data)  # same bytes, but not the file this writer wrote and hashed
    with pytest.raises(DigestMismatch, match="replaced or removed"):
        writer.commit()
    assert not store.has_blob(digest)
    assert partial.read_bytes() == data  # the other file is left alone
