"""Log files under <store>/logs: the server's own log, the scheduler's and one per runner.

    logs/server.log                              gunicorn master + workers (modelrunner, gunicorn.error)
    logs/scheduler.log                           the scheduler daemon
    logs/runner-<engine>-<id>-<mode>.log         each runner's stdout and stderr

Every file is rotated at ``log_max_bytes`` (default 10 MiB) keeping ``log_backups`` old copies
(``.1``, ``.2``...). The server's handler rotates safely across gunicorn's processes (under a file
lock, reopening when another process rotated); runner and scheduler logs are checked when opened.

``merged_lines`` and ``follow`` read them back for GET /logs: lines prefixed with their source and
ordered by the ``[timestamp]`` they start with (a line without one inherits the previous line's).

No API key is written (every handler here has ``redact.RedactFilter``) nor read back: what GET
/logs sends is redacted again (``redact_bytes``), for logs an older version wrote and for what a
process printed around the logging system (serve.log is gunicorn's stdout and stderr).
"""

import fcntl
import logging
import logging.handlers
import os
import re
import time
from datetime import datetime
from pathlib import Path

from .private import private_dir, private_open
from .redact import RedactFilter, redact_bytes

MAX_BYTES = 10 << 20
BACKUPS = 3
FORMAT = "[%(asctime)s.%(msecs)03d] %(process)d %(levelname)s %(name)s: %(message)s"
DATEFMT = "%Y-%m-%dT%H:%M:%S"


def log_dir(models_path):
    """<models_path>/logs, private to the server's user (0700; its files 0600)."""
    return private_dir(Path(models_path) / "logs")


def rotate_if_large(path, max_bytes=MAX_BYTES, backups=BACKUPS):
    """Before opening a log for appending: move it to .1 (and .1 to .2...) when it is too big."""
    path = str(path)
    try:
        if os.path.getsize(path) < max_bytes:
            return
    except OSError:
        return
    for i in range(backups - 1, 0, -1):
        if os.path.exists(f"{path}.{i}"):
            os.replace(f"{path}.{i}", f"{path}.{i + 1}")
    os.replace(path, f"{path}.1")


class SharedRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """RotatingFileHandler for a file several processes append to (gunicorn master and workers):
    rotation happens under an flock, and a process whose file was rotated away reopens it."""

    def __init__(self, filename, maxBytes=MAX_BYTES, backupCount=BACKUPS):
        super().__init__(filename, mode="a", maxBytes=maxBytes, backupCount=backupCount,
                         encoding="utf-8", delay=True)
        self._lock_path = self.baseFilename + ".lock"

    def _open(self):
        return private_open(self.baseFilename, "a", encoding=self.encoding)

    def _stale(self):
        if self.stream is None:
            return False
        try:
            return os.stat(self.baseFilename).st_ino != os.fstat(self.stream.fileno()).st_ino
        except OSError:
            return True

    def shouldRollover(self, record):
        if self._stale():
            self.stream.close()
            self.stream = None
        if self.stream is None:
            self.stream = self._open()
        try:
            return self.stream.tell() >= self.maxBytes
        except (OSError, ValueError):
            return False

    def doRollover(self):
        with private_open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if os.path.getsize(self.baseFilename) >= self.maxBytes:
                    if self.stream:
                        self.stream.close()
                        self.stream = None
                    rotate_if_large(self.baseFilename, self.maxBytes, self.backupCount)
            except OSError:
                pass
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        if self.stream is not None:
            self.stream.close()
        self.stream = self._open()


def setup_server_logging(models_path, level=logging.INFO):
    """Send the server's logs (modelrunner.*, gunicorn's error and access logs) to
    logs/server.log as well.

    Called once in the gunicorn master (on_starting); workers inherit the handler when forked.
    """
    path = log_dir(models_path) / "server.log"
    for name in ("modelrunner", "gunicorn.error", "gunicorn.access"):
        logger = logging.getLogger(name)
        if any(isinstance(h, SharedRotatingFileHandler) and h.baseFilename == str(path)
               for h in logger.handlers):
            continue
        handler = SharedRotatingFileHandler(str(path))
        handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
        handler.addFilter(RedactFilter())
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > level:
            logger.setLevel(level)
    return path


# -- reading back -------------------------------------------------------------------------------

_STAMP = re.compile(rb"^\[?(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:[.,](\d+))?")


_RELATIVE = re.compile(rb"^(\d+)\.(\d\d)\.(\d\d\d)\.(\d\d\d) ")


def line_time(line):
    """Seconds since the epoch of a line's leading timestamp, or None."""
    m = _STAMP.match(line)
    if not m:
        return None
    try:
        t = datetime.strptime(f"{m.group(1).decode()} {m.group(2).decode()}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    frac = float("0." + m.group(3).decode()) if m.group(3) else 0.0
    return time.mktime(t.timetuple()) + frac


def source_name(path):
    name = Path(path).name
    return name[:-4] if name.endswith(".log") else name


def log_files(models_path, engines=True):
    """The current log files (not rotated copies), server and scheduler first."""
    directory = Path(models_path) / "logs"
    if not directory.is_dir():
        return []
    files = sorted(p for p in directory.glob("*.log") if p.is_file())
    if not engines:
        files = [p for p in files if not p.name.startswith("runner-")]
    order = {"server.log": 0, "scheduler.log": 1}
    return sorted(files, key=lambda p: (order.get(p.name, 2), p.name))


def _read_lines(path, max_bytes, until=None):
    """(timestamp, source, line) for the last ``max_bytes`` of a file, and the offset read to;
    with ``until`` ({path: (inode, offset)}), only up to that offset (nothing for another file)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if until is not None:
                inode, pos = until.get(str(path), (None, 0))
                if inode != os.fstat(f.fileno()).st_ino:
                    return [], 0
                size = min(size, pos)
            start = max(0, size - max_bytes)
            f.seek(start)
            data = f.read(size - start)
    except OSError:
        return [], 0
    end = size
    # only complete lines: a partial last line is read on the next poll
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        end -= len(data) - cut
        data = data[:cut]
    if start:  # the first line was cut by the seek
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    source = source_name(path)
    lines, last, base = [], 0.0, 0.0
    for raw in data.splitlines():
        t = line_time(raw)
        if t is not None:
            last = base = t
        else:
            # llama.cpp prints the time since its start ("0.01.150.444 I ..."): add it to the
            # runner's "[timestamp] loading ..." line
            m = _RELATIVE.match(raw)
            if m and base:
                minutes, seconds, ms, us = (int(g) for g in m.groups())
                last = max(last, base + minutes * 60 + seconds + ms / 1e3 + us / 1e6)
        lines.append((last, source, raw))
    return lines, end


def format_line(source, raw):
    return f"[{source}] ".encode() + raw + b"\n"


def merged(models_path, engines=True, max_bytes=4 << 20, until=None):
    """All current log lines, time-ordered; returns (bytes, {path: offset read to}). With
    ``until`` (offsets from an earlier call or ``poll``), only the lines before them."""
    entries, offsets = [], {}
    for path in log_files(models_path, engines):
        lines, end = _read_lines(path, max_bytes, until)
        entries.extend(lines)
        offsets[str(path)] = (_inode(path), end)
    entries.sort(key=lambda e: e[0])  # stable: a file's own order is kept for equal stamps
    return redact_bytes(b"".join(format_line(source, raw) for _, source, raw in entries)), offsets


def _inode(path):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def poll(models_path, offsets, engines=True, max_bytes=1 << 20):
    """New complete lines since ``offsets`` (updated in place); a rotated or new file is read
    from its start. At most ``max_bytes`` per file per call."""
    out = []
    for path in log_files(models_path, engines):
        key = str(path)
        inode = _inode(path)
        old_inode, pos = offsets.get(key, (None, 0))
        try:
            size = os.path.getsize(path)
        except OSError:
            continue
        if inode != old_inode or size < pos:
            pos = 0
        if size == pos:
            offsets[key] = (inode, pos)
            continue
        try:
            with open(path, "rb") as f:
                f.seek(pos)
                data = f.read(min(size - pos, max_bytes))
        except OSError:
            continue
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) < max_bytes:
            offsets[key] = (inode, pos)
            continue
        data = data[:cut] if cut else data
        offsets[key] = (inode, pos + len(data))
        source = source_name(path)
        out.extend(format_line(source, raw) for raw in data.splitlines())
    return redact_bytes(b"".join(out))
