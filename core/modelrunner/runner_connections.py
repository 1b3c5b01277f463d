"""Kept-alive connections from an API worker to its runners.

A new connection per request cost a connect and, in llama-server, a new connection for its HTTP
thread pool to accept: a fraction of a millisecond of every request, more on a busy machine.
Runners speak HTTP/1.1 with keep-alive, so a connection whose answer was read to its end goes
back here and the next request to the same address reuses it.

A kept connection may have been closed by the runner meanwhile (llama-server drops idle ones
after 5 s; a runner that was unloaded or died drops all): one idle longer than ``MAX_IDLE``, or
whose socket has something to read (end of file, as nothing else is due on an idle HTTP/1.1
connection), is closed instead of reused. One that still fails when reused is the caller's to
retry on a fresh connection (``take`` says whether it reused).

A kept connection reaches the process it was accepted by, whatever became of its socket's
name: a runner on its way out (its socket renamed while it saves its prompt caches, see the
scheduler's ``_hide_socket``) would still get the requests the gateway sends early. So a
connection to a Unix socket is reused only while the path still names the socket it was made
to (the same inode). Runners come and go at new addresses: connections kept for an address no
request names again are closed once idle longer than ``MAX_IDLE`` (they held a descriptor each,
for the worker's life: a keep_alive 0 model leaked one per request).
"""

import os
import select
import time

from .runners import runner_connection, socket_path


class RunnerConnections:
    KEEP = 8          # idle connections kept per runner address
    MAX_IDLE = 2.0    # seconds; llama-server closes a keep-alive connection idle for 5

    def __init__(self):
        self._idle = {}  # address -> [(connection, since, inode)], the most recent last
        self._pid = os.getpid()
        self._swept = time.monotonic()

    def take(self, address):
        """``(connection, reused)``: a kept connection to ``address`` that looks alive, else a
        new one (not yet connected: it connects on its first request)."""
        if self._pid != os.getpid():  # forked: the parent's sockets are not ours
            self._idle, self._pid = {}, os.getpid()
        idle = self._idle.get(address)
        now = time.monotonic()
        while idle:
            conn, since, inode = idle.pop()
            if now - since <= self.MAX_IDLE and _quiet(conn) and _inode(address) == inode:
                return conn, True
            conn.close()
        return runner_connection(address), False

    def give_back(self, address, conn, resp):
        """Keep ``conn`` for the next request to ``address`` if its answer ``resp`` was read to
        its end and neither side said it closes; else close it."""
        if resp is None or not resp.isclosed() or resp.will_close or conn.sock is None:
            conn.close()
            return
        now = time.monotonic()
        if now - self._swept > self.MAX_IDLE:
            self._sweep(now)
        inode = _inode(address)
        idle = self._idle.setdefault(address, [])
        if len(idle) >= self.KEEP or inode is False:
            conn.close()
            return
        idle.append((conn, now, inode))

    def _sweep(self, now):
        """Close the connections idle too long to be reused, of every address."""
        self._swept = now
        for address, idle in list(self._idle.items()):
            kept = [entry for entry in idle if now - entry[1] <= self.MAX_IDLE]
            for conn, _, _ in idle:
                if all(conn is not entry[0] for entry in kept):
                    conn.close()
            if kept:
                self._idle[address] = kept
            else:
                del self._idle[address]

    def forget(self, address):
        """Close the kept connections to ``address`` (its runner is gone)."""
        for conn, _, _ in self._idle.pop(address, []):
            conn.close()


def _quiet(conn):
    """Whether an idle connection's socket has nothing to read: no EOF, no stray bytes."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _inode(address):
    """The inode of the Unix socket ``address`` names now (None for a network address; False
    when nothing is there: its runner has gone, or hid its socket on its way out)."""
    path = socket_path(address)
    if path is None:
        return None
    try:
        return os.stat(path).st_ino
    except OSError:
        return False
