"""Store integrity through the real server: a blob always hashes to its name, a bad upload
never bricks the store, a bundle never writes through another model's blob, and what failures
leave behind is collected."""

import hashlib
import http.client
import json
import os
import time
from urllib.parse import urlparse

import httpx
import pytest

from modelrunner.packaging import build_gguf_artifact, write_model_tar
from modelrunner.store import FilesystemStore
from modelrunner.testing import write_small_gguf
from modelrunner.testing.crafted import (blob_hashes_ok, digest_of, good_config, layer, leftovers,
                                   model_tar)
from modelrunner.testing import Server


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("integrity") / "models").start()
    yield server
    server.stop()


def _load(srv, tar, tag):
    return httpx.post(srv.url + "/models/load", params={"tag": tag}, content=tar, timeout=60)


def _package(srv, gguf, tag):
    """What `model package` sends, without the CLI's start-up time."""
    import io
    artifact = build_gguf_artifact(gguf)
    out = io.BytesIO()
    write_model_tar(artifact, out)
    resp = _load(srv, out.getvalue(), tag)
    assert resp.status_code == 201, resp.text
    return artifact


def _listings_answer(srv):
    """Every listing a client may call answers, and the CLI's too."""
    for path in ("/models", "/api/tags", "/v1/models"):
        resp = httpx.get(srv.url + path, timeout=30)
        assert resp.status_code == 200, f"{path}: {resp.status_code} {resp.text}"
    assert srv.model("ls").returncode == 0


def _bundle_everything(srv):
    """Unpack every listed model as the scheduler does before it starts a runner."""
    store = FilesystemStore(srv.models_path)
    for model in store.models():
        try:
            store.bundle(model)
        except Exception:
            pass  # a model that cannot be unpacked is not what these tests are about


# -- two writers of one digest -------------------------------------------------------------------

def _open_upload(url, digest, length):
    """An upload whose body the test sends piece by piece (``conn.send``)."""
    parts = urlparse(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    conn.putrequest("POST", f"/api/blobs/{digest}")
    conn.putheader("Content-Length", str(length))
    conn.putheader("Content-Type", "application/octet-stream")
    conn.endheaders()
    return conn


def _finish(conn):
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


def _wait_for_partial_bytes(folder, hexpart, at_least):
    """Until the server has written ``at_least`` bytes of an upload of ``hexpart`` (any name but
    the final one); the interleaving depends on it, so the test waits, it does not time."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for path in folder.iterdir():
            if hexpart in path.name and path.name != hexpart:
                try:
                    if path.stat().st_size >= at_least:
                        return
                except FileNotFoundError:
                    pass
        time.sleep(0.01)
    raise AssertionError("the first upload's bytes never reached the store")


SECOND_UPLOADS = {
    "the same bytes": lambda data: data,
    "other bytes": lambda data: os.urandom(len(data)),
    "the first half only": lambda data: data[:len(data) // 2],
}


@pytest.mark.parametrize("second", list(SECOND_UPLOADS))
def test_two_uploads_of_one_digest_never_publish_other_bytes(srv, second):
    data = os.urandom(2 << 20)
    digest = digest_of(data)
    folder = srv.models_path / "blobs" / "sha256"
    first = _open_upload(srv.url, digest, len(data))
    first.send(data[:1 << 20])
    _wait_for_partial_bytes(folder, digest.split(":")[1], 512 << 10)
    other = SECOND_UPLOADS[second](data)  # the whole second upload, while the first waits
    answer = httpx.post(srv.url + f"/api/blobs/{digest}", content=other, timeout=60)
    assert answer.status_code == (201 if other == data else 400), answer.text
    first.send(data[1 << 20:])
    status, body = _finish(first)
    blob = folder / digest.split(":")[1]
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == digest.split(":")[1]
    assert status == 201, body
    assert httpx.head(srv.url + f"/api/blobs/{digest}").status_code == 200
    assert leftovers(srv.models_path) == []


def test_writers_of_one_digest_in_one_process_take_turns(tmp_path):
    """Store level: a second pull of a blob waits for the first, then finds it published and
    downloads nothing; a wrong copy never replaces it."""
    import threading
    store = FilesystemStore(tmp_path / "models")
    data = os.urandom(3 << 20)
    digest = digest_of(data)
    first = store.blob_writer(digest, len(data))
    first.write(data[:1000])
    got = {}

    def second():
        writer = store.blob_writer(digest, len(data))  # waits for the first writer
        got["offset"] = writer.offset
        got["path"] = writer.commit()

    thread = threading.Thread(target=second)
    thread.start()
    first.write(data[1000:])
    first.commit()
    thread.join(30)
    assert got["offset"] == len(data)
    assert hashlib.sha256(got["path"].read_bytes()).hexdigest() == digest.split(":")[1]
    from modelrunner.store import DigestMismatch
    writer = store.blob_writer(digest)  # no size: it writes, and its copy is checked
    writer.write(b"not the bytes")
    with pytest.raises(DigestMismatch):
        writer.commit()
    assert store.blob_path(digest).read_bytes() == data
    assert leftovers(store.root) == []


# -- bundles never write through a blob ----------------------------------------------------------

def test_an_artifact_with_two_unannotated_gguf_layers_leaves_other_models_blobs_untouched(
        srv, tmp_path):
    first = _package(srv, write_small_gguf(tmp_path / "first.gguf", values=64), "ai/first")
    shared = first.layers[0]
    second_gguf = write_small_gguf(tmp_path / "second.gguf", name="second", values=96).read_bytes()
    tar, _ = model_tar([layer(shared.path.read_bytes()), layer(second_gguf)])
    assert _load(srv, tar, "ai/two-shards").status_code == 201
    _bundle_everything(srv)
    assert all(blob_hashes_ok(srv.models_path).values())
    store = FilesystemStore(srv.models_path)
    bundle = store.bundle(store.get("ai/two-shards"))
    shards = [p.name for p in bundle.gguf_files]
    assert shards == ["model-00001-of-00002.gguf", "model-00002-of-00002.gguf"]
    assert bundle.gguf_files[0].stat().st_ino == store.blob_path(shared.digest).stat().st_ino


@pytest.mark.parametrize("paths, message", [
    (["model.gguf", "model.gguf"], "both unpack to"),
    (["../escape.gguf", "b.gguf"], "must be relative"),
    (["./model.gguf", "b.gguf"], "must be relative"),
    (["/abs/model.gguf", "b.gguf"], "must be relative"),
    (["a", "a/b.gguf"], "as a folder"),
])
def test_layer_paths_that_collide_or_escape_are_refused_with_a_clear_error(srv, tmp_path, paths,
                                                                           message):
    layers = [layer(os.urandom(4096), path=p) for p in paths]
    before = set(blob_hashes_ok(srv.models_path))
    resp = _load(srv, model_tar(layers)[0], "ai/bad-paths")
    assert resp.status_code == 400 and message in resp.text, resp.text
    assert set(blob_hashes_ok(srv.models_path)) == before  # the failed load's blobs are gone
    assert "ai/bad-paths" not in srv.model("ls").stdout


def test_an_ollama_create_with_colliding_base_names_leaves_other_models_blobs_untouched(
        srv, tmp_path):
    first = _package(srv, write_small_gguf(tmp_path / "one.gguf", name="one", values=80),
                     "ai/one")
    mine = write_small_gguf(tmp_path / "two.gguf", name="two", values=112)
    digests = {}
    for name, path in (("a/model.gguf", first.layers[0].path), ("b/model.gguf", mine)):
        data = path.read_bytes()
        digests[name] = digest_of(data)
        assert httpx.post(srv.url + f"/api/blobs/{digests[name]}", content=data).status_code == 201
    resp = httpx.post(srv.url + "/api/create", json={"model": "team/collide", "files": digests,
                                                     "stream": False}, timeout=60)
    _bundle_everything(srv)
    assert all(blob_hashes_ok(srv.models_path).values())
    assert resp.status_code == 400 and "model.gguf" in resp.json()["error"]
    assert "team/collide" not in srv.model("ls").stdout


# -- a bad upload never bricks the store -------------------------------------------------------

BAD_CONFIGS = {
    "not JSON": b"\x00\x01 this is not json",
    "a JSON list": b"[1, 2, 3]",
    "5 MiB": good_config(pad="x" * (5 << 20)),
}


@pytest.mark.parametrize("kind", list(BAD_CONFIGS))
def test_a_bad_config_is_refused_and_listing_keeps_working(srv, kind):
    before = set(blob_hashes_ok(srv.models_path))
    tar, _ = model_tar([layer(os.urandom(8192))], config_bytes=BAD_CONFIGS[kind])
    resp = _load(srv, tar, "ai/bad-config")
    assert resp.status_code == 400 and "config" in resp.text, resp.text
    _listings_answer(srv)
    assert "ai/bad-config" not in srv.model("ls").stdout
    assert set(blob_hashes_ok(srv.models_path)) == before
    assert leftovers(srv.models_path) == []


def test_tar_members_no_manifest_names_are_not_kept(srv):
    stray = os.urandom(10000)
    tar, _ = model_tar([layer(os.urandom(5000))], extra_blobs=[stray])
    assert _load(srv, tar, "ai/with-stray").status_code == 201
    assert digest_of(stray).split(":")[1] not in blob_hashes_ok(srv.models_path)


def test_an_entry_that_cannot_be_read_is_listed_as_broken_and_rm_removes_it(srv, tmp_path):
    _package(srv, write_small_gguf(tmp_path / "victim.gguf", name="victim", values=48),
             "ai/victim")
    store = FilesystemStore(srv.models_path)
    model = store.get("ai/victim")
    config = store.blob_path(model.manifest["config"]["digest"])
    config.chmod(0o644)
    config.write_bytes(b"{ cut short by a disk fault")  # what an older version or a fault leaves
    _listings_answer(srv)
    listed = httpx.get(srv.url + "/models").json()
    entry = next(m for m in listed if m["id"] == model.id)
    assert "not JSON" in entry["broken"]
    out = srv.model("ls").stdout
    assert "victim is broken" in out and "not JSON" in out
    assert all(m["model"] != "ai/victim:latest" for m in httpx.get(srv.url + "/api/tags").json()["models"])
    srv.model("rm", "ai/victim")
    assert model.id not in json.dumps(httpx.get(srv.url + "/models").json())
    assert not (srv.models_path / "manifests" / "sha256" / model.id.split(":")[1]).exists()


# -- fsck and collection ---------------------------------------------------------------------------

def test_fsck_finds_a_corrupt_blob_and_repair_leaves_the_model_broken_until_it_comes_back(
        tmp_path):
    with Server(tmp_path / "models") as server:
        gguf = write_small_gguf(tmp_path / "f.gguf", name="fsck", values=256)
        artifact = _package(server, gguf, "ai/fsck")
        store = FilesystemStore(server.models_path)
        store.bundle(store.get("ai/fsck"))
        assert server.model("fsck").returncode == 0
        weights = store.blob_path(artifact.layers[0].digest)
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF  # one flipped bit, same size: only a re-hash sees it
        weights.write_bytes(bytes(data))
        found = server.model("fsck", check=False)
        assert found.returncode == 1 and artifact.layers[0].digest in found.stdout
        repaired = server.model("fsck", "--repair", check=False)
        assert "removed" in repaired.stdout and repaired.returncode == 1  # the model stays broken
        assert not weights.exists()
        assert "fsck is broken" in server.model("ls").stdout
        _package(server, gguf, "ai/fsck")  # the bytes come back
        assert server.model("fsck").returncode == 0
        assert "broken" not in server.model("ls").stdout
        bundle = store.bundle(store.get("ai/fsck"))
        assert bundle.gguf_files[0].stat().st_ino == weights.stat().st_ino


def _garbage(root):
    """What crashes and failures leave, private as the store's writers make it (a loose mode
    is a fault of its own, see tests/privacy/test_store_modes.py); returns {label: path}."""
    old = os.umask(0o077)
    try:
        return _plant_garbage(root)
    finally:
        os.umask(old)


def _plant_garbage(root):
    blobs = root / "blobs" / "sha256"
    unreferenced = os.urandom(3000)
    paths = {
        "unreferenced blob": blobs / digest_of(unreferenced).split(":")[1],
        "old partial download": blobs / (hashlib.sha256(b"old").hexdigest() + ".incomplete"),
        "young partial download": blobs / (hashlib.sha256(b"young").hexdigest() + ".incomplete"),
        "crashed upload": blobs / f".{hashlib.sha256(b'up').hexdigest()}.x1y2z3.tmp",
        "orphan manifest": root / "manifests" / "sha256" / hashlib.sha256(b"{}").hexdigest(),
        "crashed index write": root / ".models.json.abc123.tmp",
        "staging": root / ".hf-staging" / "pull-abc" / "file",
    }
    paths["unreferenced blob"].write_bytes(unreferenced)
    paths["orphan manifest"].write_bytes(b"{}")
    for key in ("old partial download", "young partial download", "crashed upload",
                "crashed index write"):
        paths[key].write_bytes(b"x" * 100)
    paths["staging"].parent.mkdir(parents=True)
    paths["staging"].write_bytes(b"x")
    week_ago = time.time() - 8 * 86400
    os.utime(paths["old partial download"], (week_ago, week_ago))
    stale_bundle = root / "bundles" / "sha256" / hashlib.sha256(b"gone").hexdigest()
    (stale_bundle / "model").mkdir(parents=True)
    paths["stale bundle"] = stale_bundle
    tmp_bundle = root / "bundles" / "sha256" / f".{hashlib.sha256(b'gone').hexdigest()}.abc.tmp"
    tmp_bundle.mkdir()
    paths["crashed bundle"] = tmp_bundle
    return paths


def test_server_start_and_prune_collect_what_crashes_leave(tmp_path):
    root = tmp_path / "models"
    with Server(root) as server:
        _package(server, write_small_gguf(tmp_path / "keep.gguf", name="keep"), "ai/keep")
    garbage = _garbage(root)
    with Server(root) as server:
        kept = {k for k, p in garbage.items() if p.exists()}
        assert kept == {"young partial download"}  # a pull resumes it
        assert server.model("fsck").returncode == 0
        out = server.model("prune").stdout
        assert "1 partial download" in out
        assert not any(p.exists() for p in garbage.values())
        assert "keep" in server.model("ls").stdout
        assert server.model("fsck").returncode == 0


def test_a_delete_while_a_pull_is_in_flight_keeps_the_blobs_the_pull_relies_on(tmp_path):
    """Store level: the pull found a layer already stored and skipped it; a delete of the
    model that had it must not remove it before the pull indexes its own model."""
    from modelrunner.testing import add_to_store
    store = FilesystemStore(tmp_path / "models")
    gguf = write_small_gguf(tmp_path / "a.gguf")
    old = add_to_store(store, gguf, ["ai/old"])
    artifact = build_gguf_artifact(gguf, context_size=999)  # shares the weights, new config
    with store.operation() as op:
        assert op.has_blob(artifact.layers[0].digest)  # nothing to download
        store.delete("ai/old")
        assert store.has_blob(artifact.layers[0].digest)
        op.write_blob_bytes(artifact.config_bytes)
        new = op.add_model(artifact.manifest_bytes, tags=["ai/new"])
    assert store.get("ai/new").id == new.id
    assert store.has_blob(artifact.layers[0].digest)
    assert not store.has_blob(old.manifest["config"]["digest"])  # collected once the pull ended
    assert store.fsck()["ok"]
