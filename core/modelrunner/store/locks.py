"""Cross-process locks for the store, all ``flock`` on files, all waiting cooperatively.

Why flock: the kernel drops it when its holder dies, so a SIGKILL never leaves a stale lock, and
it belongs to an open file, so two threads (or greenlets) of one process exclude each other when
each opens its own. Why polling: a blocking flock would stall every greenlet of a gevent worker,
including the one holding the lock; ``time.sleep`` yields to them (gevent patches it).

* ``PathLock``: exclusive, on a lock file that exists only while held (the file is removed on
  release; a waiter that locked a removed file notices and tries again). One per blob digest:
  writers of one blob take turns, writers of other blobs never wait.
* ``SharedLock``: shared or exclusive on a file that stays. The store's collector lock: every
  pull, load, upload or create holds it shared; a collection runs only when it gets it
  exclusively, so it never removes a blob that an operation in flight just wrote or relies on.
* ``locked_temp`` / ``remove_if_unlocked``: a temp file locked by its writer while it exists, so a
  collector can tell a live writer's file from a crashed one's.
"""

import fcntl
import os
import tempfile
import time

_FIRST_POLL = 0.005
_LAST_POLL = 0.1


def _try_flock(fd, mode):
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _wait_for(attempt, timeout):
    """Call ``attempt()`` until it is true; False once ``timeout`` seconds passed (None: never)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = _FIRST_POLL
    while not attempt():
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, _LAST_POLL)
    return True


class PathLock:
    def __init__(self, path):
        self.path = os.fspath(path)
        self._fd = None

    def _attempt(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if _try_flock(fd, fcntl.LOCK_EX):
                st = os.fstat(fd)
                try:
                    current = os.stat(self.path)
                except FileNotFoundError:
                    current = None
                if current is not None and (current.st_ino, current.st_dev) == (st.st_ino, st.st_dev):
                    self._fd, fd = fd, None
                    return True
            return False
        finally:
            if fd is not None:
                os.close(fd)

    def acquire(self, blocking=True, timeout=None):
        os.makedirs(os.path.dirname(self.path), 0o700, exist_ok=True)
        if not blocking:
            return self._attempt()
        return _wait_for(self._attempt, timeout)

    @property
    def held(self):
        return self._fd is not None

    def release(self):
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


class SharedLock:
    def __init__(self, path):
        self.path = os.fspath(path)

    def acquire(self, shared, blocking=True, timeout=None):
        """A held lock (``release()`` it), or None when not blocking/timed out."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        got = _try_flock(fd, mode) if not blocking else _wait_for(lambda: _try_flock(fd, mode), timeout)
        if not got:
            os.close(fd)
            return None
        return _Held(fd)


class _Held:
    def __init__(self, fd):
        self._fd = fd

    def release(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def locked_temp(directory, prefix, suffix=".tmp"):
    """(binary file, path) of a new temp file in ``directory``, locked until the file is closed."""
    fd, path = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=suffix)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a new file nobody else has open: never waits
    return os.fdopen(fd, "w+b"), path


def lock_folder(path):
    """Lock a folder a writer is filling (a bundle being unpacked); close the fd to unlock."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def remove_if_unlocked(path, remove):
    """``remove(path)`` unless a live process holds a lock on it (a temp file or folder being
    written); the check and the removal happen under our own lock. True if removed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not _try_flock(fd, fcntl.LOCK_EX):
            return False
        try:
            remove(path)
        except FileNotFoundError:
            return False
        return True
    finally:
        os.close(fd)
