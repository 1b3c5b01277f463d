"""The local model store, in Docker Model Runner's layout so DMR and modelrunner can share it.

    <root>/layout.json            {"version": "1.0.0"}
    <root>/models.json            {"models": [{"id", "tags", "files"}]}  the tag index
    <root>/blobs/sha256/<hex>     layers and configs; <hex>.incomplete while a pull writes it
    <root>/manifests/sha256/<hex> raw manifests; the model ID is sha256 of these bytes
    <root>/bundles/sha256/<hex>/  config.json + model/<files>, hardlinked from blobs, for runners
    <root>/runners.json           runner configurations from `_configure` (modelrunner's addition)
    <root>/locks/                 one lock file per blob being written (exists while held)

Every folder is 0700 and every file 0600: the store is its user's alone (``modes.py``).

What it guarantees, and where:

* a blob's bytes always hash to its name: each writer has a file of its own, verified before it
  is renamed into place under the digest's lock (``writer.py``, ``locks.py``);
* the index names only models whose manifest and config parse and whose blobs are all there
  (``validate.py``, checked in ``add_model`` under the index lock); an entry that went bad later
  is listed as broken with the reason, never fails a listing, and ``delete`` removes it;
* crash order: blobs, then the manifest, then the index, each flushed (``durable.py``); on
  delete and purge the index changes first and the files are collected after (``collect.py``),
  so a kill at any point leaves garbage at worst, which server start and ``model prune`` remove;
* ``fsck.py`` re-hashes and checks all of it, and with repair removes what is corrupt.
"""

import contextlib
import hashlib
import io
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..locks import file_lock
from ..private import FILE_MODE

from .. import reference as refs
from ..engines import Bundle
from .durable import atomic_write, fsync_dir, fsync_file
from .errors import (BrokenModel, Conflict, DigestMismatch, InvalidModel, NotFound, StoreBusy,
                     StoreError, StoreFull, disk_full, is_disk_full)
from .hashing import off_the_loop, sha256_file
from .locks import PathLock, SharedLock
from .modes import FOLDERS, make_dirs, narrow_top
from .validate import (bundle_files, is_digest, manifest_digests, missing_blobs, parse_manifest,
                       read_config)
from .writer import CHUNK, BlobWriter  # noqa: F401  (BlobWriter: the public API's name)


@dataclass
class Model:
    id: str                    # "sha256:<64 hex>"
    tags: list
    files: list                # digests of the layers and the config
    manifest: dict = field(repr=False, default_factory=dict)
    config: dict = field(repr=False, default_factory=dict)  # the whole config blob
    broken: str = ""           # why the entry cannot be used ("" for a sound model)

    @property
    def short_id(self):
        return self.id.split(":", 1)[-1][:12]

    @property
    def inner_config(self):
        """The "config" object of the config blob: format, quantization, context_size..."""
        return self.config.get("config", {})

    @property
    def created(self):
        from datetime import datetime
        created = self.config.get("descriptor", {}).get("created")
        try:
            return int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
        except (AttributeError, TypeError, ValueError):
            return 0

    @property
    def size(self):
        return sum(layer.get("size", 0) for layer in self.manifest.get("layers", []))

    @property
    def reads_images(self):
        """Whether images may be sent to it. A GGUF model reads them only through a multimodal
        projector layer (llama-server without one answers 500 after loading the model); other
        formats (safetensors on vLLM) carry vision in the model itself, so their engine decides.
        Every dialect refuses images up front with this rule, in its own error shape."""
        if (self.inner_config.get("format") or "gguf") != "gguf":
            return True
        return any(isinstance(layer, dict) and str(layer.get("mediaType", "")).endswith(".mmproj")
                   for layer in self.manifest.get("layers") or [])

    def to_api(self):
        """GET /models shape: {id, tags, created, config}; a broken entry adds "broken"."""
        data = {"id": self.id, "tags": list(self.tags), "created": self.created,
                "config": self.inner_config}
        if self.broken:
            data["broken"] = self.broken
        return data


def _hex(digest):
    if not is_digest(digest):
        raise InvalidModel(f"invalid digest {digest!r}")
    return digest.split(":", 1)[1]


def _atomic_write(path, data):
    """Kept for callers of the old name (bundle.py of older plugins)."""
    atomic_write(Path(path), data)


class FilesystemStore:
    def __init__(self, root, fsync=False):
        self.root = Path(root)
        self.fsync = fsync  # flush each pulled blob at commit (always flushed before indexing)
        # private to the server's user (modes.py): made 0700, an older store's top narrowed;
        # the folders above the store are not the store's, and get the usual modes
        self.root.parent.mkdir(parents=True, exist_ok=True)
        for sub in FOLDERS:
            make_dirs(self.root / sub)
        narrow_top(self.root)
        self._lock = file_lock(self.root / ".lock")
        self.collector_lock = SharedLock(self.root / ".collect.lock")
        if not (self.root / "layout.json").exists():
            atomic_write(self.root / "layout.json", b'{"version":"1.0.0"}', self.root)
        if not (self.root / "models.json").exists():
            atomic_write(self.root / "models.json", b'{"models":[]}', self.root)

    # -- blobs ----------------------------------------------------------------------------------

    def blob_path(self, digest):
        return self.root / "blobs" / "sha256" / _hex(digest)

    def lock_path(self, digest):
        return self.root / "locks" / f"{_hex(digest)}.lock"

    def has_blob(self, digest):
        return self.blob_path(digest).exists()

    def blob_writer(self, digest, size=None, on_publish=None):
        """A resumable writer that owns ``<hex>.incomplete`` (waits while another writer has
        this blob); see writer.py."""
        return BlobWriter(self, digest, size, on_publish=on_publish)

    def write_blob(self, digest, stream, size=None, on_publish=None):
        """Copy a file-like stream into the store under ``digest`` (verified, flushed)."""
        if self.has_blob(digest):
            return self.blob_path(digest)
        writer = BlobWriter(self, digest, size, resumable=False, on_publish=on_publish,
                            durable=True)
        try:
            while chunk := stream.read(CHUNK):
                writer.write(chunk)
            return writer.commit()
        finally:
            writer.close()

    def write_blob_bytes(self, data, on_publish=None):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if not self.has_blob(digest):
            self.write_blob(digest, io.BytesIO(data), len(data), on_publish=on_publish)
        return digest

    def import_file(self, path, digest, on_publish=None):
        """Put a local file into blobs: hardlinked when possible (same filesystem) and the file
        is already this user's alone (0600: a link shares the mode, and a blob is private while
        the caller's own file keeps its mode), else copied; its bytes are checked against
        ``digest`` first either way."""
        target = self.blob_path(digest)
        if target.exists():
            return target
        actual = sha256_file(path)
        if actual != digest:
            raise DigestMismatch(f"{path} does not match {digest} (got {actual})")
        with PathLock(self.lock_path(digest)):
            if target.exists():
                return target
            linked = _private(path) and _link(path, target)
        if not linked:
            with open(path, "rb") as src:
                return self.write_blob(digest, src, on_publish=on_publish)
        if on_publish is not None:
            on_publish(digest)
        return target

    def _flush_blobs(self, digests):
        """Make a model's blobs durable before the index names it (cheap for blobs already on
        disk; for a fresh pull it is the one wait for its bytes to reach the disk)."""
        try:
            for digest in digests:
                with contextlib.suppress(FileNotFoundError):  # add_model reports it missing
                    off_the_loop(fsync_file, self.blob_path(digest))
            fsync_dir(self.root / "blobs" / "sha256")
        except OSError as e:
            if is_disk_full(e):
                raise disk_full(self.root, "the model's blobs") from None
            raise

    # -- index ----------------------------------------------------------------------------------

    def _read_index(self):
        try:
            index = json.loads((self.root / "models.json").read_bytes() or b'{"models":[]}')
        except ValueError as e:
            raise StoreError(f"the index {self.root / 'models.json'} is corrupt ({e}): run "
                             f"`model fsck --repair`") from None
        if not isinstance(index, dict) or not isinstance(index.get("models"), list):
            raise StoreError(f"the index {self.root / 'models.json'} has no list of models: "
                             f"run `model fsck --repair`")
        return index

    def _write_index(self, index):
        atomic_write(self.root / "models.json", json.dumps(index, indent=2).encode(), self.root)

    @contextlib.contextmanager
    def _index(self):
        """Read-modify-write the tag index under the store's file lock."""
        with self._lock:
            index = self._read_index()
            yield index
            self._write_index(index)

    def manifest_path(self, model_id):
        return self.root / "manifests" / "sha256" / _hex(model_id)

    def manifest_bytes(self, model_id):
        """The manifest exactly as stored: pushing these bytes keeps the model ID."""
        return self.manifest_path(model_id).read_bytes()

    def _load(self, entry):
        """The Model of an index entry; BrokenModel (with the reason) when it cannot be used."""
        if not isinstance(entry, dict) or not is_digest(entry.get("id")):
            raise BrokenModel(f"the index entry {json.dumps(entry)[:200]} is malformed")
        model_id = entry["id"]
        try:
            data = self.manifest_bytes(model_id)
        except FileNotFoundError:
            raise BrokenModel("its manifest is missing") from None
        except OSError as e:
            raise BrokenModel(f"its manifest cannot be read: {e}") from None
        if "sha256:" + hashlib.sha256(data).hexdigest() != model_id:
            raise BrokenModel("its manifest does not match the model ID")
        try:
            manifest = parse_manifest(data)
            config = read_config(self, manifest)
            missing = missing_blobs(self, manifest)
            if missing:
                raise InvalidModel(f"blob {', '.join(missing)}")
            bundle_files(manifest)
        except InvalidModel as e:
            raise BrokenModel(str(e)) from None
        except OSError as e:
            raise BrokenModel(f"a blob cannot be read: {e}") from None
        return Model(model_id, list(_tags(entry)), list(entry.get("files") or []), manifest, config)

    def _load_or_broken(self, entry):
        try:
            return self._load(entry)
        except BrokenModel as e:
            good = isinstance(entry, dict)
            files = entry.get("files") if good and isinstance(entry.get("files"), list) else []
            return Model(str(entry.get("id", "")) if good else "", list(_tags(entry)), files,
                         broken=str(e))

    def listing(self):
        """Every index entry as a Model; those that cannot be used have ``broken`` set."""
        return [self._load_or_broken(e) for e in self._read_index()["models"]]

    def models(self):
        """The models that can be used (broken entries are left out: see ``listing``)."""
        return [m for m in self.listing() if not m.broken]

    def add_model(self, manifest_bytes, tags=()):
        """Record a model whose blobs are all present; returns the Model. Tags move to it.

        Refused (InvalidModel, the index unchanged) unless the manifest and config parse, every
        blob is there with its size, and the layers unpack to distinct files.
        """
        manifest = parse_manifest(manifest_bytes)
        bundle_files(manifest)
        tags = [refs.normalize(t) for t in tags]
        model_id = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
        digests = list(dict.fromkeys(manifest_digests(manifest)))
        read_config(self, manifest)
        self._flush_blobs(digests)
        with self._index() as index:
            missing = missing_blobs(self, manifest)  # under the lock: no delete in between
            if missing:
                raise InvalidModel(f"model is missing blobs: {', '.join(missing)}")
            atomic_write(self.manifest_path(model_id), manifest_bytes, self.root)
            entries = [e for e in index["models"] if isinstance(e, dict)]
            for entry in entries:
                entry["tags"] = [t for t in _tags(entry) if t not in tags]
            entry = next((e for e in entries if e.get("id") == model_id), None)
            if entry is None:
                entry = {"id": model_id, "tags": [], "files": digests}
                index["models"].append(entry)
            entry["files"] = digests
            entry["tags"] = entry["tags"] + [t for t in tags if t not in entry["tags"]]
        return self.get(model_id)

    # -- lookup ---------------------------------------------------------------------------------

    @staticmethod
    def _find(entries, text, partial=False):
        """The index entry a reference, tag, ID or ID prefix names; NotFound otherwise."""
        text = (text or "").strip()
        entries = [e for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)]
        if refs.is_model_id(text):
            hexpart = text.lower().removeprefix("sha256:")
            for entry in entries:
                if entry["id"].removeprefix("sha256:").startswith(hexpart):
                    return entry
        ref = refs.parse(text)
        wanted = str(ref)
        for entry in entries:
            if wanted in _tags(entry):
                return entry
            if ref.digest and entry["id"] == ref.digest:
                return entry
        if partial:
            for entry in entries:
                for tag in _tags(entry):
                    if tag.rsplit(":", 1)[0] == ref.name or refs.display(tag).split(":")[0] == text:
                        return entry
        raise NotFound(f"model {text} not found")

    def get(self, text, partial=False):
        """The model a reference, tag, ID or ID prefix names; NotFound otherwise, BrokenModel
        when its entry cannot be used. With ``partial`` (inspect, as DMR): a bare name also
        matches any tag of that name."""
        entry = self._find(self._read_index()["models"], text, partial)
        try:
            return self._load(entry)
        except BrokenModel as e:
            raise BrokenModel(f"model {text} is broken: {e}; `model rm {text}` removes it, "
                              f"pulling it again repairs it") from None

    # -- tags and deletion ----------------------------------------------------------------------

    def tag(self, source, target):
        model = self.get(source)
        target = refs.normalize(target)
        with self._index() as index:
            entries = [e for e in index["models"] if isinstance(e, dict)]
            entry = next((e for e in entries if e.get("id") == model.id), None)
            if entry is None:
                raise NotFound(f"model {source} not found")
            for other in entries:
                if other is not entry and target in _tags(other):
                    other["tags"] = [t for t in _tags(other) if t != target]
            if target not in _tags(entry):
                entry["tags"] = _tags(entry) + [target]
        return target

    def delete(self, text, force=False):
        """DMR semantics: deleting by a tag of a multi-tag model only untags it; deleting by ID
        a model with several tags is a 409 unless forced. Returns DMR's response list. A broken
        entry is removed like any other. The index changes first; the files are collected
        after (a crash in between leaves garbage, not an entry without its files)."""
        by_id = refs.is_model_id(text)
        untag_only = None if by_id else refs.normalize(text)
        with self._index() as index:
            entry = self._find(index["models"], text)
            tags = _tags(entry)
            if by_id and len(tags) > 1 and not force:
                raise Conflict(f"unable to delete {text} (must be forced) due to multiple tag "
                               f"references")
            if untag_only in tags and len(tags) > 1 and not force:
                entry["tags"] = [t for t in tags if t != untag_only]
                return [{"Untagged": untag_only}]
            index["models"].remove(entry)
        files = entry.get("files") if isinstance(entry.get("files"), list) else []
        self.collect(candidates=set(files) | {entry["id"]})
        return [{"Untagged": t} for t in tags] + [{"Deleted": entry["id"]}]

    def purge(self):
        if not (self.root / "layout.json").exists():
            raise StoreError("refusing to purge: layout.json is missing, this is not a model store")
        with self._index() as index:
            count = len(index["models"])
            index["models"] = []
        self.collect(everything=True)
        return count

    def disk_usage(self):
        total = 0
        for path in (self.root / "blobs").rglob("*"):
            with contextlib.suppress(OSError):
                if path.is_file():
                    total += path.stat().st_size
        return total

    # -- integrity ------------------------------------------------------------------------------

    def operation(self, keep_on_failure=False, keep_unreferenced=False):
        """A pull, load, upload or create: see operation.py."""
        from .operation import Operation
        return Operation(self, keep_on_failure=keep_on_failure,
                         keep_unreferenced=keep_unreferenced)

    def collect(self, candidates=None, everything=False, incomplete_age=0, wait=0.0):
        """Remove garbage no model needs (see collect.py); returns what was removed."""
        from .collect import collect
        return collect(self, candidates=candidates, everything=everything,
                       incomplete_age=incomplete_age, wait=wait)

    def collect_at_start(self):
        """Server start: everything unreferenced, but partial downloads younger than a week
        stay so a pull resumes them (DMR's rule)."""
        from .collect import INCOMPLETE_MAX_AGE
        return self.collect(everything=True, incomplete_age=INCOMPLETE_MAX_AGE)

    def prune(self, wait=10.0):
        """``model prune``: all garbage, partial downloads included; StoreBusy when pulls,
        loads or uploads stay in flight for ``wait`` seconds."""
        report = self.collect(everything=True, wait=wait)
        if report["deferred"]:
            raise StoreBusy("the store is busy (a pull, load or upload is in flight): prune "
                            "runs when it ends, or try again then")
        return report

    def clean_incomplete(self, older_than=7 * 86400):
        """Drop .incomplete downloads nobody resumed for a week (as DMR does)."""
        return self.collect(everything=True, incomplete_age=older_than)

    def fsck(self, repair=False):
        from .fsck import fsck
        return fsck(self, repair=repair)

    # -- bundles --------------------------------------------------------------------------------

    def bundle(self, model):
        """Unpack ``model`` into bundles/sha256/<hex>/ with hardlinks; idempotent."""
        from .bundle import unpack
        return unpack(self, model)

    # -- runner configurations ------------------------------------------------------------------

    def runner_configs(self):
        path = self.root / "runners.json"
        return json.loads(path.read_bytes()) if path.exists() else {}

    def set_runner_config(self, key, config):
        with self._lock:
            configs = self.runner_configs()
            configs[key] = config
            atomic_write(self.root / "runners.json", json.dumps(configs, indent=2).encode(),
                         self.root)


def _private(path):
    st = os.stat(path)
    return st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == FILE_MODE


def _link(path, target):
    try:
        os.link(path, target)  # appears whole or not at all: no temp name needed
        return True
    except OSError:
        return False


def _tags(entry):
    tags = entry.get("tags") if isinstance(entry, dict) else None
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


__all__ = ["FilesystemStore", "Model", "Bundle", "BlobWriter", "StoreError", "NotFound",
           "Conflict", "DigestMismatch", "InvalidModel", "BrokenModel", "StoreFull", "StoreBusy",
           "bundle_files"]
