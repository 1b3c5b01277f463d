"""Hand-made model tars for POST /models/load: any manifest, any config, any layers, so a test
can send what a careless or hostile client would (colliding paths, a config that is not JSON)."""

import hashlib
import io
import json
import tarfile

from modelrunner.packaging.artifact import MEDIA_TYPE_CONFIG_V01, MEDIA_TYPE_GGUF


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(data, media_type=MEDIA_TYPE_GGUF, path=None):
    """(descriptor, bytes); ``path`` sets the org.cncf.model.filepath annotation."""
    descriptor = {"mediaType": media_type, "size": len(data), "digest": digest_of(data)}
    if path is not None:
        descriptor["annotations"] = {"org.cncf.model.filepath": path}
    return descriptor, data


def good_config(**extra):
    return json.dumps({"config": {"format": "gguf", **extra},
                       "descriptor": {"created": "2025-01-01T00:00:00Z"}}).encode()


def model_tar(layers, config_bytes=None, extra_blobs=()):
    """(tar bytes, manifest bytes) of a model with ``layers`` [(descriptor, bytes)]."""
    config_bytes = good_config() if config_bytes is None else config_bytes
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": MEDIA_TYPE_CONFIG_V01, "size": len(config_bytes),
                           "digest": digest_of(config_bytes)},
                "layers": [d for d, _ in layers]}
    manifest_bytes = json.dumps(manifest).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        blobs = {d["digest"]: data for d, data in layers}
        blobs[digest_of(config_bytes)] = config_bytes
        for data in extra_blobs:
            blobs[digest_of(data)] = data
        for digest, data in blobs.items():
            info = tarfile.TarInfo(f"blobs/sha256/{digest.split(':')[1]}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest_bytes)
        tf.addfile(info, io.BytesIO(manifest_bytes))
    return out.getvalue(), manifest_bytes


def blob_hashes_ok(store_root):
    """{name: True/False} for every published blob: do its bytes hash to its name?"""
    folder = store_root / "blobs" / "sha256"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() == p.name
            for p in folder.iterdir() if len(p.name) == 64}


def leftovers(store_root):
    """Files in blobs/ that are not published blobs (partial or temp files)."""
    folder = store_root / "blobs" / "sha256"
    return sorted(p.name for p in folder.iterdir() if len(p.name) != 64)


def nested_array_gguf(depth, key="hostile.nested"):
    """A GGUF v3 file's bytes, written by hand (gguf-py would not), whose one metadata value is
    an array of an array of ... ``depth`` arrays deep, the innermost empty; no tensors."""
    import struct

    name = key.encode()
    kv = struct.pack("<Q", len(name)) + name + struct.pack("<I", 9)  # GGUFValueType.ARRAY
    kv += struct.pack("<IQ", 9, 1) * (depth - 1) + struct.pack("<IQ", 0, 0)  # ARRAY x1 ... UINT8 x0
    return b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + kv
