"""Cross-process file locks that also work between greenlets.

In a gevent worker every greenlet runs on one OS thread. filelock (3.2x and 4.x) takes a second
lock of the same file from the same thread, waiting forever, for a deadlock and raises
RuntimeError; with a finite timeout it polls instead (``time.sleep``, which gevent turns into a
switch), so the holder can finish. So every lock here has a timeout, a long one by default.
"""

from filelock import FileLock

DAY = 24 * 3600.0


def file_lock(path, timeout=DAY):
    """A ``FileLock`` on ``path`` that waits at most ``timeout`` seconds (filelock.Timeout).
    The lock file is 0600 whatever the umask (filelock would make it 0644 or the umask's mode):
    lock files live in the store and in per-user folders, which are private."""
    return FileLock(str(path), timeout=timeout, mode=0o600)
