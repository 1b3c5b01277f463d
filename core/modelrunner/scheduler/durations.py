"""Keep-alive durations as DMR and Ollama write them: "5m", "1h30m", "30s", 300, "0", "-1"."""

import math
import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def parse_keep_alive(value):
    """Seconds to stay loaded when idle: 0 = unload after the request, -1 = never (None = default).

    Numbers are seconds (Ollama); negative means forever, and so does anything from
    :data:`FOREVER` on ("999999999h", 1e308, "inf"): kept as such, a date that far away broke
    every listing that shows when a model expires. Raises ValueError on junk, NaN included (it
    compares false with everything, so a runner kept "NaN" long never expired, and /engines/ps
    answered it as invalid JSON).
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"invalid keep_alive {value!r}")
    if isinstance(value, (int, float)):
        return _seconds(value, value)
    text = str(value).strip().lower()
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        return _seconds(number, value)
    if text.startswith("-"):
        return -1
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid keep_alive {value!r}: use e.g. 5m, 30s, 1h, 0 or -1")
    return _seconds(sum(float(n) * _UNITS[u] for n, u in parts), value)


# 100 years: Ollama's own "far date" for a model kept loaded; anything longer is forever
FOREVER = 100 * 365 * 86400


def _seconds(number, value):
    if math.isnan(number):
        raise ValueError(f"invalid keep_alive {value!r}: use e.g. 5m, 30s, 1h, 0 or -1")
    return -1 if number < 0 or number >= FOREVER else float(number)


def format_keep_alive(seconds):
    if seconds is None:
        return None
    if seconds < 0:
        return "-1"
    if seconds and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def parse_bytes(value):
    """"8GiB", "512MB", 1234 -> bytes."""
    if isinstance(value, (int, float)):
        return int(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*", str(value).lower())
    if not match:
        raise ValueError(f"invalid size {value!r}")
    number, unit = match.groups()
    scale = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 1024, "m": 1e6, "mb": 1e6, "mib": 1024**2,
             "g": 1e9, "gb": 1e9, "gib": 1024**3, "t": 1e12, "tb": 1e12, "tib": 1024**4}[unit]
    return int(float(number) * scale)
