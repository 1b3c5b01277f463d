"""What a source plugin provides (a remote place models come from), and pull progress.

A source pulls a reference into the store and pushes a stored model out. It streams blobs through
``store.blob_writer(digest, size)`` (hashing and resuming there) and calls
``store.add_model(manifest_bytes, tags=[str(ref)])`` only once every blob is in, so an interrupted
pull leaves nothing in `model ls`.
"""

import threading
import time

from .packaging.units import format_size as human_size  # noqa: F401  (DMR's "256.35MiB")


class SourceError(Exception):
    """A pull or push failure with the HTTP status to answer with (401, 403, 404, 422, 502...)."""

    def __init__(self, message, status=500):
        super().__init__(message)
        self.status = status


class Source:
    name = ""
    fallback = False  # True: handles whatever no specific source claimed (OCI registries)

    def handles(self, ref) -> bool:
        return False

    def pull(self, ref, store, progress, token=None):
        """Pull ``ref`` (a modelrunner.reference.Reference) into ``store``; return the Model.

        Report "Using cached model: <size>" through ``progress.message`` when the model is
        already there. ``token`` is a bearer token from the request (DMR's "bearer-token").
        """
        raise NotImplementedError

    def push(self, ref, model, store, progress, token=None):
        """Push the stored ``model`` to ``ref``."""
        raise SourceError(f"{self.name} cannot push", status=400)


def find_source(sources, ref):
    """The source for a reference: a specific one first, then the fallback (registries)."""
    for source in sources:
        if not source.fallback and source.handles(ref):
            return source
    for source in sources:
        if source.fallback and source.handles(ref):
            return source
    raise SourceError(f"no installed source can pull {ref}: pip install modelrunner-oci "
                      f"(registries) or modelrunner-huggingface (hf.co/...)", status=412)


def chunks_readinto(chunks):
    """A ``readinto(view) -> count`` over an iterator of byte chunks (an httpx body), for
    ``BlobWriter.receive``: each call fills the view unless the chunks run out."""
    chunks = iter(chunks)
    left = memoryview(b"")

    def readinto(view):
        nonlocal left
        filled = 0
        while filled < len(view):
            if not left:
                piece = next(chunks, None)
                if piece is None:
                    break
                left = memoryview(piece)
            count = min(len(view) - filled, len(left))
            view[filled:filled + count] = left[:count]
            left = left[count:]
            filled += count
        return filled
    return readinto


class Progress:
    """Turns a source's progress into DMR's messages: {type, message, total, layer, mode}.

    ``emit(dict)`` receives each message. Layer updates are throttled as DMR does (one per 100 ms
    or per MiB per layer) so a fast local pull does not flood the client. Thread-safe: sources
    download layers in parallel.
    """

    def __init__(self, emit, mode="pull", interval=0.1, step=1 << 20):
        self.emit = emit
        self.mode = mode
        self.interval = interval
        self.step = step
        self.total = 0
        self._last = {}  # layer id -> (time, bytes) of the last message
        self._lock = threading.Lock()

    def set_total(self, total):
        self.total = total

    def layer(self, layer_id, size, current):
        with self._lock:
            self._layer(layer_id, size, current)

    def _layer(self, layer_id, size, current):
        now = time.monotonic()
        last_time, last_bytes = self._last.get(layer_id, (0.0, -self.step))
        if current < size and now - last_time < self.interval and current - last_bytes < self.step:
            return
        self._last[layer_id] = (now, current)
        verb = "Downloaded" if self.mode == "pull" else "Uploaded"
        self.emit({"type": "progress", "mode": self.mode, "total": self.total,
                   "message": f"{verb}: {human_size(current)}",
                   "layer": {"id": layer_id, "size": size, "current": current}})

    def message(self, text):
        self.emit({"type": "progress", "mode": self.mode, "message": text, "total": self.total})

    def warning(self, text):
        self.emit({"type": "warning", "mode": self.mode, "message": text})
