"""What the index may name: a manifest and config that parse, and layers that unpack cleanly.

Checked once when a model is added (so a bad upload is refused with a 400 and leaves the index as
it was) and again whenever an entry is read (so an entry that went bad on disk, or one an older
version wrote, is listed as broken with the reason instead of failing every listing).
"""

import re

from ..bodies import parse_json
from .errors import InvalidModel

MAX_MANIFEST = 4 << 20
MAX_CONFIG = 4 << 20   # DMR configs are a few KB (long GGUF arrays are dropped); 4 MiB is lavish
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def is_digest(value):
    return isinstance(value, str) and bool(_DIGEST.fullmatch(value))


def _descriptor(value, what):
    if not isinstance(value, dict):
        raise InvalidModel(f"manifest {what} is not an object")
    if not is_digest(value.get("digest")):
        raise InvalidModel(f"manifest {what} has an invalid digest {value.get('digest')!r}")
    size = value.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise InvalidModel(f"manifest {what} has an invalid size {size!r}")
    annotations = value.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        raise InvalidModel(f"manifest {what} has annotations that are not an object")
    return value


def parse_manifest(data):
    """The manifest as a dict with a config and a list of layers; InvalidModel otherwise."""
    if len(data) > MAX_MANIFEST:
        raise InvalidModel(f"manifest is larger than {MAX_MANIFEST >> 20} MiB")
    try:
        manifest = parse_json(data)  # nested too deeply: a ValueError too
    except ValueError as e:
        raise InvalidModel(f"manifest is not JSON: {e}") from None
    if not isinstance(manifest, dict):
        raise InvalidModel("manifest is not a JSON object")
    _descriptor(manifest.get("config"), "config")
    layers = manifest.get("layers", [])
    if not isinstance(layers, list):
        raise InvalidModel("manifest layers are not a list")
    for i, layer in enumerate(layers):
        _descriptor(layer, f"layer {i}")
    return manifest


def manifest_digests(manifest):
    """Every blob a (parsed) manifest names: its layers, then its config."""
    return [layer["digest"] for layer in manifest.get("layers", [])] + [manifest["config"]["digest"]]


def parse_config(data, digest):
    if len(data) > MAX_CONFIG:
        raise InvalidModel(f"config blob {digest} is {len(data)} bytes; the limit is "
                           f"{MAX_CONFIG >> 20} MiB")
    try:
        config = parse_json(data)
    except ValueError as e:
        raise InvalidModel(f"config blob {digest} is not JSON: {e}") from None
    if not isinstance(config, dict):
        raise InvalidModel(f"config blob {digest} is not a JSON object")
    inner = config.get("config", {})
    if not isinstance(inner, dict):
        raise InvalidModel(f"config blob {digest}: \"config\" is not an object")
    return config


def read_config(store, manifest):
    """The parsed config blob of a parsed manifest; InvalidModel when missing, big or not JSON."""
    descriptor = manifest["config"]
    digest = descriptor["digest"]
    path = store.blob_path(digest)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InvalidModel(f"config blob {digest} is missing") from None
    if size > MAX_CONFIG or (descriptor.get("size") or 0) > MAX_CONFIG:
        raise InvalidModel(f"config blob {digest} is {max(size, descriptor.get('size') or 0)} "
                           f"bytes; the limit is {MAX_CONFIG >> 20} MiB")
    return parse_config(path.read_bytes(), digest)


def missing_blobs(store, manifest):
    """Blobs the manifest names that are absent or not the size it says (so not its bytes)."""
    wrong = []
    for descriptor in manifest.get("layers", []) + [manifest["config"]]:
        try:
            size = store.blob_path(descriptor["digest"]).stat().st_size
        except FileNotFoundError:
            wrong.append(f"{descriptor['digest']} (missing)")
            continue
        if descriptor.get("size") is not None and descriptor["size"] != size:
            wrong.append(f"{descriptor['digest']} ({size} bytes, the manifest says "
                         f"{descriptor['size']})")
    return wrong


def _check_path(path, digest):
    if not isinstance(path, str) or not path:
        raise InvalidModel(f"layer {digest} has an empty file path")
    parts = path.split("/")
    if path.startswith("/") or any(part in ("", ".", "..") for part in parts) or "\0" in path:
        raise InvalidModel(f"layer {digest} has the file path {path!r}: a bundle path must be "
                           f"relative, without '.', '..' or empty parts")
    return path


def bundle_files(model_or_manifest):
    """(layer, name) for each layer of a model: where it goes under bundle/model/.

    A layer's name is its ``org.cncf.model.filepath`` annotation, else DMR's: model.gguf (shards,
    when there are several unannotated GGUF layers: model-00001-of-0000N.gguf, in manifest
    order), model.mmproj, template.jinja, license-N.txt, or the digest. Two layers with one name,
    a name that is also another's folder, and absolute, '.' or '..' paths are refused: a bundle
    is a plain tree of distinct files.
    """
    manifest = getattr(model_or_manifest, "manifest", model_or_manifest)
    layers = manifest.get("layers", [])

    def kind(layer):
        return str(layer.get("mediaType", "")).rsplit(".", 1)[-1]

    def annotated(layer):
        return (layer.get("annotations") or {}).get("org.cncf.model.filepath")

    shards = [layer for layer in layers if kind(layer) == "v3" and not annotated(layer)]
    names = []
    counts = {}
    for layer in layers:
        path = annotated(layer)
        if path is None:
            k = kind(layer)
            counts[k] = counts.get(k, 0) + 1
            if k == "v3" and len(shards) > 1:
                path = f"model-{counts[k]:05d}-of-{len(shards):05d}.gguf"
            else:
                path = {"v3": "model.gguf", "mmproj": "model.mmproj", "jinja": "template.jinja",
                        "license": f"license-{counts[k]}.txt"}.get(k, layer["digest"].split(":")[1])
        names.append((layer, _check_path(path, layer.get("digest"))))
    seen = {}
    for layer, name in names:
        if name in seen:
            raise InvalidModel(f"layers {seen[name]['digest']} and {layer['digest']} both unpack to "
                               f"{name!r}: give them distinct file paths")
        seen[name] = layer
    for layer, name in names:
        parts = name.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            if folder in seen:
                raise InvalidModel(f"layer {seen[folder]['digest']} unpacks to {folder!r}, which "
                                   f"layer {layer['digest']} needs as a folder ({name!r})")
    return names
