"""Secrets never reach a log: the one list of names a secret travels under, and the redaction
that every log line goes through.

An API key reaches the server in ``Authorization`` (``Bearer <key>``, or Basic with the key as
the user name, as ``curl -u KEY:`` sends it), in ``x-api-key``, or in a query parameter
(``?api_key=``: refused by the trust layer, but the request is logged all the same). So:

* the access log writes no user name and no credential header (``access_log.py``);
* every line gunicorn or modelrunner logs (access and error log, serve.log, server.log) passes
  ``RedactFilter``: a query or ``name=value`` parameter with a secret's name keeps its name and
  loses its value, and so does a ``Bearer``/``Basic`` credential or an ``Authorization: ...``;
* GET /logs redacts what it reads back as well (``logfiles``), so a log an older version wrote
  or a line printed around the logging system gives nothing away either.

The recorded requests (``inspector``) drop the same names from bodies and URLs.
"""

import logging
import re
from urllib.parse import unquote_plus

# names (of query parameters, JSON fields, headers) whose value is a secret
SECRET_KEYS = frozenset({
    "api_key", "apikey", "api-key", "x-api-key", "key", "token", "access_token", "access-token",
    "auth", "auth_token", "authorization", "proxy-authorization", "bearer-token", "id_token",
    "refresh_token", "session_token", "secret", "client_secret", "password", "passwd",
    "signature", "sig", "x-amz-signature", "x-amz-credential", "x-amz-security-token", "cookie",
})
# a name ending so is a secret's too (hf_token, my_api_key, registry_password...)
SECRET_SUFFIXES = ("_token", "-token", "api_key", "api-key", "apikey", "secret_key", "private_key",
                   "access_key", "_secret", "-secret", "_password", "-password", "_signature",
                   "-signature", "_credential", "-credential")
# request and response headers the access log never writes, whatever its format
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key",
                            "cookie", "set-cookie"})
REDACTED = "[redacted]"


def is_secret_name(name):
    """Whether a parameter, field or header called ``name`` holds a secret (percent-encoded
    names are decoded: ``api%5Fkey`` is ``api_key``)."""
    name = unquote_plus(name).strip().lower()
    # ``api_key[]=`` (PHP's and Rails' arrays) and a NUL or other control in the name
    name = _CONTROLS.sub("", _BRACKETS.sub("", name))
    return name in SECRET_KEYS or name.endswith(SECRET_SUFFIXES)


_BRACKETS = re.compile(r"\[[^\]]*\]")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


# Found in a lower-cased copy (bytes: the same length), case-sensitive patterns that start with a
# literal are fast: a few milliseconds per MiB of log. A name=value pair is looked at only when
# its name holds a secret's word or a percent-escape; the name is then read back to its start.
_CANDIDATE = re.compile(rb"(?:key|token|auth|secret|passw|sig|cookie|credential|%[0-9a-f]{2})"
                        rb"[\w.~%+-]{0,64}+(?:\[[^\]=&\s]{0,32}\])*=")
_NAME_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_.~%+-")
_BEFORE_NAME = frozenset(b"?&;\t\n\r \"'(,[{")
_VALUE_END = re.compile(rb"[?&;\s\"'#,)\]}]")
# Authorization: Basic xyz / "x-api-key": "sk-..." / {'authorization': 'Bearer sk-...'}
_CREDENTIAL = re.compile(rb"((?:proxy-)?authorization|x-api-key|api-key)"
                         rb"(\\?[\"']?\s*[:=]\s*\\?[\"']?)"
                         rb"(?:(?:bearer|basic|token)\s+)?([^\s\"',;}\\]+)")
_SCHEME = re.compile(rb"\bbearer\s+([a-z0-9._~+/=-]{4,})")


def _secret_spans(data):
    """(start, end) of every secret value in ``data`` (bytes)."""
    low = data.lower()
    spans = []
    for match in _CANDIDATE.finditer(low):
        equals = match.end() - 1
        start = match.start()
        while start and low[start - 1] in _NAME_BYTES:
            start -= 1
        if start and low[start - 1] not in _BEFORE_NAME:
            continue
        if not is_secret_name(data[start:equals].decode("latin-1")):
            continue
        end = _VALUE_END.search(data, equals + 1)
        spans.append((equals + 1, end.start() if end else len(data)))
    if b"authorization" in low or b"api-key" in low:
        spans += [match.span(3) for match in _CREDENTIAL.finditer(low)]
    if b"bearer" in low:
        spans += [match.span(1) for match in _SCHEME.finditer(low)]
    return spans


def redact_bytes(data):
    """``data`` (log bytes, any encoding) with every secret value replaced by ``[redacted]``."""
    if not data:
        return data
    done = REDACTED.encode()
    spans = sorted(span for span in _secret_spans(data)
                   if span[1] > span[0] and not data.startswith(done, span[0]))
    if not spans:
        return data
    out, last = [], 0
    for start, end in spans:
        if end <= last:
            continue
        out += [data[last:max(start, last)], done]
        last = end
    out.append(data[last:])
    return b"".join(out)


def redact(text):
    """``text`` with every secret value replaced by ``[redacted]``."""
    if not text:
        return text
    data = text.encode("utf-8", "surrogatepass")
    clean = redact_bytes(data)
    return text if clean is data else clean.decode("utf-8", "surrogatepass")


class RedactFilter(logging.Filter):
    """A handler filter: the record's message (and traceback) redacted before any handler
    formats it. The record is shared, so one redaction serves every handler after it."""

    def filter(self, record):
        if getattr(record, "_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it itself
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record._redacted = True
        return True


def redact_handlers(*loggers):
    """Put a ``RedactFilter`` on every handler of ``loggers`` (once each)."""
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, RedactFilter) for f in handler.filters):
                handler.addFilter(RedactFilter())
