"""The request inspector: the last N request/response pairs per model, as DMR's recorder keeps them.

A default plugin: ``on_request`` turns each finished ``RequestRecord`` into DMR's record shape

    {id: "<model id>_<unix nanoseconds>", model, method, url, request, response, error, timestamp,
     status_code, user_agent, origin}

(``request`` and ``response`` are JSON text, as DMR has them; streamed responses are reassembled
into one ``chat.completion`` with content, reasoning_content, tool_calls, usage and finish_reason;
base64 media is cut to 100 characters) plus modelrunner's extras: usage, finish_reason, streamed,
timings, and request_bytes / response_bytes (the bodies' whole sizes). No request header is
recorded except User-Agent and Origin, and API-key fields in a body are dropped.

Each of ``request`` and ``response`` is at most ``record_body_bytes`` characters (setting,
default 512 KiB; the record keeps no more of an answer, see ``modelrunner.telemetry``): a longer one
is cut there (and is then no longer whole JSON), its size still in request_bytes/response_bytes.
Media is shortened in the JSON text with regular expressions, not by walking parsed objects, so
recording costs a few milliseconds per MiB whatever the answer holds.

gunicorn runs several worker processes, and GET /engines/requests must show what all of them
recorded, so records live in shared files: <store>/requests/<model hex>/<ns>-<pid>.json, one
file per record, the oldest beyond N removed by whoever writes. Adding one costs a write and a
listing, whatever the records hold (a JSON-lines file re-read and rewritten under a lock on every
record cost ~0.5 ms per request, and reading 10 MiB when answers were large).

Settings: ``record_requests`` (default true), ``request_records`` (default 10),
``record_body_bytes`` (default 524288).
"""

import contextlib
import json
import os
import re
import time
from pathlib import Path

from . import telemetry
from .hookspecs import hookimpl
from .private import private_dir, write_private
from .settings import truthy
from .redact import is_secret_name  # one list of secret names: logs use it too
from .streams import reassemble

MEDIA_KEEP = 100
_BASE64 = re.compile(r"[A-Za-z0-9+/=_-]+")


# -- shared storage ------------------------------------------------------------------------------


class RequestLog:
    """The records of every worker: one folder per model, a file per record, at most ``limit``."""

    def __init__(self, models_path, limit=10, enabled=True):
        self.dir = Path(models_path) / "requests"
        self.limit = max(1, int(limit))
        self.enabled = enabled

    @classmethod
    def from_settings(cls, settings):
        return cls(settings.models_path, settings.get("request_records", 10),
                   truthy(settings.get("record_requests", True)))

    def _folder(self, model_id):
        return self.dir / model_id.split(":")[-1]

    def add(self, record):
        # prompts and answers: the server's user only (folders 0700, files 0600)
        folder = private_dir(self._folder(record["model_id"]))
        name = f"{time.time_ns():020d}-{os.getpid()}"
        tmp = folder / f".{name}.tmp"   # a reader never sees half a record
        write_private(tmp, json.dumps(record, separators=(",", ":")))
        os.replace(tmp, folder / f"{name}.json")
        for old in _records_in(folder)[:-self.limit]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()

    def folders(self):
        if not self.dir.is_dir():
            return []
        for legacy in self.dir.glob("*.jsonl*"):  # an older version's files: prompts, too
            with contextlib.suppress(OSError):
                legacy.unlink()
        return sorted(p for p in self.dir.iterdir() if p.is_dir() and not p.is_symlink())

    def read(self, folder):
        records = []
        for path in _records_in(folder)[-self.limit:]:
            try:
                records.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):  # removed meanwhile, or not ours
                continue
        return records

    def all(self, model_id=None):
        """{model id: [records, oldest first]}."""
        result = {}
        for folder in self.folders():
            records = self.read(folder)
            if records and (model_id is None or records[0].get("model_id") == model_id):
                result[records[0]["model_id"]] = records
        return result

    def signature(self):
        """What changes when any file changes: for the live feed's cheap polling."""
        return {str(folder): [p.name for p in _records_in(folder)[-1:]]   # the newest record
                for folder in self.folders()}


def _records_in(folder):
    """A model's record files, oldest first (their names start with the time in ns)."""
    try:
        return sorted(p for p in Path(folder).iterdir()
                      if p.suffix == ".json" and not p.name.startswith("."))
    except OSError:
        return []


_log = None


def configure(settings):
    """Called when the app is made (api/plugin.py); on_request uses this process's RequestLog."""
    global _log
    _log = RequestLog.from_settings(settings)
    telemetry.configure(settings)  # record_body_bytes: how much of each answer a record keeps
    return _log


def request_log():
    global _log
    if _log is None:
        from .settings import load_settings
        _log = RequestLog.from_settings(load_settings())
    return _log


# -- the hook ------------------------------------------------------------------------------------


@hookimpl
def on_request(event, record):
    if event != "finished":
        return
    log = request_log()
    if not log.enabled:
        return
    log.add(to_record(record))


def to_record(record):
    """DMR's record for a finished ``modelrunner.telemetry.RequestRecord``."""
    req = record.request
    headers = {}
    method, url = "POST", record.path
    if req is not None:
        method = getattr(req, "method", "POST") or "POST"
        url = getattr(req, "relative_uri", None) or getattr(req, "path", record.path)
        for name in ("User-Agent", "Origin"):
            try:
                headers[name] = req.get_header(name) or ""
            except Exception:
                headers[name] = ""
    now_ns = time.time_ns()
    return {
        "id": f"{record.model_id.split(':')[-1]}_{now_ns}",
        "model": record.model,
        "model_id": record.model_id,
        "method": method,
        "url": _strip_query_secrets(url),
        "request": _request_text(record.body, record.keep),
        "response": _response_text(record, record.keep),
        "error": record.error or "",
        "timestamp": int(record.timestamp),
        "status_code": record.status or 0,
        "user_agent": headers.get("User-Agent", ""),
        "origin": headers.get("Origin", ""),
        # modelrunner's extras
        "engine": record.engine,
        "mode": record.mode,
        "dialect": record.dialect,
        "streamed": record.streamed,
        "request_bytes": len(record.body or b""),
        "response_bytes": record.size,
        "usage": record.usage or {},
        "finish_reason": record.finish_reason,
        "timings": {"ttft": record.ttft, "duration": record.duration,
                    "load_seconds": record.load_seconds},
    }


def _strip_query_secrets(url):
    if "?" not in url:
        return url
    path, _, query = url.partition("?")
    kept = [p for p in query.split("&") if not is_secret_name(p.split("=", 1)[0])]
    return path + ("?" + "&".join(kept) if kept else "")


def _request_text(body, limit):
    """The request body as JSON text without API-key fields, media shortened, cut at ``limit``.
    (The body was parsed once already by its dialect, with its size and depth capped.)"""
    try:
        data = json.loads(body or b"")
    except (ValueError, RecursionError):
        return _cut(bytes(body or b"")[:limit].decode("utf-8", "replace"), limit)
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if not is_secret_name(k)}
    return _cut(shorten_media_text(json.dumps(data)), limit)


def _response_text(record, limit):
    """The answer: a stream reassembled from its kept start (with the usage and finish reason
    read from its end when it was cut), else the kept bytes as they came; media shortened."""
    text = None
    if record.streamed:
        data = reassemble(list(record.events()))
        if data is not None:
            if record.truncated:
                if record.usage:
                    data["usage"] = record.usage
                for choice in data.get("choices") or []:
                    choice["finish_reason"] = choice.get("finish_reason") or record.finish_reason
            text = json.dumps(data)
    if text is None:
        text = bytes(record.raw).decode("utf-8", "replace")
    return _cut(shorten_media_text(text), limit)


def _cut(text, limit):
    return text if len(text) <= limit else text[:limit]


# -- base64 media --------------------------------------------------------------------------------

# The same rules in JSON text (json.dumps of a body, or an answer as a runner wrote it, perhaps
# cut): found with regular expressions, after a substring check that most texts fail at once.
_B64 = rb"[A-Za-z0-9+/=_-]"
_STRING = rb'(?P<str>[^"\\]*(?:\\.[^"\\]*)*)'  # a JSON string's characters, escapes included
_MEDIA_STRING = re.compile(
    rb'"(?:(?:b64_json|image|data|audio)":\s*"(?=' + _B64 + rb'{100})'  # a media key's value
    rb'|(?=data:[^"\\]{0,190}?;base64,))' + _STRING)                   # a base64 data: URL
_IMAGES = re.compile(rb'"images":\s*\[[^\]]*')                         # Ollama's list of images
_ANY_STRING = re.compile(rb'"' + _STRING)
_MARKERS = (b";base64,", b'"b64_json":', b'"image":', b'"images":', b'"data":"', b'"data": "',
            b'"audio":')


def _shorten_string(match):
    whole, string = match.group(0), match.group("str")
    head = string[:MEDIA_KEEP]
    if len(string) <= MEDIA_KEEP or b"\\" in head:  # never cut an escape sequence in two
        return whole
    return whole[: len(whole) - len(string)] + head + b"..."


def _shorten_images(match):
    return _ANY_STRING.sub(_shorten_string, match.group(0))


def shorten_media_text(text):
    """``text`` (JSON text, whole or cut) with base64 media cut to 100 characters and "...", as
    :func:`shorten_media` does to parsed JSON; linear in the text's length."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if not any(marker in raw for marker in _MARKERS):
        return text
    raw = _MEDIA_STRING.sub(_shorten_string, raw)
    if b'"images":' in raw:
        raw = _IMAGES.sub(_shorten_images, raw)
    return raw.decode("utf-8", "surrogatepass") if isinstance(text, str) else raw


def _short(text):
    return text[:MEDIA_KEEP] + "..." if len(text) > MEDIA_KEEP else text


def shorten_media(value, key=None):
    """data: URLs, Ollama ``images``, ``b64_json`` and audio ``data`` cut to 100 characters."""
    if isinstance(value, dict):
        return {k: shorten_media(v, k) for k, v in value.items()}
    if isinstance(value, list):
        if key == "images":
            return [_short(v) if isinstance(v, str) else shorten_media(v) for v in value]
        return [shorten_media(v) for v in value]
    if isinstance(value, str):
        if value.startswith("data:") and ";base64," in value[:200]:
            return _short(value)
        if key in ("b64_json", "image", "images", "data", "audio") and len(value) > MEDIA_KEEP \
                and _BASE64.fullmatch(value[:MEDIA_KEEP]):
            return _short(value)
    return value

