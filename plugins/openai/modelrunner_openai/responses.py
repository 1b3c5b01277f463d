"""OpenAI's Responses API, translated to chat completions as DMR does.

    POST   {/responses, /v1/responses, /engines/responses, /engines/v1/responses,
            /engines/{engine}/v1/responses}
    GET    .../responses/{id}            the stored response
    GET    .../responses/{id}/input_items
    DELETE .../responses/{id}

A request becomes one ``/v1/chat/completions`` call to the runner: ``instructions`` is the system
message; ``input`` (a string, or items: messages with input_text/output_text parts,
function_call and function_call_output) becomes the messages; function tools (flat, as the
Responses API writes them) become chat tools; ``text.format`` becomes ``response_format``;
``max_output_tokens`` becomes ``max_tokens``. The answer is turned back into a ``response``
object, or, when streaming, the runner's chat chunks are turned into the Responses API's events
(response.created, response.output_item.added, response.output_text.delta, ...,
response.completed) as they arrive.

Responses are stateless unless ``previous_response_id`` names an earlier one: each stored
response keeps the whole conversation (messages, without the instructions, which OpenAI does not
carry over) for one hour.

Storage: in memory in the API worker, and also written to ``<models_path>/responses/<id>.json``
so that a ``previous_response_id`` (or a GET) reaching another gunicorn worker still finds it.
A worker that misses its memory reads the file; expiry (1 h TTL) is by the file's mtime. With
``store: false`` nothing is kept, as in OpenAI's API.
"""

import json
import os
import re
import secrets
import threading
import time
from pathlib import Path

import falcon

from modelrunner import GatewayError, private_dir, write_private

from .errors import openai_error, openai_error_body
from .forced_tools import ForcedCallAnswer, ToolChoiceError, constrained_request, forced_functions

TTL = 3600
ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

# Fields DMR rejects (pkg/responses/handler.go): they need state or services a local runner lacks.
REJECTED = ("include", "stream_options", "top_logprobs", "background", "conversation", "prompt",
            "service_tier", "safety_identifier")

# Chat-completion sampling fields passed through when a client sends them as extra body fields.
PASSTHROUGH = ("seed", "stop", "top_k", "min_p", "presence_penalty", "frequency_penalty",
               "repeat_penalty", "logit_bias")


class RequestError(Exception):
    """A request that cannot be translated: answered with 400 in OpenAI's error shape."""

    def __init__(self, message, param=None, status=400):
        super().__init__(message)
        self.param = param
        self.status = status


def new_id(prefix):
    return f"{prefix}_{secrets.token_hex(24)}"


# -- storage ------------------------------------------------------------------------------------


class ResponseStore:
    """Stored responses: memory first, then ``<dir>/<id>.json`` (shared by workers), 1 h TTL."""

    def __init__(self, directory=None, ttl=TTL):
        self.dir = Path(directory) if directory else None
        self.ttl = ttl
        self.memory = {}
        self.lock = threading.Lock()
        self._last_sweep = 0.0

    def _path(self, response_id):
        return self.dir / f"{response_id}.json" if self.dir else None

    def put(self, record):
        response_id = record["response"]["id"]
        with self.lock:
            self.memory[response_id] = (time.time() + self.ttl, record)
        path = self._path(response_id)
        if path is not None:
            try:
                private_dir(path.parent)  # stored prompts and answers: 0700 folder, 0600 files
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                write_private(tmp, json.dumps(record))
                os.replace(tmp, path)
            except OSError:
                pass  # memory still has it; only other workers miss out
        self._sweep()

    def get(self, response_id):
        if not response_id or not ID_RE.match(response_id):
            return None
        now = time.time()
        with self.lock:
            entry = self.memory.get(response_id)
            if entry and entry[0] > now:
                return entry[1]
            if entry:
                del self.memory[response_id]
        path = self._path(response_id)
        if path is None:
            return None
        try:
            if path.stat().st_mtime + self.ttl < now:
                path.unlink(missing_ok=True)
                return None
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        with self.lock:
            self.memory[response_id] = (path.stat().st_mtime + self.ttl, record)
        return record

    def delete(self, response_id):
        if not response_id or not ID_RE.match(response_id):
            return False
        found = False
        with self.lock:
            found = self.memory.pop(response_id, None) is not None
        path = self._path(response_id)
        if path is not None:
            try:
                path.unlink()
                found = True
            except OSError:
                pass
        return found

    def _sweep(self):
        """Drop expired entries, at most once a minute."""
        now = time.time()
        if now - self._last_sweep < 60:
            return
        self._last_sweep = now
        with self.lock:
            for key in [k for k, (expires, _) in self.memory.items() if expires <= now]:
                del self.memory[key]
        if self.dir and self.dir.is_dir():
            for path in self.dir.glob("*.json"):
                try:
                    if path.stat().st_mtime + self.ttl < now:
                        path.unlink()
                except OSError:
                    pass


# -- request translation ------------------------------------------------------------------------


def _text_of(content):
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
            if part.get("type") in ("input_text", "output_text", "text"):
                texts.append(part.get("text") or "")
            elif part.get("type") == "refusal":
                texts.append(part.get("refusal") or "")
    return "".join(texts)


def _message_content(content):
    """A Responses message's content as chat content: a string, or parts when there are images."""
    if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") == "input_image"
                                         for p in content):
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
    return _text_of(content)


def input_items(value):
    """The request's ``input`` as a list of items (a string is one user message)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list):
        raise RequestError("input must be a string or a list of items", "input")
    return value


def items_to_messages(items):
    messages = []
    for item in items:
        if not isinstance(item, dict):
            raise RequestError("each input item must be an object", "input")
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role = item.get("role") or "user"
            if role not in ("user", "assistant", "system", "developer"):
                raise RequestError(f"unsupported message role {role!r}", "input")
            messages.append({"role": "system" if role == "developer" else role,
                             "content": _message_content(item.get("content"))})
        elif kind == "function_call":
            call = {"id": item.get("call_id") or item.get("id") or new_id("call"),
                    "type": "function",
                    "function": {"name": item.get("name") or "",
                                 "arguments": item.get("arguments") or "{}"}}
            last = messages[-1] if messages else None
            if last and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            elif last and last["role"] == "assistant" and not last.get("tool_calls"):
                last["tool_calls"] = [call]
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append({"role": "tool", "tool_call_id": item.get("call_id") or "",
                             "content": output if isinstance(output, str) else
                             _text_of(output) if isinstance(output, list) else json.dumps(output)})
        elif kind == "reasoning":
            continue  # the runner's chat template re-derives nothing from earlier reasoning
        else:
            raise RequestError(f"input items of type {kind!r} are not supported", "input")
    return messages


def convert_tools(tools):
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise RequestError("tools must be a list", "tools")
    out = []
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else tool
            raise RequestError(f"only function tools are supported, not {kind!r}", "tools")
        fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
        if not fn.get("name"):
            raise RequestError("a function tool needs a name", "tools")
        function = {"name": fn["name"]}
        for key in ("description", "parameters", "strict"):
            if fn.get(key) is not None:
                function[key] = fn[key]
        out.append({"type": "function", "function": function})
    return out


def convert_tool_choice(choice):
    if choice is None or isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name") or (choice.get("function") or {}).get("name")
        return {"type": "function", "function": {"name": name}}
    raise RequestError("tool_choice must be auto, none, required or a function", "tool_choice")


def convert_text_format(text):
    if not text:
        return None
    fmt = text.get("format") if isinstance(text, dict) else None
    if not fmt or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema = {"name": fmt.get("name") or "response", "schema": fmt.get("schema") or {}}
        if fmt.get("strict") is not None:
            schema["strict"] = fmt["strict"]
        if fmt.get("description"):
            schema["description"] = fmt["description"]
        return {"type": "json_schema", "json_schema": schema}
    raise RequestError(f"unsupported text.format type {fmt.get('type')!r}", "text.format")


def validate(data):
    if not isinstance(data, dict):
        raise RequestError("the body must be a JSON object")
    for field in REJECTED:
        value = data.get(field)
        if value is not None and value is not False:
            raise RequestError(f"{field} is not supported", field)
    if data.get("truncation") not in (None, "disabled"):
        raise RequestError("truncation is not supported; only \"disabled\" is", "truncation")
    if not data.get("model"):
        raise RequestError("model is required", "model")


def build_chat_request(data, previous):
    """(chat body, conversation messages without the system instructions, new input items)."""
    history = list(previous["messages"]) if previous else []
    items = input_items(data.get("input"))
    conversation = history + items_to_messages(items)
    messages = list(conversation)
    if data.get("instructions"):
        instructions = data["instructions"]
        if not isinstance(instructions, str):
            instructions = _text_of(instructions)
        messages.insert(0, {"role": "system", "content": instructions})
    if not messages:
        raise RequestError("input is required", "input")
    body = {"model": data["model"], "messages": messages}
    if data.get("max_output_tokens") is not None:
        body["max_tokens"] = data["max_output_tokens"]
    for key in ("temperature", "top_p", "parallel_tool_calls"):
        if data.get(key) is not None:
            body[key] = data[key]
    for key in PASSTHROUGH:
        if data.get(key) is not None:
            body[key] = data[key]
    tools = convert_tools(data.get("tools"))
    if tools:
        choice = convert_tool_choice(data.get("tool_choice"))  # forced: see forced_tools
        body["tools"] = tools
        if choice is not None:
            body["tool_choice"] = choice
    fmt = convert_text_format(data.get("text"))
    if fmt:
        body["response_format"] = fmt
    reasoning = data.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort"):
        body["reasoning_effort"] = reasoning["effort"]
    if data.get("stream"):
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body, conversation, items


# -- response building --------------------------------------------------------------------------


def base_response(response_id, data, created):
    text = data.get("text") if isinstance(data.get("text"), dict) else None
    return {
        "id": response_id, "object": "response", "created_at": created, "status": "in_progress",
        "background": False, "error": None, "incomplete_details": None,
        "instructions": data.get("instructions"), "max_output_tokens": data.get("max_output_tokens"),
        "max_tool_calls": None, "model": data["model"], "output": [],
        "parallel_tool_calls": data.get("parallel_tool_calls", True),
        "previous_response_id": data.get("previous_response_id"),
        "reasoning": {"effort": (data.get("reasoning") or {}).get("effort"), "summary": None},
        "store": data.get("store", True), "temperature": data.get("temperature"),
        "text": text or {"format": {"type": "text"}},
        "tool_choice": data.get("tool_choice") or "auto", "tools": data.get("tools") or [],
        "top_p": data.get("top_p"), "truncation": "disabled", "usage": None,
        "user": data.get("user"), "metadata": data.get("metadata") or {},
    }


def convert_usage(usage):
    if not usage:
        return None
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": usage.get("total_tokens") or prompt + completion}


def message_item(item_id, text, status="completed"):
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": [output_text_part(text)] if text is not None else []}


def output_text_part(text):
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def reasoning_item(item_id, text, status="completed"):
    return {"id": item_id, "type": "reasoning", "status": status, "summary": [],
            "content": [{"type": "reasoning_text", "text": text}] if text is not None else []}


def function_item(item_id, call_id, name, arguments, status="completed"):
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call_id,
            "name": name, "arguments": arguments}


def finish(response, finish_reason, usage):
    if finish_reason == "length":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "max_output_tokens"}
    elif finish_reason == "content_filter":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "content_filter"}
    else:
        response["status"] = "completed"
    response["completed_at"] = int(time.time())
    response["usage"] = convert_usage(usage)
    return response


def assistant_message(response):
    """The chat message the response's output amounts to, for the next turn's history."""
    text, calls = [], []
    for item in response["output"]:
        if item["type"] == "message":
            text.append(_text_of(item["content"]))
        elif item["type"] == "function_call":
            calls.append({"id": item["call_id"], "type": "function",
                          "function": {"name": item["name"], "arguments": item["arguments"]}})
    message = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def chat_to_response(response, chat):
    choice = (chat.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    if message.get("reasoning_content"):
        response["output"].append(reasoning_item(new_id("rs"), message["reasoning_content"]))
    if message.get("content") or not message.get("tool_calls"):
        response["output"].append(message_item(new_id("msg"), message.get("content") or ""))
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        response["output"].append(function_item(new_id("fc"), call.get("id") or new_id("call"),
                                                fn.get("name") or "", fn.get("arguments") or ""))
    return finish(response, choice.get("finish_reason"), chat.get("usage"))


def stored_input_items(items):
    """Input items as GET .../input_items lists them: each with an id."""
    out = []
    for item in items:
        item = dict(item)
        item.setdefault("type", "message")
        if item["type"] == "message":
            item.setdefault("id", new_id("msg"))
            if isinstance(item.get("content"), str):
                kind = "output_text" if item.get("role") == "assistant" else "input_text"
                item["content"] = [{"type": kind, "text": item["content"]}]
            item.setdefault("status", "completed")
        out.append(item)
    return out


# -- streaming ----------------------------------------------------------------------------------


class EventStream:
    """Turns the runner's chat.completion.chunk SSE into Responses API events (SSE bytes)."""

    def __init__(self, response, answer, on_done):
        self.response = response
        self.answer = answer
        self.on_done = on_done
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
            yield from self._close_open()
            yield from self._close_calls()
            if self.failed:
                self.response["status"] = "failed"
                self.response["error"] = {"code": "server_error", "message": self.failed}
                yield self.event("error", code="server_error", message=self.failed, param=None)
                yield self.event("response.failed", response=self.snapshot())
                return
            finish(self.response, self.finish_reason, self.usage)
            self.on_done(self.response)
            kind = "response.incomplete" if self.response["status"] == "incomplete" else \
                "response.completed"
            yield self.event(kind, response=self.snapshot())
        finally:
            self.answer.close()

    def _chunks(self):
        buffer = b""
        try:
            for chunk in self.answer:
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    line = line.strip()
                    if line.startswith(b"error:"):
                        self.failed = line[6:].strip().decode(errors="replace")
                        return
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        return
                    try:
                        data = json.loads(payload)
                    except ValueError:
                        continue
                    if isinstance(data, dict) and data.get("error"):
                        err = data["error"]
                        self.failed = err.get("message") if isinstance(err, dict) else str(err)
                        return
                    yield data
        except GatewayError as e:
            self.failed = str(e)

    def _open(self, kind):
        """Open a message or reasoning item (closing another open one); returns events."""
        if self.open_item and self.open_item[0] == kind:
            return
        yield from self._close_open()
        index = len(self.items)
        if kind == "message":
            item = message_item(new_id("msg"), None, status="in_progress")
        else:
            item = reasoning_item(new_id("rs"), None, status="in_progress")
        self.items.append(item)
        self.open_item = (kind, index)
        yield self.event("response.output_item.added", output_index=index, item=dict(item))
        if kind == "message":
            item["content"].append(output_text_part(""))
            yield self.event("response.content_part.added", item_id=item["id"],
                             output_index=index, content_index=0, part=output_text_part(""))
        else:
            item["content"].append({"type": "reasoning_text", "text": ""})

    def _close_open(self):
        if not self.open_item:
            return
        kind, index = self.open_item
        self.open_item = None
        item = self.items[index]
        item["status"] = "completed"
        part = item["content"][0]
        if kind == "message":
            yield self.event("response.output_text.done", item_id=item["id"], output_index=index,
                             content_index=0, text=part["text"], logprobs=[])
            yield self.event("response.content_part.done", item_id=item["id"],
                             output_index=index, content_index=0, part=dict(part))
        else:
            yield self.event("response.reasoning_text.done", item_id=item["id"],
                             output_index=index, content_index=0, text=part["text"])
        yield self.event("response.output_item.done", output_index=index, item=item)

    def _close_calls(self):
        for index in sorted(self.calls.values()):
            item = self.items[index]
            item["status"] = "completed"
            yield self.event("response.function_call_arguments.done", item_id=item["id"],
                             output_index=index, name=item["name"], arguments=item["arguments"])
            yield self.event("response.output_item.done", output_index=index, item=item)
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
                yield self.event("response.reasoning_text.delta", item_id=item["id"],
                                 output_index=index, content_index=0,
                                 delta=delta["reasoning_content"])
            if delta.get("content"):
                yield from self._open("message")
                index = self.open_item[1]
                item = self.items[index]
                item["content"][0]["text"] += delta["content"]
                yield self.event("response.output_text.delta", item_id=item["id"],
                                 output_index=index, content_index=0, delta=delta["content"],
                                 logprobs=[])
            for call in delta.get("tool_calls") or []:
                key = call.get("index", 0)
                fn = call.get("function") or {}
                if key not in self.calls:
                    yield from self._close_open()
                    index = len(self.items)
                    item = function_item(new_id("fc"), call.get("id") or new_id("call"),
                                         fn.get("name") or "", "", status="in_progress")
                    self.items.append(item)
                    self.calls[key] = index
                    yield self.event("response.output_item.added", output_index=index,
                                     item=dict(item))
                index = self.calls[key]
                item = self.items[index]
                if fn.get("name") and not item["name"]:
                    item["name"] = fn["name"]
                if fn.get("arguments"):
                    item["arguments"] += fn["arguments"]
                    yield self.event("response.function_call_arguments.delta", item_id=item["id"],
                                     output_index=index, delta=fn["arguments"])


# -- resources ----------------------------------------------------------------------------------


def _fail(resp, status, message, param=None, code=None):
    resp.status = falcon.code_to_http_status(status)
    resp.content_type = "application/json"
    body = openai_error(status, message, code)
    body["error"]["param"] = param
    resp.data = json.dumps(body).encode()


class ResponsesResource:
    """POST .../responses."""

    def __init__(self, runtime, store):
        self.runtime = runtime
        self.store = store

    def on_post(self, req, resp, engine=None):
        raw = req.bounded_stream.read()
        try:
            data = json.loads(raw or b"")
        except ValueError as e:
            return _fail(resp, 400, f"invalid JSON body: {e}")
        try:
            validate(data)
            previous = None
            if data.get("previous_response_id"):
                previous = self.store.get(data["previous_response_id"])
                if previous is None:
                    raise RequestError(f"previous response {data['previous_response_id']!r} not "
                                       "found (responses are kept for 1 hour)",
                                       "previous_response_id", status=404)
            body, conversation, items = build_chat_request(data, previous)
        except RequestError as e:
            return _fail(resp, e.status, str(e), e.param)
        runtime = self.runtime
        model = data["model"]
        try:
            if (req.get_header("X-Preload-Only") or "").lower() == "true":
                runtime.preload(model, engine, "completion")
                resp.media = {"status": "loaded", "model": model}
                return
            forced = forced_functions(body)
            if forced:
                body = constrained_request(body, forced)
            answer = runtime.open(model, "/v1/chat/completions", json.dumps(body).encode(),
                                  engine=engine, request=req)
        except GatewayError as e:
            return _fail(resp, e.status, str(e))
        except ToolChoiceError as e:
            return _fail(resp, 400, str(e), "tool_choice")
        if forced:
            answer = ForcedCallAnswer(answer)

        response = base_response(new_id("resp"), data, int(time.time()))
        store = data.get("store", True) is not False

        def keep(done):
            if store:
                self.store.put({"response": done,
                                "messages": conversation + [assistant_message(done)],
                                "input_items": stored_input_items(items)})

        if answer.status >= 400:
            try:
                text = answer.read()
            except GatewayError as e:
                return _fail(resp, e.status, str(e))
            return _fail(resp, answer.status, _runner_error(text))
        if data.get("stream"):
            if not answer.streaming:  # the runner answered at once (should not happen)
                answer.close()
                return _fail(resp, 502, "the runner did not stream its answer")
            resp.content_type = "text/event-stream"
            resp.set_header("Cache-Control", "no-cache")
            resp.set_header("X-Accel-Buffering", "no")
            resp.stream = iter(EventStream(response, answer, keep))
            return
        try:
            chat = json.loads(answer.read() or b"{}")
        except GatewayError as e:
            return _fail(resp, e.status, str(e))
        except ValueError:
            return _fail(resp, 502, "the runner's answer is not JSON")
        chat_to_response(response, chat)
        keep(response)
        resp.media = response


def _runner_error(text):
    try:
        data = json.loads(text)
        err = data.get("error", data)
        return err.get("message") if isinstance(err, dict) else str(err)
    except (ValueError, AttributeError):
        return text.decode(errors="replace") or "the runner failed"


class ResponseResource:
    """GET / DELETE .../responses/{id}."""

    def __init__(self, store):
        self.store = store

    def on_get(self, req, resp, response_id, engine=None):
        record = self.store.get(response_id)
        if record is None:
            return _fail(resp, 404, f"response {response_id!r} not found")
        resp.media = record["response"]

    def on_delete(self, req, resp, response_id, engine=None):
        if not self.store.delete(response_id):
            return _fail(resp, 404, f"response {response_id!r} not found")
        resp.media = {"id": response_id, "object": "response.deleted", "deleted": True}


class InputItemsResource:
    """GET .../responses/{id}/input_items."""

    def __init__(self, store):
        self.store = store

    def on_get(self, req, resp, response_id, engine=None):
        record = self.store.get(response_id)
        if record is None:
            return _fail(resp, 404, f"response {response_id!r} not found")
        items = list(record.get("input_items") or [])
        if req.get_param("order") != "asc":
            items.reverse()  # OpenAI lists newest first unless order=asc
        resp.media = {"object": "list", "data": items,
                      "first_id": items[0].get("id") if items else None,
                      "last_id": items[-1].get("id") if items else None, "has_more": False}


PREFIXES = ("/responses", "/v1/responses", "/engines/responses", "/engines/v1/responses",
            "/engines/{engine}/v1/responses")


def register(app, runtime):
    models_path = runtime.settings.get("models_path", None)
    store = ResponseStore(Path(str(models_path)) / "responses" if models_path else None)
    for prefix in PREFIXES:
        app.add_route(prefix, ResponsesResource(runtime, store))
        app.add_route(prefix + "/{response_id}", ResponseResource(store))
        app.add_route(prefix + "/{response_id}/input_items", InputItemsResource(store))
    return store


__all__ = ["register", "ResponseStore", "build_chat_request", "chat_to_response", "EventStream",
           "openai_error_body"]
