"""What the gateway knows about one request, handed to ``on_request`` observers.

Token counts come from the runner's own usage figures (the ``usage`` object, or llama-server's
``timings``), never from counting here; times are measured here: time to first token is the time
to the first chunk that carries generated content, inter-token latencies the gaps between those.

Recording runs in the API worker's event loop for every chunk of every answer, and an answer can
be any size (a client asks for many choices, log probabilities, embeddings of many inputs), so
it is bounded and linear in the answer's size:

- the record keeps the first ``record_body_bytes`` of the answer (setting, default 512 KiB) and
  counts the rest (``size``); it also keeps the answer's last 64 KiB (``tail``), where the final
  usage event of a stream and the end of a JSON answer are;
- content events (for TTFT and inter-token latency) are found by looking at each chunk's own
  lines: of the line a chunk leaves unfinished, only a few bytes of state are carried over;
- when the answer ends, usage and finish reason are read from the tail (a stream's last events),
  or from the whole JSON answer when it was kept whole; from a JSON answer that was cut, the
  ``"usage"`` and ``"timings"`` objects are read where they are found, or left empty.
"""

import json
import re
import time
from dataclasses import dataclass, field

from .streams import sse_text_events

DEFAULT_BODY_BYTES = 512 << 10  # record_body_bytes: how much of each body a record keeps
TAIL_BYTES = 64 << 10         # the end of an answer, kept for its usage and finish reason
LEAD_BYTES = 4096             # the start of an answer, kept to tell a stream from JSON

_body_bytes = DEFAULT_BODY_BYTES

_MARKERS = (b'"content":"', b'"text":"')  # a content event of a chat or text completion stream
_CARRY = max(len(m) for m in _MARKERS) - 1
_FINISH = re.compile(rb'"finish_reason":\s*"([A-Za-z_]{1,40})"')


def configure(settings):
    """Read ``record_body_bytes`` (called when the app is made, with the inspector's settings)."""
    global _body_bytes
    _body_bytes = body_bytes(settings)
    return _body_bytes


def body_bytes(settings=None):
    """How many bytes of a request or answer body a record keeps (``record_body_bytes``)."""
    if settings is None:
        return _body_bytes
    try:
        return max(0, int(settings.get("record_body_bytes", DEFAULT_BODY_BYTES)))
    except (TypeError, ValueError):
        return DEFAULT_BODY_BYTES


def _is_content(line):
    return line[:5] == b"data:" and (_MARKERS[0] in line or _MARKERS[1] in line)


@dataclass
class RequestRecord:
    model: str
    model_id: str
    engine: str
    mode: str
    path: str
    dialect: str = "openai"
    request: object = None             # the falcon Request (headers are NOT recorded from it)
    body: bytes = b""
    started: float = field(default_factory=time.monotonic)
    timestamp: float = field(default_factory=time.time)
    raw: bytearray = field(default_factory=bytearray)   # the answer's first ``keep`` bytes
    keep: int = field(default_factory=body_bytes)
    size: int = 0                                       # the answer's size, all of it
    tail: bytearray = field(default_factory=bytearray)  # its last TAIL_BYTES (or a bit more)
    status: int | None = None
    error: str | None = None
    ttft: float | None = None
    chunk_times: list = field(default_factory=list)
    duration: float | None = None
    load_seconds: float | None = None
    usage: dict = field(default_factory=dict)
    finish_reason: str | None = None
    observed: bool = True  # False: not reported to on_request (Runtime.open's ``observed``)
    _lead: bytes = b""
    # the line the last chunk left unfinished: its first bytes, whether it holds a content
    # marker, and its last bytes (a marker may straddle two chunks)
    _line_start: bytes = b""
    _line_hit: bool = False
    _line_carry: bytes = b""

    def add_chunk(self, chunk, at):
        """Record one chunk of the answer, ``at`` seconds after the request started. The work is
        proportional to the chunk, whatever came before."""
        n = len(chunk)
        if not n:
            return
        if len(self.raw) < self.keep:
            self.raw += chunk[: self.keep - len(self.raw)]
        if len(self._lead) < LEAD_BYTES:
            self._lead += chunk[: LEAD_BYTES - len(self._lead)]
        self.size += n
        tail = self.tail
        tail += chunk
        if len(tail) > 2 * TAIL_BYTES:
            del tail[: len(tail) - TAIL_BYTES]
        # content events in SSE streams as they arrive, for TTFT and inter-token latency
        first = chunk.find(b"\n")
        if first < 0:
            self._extend_line(chunk)
            return
        self._extend_line(chunk[:first])
        count = self._end_line()
        last = chunk.rfind(b"\n")
        if last > first:
            count += sum(1 for line in chunk[first + 1:last].split(b"\n") if _is_content(line))
        self._extend_line(chunk[last + 1:])
        if count:
            if self.ttft is None:
                self.ttft = at
            self.chunk_times.extend([at] * count)

    def _extend_line(self, part):
        if not part:
            return
        if len(self._line_start) < 5:
            self._line_start += part[: 5 - len(self._line_start)]
        if not self._line_hit:
            edge = self._line_carry + part[:_CARRY]
            self._line_hit = any(m in edge or m in part for m in _MARKERS)
            self._line_carry = (self._line_carry + part)[-_CARRY:] if len(part) < _CARRY \
                else part[-_CARRY:]

    def _end_line(self):
        hit = self._line_start == b"data:" and self._line_hit
        self._line_start, self._line_hit, self._line_carry = b"", False, b""
        return 1 if hit else 0

    # -- reading what was recorded -------------------------------------------------------------

    @property
    def truncated(self):
        """True when the record keeps only the start of the answer."""
        return self.size > len(self.raw)

    def saw_end(self, raw=None):
        """Whether the stream's end ([DONE], or a final finish_reason) has arrived: read from
        the tail. (``raw`` is ignored; it was the whole answer once.)"""
        tail = self.tail
        return b"[DONE]" in tail[-256:] or b'"finish_reason":"' in tail[-4096:]

    @property
    def streamed(self):
        lead = self._lead
        return lead[:6] == b"data: " or b"\ndata: " in lead

    def events(self):
        """The JSON objects of the SSE stream's kept start, in order."""
        return sse_text_events(self.raw)

    def tail_events(self):
        """The JSON objects of the stream's last (whole) lines."""
        tail = bytes(self.tail)
        if self.size > len(tail):  # it starts inside a line: skip that line
            tail = tail[tail.find(b"\n") + 1:] if b"\n" in tail else b""
        return sse_text_events(tail)

    def response_json(self):
        """The JSON answer, when it was kept whole and is small (at most TAIL_BYTES); else None:
        a larger one is read by :meth:`_json_summary` without parsing all of it."""
        if self.streamed or self.truncated or self.size > TAIL_BYTES:
            return None
        try:
            return json.loads(bytes(self.raw))
        except (ValueError, UnicodeDecodeError):
            return None

    def finish(self, status=None, error=None, ended=None):
        """Read usage and finish reason from what was recorded. ``ended``: when the answer
        ended (``time.monotonic()``), if that was before now (the gateway finishes a record
        after the answer is sent)."""
        self.duration = (ended if ended is not None else time.monotonic()) - self.started
        self.status = status
        self.error = error
        if self.ttft is None and self.chunk_times:
            self.ttft = self.chunk_times[0]
        if self.streamed:
            objects = list(self.tail_events())
        else:
            final = self.response_json()
            objects = [final] if isinstance(final, dict) else [self._json_summary()]
        for obj in objects:
            if not isinstance(obj, dict):
                continue
            if obj.get("usage"):
                self.usage = obj["usage"]
            elif obj.get("timings") and not self.usage:
                t = obj["timings"]
                self.usage = {"prompt_tokens": t.get("prompt_n", 0),
                              "completion_tokens": t.get("predicted_n", 0)}
            for choice in obj.get("choices") or []:
                if isinstance(choice, dict) and choice.get("finish_reason"):
                    self.finish_reason = choice["finish_reason"]
        if not self.streamed and self.size and self.ttft is None and self.status == 200:
            self.ttft = self.duration

    def _json_summary(self):
        """What a JSON answer too large to parse here says of itself (it may also have been
        cut): its ``usage`` and ``timings`` objects (OpenAI and llama-server put them at the end;
        llama-server's embeddings put usage first) and its first finish reason, as one small
        object. Parsing all of a large answer would cost ~15 ms per MB in the event loop."""
        tail = bytes(self.tail)
        head = bytes(self.raw[:TAIL_BYTES])
        out = {}
        for key in ("usage", "timings"):
            value = _json_value(tail, key, last=True)
            if value is None:
                value = _json_value(head, key, last=False)
            if isinstance(value, dict) and all(v is None or isinstance(v, (int, float, dict))
                                               for v in value.values()):
                out[key] = value
        match = _FINISH.search(head) or _last_match(_FINISH, tail)
        if match:
            out["choices"] = [{"finish_reason": match.group(1).decode()}]
        return out

    @property
    def inter_token_latencies(self):
        t = self.chunk_times
        return [b - a for a, b in zip(t, t[1:])]

    @property
    def prompt_tokens(self):
        return int(self.usage.get("prompt_tokens") or 0)

    @property
    def completion_tokens(self):
        return int(self.usage.get("completion_tokens") or 0)


def _last_match(pattern, data):
    match = None
    for match in pattern.finditer(data):
        pass
    return match


def _json_value(data, key, last):
    """The JSON value after ``"key":`` in a piece of JSON text (the last or first one), or None.

    In JSON text a quote inside a string is escaped, so ``"usage":`` with bare quotes is always
    an object key, never part of a string, even in a piece cut from the middle of an answer."""
    needle = b'"' + key.encode() + b'":'
    at = data.rfind(needle) if last else data.find(needle)
    if at < 0:
        return None
    text = data[at + len(needle):].decode("utf-8", "replace")
    try:
        value, _ = json.JSONDecoder().raw_decode(text.lstrip())
    except ValueError:
        return None
    return value
