"""Registers the filesystem store as the default ``make_store`` implementation."""

from ..hookspecs import hookimpl
from .filesystem import FilesystemStore


@hookimpl(trylast=True)
def make_store(settings):
    return FilesystemStore(settings.models_path, fsync=bool(settings.get("fsync_blobs", False)))
