"""Model uploads (``POST /models/load``, Ollama's ``POST /api/blobs``): bounded by the setting
``max_upload`` (bytes or "20GiB"; 0 = no cap) and by the free space of the store's disk.

A resource says it takes uploads with ``max_body = modelrunner.UPLOAD``. A Content-Length above
the cap is a 413 and above the free space a 507, both before a byte is read; a chunked body
without a length is counted as it is read and stops with a 413 at the cap (the store discards
the partial blob).
"""

import os
import shutil

import falcon

UPLOAD = "upload"  # a resource's max_body for model uploads


def parse_upload_cap(value):
    """The ``max_upload`` setting in bytes; 0 = no cap."""
    from .scheduler.durations import parse_bytes
    if value in (None, "", 0, "0", "none"):
        return 0
    return int(parse_bytes(value))


def free_space(path):
    """Free bytes on the filesystem that holds ``path`` (or its nearest existing parent)."""
    path = os.path.abspath(os.path.expanduser(str(path)))
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return shutil.disk_usage(path).free


def check_upload(req, cap, store_path):
    """Refuse an upload that cannot fit: 413 above ``cap``, 507 above the free space. A body of
    unknown length is wrapped to stop at ``cap``."""
    length = req.content_length
    if length is not None:
        if cap and length > cap:
            raise falcon.HTTPContentTooLarge(
                description=f"upload is {length} bytes; the limit (max_upload) is {cap}")
        free = free_space(store_path)
        if length > free:
            raise falcon.HTTPInsufficientStorage(
                description=f"no space left on the device holding the model store for this upload: "
                            f"it is {length} bytes and the disk has {free} bytes free")
    elif cap:
        req.stream = CappedStream(req.stream, cap)


class CappedStream:
    """A request stream that raises 413 once more than ``cap`` bytes have been read."""

    def __init__(self, stream, cap):
        self.stream = stream
        self.cap = cap
        self.count = 0

    def _count(self, data):
        self.count += len(data)
        if self.count > self.cap:
            raise falcon.HTTPContentTooLarge(
                description=f"upload exceeds the limit (max_upload) of {self.cap} bytes")
        return data

    def read(self, size=-1):
        return self._count(self.stream.read(size))

    def readline(self, size=-1):
        return self._count(self.stream.readline(size))

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def __iter__(self):
        return iter(lambda: self.read(1 << 16), b"")
