"""GET /models/{ref}/export: the model as DMR's tar (blobs/sha256/<hex> + manifest.json), streamed
straight from the store's files, never built in memory or on disk."""

import json
import tarfile

CHUNK = 1 << 20


def _header(name, size):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    return info.tobuf(format=tarfile.PAX_FORMAT)


def stream_model_tar(store, model):
    manifest = store.manifest_bytes(model.id)
    digests = [layer["digest"] for layer in json.loads(manifest).get("layers", [])]
    digests.append(json.loads(manifest)["config"]["digest"])
    for digest in digests:
        path = store.blob_path(digest)
        size = path.stat().st_size
        yield _header(f"blobs/sha256/{digest.split(':', 1)[1]}", size)
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk
        if size % 512:
            yield b"\0" * (512 - size % 512)
    yield _header("manifest.json", len(manifest))
    yield manifest + b"\0" * ((512 - len(manifest) % 512) % 512)
    yield b"\0" * 1024
