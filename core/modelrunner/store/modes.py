"""The store is private to the server's user: folders 0700, files 0600.

A store says more than weights: a model's config holds the system prompt it was created with
(Ollama's ``/api/create``), models.json the names a user gave, requests/ and responses/ prompts
and answers. So:

* every writer in the store asks for 0700/0600 itself, whatever the umask (``make_dirs`` here,
  ``durable.atomic_write``, the blob writers and lock files);
* the server's processes run with umask 077 (gunicorn.conf.py, the scheduler daemon), so what
  plugins and runners create in the store is private too;
* a store from an older version has its top level narrowed when it opens (``narrow_top``): once
  its folders are 0700 nobody else reaches anything below them, whatever their own modes;
* ``model fsck`` reports every loose mode and ``--repair`` narrows them (``loose``, ``repair``).

No symlink is ever followed (``private.narrow``). The root itself is left alone when it is not
this user's or is a shared folder (sticky bit, like /tmp): that is a place the store was put in,
not the store.
"""

import contextlib
import logging
import os
import stat
from pathlib import Path

from ..private import DIR_MODE, loose_entries, narrow

log = logging.getLogger("modelrunner.store")

# folders the store makes at once; narrowed at every start with the root's own entries
FOLDERS = ("blobs/sha256", "manifests/sha256", "bundles/sha256", "locks")


def make_dirs(path):
    """``mkdir -p`` where every folder made is 0700 (Path.mkdir gives parents the umask's mode)."""
    path = Path(path)
    missing = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            os.mkdir(folder, DIR_MODE)
            if stat.S_IMODE(os.lstat(folder).st_mode) != DIR_MODE:  # a umask with owner bits
                narrow(folder)


def _ours(path, st):
    """Whether this process should narrow ``path``: this user's, and not a shared folder."""
    return st.st_uid == os.getuid() and not st.st_mode & stat.S_ISVTX


def loose(root):
    """``(path, lstat)`` of every folder and file under the store ``root`` that others could
    read or enter (the root itself only when it is this user's own folder)."""
    root = Path(root)
    for path, st in loose_entries(root):
        if path == root and not _ours(path, st):
            continue
        yield path, st


def repair(items):
    """Narrow ``(path, lstat)`` items; returns ``(narrowed, [(path, error)])``."""
    narrowed, failed = 0, []
    for path, st in items:
        try:
            if narrow(path, st) is not None:
                narrowed += 1
        except FileNotFoundError:
            continue  # removed (a temp file renamed, garbage collected) meanwhile
        except OSError as e:
            failed.append((path, e))
    return narrowed, failed


def narrow_top(root):
    """At start: the root (when it is ours), what is directly in it and the store's own folders
    made private. Cheap (a few dozen names), and enough: nothing below a 0700 folder can be
    reached by anyone else. ``model fsck --repair`` does the rest."""
    root = Path(root)
    items = [(p, st) for p, st in loose_entries(root, top_only=True)
             if p != root or _ours(p, st)]
    for sub in FOLDERS:  # blobs/sha256 and blobs (the root's own entries are in already)
        for path in {root / sub, (root / sub).parent} - {root}:
            items += [(p, st) for p, st in loose_entries(path, top_only=True) if p == path]
    items = [(p, st) for p, st in dict((str(p), (p, st)) for p, st in items).values()
             if st.st_uid == os.getuid()]
    narrowed, failed = repair(items)
    if narrowed:  # an older version's store, or a root a CLI made with the umask's mode
        log.info("the store at %s: %d of its top folders and files narrowed to 0700/0600 "
                 "(`model fsck --repair` narrows everything below them)", root, narrowed)
    for path, error in failed:
        log.warning("cannot make %s private: %s", path, error)
