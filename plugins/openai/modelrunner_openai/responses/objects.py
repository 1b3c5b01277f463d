"""The ``response`` object, as the Open Responses specification's ``ResponseResource`` has it.

Every field the specification requires is there, with the value in force, not a null where it
wants a value: the sampling numbers actually sent to the runner (``sampling``: the request's, else
the defaults below, which are sent too, so that what the response says is what the runner did),
``top_logprobs`` (0 unless asked), ``service_tier`` ("default": a local runner has one tier, so a
requested tier is a hint that changes nothing), the functions the model was offered as
``FunctionTool``s (``description``, ``parameters`` and ``strict`` null when not given: the
specification's ``tools`` holds only functions, see ``echo_tools``), the tool choice and text
format as the specification writes them, ``completed_at`` null until the response completes.

One field follows the published document where it departs from OpenAI's API: a ``json_schema``
text format is echoed with ``"schema": null``, the only value the 2026-04-24 document's
``JsonSchemaResponseFormat`` admits (its source schema allows any value; the published document
and the specification's own conformance suite keep only null).

Item statuses: an item the model was still writing when it ran out of ``max_output_tokens`` (or
was stopped by a content filter) is ``incomplete``, and it is the last item, in an ``incomplete``
response; every other item is ``completed``.
"""

import time

from modelrunner import cached_prompt_tokens

from .items import new_id, reasoning_text, text_of
from .tools import ToolMap, custom_arguments, flat_name

# What a response says was in force when the request names nothing: OpenAI's and the
# specification's defaults (temperature and top_p 1, no penalties). The runner is not given
# them, so a model's configured sampling holds (chat_request).
DEFAULT_SAMPLING = {"temperature": 1.0, "top_p": 1.0, "presence_penalty": 0.0,
                    "frequency_penalty": 0.0}

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def sampling(data):
    """The sampling parameters a response echoes: the request's own, else the API's defaults."""
    return {key: data[key] if data.get(key) is not None else default
            for key, default in DEFAULT_SAMPLING.items()}


def wants_logprobs(data):
    return "message.output_text.logprobs" in (data.get("include") or [])


# -- echoed request fields ----------------------------------------------------------------------


def echo_tools(tools):
    """The functions the model was offered (``tools.ToolMap``: a namespace's members under their
    flat names, a custom tool as its one-string function, hosted web search left out) as the
    specification's ``FunctionTool``s (nullable fields present)."""
    out = []
    for fn in ToolMap(tools).functions:
        out.append({"type": "function", "name": fn.get("name"),
                    "description": fn.get("description"), "parameters": fn.get("parameters"),
                    "strict": fn.get("strict")})
    return out


def _function_choice(choice):
    """A function or custom choice as a ``FunctionToolChoice`` of the echoed (flat) names."""
    return {"type": "function",
            "name": flat_name(choice.get("name") or (choice.get("function") or {}).get("name"),
                              choice.get("namespace"))}


def echo_tool_choice(choice):
    if choice is None:
        return "auto"
    if isinstance(choice, str):
        return choice
    if choice.get("type") == "allowed_tools":
        return {"type": "allowed_tools", "tools": [_function_choice(t) for t in choice["tools"]],
                "mode": choice.get("mode") or "auto"}
    return _function_choice(choice)


def echo_text(text):
    text = text if isinstance(text, dict) else {}
    fmt = text.get("format") or {"type": "text"}
    if fmt.get("type") == "json_schema":
        fmt = {"type": "json_schema", "name": fmt.get("name") or "response",
               "description": fmt.get("description"), "schema": None,
               "strict": bool(fmt.get("strict"))}
    else:
        fmt = {"type": fmt.get("type")}
    out = {"format": fmt}
    if text.get("verbosity"):
        out["verbosity"] = text["verbosity"]
    return out


def base_response(response_id, data, created):
    """The response as it stands before the model writes anything (status in_progress)."""
    reasoning = data.get("reasoning") if isinstance(data.get("reasoning"), dict) else {}
    return {
        "id": response_id, "object": "response", "created_at": created, "completed_at": None,
        "status": "in_progress", "incomplete_details": None, "model": data["model"],
        "previous_response_id": data.get("previous_response_id"),
        "instructions": data.get("instructions"), "output": [], "error": None,
        "tools": echo_tools(data.get("tools")),
        "tool_choice": echo_tool_choice(data.get("tool_choice")), "truncation": "disabled",
        "parallel_tool_calls": data.get("parallel_tool_calls") is not False,
        "text": echo_text(data.get("text")), **sampling(data),
        "top_logprobs": data.get("top_logprobs") or 0,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "usage": None, "max_output_tokens": data.get("max_output_tokens"),
        "max_tool_calls": data.get("max_tool_calls"), "store": data.get("store") is not False,
        "background": False, "service_tier": "default", "metadata": data.get("metadata") or {},
        "safety_identifier": data.get("safety_identifier"),
        "prompt_cache_key": data.get("prompt_cache_key"), "user": data.get("user"),
    }


# -- output items -------------------------------------------------------------------------------


def message_item(item_id, text, status="completed", logprobs=None):
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": [output_text_part(text, logprobs)] if text is not None else []}


def output_text_part(text, logprobs=None):
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def reasoning_item(item_id, text, status="completed"):
    return {"id": item_id, "type": "reasoning", "status": status, "summary": [],
            "content": [{"type": "reasoning_text", "text": text}] if text is not None else []}


def function_item(item_id, call_id, name, arguments, status="completed"):
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call_id,
            "name": name, "arguments": arguments}


def convert_logprobs(logprobs):
    """A chat choice's ``logprobs.content`` as the specification's ``LogProb`` list."""
    out = []
    for entry in (logprobs or {}).get("content") or []:
        out.append({"token": entry.get("token", ""), "logprob": entry.get("logprob", 0.0),
                    "bytes": entry.get("bytes") or [],
                    "top_logprobs": [{"token": top.get("token", ""),
                                      "logprob": top.get("logprob", 0.0),
                                      "bytes": top.get("bytes") or []}
                                     for top in entry.get("top_logprobs") or []]})
    return out


def convert_usage(usage, timings=None):
    """The runner's chat usage as the specification's; the prompt tokens the runner took from
    its cache (``timings``: llama-server's, for a build that says it only there) are
    ``input_tokens_details.cached_tokens``, part of ``input_tokens`` as in OpenAI's API."""
    if not usage:
        return None
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    cached = cached_prompt_tokens(usage, timings)
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    # cache_write_tokens: beyond the specification, required by the official client's types
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": usage.get("total_tokens") or prompt + completion}


def finish(response, finish_reason, usage, timings=None):
    """Set the final status (and the last item's, when the model was cut off) and the usage."""
    reason = INCOMPLETE.get(finish_reason)
    if reason:
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": reason}
        if response["output"]:
            response["output"][-1]["status"] = "incomplete"
    else:
        response["status"] = "completed"
        response["completed_at"] = int(time.time())
    response["usage"] = convert_usage(usage, timings)
    return response


def chat_to_response(response, chat, logprobs=False, tools=None):
    """Fill ``response`` from a chat completion (the runner's whole answer); ``tools`` (a
    ``ToolMap``) makes each call the item of the tool it stands for."""
    tools = tools or ToolMap(None)
    choice = (chat.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    if message.get("reasoning_content"):
        response["output"].append(reasoning_item(new_id("rs"), message["reasoning_content"]))
    if message.get("content") or not message.get("tool_calls"):
        response["output"].append(message_item(
            new_id("msg"), message.get("content") or "",
            logprobs=convert_logprobs(choice.get("logprobs")) if logprobs else None))
    calls = message.get("tool_calls") or []
    if response.get("max_tool_calls"):
        calls = calls[:response["max_tool_calls"]]
    for call in calls:
        fn = call.get("function") or {}
        response["output"].append(tools.item(new_id("fc"), call.get("id") or new_id("call"),
                                             fn.get("name") or "", fn.get("arguments") or ""))
    return finish(response, choice.get("finish_reason"), chat.get("usage"), chat.get("timings"))


def assistant_message(response):
    """The chat message the response's output amounts to, for the next turn's history."""
    text, calls, reasoning = [], [], []
    for item in response["output"]:
        if item["type"] == "message":
            text.append(text_of(item["content"]))
        elif item["type"] == "reasoning" and reasoning_text(item):
            reasoning.append(reasoning_text(item))
        elif item["type"] in ("function_call", "custom_tool_call"):
            arguments = (item["arguments"] if item["type"] == "function_call"
                         else custom_arguments(item["input"]))
            calls.append({"id": item["call_id"], "type": "function",
                          "function": {"name": flat_name(item["name"], item.get("namespace")),
                                       "arguments": arguments}})
    message = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "\n".join(reasoning)
    return message
