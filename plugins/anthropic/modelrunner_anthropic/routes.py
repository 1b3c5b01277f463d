"""Falcon resources for POST .../v1/messages and .../v1/messages/count_tokens.

Both send OpenAI requests to the model's runner through ``runtime.open`` (so telemetry and the
request inspector see them under the dialect "anthropic"); translate.py does the translation.
Errors are raised as ``ModelRunnerError``; the resources say ``dialect = "anthropic"``, so the
app gives them Anthropic's shape (errors.AnthropicDialect). What the model cannot do (images
without a projector, a prompt over its context) the gateway finds, for every dialect.

fields.py says which request fields exist. The ``?beta=true`` query Claude Code adds and the
``anthropic-beta`` header name Anthropic's betas: every field those betas add that this server
serves is served whether or not its beta is named, so both are read by nothing.
"""

import json

from modelrunner import ModelRunnerError, StreamError, read_json_body, sse_events

from . import fields, translate
from .errors import sse_error

DIALECT = "anthropic"


def _open(runtime, req, model, path, payload, engine=None, observed=True):
    """The runner's answer to ``payload``; a runner's error answer is raised with its status.
    ``observed`` False for a helper call that is not the client's request (one count_tokens is
    one record in the inspector and /metrics, not two)."""
    return runtime.open(model, path, json.dumps(payload).encode(), engine=engine,
                        mode="completion", dialect=DIALECT, request=req, observed=observed)


def _read_json(answer):
    try:
        raw = answer.read()
    finally:
        answer.close()
    try:
        return json.loads(raw)
    except ValueError:
        raise ModelRunnerError("the runner's answer is not JSON", status=502) from None


class MessagesResource:
    scope = "inference"  # API keys: inference keys may use it (modelrunner.trust)
    dialect = DIALECT  # errors in Anthropic's shape (modelrunner.dialects)

    def __init__(self, runtime):
        self.runtime = runtime

    def on_post(self, req, resp, engine=None):
        body = read_json_body(req)
        fields.check(body)
        chat, forced = translate.chat_request(body)
        model = body["model"]
        answer = _open(self.runtime, req, model, "/v1/chat/completions", chat, engine)
        stops = chat.get("stop")
        thinking = translate.thinking_shown(body)
        if not chat.get("stream"):
            resp.media = translate.message(_read_json(answer), model, forced, stops, thinking)
            return
        resp.content_type = "text/event-stream"
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("X-Accel-Buffering", "no")
        resp.stream = _events(answer, translate.StreamTranslator(model, forced, stops,
                                                                  thinking))


def _events(answer, translator):
    """Anthropic SSE from the runner's chunks; a runner failure ends it with an error event."""
    try:
        for event in translator.start():
            yield translate.sse(event)
        for chunk in sse_events(answer):
            for event in translator.feed(chunk):
                yield translate.sse(event)
        for event in translator.end():
            yield translate.sse(event)
    except StreamError as e:
        yield sse_error(str(e))
    finally:
        answer.close()


class CountTokensResource:
    """The prompt's tokens as the runner counts them: its chat template applied to the messages
    and tools, then its tokenizer (llama-server's /apply-template and /tokenize; vLLM's /tokenize
    takes the messages itself)."""
    scope = "inference"  # API keys: inference keys may use it (modelrunner.trust)
    dialect = DIALECT

    def __init__(self, runtime):
        self.runtime = runtime

    def on_post(self, req, resp, engine=None):
        body = read_json_body(req)
        fields.check_count(body)
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise translate.invalid("model: Field required")
        model = body["model"]
        prompt = translate.prompt_request(body)
        try:
            templated = _read_json(_open(self.runtime, req, model, "/apply-template", prompt,
                                         engine, observed=False))
        except ModelRunnerError as e:
            if e.status != 404:
                raise
            counted = _read_json(_open(self.runtime, req, model, "/tokenize",
                                       {"model": model, **prompt}, engine))
            resp.media = {"input_tokens": int(counted.get("count", 0))}
            return
        tokens = _read_json(_open(self.runtime, req, model, "/tokenize",
                                  {"content": templated.get("prompt", ""), "add_special": True,
                                   "parse_special": True}, engine))
        resp.media = {"input_tokens": len(tokens.get("tokens") or [])}


def register(app, runtime):
    messages, count = MessagesResource(runtime), CountTokensResource(runtime)
    for prefix in ("/anthropic/v1", "/v1", "/engines/v1", "/engines/{engine}/v1"):
        app.add_route(prefix + "/messages", messages)
        app.add_route(prefix + "/messages/count_tokens", count)
