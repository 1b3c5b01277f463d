"""An Ollama request's ``num_ctx`` and ``keep_alive``: who may apply them, and how a smaller
context is held to for one request.

Ollama has one runner per model and a request reconfigures it: ``num_ctx`` reloads it with that
context, ``keep_alive: 0`` unloads it, ``-1`` keeps it forever. That is so here for the server's
own user: no API keys (the local default), or an admin key (``modelrunner.caller(req)
.may_change_state``). An inference key may use a model but never change it for the other
clients, so its options are applied only within what the runner already has:

* ``keep_alive`` 0 (unload) or negative (pin): 403, naming the option; it needs an admin key.
  A positive duration is not applied (the runner keeps the keep-alive the operator set): clients
  send one with every request as a default, and refusing those would break them for nothing,
  while applying it would let one client shorten or stretch everyone's.
* ``num_ctx`` larger than the runner's context (after the cap at the model's trained context):
  403 (reloading with a larger context costs memory and a reload for everyone; an admin key, or
  ``model configure --context-size``, sets it). The same context: nothing to do.
* ``num_ctx`` smaller: held to for this request only (:func:`fit_prompt`, :func:`fit_inputs`).
  The prompt is counted by the runner (llama-server's ``/apply-template`` and ``/tokenize``):
  a prompt of ``num_ctx`` tokens or more is refused with Ollama's own words for it, 400 "the
  input length exceeds the context length"; otherwise the answer may use what is left
  (``max_tokens`` capped at ``num_ctx`` minus the prompt, so it ends with done_reason
  "length" where Ollama's would run out of context). Why refuse rather than truncate as Ollama
  does by default: Ollama drops the oldest messages silently, and an answer to a conversation
  the model only partly saw is the surprise its users most often report; the client that asked
  for a small context learns at once, in the error Ollama itself gives when truncation is off
  (``truncate: false``), and can shorten its own history. Embeddings follow Ollama's ``truncate``:
  an input longer than ``num_ctx`` is cut to it (default) or refused (``truncate: false``).
  Image tokens are not counted (the runner still holds every request to its own context), and
  an engine without those endpoints gets only the cap on the answer.
"""

import json

from modelrunner import GatewayError, SchedulerError

from .errors import OllamaError

ADMIN_ONLY = "it needs an admin API key"
TOO_LONG = "the input length exceeds the context length"


def keep_alive_for(caller, keep_alive, keep_seconds):
    """The (keep_alive, seconds) to apply for this caller; 403 for an unload or pin it may not
    ask for (see the module's docstring)."""
    if keep_alive is None or caller.may_change_state:
        return keep_alive, keep_seconds
    if keep_seconds is not None and keep_seconds <= 0:
        what = "unloads the model" if keep_seconds == 0 else "keeps the model loaded forever"
        raise OllamaError(403, f"keep_alive {keep_alive!r} {what} for every client: "
                               f"{ADMIN_ONLY}")
    return None, None  # a duration: the runner keeps its own keep-alive


def runner_context(runtime, model, engine, mode):
    """The context the model's runner has (loading it first, as the request would); returns
    (context or None when the engine does not say, seconds this call waited for a load)."""
    try:
        load = runtime.preload(model.id, engine.name, mode)
        rows = runtime.runners()
    except (GatewayError, SchedulerError) as e:
        raise OllamaError(e.status, str(e)) from None
    for row in rows:
        if (row.get("model_id") == model.id and row.get("backend_name") == engine.name
                and row.get("mode") == mode):
            size = row.get("context_size")
            return (int(size) if isinstance(size, int) and size > 0 else None), load
    return None, load


def request_limit(runtime, model, engine, mode, wanted):
    """For a caller who may not reconfigure: the context to hold this request to (None: the
    runner's own), and the seconds spent loading. ``wanted`` is already capped at the model's
    trained context."""
    context, load = runner_context(runtime, model, engine, mode)
    if context is not None and wanted > context:
        raise OllamaError(403, f"option num_ctx {wanted} is larger than the {context} tokens "
                               f"this model is loaded with: a larger context reloads it for "
                               f"every client, so {ADMIN_ONLY} (or `model configure "
                               f"--context-size`)")
    return (None if context == wanted else wanted), load


def _ask(runtime, req, name, engine, mode, path, body):
    """One JSON request to the runner (``/tokenize``...); None when the runner cannot answer
    it (another engine: no such route)."""
    try:
        answer = runtime.open(name, path, json.dumps(body).encode(), engine=engine.name,
                              mode=mode, dialect="ollama", request=req, observed=False,
                              raise_for_status=False)
    except GatewayError as e:
        raise OllamaError(e.status, str(e)) from None
    try:
        raw = answer.read()
    except GatewayError:
        return None
    if answer.status >= 400:
        return None
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return None


def count_tokens(runtime, req, name, engine, mode, text):
    """Tokens of ``text`` as the runner reads a prompt (special tokens added), or None."""
    data = _ask(runtime, req, name, engine, mode, "/tokenize",
                {"content": text, "add_special": True})
    tokens = data.get("tokens") if isinstance(data, dict) else None
    return tokens if isinstance(tokens, list) else None


def prompt_tokens(runtime, req, name, engine, path, payload):
    """How many tokens the runner will read for ``payload`` (a chat request's messages through
    its chat template, or a completion's prompt), or None when it cannot say."""
    if path == "/v1/completions":
        text = payload.get("prompt")
    else:
        data = _ask(runtime, req, name, engine, "completion", "/apply-template", payload)
        text = data.get("prompt") if isinstance(data, dict) else None
    if not isinstance(text, str):
        return None
    tokens = count_tokens(runtime, req, name, engine, "completion", text)
    return None if tokens is None else len(tokens)


def fit_prompt(runtime, req, name, engine, path, payload, limit):
    """Hold a chat or generate request to ``limit`` tokens: 400 when the prompt alone fills
    it, else ``max_tokens`` at most what is left (see the module's docstring)."""
    counted = prompt_tokens(runtime, req, name, engine, path, payload)
    room = limit if counted is None else limit - counted
    if room <= 0:
        raise OllamaError(400, f"{TOO_LONG} ({counted} tokens; num_ctx is {limit})")
    asked = payload.get("max_tokens")
    payload["max_tokens"] = room if asked is None or asked > room else asked


def fit_inputs(runtime, req, name, engine, inputs, limit, truncate):
    """Embedding inputs held to ``limit`` tokens each: cut to it (token lists, which the runner
    reads as they are) or, with ``truncate`` false, refused (400)."""
    fitted, cut = [], False
    for text in inputs:
        tokens = count_tokens(runtime, req, name, engine, "embedding", text)
        if tokens is None:
            return inputs  # the runner cannot count: its own context holds
        if len(tokens) > limit:
            if truncate is False:
                raise OllamaError(400, f"{TOO_LONG} ({len(tokens)} tokens; num_ctx is {limit})")
            tokens, cut = tokens[:limit], True
        fitted.append(tokens)
    return fitted if cut else inputs
