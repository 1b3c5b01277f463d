"""Answers name the model as the client asked for it.

A runner names its model its own way: llama-server by its ``--alias`` (the model's id; before
that, the absolute path of the GGUF file in the store), vLLM by its first served name. One runner
serves every tag of a model, so only the request knows the name the client used (``smollm2``,
``ai/smollm2:latest``, an id). The OpenAI routes pass the runner's answer through; these functions
write the asked name into each ``"model"`` member on the way, as OpenAI answers it.

On the bytes, not on parsed JSON: an answer can be megabytes (embeddings, logprobs) and a stream
thousands of events. Inside a JSON string every ``"`` is escaped, so ``"model"`` followed by a
colon is always a member name, never text a model wrote; one regular-expression pass over the
answer (C speed, linear) rewrites them. A stream is rewritten line by line: each SSE ``data:``
line is one event, and a line split between two chunks waits for its end (kept as a list of
pieces, so a long line costs no more than its length).
"""

import json
import re

_MODEL = re.compile(rb'"model"(\s*):(\s*)"(?:[^"\\]|\\.)*"')


def renamed(data, asked):
    """``data`` (JSON bytes, or SSE lines of JSON), each ``"model"`` member set to ``asked``."""
    if not isinstance(asked, str) or b'"model"' not in data:
        return data
    value = json.dumps(asked).encode()
    return _MODEL.sub(lambda m: b'"model"' + m.group(1) + b":" + m.group(2) + value, data)


def renamed_stream(chunks, asked, close=None):
    """The chunks of a streamed answer with :func:`renamed` applied to each whole line; calls
    ``close`` (the answer's) when done or closed early (the client went away)."""
    pending = []
    try:
        for chunk in chunks:
            cut = chunk.rfind(b"\n") + 1
            if not cut:
                pending.append(chunk)
                continue
            pending.append(chunk[:cut])
            yield renamed(b"".join(pending), asked)
            pending = [chunk[cut:]] if cut < len(chunk) else []
        if pending:
            yield renamed(b"".join(pending), asked)
    finally:
        if close is not None:
            close()
