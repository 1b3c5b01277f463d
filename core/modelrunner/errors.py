"""One error style for the core and every plugin: raise a ``ModelRunnerError``.

The app turns any ``ModelRunnerError`` that escapes a route into an HTTP answer: its ``status``
is the HTTP status, and the dialect the route's resource speaks (modelrunner.dialects) shapes the
body (OpenAI's error object, Ollama's ``{"error"}``, Anthropic's ``{"type": "error"}``); the
core's own routes answer with DMR's plain text. ``kind`` is a dialect-neutral hint of what went
wrong ("invalid_request_error", "not_found_error", ...) for dialects whose error has a type;
``param`` names the request field at fault and ``code`` is a machine-readable reason, for
dialects that carry them (OpenAI's ``param`` and ``code``).

Two typed errors say what a model cannot do, found once for every dialect (the gateway raises
them; each dialect words them its own way): :class:`Unsupported` and :class:`ContextExceeded`.
"""

KIND_BY_STATUS = {400: "invalid_request_error", 401: "authentication_error",
                  403: "permission_error", 404: "not_found_error", 409: "conflict_error",
                  412: "invalid_request_error", 413: "request_too_large",
                  422: "invalid_request_error", 429: "rate_limit_error",
                  503: "overloaded_error"}


class ModelRunnerError(Exception):
    """A failure with the HTTP status to answer with; subclasses set a default ``status``."""

    status = 500

    def __init__(self, message="", status=None, kind=None, param=None, code=None):
        super().__init__(message)
        if status is not None:
            self.status = status
        self.kind = kind or KIND_BY_STATUS.get(self.status, "server_error")
        self.param = param
        self.code = code

    @property
    def message(self):
        return str(self)


class Unsupported(ModelRunnerError):
    """The model cannot do what the request asks (400), known before anything loads.

    ``capability`` is what it lacks: "images" (a GGUF without a multimodal projector; its runner
    would answer 500 after loading), or a mode: "embeddings", "reranking", "image generation"
    (no engine serving the model's format has it). ``remedy`` says what would give it, for the
    message. A dialect may word it its own way (Ollama: "MODEL does not support images").
    """

    status = 400

    def __init__(self, model, capability, remedy="", param=None):
        message = f"model {model} does not support {capability}"
        super().__init__(message + (f": {remedy}" if remedy else ""), param=param,
                         code="model_not_supported")
        self.model = model
        self.capability = capability
        self.remedy = remedy


class ContextExceeded(ModelRunnerError):
    """The prompt is longer than the runner's context (400), as the runner counted it.

    ``prompt_tokens`` and ``context`` are None when the runner did not say them. Dialects word
    it as their API does (OpenAI's ``context_length_exceeded``, Anthropic's "prompt is too
    long").
    """

    status = 400

    def __init__(self, model, prompt_tokens=None, context=None, message=None):
        if message is None:
            counted = f" ({prompt_tokens} tokens)" if prompt_tokens else ""
            room = f" of {context} tokens" if context else ""
            message = (f"the prompt{counted} is longer than the context{room} of model "
                       f"{model}: shorten it, or load the model with a larger context "
                       f"(model configure --context-size)")
        super().__init__(message, param="messages", code="context_length_exceeded")
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.context = context

    @property
    def prompt_over(self):
        """Whether the prompt alone is longer than the context, both counts known (a dialect
        words that in its API's own terms; a prompt that fits, with too long an answer asked,
        keeps the runner's message)."""
        return bool(self.prompt_tokens and self.context and self.prompt_tokens > self.context)
