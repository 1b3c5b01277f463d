"""Forced tool calls, made to hold on runners that only loosely keep them.

A dialect whose client forces a tool call (OpenAI's ``tool_choice: "required"`` or a named
function, Anthropic's ``any`` or a named tool) cannot rely on llama-server (0c1e570, the one in
llama-cpp-python 0.3.36): it reads ``tool_choice`` only as a string, so a named function silently
becomes "auto", and its "required" grammar lets the model write prose up to the tool-call marker.
So the dialect sends a ``response_format`` JSON schema whose only valid answers are one call,
``{"name": <an allowed tool>, <arguments_key>: <that tool's parameters>}``, and reads the answer
back as a call with :func:`parse_call`. An answer cut off by max_tokens is not valid JSON and
parses to None.
"""

from .bodies import parse_json


def call_schema(tools, arguments_key="arguments"):
    """The JSON schema of one call to any of ``tools``: ``(name, parameters schema)`` pairs."""
    calls = [{"type": "object",
              "properties": {"name": {"const": name},
                             arguments_key: parameters or {"type": "object"}},
              "required": ["name", arguments_key], "additionalProperties": False}
             for name, parameters in tools]
    return calls[0] if len(calls) == 1 else {"anyOf": calls}


def call_format(tools, arguments_key="arguments", name="tool_call"):
    """The chat request's ``response_format`` that holds the answer to one call of ``tools``."""
    return {"type": "json_schema",
            "json_schema": {"name": name, "strict": True,
                            "schema": call_schema(tools, arguments_key)}}


def parse_call(text, arguments_key="arguments"):
    """``(name, arguments dict)`` from a constrained answer, or None if it is not a call."""
    text = (text or "").strip()
    if text.startswith("```"):  # llama.cpp's response-format parser allows a ```json fence
        text = text.removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        call = parse_json(text)  # a model's text: nested too deeply is a ValueError too
    except ValueError:
        return None
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return None
    arguments = call.get(arguments_key)
    return call["name"], arguments if isinstance(arguments, dict) else {}


# the names the public API (``modelrunner``) gives them
forced_call_schema = call_schema
parse_forced_call = parse_call
