import hashlib
import json
import os
import struct

import numpy as np
import pytest

from modelrunner.packaging import PackagingError, build_dduf_artifact, build_gguf_artifact, build_safetensors_artifact
from modelrunner.packaging import artifact as art
from modelrunner.testing import smollm2_gguf

FIXED = 1_700_000_000


def _touch(*paths, t=FIXED):
    for p in paths:
        os.utime(p, (t, t))


def _sha(path):
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_media_types():
    assert art.MEDIA_TYPE_CONFIG_V01 == "application/vnd.docker.ai.model.config.v0.1+json"
    assert art.MEDIA_TYPE_CONFIG_V02 == "application/vnd.docker.ai.model.config.v0.2+json"
    assert art.MEDIA_TYPE_GGUF == "application/vnd.docker.ai.gguf.v3"
    assert art.MEDIA_TYPE_SAFETENSORS == "application/vnd.docker.ai.safetensors"
    assert art.MEDIA_TYPE_LICENSE == "application/vnd.docker.ai.license"
    assert art.MEDIA_TYPE_CHAT_TEMPLATE == "application/vnd.docker.ai.chat.template.jinja"
    assert art.MEDIA_TYPE_CNCF_CONFIG_V1 == "application/vnd.cncf.model.config.v1+json"
    assert art.MEDIA_TYPE_OCI_MANIFEST == "application/vnd.oci.image.manifest.v1+json"


def test_smollm2_artifact():
    path = smollm2_gguf()
    a = build_gguf_artifact(path)
    b = build_gguf_artifact(path)
    assert a.model_id == b.model_id
    assert a.model_id == "sha256:" + hashlib.sha256(a.manifest_bytes).hexdigest()
    assert a.config_digest == "sha256:" + hashlib.sha256(a.config_bytes).hexdigest()
    cfg = json.loads(a.config_bytes)
    c = cfg["config"]
    assert (c["format"], c["architecture"], c["quantization"], c["parameters"]) == ("gguf", "llama", "Q4_1", "134.52M")
    assert c["context_size"] == 8192
    assert c["size"] == "93.81MiB"
    assert c["gguf"]["general.architecture"] == "llama"
    assert cfg["rootfs"] == {"type": "rootfs", "diff_ids": [a.layers[0].digest]}
    assert cfg["descriptor"]["created"].endswith("Z")
    man = json.loads(a.manifest_bytes)
    assert man["schemaVersion"] == 2
    assert man["mediaType"] == art.MEDIA_TYPE_OCI_MANIFEST
    assert man["config"] == {"mediaType": art.MEDIA_TYPE_CONFIG_V01, "size": len(a.config_bytes), "digest": a.config_digest}
    (layer,) = man["layers"]
    assert layer["mediaType"] == art.MEDIA_TYPE_GGUF
    assert layer["size"] == path.stat().st_size
    ann = layer["annotations"]
    assert ann["org.cncf.model.filepath"] == path.name
    assert ann["org.cncf.model.file.mediatype.untested"] == "false"
    md = json.loads(ann["org.cncf.model.file.metadata+json"])
    assert md == {"name": path.name, "mode": md["mode"], "uid": 0, "gid": 0, "size": path.stat().st_size,
                  "mtime": cfg["descriptor"]["created"], "typeflag": 0}
    assert a.files == [a.layers[0].digest, a.config_digest]


def test_layer_digest_streams(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(os.urandom(3 * (1 << 20) + 17))
    layer = art.make_layer(p, art.MEDIA_TYPE_MODEL_FILE)
    assert layer.digest == _sha(p)
    assert layer.size == p.stat().st_size


@pytest.fixture
def tiny(tmp_path, make_gguf):
    g = make_gguf(tmp_path / "tiny.gguf")
    lic = tmp_path / "LICENSE"
    lic.write_text("MIT\n")
    tpl = tmp_path / "template.jinja"
    tpl.write_text("{{ messages }}")
    mm = make_gguf(tmp_path / "mmproj.gguf", arch="clip")
    _touch(g, lic, tpl, mm)
    return {"gguf": g, "license": lic, "template": tpl, "mmproj": mm}


@pytest.mark.parametrize(
    "kwargs_a, kwargs_b, same",
    [
        ({}, {}, True),
        ({}, {"licenses": ["license"]}, False),
        ({"licenses": ["license"]}, {"licenses": ["license"]}, True),
        ({}, {"chat_template": "template"}, False),
        ({}, {"mmproj": "mmproj"}, False),
        ({}, {"context_size": 2048}, False),
        ({}, {"created": "2020-01-01T00:00:00Z"}, False),
    ],
)
def test_model_id_determinism(tiny, kwargs_a, kwargs_b, same):
    def build(kwargs):
        resolved = {}
        for k, v in kwargs.items():
            if k == "licenses":
                resolved[k] = [tiny[x] for x in v]
            elif k in ("chat_template", "mmproj"):
                resolved[k] = tiny[v]
            else:
                resolved[k] = v
        return build_gguf_artifact(tiny["gguf"], **resolved)

    assert (build(kwargs_a).model_id == build(kwargs_b).model_id) is same


def test_layer_order_and_types(tiny):
    a = build_gguf_artifact(tiny["gguf"], licenses=[tiny["license"]], chat_template=tiny["template"],
                            mmproj=tiny["mmproj"], context_size=1024)
    assert [layer.media_type for layer in a.layers] == [
        art.MEDIA_TYPE_GGUF, art.MEDIA_TYPE_LICENSE, art.MEDIA_TYPE_MMPROJ, art.MEDIA_TYPE_CHAT_TEMPLATE]
    cfg = json.loads(a.config_bytes)
    assert cfg["config"]["context_size"] == 1024
    assert cfg["rootfs"]["diff_ids"] == [layer.digest for layer in a.layers]
    assert cfg["descriptor"]["created"] == "2023-11-14T22:13:20Z"  # newest input mtime (FIXED)


def test_created_is_newest_input_mtime(tiny):
    _touch(tiny["license"], t=FIXED + 3600)
    a = build_gguf_artifact(tiny["gguf"], licenses=[tiny["license"]])
    assert json.loads(a.config_bytes)["descriptor"]["created"] == "2023-11-14T23:13:20Z"


def test_sharded_gguf(tmp_path, make_gguf):
    shards = [make_gguf(tmp_path / f"x-{i:05d}-of-00003.gguf",
                        tensors={f"t{i}": np.full((2, 4), i, np.float32)}) for i in (1, 2, 3)]
    a = build_gguf_artifact(shards[0])
    assert [layer.media_type for layer in a.layers] == [art.MEDIA_TYPE_GGUF] * 3
    assert [layer.filepath for layer in a.layers] == [s.name for s in shards]
    assert [layer.digest for layer in a.layers] == [_sha(s) for s in shards]
    assert json.loads(a.config_bytes)["config"]["parameters"] == "24"  # 3 x 8 elements


def test_missing_shard(tmp_path, make_gguf):
    first = make_gguf(tmp_path / "x-00001-of-00003.gguf")
    make_gguf(tmp_path / "x-00003-of-00003.gguf")
    with pytest.raises(PackagingError, match=r"found 2 of 3 shards, missing x-00002-of-00003\.gguf"):
        build_gguf_artifact(first)


@pytest.mark.parametrize(
    "content, message",
    [(b"hello world, not a model", "not a GGUF file"), (None, "truncated")],
)
def test_build_rejects_bad_gguf(tmp_path, make_gguf, content, message):
    path = tmp_path / "m.gguf"
    if content is None:
        data = make_gguf(path, tensors={"a": np.ones((32, 32), np.float32)}).read_bytes()
        path.write_bytes(data[:-100])
    else:
        path.write_bytes(content)
    with pytest.raises(PackagingError, match=message):
        build_gguf_artifact(path)


@pytest.mark.parametrize("kwarg", ["licenses", "chat_template", "mmproj"])
def test_missing_extra_file(tiny, tmp_path, kwarg):
    missing = tmp_path / "nope"
    value = [missing] if kwarg == "licenses" else missing
    with pytest.raises(PackagingError, match="does not exist"):
        build_gguf_artifact(tiny["gguf"], **{kwarg: value})


@pytest.mark.parametrize("size", [0, -1, 2**31, "8k"])
def test_bad_context_size(tiny, size):
    with pytest.raises(PackagingError, match="context size"):
        build_gguf_artifact(tiny["gguf"], context_size=size)


def _write_safetensors(path, tensors, metadata=None):
    header = {name: {"dtype": dtype, "shape": shape, "data_offsets": [0, 0]} for name, (dtype, shape) in tensors.items()}
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 64)


def test_safetensors_directory(tmp_path):
    d = tmp_path / "model"
    (d / "sub").mkdir(parents=True)
    (d / ".git").mkdir()
    (d / ".git" / "HEAD").write_text("x")
    _write_safetensors(d / "model-00001-of-00002.safetensors", {"a": ("BF16", [4, 8])}, {"format": "pt"})
    _write_safetensors(d / "model-00002-of-00002.safetensors", {"b": ("BF16", [10])})
    _write_safetensors(d / "sub" / "encoder.safetensors", {"c": ("BF16", [2, 3])})
    (d / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                                                "max_position_embeddings": 32768}))
    (d / "tokenizer.json").write_text("{}")
    (d / "LICENSE").write_text("Apache")
    (d / "chat_template.jinja").write_text("{{ x }}")
    a = build_safetensors_artifact(d)
    assert a.config_media_type == art.MEDIA_TYPE_CONFIG_V02
    by_path = {layer.filepath: layer.media_type for layer in a.layers}
    assert by_path == {
        "LICENSE": art.MEDIA_TYPE_LICENSE,
        "chat_template.jinja": art.MEDIA_TYPE_CHAT_TEMPLATE,
        "config.json": art.MEDIA_TYPE_MODEL_FILE,
        "model-00001-of-00002.safetensors": art.MEDIA_TYPE_SAFETENSORS,
        "model-00002-of-00002.safetensors": art.MEDIA_TYPE_SAFETENSORS,
        "sub/encoder.safetensors": art.MEDIA_TYPE_SAFETENSORS,
        "tokenizer.json": art.MEDIA_TYPE_MODEL_FILE,
    }
    c = json.loads(a.config_bytes)["config"]
    assert c["format"] == "safetensors"
    assert c["architecture"] == "Qwen2ForCausalLM"
    assert c["context_size"] == 32768
    assert c["parameters"] == "48"
    assert c["quantization"] == "BF16"
    assert c["safetensors"] == {"format": "pt", "tensor_count": "3"}
    assert build_safetensors_artifact(d).model_id == a.model_id


def test_safetensors_requires_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(PackagingError, match="no .safetensors"):
        build_safetensors_artifact(tmp_path)


def test_safetensors_bad_header(tmp_path):
    (tmp_path / "m.safetensors").write_bytes(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(PackagingError, match="truncated"):
        build_safetensors_artifact(tmp_path)


def test_dduf(tmp_path):
    import zipfile

    p = tmp_path / "flux.dduf"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("model_index.json", "{}")
    a = build_dduf_artifact(p)
    assert [layer.media_type for layer in a.layers] == [art.MEDIA_TYPE_DDUF]
    assert json.loads(a.config_bytes)["config"]["format"] == "dduf"
    (tmp_path / "bad.dduf").write_text("nope")
    with pytest.raises(PackagingError, match="not a DDUF"):
        build_dduf_artifact(tmp_path / "bad.dduf")
