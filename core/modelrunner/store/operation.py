"""One pull, load, upload or create against the store, and what it takes back if it fails.

``store.operation()`` holds the collector lock shared for the operation's length (no collection
removes what it wrote or relies on meanwhile) and hands out the store itself, wrapped so that
the blobs this operation publishes are noted. The wrapper has the store's whole interface, so a
source that is given it (``source.pull(ref, store, ...)``) needs no change.

At the end it takes back the blobs it published that no model names, as the operation asks:

* a load (``POST /models/load``) always: tar members its manifest does not name, and
  everything when it fails;
* a create: what it wrote when it fails;
* a pull, only on a full disk (otherwise the finished layers stay, so the next pull of the same
  model resumes instead of starting again; server start and ``model prune`` collect them);
* an upload (``POST /api/blobs``) keeps its blob: a create names it later.

A full disk also removes the operation's ``.incomplete`` files: resuming would hit it again.
"""

from .collect import collect, collect_own_partials, has_pending
from .errors import StoreFull, is_disk_full


class Operation:
    def __init__(self, store, keep_on_failure=False, keep_unreferenced=False):
        self.store = store
        self.keep_on_failure = keep_on_failure
        self.keep_unreferenced = keep_unreferenced
        self.published = set()
        self.partials = set()
        self._lease = None

    def __enter__(self):
        self._lease = self.store.collector_lock.acquire(shared=True)
        return self

    def __exit__(self, exc_type, exc, tb):
        self._lease.release()
        full = isinstance(exc, StoreFull) or is_disk_full(exc)
        if exc is None:
            discard = set() if self.keep_unreferenced else self.published
        else:
            discard = self.published if full or not self.keep_on_failure else set()
        if full:
            collect_own_partials(self.store, self.partials)
        if discard or has_pending(self.store):
            try:
                collect(self.store, candidates=discard)
            except Exception:  # taking back is best effort: the operation's own error matters
                pass
        return False

    def _note(self, digest):
        self.published.add(digest)

    # the store's writers, noting what they publish; everything else is the store's own
    def blob_writer(self, digest, size=None):
        self.partials.add(digest)
        return self.store.blob_writer(digest, size, on_publish=self._note)

    def write_blob(self, digest, stream, size=None):
        return self.store.write_blob(digest, stream, size, on_publish=self._note)

    def write_blob_bytes(self, data):
        return self.store.write_blob_bytes(data, on_publish=self._note)

    def import_file(self, path, digest):
        return self.store.import_file(path, digest, on_publish=self._note)

    def __getattr__(self, name):
        return getattr(self.store, name)


def operation(store, **kwargs):
    """``store.operation(**kwargs)``, or the store itself for a store plugin without one."""
    make = getattr(store, "operation", None)
    if make is None:
        import contextlib
        return contextlib.nullcontext(store)
    return make(**kwargs)


# the name the public API (``modelrunner``) gives it
store_operation = operation
