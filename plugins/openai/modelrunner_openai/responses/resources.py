"""The Responses API's routes: create a response, read or delete a stored one, list its input.

    POST   .../responses                   ``ResponsesResource``
    GET    .../responses/{id}              ``ResponseResource``, the stored response
    DELETE .../responses/{id}
    GET    .../responses/{id}/input_items  ``InputItemsResource``, paged: limit (1..100, 20),
                                           order (desc), after

(``POST .../responses/compact`` is ``compact``'s.)

A request is checked (``validation``), becomes one chat completion (``chat_request``) sent through
the gateway, and the answer is turned back into a ``response`` object (``objects``) or, when
streaming, into the specification's events (``stream``). It is stored (``store``) unless the
request says ``store: false``.
"""

import json
import time

from modelrunner import ContextExceeded, Unsupported, caller

from ..forced_tools import ForcedCallAnswer, ToolChoiceError, constrained_request, forced_functions
from ..params import RequestError
from .chat_request import build_chat_request
from .items import new_id, stored_input_items
from .objects import assistant_message, base_response, chat_to_response, wants_logprobs
from .stream import EventStream
from .tools import ToolMap
from .validation import page_params, previous_response, read_json, runner_json, validate


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
        tools = ToolMap(data.get("tools"))  # the model's calls as the tools' own items
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
            resp.stream = iter(EventStream(response, answer, keep, wants_logprobs(data), tools))
            return
        chat_to_response(response, runner_json(answer), wants_logprobs(data), tools)
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
