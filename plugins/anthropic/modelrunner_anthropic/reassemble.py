"""Anthropic's streamed events reassembled into one message: the dialect's own stream shape,
kept with the dialect (the core reassembles only the runners' OpenAI chunks)."""

import json


def reassemble(events):
    """One Messages object from Anthropic's stream events (message_start, content_block_*,
    message_delta): what a client that streams ends up with, for the tests and tools that
    compare a stream with a whole answer."""
    message, blocks = {}, {}
    for e in events:
        kind = e.get("type")
        if kind == "message_start":
            message = dict(e.get("message") or {})
        elif kind == "content_block_start":
            blocks[e.get("index", 0)] = dict(e.get("content_block") or {})
        elif kind == "content_block_delta":
            block = blocks.setdefault(e.get("index", 0), {"type": "text", "text": ""})
            d = e.get("delta") or {}
            if d.get("type") == "text_delta":
                block["text"] = block.get("text", "") + d.get("text", "")
            elif d.get("type") == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + d.get("thinking", "")
            elif d.get("type") == "input_json_delta":
                block["_json"] = block.get("_json", "") + d.get("partial_json", "")
        elif kind == "message_delta":
            message.update({k: v for k, v in (e.get("delta") or {}).items() if v is not None})
            if e.get("usage"):
                message["usage"] = {**(message.get("usage") or {}), **e["usage"]}
    content = []
    for _, block in sorted(blocks.items()):
        if "_json" in block:
            raw = block.pop("_json")
            try:
                block["input"] = json.loads(raw) if raw else {}
            except ValueError:
                block["input"] = raw
        content.append(block)
    message["content"] = content
    return message
