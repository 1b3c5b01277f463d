"""A new model from a stored one with only its configuration changed (DMR's ``package --from``
with ``--context-size`` or ``--chat-template``): ``POST /models/{ref}/repackage``.

The weights are not read, copied or uploaded: the new manifest names the very same layer
digests, so the store holds one copy of the weights for both models. What is new is the config
blob (its ``context_size``) and, for a new chat template, one small template layer that replaces
the old one. The caller writes :attr:`Repackaged.blobs` and then adds the manifest, in one store
operation (``api/repackage.py``), so nothing half-made is ever listed.
"""

import copy
from dataclasses import dataclass, field

from .artifact import (ANNOTATION_FILE_METADATA, ANNOTATION_FILEPATH, ANNOTATION_MEDIATYPE_UNTESTED,
                       MEDIA_TYPE_CHAT_TEMPLATE, MEDIA_TYPE_CONFIG_V01, MEDIA_TYPE_CONFIG_V02,
                       canonical_json, sha256_bytes)
from .errors import PackagingError

# Docker's own configs carry "config.context_size"; the CNCF ModelPack config has no such field.
REPACKAGEABLE = (MEDIA_TYPE_CONFIG_V01, MEDIA_TYPE_CONFIG_V02)
MAX_TEMPLATE = 1 << 20  # a chat template is a small text file


@dataclass
class Repackaged:
    manifest_bytes: bytes
    model_id: str
    blobs: dict = field(default_factory=dict)  # digest -> bytes of the new blobs only


def repackage(manifest, config, *, context_size=None, chat_template=None):
    """The manifest and new blobs of ``manifest``/``config`` (a stored model's, parsed) with
    ``context_size`` (a positive int) and/or ``chat_template`` (the template's text) changed.

    Raises PackagingError for a change that is not one (nothing given), a bad value, or a model
    whose config type has no context size.
    """
    if context_size is None and chat_template is None:
        raise PackagingError("nothing to change: give context_size and/or chat_template")
    if context_size is not None and (isinstance(context_size, bool) or not isinstance(context_size, int)
                                     or not 0 < context_size <= 2**31 - 1):
        raise PackagingError(f"invalid context size {context_size!r}: must be a positive 32-bit "
                             "integer")
    media_type = (manifest.get("config") or {}).get("mediaType")
    if media_type not in REPACKAGEABLE:
        raise PackagingError(f"a model with config type {media_type} cannot be repackaged")
    manifest = copy.deepcopy(manifest)
    config = copy.deepcopy(config)
    blobs = {}
    inner = config.setdefault("config", {})
    if context_size is not None:
        inner["context_size"] = context_size
    if chat_template is not None:
        if not isinstance(chat_template, str) or not chat_template.strip():
            raise PackagingError("chat_template must be the template's text")
        data = chat_template.encode("utf-8")
        if len(data) > MAX_TEMPLATE:
            raise PackagingError(f"chat template is larger than {MAX_TEMPLATE} bytes")
        layer = _template_layer(data, manifest, config)
        blobs[layer["digest"]] = data
        old = [d for d in manifest["layers"] if d.get("mediaType") == MEDIA_TYPE_CHAT_TEMPLATE]
        manifest["layers"] = [d for d in manifest["layers"] if d not in old] + [layer]
        rootfs = config.get("rootfs")
        if isinstance(rootfs, dict) and isinstance(rootfs.get("diff_ids"), list):
            gone = {d.get("digest") for d in old}
            rootfs["diff_ids"] = [d for d in rootfs["diff_ids"] if d not in gone] + [layer["digest"]]
    config_bytes = canonical_json(config)
    config_digest = sha256_bytes(config_bytes)
    blobs[config_digest] = config_bytes
    manifest["config"] = {**manifest["config"], "digest": config_digest, "size": len(config_bytes)}
    manifest_bytes = canonical_json(manifest)
    return Repackaged(manifest_bytes, sha256_bytes(manifest_bytes), blobs)


def _template_layer(data, manifest, config):
    """The descriptor of a chat template layer, named like the one it replaces (else
    ``template.jinja``), with DMR's file annotations; its time is the model's own."""
    name = "template.jinja"
    for d in manifest.get("layers", []):
        if d.get("mediaType") == MEDIA_TYPE_CHAT_TEMPLATE:
            name = (d.get("annotations") or {}).get(ANNOTATION_FILEPATH) or name
    created = (config.get("descriptor") or {}).get("created") or "1970-01-01T00:00:00Z"
    metadata = {"name": name.rsplit("/", 1)[-1], "mode": 0o644, "uid": 0, "gid": 0,
                "size": len(data), "mtime": created, "typeflag": 0}
    return {"mediaType": MEDIA_TYPE_CHAT_TEMPLATE, "size": len(data), "digest": sha256_bytes(data),
            "annotations": {ANNOTATION_FILEPATH: name,
                            ANNOTATION_FILE_METADATA: canonical_json(metadata).decode("utf-8"),
                            ANNOTATION_MEDIATYPE_UNTESTED: "false"}}
