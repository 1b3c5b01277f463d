"""The local model store (the core's default for the ``make_store`` hook)."""

from .filesystem import (Conflict, DigestMismatch, FilesystemStore, InvalidModel, Model, NotFound,
                         StoreError)

__all__ = ["FilesystemStore", "Model", "StoreError", "NotFound", "Conflict", "DigestMismatch",
           "InvalidModel"]
