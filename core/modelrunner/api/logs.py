"""GET /logs[?follow=true&no-engines=true&tail=N]: the server's, the scheduler's and every runner's
log files under <store>/logs, merged (text/plain, each line prefixed with ``[source]``, ordered by
the timestamps the lines carry), as DMR merges its service and engine logs.

With follow=true the answer goes on with new lines as they are written until the client goes
away. One LogHub per worker polls the files every 0.3 s for all its followers and keeps the last
chunks it read; a follower holds only its position (an idle follow costs a few KB, not a copy of
the logs it was sent), wakes when there is news, and checks its client every few seconds.
"""

import collections
import threading
import time

from .. import logfiles
from .follow import Ticker
from ..client_socket import client_gone
from .inspector import MAX_FOLLOW_SECONDS

POLL_SECONDS = 0.3
IDLE_SECONDS = 5.0     # how often an idle follower checks that its client is still there
KEEP_CHUNKS = 256      # a follower further behind than this many polls misses lines
PIECE = 16 << 10       # the logs so far go out in pieces of this size


class LogHub:
    """The shared tail of one store's logs (with or without the runners')."""

    def __init__(self, models_path, engines):
        self.models_path = models_path
        self.engines = engines
        self.lock = threading.Lock()
        self.offsets = None
        self.seq = 0
        self.chunks = collections.deque(maxlen=KEEP_CHUNKS)
        self._snapshot = None
        self.ticker = Ticker(self._poll, POLL_SECONDS)

    def _poll_locked(self):
        if self.offsets is None:
            _, self.offsets = logfiles.merged(self.models_path, self.engines)
            return False
        new = logfiles.poll(self.models_path, self.offsets, self.engines)
        if new:
            self.seq += 1
            self.chunks.append((self.seq, new))
        return bool(new)

    def _poll(self):
        with self.lock:
            return self._poll_locked()

    def snapshot(self):
        """(the merged logs so far, the position after them)."""
        with self.lock:
            if self._poll_locked():
                with self.ticker.changed:
                    self.ticker.version += 1
                    self.ticker.changed.notify_all()
            if self._snapshot is None or self._snapshot[1] != self.seq:
                # one copy for every follower that starts before the next news: opening a
                # follow costs no merge and no memory of its own
                text, _ = logfiles.merged(self.models_path, self.engines, until=self.offsets)
                self._snapshot = (text, self.seq)
            return self._snapshot

    def since(self, seq):
        """(the chunks after position ``seq``, the position after them)."""
        with self.lock:
            return [chunk for s, chunk in self.chunks if s > seq], self.seq


_hubs = {}
_hubs_lock = threading.Lock()


def hub_for(models_path, engines):
    with _hubs_lock:
        key = (str(models_path), engines)
        if key not in _hubs:
            _hubs[key] = LogHub(models_path, engines)
        return _hubs[key]


def _true(req, name):
    return (req.get_param(name) or "").lower() in ("1", "true", "yes")


class LogsResource:
    def __init__(self, runtime):
        self.runtime = runtime

    def on_get(self, req, resp):
        models_path = self.runtime.settings.models_path
        engines = not _true(req, "no-engines")
        following = _true(req, "follow")
        if following:
            hub = hub_for(models_path, engines)
            text, seq = hub.snapshot()
        else:
            text, _ = logfiles.merged(models_path, engines)
        tail = req.get_param_as_int("tail", min_value=0)
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = b"".join(lines[-tail:]) if tail else b""
        resp.content_type = "text/plain; charset=utf-8"
        if not following:
            resp.data = text
            return
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("X-Accel-Buffering", "no")
        resp.stream = _follow(req, hub, text, seq)


def _follow(req, hub, text, seq):
    # In pieces: gunicorn copies each chunk to frame it (chunked encoding), and the snapshot is
    # shared by every follower that opened since the last news. Even empty: the first chunk
    # sends the headers.
    for start in range(0, max(len(text), 1), PIECE):
        yield text[start:start + PIECE]
    del text  # sent: an idle follower keeps no copy
    ticker = hub.ticker
    version = ticker.join()
    started = time.monotonic()
    try:
        while time.monotonic() - started < MAX_FOLLOW_SECONDS:
            new, seq = hub.since(seq)
            if new:
                yield b"".join(new)
            version = ticker.wait(version, IDLE_SECONDS)
            if client_gone(req):
                return
    finally:
        ticker.leave()
