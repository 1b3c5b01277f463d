"""What the gateway knows about one request, handed to ``on_request`` observers.

Token counts come from the runner's own usage figures (the ``usage`` object, or llama-server's
``timings``), never from counting here; times are measured here: time to first token is the time
to the first chunk that carries generated content, inter-token latencies the gaps between those.
"""

import json
import time
from dataclasses import dataclass, field

from .streams import sse_events

MAX_RAW = 4 << 20  # keep at most 4 MiB of a response for reassembly


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
    raw: bytearray = field(default_factory=bytearray)
    status: int | None = None
    error: str | None = None
    ttft: float | None = None
    chunk_times: list = field(default_factory=list)
    duration: float | None = None
    load_seconds: float | None = None
    usage: dict = field(default_factory=dict)
    finish_reason: str | None = None
    _pending: bytes = b""

    def add_chunk(self, chunk, at):
        if len(self.raw) < MAX_RAW:
            self.raw += chunk[: MAX_RAW - len(self.raw)]
        # count content events in SSE streams as they arrive, for TTFT and inter-token latency
        data = self._pending + chunk
        lines = data.split(b"\n")
        self._pending = lines.pop()
        for line in lines:
            if line.startswith(b"data:") and (b'"content":"' in line or b'"text":"' in line):
                if self.ttft is None:
                    self.ttft = at
                self.chunk_times.append(at)

    @staticmethod
    def saw_end(raw):
        return b"[DONE]" in raw[-256:] or b'"finish_reason":"' in raw[-4096:]

    @property
    def streamed(self):
        return bytes(self.raw[:6]) == b"data: " or b"\ndata: " in bytes(self.raw[:4096])

    def events(self):
        """The JSON objects of an SSE stream, in order."""
        return sse_events([bytes(self.raw)], raise_errors=False)

    def response_json(self):
        if self.streamed:
            return None
        try:
            return json.loads(bytes(self.raw))
        except ValueError:
            return None

    def finish(self, status=None, error=None):
        self.duration = time.monotonic() - self.started
        self.status = status
        self.error = error
        if self.ttft is None and self.chunk_times:
            self.ttft = self.chunk_times[0]
        final = self.response_json()
        objects = [final] if final else list(self.events())
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
                if choice.get("finish_reason"):
                    self.finish_reason = choice["finish_reason"]
        if final and self.ttft is None and self.status == 200:
            self.ttft = self.duration

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
