"""A streamed response: the runner's chat chunks turned into the specification's events.

The events (``response.created``, ``response.output_item.added``, ``response.output_text.delta``,
..., ``response.completed``) are written as they arrive, each with its ``sequence_number``; the
stream ends with ``data: [DONE]``. A custom tool's call (``tools``) is OpenAI's
``custom_tool_call`` item, its input sent in one ``response.custom_tool_call_input.delta`` when
the call ends (the model writes it as a JSON argument, which is read whole). A reasoning item's
text (the runner's ``reasoning_content``) streams as ``response.reasoning_text.delta`` and ends
with ``response.reasoning_text.done``: the names OpenAI's API, its SDKs and the Open Responses
schemas use, and the only ones Codex reads (``response.reasoning.delta`` was the specification's
draft name; a client that knows only it sees the reasoning whole in ``output_item.done``).
"""

import json

from modelrunner import StreamError, hide_paths, sse_events

from .items import new_id
from .objects import convert_logprobs, finish, message_item, output_text_part, reasoning_item
from .tools import ToolMap, custom_input


class EventStream:
    """Turns the runner's chat.completion.chunk SSE into the specification's events (SSE bytes).

    Items are opened as the model starts them and closed when the next text item starts or at the
    end; at the end the last item is ``incomplete`` when the model was cut off. A runner failure
    ends the stream with an ``error`` event and ``response.failed``. The last line is
    ``data: [DONE]``.
    """

    def __init__(self, response, answer, on_done, logprobs=False, tools=None):
        self.response = response
        self.tools = tools or ToolMap(None)  # the calls' items (namespaces, custom tools)
        self.custom_text = {}      # output index -> a custom tool call's arguments so far
        self.answer = answer
        self.on_done = on_done
        self.logprobs = logprobs
        self.seq = 0
        self.open_item = None      # ("message"|"reasoning", output index)
        self.calls = {}            # chat tool_call index -> output index
        self.items = response["output"]
        self.finish_reason = None
        self.usage = None
        self.timings = None        # llama-server's, with the last event
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
                finish(self.response, self.finish_reason, self.usage, self.timings)
                self.on_done(self.response)
                kind = "response.incomplete" if self.response["status"] == "incomplete" else \
                    "response.completed"
                yield self.event(kind, response=self.snapshot())
            yield b"data: [DONE]\n\n"
        finally:
            self.answer.close()

    def _fail(self):
        message = hide_paths(self.failed)  # no path of this machine in the event or the record
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
            yield self.event("response.reasoning_text.done", item_id=item["id"], output_index=index,
                             content_index=0, text=item["content"][0]["text"])
        elif item["type"] == "custom_tool_call":
            item["input"] = custom_input(self.custom_text.pop(index, ""))
            if item["input"]:
                yield self.event("response.custom_tool_call_input.delta", item_id=item["id"],
                                 output_index=index, delta=item["input"])
            yield self.event("response.custom_tool_call_input.done", item_id=item["id"],
                             output_index=index, input=item["input"])
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
        if data.get("timings"):
            self.timings = data["timings"]
        for choice in data.get("choices") or []:
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                yield from self._open("reasoning")
                index = self.open_item[1]
                item = self.items[index]
                item["content"][0]["text"] += delta["reasoning_content"]
                yield self.event("response.reasoning_text.delta", item_id=item["id"],
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
            item = self.tools.item(new_id("fc"), call.get("id") or new_id("call"),
                                   fn.get("name") or "", "", status="in_progress")
            self.items.append(item)
            self.calls[key] = index
            yield self.event("response.output_item.added", output_index=index, item=dict(item))
        index = self.calls[key]
        item = self.items[index]
        if fn.get("name") and not item["name"]:
            named = self.tools.item(item["id"], item["call_id"], fn["name"], "")
            item["name"] = named["name"]
            if named.get("namespace"):
                item["namespace"] = named["namespace"]
        if fn.get("arguments") and item["type"] == "custom_tool_call":
            # the model writes {"input": "..."}: the input is sent whole when the call ends
            self.custom_text[index] = self.custom_text.get(index, "") + fn["arguments"]
        elif fn.get("arguments"):
            item["arguments"] += fn["arguments"]
            yield self.event("response.function_call_arguments.delta", item_id=item["id"],
                             output_index=index, delta=fn["arguments"])
