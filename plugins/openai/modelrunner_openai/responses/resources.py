"""The Responses API (Open Responses specification, 2026-04-24), translated to chat completions.

    POST   {/responses, /v1/responses, /engines/responses, /engines/v1/responses,
            /engines/{engine}/v1/responses}
    POST   .../responses/compact          see ``compact``
    GET    .../responses/{id}             the stored response
    GET    .../responses/{id}/input_items  paged: limit (1..100, 20), order (desc), after
    DELETE .../responses/{id}

A request is checked against the specification (``validation``), then becomes one
``/v1/chat/completions`` call to the runner: ``instructions`` is the system message; ``input`` (a
string, or items, see ``items``) becomes the messages; function tools (flat, as the
Responses API writes them) become chat tools, narrowed to an ``allowed_tools`` choice's list;
``text.format`` becomes ``response_format``; ``max_output_tokens`` becomes ``max_tokens``; the
sampling numbers in force are always sent (``objects.sampling``), so that the response
can say which were used. The answer is turned back into a ``response`` object
(``objects``), or, when streaming, the runner's chat chunks are turned into the
specification's events as they arrive, ending with ``data: [DONE]``.

Responses are stateless unless ``previous_response_id`` names an earlier one: each stored response
keeps the whole conversation (messages, without the instructions, which are not carried over) for
one hour (``store``). With ``store: false`` nothing is kept.
"""

import json
import time
from pathlib import Path

from modelrunner import ContextExceeded, StreamError, Unsupported, caller, sse_events

from ..forced_tools import ForcedCallAnswer, ToolChoiceError, constrained_request, forced_functions
from ..params import RequestError
from .compact import CompactResource
from .items import input_items, items_to_messages, new_id, stored_input_items
from .objects import (assistant_message, base_response, chat_to_response, convert_logprobs, finish,
                      function_item, message_item, output_text_part, reasoning_item, sampling,
                      wants_logprobs)
from .store import ResponseStore
from .validation import (check_tool_outputs, page_params, previous_response, read_json,
                         runner_json, validate)

# Chat-completion sampling fields passed through when a client sends them as extra body fields.
PASSTHROUGH = ("seed", "stop", "top_k", "min_p", "repeat_penalty", "logit_bias")


# -- request translation ------------------------------------------------------------------------


def convert_tools(tools):
    """Responses function tools (flat) as chat tools; the request was validated."""
    out = []
    for tool in tools or []:
        fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
        function = {"name": fn["name"]}
        for key in ("description", "parameters", "strict"):
            if fn.get(key) is not None:
                function[key] = fn[key]
        out.append({"type": "function", "function": function})
    return out


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
        names = {t.get("name") or (t.get("function") or {}).get("name") for t in choice["tools"]}
        return ([t for t in tools if t["function"]["name"] in names],
                choice.get("mode") or "auto")
    name = choice.get("name") or (choice.get("function") or {}).get("name")
    return tools, {"type": "function", "function": {"name": name}}


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
    body = {"model": data["model"], "messages": messages, **sampling(data)}
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


# -- streaming ----------------------------------------------------------------------------------


class EventStream:
    """Turns the runner's chat.completion.chunk SSE into the specification's events (SSE bytes).

    Items are opened as the model starts them and closed when the next text item starts or at the
    end; at the end the last item is ``incomplete`` when the model was cut off. A runner failure
    ends the stream with an ``error`` event and ``response.failed``. The last line is
    ``data: [DONE]``.
    """

    def __init__(self, response, answer, on_done, logprobs=False):
        self.response = response
        self.answer = answer
        self.on_done = on_done
        self.logprobs = logprobs
        self.seq = 0
        self.open_item = None      # ("message"|"reasoning", output index)
        self.calls = {}            # chat tool_call index -> output index
        self.items = response["output"]
        self.finish_reason = None
        self.usage = None
        self.failed = None

    def event(self, kind, **fields):
        payload = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()

    def snapshot(self):
        return json.loads(json.dumps(self.response))

    def __iter__(self):
        try:
            yield self.event("response.created", response=self.snapshot())
            yield self.event("response.in_progress", response=self.snapshot())
            for data in self._chunks():
                yield from self._on_chunk(data)
            if self.failed:
                yield from self._fail()
            else:
                yield from self._close_all()
                finish(self.response, self.finish_reason, self.usage)
                self.on_done(self.response)
                kind = "response.incomplete" if self.response["status"] == "incomplete" else \
                    "response.completed"
                yield self.event(kind, response=self.snapshot())
            yield b"data: [DONE]\n\n"
        finally:
            self.answer.close()

    def _fail(self):
        message = self.failed
        self.response["status"] = "failed"
        self.response["error"] = {"code": "server_error", "message": message}
        # The specification's ErrorPayload under "error", and OpenAI's flat fields beside it.
        yield self.event("error", error={"type": "server_error", "code": "server_error",
                                         "message": message, "param": None},
                         code="server_error", message=message, param=None)
        yield self.event("response.failed", response=self.snapshot())

    def _chunks(self):
        """The runner's events; a runner error (or death) ends them and marks the stream failed."""
        try:
            yield from sse_events(self.answer)
        except StreamError as e:
            self.failed = str(e)

    def _open(self, kind):
        """Open a message or reasoning item (closing another open one); yields events."""
        if self.open_item and self.open_item[0] == kind:
            return
        if self.open_item:
            yield from self._close(self.open_item[1], "completed")
        index = len(self.items)
        if kind == "message":
            item = message_item(new_id("msg"), None, status="in_progress")
        else:
            item = reasoning_item(new_id("rs"), None, status="in_progress")
        self.items.append(item)
        self.open_item = (kind, index)
        yield self.event("response.output_item.added", output_index=index,
                         item=json.loads(json.dumps(item)))
        if kind == "message":
            item["content"].append(output_text_part(""))
            yield self.event("response.content_part.added", item_id=item["id"],
                             output_index=index, content_index=0, part=output_text_part(""))
        else:
            item["content"].append({"type": "reasoning_text", "text": ""})

    def _close(self, index, status):
        """Close the item at ``index`` with ``status``; yields its done events."""
        item = self.items[index]
        item["status"] = status
        if item["type"] == "message":
            self.open_item = None
            part = item["content"][0]
            yield self.event("response.output_text.done", item_id=item["id"], output_index=index,
                             content_index=0, text=part["text"], logprobs=part["logprobs"])
            yield self.event("response.content_part.done", item_id=item["id"],
                             output_index=index, content_index=0, part=dict(part))
        elif item["type"] == "reasoning":
            self.open_item = None
            yield self.event("response.reasoning.done", item_id=item["id"], output_index=index,
                             content_index=0, text=item["content"][0]["text"])
        else:
            yield self.event("response.function_call_arguments.done", item_id=item["id"],
                             output_index=index, name=item["name"], arguments=item["arguments"])
        yield self.event("response.output_item.done", output_index=index, item=item)

    def _close_all(self):
        """Close what is still open, in output order; the last item is ``incomplete`` when the
        model was cut off (it is the one the model was writing)."""
        open_indexes = sorted(set(self.calls.values())
                              | ({self.open_item[1]} if self.open_item else set()))
        cut_off = self.finish_reason in ("length", "content_filter")
        for index in open_indexes:
            last = index == len(self.items) - 1
            yield from self._close(index, "incomplete" if cut_off and last else "completed")
        self.calls = {}

    def _on_chunk(self, data):
        if data.get("usage"):
            self.usage = data["usage"]
        for choice in data.get("choices") or []:
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                yield from self._open("reasoning")
                index = self.open_item[1]
                item = self.items[index]
                item["content"][0]["text"] += delta["reasoning_content"]
                yield self.event("response.reasoning.delta", item_id=item["id"],
                                 output_index=index, content_index=0,
                                 delta=delta["reasoning_content"])
            if delta.get("content"):
                yield from self._open("message")
                index = self.open_item[1]
                item = self.items[index]
                part = item["content"][0]
                part["text"] += delta["content"]
                logprobs = convert_logprobs(choice.get("logprobs")) if self.logprobs else []
                part["logprobs"].extend(logprobs)
                yield self.event("response.output_text.delta", item_id=item["id"],
                                 output_index=index, content_index=0, delta=delta["content"],
                                 logprobs=logprobs)
            for call in delta.get("tool_calls") or []:
                yield from self._on_call(call)

    def _on_call(self, call):
        key = call.get("index", 0)
        fn = call.get("function") or {}
        if key not in self.calls:
            limit = self.response.get("max_tool_calls")
            if limit and len(self.calls) >= limit:
                return  # past max_tool_calls: the call is dropped
            if self.open_item:
                yield from self._close(self.open_item[1], "completed")
            index = len(self.items)
            item = function_item(new_id("fc"), call.get("id") or new_id("call"),
                                 fn.get("name") or "", "", status="in_progress")
            self.items.append(item)
            self.calls[key] = index
            yield self.event("response.output_item.added", output_index=index, item=dict(item))
        index = self.calls[key]
        item = self.items[index]
        if fn.get("name") and not item["name"]:
            item["name"] = fn["name"]
        if fn.get("arguments"):
            item["arguments"] += fn["arguments"]
            yield self.event("response.function_call_arguments.delta", item_id=item["id"],
                             output_index=index, delta=fn["arguments"])


# -- resources ----------------------------------------------------------------------------------


class ResponsesResource:
    """POST .../responses."""

    scope = "inference"  # API keys: inference keys may use it (modelrunner.trust)
    dialect = "openai"  # every error raised here is rendered in OpenAI's shape

    def __init__(self, runtime, store):
        self.runtime = runtime
        self.store = store

    def on_post(self, req, resp, engine=None):
        data = read_json(req)
        stored = self.store.for_caller(caller(req))  # a key sees only its own responses
        validate(data)
        previous = previous_response(stored, data)
        body, conversation, items = build_chat_request(data, previous)
        runtime = self.runtime
        model = data["model"]
        if (req.get_header("X-Preload-Only") or "").lower() == "true":
            runtime.preload(model, engine, "completion")
            resp.media = {"status": "loaded", "model": model}
            return
        try:
            forced = forced_functions(body)
        except ToolChoiceError as e:
            raise RequestError(str(e), "tool_choice") from None
        if forced:
            body = constrained_request(body, forced)
        # images the model cannot read, a prompt over its context, a runner's error: raised by
        # the gateway (images of a previous response count too: ``body`` is the whole chat)
        try:
            answer = runtime.open(model, "/v1/chat/completions", json.dumps(body).encode(),
                                  engine=engine, request=req)
        except (Unsupported, ContextExceeded) as e:
            e.param = "input"  # what a chat calls messages, the Responses API calls input
            raise
        if forced:
            answer = ForcedCallAnswer(answer)

        response = base_response(new_id("resp"), data, int(time.time()))
        store = data.get("store", True) is not False

        def keep(done):
            if store:
                stored.put({"response": done,
                            "messages": conversation + [assistant_message(done)],
                            "input_items": stored_input_items(items)})

        if data.get("stream"):
            if not answer.streaming:  # the runner answered at once (should not happen)
                answer.close()
                raise RequestError("the runner did not stream its answer", status=502)
            resp.content_type = "text/event-stream"
            resp.set_header("Cache-Control", "no-cache")
            resp.set_header("X-Accel-Buffering", "no")
            resp.stream = iter(EventStream(response, answer, keep, wants_logprobs(data)))
            return
        chat_to_response(response, runner_json(answer), wants_logprobs(data))
        keep(response)
        resp.media = response


def not_found(response_id):
    return RequestError(f"response {response_id!r} not found", status=404)


class ResponseResource:
    """GET / DELETE .../responses/{id}."""
    scope = "inference"  # API keys: inference keys may use it (modelrunner.trust)
    dialect = "openai"

    def __init__(self, store):
        self.store = store

    def on_get(self, req, resp, response_id, engine=None):
        record = self.store.for_caller(caller(req)).get(response_id)
        if record is None:
            raise not_found(response_id)
        resp.media = record["response"]

    def on_delete(self, req, resp, response_id, engine=None):
        if not self.store.for_caller(caller(req)).delete(response_id):
            raise not_found(response_id)
        resp.media = {"id": response_id, "object": "response.deleted", "deleted": True}


class InputItemsResource:
    """GET .../responses/{id}/input_items: the response's input items, a page at a time.

    ``order`` desc (newest first, the default) or asc; ``limit`` 1..100 (20); ``after`` the id
    of the item the page starts after, in that order; ``has_more`` says whether items follow.
    """

    scope = "inference"  # API keys: inference keys may use it (modelrunner.trust)
    dialect = "openai"

    def __init__(self, store):
        self.store = store

    def on_get(self, req, resp, response_id, engine=None):
        limit, order, after = page_params(req.params)
        record = self.store.for_caller(caller(req)).get(response_id)
        if record is None:
            raise not_found(response_id)
        items = list(record.get("input_items") or [])
        if order == "desc":
            items.reverse()
        if after is not None:
            ids = [item.get("id") for item in items]
            if after not in ids:
                raise RequestError(f"no input item {after!r} in response {response_id!r}",
                                   "after", code="invalid_value")
            items = items[ids.index(after) + 1:]
        page = items[:limit]
        resp.media = {"object": "list", "data": page,
                      "first_id": page[0].get("id") if page else None,
                      "last_id": page[-1].get("id") if page else None,
                      "has_more": len(items) > limit}


PREFIXES = ("/responses", "/v1/responses", "/engines/responses", "/engines/v1/responses",
            "/engines/{engine}/v1/responses")


def register(app, runtime):
    models_path = runtime.settings.get("models_path", None)
    store = ResponseStore(Path(str(models_path)) / "responses" if models_path else None,
                          max_bytes=int(runtime.settings.get("responses_max_bytes", 1 << 30)))
    for prefix in PREFIXES:
        app.add_route(prefix, ResponsesResource(runtime, store))
        app.add_route(prefix + "/compact", CompactResource(runtime, store))
        app.add_route(prefix + "/{response_id}", ResponseResource(store))
        app.add_route(prefix + "/{response_id}/input_items", InputItemsResource(store))
    return store


__all__ = ["register"]
