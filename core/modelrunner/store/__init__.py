"""The local model store (the core's default for the ``make_store`` hook)."""

from .errors import (BrokenModel, Conflict, DigestMismatch, InvalidModel, NotFound, StoreBusy,
                     StoreError, StoreFull)
from .filesystem import FilesystemStore, Model

__all__ = ["FilesystemStore", "Model", "StoreError", "NotFound", "Conflict", "DigestMismatch",
           "InvalidModel", "BrokenModel", "StoreFull", "StoreBusy"]
