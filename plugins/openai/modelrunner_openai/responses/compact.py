"""POST .../responses/compact: a conversation compacted into a shorter input window.

The specification's ``compactResponse``: the body (``CompactResponseMethodPublicBody``) is
``model`` (required), ``input`` (a string or items), ``previous_response_id``, ``instructions`` and
``prompt_cache_key`` (a cache hint, accepted and unused); the answer (``CompactResource``) is
``{"id", "object": "response.compaction", "created_at", "output", "usage"}``. ``output`` is the
compacted window: the conversation's user messages as they were, then one ``compaction`` item
standing for everything else (the assistant's answers, tool calls and their results, earlier
summaries). Nothing is stored; the client starts a new response with the window as ``input``
(without ``previous_response_id``) and its next items after it.

How it is made here: the conversation (the previous response's, then ``input``) is written out as
a transcript and the model is asked, at temperature 0 and in about half as many tokens, to
summarise it. The summary travels in the compaction item's ``encrypted_content``
(``items.compaction_token``: opaque, not encrypted); when the item comes back as input
it becomes a system message with the summary, where the item stands. ``usage`` is the
summarising call's.
"""

import json
import time

from modelrunner import caller

from ..params import RequestError
from .items import compaction_token, input_items, items_to_messages, new_id
from .objects import convert_usage
from .validation import (check_tool_outputs, previous_response, read_json, runner_json,
                         validate_compact)

# The summary's budget: about half the transcript's tokens (4 characters a token), within bounds.
SUMMARY_TOKENS = (64, 512)
# A small model summarises (rather than answers) when told to in the user turn, briefly, in the
# third person, after a one-line system role: SmolLM2-135M answered as the assistant otherwise,
# and echoed a longer list of what to keep instead of keeping it.
SUMMARISER = "You write short, factual summaries of conversations."
SUMMARISE = "Summarise this conversation in the third person, keeping every name, place and number:"


def _text(content):
    if isinstance(content, str):
        return content
    texts = []
    for part in content or []:
        if part.get("type") == "text":
            texts.append(part.get("text") or "")
        elif part.get("type") == "image_url":
            texts.append("[an image]")
    return " ".join(texts)


def transcript(messages):
    """The conversation as plain lines (``role: text``), tool calls and results included."""
    lines = []
    for message in messages:
        role = message["role"]
        text = _text(message.get("content"))
        if role == "tool":
            lines.append(f"tool result for {message.get('tool_call_id')}: {text}")
        elif text:
            lines.append(f"{role}: {text}")
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            lines.append(f"{role} called the tool {fn.get('name')} with {fn.get('arguments')} "
                         f"(call {call.get('id')})")
    return "\n".join(lines)


def user_items(messages):
    """The user messages of a conversation as ``message`` items (input_text/input_image)."""
    items = []
    for message in messages:
        if message["role"] != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts = [{"type": "input_text", "text": content}]
        else:
            parts = [{"type": "input_text", "text": p.get("text") or ""}
                     if p.get("type") == "text" else
                     {"type": "input_image", "image_url": (p.get("image_url") or {}).get("url"),
                      "detail": "auto"}
                     for p in content or []]
        items.append({"id": new_id("msg"), "type": "message", "role": "user",
                      "status": "completed", "content": parts})
    return items


def summary_request(data, conversation):
    """The chat request that asks the model for the summary."""
    lines = transcript(conversation)
    if data.get("instructions"):
        lines = f"system: {data['instructions']}\n{lines}"
    low, high = SUMMARY_TOKENS
    budget = max(low, min(high, len(lines) // 8))
    # Penalties keep a small model from looping on one sentence until the budget runs out.
    return {"model": data["model"], "temperature": 0, "max_tokens": budget,
            "frequency_penalty": 0.5, "presence_penalty": 0.3,
            "messages": [{"role": "system", "content": SUMMARISER},
                         {"role": "user", "content": f"{SUMMARISE}\n\n{lines}"}]}


class CompactResource:
    """POST .../responses/compact."""

    scope = "inference"  # API keys: inference keys may use it (modelrunner.trust)
    dialect = "openai"  # every error raised here is rendered in OpenAI's shape

    def __init__(self, runtime, store):
        self.runtime = runtime
        self.store = store

    def on_post(self, req, resp, engine=None):
        data = read_json(req)
        validate_compact(data)
        previous = previous_response(self.store.for_caller(caller(req)), data)
        history = list(previous["messages"]) if previous else []
        conversation = history + items_to_messages(input_items(data.get("input")))
        check_tool_outputs(conversation)
        if not conversation:
            raise RequestError("input is required: there is no conversation to compact",
                               "input", code="missing_required_parameter")
        body = json.dumps(summary_request(data, conversation)).encode()
        chat = runner_json(self.runtime.open(data["model"], "/v1/chat/completions", body,
                                             engine=engine, request=req))
        choice = (chat.get("choices") or [{}])[0]
        summary = ((choice.get("message") or {}).get("content") or "").strip()
        compaction = {"id": new_id("cmp"), "type": "compaction",
                      "encrypted_content": compaction_token(summary)}
        resp.media = {"id": new_id("resp"), "object": "response.compaction",
                      "created_at": int(time.time()),
                      "output": user_items(conversation) + [compaction],
                      "usage": (convert_usage(chat.get("usage"), chat.get("timings"))
                                or convert_usage({"prompt_tokens": 0, "completion_tokens": 0}))}
