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
