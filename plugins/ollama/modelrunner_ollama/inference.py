"""POST /api/chat, /api/generate, /api/embed and /api/embeddings, translated to the runner's
OpenAI API (always streamed from the runner, so the final line can carry llama-server's own
``timings``: prompt_n/prompt_ms, predicted_n/predicted_ms), and answered as Ollama does:
NDJSON lines by default, one JSON object with ``"stream": false``.

``prompt_eval_count`` is the whole prompt, the tokens the runner took from its prompt cache
included, and ``prompt_eval_cached_count`` those cached tokens (when there were any), as Ollama
counts them since it reports its cache (ollama/ollama#16428, #17943: llama-server's
``prompt_n + cache_n``); ``prompt_eval_duration`` is the time the runner spent on the rest.

Durations are nanoseconds and measured: ``total_duration`` here, from the request's start to the
final line; ``load_duration`` the scheduler's load time when this request found the model
unloaded (0 when it was already loaded); the prompt/eval figures are the runner's. Figures the
runner did not report are left out, never estimated.
"""

import json
import math
import time

from modelrunner import (EngineError, GatewayError, SchedulerError, StreamError,
                         cached_prompt_tokens, caller, sse_events)

from . import context, convert
from .errors import OllamaError, error_line
from .models import find, ollama_settings
from .util import keep_alive_value, model_name, now_iso, ns, read_json


class Prepared:
    """What ``Base.prepare`` found: the model, its engine and settings, the merged options, the
    keep-alive to apply, the caller, the num_ctx asked (``wanted``) and the model's own
    (``stored``); after ``Base.fit_context``, ``limit`` (a context to hold this request to, None
    for the runner's) and ``load`` (seconds it waited for a load)."""

    def __init__(self, name, model, engine, settings, options, keep_alive, keep_seconds,
                 who, wanted, stored):
        self.name, self.model, self.engine, self.settings = name, model, engine, settings
        self.options, self.keep_alive, self.keep_seconds = options, keep_alive, keep_seconds
        self.who, self.wanted, self.stored = who, wanted, stored
        self.limit, self.load = None, 0.0


def _gateway_error(e, name):
    if e.status == 404:
        return OllamaError(404, f"model '{name}' not found")
    return OllamaError(e.status, str(e))


class Turn:
    """What one streamed OpenAI answer added up to."""

    def __init__(self):
        self.content = []
        self.thinking = []
        self.calls = {}  # index -> {"id", "function": {"name", "arguments"}}
        self.finish_reason = None
        self.timings = None
        self.usage = None

    def feed(self, obj):
        """Take one event; returns (content, thinking) text it added."""
        if obj.get("error"):
            error = obj["error"]
            raise StreamError(error.get("message") if isinstance(error, dict) else str(error))
        if obj.get("timings"):
            self.timings = obj["timings"]
        if obj.get("usage"):
            self.usage = obj["usage"]
        text, thought = "", ""
        for choice in obj.get("choices") or []:
            delta = choice.get("delta") or choice.get("message") or {}
            if "text" in choice and not delta:  # /v1/completions
                text += choice.get("text") or ""
            text += delta.get("content") or ""
            thought += delta.get("reasoning_content") or ""
            for call in delta.get("tool_calls") or []:
                index = call.get("index", len(self.calls))
                slot = self.calls.setdefault(index, {"id": None,
                                                     "function": {"name": "", "arguments": ""}})
                if call.get("id"):
                    slot["id"] = call["id"]
                function = call.get("function") or {}
                if function.get("name"):
                    slot["function"]["name"] += function["name"]
                arguments = function.get("arguments")
                if isinstance(arguments, str):
                    slot["function"]["arguments"] += arguments
                elif arguments is not None:
                    slot["function"]["arguments"] = arguments
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        if text:
            self.content.append(text)
        if thought:
            self.thinking.append(thought)
        return text, thought

    def tool_calls(self):
        return convert.tool_calls_to_ollama([self.calls[i] for i in sorted(self.calls)])

    def metrics(self, started, load_seconds):
        out = {"total_duration": ns(time.monotonic() - started), "load_duration": ns(load_seconds)}
        t = self.timings or {}
        u = self.usage or {}
        prompt = u.get("prompt_tokens")
        if prompt is None and t.get("prompt_n") is not None:
            prompt = t["prompt_n"] + (t.get("cache_n") or 0)
        completion = t.get("predicted_n") if t.get("predicted_n") is not None \
            else u.get("completion_tokens")
        if prompt is not None:
            out["prompt_eval_count"] = int(prompt)
        cached = cached_prompt_tokens(u, t)
        if cached:
            out["prompt_eval_cached_count"] = cached
        if t.get("prompt_ms") is not None:
            out["prompt_eval_duration"] = int(round(t["prompt_ms"] * 1e6))
        if completion is not None:
            out["eval_count"] = int(completion)
        if t.get("predicted_ms") is not None:
            out["eval_duration"] = int(round(t["predicted_ms"] * 1e6))
        return out


def runner_events(answer):
    """The JSON objects of the runner's answer: SSE events, or the one JSON body."""
    if answer.streaming:
        yield from sse_events(answer)
        return
    raw = answer.read()
    try:
        yield json.loads(raw)
    except ValueError:
        raise StreamError(f"the runner answered with something that is not JSON: {raw[:200]!r}")


def model_max_context(model):
    """The context the model was trained for (GGUF ``<arch>.context_length``), else the one its
    config declares; None when neither says."""
    inner = model.inner_config or {}
    gguf = inner.get("gguf") or {}
    arch = gguf.get("general.architecture") or inner.get("architecture")
    for value in (gguf.get(f"{arch}.context_length"), inner.get("context_size")):
        try:
            if value is not None and int(value) > 0:
                return int(value)
        except (TypeError, ValueError):
            continue
    return None


class Base:
    dialect = "ollama"  # errors as {"error": ...} (modelrunner.dialects)
    scope = "inference"  # API keys: inference keys may use it (modelrunner.trust)
    mode = "completion"

    def __init__(self, runtime):
        self.runtime = runtime

    # -- what every inference request does first ----------------------------------------------

    def prepare(self, req, body, mode):
        """What every inference request does first: find the model and its engine, merge the
        options, and read num_ctx and keep_alive as the caller may (``context``). Nothing is
        changed yet: ``fit_context`` applies num_ctx once the request passed the gateway's
        checks (a refused request must not reload a runner others use)."""
        if mode == "completion":  # /api/chat and /api/generate
            convert.check_top_logprobs(body)
        name = model_name(body)
        model = find(self.runtime, name)
        try:
            engine = self.runtime.engine_for(model)
        except GatewayError as e:
            raise _gateway_error(e, name) from None
        settings = ollama_settings(model)
        asked = convert.merge_options(None, body.get("options"))
        options = convert.merge_options(settings.get("parameters"), asked)
        who = caller(req)
        keep_alive, keep_seconds = context.keep_alive_for(who, *keep_alive_value(body))
        wanted = convert.num_ctx(asked)
        stored = convert.num_ctx(settings.get("parameters") or {})
        return Prepared(name, model, engine, settings, options, keep_alive, keep_seconds,
                        who, wanted, stored)

    def fit_context(self, p, mode, path=None, payload=None):
        """Check the request as the gateway will (``runtime.check``: media the model cannot
        read, a mode its engine lacks), then apply num_ctx: for a caller who may change the
        server, the runner's context; for others, the model's own num_ctx (the operator's,
        /api/create) and a limit this request is held to (modelrunner_ollama.context)."""
        if path is not None:
            try:
                self.runtime.check(p.name, path, json.dumps(payload).encode(), p.engine.name,
                                   mode)
            except GatewayError as e:
                raise _gateway_error(e, p.name) from None
        model, engine = p.model, p.engine
        if p.who.may_change_state:
            self.ensure_context(model, engine, mode, p.wanted or p.stored)
            return
        self.ensure_context(model, engine, mode, p.stored)
        if p.wanted is not None:
            p.limit, p.load = context.request_limit(
                self.runtime, model, engine, mode,
                min(p.wanted, model_max_context(model) or p.wanted))

    def ensure_context(self, model, engine, mode, wanted):
        """num_ctx different from the configured context reconfigures (an idle runner reloads).

        A request's num_ctx is a client's wish, not the operator's configuration: it is capped
        at the model's trained context (a bigger one only costs memory, up to an out-of-memory
        load) and it is never written to the store (``persist=False``), so the context that
        ``model configure`` set comes back after a restart and once the runner unloads (the
        scheduler forgets a request's context with the runner it started). Only for callers who
        may change the server (``prepare``)."""
        if wanted is None:
            return
        wanted = min(wanted, model_max_context(model) or wanted)
        try:  # the scheduler reloads nothing when this context is already the one in effect
            self.runtime.configure(model.id, engine.name, mode, context_size=wanted,
                                   persist=False)
        except SchedulerError as e:
            if e.status != 409:  # busy: this request runs with the loaded context
                raise OllamaError(e.status, str(e)) from None
        except EngineError as e:
            raise OllamaError(e.status, str(e)) from None

    def loaded(self, model, engine, mode):
        try:
            return any(r.get("model_id") == model.id and r.get("mode") == mode
                       and r.get("backend_name") == engine.name and not r.get("loading")
                       for r in self.runtime.runners())
        except SchedulerError:
            return False

    def load_or_unload(self, model, engine, mode, keep_alive, keep_seconds):
        """Empty prompt: load the model ("load"), or with keep_alive 0 unload it ("unload")."""
        if keep_seconds == 0:
            try:
                self.runtime.unload(models=[model.id])
            except SchedulerError as e:
                raise OllamaError(e.status, str(e)) from None
            return "unload", 0.0
        was_loaded = self.loaded(model, engine, mode)
        try:
            load_seconds = self.runtime.preload(model.id, engine.name, mode, keep_alive)
        except GatewayError as e:
            raise OllamaError(e.status, str(e)) from None
        return "load", 0.0 if was_loaded else load_seconds

    def open(self, req, name, model, engine, mode, path, payload, keep_alive):
        """Send the translated request; returns (answer, load seconds). Errors keep the status."""
        was_loaded = self.loaded(model, engine, mode)
        try:
            answer = self.runtime.open(
                name, path, json.dumps(payload).encode(), engine=engine.name, mode=mode,
                keep_alive=keep_alive, dialect="ollama", request=req)
        except GatewayError as e:
            raise _gateway_error(e, name) from None
        load = 0.0 if was_loaded else (answer.record.load_seconds or 0.0)
        return answer, load


class ChatLike(Base):
    """/api/chat and /api/generate: one translated request, answered as NDJSON or one object."""

    key = "message"  # where the text goes: chat's message.content, generate's response

    def on_post(self, req, resp):
        started = time.monotonic()
        body = read_json(req)
        p = self.prepare(req, body, "completion")
        name, model, engine = p.name, p.model, p.engine
        request = self.build(body, name, model, p.settings, p.options)
        self.fit_context(p, "completion", *(request or ()))
        if request is None:  # nothing to generate: load or unload
            reason, load = self.load_or_unload(model, engine, "completion", p.keep_alive,
                                               p.keep_seconds)
            line = self.line(name, "", "", done=True)
            line["done_reason"] = reason
            if reason == "load":
                line.update({"total_duration": ns(time.monotonic() - started),
                             "load_duration": ns(max(load, p.load))})
            resp.media = line
            return
        path, payload = request
        if p.limit is not None:
            context.fit_prompt(self.runtime, req, name, engine, path, payload, p.limit)
        answer, load = self.open(req, name, model, engine, "completion", path, payload,
                                 p.keep_alive)
        load = max(load, p.load)
        turn = Turn()
        if body.get("stream") is False:
            try:
                for obj in runner_events(answer):
                    turn.feed(obj)
            except (GatewayError, StreamError) as e:
                raise OllamaError(500, str(e)) from None
            finally:
                answer.close()
            resp.media = self.final(name, turn, started, load, whole=True)
            return
        resp.content_type = "application/x-ndjson"
        resp.set_header("X-Accel-Buffering", "no")
        resp.stream = self.lines(name, answer, turn, started, load)

    def lines(self, name, answer, turn, started, load):
        try:
            for obj in runner_events(answer):
                text, thought = turn.feed(obj)
                if text or thought:
                    yield _dump(self.line(name, text, thought))
            yield _dump(self.final(name, turn, started, load, whole=False))
        except (GatewayError, StreamError) as e:
            yield error_line(str(e))
        finally:
            answer.close()

    def final(self, name, turn, started, load, whole):
        content = "".join(turn.content) if whole else ""
        thinking = "".join(turn.thinking) if whole else ""
        line = self.line(name, content, thinking, done=True, tool_calls=turn.tool_calls())
        line["done_reason"] = convert.done_reason(turn.finish_reason)
        line.update(turn.metrics(started, load))
        return line


class ChatResource(ChatLike):
    def build(self, body, name, model, settings, options):
        messages = body.get("messages")
        if messages is None:
            messages = []
        if not isinstance(messages, list):
            raise OllamaError(400, "messages must be a list")
        if not messages:
            return None
        history = list(settings.get("messages") or []) + messages
        if settings.get("system") and not any(m.get("role") == "system" for m in history
                                              if isinstance(m, dict)):
            history = [{"role": "system", "content": settings["system"]}] + history
        payload = {"model": name,
                   "messages": convert.messages_to_openai(history),
                   "stream": True, "stream_options": {"include_usage": True}}
        _common(payload, body, options)
        tools = convert.tools_to_openai(body.get("tools"))
        if tools:
            payload["tools"] = tools
        return "/v1/chat/completions", payload

    def line(self, name, text, thought, done=False, tool_calls=None):
        message = {"role": "assistant", "content": text}
        if thought:
            message["thinking"] = thought
        if tool_calls:
            message["tool_calls"] = tool_calls
        return {"model": name, "created_at": now_iso(), "message": message, "done": done}


class GenerateResource(ChatLike):
    def build(self, body, name, model, settings, options):
        prompt = body.get("prompt") or ""
        if not isinstance(prompt, str):
            raise OllamaError(400, "prompt must be a string")
        images = body.get("images") or []
        if not prompt and not images:
            return None
        if body.get("suffix"):
            raise OllamaError(400, f"{name} does not support insert")
        system = body.get("system") or settings.get("system") or ""
        template = body.get("template") or settings.get("template")
        raw_prompt = None
        if body.get("raw"):
            raw_prompt = prompt
        elif template:
            try:
                raw_prompt = convert.render_template(
                    template, {"System": system, "Prompt": prompt, "Response": ""})
            except convert.TemplateError as e:
                if body.get("template"):
                    raise OllamaError(400, f"template: {e}") from None
                raw_prompt = None  # a stored Go template we cannot run: use the chat template
        if raw_prompt is not None:
            if images:
                raise OllamaError(400, "images need the model's chat template: not with raw "
                                       "prompts or custom templates")
            payload = {"model": name, "prompt": raw_prompt, "stream": True,
                       "stream_options": {"include_usage": True}}
            _common(payload, body, options, completion=True)
            return "/v1/completions", payload
        messages = []
        if system:
            messages.append({"role": "system", "content": system})
        messages += list(settings.get("messages") or [])
        messages.append({"role": "user", "content": prompt, "images": images})
        payload = {"model": name,
                   "messages": convert.messages_to_openai(messages),
                   "stream": True, "stream_options": {"include_usage": True}}
        _common(payload, body, options)
        return "/v1/chat/completions", payload

    def line(self, name, text, thought, done=False, tool_calls=None):
        line = {"model": name, "created_at": now_iso(), "response": text, "done": done}
        if thought:
            line["thinking"] = thought
        return line


def _common(payload, body, options, completion=False):
    payload.update(convert.sampling_fields(options))
    fmt = convert.response_format(body.get("format"))
    if fmt:
        if completion:  # llama-server's own field on /v1/completions
            payload["json_schema"] = (fmt.get("json_schema") or {}).get("schema") or {}
        else:
            payload["response_format"] = fmt
    think = body.get("think")
    if think is False:
        payload["chat_template_kwargs"] = {"enable_thinking": False}
    elif isinstance(think, str) and think:
        payload["reasoning_effort"] = think
    payload["timings_per_token"] = False


def _dump(obj):
    return (json.dumps(obj) + "\n").encode()


class EmbedResource(Base):
    """/api/embed {model, input: str|[str], dimensions, truncate, options, keep_alive}."""

    legacy = False

    def on_post(self, req, resp):
        started = time.monotonic()
        body = read_json(req)
        p = self.prepare(req, body, "embedding")
        name, model, engine, keep_alive = p.name, p.model, p.engine, p.keep_alive
        if self.legacy:
            inputs = body.get("prompt") or ""
        else:
            inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs] if inputs else []
        if inputs is None:
            inputs = []
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            raise OllamaError(400, "input must be a string or a list of strings")
        self.fit_context(p, "embedding", "/v1/embeddings", {"model": name, "input": inputs})
        if not inputs:
            reason, load = self.load_or_unload(model, engine, "embedding", keep_alive,
                                               p.keep_seconds)
            resp.media = ({"embedding": []} if self.legacy else
                          {"model": name, "embeddings": []})
            return
        if p.limit is not None:
            inputs = context.fit_inputs(self.runtime, req, name, engine, inputs, p.limit,
                                        body.get("truncate"))
        payload = {"model": name, "input": inputs, "encoding_format": "float"}
        try:
            answer, load = self.open(req, name, model, engine, "embedding", "/v1/embeddings",
                                     payload, keep_alive)
            data = _read_json(answer)
            usage = data.get("usage") or {}
            prompt_tokens = usage.get("prompt_tokens")
            rows = sorted(data.get("data") or [], key=lambda d: d.get("index", 0))
            vectors = [row.get("embedding") or [] for row in rows]
        except OllamaError as e:
            # A generative GGUF has no pooling: llama-server's OpenAI route refuses it. Ollama
            # embeds with such models, so ask for the token embeddings and mean-pool them here.
            if "pooling type 'none'" not in e.message.lower():
                raise
            answer, load = self.open(req, name, model, engine, "embedding", "/embeddings",
                                     {"content": inputs}, keep_alive)
            data = _read_json(answer)
            rows = sorted(data if isinstance(data, list) else [data],
                          key=lambda d: d.get("index", 0))
            vectors, prompt_tokens = [], 0
            for row in rows:
                tokens = row.get("embedding") or []
                if tokens and not isinstance(tokens[0], list):
                    tokens = [tokens]
                prompt_tokens += len(tokens)
                vectors.append(_normalize(_mean(tokens)))
        load = max(load, p.load)
        dimensions = body.get("dimensions")
        if dimensions:
            if not isinstance(dimensions, int) or dimensions < 1:
                raise OllamaError(400, "dimensions must be a positive integer")
            vectors = [_normalize(v[:dimensions]) for v in vectors]
        if self.legacy:
            resp.media = {"embedding": vectors[0] if vectors else []}
            return
        result = {"model": name, "embeddings": vectors,
                  "total_duration": ns(time.monotonic() - started), "load_duration": ns(load)}
        if prompt_tokens is not None:
            result["prompt_eval_count"] = int(prompt_tokens)
        resp.media = result


class EmbeddingsResource(EmbedResource):
    """The older /api/embeddings {model, prompt} -> {embedding}."""

    legacy = True


def _read_json(answer):
    try:
        return json.loads(answer.read() or b"{}")
    except (GatewayError, ValueError) as e:
        raise OllamaError(500, f"the runner's answer could not be read: {e}") from None


def _mean(rows):
    if not rows:
        return []
    return [sum(column) / len(rows) for column in zip(*rows)]


def _normalize(vector):
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector
