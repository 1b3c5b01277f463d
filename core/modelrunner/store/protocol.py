"""The Store protocol: what the core and plugins may ask of a store (``make_store`` returns one).

The core's filesystem store (DMR's layout under ``models_path``) is the reference
implementation; a plugin that replaces it implements these methods with the same meaning.
"""

from typing import Protocol


class Store(Protocol):
    fsync: bool

    # blobs: content-addressed, "sha256:<hex>"; the bytes under a digest always hash to it
    def blob_path(self, digest): """The file of a stored blob (it may not exist)."""
    def has_blob(self, digest): """Whether the blob is stored and complete."""
    def blob_writer(self, digest, size=None): """A ``BlobWriter`` that resumes a partial blob."""
    def write_blob(self, digest, stream, size=None): """Store a stream; verified, atomic."""
    def write_blob_bytes(self, data): """Store bytes; returns their digest."""
    def import_file(self, path, digest): """Store a local file (hard link when it can)."""

    # models: a manifest (its digest is the model ID) and its tags
    def models(self): """Every stored ``Model``."""
    def get(self, text, partial=False): """The ``Model`` a tag, name or ID names (NotFound)."""
    def manifest_bytes(self, model_id): """The manifest exactly as stored."""
    def add_model(self, manifest_bytes, tags=()): """Index a model whose blobs are all in."""
    def tag(self, source, target): """Add a tag to a model."""
    def delete(self, text, force=False): """Remove a tag, or a model with ``force``."""
    def purge(self): """Remove every model; returns how many."""
    def disk_usage(self): """Bytes the store holds."""

    # running
    def bundle(self, model): """A ``Bundle``: the model's files unpacked for a runner."""
    def runner_configs(self): """``{"engine|model id|mode": RunnerConfig dict}`` persisted."""
    def set_runner_config(self, key, config): """Persist one runner configuration."""
