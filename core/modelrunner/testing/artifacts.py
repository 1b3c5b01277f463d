"""Small real artifacts for store and scheduler tests: tiny GGUFs written with the gguf package,
packaged by modelrunner's own packaging and put into a store."""

from pathlib import Path

import numpy as np
from gguf import GGUFWriter

from modelrunner.packaging import build_gguf_artifact


def write_small_gguf(path, name="tiny", values=16, context=256):
    """A valid GGUF with some metadata and one tensor: enough for packaging, not for inference."""
    path = Path(path)
    writer = GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(context)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.arange(values, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def add_to_store(store, gguf_path, tags, **kwargs):
    """Package a GGUF and put it into ``store`` as the server's /models/load would."""
    artifact = build_gguf_artifact(gguf_path, **kwargs)
    for layer in artifact.layers:
        store.import_file(layer.path, layer.digest)
    store.write_blob_bytes(artifact.config_bytes)
    return store.add_model(artifact.manifest_bytes, tags=tags)


def snapshot(root):
    """Every file under a store with its bytes' digest: compare before and after a failure."""
    import hashlib
    root = Path(root)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}
