"""A model bundle copied to a node that does not see the store, through Ray itself.

A node either sees the store at ``ray_models_path`` (a shared volume: nothing to copy) or has a
folder of its own there; then the files the runner needs are sent from the scheduler's store in
chunks over Ray's own authenticated transport, into that folder, under the same relative paths
(bundles/sha256/<model id>/...), so the engine's argv is the same on every node.

Why from the scheduler and not from the registry: a node pulling for itself would need the source
plugins and the user's registry or Hugging Face credentials on every node, and a model packaged
locally has no registry at all. The scheduler's store already holds verified bytes.

Nothing half-written is ever used: chunks go to a private ``.partial-<token>`` file, which is
hashed on the node and renamed into place only when its size and sha256 match what the sender
read. A bundle's path names its model's manifest digest, so a complete file there is the file.

``sender``: :func:`bundle_files` and :func:`send` run in the scheduler; ``node``:
:func:`missing`, :func:`write_chunk`, :func:`commit` and :func:`discard` run in the runner's
actor on the node.
"""

import hashlib
import os
import shutil
import uuid

from modelrunner import private_dir

CHUNK = 8 << 20        # bytes per Ray call: big enough to amortise a call, small for memory
IN_FLIGHT = 4          # chunks sent before waiting: at most 32 MiB of a transfer in Ray's store


class TransferError(Exception):
    """A bundle could not be put on the node; the message says what and where."""


# -- sender (the scheduler) --------------------------------------------------------------------

def bundle_files(models_path, bundle_path):
    """[(path relative to the store, size)] of every regular file of a bundle."""
    models_path, bundle_path = os.path.abspath(models_path), os.path.abspath(bundle_path)
    found = []
    for folder, _, names in os.walk(bundle_path):
        for name in sorted(names):
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                found.append((os.path.relpath(path, models_path), os.path.getsize(path)))
    return sorted(found)


def send(ray, actor, root, models_path, files, timeout):
    """Copy ``files`` (the ones the node lacks) from ``models_path`` to ``root`` on the node of
    ``actor``; returns the bytes sent. Each file's chunks are pipelined (``IN_FLIGHT``)."""
    sent = 0
    for rel, size in files:
        token = uuid.uuid4().hex
        digest = hashlib.sha256()
        pending = []
        try:
            with open(os.path.join(models_path, rel), "rb") as f:
                offset = 0
                while True:  # an empty file is one empty chunk
                    data = f.read(min(CHUNK, size - offset))
                    if not data and offset < size:
                        raise TransferError(f"{rel} is shorter than {size} bytes in the store")
                    digest.update(data)
                    pending.append(actor.write_chunk.remote(root, rel, token, offset, data))
                    offset += len(data)
                    if len(pending) >= IN_FLIGHT:
                        done, pending = ray.wait(pending, num_returns=1, timeout=timeout)
                        if not done:
                            raise TransferError(f"the node took over {timeout:g}s for one chunk")
                        ray.get(done)
                    if offset >= size:
                        break
            ray.get(pending, timeout=timeout)
            ray.get(actor.commit.remote(root, rel, token, size, digest.hexdigest()),
                    timeout=timeout + size / (50 << 20))  # the node re-reads it: >= 50 MB/s
        except BaseException:
            try:
                actor.discard.remote(root, rel, token)
            except Exception:  # a dead actor has nothing to discard
                pass
            raise
        sent += size
    return sent


# -- node (the runner's actor) -----------------------------------------------------------------

def _target(root, rel):
    """``root/rel`` for a relative path under ``bundles/`` with no '.', '..' or empty parts:
    the node writes only where a bundle belongs (see also :func:`_inside`)."""
    parts = rel.split("/") if isinstance(rel, str) and "\0" not in rel else [""]
    if parts[0] != "bundles" or len(parts) < 3 or any(p in ("", ".", "..") for p in parts):
        raise TransferError(f"refused bundle path {rel!r}")
    return os.path.join(root, *parts)


def _inside(root, folder):
    """Refuse a folder that resolves outside ``root/bundles`` (a symlink planted on the way)."""
    base = os.path.realpath(os.path.join(root, "bundles"))
    if not os.path.realpath(folder).startswith(base + os.sep):
        raise TransferError(f"refused {folder}: it resolves outside {base}")


def _partial(path, token):
    if not (isinstance(token, str) and token.isalnum() and len(token) <= 64):
        raise TransferError("refused transfer token")
    return f"{path}.partial-{token}"


def missing(root, files):
    """The ``(rel, size)`` of ``files`` this node has no complete copy of under ``root``."""
    return [(rel, size) for rel, size in files
            if not (os.path.isfile(p := _target(root, rel)) and os.path.getsize(p) == size)]


def free_space_for(root, files):
    """Raise when ``root``'s disk cannot hold ``files`` (the node's own words for a 507)."""
    need = sum(size for _, size in files)
    private_dir(root)
    free = shutil.disk_usage(root).free
    if need > free:
        raise TransferError(f"the node's store {root} has {free} bytes free; the model needs "
                            f"{need}")


def write_chunk(root, rel, token, offset, data):
    path = _target(root, rel)
    folder = os.path.dirname(path)
    private_dir(root)  # prompts aside, a model is the user's: the node's store is theirs alone
    os.makedirs(folder, mode=0o700, exist_ok=True)
    _inside(root, folder)
    fd = os.open(_partial(path, token), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)
    return len(data)


def commit(root, rel, token, size, sha256):
    """Publish the partial file when its size and sha256 are what the sender read; else remove
    it and raise."""
    path = _target(root, rel)
    _inside(root, os.path.dirname(path))
    partial = _partial(path, token)
    digest = hashlib.sha256()
    try:
        with open(partial, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
            got = f.tell()
        if got != size or digest.hexdigest() != sha256:
            raise TransferError(f"{rel} arrived as {got} bytes with sha256 {digest.hexdigest()}, "
                                f"expected {size} bytes with sha256 {sha256}")
        os.replace(partial, path)
    except BaseException:
        discard(root, rel, token)
        raise
    return size


def discard(root, rel, token):
    try:
        os.unlink(_partial(_target(root, rel), token))
    except (OSError, TransferError):
        pass
