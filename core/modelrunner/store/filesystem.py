"""The local model store, in Docker Model Runner's layout so DMR and modelrunner can share it.

    <root>/layout.json            {"version": "1.0.0"}
    <root>/models.json            {"models": [{"id", "tags", "files"}]}  the tag index
    <root>/blobs/sha256/<hex>     layers and configs; <hex>.incomplete while downloading
    <root>/manifests/sha256/<hex> raw manifests; the model ID is sha256 of these bytes
    <root>/bundles/sha256/<hex>/  config.json + model/<files>, hardlinked from blobs, for runners
    <root>/runners.json           runner configurations from `_configure` (modelrunner's addition)

Every write is a temp file + rename; the index is read-modify-written under a file lock, so
several processes (gunicorn workers, the CLI's `package`) can write at once. A blob enters
blobs/ only after its bytes hashed to its digest, and a manifest only after all of its blobs are
there, so an interrupted pull never leaves a half-model in `model ls`.
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..locks import file_lock

from .. import reference as refs
from ..engines import Bundle
from ..errors import ModelRunnerError
from .hashing import BackgroundSha256

CHUNK = 1 << 20
RECEIVE_BUFFER = 4 << 20   # one read of a download; RECEIVE_BUFFERS of them in flight
RECEIVE_BUFFERS = 3


class StoreError(ModelRunnerError):
    status = 500


class NotFound(StoreError):
    status = 404


class Conflict(StoreError):
    status = 409


class DigestMismatch(StoreError):
    status = 422


class InvalidModel(StoreError):
    status = 400


@dataclass
class Model:
    id: str                    # "sha256:<64 hex>"
    tags: list
    files: list                # digests of the layers and the config
    manifest: dict = field(repr=False, default_factory=dict)
    config: dict = field(repr=False, default_factory=dict)  # the whole config blob

    @property
    def short_id(self):
        return self.id.split(":", 1)[1][:12]

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
        except (AttributeError, ValueError):
            return 0

    @property
    def size(self):
        return sum(layer.get("size", 0) for layer in self.manifest.get("layers", []))

    def to_api(self):
        """GET /models shape: {id, tags, created, config}."""
        return {"id": self.id, "tags": list(self.tags), "created": self.created,
                "config": self.inner_config}


def _hex(digest):
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise InvalidModel(f"invalid digest {digest!r}")
    return hexpart


def _atomic_write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.fchmod(fd, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class BlobWriter:
    """Streams one blob into the store, hashing as it goes; resumable.

    Bytes go to ``<hex>.incomplete``; ``offset`` says how many are already there (a source asks
    the registry for the rest with a Range request). ``commit()`` checks the digest and renames
    into place; a mismatch deletes the partial file and raises DigestMismatch. With the store's
    ``fsync`` the bytes are flushed to disk before the rename (off by default, as in curl, DMR
    and huggingface_hub: it halves pull speed here; without it, a power cut just after a pull
    can leave a blob short or zeroed under its name).
    """

    def __init__(self, store, digest, size=None):
        self.digest = digest
        self.size = size
        self.fsync = store.fsync
        self.final = store.blob_path(digest)
        self.partial = self.final.with_name(self.final.name + ".incomplete")
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        self._hash = hashlib.sha256()
        self._file = open(self.partial, "ab+")
        self._file.seek(0)
        while chunk := self._file.read(CHUNK):
            self._hash.update(chunk)
        if size is not None and self._file.tell() > size:
            self._file.truncate(0)
            self._hash = hashlib.sha256()
        self.offset = self._file.tell()

    def restart(self):
        """Throw away resumed bytes (the server ignored our Range request)."""
        self._file.truncate(0)
        self._file.seek(0)
        self._hash = hashlib.sha256()
        self.offset = 0

    def write(self, chunk):
        self._file.write(chunk)
        self._hash.update(chunk)
        self.offset += len(chunk)

    def receive(self, readinto, limit, on_chunk=None):
        """Copy from ``readinto(view) -> count`` (0 at the end) until the blob has ``limit`` bytes.

        For downloads: each read is written at once (a broken connection loses at most the read
        in progress, and the next attempt resumes after what was written), while sha256 runs on
        an OS thread one buffer behind (``store.hashing``), so hashing overlaps the network.
        ``on_chunk(offset)`` runs after every write; it may raise to stop (a cancelled pull).
        """
        if limit - self.offset <= CHUNK:  # a config or a tail: not worth a thread
            view = memoryview(bytearray(limit - self.offset))
            while self.offset < limit and (count := readinto(view[:limit - self.offset])):
                self.write(view[:count])
                if on_chunk:
                    on_chunk(self.offset)
            return
        span = min(RECEIVE_BUFFER, limit - self.offset)
        buffers = [memoryview(bytearray(span)) for _ in range(RECEIVE_BUFFERS)]
        sha = BackgroundSha256(self._hash)
        try:
            turn = 0
            while self.offset < limit:
                sha.wait(RECEIVE_BUFFERS - 1)  # the buffer we take next is hashed
                view = buffers[turn % RECEIVE_BUFFERS][:min(span, limit - self.offset)]
                turn += 1
                count = readinto(view)
                if not count:
                    break
                self._file.write(view[:count])
                self.offset += count
                sha.update(view[:count])
                if on_chunk:
                    on_chunk(self.offset)
        finally:
            sha.close()

    def commit(self):
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        self._file.close()
        actual = "sha256:" + self._hash.hexdigest()
        if actual != self.digest:
            self.partial.unlink(missing_ok=True)
            raise DigestMismatch(f"blob {self.digest} does not match its digest (got {actual})")
        os.replace(self.partial, self.final)
        return self.final

    def close(self):
        if not self._file.closed:
            self._file.close()


class FilesystemStore:
    def __init__(self, root, fsync=False):
        self.root = Path(root)
        self.fsync = fsync  # flush each blob to disk before it enters the store
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in ("blobs/sha256", "manifests/sha256", "bundles/sha256"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._lock = file_lock(self.root / ".lock")
        if not (self.root / "layout.json").exists():
            _atomic_write(self.root / "layout.json", b'{"version":"1.0.0"}')
        if not (self.root / "models.json").exists():
            _atomic_write(self.root / "models.json", b'{"models":[]}')

    # -- blobs ----------------------------------------------------------------------------------

    def blob_path(self, digest):
        return self.root / "blobs" / "sha256" / _hex(digest)

    def has_blob(self, digest):
        return self.blob_path(digest).exists()

    def blob_writer(self, digest, size=None):
        return BlobWriter(self, digest, size)

    def write_blob(self, digest, stream, size=None):
        """Copy a file-like stream into the store under ``digest`` (verified)."""
        if self.has_blob(digest):
            return self.blob_path(digest)
        writer = self.blob_writer(digest, size)
        writer.restart()
        try:
            while chunk := stream.read(CHUNK):
                writer.write(chunk)
            return writer.commit()
        finally:
            writer.close()

    def write_blob_bytes(self, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if not self.has_blob(digest):
            _atomic_write(self.blob_path(digest), data)
        return digest

    def import_file(self, path, digest):
        """Put a local file into blobs: hardlinked when possible (same filesystem), else copied."""
        target = self.blob_path(digest)
        if target.exists():
            return target
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            os.link(path, tmp)
        except OSError:
            with open(path, "rb") as src:
                return self.write_blob(digest, src)
        os.replace(tmp, target)
        return target

    # -- index ----------------------------------------------------------------------------------

    def _read_index(self):
        return json.loads((self.root / "models.json").read_bytes() or b'{"models":[]}')

    def _write_index(self, index):
        _atomic_write(self.root / "models.json", json.dumps(index, indent=2).encode())

    @contextlib.contextmanager
    def _index(self):
        """Read-modify-write the tag index under the store's file lock."""
        with self._lock:
            index = self._read_index()
            yield index
            self._write_index(index)

    def manifest_bytes(self, model_id):
        """The manifest exactly as stored: pushing these bytes keeps the model ID."""
        return (self.root / "manifests" / "sha256" / _hex(model_id)).read_bytes()

    def _load(self, entry):
        manifest = json.loads(self.manifest_bytes(entry["id"]))
        config_digest = manifest.get("config", {}).get("digest")
        config = {}
        if config_digest and self.has_blob(config_digest):
            config = json.loads(self.blob_path(config_digest).read_bytes())
        return Model(entry["id"], list(entry.get("tags", [])), list(entry.get("files", [])),
                     manifest, config)

    def models(self):
        return [self._load(e) for e in self._read_index()["models"]]

    def add_model(self, manifest_bytes, tags=()):
        """Record a model whose blobs are all present; returns the Model. Tags move to it."""
        try:
            manifest = json.loads(manifest_bytes)
        except ValueError as e:
            raise InvalidModel(f"manifest is not JSON: {e}") from None
        digests = [layer["digest"] for layer in manifest.get("layers", [])]
        if "config" in manifest:
            digests.append(manifest["config"]["digest"])
        missing = [d for d in digests if not self.has_blob(d)]
        if missing:
            raise InvalidModel(f"model is missing blobs: {', '.join(missing)}")
        model_id = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
        tags = [refs.normalize(t) for t in tags]
        _atomic_write(self.root / "manifests" / "sha256" / _hex(model_id), manifest_bytes)
        with self._index() as index:
            for entry in index["models"]:
                entry["tags"] = [t for t in entry.get("tags", []) if t not in tags]
            entry = next((e for e in index["models"] if e["id"] == model_id), None)
            if entry is None:
                entry = {"id": model_id, "tags": [], "files": digests}
                index["models"].append(entry)
            entry["tags"] = entry["tags"] + [t for t in tags if t not in entry["tags"]]
        return self.get(model_id)

    # -- lookup ---------------------------------------------------------------------------------

    def get(self, text, partial=False):
        """The model a reference, tag, ID or ID prefix names; NotFound otherwise.

        With ``partial`` (inspect, as DMR): a bare name also matches any tag of that name.
        """
        text = (text or "").strip()
        entries = self._read_index()["models"]
        if refs.is_model_id(text):
            hexpart = text.lower().removeprefix("sha256:")
            for entry in entries:
                if entry["id"].removeprefix("sha256:").startswith(hexpart):
                    return self._load(entry)
        ref = refs.parse(text)
        wanted = str(ref)
        for entry in entries:
            if wanted in entry.get("tags", []):
                return self._load(entry)
            if ref.digest and entry["id"] == ref.digest:
                return self._load(entry)
        if partial:
            for entry in entries:
                for tag in entry.get("tags", []):
                    if tag.rsplit(":", 1)[0] == ref.name or refs.display(tag).split(":")[0] == text:
                        return self._load(entry)
        raise NotFound(f"model {text} not found")

    # -- tags and deletion ----------------------------------------------------------------------

    def tag(self, source, target):
        model = self.get(source)
        target = refs.normalize(target)
        with self._index() as index:
            for entry in index["models"]:
                if target in entry["tags"] and entry["id"] != model.id:
                    entry["tags"].remove(target)
            entry = next(e for e in index["models"] if e["id"] == model.id)
            if target not in entry["tags"]:
                entry["tags"].append(target)
        return target

    def delete(self, text, force=False):
        """DMR semantics: deleting by a tag of a multi-tag model only untags it; deleting by ID
        a model with several tags is a 409 unless forced. Returns DMR's response list."""
        model = self.get(text)
        by_id = refs.is_model_id(text)
        untag_only = None
        if not by_id:
            untag_only = refs.normalize(text)
        if by_id and len(model.tags) > 1 and not force:
            raise Conflict(f"unable to delete {text} (must be forced) due to multiple tag references")
        result = []
        with self._index() as index:
            entry = next(e for e in index["models"] if e["id"] == model.id)
            if untag_only and len(entry["tags"]) > 1 and not force:
                entry["tags"].remove(untag_only)
                return [{"Untagged": untag_only}]
            result += [{"Untagged": t} for t in entry["tags"]]
            index["models"].remove(entry)
            kept = {d for e in index["models"] for d in e.get("files", [])}
            self._remove_model_files(model, kept)
        result.append({"Deleted": model.id})
        return result

    def _remove_model_files(self, model, kept):
        for digest in model.files:
            if digest not in kept:
                self.blob_path(digest).unlink(missing_ok=True)
        (self.root / "manifests" / "sha256" / _hex(model.id)).unlink(missing_ok=True)
        shutil.rmtree(self.root / "bundles" / "sha256" / _hex(model.id), ignore_errors=True)

    def purge(self):
        if not (self.root / "layout.json").exists():
            raise StoreError("refusing to purge: layout.json is missing, this is not a model store")
        with self._index() as index:
            models = [self._load(e) for e in index["models"]]
            index["models"] = []
            for model in models:
                self._remove_model_files(model, set())
        return len(models)

    def disk_usage(self):
        total = 0
        for path in (self.root / "blobs").rglob("*"):
            if path.is_file():
                total += path.stat().st_size
        return total

    def clean_incomplete(self, older_than=7 * 86400):
        """Drop .incomplete downloads nobody resumed for a week (as DMR does)."""
        now = time.time()
        for path in (self.root / "blobs" / "sha256").glob("*.incomplete"):
            if now - path.stat().st_mtime > older_than:
                path.unlink(missing_ok=True)

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
            _atomic_write(self.root / "runners.json", json.dumps(configs, indent=2).encode())


def bundle_files(model):
    """(layer, name) for each layer of a model: where it goes under bundle/model/."""
    names = []
    counts = {}
    for layer in model.manifest.get("layers", []):
        media = layer.get("mediaType", "")
        path = (layer.get("annotations") or {}).get("org.cncf.model.filepath")
        if not path:
            kind = media.rsplit(".", 1)[-1]
            counts[kind] = counts.get(kind, 0) + 1
            path = {"v3": "model.gguf", "mmproj": "model.mmproj", "jinja": "template.jinja",
                    "license": f"license-{counts[kind]}.txt"}.get(kind, layer["digest"].split(":")[1])
        if ".." in Path(path).parts or Path(path).is_absolute():
            raise InvalidModel(f"layer path {path!r} escapes the bundle")
        names.append((layer, path))
    return names


__all__ = ["FilesystemStore", "Model", "Bundle", "StoreError", "NotFound", "Conflict",
           "DigestMismatch", "InvalidModel", "bundle_files"]
