"""What a source plugin provides (a remote place models come from), and pull progress.

A source pulls a reference into the store and pushes a stored model out. It streams blobs through
``store.blob_writer(digest, size)`` (hashing and resuming there) and calls
``store.add_model(manifest_bytes, tags=[str(ref)])`` only once every blob is in, so an interrupted
pull leaves nothing in `model ls`.
"""

import http.client
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Callable

from .errors import ModelRunnerError
from .store.errors import DigestMismatch

from .packaging.units import format_size as human_size  # noqa: F401  (DMR's "256.35MiB")


class SourceError(ModelRunnerError):
    """A pull or push failure with the HTTP status to answer with (401, 403, 404, 422, 502...)."""


class Source:
    name = ""
    fallback = False  # True: handles whatever no specific source claimed (OCI registries)
    search_key = ""   # `model search --source KEY` ("dockerhub", "huggingface"); "" = no search

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

    def search(self, term, limit):
        """Models this source offers whose name or description holds ``term`` ("" = all), at
        most ``limit``, most popular first: a list of :class:`SearchResult` (`model search`)."""
        raise SourceError(f"{self.name} cannot search", status=501)


@dataclass
class SearchResult:
    """One model found by a source's :meth:`Source.search` (DMR's ``search.SearchResult``).

    ``name`` is what `model pull` takes (``ai/smollm2``, ``hf.co/org/repo``); ``source`` is
    shown to people ("Docker Hub", "HuggingFace"); ``backend`` is the engine likely to run it.
    """

    name: str
    description: str = ""
    backend: str = ""
    size: int = 0          # bytes, 0 when unknown
    downloads: int = 0
    stars: int = 0
    source: str = ""
    official: bool = False
    updated_at: str = ""

    def to_dict(self):
        return dict(self.__dict__)


def find_source(sources, ref):
    """The source for a reference: a specific one first, then the fallback (registries)."""
    for source in sources:
        if not source.fallback and source.handles(ref):
            return source
    for source in sources:
        if source.fallback and source.handles(ref):
            return source
    raise SourceError(f"no installed source plugin can pull {ref} (`model plugins` lists "
                      f"what is installed)", status=412)


@dataclass
class BlobBody:
    """One answer to a GET of a blob's bytes, as a source's ``open_body`` returns it.

    ``start`` is the offset the bytes begin at: the offset asked for (206), 0 when the server
    sent the whole blob (200), None when it refused the range (416: the partial file is bad).
    """

    start: int | None
    readinto: Callable = None
    close: Callable = lambda: None


# Errors of a connection that broke: the download resumes where its bytes stopped.
TRANSIENT_ERRORS = (ConnectionError, TimeoutError, http.client.HTTPException)
RETRY_DELAYS = (1.0, 3.0)


def fetch_blob(store, digest, size, open_body, *, progress=None, cancelled=None,
               transient=TRANSIENT_ERRORS, retry_delays=RETRY_DELAYS, where=""):
    """Download one blob into ``store``: resumable, verified, and the same for every source.

    ``open_body(offset)`` starts a GET of the bytes from ``offset`` on and returns a
    :class:`BlobBody` (or raises ``SourceError`` for an answer that is an error). A partial
    blob left by an earlier attempt is resumed; a connection that breaks (``transient``) is
    retried after each of ``retry_delays``, each retry resuming where the bytes stopped; the
    blob enters the store only when its sha256 matches ``digest`` (502 otherwise, and nothing
    is kept). ``progress`` (a :class:`Progress`) gets the layer's bytes; ``cancelled`` (an
    Event) stops the download at its next read.
    """
    if store.has_blob(digest):
        if progress is not None:
            progress.layer(digest, size, size)
        return
    writer = store.blob_writer(digest, size)

    def on_chunk(offset):
        if progress is not None:
            progress.layer(digest, size, offset)
        if cancelled is not None and cancelled.is_set():
            raise SourceError("pull cancelled", status=499)

    try:
        failures = 0
        while writer.offset < size or (size == 0 and failures == 0):
            try:
                body = open_body(writer.offset)
                try:
                    if body.start is None:       # the server refused the range: start over
                        if writer.offset == 0:
                            raise SourceError(f"the server refused to send {digest}{where}",
                                              status=502)
                        writer.restart()
                        continue
                    if body.start != writer.offset:
                        if body.start != 0:
                            raise SourceError(f"asked for {digest} from byte {writer.offset}, "
                                              f"got bytes from {body.start}", status=502)
                        writer.restart()         # the server sent the whole blob
                    writer.receive(body.readinto, size, on_chunk)
                finally:
                    body.close()
                if writer.offset < size:
                    raise ConnectionError("the body ended early")
                if size == 0:
                    break
            except transient as e:
                if failures >= len(retry_delays):
                    raise SourceError(f"download of {digest}{where} broke off at {writer.offset} "
                                      f"of {size} bytes: {e or type(e).__name__} (pull again to "
                                      f"resume)", status=502) from None
                time.sleep(retry_delays[failures])
                failures += 1
        try:
            writer.commit()
        except DigestMismatch as e:  # the partial file is gone, nothing stored
            raise SourceError(f"blob {digest}{where} failed verification: {e}",
                              status=502) from None
    finally:
        writer.close()


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


# -- untrusted answers, read with a cap ----------------------------------------------------------


def read_capped(response, limit, what="answer", truncate=False):
    """Read a streamed httpx response's body (a registry's or a hub's: untrusted), at most ``limit`` bytes after decoding (httpx
    gunzips: a small gzip bomb would otherwise grow to gigabytes), so that ``.content`` and
    ``.json()`` work; past the limit SourceError(502), or with ``truncate`` the first ``limit``
    bytes (an error answer, read for its message only). Closes the response."""
    if hasattr(response, "_content"):  # already read
        return response.content
    chunks, total = [], 0
    try:
        for chunk in _decoded(response, limit):
            if total + len(chunk) > limit and truncate:
                chunks.append(chunk[:limit - total])
                break
            total += len(chunk)
            if total > limit:
                raise SourceError(f"{response.url.netloc.decode()} sent a {what} larger than "
                                  f"{limit} bytes", status=502)
            chunks.append(chunk)
    finally:
        response.close()
    response._content = b"".join(chunks)  # what httpx's own read() leaves
    return response._content


def _decoded(response, limit):
    """The body's decoded bytes in pieces of at most ``limit + 1``: httpx's own decoder inflates a
    whole network read at once (64 KiB of gzip can be 64 MiB), so gzip and deflate are inflated
    here, with zlib's ``max_length``."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        yield from response.iter_raw()
        return
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise SourceError(f"{response.url.netloc.decode()} answered in an unsupported encoding "
                          f"{encoding!r}", status=502)
    inflate = zlib.decompressobj(47)  # 32 + 15: a gzip or a zlib header
    try:
        for raw in response.iter_raw():
            pending = raw
            while pending:
                piece = inflate.decompress(pending, limit + 1)
                pending = inflate.unconsumed_tail
                if piece:
                    yield piece
                elif pending:
                    break
    except zlib.error as e:
        raise SourceError(f"{response.url.netloc.decode()} sent a corrupt {encoding} body: {e}",
                          status=502) from None
