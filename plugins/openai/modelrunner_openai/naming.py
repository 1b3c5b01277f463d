"""Answers name the model as the client asked for it.

A runner names its model its own way: llama-server by its ``--alias`` (the model's id; before
that, the absolute path of the GGUF file in the store), vLLM by its first served name. One runner
serves every tag of a model, so only the request knows the name the client used (``smollm2``,
``ai/smollm2:latest``, an id). The OpenAI routes pass the runner's answer through; these functions
write the asked name into each ``"model"`` member on the way, as OpenAI answers it.

On the bytes, not on parsed JSON: an answer can be megabytes (embeddings, logprobs) and a stream
thousands of events. Inside a JSON string every ``"`` is escaped, so ``"model"`` followed by a
colon is always a member name, never text a model wrote; one regular-expression pass over the
answer (C speed, linear) rewrites them. The chat and completions routes, which parse each
answer and streamed event anyway to complete its shape (shapes.py), set the name there instead;
this is for the answers they pass through as they came (embeddings).
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
