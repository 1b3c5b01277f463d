"""The store's errors, each with the HTTP status a route answers it with."""

import errno

from ..errors import ModelRunnerError


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


class BrokenModel(StoreError):
    """An index entry whose manifest, config or blobs cannot be read: it is listed (as broken)
    and removable, but nothing may run, tag or push it until a pull repairs it."""
    status = 500


class StoreFull(StoreError):
    """The disk under the store ran out of space (ENOSPC or a quota): 507 Insufficient Storage."""
    status = 507


class StoreBusy(Conflict):
    """A collection could not start because pulls, loads or uploads are in flight."""


def is_disk_full(error):
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(root, what):
    """The one message every dialect shows for a full disk, whatever was being written."""
    return StoreFull(f"no space left on the device holding the model store {root} while "
                     f"writing {what}; nothing was added and the partial files were removed: "
                     f"free some space (model prune, model rm) and try again")
