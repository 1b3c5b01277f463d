import hashlib
import io
import json
import shutil
import tarfile

import pytest

from modelrunner.packaging import PackagingError, build_gguf_artifact, read_model_tar, write_model_tar
from modelrunner.testing import smollm2_gguf


class _NoSeek(io.RawIOBase):
    """A pipe-like stream: write/read only, no seek or tell, to prove both directions stream."""

    def __init__(self, inner):
        self.inner = inner

    def writable(self):
        return True

    def readable(self):
        return True

    def write(self, b):
        return self.inner.write(b)

    def readinto(self, b):
        data = self.inner.read(len(b))
        b[: len(data)] = data
        return len(data)


@pytest.fixture
def artifact(tmp_path, make_gguf):
    g = make_gguf(tmp_path / "tiny.gguf")
    lic = tmp_path / "LICENSE"
    lic.write_text("MIT")
    return build_gguf_artifact(g, licenses=[lic])


def _roundtrip(art, tmp_path):
    out = tmp_path / "model.tar"
    with open(out, "wb") as f:
        write_model_tar(art, _NoSeek(f))
    blobs = {}

    def write_blob(digest, stream):
        dest = tmp_path / "blobs" / digest.replace(":", "-")
        dest.parent.mkdir(exist_ok=True)
        with open(dest, "wb") as f:
            shutil.copyfileobj(stream, f, 1 << 20)
        blobs[digest] = dest

    with open(out, "rb") as f:
        manifest = read_model_tar(_NoSeek(f), write_blob)
    return out, manifest, blobs


def test_roundtrip(artifact, tmp_path):
    out, manifest, blobs = _roundtrip(artifact, tmp_path)
    assert manifest == artifact.manifest_bytes
    assert set(blobs) == {layer.digest for layer in artifact.layers} | {artifact.config_digest}
    for layer in artifact.layers:
        assert blobs[layer.digest].read_bytes() == layer.path.read_bytes()
    assert blobs[artifact.config_digest].read_bytes() == artifact.config_bytes
    with tarfile.open(out) as tf:
        names = tf.getnames()
    assert names[:2] == ["blobs", "blobs/sha256"]
    assert names[-1] == "manifest.json"
    assert names[-2] == "blobs/sha256/" + artifact.config_digest.split(":")[1]


def test_roundtrip_smollm2(tmp_path):
    art = build_gguf_artifact(smollm2_gguf())
    _, manifest, blobs = _roundtrip(art, tmp_path)
    assert hashlib.sha256(manifest).hexdigest() == art.model_id.split(":")[1]
    assert blobs[art.layers[0].digest].stat().st_size == art.layers[0].size


def test_tar_is_deterministic(artifact):
    a, b = io.BytesIO(), io.BytesIO()
    write_model_tar(artifact, a)
    write_model_tar(artifact, b)
    assert a.getvalue() == b.getvalue()


def _tar(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _members(art):
    out = [("blobs/sha256/" + layer.digest.split(":")[1], layer.path.read_bytes()) for layer in art.layers]
    out.append(("blobs/sha256/" + art.config_digest.split(":")[1], art.config_bytes))
    out.append(("manifest.json", art.manifest_bytes))
    return out


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda m: [x for x in m if x[0] != "manifest.json"], "no manifest.json"),
        (lambda m: m[1:], "missing blob"),
        (lambda m: [(m[0][0], b"tampered")] + m[1:], "does not match its digest"),
        (lambda m: m[:-1] + [("manifest.json", b"{not json")], "invalid manifest"),
    ],
)
def test_read_errors(artifact, mutate, message):
    with pytest.raises(PackagingError, match=message):
        read_model_tar(_tar(mutate(_members(artifact))), lambda d, s: s.read())


def test_have_blob_allows_omitted(artifact):
    members = _members(artifact)[1:]
    first = artifact.layers[0].digest
    manifest = read_model_tar(_tar(members), lambda d, s: None, have_blob=lambda d: d == first)
    assert json.loads(manifest)["layers"][0]["digest"] == first


def test_truncated_tar(artifact):
    buf = io.BytesIO()
    write_model_tar(artifact, buf)
    with pytest.raises(PackagingError):
        read_model_tar(io.BytesIO(buf.getvalue()[:1500]), lambda d, s: s.read())


def test_a_tar_with_an_oversized_pax_header_is_refused_before_it_is_read(artifact):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in _members(artifact):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if name == "manifest.json":
                info.pax_headers = {"comment": "x" * (8 << 20)}  # 8 MiB held in memory
            tf.addfile(info, io.BytesIO(data))
    buf.seek(0)
    with pytest.raises(PackagingError, match="extended header"):
        read_model_tar(_NoSeek(buf), lambda d, s: s.read())


def test_a_tar_with_an_oversized_long_name_is_refused(artifact):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        members = _members(artifact)
        for name, data in [("blobs/" + "n" * (1 << 20), b"x")] + members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    buf.seek(0)
    with pytest.raises(PackagingError, match="extended header"):
        read_model_tar(_NoSeek(buf), lambda d, s: s.read())


def test_dot_slash_names(artifact):
    members = [("./" + n, d) for n, d in _members(artifact)]
    assert read_model_tar(_tar(members), lambda d, s: s.read()) == artifact.manifest_bytes
