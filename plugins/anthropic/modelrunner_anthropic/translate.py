"""Anthropic Messages <-> the runner's OpenAI chat API, in one place.

Every engine that chats (llama.cpp, vLLM) speaks OpenAI chat completions, so a Messages request
is translated to one, and the answer (whole, or streamed chunk by chunk) back to Anthropic's
message object or event sequence. Nothing here does I/O: routes.py sends and receives.

A forced tool choice (``any``, or a tool by name) is held with a ``response_format`` JSON schema
whose only valid answers are ``{"name": <a tool>, "input": <its input_schema>}``, and the answer
is read back as a ``tool_use`` block, because llama-server does not enforce forced choices (the
OpenAI dialect does the same; plugins do not share code, so the idea is repeated here).

A stop sequence is reported when the runner says which one stopped it: llama-server's
``__verbose.stopping_word`` (asked for with ``verbose`` only when stop_sequences are given) or
vLLM's ``choices[].stop_reason``.
"""

import json
import secrets

from modelrunner import ModelRunnerError, cached_prompt_tokens, parse_json, tool_forcing

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "function_call": "tool_use", "content_filter": "end_turn"}


def invalid(message):
    return ModelRunnerError(message, status=400, kind="invalid_request_error")


def message_id():
    return "msg_" + secrets.token_hex(12)


def tool_use_id():
    return "toolu_" + secrets.token_hex(12)


# -- requests ------------------------------------------------------------------------------------


def _text(content):
    """The text of a string, or of a list of text blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [b.get("text", "") for b in content
                 if isinstance(b, dict) and b.get("type") == "text"]
        if not all(isinstance(t, str) for t in texts):
            raise invalid("a text block's text must be a string")
        return "\n".join(texts)
    raise invalid("content must be a string or a list of content blocks")


def _image_part(block):
    source = block.get("source") or {}
    if not isinstance(source, dict):
        raise invalid("image.source must be an object")
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = source.get("url")
    else:
        raise invalid("image.source.type must be 'base64' or 'url'")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result_content(content):
    """A tool_result's content as the text a tool message carries (images are not carried)."""
    if isinstance(content, list):
        return _text([b for b in content if isinstance(b, dict)])
    return "" if content is None else str(content)


def _user_messages(content):
    """One Anthropic user turn: tool messages for its tool_results, then the rest."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise invalid("messages[].content must be a string or a list of content blocks")
    tools, parts = [], []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            if not isinstance(block.get("text", ""), str):
                raise invalid("a text block's text must be a string")
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append(_image_part(block))
        elif kind == "tool_result":
            text = _tool_result_content(block.get("content"))
            if block.get("is_error"):
                text = "Error: " + text
            tools.append({"role": "tool", "tool_call_id": block.get("tool_use_id"),
                          "content": text})
        else:
            raise invalid(f"unsupported content block type in a user message: {kind!r}")
    out = list(tools)
    if parts:
        plain = all(p["type"] == "text" for p in parts)
        out.append({"role": "user",
                    "content": "\n".join(p["text"] for p in parts) if plain else parts})
    return out


def _assistant_message(content):
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise invalid("messages[].content must be a string or a list of content blocks")
    message = {"role": "assistant", "content": ""}
    texts, thoughts, calls = [], [], []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(_string_field(block, "text"))
        elif kind == "thinking":
            thoughts.append(_string_field(block, "thinking"))
        elif kind == "redacted_thinking":
            continue
        elif kind == "tool_use":
            calls.append({"id": block.get("id") or tool_use_id(), "type": "function",
                          "function": {"name": block.get("name"),
                                       "arguments": json.dumps(block.get("input") or {})}})
        else:
            raise invalid(f"unsupported content block type in an assistant message: {kind!r}")
    message["content"] = "".join(texts)
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = calls
    return message


def _system_text(content, where):
    if not isinstance(content, (str, list)):
        raise invalid(f"{where} must be a string or a list of text blocks")
    return _text(content)


def chat_messages(body):
    """The OpenAI chat messages of a Messages request: one system message first, then the turns.

    System-role messages (Claude Code sends its environment as one, after the user's first
    turn) join the top-level ``system`` in the order they come: many chat templates take a
    system message only first, and a runner has no other place for instructions."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise invalid("messages: Field required (a list)")
    systems, out = [], []
    if body.get("system") is not None:
        systems.append(_system_text(body["system"], "system"))
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role == "system":
            systems.append(_system_text(m.get("content"), f"messages.{i}.content"))
        elif role == "user":
            out.extend(_user_messages(m.get("content")))
        elif role == "assistant":
            out.append(_assistant_message(m.get("content")))
        else:
            raise invalid(f"messages.{i}.role must be 'user', 'assistant' or 'system'")
    system = "\n\n".join(t for t in systems if t)
    return ([{"role": "system", "content": system}] if system else []) + out


def _string_field(block, key):
    """A block's text field, a string (anything else is the caller's 400, not a 500)."""
    value = block.get(key, "")
    if not isinstance(value, str):
        raise invalid(f"messages[].content[].{key}: Input should be a valid string")
    return value


def referenced_tools(body):
    """Names of the tools a tool search loaded: ``tool_reference`` blocks in tool results."""
    names = set()
    for m in body.get("messages") or []:
        content = m.get("content") if isinstance(m, dict) else None
        for block in content if isinstance(content, list) else []:
            inner = block.get("content") if isinstance(block, dict) else None
            for ref in inner if isinstance(inner, list) else []:
                if isinstance(ref, dict) and ref.get("type") == "tool_reference":
                    if not isinstance(ref.get("tool_name"), str):
                        raise invalid("tool_reference.tool_name: Input should be a valid string")
                    names.add(ref["tool_name"])
    return names


def chat_tools(tools, loaded=()):
    """The runner's function tools. A tool with ``defer_loading`` stays out of the prompt until
    a tool search loads it (a ``tool_reference`` to it in a tool result), as Anthropic's API
    does: Claude Code sends its rarely used tools that way, behind its ToolSearch tool."""
    out = []
    for tool in tools or []:
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise invalid("tools[] need a name")
        if tool.get("defer_loading") and tool["name"] not in loaded:
            continue
        out.append({"type": "function", "function": {
            "name": tool["name"], "description": tool.get("description", ""),
            "parameters": tool.get("input_schema") or {"type": "object"}}})
    return out


def forced_tools(body):
    """The tools (Anthropic's shape) a request forces one of, or None."""
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise invalid("tool_choice.type must be 'auto', 'any', 'tool' or 'none'")
    # only the tools the model is shown: a deferred one not yet loaded by a tool search is not
    loaded = referenced_tools(body)
    tools = {t.get("name"): t for t in body.get("tools") or [] if isinstance(t, dict)
             and isinstance(t.get("name"), str)
             and (not t.get("defer_loading") or t["name"] in loaded)}
    if choice["type"] == "any":
        if not tools:
            raise invalid("tool_choice 'any' needs at least one tool in tools")
        return list(tools.values())
    if choice["type"] == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or name not in tools:
            raise invalid(f"tool_choice names {name!r}, which is not in tools (or not loaded)")
        return [tools[name]]
    return None


THINKING = ("enabled", "adaptive", "disabled", "between_tools")
EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def _thinking(body, chat):
    """``thinking`` on the runner's reasoning controls: ``enabled`` turns a reasoning model's
    thinking on (its budget as llama-server's ``thinking_budget_tokens``), ``disabled`` off;
    ``adaptive`` and ``between_tools`` leave it to the model, as they do on Anthropic's."""
    thinking = body.get("thinking")
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in THINKING:
        raise invalid("thinking.type must be one of " + ", ".join(map(repr, THINKING)))
    if thinking["type"] == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
            raise invalid("thinking.budget_tokens: a positive integer is required")
        chat["chat_template_kwargs"] = {"enable_thinking": True}
        chat["thinking_budget_tokens"] = budget
    elif thinking["type"] == "disabled":
        chat["chat_template_kwargs"] = {"enable_thinking": False}


def thinking_shown(body):
    """False when the request asks for thinking ``display: "omitted"``: the answer then has
    no thinking text (Anthropic sends an empty block with a signature; a runner has none to
    give, so no block)."""
    thinking = body.get("thinking")
    return not (isinstance(thinking, dict) and thinking.get("display") == "omitted")


def output_format(body):
    """The JSON schema an answer must follow (``output_config.format``, or the older beta's
    top-level ``output_format``), or None."""
    config = body.get("output_config")
    if config is not None and not isinstance(config, dict):
        raise invalid("output_config must be an object")
    fmt = (config or {}).get("format") or body.get("output_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" \
            or not isinstance(fmt.get("schema"), dict):
        raise invalid("output_config.format must be {\"type\": \"json_schema\", \"schema\": {...}}")
    return fmt["schema"]


def _output_config(body, chat):
    """``output_config.effort`` as the runner's ``reasoning_effort`` (its levels above
    "high" as "high", the highest a runner has); ``format`` as a JSON-schema response_format
    (which a forced tool choice's call format replaces: the call is the answer then)."""
    schema = output_format(body)  # checks output_config is an object
    effort = (body.get("output_config") or {}).get("effort")
    if effort is not None:
        if not isinstance(effort, str) or effort not in EFFORTS:
            raise invalid("output_config.effort must be one of " + ", ".join(EFFORTS))
        chat["reasoning_effort"] = EFFORTS[effort]
    if schema is not None:
        chat["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "output", "schema": schema}}


def prompt_request(body):
    """The chat request that fixes the prompt (messages, tools, template kwargs), for counting."""
    chat = {"messages": chat_messages(body)}
    tools = chat_tools(body.get("tools"), referenced_tools(body))
    if tools:
        chat["tools"] = tools
    _thinking(body, chat)
    return chat


def chat_request(body):
    """``(chat request, forced tools or None)`` for a Messages request; 400 for a bad one."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise invalid("model: Field required")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise invalid("max_tokens: Field required")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise invalid("max_tokens: must be a positive integer")
    chat = {"model": body["model"], **prompt_request(body), "max_tokens": max_tokens}
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            chat[key] = body[key]
    stops = body.get("stop_sequences")
    if stops:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise invalid("stop_sequences must be a list of strings")
        chat["stop"] = stops
        chat["verbose"] = True  # llama-server then says which stop word ended the answer
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise invalid("metadata: Input should be a valid dictionary")
    user = (metadata or {}).get("user_id")
    if isinstance(user, str):
        chat["user"] = user
    _output_config(body, chat)
    forced = forced_tools(body)
    choice = (body.get("tool_choice") or {}).get("type")
    if forced:
        chat["tools"] = chat_tools(forced)
        chat["tool_choice"] = "auto"
        chat["response_format"] = tool_forcing.call_format(
            [(t["name"], t.get("input_schema")) for t in forced], "input", name="tool_use")
    elif choice == "none":
        chat["tool_choice"] = "none"
    if (body.get("tool_choice") or {}).get("disable_parallel_tool_use"):
        chat["parallel_tool_calls"] = False
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat, forced


# -- answers -------------------------------------------------------------------------------------


def parse_forced(text):
    """The ``tool_use`` block in a constrained answer, or None if it is not a call."""
    call = tool_forcing.parse_forced_call(text, "input")
    return tool_use_block(tool_use_id(), call[0], call[1]) if call else None


def _arguments(raw):
    if isinstance(raw, dict):
        return raw
    try:
        value = parse_json(raw or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def stopping_word(obj, choice, stops):
    """The stop sequence that ended the answer, when the runner says (see module doc)."""
    if not stops:
        return None
    word = (obj.get("__verbose") or {}).get("stopping_word") or choice.get("stop_reason")
    return word if isinstance(word, str) and word in stops else None


def stop_reason(finish, content, stop_word):
    if any(b["type"] == "tool_use" for b in content):
        return "tool_use"
    if stop_word:
        return "stop_sequence"
    return STOP_REASONS.get(finish or "stop", "end_turn")


def usage(u, timings=None):
    """Anthropic's usage, every field its schema requires. As Anthropic counts them, a
    request's input is ``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``:
    the prompt tokens the runner took from its cache are cache reads, the rest input. Nothing
    is written to a cache on request (no ``cache_control``), no server tool runs, and a local
    runner has one tier: "standard"."""
    u = u or {}
    prompt = int(u.get("prompt_tokens") or 0)
    cached = min(cached_prompt_tokens(u, timings), prompt)
    return {"input_tokens": prompt - cached,
            "output_tokens": int(u.get("completion_tokens") or 0),
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "server_tool_use": None, "service_tier": "standard", "inference_geo": None,
            "output_tokens_details": None}


def delta_usage(u, timings=None):
    """The cumulative usage of a ``message_delta`` event (Anthropic's MessageDeltaUsage)."""
    full = usage(u, timings)
    return {key: full[key] for key in ("input_tokens", "output_tokens",
                                       "cache_creation_input_tokens", "cache_read_input_tokens",
                                       "server_tool_use", "output_tokens_details")}


def text_block(text):
    """A text block as Anthropic's schema defines it (no citations: nothing was cited)."""
    return {"type": "text", "text": text, "citations": None}


def tool_use_block(call_id, name, tool_input):
    """A tool_use block; the model called the tool itself (``caller`` direct), not code run
    by a server tool."""
    return {"type": "tool_use", "id": call_id, "name": name, "input": tool_input,
            "caller": {"type": "direct"}}


def message(completion, model, forced=None, stops=None, thinking=True):
    """Anthropic's message object for a whole chat completion (``thinking``: whether its
    thinking text is shown, see ``thinking_shown``)."""
    choice = (completion.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    content = []
    if thinking and msg.get("reasoning_content"):
        content.append({"type": "thinking", "thinking": msg["reasoning_content"],
                        "signature": ""})
    call = parse_forced(msg.get("content")) if forced else None
    if call:
        content.append(call)
    elif msg.get("content"):
        content.append(text_block(msg["content"]))
    for tc in msg.get("tool_calls") or []:
        fn = tc.get("function") or {}
        content.append(tool_use_block(tc.get("id") or tool_use_id(), fn.get("name") or "",
                                      _arguments(fn.get("arguments"))))
    word = stopping_word(completion, choice, stops)
    return message_object(model, content, stop_reason(choice.get("finish_reason"), content, word),
                          word, usage(completion.get("usage"), completion.get("timings")))


def message_object(model, content, reason, word, counted):
    """Anthropic's Message: no container (no container tool ran), no stop details (they
    explain refusals, and a local model's stop has none)."""
    return {"id": message_id(), "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": reason, "stop_sequence": word,
            "stop_details": None, "container": None, "usage": counted}


class StreamTranslator:
    """OpenAI chat chunks in, Anthropic stream events out (dicts; routes.py writes the SSE).

    ``start()`` gives message_start and a ping; ``feed(chunk)`` the events a chunk adds; ``end()``
    closes the open block and gives message_delta (stop reason, usage) and message_stop. A forced
    tool choice holds the text back and sends the call as one tool_use block at the end.
    """

    def __init__(self, model, forced=None, stops=None, thinking=True):
        self.model = model
        self.thinking = thinking
        self.forced = forced
        self.stops = stops
        self.index = -1
        self.open = None          # type of the open content block, or ("tool", runner index)
        self.kinds = []           # types of the blocks sent, for the stop reason
        self.held = ""            # a forced answer's text
        self.finish = None
        self.stop_word = None
        self.usage = {}
        self.timings = None

    def start(self):
        # the counts come with the runner's last chunk: message_delta carries them
        return [{"type": "message_start",
                 "message": message_object(self.model, [], None, None, usage({}))},
                {"type": "ping"}]

    def _block(self, key, block):
        """Events that make ``block`` the open one (closing the one before)."""
        events = self._close()
        self.index += 1
        self.open = key
        self.kinds.append(block["type"])
        events.append({"type": "content_block_start", "index": self.index,
                       "content_block": block})
        return events

    def _close(self):
        if self.open is None:
            return []
        self.open = None
        return [{"type": "content_block_stop", "index": self.index}]

    def _delta(self, delta):
        return {"type": "content_block_delta", "index": self.index, "delta": delta}

    def feed(self, chunk):
        events = []
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        if chunk.get("timings"):
            self.timings = chunk["timings"]
        verbose_word = stopping_word(chunk, {}, self.stops)
        if verbose_word:
            self.stop_word = verbose_word
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if self.thinking and delta.get("reasoning_content"):
                if self.open != "thinking":
                    events += self._block("thinking", {"type": "thinking", "thinking": "",
                                                       "signature": ""})
                events.append(self._delta({"type": "thinking_delta",
                                           "thinking": delta["reasoning_content"]}))
            if delta.get("content"):
                if self.forced:
                    self.held += delta["content"]
                else:
                    if self.open != "text":
                        events += self._block("text", text_block(""))
                    events.append(self._delta({"type": "text_delta", "text": delta["content"]}))
            for tc in delta.get("tool_calls") or []:
                key = ("tool", tc.get("index", 0))
                fn = tc.get("function") or {}
                if self.open != key:
                    events += self._block(key, tool_use_block(tc.get("id") or tool_use_id(),
                                                              fn.get("name") or "", {}))
                if fn.get("arguments"):
                    events.append(self._delta({"type": "input_json_delta",
                                               "partial_json": fn["arguments"]}))
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
                word = stopping_word(chunk, choice, self.stops)
                self.stop_word = word or self.stop_word
        return events

    def end(self):
        events = []
        if self.forced:
            call = parse_forced(self.held)
            if call:
                tool_input = call.pop("input")
                events += self._block("forced", {**call, "input": {}})
                events.append(self._delta({"type": "input_json_delta",
                                           "partial_json": json.dumps(tool_input)}))
            elif self.held:
                events += self._block("text", text_block(""))
                events.append(self._delta({"type": "text_delta", "text": self.held}))
        events += self._close()
        content = [{"type": k} for k in self.kinds]
        events.append({"type": "message_delta",
                       "delta": {"stop_reason": stop_reason(self.finish, content, self.stop_word),
                                 "stop_sequence": self.stop_word, "stop_details": None,
                                 "container": None},
                       "usage": delta_usage(self.usage, self.timings)})
        events.append({"type": "message_stop"})
        return events


def sse(event):
    """One Anthropic SSE event: the ``event:`` line names its type."""
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
