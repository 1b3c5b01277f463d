"""Writes that survive a crash or a power cut: temp file, fsync, rename, fsync of the folder.

A rename is durable only once the folder holding it is flushed too; without that, a power cut
just after an acknowledged ``model tag`` or ``model pull`` can bring back the old models.json, or
a models.json that names a manifest whose name never reached the disk.
"""

import contextlib
import os

from ..private import FILE_MODE
from .errors import disk_full, is_disk_full
from .locks import locked_temp
from .modes import make_dirs


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, data, root=None):
    """Replace ``path`` with ``data`` all at once and durably. The temp file is locked while it
    exists, so a collector never takes it for a crashed writer's leftover."""
    make_dirs(path.parent)
    f, tmp = locked_temp(path.parent, f".{path.name}.", ".tmp")
    try:
        with f:
            os.fchmod(f.fileno(), FILE_MODE)  # the store is private (modes.py)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if is_disk_full(e):
            raise disk_full(root or path.parent, path.name) from None
        raise
