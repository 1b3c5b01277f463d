"""Validation of Responses API requests against the Open Responses specification.

The bounds and types are those of the specification's OpenAPI document (openresponses.org,
2026-04-24: ``CreateResponseBody``, ``CompactResponseMethodPublicBody`` and the item and tool
parameters they name): temperature 0..2, top_p 0..1, max_output_tokens >= 16, max_tool_calls >= 1,
top_logprobs 0..20, strings of at most 64 characters for safety_identifier and prompt_cache_key,
at most 16 metadata pairs, the enums as listed. Checked here, before anything reaches a runner, a
request the specification makes invalid is answered 400 in OpenAI's error shape, with the
``param`` at fault and a ``code`` as OpenAI's API names it, rather than answered anyway.

Some valid requests ask for what a local runner cannot do (``background``, ``truncation: "auto"``,
``item_reference`` items, hosted tools other than web search, see ``tools``); those are 400 too,
saying so.

The type and bound checks themselves (``number``, ``string``, ...) and ``RequestError`` are the
plugin's ``params``, shared with the chat routes' bounds.
"""

import json
import re

from modelrunner import parse_json

from ..params import RequestError, boolean, number, obj, string, type_error
from .tools import DECLINABLE, flat_name

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

INCLUDE = ("reasoning.encrypted_content", "message.output_text.logprobs")
SERVICE_TIERS = ("auto", "default", "flex", "priority")
EFFORTS = ("none", "low", "medium", "high", "xhigh")
SUMMARIES = ("concise", "detailed", "auto")
VERBOSITY = ("low", "medium", "high")
CHOICES = ("none", "auto", "required")
ROLES = ("user", "assistant", "system", "developer")
CALL_ITEMS = ("function_call", "function_call_output", "custom_tool_call",
              "custom_tool_call_output")

# Not in the specification, or not doable by a local runner: named so the client knows.
UNSUPPORTED = ("conversation", "prompt")


def read_json(req):
    """The request's body as a JSON value (the Responses API checks its shape itself, in
    OpenAI's words); not JSON, or nested too deeply: a 400."""
    try:
        return parse_json(req.bounded_stream.read() or b"")
    except ValueError as e:
        raise RequestError(f"invalid JSON body: {e}") from None


def runner_json(answer):
    """A runner's whole (successful) answer as JSON; 502 when it is not."""
    try:
        return json.loads(answer.read() or b"{}")
    except ValueError:
        raise RequestError("the runner's answer is not JSON", status=502) from None


def unsupported(param, what=None):
    return RequestError(f"{what or param} is not supported by this server", param,
                        code="unsupported_parameter")


# -- the request body ---------------------------------------------------------------------------


def validate(data):
    """Raise ``RequestError`` for a request body the specification (or this server) refuses."""
    if not isinstance(data, dict):
        raise RequestError("the body must be a JSON object")
    if not data.get("model"):
        raise RequestError("model is required", "model", code="missing_required_parameter")
    string(data, "model")
    for field in UNSUPPORTED:
        if data.get(field) is not None:
            raise unsupported(field)
    _input(data)
    string(data, "instructions")
    string(data, "previous_response_id")
    _include(data)
    tools = _tools(data.get("tools"))
    _tool_choice(data.get("tool_choice"), tools)
    _metadata(data.get("metadata"))
    _text(data.get("text"))
    number(data, "temperature", 0, 2)
    number(data, "top_p", 0, 1)
    number(data, "presence_penalty")
    number(data, "frequency_penalty")
    boolean(data, "parallel_tool_calls")
    boolean(data, "stream")
    options = obj(data, "stream_options")
    boolean(options, "include_obfuscation")
    boolean(data, "background")
    if data.get("background"):
        raise unsupported("background", "background mode")
    number(data, "max_output_tokens", 16, integer=True)
    number(data, "max_tool_calls", 1, integer=True)
    reasoning = obj(data, "reasoning")
    string(reasoning, "effort", values=EFFORTS)
    string(reasoning, "summary", values=SUMMARIES)
    string(data, "safety_identifier", 64)
    string(data, "prompt_cache_key", 64)
    string(data, "truncation", values=("auto", "disabled"))
    if data.get("truncation") == "auto":
        raise RequestError('truncation "auto" is not supported; only "disabled" is',
                           "truncation", code="unsupported_value")
    boolean(data, "store")
    string(data, "service_tier", values=SERVICE_TIERS)
    number(data, "top_logprobs", 0, 20, integer=True)


def validate_compact(data):
    """A ``POST .../responses/compact`` body (``CompactResponseMethodPublicBody``)."""
    if not isinstance(data, dict):
        raise RequestError("the body must be a JSON object")
    if not data.get("model"):
        raise RequestError("model is required", "model", code="missing_required_parameter")
    string(data, "model")
    _input(data)
    string(data, "instructions")
    string(data, "previous_response_id")
    string(data, "prompt_cache_key", 64)


def _input(data):
    value = data.get("input")
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, list):
        raise type_error("input", "a string or an array of items", value)
    for i, item in enumerate(value):
        _item(item, f"input[{i}]")


def _item(item, param):
    if not isinstance(item, dict):
        raise type_error(param, "an object", item)
    kind = item.get("type") or ("message" if "role" in item else None)
    if kind == "message":
        role = item.get("role")
        if role not in ROLES:
            raise RequestError(f"Invalid value for '{param}.role': {role!r}. Supported values "
                               "are: 'user', 'assistant', 'system' and 'developer'.",
                               f"{param}.role", code="invalid_value")
        content = item.get("content")
        if not isinstance(content, (str, list)):
            raise type_error(f"{param}.content", "a string or an array of content parts",
                              content)
    elif kind in CALL_ITEMS:
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not 1 <= len(call_id) <= 64:
            raise RequestError(f"Invalid '{param}.call_id': a string of 1 to 64 characters is "
                               "required.", f"{param}.call_id", code="invalid_value")
        if kind in ("function_call", "custom_tool_call"):
            if not isinstance(item.get("name"), str) or not NAME_RE.match(item["name"]):
                raise RequestError(f"Invalid '{param}.name': 1 to 64 letters, digits, '_' or "
                                   "'-' are required.", f"{param}.name", code="invalid_value")
            string(item, "namespace")
            field = "arguments" if kind == "function_call" else "input"
            if not isinstance(item.get(field), str):
                raise type_error(f"{param}.{field}", "a string", item.get(field))
        elif not isinstance(item.get("output"), (str, list)):
            raise type_error(f"{param}.output", "a string or an array of content parts",
                              item.get("output"))
    elif kind == "compaction":
        if not isinstance(item.get("encrypted_content"), str):
            raise type_error(f"{param}.encrypted_content", "a string",
                              item.get("encrypted_content"))
    elif kind == "reasoning":
        pass
    elif kind == "item_reference":
        raise unsupported(param, "item_reference input items")
    else:
        raise RequestError(f"input items of type {kind!r} are not supported", param,
                           code="invalid_value")


def _include(data):
    value = data.get("include")
    if value is None:
        return
    if not isinstance(value, list):
        raise type_error("include", "an array", value)
    for i, entry in enumerate(value):
        if entry not in INCLUDE:
            raise RequestError(f"Invalid value for 'include[{i}]': {entry!r}. Supported values "
                               "are: " + ", ".join(repr(v) for v in INCLUDE) + ".",
                               f"include[{i}]", code="invalid_value")


def _tools(tools):
    """The chat function names the request's tools become (``tools`` checked: function and
    custom tools, namespaces of them, and hosted tools as ``tools`` describes)."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise type_error("tools", "an array", tools)
    names = []
    for i, tool in enumerate(tools):
        param = f"tools[{i}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or not isinstance(kind, str):
            raise type_error(param, "a tool object with a type", tool)
        if kind in ("function", "custom"):
            names.append(_tool(tool, param))
        elif kind == "namespace":
            names.extend(_namespace(tool, param))
        elif kind not in DECLINABLE:
            raise RequestError(f"tools of type {kind!r} are not supported by this server (it "
                               "runs function, custom and namespace tools; web_search is left "
                               "to the model to decline)", param, code="unsupported_value")
    return names


def _name(tool, param):
    name = tool.get("name")
    if name is None and isinstance(tool.get("function"), dict):  # chat-completions style
        name = tool["function"].get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RequestError(f"Invalid '{param}.name': 1 to 64 letters, digits, '_' or '-' "
                           "are required.", f"{param}.name", code="invalid_value")
    return name


def _tool(tool, param, namespace=None):
    """A function or custom tool (``FunctionToolParam``, ``CustomToolParam``); its flat name."""
    name = _name(tool, param)
    string(tool, "description")
    if tool["type"] == "custom":
        fmt = tool.get("format")
        if fmt is not None and not (isinstance(fmt, dict)
                                    and fmt.get("type") in ("text", "grammar")):
            raise RequestError(f"Invalid '{param}.format': a text or grammar format is "
                               "required.", f"{param}.format", code="invalid_value")
    elif tool.get("parameters") is not None and not isinstance(tool["parameters"], dict):
        raise type_error(f"{param}.parameters", "an object", tool["parameters"])
    boolean(tool, "strict")
    return flat_name(name, namespace)


def _namespace(tool, param):
    """A ``namespace`` tool: a name and its function and custom tools."""
    namespace = _name(tool, param)
    members = tool.get("tools")
    if not isinstance(members, list) or not members:
        raise RequestError(f"Invalid '{param}.tools': a namespace needs an array of function "
                           "or custom tools.", f"{param}.tools", code="invalid_value")
    names = []
    for j, member in enumerate(members):
        where = f"{param}.tools[{j}]"
        if not isinstance(member, dict) or member.get("type") not in ("function", "custom"):
            raise RequestError(f"Invalid '{where}': a namespace holds only function and custom "
                               "tools.", where, code="invalid_value")
        names.append(_tool(member, where, namespace))
    return names


def _choice_name(choice):
    """The chat function a ``{"type": "function" | "custom", ...}`` choice names (Responses or
    chat style; a namespace's member by its ``namespace``)."""
    return flat_name(choice.get("name") or (choice.get("function") or {}).get("name"),
                     choice.get("namespace"))


def _tool_choice(choice, tools):
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in CHOICES:
            raise RequestError(f"Invalid value for 'tool_choice': {choice!r}. Supported values "
                               "are: 'none', 'auto' and 'required'.", "tool_choice",
                               code="invalid_value")
        if choice == "required" and not tools:
            raise RequestError("tool_choice \"required\" needs at least one tool in 'tools'",
                               "tool_choice", code="invalid_value")
        return
    if not isinstance(choice, dict):
        raise type_error("tool_choice", "a string or an object", choice)
    if choice.get("type") in ("function", "custom"):
        name = _choice_name(choice)
        if name not in tools:
            raise RequestError(f"tool_choice names the function {name!r}, which is not in "
                               "'tools'", "tool_choice", code="invalid_value")
    elif choice.get("type") == "allowed_tools":
        allowed = choice.get("tools")
        if not isinstance(allowed, list) or not 1 <= len(allowed) <= 128:
            raise RequestError("tool_choice.tools must list 1 to 128 tools", "tool_choice.tools",
                               code="invalid_value")
        for entry in allowed:
            if not isinstance(entry, dict) or entry.get("type") not in ("function", "custom"):
                raise RequestError("tool_choice.tools may name only function and custom tools",
                                   "tool_choice.tools", code="invalid_value")
            if _choice_name(entry) not in tools:
                raise RequestError(f"tool_choice.tools names the function "
                                   f"{_choice_name(entry)!r}, which is not in 'tools'",
                                   "tool_choice.tools", code="invalid_value")
        string(choice, "mode", values=CHOICES)
        if choice.get("mode") == "required" and not allowed:
            raise RequestError("mode \"required\" needs at least one allowed tool",
                               "tool_choice.mode", code="invalid_value")
    else:
        raise RequestError("tool_choice must be 'none', 'auto', 'required', a function or "
                           "allowed_tools", "tool_choice", code="invalid_value")


def _metadata(metadata):
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise type_error("metadata", "an object", metadata)
    if len(metadata) > 16:
        raise RequestError("Invalid 'metadata': at most 16 key-value pairs are allowed.",
                           "metadata", code="object_above_max_properties")
    for key, value in metadata.items():
        if len(key) > 64:
            raise RequestError(f"Invalid 'metadata': the key {key[:16]!r}... is longer than 64 "
                               "characters.", "metadata", code="invalid_value")
        string(metadata, key, 512)


def _text(text):
    if text is None:
        return
    if not isinstance(text, dict):
        raise type_error("text", "an object", text)
    string(text, "verbosity", values=VERBOSITY)
    fmt = text.get("format")
    if fmt is None:
        return
    if not isinstance(fmt, dict):
        raise type_error("text.format", "an object", fmt)
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        return
    if kind != "json_schema":
        raise RequestError(f"Invalid value for 'text.format.type': {kind!r}. Supported values "
                           "are: 'text', 'json_schema' and 'json_object'.", "text.format.type",
                           code="invalid_value")
    if not isinstance(fmt.get("schema"), dict):
        raise RequestError("Missing required parameter: 'text.format.schema' (a JSON schema "
                           "object).", "text.format.schema", code="missing_required_parameter")
    if fmt.get("name") is not None and not (isinstance(fmt["name"], str)
                                            and NAME_RE.match(fmt["name"])):
        raise RequestError("Invalid 'text.format.name': 1 to 64 letters, digits, '_' or '-' are "
                           "required.", "text.format.name", code="invalid_value")
    string(fmt, "description")
    boolean(fmt, "strict")


# -- the conversation ---------------------------------------------------------------------------


def check_tool_outputs(messages):
    """Every tool result answers a call made earlier in the conversation (chat messages)."""
    calls = set()
    for message in messages:
        for call in message.get("tool_calls") or []:
            calls.add(call.get("id"))
        if message.get("role") == "tool" and message.get("tool_call_id") not in calls:
            raise RequestError(f"No tool call found for function call output with call_id "
                               f"{message.get('tool_call_id')!r}.", "input",
                               code="invalid_value")


def page_params(params):
    """(limit, order, after) of GET .../input_items, checked: limit 1..100 (default 20), order
    ``asc`` or ``desc`` (default, newest first), after an item id."""
    limit = params.get("limit")
    if limit is None:
        limit = 20
    else:
        try:
            limit = int(limit)
        except ValueError:
            raise type_error("limit", "an integer", limit) from None
        number({"limit": limit}, "limit", 1, 100, integer=True)
    order = params.get("order") or "desc"
    string({"order": order}, "order", values=("asc", "desc"))
    return limit, order, params.get("after") or None


def previous_response(store, data):
    """The stored response ``previous_response_id`` names, None when the request names none;
    404 when it is unknown or expired."""
    response_id = data.get("previous_response_id")
    if not response_id:
        return None
    previous = store.get(response_id)
    if previous is None:
        raise RequestError(f"previous response {response_id!r} not found (responses are kept "
                           "for 1 hour)", "previous_response_id", status=404,
                           code="previous_response_not_found")
    return previous
