"""Responses tools as the runner's chat functions, and the model's calls back as Responses items.

A runner knows one kind of tool, the chat function. The Responses API has more, and coding agents
send them (Codex CLI 0.171's first request has a ``namespace`` and a ``web_search`` tool):

- ``function``: a chat function of the same name.
- ``namespace`` (a group of function and custom tools under a name, as OpenAI's
  ``NamespaceToolParam``): each member becomes a chat function named ``<namespace>.<name>``; a
  call to it is answered as OpenAI answers it, an item with the member's ``name`` and the
  ``namespace`` beside it. A plain function name cannot hold a ``.`` (1 to 64 letters, digits,
  ``_`` or ``-``), so the flat names never clash with a top-level function.
- ``custom`` (freeform: the model writes the tool's input as plain text): a chat function with one
  string argument, ``input``; a call to it is answered as a ``custom_tool_call`` item whose
  ``input`` is that string. A grammar ``format`` (lark or regex) is not enforced: a local runner
  has no lark engine; the format's definition is given to the model in the description.
- Hosted tools, which OpenAI's servers run themselves. ``web_search`` (and its dated and preview
  names) is an offer the model may decline; a server with no search engine answers as a model
  that chose not to search, so the tool is left out of what the model is offered (Codex sends it
  on every request). Every other hosted type (``file_search``, ``code_interpreter``,
  ``image_generation``, ``mcp``, ``computer_use_preview``, ``local_shell``, ``shell``,
  ``apply_patch``, ...) needs a service this server does not have: a 400 naming that tool
  (``tools[i]``), the rest of the request untouched by the check.

``ToolMap`` holds one request's mapping both ways; the input side (``flat_name``,
``custom_arguments``) needs only the items themselves.
"""

import json

from ..params import RequestError

NAMESPACE_SEPARATOR = "."

# Hosted tools a server without the service may leave out: the model may always decline them.
DECLINABLE = ("web_search", "web_search_preview", "web_search_2025_08_26",
              "web_search_preview_2025_03_11")

CUSTOM_PARAMETERS = {"type": "object", "additionalProperties": False, "required": ["input"],
                     "properties": {"input": {"type": "string",
                                              "description": "The tool's input, as plain text."}}}


def flat_name(name, namespace=None):
    """The chat function name of a tool ``name`` (in ``namespace``, when it has one)."""
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if namespace else name


def custom_arguments(text):
    """A custom tool's input as the arguments of the chat function that stands for it."""
    return json.dumps({"input": text if isinstance(text, str) else ""})


def custom_input(arguments):
    """The input text a model wrote as a custom tool's chat arguments (the raw text when the
    arguments are not the expected object)."""
    try:
        value = json.loads(arguments or "")
    except ValueError:
        return arguments or ""
    if isinstance(value, dict) and isinstance(value.get("input"), str):
        return value["input"]
    return arguments or ""


def _description(tool):
    description = tool.get("description")
    fmt = tool.get("format") if isinstance(tool.get("format"), dict) else {}
    if fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
        rule = f"The input must match this {fmt.get('syntax') or 'grammar'}:\n{fmt['definition']}"
        description = f"{description}\n\n{rule}" if description else rule
    return description


def _function(tool, namespace=None):
    """A function or custom tool (top-level or a namespace's member) as a chat function."""
    if tool.get("type") == "custom":
        function = {"name": flat_name(tool["name"], namespace), "parameters": CUSTOM_PARAMETERS}
        if _description(tool):
            function["description"] = _description(tool)
        return function
    fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
    function = {"name": flat_name(fn["name"], namespace)}
    for key in ("description", "parameters", "strict"):
        if fn.get(key) is not None:
            function[key] = fn[key]
    return function


class ToolMap:
    """One request's tools: the chat functions the runner is offered (``functions``), and for each
    function's name what it stands for (``kinds``: name -> (kind, namespace, name))."""

    def __init__(self, tools):
        self.functions = []
        self.kinds = {}
        for tool in tools or []:
            kind = tool.get("type")
            if kind in ("function", "custom"):
                self._add(tool)
            elif kind == "namespace":
                for member in tool.get("tools") or []:
                    self._add(member, tool["name"])

    def _add(self, tool, namespace=None):
        function = _function(tool, namespace)
        if function["name"] in self.kinds:  # the model's call could not say which one it means
            raise RequestError(f"tools: two tools are named {function['name']!r}", "tools",
                               code="invalid_value")
        self.functions.append(function)
        fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
        self.kinds[function["name"]] = (tool.get("type"), namespace, fn["name"])

    def chat_tools(self):
        return [{"type": "function", "function": dict(f)} for f in self.functions]

    def is_custom(self, name):
        return self.kinds.get(name, ("function",))[0] == "custom"

    def item(self, item_id, call_id, name, arguments, status="completed"):
        """The output item for the model's call of the chat function ``name``: a
        ``function_call`` (with its ``namespace`` when it has one) or a ``custom_tool_call``."""
        kind, namespace, short = self.kinds.get(name, ("function", None, name))
        if kind == "custom":
            item = {"id": item_id, "type": "custom_tool_call", "status": status,
                    "call_id": call_id, "name": short, "input": custom_input(arguments)}
        else:
            item = {"id": item_id, "type": "function_call", "status": status,
                    "call_id": call_id, "name": short, "arguments": arguments}
        if namespace:
            item["namespace"] = namespace
        return item
