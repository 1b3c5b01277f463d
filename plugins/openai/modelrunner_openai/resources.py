"""Falcon resources for the OpenAI routes; plain resources that hand work to the gateway."""

import json

import falcon

from modelrunner import MODE_BY_PATH, GatewayError, ModelRunnerError, parse_json_body

from . import limits
from .errors import sse_error
from .forced_tools import ForcedCallAnswer, ToolChoiceError, constrained_request, forced_functions
from .shapes import completed, completed_stream


class InferenceResource:
    """A runner route passed through: errors (ours, the gateway's, the runner's) are raised and
    rendered in OpenAI's shape by the dialect layer."""

    scope = "inference"  # API keys: inference keys may use it (modelrunner.trust)
    dialect = "openai"

    def __init__(self, runtime, runner_path, mode=None):
        self.runtime = runtime
        self.runner_path = runner_path
        self.mode = mode

    def on_post(self, req, resp, engine=None):
        body = req.bounded_stream.read()
        data = parse_json_body(body)  # 400 for bad or too deeply nested JSON
        limits.check(self.runner_path, data)  # what multiplies an answer's size is bounded
        model = data.get("model")
        runtime = self.runtime
        forced = None
        if self.runner_path == "/v1/chat/completions":
            try:
                forced = forced_functions(data)
            except ToolChoiceError as e:
                raise ModelRunnerError(str(e), status=400, param="tool_choice") from None
            if forced:
                body = json.dumps(constrained_request(data, forced)).encode()
        if (req.get_header("X-Preload-Only") or "").lower() == "true":
            runtime.preload(model, engine,
                            self.mode or MODE_BY_PATH.get(self.runner_path, "completion"))
            resp.media = {"status": "loaded", "model": model}
            return
        answer = runtime.open(model, self.runner_path, body, engine=engine, mode=self.mode,
                              request=req)
        if forced:
            answer = ForcedCallAnswer(answer)
        resp.status = falcon.code_to_http_status(answer.status)
        resp.content_type = answer.content_type
        if answer.streaming:
            resp.set_header("Cache-Control", "no-cache")
            resp.set_header("X-Accel-Buffering", "no")
            # the model named as this request asked (naming.py), never the runner's name for it
            # and each event with the fields OpenAI's schema requires (shapes.py)
            resp.stream = _guarded(completed_stream(answer, self.runner_path, model,
                                                    answer.close))
        elif "json" in (answer.content_type or ""):
            resp.data = completed(answer.read(), self.runner_path, model)
        else:
            resp.data = answer.read()


def _guarded(answer):
    """Pass SSE through; if the runner dies mid-stream, end with an error event, not a hang."""
    try:
        yield from answer
    except GatewayError as e:
        yield sse_error(str(e))


def model_entry(model):
    config = model.inner_config
    return {"id": model.tags[0] if model.tags else model.id, "object": "model",
            "created": model.created, "owned_by": "docker",
            "dmr": {"context_window": config.get("context_size"),
                    "architecture": config.get("architecture"),
                    "parameters": config.get("parameters"),
                    "quantization": config.get("quantization"), "size": config.get("size")}}


class ModelsResource:
    scope = "inference"  # API keys: inference keys may use it (modelrunner.trust)
    dialect = "openai"

    def __init__(self, runtime):
        self.runtime = runtime

    def on_get(self, req, resp, engine=None):
        resp.media = {"object": "list",
                      "data": [model_entry(m) for m in self.runtime.store.models() if m.tags]}


class ModelResource:
    scope = "inference"  # API keys: inference keys may use it (modelrunner.trust)
    dialect = "openai"

    def __init__(self, runtime):
        self.runtime = runtime

    def on_get(self, req, resp, name, engine=None):
        resp.media = model_entry(self.runtime.find_model(name))


PREFIXES = ("/engines/{engine}/v1", "/engines/v1", "/v1")
INFERENCE = ("/chat/completions", "/completions", "/embeddings", "/images/generations")


def register(app, runtime):
    """DMR's OpenAI routes under each prefix, and rerank/score."""
    for prefix in PREFIXES:
        for path in INFERENCE:
            app.add_route(prefix + path, InferenceResource(runtime, "/v1" + path))
        app.add_route(prefix + "/models", ModelsResource(runtime))
        app.add_route(prefix + "/models/{name:path}", ModelResource(runtime))
    for path in ("/rerank", "/score"):
        app.add_route("/engines" + path, InferenceResource(runtime, path, mode="reranking"))
        app.add_route("/engines/{engine}" + path, InferenceResource(runtime, path, mode="reranking"))
        app.add_route(path, InferenceResource(runtime, path, mode="reranking"))
