"""Ollama requests to OpenAI chat/completions bodies, and OpenAI answers back to Ollama shapes."""

import base64
import binascii
import json
import re
import uuid

from modelrunner import parse_json

from .errors import OllamaError

# Ollama option -> the llama-server (OpenAI + llama.cpp extensions) request field.
OPTION_FIELDS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "seed": "seed",
    "stop": "stop",
    "repeat_penalty": "repeat_penalty",
    "repeat_last_n": "repeat_last_n",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "num_keep": "n_keep",
    "mirostat": "mirostat",
    "mirostat_tau": "mirostat_tau",
    "mirostat_eta": "mirostat_eta",
}


def merge_options(defaults, options):
    if options is not None and not isinstance(options, dict):
        raise OllamaError(400, "options must be an object")
    merged = dict(defaults or {})
    merged.update({k: v for k, v in (options or {}).items() if v is not None})
    return merged


def sampling_fields(options):
    """Sampling options as request fields (num_predict -> max_tokens; -1/-2 = no limit)."""
    out = {}
    for key, value in options.items():
        if key in OPTION_FIELDS:
            if key == "stop" and isinstance(value, str):
                value = [value]
            if key == "stop" and not value:
                continue
            out[OPTION_FIELDS[key]] = value
    num_predict = options.get("num_predict")
    if num_predict is not None:
        try:
            num_predict = int(num_predict)
        except (TypeError, ValueError):
            raise OllamaError(400, f"option num_predict must be an integer, not {num_predict!r}")
        if num_predict > 0:
            out["max_tokens"] = num_predict
        elif num_predict == 0:
            out["max_tokens"] = 0
    return out


MAX_TOP_LOGPROBS = 20


def check_top_logprobs(body):
    """``top_logprobs`` of /api/chat and /api/generate: 0..20, as Ollama's own server checks it
    (400 "top_logprobs must be between 0 and 20") before it looks at the model. Each unit asks
    for one more alternative per generated token, so an unbounded value multiplies the answer."""
    value = body.get("top_logprobs")
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise OllamaError(400, f"top_logprobs must be an integer, not {value!r}")
    if not 0 <= value <= MAX_TOP_LOGPROBS:
        raise OllamaError(400, f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}")


def num_ctx(options):
    """The ``num_ctx`` option as a positive int, None when unset; 400 for anything else. A
    boolean is no number (``true`` was a context of 1 token), nor is ``Infinity``, which
    Python's JSON reader lets through (it was a 500: OverflowError)."""
    value = options.get("num_ctx")
    if isinstance(value, bool):
        raise OllamaError(400, f"option num_ctx must be an integer, not {value!r}")
    if value in (None, 0):
        return None
    try:
        value = int(value)
    except (TypeError, ValueError, OverflowError):
        raise OllamaError(400, f"option num_ctx must be an integer, not {value!r}") from None
    if value < 1:
        raise OllamaError(400, "option num_ctx must be positive")
    return value


def response_format(fmt):
    """Ollama ``format``: "json" -> json_object, a schema object -> json_schema, "" -> none."""
    if fmt in (None, "", {}):
        return None
    if fmt == "json":
        return {"type": "json_object"}
    if isinstance(fmt, dict):
        return {"type": "json_schema", "json_schema": {"name": "format", "strict": True,
                                                       "schema": fmt}}
    if isinstance(fmt, str):
        try:
            schema = parse_json(fmt)  # nested too deeply: a ValueError too
        except ValueError:
            schema = None
        if isinstance(schema, dict):
            return response_format(schema)
    raise OllamaError(400, f"invalid format {fmt!r}: use \"json\" or a JSON schema object")


_MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
          (b"RIFF", "image/webp"), (b"BM", "image/bmp"))


def image_part(data):
    """One base64 image as an OpenAI image_url content part (a data URL)."""
    if not isinstance(data, str):
        raise OllamaError(400, "images must be base64 strings")
    if data.startswith("data:"):
        return {"type": "image_url", "image_url": {"url": data}}
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        raise OllamaError(400, "invalid image: not base64") from None
    mime = next((m for magic, m in _MAGIC if raw.startswith(magic)), "image/png")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}


def tool_arguments_to_openai(arguments):
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments if arguments is not None else {})


def tool_arguments_to_ollama(arguments):
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = parse_json(arguments)
    except ValueError:
        return {"arguments": arguments}  # the model wrote something that is not JSON: keep it
    return value if isinstance(value, dict) else {"value": value}


def messages_to_openai(messages):
    """Ollama chat messages -> OpenAI messages (images as data URLs, tool-call arguments as JSON
    strings, tool results tied to the call they answer). Whether the model reads images the
    gateway checks, for every dialect (the Ollama dialect words it as Ollama does)."""
    if not isinstance(messages, list):
        raise OllamaError(400, "messages must be a list")
    out = []
    pending = []  # (id, name) of tool calls not yet answered, in order
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise OllamaError(400, f"messages[{i}] must be an object")
        role = msg.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            raise OllamaError(400, f"messages[{i}]: invalid role {role!r}")
        content = msg.get("content") or ""
        if not isinstance(content, str):  # Ollama's content is text; images go in "images"
            raise OllamaError(400, f"messages[{i}].content must be a string")
        item = {"role": role}
        images = msg.get("images") or []
        if images:
            item["content"] = ([{"type": "text", "text": content}] if content else []) + [
                image_part(img) for img in images]
        else:
            item["content"] = content
        if role == "assistant" and msg.get("thinking"):
            item["reasoning_content"] = msg["thinking"]
        if role == "assistant" and msg.get("tool_calls"):
            calls = []
            for call in msg["tool_calls"]:
                function = (call or {}).get("function") or {}
                call_id = call.get("id") or f"call_{uuid.uuid4().hex[:24]}"
                calls.append({"id": call_id, "type": "function",
                              "function": {"name": function.get("name", ""),
                                           "arguments": tool_arguments_to_openai(
                                               function.get("arguments"))}})
                pending.append((call_id, function.get("name", "")))
            item["tool_calls"] = calls
        if role == "tool":
            call_id = msg.get("tool_call_id")
            name = msg.get("tool_name") or msg.get("name")
            if not call_id and pending:
                match = next((p for p in pending if name and p[1] == name), pending[0])
                call_id = match[0]
            if call_id:
                pending = [p for p in pending if p[0] != call_id]
                item["tool_call_id"] = call_id
            else:
                item["tool_call_id"] = f"call_{uuid.uuid4().hex[:24]}"
            if name:
                item["name"] = name
        out.append(item)
    return out


def tools_to_openai(tools):
    if not tools:
        return None
    if not isinstance(tools, list):
        raise OllamaError(400, "tools must be a list")
    out = []
    for tool in tools:
        if not isinstance(tool, dict) or not isinstance(tool.get("function"), dict):
            raise OllamaError(400, "each tool must be {\"type\": \"function\", \"function\": {...}}")
        function = {k: v for k, v in tool["function"].items() if v is not None}
        out.append({"type": tool.get("type") or "function", "function": function})
    return out


def tool_calls_to_ollama(calls):
    """Accumulated OpenAI tool calls -> Ollama's, arguments as objects."""
    out = []
    for index, call in enumerate(calls):
        function = call.get("function") or {}
        entry = {"function": {"index": index, "name": function.get("name", ""),
                              "arguments": tool_arguments_to_ollama(function.get("arguments"))}}
        if call.get("id"):
            entry["id"] = call["id"]
        out.append(entry)
    return out


def done_reason(finish_reason):
    return "length" if finish_reason == "length" else "stop"


# -- Ollama's Go templates, the simple ones --------------------------------------------------------

_TOKEN = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)


class TemplateError(ValueError):
    pass


def render_template(template, values):
    """Render the subset of Go templates that /api/generate prompts use: ``{{ .System }}``,
    ``{{ .Prompt }}``, ``{{ .Response }}``, ``{{ .Suffix }}`` and ``{{ if .X }}..{{ else }}..
    {{ end }}``. Anything else (range over .Messages, functions) raises TemplateError."""
    pos = 0
    tokens = []
    for m in _TOKEN.finditer(template):
        text = template[pos:m.start()]
        if m.group(0).startswith("{{-"):
            text = text.rstrip()
        tokens.append(("text", text))
        tokens.append(("action", m.group(1).strip()))
        pos = m.end()
        if m.group(0).endswith("-}}"):
            rest = template[pos:]
            pos += len(rest) - len(rest.lstrip())
    tokens.append(("text", template[pos:]))

    out = []
    stack = []  # (emitting before this block, condition taken)

    def emitting():
        return all(s[0] for s in stack)

    for kind, value in tokens:
        if kind == "text":
            if emitting():
                out.append(value)
            continue
        field = re.fullmatch(r"\.(\w+)", value)
        cond = re.fullmatch(r"if\s+\.(\w+)", value)
        if field:
            if emitting():
                out.append(str(values.get(field.group(1)) or ""))
        elif cond:
            taken = bool(values.get(cond.group(1)))
            stack.append([taken, taken])
        elif value == "else":
            if not stack:
                raise TemplateError("else without if")
            stack[-1][0] = not stack[-1][1]
        elif value == "end":
            if not stack:
                raise TemplateError("end without if")
            stack.pop()
        elif value.startswith("/*"):
            continue
        else:
            raise TemplateError(f"unsupported template action {{{{ {value} }}}}")
    if stack:
        raise TemplateError("if without end")
    return "".join(out)
