"""Small helpers: request bodies, names as Ollama shows them, times, durations."""

import datetime as dt
import time

from modelrunner import read_json_body, references, units

from .errors import OllamaError


read_json = read_json_body  # errors are shaped by this plugin's dialect (OllamaDialect)


def model_name(body, *keys):
    """The model a request names: ``model``, or the older ``name``."""
    for key in keys or ("model", "name"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise OllamaError(400, "model is required")


def ollama_name(tag):
    """A store tag as Ollama lists it: ``docker.io/ai/smollm2:latest`` -> ``ai/smollm2:latest``."""
    prefix = references.DEFAULT_REGISTRY + "/"
    return tag[len(prefix):] if tag.startswith(prefix) else tag


def rfc3339(seconds=None):
    """Local time with offset and nanosecond-free fractions, as Go's time.Time marshals."""
    when = dt.datetime.fromtimestamp(time.time() if seconds is None else seconds).astimezone()
    return when.isoformat(timespec="microseconds")


def now_iso():
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def keep_alive_value(body):
    """The request's keep_alive, validated (400 on junk); returns (raw value, seconds or None)."""
    value = body.get("keep_alive")
    if value is None or value == "":
        return None, None
    try:
        seconds = units.parse_keep_alive(value)
    except ValueError as e:
        raise OllamaError(400, str(e)) from None
    return value, seconds


def ns(seconds):
    return int(round((seconds or 0) * 1e9))
