"""``model fsck``: check every byte and every name in the store against what it claims to be.

Checks, in order: layout.json; the index (models.json parses, each entry is well formed); every
blob (re-hashed: its bytes must hash to its name); every manifest (its bytes must hash to its
name); every indexed model (manifest and config parse, all its blobs are there with their
sizes, its layers unpack to distinct files); every bundle (each file is its blob); every mode
(the store is private: folders 0700, files 0600, see ``modes.py``). What no model needs
(unreferenced blobs, orphan manifests and bundles, temp and partial files) is listed as garbage:
not a fault, ``model prune`` removes it.

With ``repair``, what is corrupt is removed: a blob or manifest whose bytes do not match its
name, a malformed index entry, a stale bundle (rebuilt on the next load); a loose mode is
narrowed (no symlink followed). A model that loses a blob or its manifest stays in the index and
is listed as broken until a pull brings the bytes back (or ``model rm`` removes it); fsck never
invents bytes.
"""

import contextlib
import hashlib
import json
import shutil
import stat
import time

from .errors import BrokenModel, StoreError
from .hashing import sha256_file
from .locks import PathLock
from .validate import bundle_files, is_digest

_HEX = set("0123456789abcdef")


def _is_hex(name):
    return len(name) == 64 and set(name) <= _HEX


class _Report:
    def __init__(self, repair):
        self.repair = repair
        self.problems = []
        self.garbage = []
        self.checked = {"models": 0, "blobs": 0, "bytes": 0, "manifests": 0, "bundles": 0}

    def problem(self, what, detail, fix=None):
        """Record a fault; with repair, ``fix()`` removes it and says how (None: it cannot)."""
        item = {"what": what, "problem": detail}
        if self.repair and fix is not None:
            try:
                item["repaired"] = fix()
            except OSError as e:
                item["repaired"] = None
                item["problem"] += f" (repair failed: {e})"
        elif self.repair:
            item["repaired"] = None
        self.problems.append(item)

    def junk(self, what, kind):
        self.garbage.append({"what": what, "kind": kind})

    def result(self, seconds):
        unrepaired = [p for p in self.problems if not p.get("repaired")]
        return {"ok": not unrepaired, "repair": self.repair, "problems": self.problems,
                "garbage": self.garbage, "checked": self.checked, "seconds": round(seconds, 3)}


def fsck(store, repair=False):
    started = time.monotonic()
    report = _Report(repair)
    with store.collector_lock.acquire(shared=True):  # no collection removes files under us
        _check_layout(store, report)
        entries = _check_index(store, report)
        _check_blobs(store, report)
        ids = _check_manifests(store, report, entries)
        sound = _check_models(store, report, entries)
        _check_bundles(store, report, ids, sound)
        _check_modes(store, report)
    return report.result(time.monotonic() - started)


def _check_layout(store, report):
    path = store.root / "layout.json"
    try:
        layout = json.loads(path.read_bytes())
        if isinstance(layout, dict) and layout.get("version"):
            return
        detail = "has no version"
    except FileNotFoundError:
        detail = "is missing"
    except (OSError, ValueError) as e:
        detail = f"cannot be read: {e}"

    def fix():
        from .durable import atomic_write
        atomic_write(path, b'{"version":"1.0.0"}', store.root)
        return "rewritten"
    report.problem("layout.json", detail, fix)


def _check_index(store, report):
    """The well-formed entries; malformed ones (or an unreadable index) are problems."""
    try:
        index = store._read_index()
    except StoreError as e:
        def rebuild():
            with store._lock:  # a writer that repaired or rewrote it meanwhile wins
                try:
                    store._read_index()
                    return "already rewritten by another writer"
                except StoreError:
                    pass
                entries = _entries_from_manifests(store)
                store._write_index({"models": entries})
            return f"rebuilt from {len(entries)} manifest(s), without tags"
        report.problem("models.json", str(e), rebuild)
        with contextlib.suppress(StoreError):
            return [e for e in store._read_index()["models"] if isinstance(e, dict)]
        return []
    good, seen = [], set()
    for entry in index["models"]:
        if isinstance(entry, dict) and is_digest(entry.get("id")) and entry["id"] not in seen \
                and isinstance(entry.get("tags", []), list):
            good.append(entry)
            seen.add(entry["id"])
            continue
        text = json.dumps(entry)[:200]

        def drop(entry=entry):
            with store._index() as current:
                current["models"] = [e for e in current["models"] if e != entry]
            return "entry removed"
        report.problem(f"index entry {text}", "malformed or duplicate", drop)
    return good


def _entries_from_manifests(store):
    entries = []
    folder = store.root / "manifests" / "sha256"
    for path in sorted(folder.iterdir()):
        if not _is_hex(path.name):
            continue
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != path.name:
            continue
        model_id = "sha256:" + path.name
        try:
            store._load({"id": model_id, "tags": []})
        except BrokenModel:
            continue
        from .validate import manifest_digests, parse_manifest
        entries.append({"id": model_id, "tags": [],
                        "files": list(dict.fromkeys(manifest_digests(parse_manifest(data))))})
    return entries


def _remove_blob(store, path, digest, seen_inode):
    """Remove a corrupt blob unless a writer replaced it meanwhile (under the digest's lock)."""
    with PathLock(store.lock_path(digest)):
        try:
            if path.stat().st_ino != seen_inode:
                return "replaced meanwhile by a verified copy"
        except FileNotFoundError:
            return "already gone"
        path.unlink()
    return "removed"


def _check_blobs(store, report):
    folder = store.root / "blobs" / "sha256"
    for path in sorted(folder.iterdir()):
        name = path.name
        if not _is_hex(name):
            kind = "partial download" if name.endswith(".incomplete") else "temporary file"
            report.junk(f"blobs/sha256/{name}", kind)
            continue
        digest = "sha256:" + name
        try:
            inode = path.stat().st_ino
            actual = sha256_file(path)
        except FileNotFoundError:
            continue  # collected meanwhile
        except OSError as e:
            report.problem(f"blob {digest}", f"cannot be read: {e}",
                           lambda: _remove_blob(store, path, digest, inode))
            continue
        report.checked["blobs"] += 1
        with contextlib.suppress(OSError):
            report.checked["bytes"] += path.stat().st_size
        if actual != digest:
            report.problem(f"blob {digest}", f"its bytes hash to {actual}",
                           lambda p=path, d=digest, i=inode: _remove_blob(store, p, d, i))


def _check_manifests(store, report, entries):
    ids = {e["id"] for e in entries}
    folder = store.root / "manifests" / "sha256"
    for path in sorted(folder.iterdir()):
        name = path.name
        if not _is_hex(name):
            report.junk(f"manifests/sha256/{name}", "temporary file")
            continue
        report.checked["manifests"] += 1
        try:
            data = path.read_bytes()
        except OSError as e:
            report.problem(f"manifest sha256:{name}", f"cannot be read: {e}")
            continue
        if hashlib.sha256(data).hexdigest() != name:
            def remove(path=path):
                path.unlink(missing_ok=True)
                return "removed"
            report.problem(f"manifest sha256:{name}", "its bytes do not hash to its name", remove)
        elif "sha256:" + name not in ids:
            report.junk(f"manifests/sha256/{name}", "manifest of no indexed model")
    return ids


def _check_models(store, report, entries):
    """{model ID: Model} of the sound models; every broken one is a problem."""
    from .collect import referenced
    sound = {}
    for entry in entries:
        report.checked["models"] += 1
        try:
            model = store._load(entry)
        except BrokenModel as e:
            name = ", ".join(entry.get("tags") or []) or entry["id"]
            report.problem(f"model {name}", f"broken: {e} (a pull of it repairs it; `model rm` "
                                            f"removes it)", lambda: None)
            continue
        sound[model.id] = model
    blobs, _ = referenced(store, entries)
    for path in sorted((store.root / "blobs" / "sha256").iterdir()):
        if _is_hex(path.name) and "sha256:" + path.name not in blobs:
            report.junk(f"blobs/sha256/{path.name}", "blob no model names")
    return sound


def _bundle_fault(store, root, model):
    if not (root / ".complete").exists() or not (root / "config.json").exists():
        return "is incomplete"
    for layer, name in bundle_files(model):
        target = root / "model" / name
        try:
            have = target.stat()
        except FileNotFoundError:
            return f"lacks {name}"
        try:
            blob = store.blob_path(layer["digest"]).stat()
        except FileNotFoundError:
            return f"has {name} but its blob {layer['digest']} is gone"
        if (have.st_ino, have.st_dev) == (blob.st_ino, blob.st_dev):
            continue
        if sha256_file(target) != layer["digest"]:  # a copy (no hard links): check its bytes
            return f"has {name} with other bytes than its blob {layer['digest']}"
    return None


def _check_bundles(store, report, ids, sound):
    folder = store.root / "bundles" / "sha256"
    for root in sorted(folder.iterdir()):
        name = root.name
        if not _is_hex(name):
            report.junk(f"bundles/sha256/{name}", "temporary bundle")
            continue
        model_id = "sha256:" + name
        if model_id not in ids:
            report.junk(f"bundles/sha256/{name}", "bundle of no indexed model")
            continue
        report.checked["bundles"] += 1
        model = sound.get(model_id)
        fault = "belongs to a broken model" if model is None else _bundle_fault(store, root, model)
        if fault:
            def remove(root=root):
                shutil.rmtree(root)
                return "removed (rebuilt on the next load)"
            report.problem(f"bundle {model_id}", fault, remove)


MODE_EXAMPLES = 5  # loose paths named in the report (all are counted; --json lists them all)


def _check_modes(store, report):
    """One problem for every folder and file others could read or enter, however many."""
    from .modes import loose, repair
    items = list(loose(store.root))
    if not items:
        return
    folders = sum(1 for _, st in items if stat.S_ISDIR(st.st_mode))
    paths = [_relative(store, path) + f" {stat.S_IMODE(st.st_mode):04o}" for path, st in items]
    more = f", and {len(paths) - MODE_EXAMPLES} more" if len(paths) > MODE_EXAMPLES else ""
    detail = (f"{folders} folder(s) and {len(items) - folders} file(s) that other users can "
              f"read or enter ({', '.join(paths[:MODE_EXAMPLES])}{more}): the store is private "
              f"to the server's user, folders 0700 and files 0600")

    def narrow_all():
        narrowed, failed = repair(items)
        if failed:
            names = ", ".join(f"{_relative(store, p)} ({e.strerror or e})" for p, e in failed[:5])
            raise PermissionError(f"{len(failed)} could not be changed: {names}")
        return f"{narrowed} narrowed to 0700/0600"
    report.problem("modes", detail, narrow_all)
    report.problems[-1]["paths"] = paths


def _relative(store, path):
    return str(path.relative_to(store.root)) if path != store.root else "."
