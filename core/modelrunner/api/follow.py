"""One poller per worker for every follower of a stream (``/logs?follow``, the inspector's
``/engines/requests?follow``).

Each follower used to poll on its own every 0.3 s: with 10,000 idle streams that is 33,000
stats, globs and selects a second in one worker, and the other requests wait behind them. A
Ticker polls once per interval for all of them and wakes its followers only when something
changed; a follower also wakes every ``idle`` seconds to see whether its client went away (and
to ping). Under gevent the thread is a greenlet and the Condition a gevent one.
"""

import os
import threading
import time


class Ticker:
    """``poll()`` every ``interval`` seconds while someone follows; True from it means news:
    the version goes up and the waiters wake."""

    def __init__(self, poll, interval):
        self.poll = poll
        self.interval = interval
        self.version = 0
        self.changed = threading.Condition()
        self.followers = 0
        self._pid = None

    def _ensure_running(self):
        if self._pid != os.getpid():  # first follower, or a forked worker: no thread here yet
            self._pid = os.getpid()
            threading.Thread(target=self._run, daemon=True, name="follow-ticker").start()

    def _run(self):
        while True:
            time.sleep(self.interval)
            if not self.followers:
                continue
            try:
                news = self.poll()
            except Exception:  # a transient file error: try again next tick
                news = False
            if news:
                with self.changed:
                    self.version += 1
                    self.changed.notify_all()

    def join(self):
        """Become a follower; returns the version seen now."""
        with self.changed:
            self.followers += 1
            self._ensure_running()
            return self.version

    def leave(self):
        with self.changed:
            self.followers -= 1

    def wait(self, seen, timeout):
        """Until the version differs from ``seen`` or ``timeout`` passes; the version now."""
        with self.changed:
            if self.version == seen:
                self.changed.wait(timeout)
            return self.version
