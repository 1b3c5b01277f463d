"""Collection: remove what no model in the index needs, and only when nothing in flight may.

Every pull, load, upload and create holds the store's collector lock shared (``operation.py``);
a collection needs it exclusively, so it never removes a blob that an operation just wrote and
has not indexed yet, or one it found already there and relies on. It runs:

* after ``delete`` and ``purge`` (the index changed first; the files go after, so a crash in
  between leaves garbage, never an entry without its files), and when an operation that failed
  takes back what it wrote: on the given candidates only;
* at server start and by ``model prune``: on everything (``everything=True``).

When the lock is taken (an operation in flight), the candidates are written down in
``.collect-pending`` and the next operation to end, or the next full collection, removes them.
The index is read and the files removed under the index lock, so an ``add_model`` in between
either sees its blobs gone (and refuses) or names them first (and they stay).
"""

import json
import os
import shutil
import time
from pathlib import Path

from .errors import StoreError
from .locks import PathLock, remove_if_unlocked
from .validate import is_digest, manifest_digests, parse_manifest

PENDING = ".collect-pending"
INCOMPLETE_MAX_AGE = 7 * 86400  # DMR's rule: a partial download nobody resumed for a week
_HEX = set("0123456789abcdef")


def _is_hex(name):
    return len(name) == 64 and set(name) <= _HEX


def referenced(store, entries):
    """(blob digests, model IDs) the index needs: each entry's files and its manifest's blobs."""
    blobs, ids = set(), set()
    for entry in entries:
        if not isinstance(entry, dict) or not is_digest(entry.get("id")):
            continue
        ids.add(entry["id"])
        files = entry.get("files")
        if isinstance(files, list):
            blobs.update(f for f in files if is_digest(f))
        try:
            blobs.update(manifest_digests(parse_manifest(store.manifest_bytes(entry["id"]))))
        except (OSError, StoreError):
            pass
    return blobs, ids


def _defer(store, candidates, everything):
    with store._lock:
        with open(store.root / PENDING, "a") as f:
            f.write(json.dumps({"all": bool(everything), "digests": sorted(candidates or ())}) + "\n")


def has_pending(store):
    return (store.root / PENDING).exists()


def _take_pending(store):
    path = store.root / PENDING
    everything, digests = False, set()
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return everything, digests
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash: a full collection catches it later
        everything = everything or bool(item.get("all"))
        digests.update(d for d in item.get("digests", []) if is_digest(d))
    path.unlink(missing_ok=True)
    return everything, digests


class _Report(dict):
    def __init__(self):
        super().__init__(blobs=0, incomplete=0, temporary=0, manifests=0, bundles=0, locks=0,
                         bytes=0, deferred=False)

    def removed(self, kind, path, remove):
        try:
            size = path.stat().st_size if path.is_file() else 0
        except OSError:
            size = 0
        try:
            remove(path)
        except FileNotFoundError:
            return
        self[kind] += 1
        self["bytes"] += size


def _rmtree(path):
    shutil.rmtree(path)


def collect(store, candidates=None, everything=False, incomplete_age=0, wait=0.0):
    """Remove unreferenced blobs among ``candidates`` (digests; a model ID among them also takes
    its manifest and bundle), or with ``everything`` all garbage: unreferenced blobs, manifests
    and bundles, ``.incomplete`` files nobody writes that are older than ``incomplete_age``
    seconds, and crashed writers' temp files, bundle folders and staging folders. Returns what
    was removed; ``{"deferred": True}`` when operations were in flight (after ``wait`` seconds).
    """
    held = store.collector_lock.acquire(shared=False, blocking=wait > 0, timeout=wait)
    if held is None:
        if candidates or everything:
            _defer(store, candidates, everything)
        report = _Report()
        report["deferred"] = True
        return report
    with held:
        pending_all, pending = _take_pending(store)
        everything = everything or pending_all
        candidates = set(candidates or ()) | pending
        report = _Report()
        with store._lock:
            blobs, ids = referenced(store, store._read_index()["models"])
            for model_id in [c for c in candidates if c not in ids]:
                try:  # a removed model's manifest names blobs that may now be garbage
                    candidates.update(manifest_digests(parse_manifest(store.manifest_bytes(model_id))))
                except (OSError, StoreError):
                    pass
            _collect_blobs(store, report, blobs, candidates, everything, incomplete_age)
            _collect_models(store, report, ids, candidates, everything)
            if everything:
                _collect_leftovers(store, report)
        return report


def _collect_blobs(store, report, blobs, candidates, everything, incomplete_age):
    now = time.time()
    folder = store.root / "blobs" / "sha256"
    for path in sorted(folder.iterdir()) if folder.exists() else []:
        name = path.name
        if _is_hex(name):
            digest = "sha256:" + name
            if (everything or digest in candidates) and digest not in blobs:
                report.removed("blobs", path, os.unlink)
        elif name.endswith(".incomplete") and _is_hex(name[:-11]):
            if not everything:
                continue
            try:
                if now - path.stat().st_mtime < incomplete_age:
                    continue
            except FileNotFoundError:
                continue
            lock = PathLock(store.lock_path("sha256:" + name[:-11]))
            if lock.acquire(blocking=False):  # nobody writes it now
                try:
                    report.removed("incomplete", path, os.unlink)
                finally:
                    lock.release()
        elif name.startswith(".") and everything:
            _remove_temp(report, path)


def _remove_temp(report, path):
    size = 0
    try:
        size = path.stat().st_size if path.is_file() else 0
    except OSError:
        pass
    remove = _rmtree if path.is_dir() else os.unlink
    if remove_if_unlocked(path, remove):
        report["temporary"] += 1
        report["bytes"] += size


def _collect_models(store, report, ids, candidates, everything):
    for kind, folder in (("manifests", store.root / "manifests" / "sha256"),
                         ("bundles", store.root / "bundles" / "sha256")):
        for path in sorted(folder.iterdir()) if folder.exists() else []:
            name = path.name
            if _is_hex(name):
                model_id = "sha256:" + name
                if (everything or model_id in candidates) and model_id not in ids:
                    report.removed(kind, path, _rmtree if path.is_dir() else os.unlink)
            elif name.startswith(".") and everything:
                _remove_temp(report, path)


def _collect_leftovers(store, report):
    """What crashed writers left: temp files of the index, staging folders, lock files."""
    root = store.root
    for path in sorted(root.iterdir()):
        name = path.name
        if path.is_file() and name.startswith((".models.json.", ".layout.json.", ".runners.json.")):
            _remove_temp(report, path)
        elif path.is_dir() and name.startswith(".") and name.endswith("-staging"):
            for inner in sorted(path.iterdir()):
                _remove_temp(report, inner)
            try:
                path.rmdir()
            except OSError:
                pass
    locks = root / "locks"
    for path in sorted(locks.iterdir()) if locks.exists() else []:
        lock = PathLock(path)
        if lock.acquire(blocking=False):  # a dead writer's: removed on release
            lock.release()
            report["locks"] += 1


def collect_own_partials(store, digests):
    """Remove the ``.incomplete`` files of ``digests`` that no writer holds (a pull that hit a full
    disk: resuming there would only hit it again)."""
    for digest in digests:
        lock = PathLock(store.lock_path(digest))
        if lock.acquire(blocking=False):
            try:
                Path(str(store.blob_path(digest)) + ".incomplete").unlink(missing_ok=True)
            finally:
                lock.release()
