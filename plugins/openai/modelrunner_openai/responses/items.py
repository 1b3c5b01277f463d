"""Input items: to chat messages for the runner, and as GET .../input_items lists them.

A Responses ``input`` is a string (one user message) or a list of items: messages (with
input_text/output_text/refusal/input_image parts), function_call and custom_tool_call (a chat tool
call of the function ``tools`` made of it: a namespace's member by its flat name, a custom tool's
input as its one argument), their outputs (tool messages), reasoning (its text the next assistant
message's ``reasoning_content``) and compaction items made by ``POST .../responses/compact``,
whose summary becomes a system message where the item stands.

A compaction item's ``encrypted_content`` is this server's own opaque token, ``mrc1.`` and the
summary as base64url JSON: it is not encrypted (the summary is no secret of the server's), only
made opaque, so that a client treats it as the specification says, a blob to send back as is.
"""

import base64
import binascii
import json
import secrets

from modelrunner import parse_json

from ..params import RequestError
from .tools import custom_arguments, flat_name

COMPACTION_PREFIX = "mrc1."
SUMMARY_INTRO = "Summary of the conversation so far:\n"


def new_id(prefix):
    return f"{prefix}_{secrets.token_hex(24)}"


def text_of(content):
    """Text of a content list (input_text/output_text/text/refusal parts), or the string."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise RequestError("content must be a string or a list of parts", "input")
    texts = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict):
            key = ("text" if part.get("type") in ("input_text", "output_text", "text",
                                                   "summary_text", "reasoning_text")
                   else "refusal" if part.get("type") == "refusal" else None)
            value = part.get(key) or "" if key else ""
            if not isinstance(value, str):  # the caller's 400, never a 500 in the join
                raise RequestError(f"a {part.get('type')} part's {key} must be a string", "input",
                                   code="invalid_type")
            texts.append(value)
    return "".join(texts)


def _is_image(part):
    return isinstance(part, dict) and part.get("type") == "input_image"


def message_content(content):
    """A Responses message's content as chat content: a string, or parts when there are images."""
    if not (isinstance(content, list) and any(_is_image(p) for p in content)):
        return text_of(content)
    parts = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": part.get("text") or ""})
        elif kind == "input_image":
            url = part.get("image_url")
            if not url:
                raise RequestError("input_image needs an image_url (file_id is not supported)",
                                   "input")
            parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def input_items(value):
    """The request's ``input`` as a list of items (a string is one user message)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list):
        raise RequestError("input must be a string or a list of items", "input")
    return value


def reasoning_text(item):
    """The text a reasoning item carries: its reasoning_text content, else its summary."""
    for field in ("content", "summary"):
        if isinstance(item.get(field), list) and text_of(item[field]):
            return text_of(item[field])
    return ""


def _call(item):
    """A function_call or custom_tool_call item as a chat tool call (``tools``' flat name)."""
    if item.get("type") == "custom_tool_call":
        arguments = custom_arguments(item.get("input"))
    else:
        arguments = item.get("arguments") or "{}"
    return {"id": item.get("call_id") or item.get("id") or new_id("call"), "type": "function",
            "function": {"name": flat_name(item.get("name") or "", item.get("namespace")),
                         "arguments": arguments}}


def items_to_messages(items):
    """Chat messages for ``items``; function calls join the assistant message before them, and
    a reasoning item's text is the next assistant message's ``reasoning_content`` (a template
    that shows earlier reasoning gets it; the others drop it)."""
    messages = []
    reasoning = []
    for item in items:
        if not isinstance(item, dict):
            raise RequestError("each input item must be an object", "input")
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role = item.get("role") or "user"
            if role not in ("user", "assistant", "system", "developer"):
                raise RequestError(f"unsupported message role {role!r}", "input")
            messages.append({"role": "system" if role == "developer" else role,
                             "content": message_content(item.get("content"))})
        elif kind in ("function_call", "custom_tool_call"):
            call = _call(item)
            last = messages[-1] if messages else None
            if last and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            elif last and last["role"] == "assistant" and not last.get("tool_calls"):
                last["tool_calls"] = [call]
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            messages.append({"role": "tool", "tool_call_id": item.get("call_id") or "",
                             "content": output if isinstance(output, str) else
                             text_of(output) if isinstance(output, list) else json.dumps(output)})
        elif kind == "compaction":
            messages.append({"role": "system",
                             "content": SUMMARY_INTRO + read_compaction(item)})
        elif kind == "reasoning":
            if reasoning_text(item):
                reasoning.append(reasoning_text(item))
            continue
        else:
            raise RequestError(f"input items of type {kind!r} are not supported", "input")
        if reasoning and messages[-1]["role"] == "assistant":
            # joined with what the message already carries: a reasoning item before its text
            # and another before its function call are both the turn's reasoning
            earlier = messages[-1].get("reasoning_content")
            messages[-1]["reasoning_content"] = "\n".join([earlier, *reasoning] if earlier
                                                          else reasoning)
            reasoning = []
    return messages


# -- compaction tokens --------------------------------------------------------------------------


def compaction_token(summary):
    payload = json.dumps({"summary": summary}).encode()
    return COMPACTION_PREFIX + base64.urlsafe_b64encode(payload).decode().rstrip("=")


def read_compaction(item):
    """The summary a compaction item made by this server carries (400 for any other)."""
    token = item.get("encrypted_content")
    if not isinstance(token, str) or not token.startswith(COMPACTION_PREFIX):
        raise RequestError("this compaction item was not made by this server's "
                           "/responses/compact", "input", code="invalid_value")
    body = token[len(COMPACTION_PREFIX):]
    try:
        data = parse_json(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        return str(data["summary"])
    except (ValueError, binascii.Error, KeyError, TypeError):
        raise RequestError("the compaction item's encrypted_content is damaged", "input",
                           code="invalid_value") from None


# -- as GET .../input_items lists them ----------------------------------------------------------


def _part(part, role):
    """A content part as an output item holds it (the specification's content shapes)."""
    if isinstance(part, str):
        part = {"type": "output_text" if role == "assistant" else "input_text", "text": part}
    part = dict(part)
    if part.get("type") == "output_text":
        part.setdefault("annotations", [])
    elif part.get("type") == "input_image":
        part.setdefault("image_url", None)
        part["detail"] = part.get("detail") or "auto"
    return part


def stored_item(item):
    """One input item as the specification's output-side item (``ItemField``): ids and statuses
    filled in, string content as one text part."""
    item = dict(item)
    kind = item.get("type") or "message"
    item["type"] = kind
    if kind == "message":
        item["id"] = item.get("id") or new_id("msg")
        role = item.get("role")
        content = item.get("content")
        if isinstance(content, str):
            content = [content]
        item["content"] = [_part(p, role) for p in content or []]
        item["status"] = item.get("status") or "completed"
    elif kind == "function_call":
        item["id"] = item.get("id") or new_id("fc")
        item["status"] = item.get("status") or "completed"
    elif kind == "custom_tool_call":
        item["id"] = item.get("id") or new_id("ctc")
        item["status"] = item.get("status") or "completed"
    elif kind in ("function_call_output", "custom_tool_call_output"):
        item["id"] = item.get("id") or new_id("fco" if kind == "function_call_output" else "ctco")
        item["status"] = item.get("status") or "completed"
        if isinstance(item.get("output"), list):
            item["output"] = [_part(p, "tool") for p in item["output"]]
    elif kind == "reasoning":
        item["id"] = item.get("id") or new_id("rs")
        item["summary"] = item.get("summary") or []
        if item.get("content") is None:
            item.pop("content", None)
    elif kind == "compaction":
        item["id"] = item.get("id") or new_id("cmp")
    return item


def stored_input_items(items):
    return [stored_item(item) for item in items]
