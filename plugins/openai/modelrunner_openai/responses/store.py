"""Stored responses, for ``previous_response_id``, GET .../responses/{id} and its input_items.

In memory in the API worker, and also written to ``<models_path>/responses/<id>.json`` so that a
request reaching another gunicorn worker still finds it. A worker that misses its memory reads the
file; expiry (1 h TTL) is by the file's mtime.

Bounded, as anything a client fills must be: memory keeps the :data:`MEMORY_ENTRIES` most recent
records (the files are the store; memory only saves a read), and the files together at most
``responses_max_bytes`` (setting, 1 GiB), the oldest removed first. Before, every stored response
stayed in each worker's memory for an hour, so a client posting large inputs grew the API worker
without bound.

A stored response belongs to the API key that made it: the record keeps the key's owner id
(``modelrunner.caller(req).owner``, a hash, never the key). Routes use ``store.for_caller(
caller)``, a view through which another key finds nothing (404 on GET, DELETE, input_items and
``previous_response_id`` alike, so it cannot even learn that the id exists), an admin key finds
everything, and a server without keys works as it always did.
"""

import json
import os
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path

from modelrunner import private_files

TTL = 3600
MEMORY_ENTRIES = 256
MAX_BYTES = 1 << 30
SWEEP_EVERY = 64  # puts between two sweeps of the folder (also once a minute)
ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class ResponseStore:
    """Stored responses: memory first, then ``<dir>/<id>.json`` (shared by workers), 1 h TTL."""

    def __init__(self, directory=None, ttl=TTL, max_bytes=MAX_BYTES):
        self.dir = Path(directory) if directory else None
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.memory = OrderedDict()  # id -> (expires, record), least recently used first
        self.lock = threading.Lock()
        self._last_sweep = 0.0
        self._puts = 0

    def _path(self, response_id):
        return self.dir / f"{response_id}.json" if self.dir else None

    def for_caller(self, caller):
        """This store as ``caller`` (a ``modelrunner.caller(req)``) may use it."""
        return CallerStore(self, caller)

    def put(self, record):
        response_id = record["response"]["id"]
        self._remember(response_id, time.time() + self.ttl, record)
        path = self._path(response_id)
        if path is not None:
            try:
                # stored prompts and answers: 0700 folder, 0600 files
                private_files.private_dir(path.parent)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                private_files.write_private(tmp, json.dumps(record))
                os.replace(tmp, path)
            except OSError:
                pass  # memory still has it; only other workers miss out
        self._sweep()

    def get(self, response_id):
        if not response_id or not ID_RE.match(response_id):
            return None
        now = time.time()
        with self.lock:
            entry = self.memory.get(response_id)
            if entry and entry[0] > now:
                self.memory.move_to_end(response_id)
                return entry[1]
            if entry:
                del self.memory[response_id]
        path = self._path(response_id)
        if path is None:
            return None
        try:
            if path.stat().st_mtime + self.ttl < now:
                path.unlink(missing_ok=True)
                return None
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        self._remember(response_id, path.stat().st_mtime + self.ttl, record)
        return record

    def _remember(self, response_id, expires, record):
        with self.lock:
            self.memory[response_id] = (expires, record)
            self.memory.move_to_end(response_id)
            while len(self.memory) > MEMORY_ENTRIES:
                self.memory.popitem(last=False)

    def delete(self, response_id):
        if not response_id or not ID_RE.match(response_id):
            return False
        found = False
        with self.lock:
            found = self.memory.pop(response_id, None) is not None
        path = self._path(response_id)
        if path is not None:
            try:
                path.unlink()
                found = True
            except OSError:
                pass
        return found

    def _sweep(self):
        """Drop expired entries, and the oldest files past ``max_bytes``: once a minute, and
        every :data:`SWEEP_EVERY` puts (a client storing fast is bounded between two minutes)."""
        now = time.time()
        self._puts += 1
        if now - self._last_sweep < 60 and self._puts < SWEEP_EVERY:
            return
        self._last_sweep, self._puts = now, 0
        with self.lock:
            for key in [k for k, (expires, _) in self.memory.items() if expires <= now]:
                del self.memory[key]
        if not (self.dir and self.dir.is_dir()):
            return
        files = []
        for path in self.dir.glob("*.json"):
            try:
                st = path.stat()
                if st.st_mtime + self.ttl < now:
                    path.unlink()
                else:
                    files.append((st.st_mtime, st.st_size, path))
            except OSError:
                pass
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files, key=lambda f: f[0]):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            with self.lock:
                self.memory.pop(path.stem, None)
            total -= size


class CallerStore:
    """A :class:`ResponseStore` as one caller sees it: what it puts is stored with its owner
    id; what another key stored is not there for it (``Caller.may_see``)."""

    def __init__(self, store, caller):
        self.store, self.caller = store, caller

    def put(self, record):
        self.store.put({**record, "owner": self.caller.owner})

    def get(self, response_id):
        record = self.store.get(response_id)
        if record is None or not self.caller.may_see(record.get("owner")):
            return None
        return record

    def delete(self, response_id):
        if self.get(response_id) is None:
            return False
        return self.store.delete(response_id)
