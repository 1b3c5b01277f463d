"""A Responses request as one ``/v1/chat/completions`` request to the runner.

``instructions`` is the system message; ``input`` (a string, or items, see ``items``) becomes the
messages, after the previous response's conversation; function, custom and namespace tools become
chat functions (``tools``; hosted web search is left out), narrowed to an ``allowed_tools``
choice's list; ``text.format`` becomes ``response_format``; ``max_output_tokens`` becomes
``max_tokens``. Only the sampling numbers the request names are sent: a model configured with
its own (``model configure MODEL -- --temp 0``) keeps them when a client names none (Codex sends
no temperature; forcing the API's default 1.0 on the runner made a small model configured greedy
loop to the output limit). The response echoes the API's defaults for the rest
(``objects.sampling``), as its schema requires numbers.
"""

from ..params import RequestError
from .items import input_items, items_to_messages
from .objects import DEFAULT_SAMPLING, wants_logprobs
from .tools import ToolMap, flat_name
from .validation import check_tool_outputs

# Chat-completion sampling fields passed through when a client sends them as extra body fields.
PASSTHROUGH = ("seed", "stop", "top_k", "min_p", "repeat_penalty", "logit_bias")


def convert_tools(tools):
    """Responses tools as chat tools (``tools.ToolMap``); the request was validated."""
    return ToolMap(tools).chat_tools()


def chat_tools(data):
    """(chat tools, chat tool_choice) for a request's tools and tool_choice.

    An ``allowed_tools`` choice offers the model only the allowed functions, with its mode as the
    choice: the specification requires a call outside the list to be impossible, and a tool the
    runner is not given cannot be called. A named function becomes chat's named choice, which
    ``forced_tools`` makes hold.
    """
    tools = convert_tools(data.get("tools"))
    choice = data.get("tool_choice")
    if not tools or choice is None or isinstance(choice, str):
        return tools, choice
    if choice.get("type") == "allowed_tools":
        names = {_choice_name(t) for t in choice["tools"]}
        return ([t for t in tools if t["function"]["name"] in names],
                choice.get("mode") or "auto")
    return tools, {"type": "function", "function": {"name": _choice_name(choice)}}


def _choice_name(choice):
    """The chat function a function or custom choice names (a namespace's member flat)."""
    return flat_name(choice.get("name") or (choice.get("function") or {}).get("name"),
                     choice.get("namespace"))


def convert_text_format(text):
    fmt = text.get("format") if isinstance(text, dict) else None
    if not fmt or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    schema = {"name": fmt.get("name") or "response", "schema": fmt["schema"]}
    if fmt.get("strict") is not None:
        schema["strict"] = fmt["strict"]
    if fmt.get("description"):
        schema["description"] = fmt["description"]
    return {"type": "json_schema", "json_schema": schema}


def build_chat_request(data, previous):
    """(chat body, conversation messages without the system instructions, new input items)."""
    history = list(previous["messages"]) if previous else []
    items = input_items(data.get("input"))
    conversation = history + items_to_messages(items)
    check_tool_outputs(conversation)
    messages = list(conversation)
    if data.get("instructions"):
        messages.insert(0, {"role": "system", "content": data["instructions"]})
    if not messages:
        raise RequestError("input is required", "input", code="missing_required_parameter")
    body = {"model": data["model"], "messages": messages}
    body.update({key: data[key] for key in DEFAULT_SAMPLING if data.get(key) is not None})
    if data.get("max_output_tokens") is not None:
        body["max_tokens"] = data["max_output_tokens"]
    if data.get("parallel_tool_calls") is not None:
        body["parallel_tool_calls"] = data["parallel_tool_calls"]
    for key in PASSTHROUGH:
        if data.get(key) is not None:
            body[key] = data[key]
    tools, choice = chat_tools(data)
    if tools:
        body["tools"] = tools
        if choice is not None:
            body["tool_choice"] = choice
    fmt = convert_text_format(data.get("text"))
    if fmt:
        body["response_format"] = fmt
    reasoning = data.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort"):
        body["reasoning_effort"] = reasoning["effort"]
    if wants_logprobs(data):
        body["logprobs"] = True
        body["top_logprobs"] = data.get("top_logprobs") or 0
    if data.get("stream"):
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body, conversation, items
