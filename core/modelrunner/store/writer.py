"""BlobWriter: one writer's bytes for one blob, verified, then published under the digest.

Two kinds, one interface (``offset``, ``write``, ``receive``, ``restart``, ``commit``, ``close``):

* resumable (``store.blob_writer``, for pulls): it first takes the digest's lock, waiting while
  another writer has this blob, so ``<hex>.incomplete`` is its own for as long as it lives: a
  resumed pull continues its own bytes, never another writer's. When the lock comes and the blob
  is already published (the other writer finished it), ``offset`` is the full size and nothing is
  downloaded.
* private (``store.write_blob`` and friends, for uploads): bytes go to a temp file of its own,
  so two uploads of one digest never wait for each other; the digest's lock is taken only to
  publish.

``commit`` checks that the file under our name is still ours and holds exactly as many bytes as
the hash saw (the hash covers the resumed bytes read back from the file and every byte written
through our descriptor, and nobody else writes there: the digest's lock or a name of our own),
checks the sha256, then, under the digest's lock, renames the file into place, or, when the blob
is already there, discards its own (verified) copy. A full disk removes the writer's file and
raises StoreFull.
"""

import contextlib
import hashlib
import os

from ..private import FILE_MODE
from .durable import fsync_dir
from .errors import DigestMismatch, disk_full, is_disk_full
from .hashing import BackgroundSha256, off_the_loop
from .locks import PathLock, locked_temp
from .modes import make_dirs

CHUNK = 1 << 20
RECEIVE_BUFFER = 4 << 20   # one read of a download; RECEIVE_BUFFERS of them in flight
RECEIVE_BUFFERS = 3


def _same_file(path, st):
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    return (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev)


class BlobWriter:
    def __init__(self, store, digest, size=None, resumable=True, on_publish=None, durable=None):
        self.digest = digest
        self.size = size
        self.final = store.blob_path(digest)
        self.partial = self.final.with_name(self.final.name + ".incomplete")
        make_dirs(self.final.parent)
        self.resumable = resumable
        # a pull's blobs are flushed when its model enters the index (one wait, not one per
        # blob); an upload is acknowledged blob by blob, so it is flushed at commit
        self.fsync = store.fsync if durable is None else durable
        self._root = store.root
        self._on_publish = on_publish
        self._lock = PathLock(store.lock_path(digest))
        self._hash = hashlib.sha256()
        self._file = None
        self.path = None
        self._done = False
        self.offset = 0
        if resumable:
            self._lock.acquire()  # another writer of this blob finishes (or dies) first
            try:
                if self.final.exists() and size is not None and self.final.stat().st_size == size:
                    self.offset = size  # published meanwhile: nothing to write
                    return
                self._open_partial()
            except BaseException:
                self._lock.release()
                raise
        else:
            self._file, self.path = locked_temp(self.final.parent, f".{self.final.name}.", ".tmp")

    def _open_partial(self):
        fd = os.open(self.partial, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                     FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)  # a partial file an older version left 0644
        except BaseException:
            os.close(fd)
            raise
        self._file = os.fdopen(fd, "r+b")
        self.path = self.partial
        self._hash = hashlib.sha256()

        def rehash():  # gigabytes of a resumed pull: on an OS thread under gevent
            while chunk := self._file.read(4 * CHUNK):
                self._hash.update(chunk)
        off_the_loop(rehash)
        if self.size is not None and self._file.tell() > self.size:
            self._truncate()
        self.offset = self._file.tell()

    def _truncate(self):
        self._file.seek(0)
        self._file.truncate(0)
        self._hash = hashlib.sha256()
        self.offset = 0

    def restart(self):
        """Throw away resumed bytes (the server ignored our Range request)."""
        if self._file is None:
            self._open_partial()
        self._truncate()

    def _failed(self, error):
        """A write failed: on a full disk our file goes (it can never be finished here)."""
        if is_disk_full(error):
            self._discard()
            raise disk_full(self._root, f"blob {self.digest}") from None
        raise error

    def write(self, chunk):
        if self._file is None:
            self._open_partial()
        try:
            self._file.write(chunk)
        except OSError as e:
            self._failed(e)
        self._hash.update(chunk)
        self.offset += len(chunk)

    def receive(self, readinto, limit, on_chunk=None):
        """Copy from ``readinto(view) -> count`` (0 at the end) until the blob has ``limit`` bytes.

        For downloads: each read is written at once (a broken connection loses at most the read
        in progress, and the next attempt resumes after what was written), while sha256 runs on
        an OS thread one buffer behind (``store.hashing``), so hashing overlaps the network.
        ``on_chunk(offset)`` runs after every write; it may raise to stop (a cancelled pull).
        """
        if self.offset >= limit:
            return
        if self._file is None:
            self._open_partial()
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
                try:
                    self._file.write(view[:count])
                except OSError as e:
                    sha.close()
                    self._failed(e)
                self.offset += count
                sha.update(view[:count])
                if on_chunk:
                    on_chunk(self.offset)
        finally:
            sha.close()

    def commit(self):
        """Verify and publish; returns the blob's path. DigestMismatch removes our file."""
        try:
            if self._file is None:  # published by another writer before we wrote anything
                if not self.final.exists():
                    raise DigestMismatch(f"blob {self.digest} vanished while we waited for it")
                return self.final
            try:
                self._file.flush()
                if self.fsync:
                    off_the_loop(os.fsync, self._file.fileno())
                st = os.fstat(self._file.fileno())
                on_disk = st.st_size
                ours = _same_file(self.path, st)
            except OSError as e:
                self._failed(e)
            if not ours:  # whatever is under our name now is not ours to remove
                self.path = None
                self._discard()
                raise DigestMismatch(f"blob {self.digest}: its file was replaced or removed by "
                                     f"another process while it was written")
            actual = "sha256:" + self._hash.hexdigest()
            if on_disk != self.offset or actual != self.digest:
                got = actual if on_disk == self.offset else \
                    f"{on_disk} bytes on disk but {self.offset} hashed"
                self._discard()
                raise DigestMismatch(f"blob {self.digest} does not match its digest (got {got})")
            if not self._lock.held:
                self._lock.acquire()
            # our file stays open (and a private one locked) until it has its final name
            if self._published_size() == on_disk:
                os.unlink(self.path)  # another writer published it first; ours was a checked copy
            else:  # absent, or a wrong-sized (so corrupt) file under the name: ours replaces it
                os.rename(self.path, self.final)
                if self.fsync:
                    fsync_dir(self.final.parent)
                if self._on_publish is not None:
                    self._on_publish(self.digest)
            self._done = True
            return self.final
        finally:
            self.close()

    def _published_size(self):
        try:
            return self.final.stat().st_size
        except FileNotFoundError:
            return None

    def _discard(self):
        if self._file is not None and not self._file.closed:
            self._file.close()
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self._done = True  # nothing left to keep
        self._lock.release()

    def close(self):
        """Stop writing: a resumable writer keeps its partial file for the next attempt."""
        if self._file is not None and not self._file.closed:
            self._file.close()
        if not self._done and not self.resumable and self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self._lock.release()
