"""Bundles: a model's files laid out for a runner, hardlinked from blobs (no copies).

bundles/sha256/<hex>/config.json holds the artifact config; model/ holds the files under their
artifact paths (model.gguf or the shard names, model.mmproj, template.jinja, or a safetensors
repo's own tree). The runner gets paths, never digests.
"""

import json
import os
import shutil
from pathlib import Path

from ..engines import Bundle
from .filesystem import _atomic_write, _hex, bundle_files


def unpack(store, model):
    root = store.root / "bundles" / "sha256" / _hex(model.id)
    done = root / ".complete"
    if not done.exists():
        tmp = root.with_name(f".{root.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "model").mkdir(parents=True)
        for layer, name in bundle_files(model):
            target = tmp / "model" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            source = store.blob_path(layer["digest"])
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
        _atomic_write(tmp / "config.json", json.dumps(model.config, indent=2).encode())
        (tmp / ".complete").touch()
        try:
            os.rename(tmp, root)
        except OSError:  # another process unpacked it first
            shutil.rmtree(tmp, ignore_errors=True)
    return Bundle(model_id=model.id, path=Path(root), config=model.inner_config, tags=model.tags)
