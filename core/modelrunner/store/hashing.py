"""sha256 on an OS thread, in order, so a download hashes one buffer while it reads the next.

hashlib releases the GIL for large updates, so a second thread really runs in parallel. Under
gevent (the server's workers) ``threading`` is patched into greenlets, which would hash in line;
gevent's own ThreadPoolExecutor runs on OS threads and its futures wait cooperatively. One worker
keeps the updates in the order they were submitted.
"""

import hashlib
import sys
from concurrent import futures


def _executor():
    if "gevent" in sys.modules:
        from gevent import monkey
        if monkey.is_module_patched("threading"):
            from gevent.threadpool import ThreadPoolExecutor
            return ThreadPoolExecutor(max_workers=1)
    return futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")


class BackgroundSha256:
    """``update(view)`` returns at once; ``wait(n)`` blocks until at most n updates are pending.

    The caller must not change a buffer it passed until ``wait`` says its update is done:
    ``update`` returns the number of updates still pending, oldest first.
    """

    def __init__(self, initial=None):
        self.hash = initial or hashlib.sha256()
        self._pool = None
        self._pending = []

    def update(self, view):
        if self._pool is None:
            self._pool = _executor()
        self._pending.append(self._pool.submit(self.hash.update, view))

    def wait(self, most=0):
        while len(self._pending) > most:
            self._pending.pop(0).result()

    def close(self):
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None


def off_the_loop(fn, *args):
    """Run ``fn(*args)`` on an OS thread when under gevent (hashing or flushing gigabytes would
    otherwise freeze every greenlet of the worker); in line everywhere else."""
    if "gevent" in sys.modules:
        from gevent import monkey
        if monkey.is_module_patched("threading"):
            import gevent
            return gevent.get_hub().threadpool.apply(fn, args)
    return fn(*args)


def sha256_file(path, chunk=4 << 20):
    """"sha256:<hex>" of a file's bytes, read in big chunks on an OS thread (see off_the_loop)."""
    def run():
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            view = memoryview(bytearray(chunk))
            while count := f.readinto(view):
                digest.update(view[:count])
        return "sha256:" + digest.hexdigest()
    return off_the_loop(run)
