"""Store integrity against a real registry: pulls that share a layer, a disk that fills up
mid-pull, and a pull that repairs a model fsck left broken."""

import hashlib
import json
import os
import subprocess
import threading

import httpx
import pytest

from modelrunner import references
from modelrunner.testing import FilesystemStore, Server, assemble, blob_hashes_ok, leftovers
from modelrunner_oci import OciSource

from plugins.oci.tests.oci_helpers import CuttingRelay, gguf_artifact, put_in_store, random_artifact

SOURCE = OciSource()


def _push(registry, store, artifact, name):
    model = put_in_store(store, artifact, name)
    SOURCE.push(references.parse(f"{registry.host}/{name}"), model, store, None)
    return model


def _pull_lines(server, name):
    """POST /models/create as `model pull` does; the NDJSON lines it answered (or its error)."""
    with httpx.stream("POST", server.url + "/models/create", json={"from": name},
                      headers={"Accept": "application/json"}, timeout=300) as resp:
        if resp.status_code != 200:
            return [{"type": "error", "status": resp.status_code, "message": resp.read().decode()}]
        return [json.loads(line) for line in resp.iter_lines() if line.strip()]


def test_two_pulls_of_tags_that_share_a_layer_leave_a_blob_that_hashes_to_its_digest(
        registry, tmp_path):
    source = FilesystemStore(tmp_path / "source")
    first = random_artifact(tmp_path, 12 << 20, seed=41)
    second = assemble({"format": "gguf", "architecture": "random-b"}, list(first.layers),
                      created="2025-01-02T00:00:00Z")
    _push(registry, source, first, "team/shared:a")
    _push(registry, source, second, "team/shared:b")
    shared = first.layers[0].digest
    # a slow link, so both pulls are mid-layer at once
    relay = CuttingRelay(int(registry.host.rsplit(":", 1)[1]), shared, pace=0.003)
    try:
        with Server(tmp_path / "models") as server:
            answers = {}
            threads = [threading.Thread(target=lambda t=t: answers.__setitem__(
                t, _pull_lines(server, f"{relay.host}/team/shared:{t}"))) for t in "ab"]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(300)
            hashes = blob_hashes_ok(server.models_path)
            assert hashes[shared.split(":")[1]], "the shared layer does not hash to its digest"
            assert all(hashes.values())
            for tag in "ab":
                assert answers[tag][-1]["type"] == "success", answers[tag][-1]
            listed = {m["id"] for m in httpx.get(server.url + "/models").json()}
            assert listed == {first.model_id, second.model_id}
            assert leftovers(server.models_path) == []
            assert server.model("fsck").returncode == 0
    finally:
        relay.close()


def test_a_pull_repairs_a_model_that_fsck_left_broken(registry, tmp_path):
    source = FilesystemStore(tmp_path / "source")
    artifact = gguf_artifact(tmp_path, seed=42, n=4096)
    _push(registry, source, artifact, "team/repairable:v1")
    name = f"{registry.host}/team/repairable:v1"
    with Server(tmp_path / "models") as server:
        assert _pull_lines(server, name)[-1]["type"] == "success"
        weights = server.models_path / "blobs" / "sha256" / artifact.layers[0].digest.split(":")[1]
        data = bytearray(weights.read_bytes())
        data[100] ^= 0x01
        weights.write_bytes(bytes(data))
        assert server.model("fsck", "--repair", check=False).returncode == 1
        listed = httpx.get(server.url + "/models").json()
        assert "missing" in listed[0]["broken"]
        assert _pull_lines(server, name)[-1]["type"] == "success"
        assert "broken" not in httpx.get(server.url + "/models").json()[0]
        assert hashlib.sha256(weights.read_bytes()).hexdigest() == weights.name
        assert server.model("fsck").returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB tmpfs: a store on it fills up for real (ENOSPC from the kernel)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _used(path):
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def test_a_pull_onto_a_full_disk_ends_with_a_clear_error_and_leaves_nothing(registry, tmp_path,
                                                                            small_disk):
    source = FilesystemStore(tmp_path / "source")
    _push(registry, source, gguf_artifact(tmp_path, seed=43), "team/fits:v1")
    _push(registry, source, random_artifact(tmp_path, 96 << 20, seed=44), "team/too-big:v1")
    with Server(small_disk / "models") as server:
        assert _pull_lines(server, f"{registry.host}/team/fits:v1")[-1]["type"] == "success"
        before = httpx.get(server.url + "/models").json()
        blobs_before = set(blob_hashes_ok(server.models_path))
        used_before = _used(small_disk)

        dmr = server.model("pull", f"{registry.host}/team/too-big:v1", check=False)
        assert dmr.returncode == 1
        assert leftovers(server.models_path) == []  # its partial file is gone
        assert "no space left" in dmr.stderr and "model store" in dmr.stderr, dmr.stderr

        ollama = httpx.post(server.url + "/api/pull", json={
            "model": f"{registry.host}/team/too-big:v1", "stream": False}, timeout=300)
        assert ollama.status_code == 507 and "no space left" in ollama.json()["error"]

        assert httpx.get(server.url + "/models").json() == before
        assert set(blob_hashes_ok(server.models_path)) == blobs_before
        assert leftovers(server.models_path) == []
        assert _used(small_disk) < used_before + (4 << 20)  # logs grow a little; no partial blob
        assert server.model("fsck").returncode == 0


def test_a_package_or_upload_onto_a_full_disk_ends_with_a_clear_error_and_leaves_nothing(
        tmp_path, small_disk):
    from modelrunner.testing import write_small_gguf
    big = write_small_gguf(tmp_path / "big.gguf", name="big", values=24 << 20)  # 96 MiB
    with Server(small_disk / "models") as server:
        before = httpx.get(server.url + "/models").json()
        used_before = _used(small_disk)

        package = server.model("package", "--gguf", str(big), "ai/too-big", check=False)
        assert package.returncode == 1
        assert leftovers(server.models_path) == []
        assert "no space left" in package.stderr and "model store" in package.stderr, \
            package.stderr

        data = big.read_bytes()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        upload = httpx.post(server.url + f"/api/blobs/{digest}", content=data, timeout=300)
        assert upload.status_code == 507 and "no space left" in upload.json()["error"]

        assert httpx.get(server.url + "/models").json() == before
        assert blob_hashes_ok(server.models_path) == {}
        assert leftovers(server.models_path) == []
        assert _used(small_disk) < used_before + (4 << 20)
        assert server.model("fsck").returncode == 0
