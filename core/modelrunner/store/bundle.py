"""Bundles: a model's files laid out for a runner, hardlinked from blobs (no copies).

bundles/sha256/<hex>/config.json holds the artifact config (0600 like everything in the store: it
holds the model's system prompt); model/ holds the files under their artifact paths (model.gguf
or the shards, model.mmproj, template.jinja, or a safetensors repo's own tree). The runner gets
paths, never digests.

A bundle is built in a folder of its own (locked while it fills, so a collector leaves it alone)
and published by one rename. Nothing is ever written through a path that may be a hard link to
a blob: a file is linked to a fresh name, or, where links fail, copied into a new file opened
with O_EXCL. Layer names are checked first (``validate.bundle_files``): two layers with one name
are refused, where writing the second through the first's link would overwrite another model's
blob. An existing bundle whose files are not (or no longer) its blobs is rebuilt.
"""

import json
import os
import shutil
import uuid
from pathlib import Path

from ..engines import Bundle
from ..private import DIR_MODE, FILE_MODE
from .errors import BrokenModel
from .locks import lock_folder
from .modes import make_dirs
from .validate import bundle_files


def _place(source, target):
    try:
        os.link(source, target)
        return
    except FileExistsError:
        raise
    except OSError:
        pass  # a filesystem without hard links: a copy, into a file that did not exist
    with open(source, "rb") as src:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        with os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def _write_new(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _is_current(store, root, files):
    """The bundle at ``root`` is complete and each file is its blob (same inode, or a copy of
    the same size where links are not available)."""
    if not (root / ".complete").exists() or not (root / "config.json").exists():
        return False
    for layer, name in files:
        try:
            have = (root / "model" / name).stat()
            blob = store.blob_path(layer["digest"]).stat()
        except FileNotFoundError:
            return False
        if (have.st_ino, have.st_dev) != (blob.st_ino, blob.st_dev) and have.st_size != blob.st_size:
            return False
    return True


def _build(store, model, files, root):
    tmp = root.with_name(f".{root.name}.{uuid.uuid4().hex[:12]}.tmp")
    make_dirs(tmp.parent)
    tmp.mkdir(DIR_MODE)
    lock = lock_folder(tmp)
    try:
        (tmp / "model").mkdir(DIR_MODE)
        for layer, name in files:
            target = tmp / "model" / name
            make_dirs(target.parent)
            _place(store.blob_path(layer["digest"]), target)
        # the config holds the system prompt a model was created with: 0600, like its blob
        _write_new(tmp / "config.json", json.dumps(model.config, indent=2).encode())
        _write_new(tmp / ".complete", b"")
        _publish(store, files, tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.close(lock)


def _publish(store, files, tmp, root):
    for _ in range(3):
        try:
            os.rename(tmp, root)
            return
        except OSError:
            pass  # root exists (an empty folder is replaced; a filled one is not)
        if _is_current(store, root, files):
            return  # another process unpacked it first; ours goes
        old = root.with_name(f".{root.name}.{uuid.uuid4().hex[:12]}.old")
        try:
            os.rename(root, old)  # a stale bundle: moved aside, then removed
        except FileNotFoundError:
            continue
        shutil.rmtree(old, ignore_errors=True)
    os.rename(tmp, root)


def unpack(store, model):
    if getattr(model, "broken", ""):
        raise BrokenModel(f"model {model.id} is broken: {model.broken}")
    files = bundle_files(model)
    root = store.root / "bundles" / "sha256" / model.id.split(":", 1)[1]
    if not _is_current(store, root, files):
        _build(store, model, files, root)
    return Bundle(model_id=model.id, path=Path(root), config=model.inner_config, tags=model.tags)
