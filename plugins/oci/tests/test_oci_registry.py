"""The OCI source against a real registry (Debian's docker-registry on 127.0.0.1)."""

import base64
import hashlib
import json
import time

import pytest

from modelrunner import SourceError, references
from modelrunner.testing import FilesystemStore
from modelrunner_oci import register_sources
from modelrunner_oci.push import push_artifact
from modelrunner_oci.source import OciSource
from modelrunner_oci.push import push_blobs_and_manifest
from modelrunner_oci.registry import base_url, registry_host

from plugins.oci.tests.conftest import env_credentials, trust_token_realm
from plugins.oci.tests.oci_registry import PASSWORD, USER
from plugins.oci.tests.oci_helpers import (CuttingRelay, Recorder, RedirectingFront, gguf_artifact, put_in_store,
                         random_artifact)

SOURCE = OciSource()


def ref(text):
    return references.parse(text)


def blob_files(store):
    return sorted(p.name for p in (store.root / "blobs" / "sha256").iterdir())


@pytest.fixture
def stores(tmp_path):
    return FilesystemStore(tmp_path / "a"), FilesystemStore(tmp_path / "b")


def test_the_plugin_registers_a_fallback_source_for_everything_but_hugging_face():
    found = []
    register_sources(register=found.append, settings=None)
    [source] = found
    assert source.fallback is True
    assert source.handles(ref("ai/smollm2"))
    assert source.handles(ref("localhost:5000/team/model:v1"))
    assert not source.handles(ref("hf.co/org/repo"))


def test_registry_endpoints_follow_dmr_rules(monkeypatch):
    assert registry_host("docker.io") == "registry-1.docker.io"
    assert base_url("registry-1.docker.io") == "https://registry-1.docker.io"
    assert base_url("localhost:5000") == "http://localhost:5000"
    assert base_url("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert base_url("[::1]:5000") == "http://[::1]:5000"
    assert base_url("registry.example.com:5000") == "https://registry.example.com:5000"
    monkeypatch.setenv("INSECURE_REGISTRY", "registry.example.com:5000, other.lan")
    assert base_url("registry.example.com:5000") == "http://registry.example.com:5000"
    assert base_url("other.lan") == "http://other.lan"
    monkeypatch.setenv("DEFAULT_REGISTRY", "mirror.example.com")
    assert registry_host("docker.io") == "mirror.example.com"


def test_push_then_pull_gives_identical_blobs_and_model_id(registry, stores, tmp_path):
    first, second = stores
    model = put_in_store(first, gguf_artifact(tmp_path, seed=1), "team/tiny:v1")
    target = ref(f"{registry.host}/team/tiny:v1")
    pushed = Recorder("push")
    SOURCE.push(target, model, first, pushed.progress)
    assert any(m.get("layer") for m in pushed.messages)

    pulled = Recorder()
    got = SOURCE.pull(target, second, pulled.progress)
    assert got.id == model.id
    assert got.tags == [str(target)]
    assert blob_files(second) == blob_files(first)
    for name in blob_files(first):
        assert (first.root / "blobs/sha256" / name).read_bytes() == \
            (second.root / "blobs/sha256" / name).read_bytes()
    assert got.inner_config["format"] == "gguf"
    # progress: the total first, then per-layer updates that end complete
    assert pulled.messages[0]["total"] == sum(len((first.root / "blobs/sha256" / n).read_bytes())
                                              for n in blob_files(first))
    last = {m["layer"]["id"]: m["layer"] for m in pulled.messages if m.get("layer")}
    assert set(last) == set(model.files)
    assert all(layer["current"] == layer["size"] for layer in last.values())


def test_pull_by_tag_and_by_digest(registry, stores, tmp_path):
    first, second = stores
    model = put_in_store(first, gguf_artifact(tmp_path, seed=2), "x")
    SOURCE.push(ref(f"{registry.host}/team/bydigest:v2"), model, first, None)

    by_digest = SOURCE.pull(ref(f"{registry.host}/team/bydigest@{model.id}"), second, None)
    assert by_digest.id == model.id
    assert by_digest.tags == []  # a digest pull names the model by its ID only
    assert second.get(f"{registry.host}/team/bydigest@{model.id}").id == model.id

    by_tag = SOURCE.pull(ref(f"{registry.host}/team/bydigest:v2"), second, None)
    assert by_tag.id == model.id
    assert second.get(f"{registry.host}/team/bydigest:v2").id == model.id


def test_pull_of_cached_model_says_using_cached_model(registry, stores, tmp_path):
    first, second = stores
    model = put_in_store(first, gguf_artifact(tmp_path, seed=3), "x")
    SOURCE.push(ref(f"{registry.host}/team/cached:v1"), model, first, None)
    SOURCE.pull(ref(f"{registry.host}/team/cached:v1"), second, None)

    again = Recorder()
    SOURCE.push(ref(f"{registry.host}/team/cached:other"), model, first, None)
    got = SOURCE.pull(ref(f"{registry.host}/team/cached:other"), second, again.progress)
    assert got.id == model.id
    size = model.inner_config["size"]
    assert again.texts() == [f"Using cached model: {size}"]
    assert not any(m.get("layer") for m in again.messages)  # nothing downloaded
    assert set(second.get(model.id).tags) == {f"{registry.host}/team/cached:v1",
                                              f"{registry.host}/team/cached:other"}


def test_push_skips_blobs_the_registry_already_has(registry, stores, tmp_path):
    first, _ = stores
    model = put_in_store(first, gguf_artifact(tmp_path, seed=4), "x")
    SOURCE.push(ref(f"{registry.host}/team/skip:v1"), model, first, None)
    again = Recorder("push")
    SOURCE.push(ref(f"{registry.host}/team/skip:v2"), model, first, again.progress)
    # every layer reported complete at once: HEAD found them, no upload
    layers = [m["layer"] for m in again.messages if m.get("layer")]
    assert layers and all(layer["current"] == layer["size"] for layer in layers)


def test_pull_of_a_missing_tag_is_404(registry, stores):
    _, second = stores
    with pytest.raises(SourceError) as e:
        SOURCE.pull(ref(f"{registry.host}/team/nothing-here:v1"), second, None)
    assert e.value.status == 404
    assert second.models() == []


def test_foreign_config_media_type_gives_422_and_nothing_stored(registry, stores, tmp_path):
    _, second = stores
    artifact = gguf_artifact(tmp_path, seed=5)
    manifest = dict(artifact.manifest)
    manifest["config"] = dict(manifest["config"], mediaType="application/vnd.oci.image.config.v1+json")
    manifest_bytes = json.dumps(manifest).encode()
    blobs = [(d, s, (lambda src=src: open(src.path, "rb")) if not isinstance(src, bytes)
              else (lambda src=src: __import__("io").BytesIO(src))) for d, s, src in artifact.blobs()]
    push_blobs_and_manifest(ref(f"{registry.host}/team/image:v1"), blobs, manifest_bytes, None)

    with pytest.raises(SourceError) as e:
        SOURCE.pull(ref(f"{registry.host}/team/image:v1"), second, None)
    assert e.value.status == 422
    assert "application/vnd.oci.image.config.v1+json" in str(e.value)
    assert second.models() == []
    assert blob_files(second) == []  # rejected before any layer was downloaded


def test_blob_with_wrong_digest_is_rejected_and_nothing_stored(registry, stores, tmp_path):
    first, second = stores
    artifact = gguf_artifact(tmp_path, seed=6)
    model = put_in_store(first, artifact, "x")
    SOURCE.push(ref(f"{registry.host}/team/corrupt:v1"), model, first, None)
    layer = artifact.layers[0]
    data_path = registry.blob_data_path(layer.digest)
    data = bytearray(data_path.read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes
    data_path.write_bytes(bytes(data))

    with pytest.raises(SourceError) as e:
        SOURCE.pull(ref(f"{registry.host}/team/corrupt:v1"), second, None)
    assert layer.digest in str(e.value)
    assert second.models() == []
    assert not second.has_blob(layer.digest)
    assert not any(name.startswith(layer.digest.split(":")[1]) for name in blob_files(second))


def test_connection_cut_mid_blob_leaves_no_model_and_next_pull_resumes(registry, stores, tmp_path):
    first, second = stores
    artifact = random_artifact(tmp_path, 4 << 20, seed=7)
    model = put_in_store(first, artifact, "x")
    SOURCE.push(ref(f"{registry.host}/team/cut:v1"), model, first, None)
    digest = artifact.layers[0].digest
    relay = CuttingRelay(int(registry.host.rsplit(":", 1)[1]), digest, cut_after=300_000)
    try:
        with pytest.raises(SourceError) as e:
            SOURCE.pull(ref(f"{relay.host}/team/cut:v1"), second, None)
        assert e.value.status == 502
        assert second.models() == []
        partial = second.blob_path(digest).with_name(digest.split(":")[1] + ".incomplete")
        assert partial.exists()
        kept = partial.stat().st_size
        assert 0 < kept < (4 << 20)

        relay.cut_after = None  # the network is healthy again
        relay.heads.clear()
        got = SOURCE.pull(ref(f"{relay.host}/team/cut:v1"), second, None)
        assert got.id == model.id
        ranges = relay.range_requests()
        assert ranges, "the second pull did not resume with a Range request"
        assert f"bytes={kept}-" in ranges[0]
        assert hashlib.sha256(second.blob_path(digest).read_bytes()).hexdigest() == digest.split(":")[1]
    finally:
        relay.close()


def test_blob_redirected_to_another_host_is_fetched_without_the_registry_credentials(
        registry, stores, tmp_path):
    first, second = stores
    artifact = random_artifact(tmp_path, 6 << 20, seed=9)
    model = put_in_store(first, artifact, "x")
    SOURCE.push(ref(f"{registry.host}/team/cdn:v1"), model, first, None)
    digest = artifact.layers[0].digest
    cdn = CuttingRelay(int(registry.host.rsplit(":", 1)[1]), digest)  # another host:port
    front = RedirectingFront(registry.host, cdn.host)
    try:
        got = SOURCE.pull(ref(f"{front.host}/team/cdn:v1"), second, None, token="registry-secret")
        assert got.id == model.id
        assert second.blob_path(digest).read_bytes() == first.blob_path(digest).read_bytes()
        asked = [h for h in front.heads if h.startswith(f"GET /v2/team/cdn/blobs/{digest}")]
        assert asked and all("Bearer registry-secret" in h for h in asked)
        fetched = [h for h in cdn.heads if f"/blobs/{digest}" in h]
        assert fetched and not any("authorization:" in h.lower() for h in fetched)
    finally:
        front.close()
        cdn.close()


def test_fallback_reader_fills_buffers_from_an_httpx_stream(registry, stores, tmp_path):
    import httpx

    from modelrunner import downloads
    first, _ = stores
    artifact = random_artifact(tmp_path, 1_000_003, seed=10)
    model = put_in_store(first, artifact, "x")
    SOURCE.push(ref(f"{registry.host}/team/fallback:v1"), model, first, None)
    digest = artifact.layers[0].digest
    got = bytearray()
    with httpx.stream("GET", f"http://{registry.host}/v2/team/fallback/blobs/{digest}") as r:
        readinto = downloads.chunks_readinto(r.iter_raw())
        view = memoryview(bytearray(100_000))
        while count := readinto(view):
            got += view[:count]
    assert bytes(got) == first.blob_path(digest).read_bytes()


def test_push_artifact_publishes_a_package_without_the_store(registry, stores, tmp_path):
    _, second = stores
    artifact = gguf_artifact(tmp_path, seed=8)
    model_id = push_artifact(ref(f"{registry.host}/team/packaged:v1"), artifact)
    assert model_id == artifact.model_id
    got = SOURCE.pull(ref(f"{registry.host}/team/packaged:v1"), second, None)
    assert got.id == artifact.model_id


# -- authentication -----------------------------------------------------------------------------


def test_basic_auth_push_and_pull(auth_registry, stores, tmp_path, monkeypatch):
    first, second = stores
    model = put_in_store(first, gguf_artifact(tmp_path, seed=9), "x")
    env_credentials(monkeypatch, auth_registry.host)
    SOURCE.push(ref(f"{auth_registry.host}/team/private:v1"), model, first, None)
    assert SOURCE.pull(ref(f"{auth_registry.host}/team/private:v1"), second, None).id == model.id


def test_credentials_come_from_the_docker_config(auth_registry, stores, tmp_path, monkeypatch):
    first, second = stores
    model = put_in_store(first, gguf_artifact(tmp_path, seed=10), "x")
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir(exist_ok=True)
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": encoded}}}))
    SOURCE.push(ref(f"{auth_registry.host}/team/fromconfig:v1"), model, first, None)
    assert SOURCE.pull(ref(f"{auth_registry.host}/team/fromconfig:v1"), second, None).id == model.id


def test_credentials_come_from_a_credential_helper(auth_registry, stores, tmp_path, monkeypatch):
    first, second = stores
    model = put_in_store(first, gguf_artifact(tmp_path, seed=11), "x")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-testhelper"
    helper.write_text(f"#!/bin/sh\nread server\n"
                      f"echo '{{\"ServerURL\":\"'$server'\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "config.json").write_text(json.dumps({"credHelpers": {auth_registry.host: "testhelper"}}))
    SOURCE.push(ref(f"{auth_registry.host}/team/helper:v1"), model, first, None)
    assert SOURCE.pull(ref(f"{auth_registry.host}/team/helper:v1"), second, None).id == model.id


def test_wrong_credentials_fail_with_401_within_2_seconds(auth_registry, stores, monkeypatch):
    _, second = stores
    env_credentials(monkeypatch, auth_registry.host, "wrong")
    started = time.monotonic()
    with pytest.raises(SourceError) as e:
        SOURCE.pull(ref(f"{auth_registry.host}/team/private:v1"), second, None)
    assert time.monotonic() - started < 2
    assert e.value.status == 401
    assert "wrong username or password" in str(e.value)
    assert second.models() == []


def test_anonymous_pull_from_a_private_registry_asks_for_credentials(auth_registry, stores):
    _, second = stores
    with pytest.raises(SourceError) as e:
        SOURCE.pull(ref(f"{auth_registry.host}/team/private:v1"), second, None)
    assert e.value.status == 401
    assert "docker login" in str(e.value)


def test_token_auth_push_and_pull(token_registry, stores, tmp_path, monkeypatch):
    first, second = stores
    model = put_in_store(first, gguf_artifact(tmp_path, seed=12), "x")
    env_credentials(monkeypatch, token_registry.host)
    trust_token_realm(token_registry)
    target = ref(f"{token_registry.host}/team/tokened:v1")
    SOURCE.push(target, model, first, None)
    assert ["repository:team/tokened:pull,push"] in [s[:1] for s in token_registry.tokens.requests]
    monkeypatch.delenv("MODELRUNNER_REGISTRY_USERNAME")
    monkeypatch.delenv("MODELRUNNER_REGISTRY_PASSWORD")
    # anonymous: the token server grants pull
    assert SOURCE.pull(target, second, None).id == model.id


def test_token_auth_with_wrong_password_fails_fast_with_401(token_registry, stores, monkeypatch):
    _, second = stores
    env_credentials(monkeypatch, token_registry.host, "wrong")
    trust_token_realm(token_registry)
    started = time.monotonic()
    with pytest.raises(SourceError) as e:
        SOURCE.pull(ref(f"{token_registry.host}/team/tokened:v1"), second, None)
    assert time.monotonic() - started < 2
    assert e.value.status == 401
    assert "wrong username or password" in str(e.value)


def test_anonymous_push_to_a_token_registry_is_refused(token_registry, stores, tmp_path):
    first, _ = stores
    model = put_in_store(first, gguf_artifact(tmp_path, seed=13), "x")
    with pytest.raises(SourceError) as e:
        SOURCE.push(ref(f"{token_registry.host}/team/anon:v1"), model, first, None)
    assert e.value.status == 401


def test_a_bearer_token_passed_in_is_sent_as_is(token_registry, stores, tmp_path, monkeypatch):
    first, second = stores
    model = put_in_store(first, gguf_artifact(tmp_path, seed=14), "x")
    target = ref(f"{token_registry.host}/team/bearer:v1")
    token = token_registry.tokens.jwt([{"type": "repository", "name": "team/bearer",
                                        "actions": ["pull", "push"]}])
    before = len(token_registry.tokens.requests)
    SOURCE.push(target, model, first, None, token=token)
    assert SOURCE.pull(target, second, None, token=token).id == model.id
    assert len(token_registry.tokens.requests) == before  # no token dance
    with pytest.raises(SourceError) as e:
        SOURCE.pull(target, FilesystemStore(tmp_path / "c"), None, token="not-a-token")
    assert e.value.status == 401


GEVENT_PULL = r"""
from gevent import monkey; monkey.patch_all()
import sys, gevent
from modelrunner import references
from modelrunner.testing import FilesystemStore
from modelrunner_oci.source import OciSource
ticks = []
def ticker():
    for _ in range(20):
        ticks.append(1); gevent.sleep(0.001)
t = gevent.spawn(ticker)
job = gevent.spawn(OciSource().pull, references.parse(sys.argv[1]), FilesystemStore(sys.argv[2]), None)
gevent.joinall([job, t], raise_error=True)
print(job.value.id, len(ticks))
"""


def test_pull_works_in_a_gevent_worker(registry, stores, tmp_path):
    """The server runs gevent workers with monkey patching (and httpcore must not import trio);
    the layer is big enough to be hashed on gevent's OS-thread pool while the hub keeps going."""
    import subprocess
    import sys
    first, _ = stores
    model = put_in_store(first, random_artifact(tmp_path, 24 << 20, seed=15), "x")
    SOURCE.push(ref(f"{registry.host}/team/gevent:v1"), model, first, None)
    out = subprocess.run([sys.executable, "-c", GEVENT_PULL, f"{registry.host}/team/gevent:v1",
                          str(tmp_path / "g")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [model.id, "20"]
