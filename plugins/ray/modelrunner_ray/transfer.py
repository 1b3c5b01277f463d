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

import glob
import hashlib
import os
import shutil
import stat
import time
import uuid

from modelrunner import private_files

CHUNK = 8 << 20        # bytes per Ray call: big enough to amortise a call, small for memory
IN_FLIGHT = 4          # chunks sent before waiting: at most 32 MiB of a transfer in Ray's store
STALE = 3600           # seconds after which a .partial file no transfer finished is removed


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
                    pending.append(actor.write_chunk.remote(root, rel, token, offset, data, size))
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
            _abandon(ray, actor, root, rel, token, pending, timeout)
            raise
        sent += size
    return sent


def _abandon(ray, actor, root, rel, token, pending, timeout):
    """Remove a failed transfer's partial file once no chunk of it is still on its way (the
    actor's threads run calls in any order: a late chunk would otherwise recreate it)."""
    try:
        if pending:
            ray.wait(pending, num_returns=len(pending), timeout=timeout)
        ray.get(actor.discard.remote(root, rel, token), timeout=timeout)
    except Exception:  # a dead actor or node: nothing to discard there (missing() sweeps later)
        pass


# -- node (the runner's actor) -----------------------------------------------------------------

def _target(root, rel):
    """``root/rel`` for a relative path under ``bundles/`` with no '.', '..' or empty parts:
    the node writes only where a bundle belongs."""
    parts = rel.split("/") if isinstance(rel, str) and "\0" not in rel else [""]
    if parts[0] != "bundles" or len(parts) < 3 or any(p in ("", ".", "..") for p in parts):
        raise TransferError(f"refused bundle path {rel!r}")
    return os.path.join(root, *parts)


def _folder(root, rel, create):
    """The folder of ``rel`` under ``root``, each step a plain folder (created 0700 when
    ``create``): a symlink planted on the way is refused, never followed."""
    path = root
    for part in rel.split("/")[:-1]:
        path = os.path.join(path, part)
        if create:
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise TransferError(f"refused {path}: not a plain folder (a symlink?)")
    return path


def _partial(path, token):
    if not (isinstance(token, str) and token.isalnum() and len(token) <= 64):
        raise TransferError("refused transfer token")
    return f"{path}.partial-{token}"


def missing(root, files):
    """The ``(rel, size)`` of ``files`` this node has no complete copy of under ``root``: a
    plain file of that size (a symlink never counts). Partial files older than ``STALE`` that
    no transfer finished are removed on the way."""
    lacking = []
    for rel, size in files:
        path = _target(root, rel)
        for stale in glob.glob(glob.escape(path) + ".partial-*"):
            try:
                if time.time() - os.lstat(stale).st_mtime > STALE:
                    os.unlink(stale)
            except OSError:
                pass
        try:
            info = os.lstat(path)
            complete = stat.S_ISREG(info.st_mode) and info.st_size == size
        except OSError:
            complete = False
        if not complete:
            lacking.append((rel, size))
    return lacking


def free_space_for(root, files):
    """Raise when ``root``'s disk cannot hold ``files`` (the node's own words for a 507)."""
    need = sum(size for _, size in files)
    private_files.private_dir(root)
    free = shutil.disk_usage(root).free
    if need > free:
        raise TransferError(f"the node's store {root} has {free} bytes free; the model needs "
                            f"{need}")


def write_chunk(root, rel, token, offset, data, size):
    """Write ``data`` at ``offset`` of the partial file of ``rel`` (``size`` bytes in all)."""
    path = _target(root, rel)
    if not (isinstance(offset, int) and isinstance(size, int)
            and 0 <= offset and offset + len(data) <= size):
        raise TransferError(f"refused a chunk at {offset} of {rel} ({size} bytes)")
    private_files.private_dir(root)  # a model is the user's: the node's store is theirs alone
    _folder(root, rel, create=True)
    fd = os.open(_partial(path, token), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        view = memoryview(data)
        while view:  # pwrite may write less than asked
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written
    finally:
        os.close(fd)
    return len(data)


def commit(root, rel, token, size, sha256):
    """Publish the partial file when its size and sha256 are what the sender read (flushed to
    disk first: a crash never leaves a right-sized file of zeros at the final path); else
    remove it and raise."""
    path = _target(root, rel)
    partial = _partial(path, token)
    digest = hashlib.sha256()
    try:
        _folder(root, rel, create=False)
        fd = os.open(partial, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
            got = f.tell()
            if got != size or digest.hexdigest() != sha256:
                raise TransferError(f"{rel} arrived as {got} bytes with sha256 "
                                    f"{digest.hexdigest()}, expected {size} bytes with sha256 "
                                    f"{sha256}")
            os.fsync(f.fileno())
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
