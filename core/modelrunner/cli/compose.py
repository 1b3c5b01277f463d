"""`model compose up/down/metadata`: modelrunner as Docker Compose's model provider.

A Compose service with ``provider: {type: model, options: {model: ai/x, context-size: 8192}}``
makes Compose run ``docker-model compose --project-name=P metadata``, then
``docker-model compose --project-name=P up --model=ai/x --context-size=8192 SERVICE``
(docker/compose pkg/compose/plugins.go). It passes only the options the metadata lists, reads
the plugin's stdout as JSON lines ``{"type": "info|error|setenv|debug", "message": ...}``, and
gives each ``setenv`` ``KEY=VALUE`` to the dependent services as ``<SERVICE>_KEY``. Like DMR
(cmd/cli/commands/compose.go) `up` pulls the models the store lacks, configures each, and sets
MODEL (the models, comma-separated) and URL (the runner's OpenAI base, ``.../engines/v1/``).
`down` has nothing to undo. Errors go to stdout as ``error`` lines too: Compose reads no stderr.

The CLI names no engine: ``--think`` goes where the server's engines say their thinking switch
lives (GET /engines/options: the ``think`` option's `_configure` block and key), for each engine
that has one; the server keeps the block of the engine that serves the model. ``--backend`` is
DMR's and, as there, unused: the server picks the engine for each model's format.
"""

import json
import sys
import time

import click

# (flag, pflag type Compose sees, default as pflag prints it, help): one list makes both the
# click options and the metadata, so the two cannot disagree.
UP_PARAMETERS = [
    ("model", "stringArray", "[]", "model to use"),
    ("context-size", "int64", "-1", "context size for the model"),
    ("backend", "string", "", "inference backend to use (unused: the server picks it)"),
    ("speculative-draft-model", "string", "", "draft model for speculative decoding"),
    ("speculative-num-tokens", "int", "0", "number of tokens to predict speculatively"),
    ("speculative-min-acceptance-rate", "float64", "0",
     "minimum acceptance rate for speculative decoding"),
    ("mode", "string", "", "backend operation mode (completion, embedding, reranking)"),
    ("think", "string", "",
     "enable reasoning mode for thinking models (true/false/high/medium/low)"),
    ("runtime-flags", "string", "", "raw runtime flags to pass to the inference engine"),
]
REQUIRED = {"model"}
# DMR's --think values as thinking budgets in tokens (-1: unlimited); "true" leaves the engine's
# default, "false" is the engine's own off value (its think option's)
THINK_BUDGETS = {"true": None, "high": -1, "false": 0, "medium": 1024, "low": 256}


class ComposeError(Exception):
    """A failure to report to Compose as an ``error`` line."""


def send(kind, message):
    click.echo(json.dumps({"type": kind, "message": message}))
    sys.stdout.flush()


def setenv(key, value):
    send("setenv", f"{key}={value}")


def metadata():
    """DMR's ProviderMetadata: the parameters of `up` and `down` (down takes none)."""
    def parameter(name, kind, default, description):
        entry = {"name": name, "description": description, "required": name in REQUIRED,
                 "type": kind}
        if default:
            entry["default"] = default
        return entry
    return {"description": "Docker Model Runner",
            "up": {"parameters": [parameter(*p) for p in UP_PARAMETERS]},
            "down": {"parameters": None}}


@click.group(name="compose", hidden=True)
@click.option("--project-name", default="", help="compose project name (unused)")
def compose(project_name):
    """Docker Compose's model provider (called by Compose)."""


@compose.command(name="metadata")
def metadata_command():
    """Metadata for Docker Compose."""
    click.echo(json.dumps(metadata()), nl=False)


@compose.command(name="down", context_settings={"ignore_unknown_options": True,
                                                "allow_extra_args": True})
@click.argument("services", nargs=-1, type=click.UNPROCESSED)
def down(services):
    """Nothing to undo: models stay in the store, runners unload when idle."""


@compose.command(name="up")
@click.argument("services", nargs=-1)
@click.option("--model", "models", multiple=True, help="model to use")
@click.option("--context-size", type=int, default=-1, help="context size for the model")
@click.option("--backend", default="", help="inference backend to use (as DMR: unused)")
@click.option("--speculative-draft-model", default="")
@click.option("--speculative-num-tokens", type=int, default=0)
@click.option("--speculative-min-acceptance-rate", type=float, default=0.0)
@click.option("--mode", default="")
@click.option("--think", default="")
@click.option("--runtime-flags", default="")
def up(services, models, context_size, backend, speculative_draft_model, speculative_num_tokens,
       speculative_min_acceptance_rate, mode, think, runtime_flags):
    """Pull the models the store lacks, configure them, and hand Compose MODEL and URL."""
    try:
        if not models:
            raise ComposeError("options.model is required")
        send("info", "Initializing model runner...")
        from .client import Client
        client = Client()
        pull_missing(client, models)
        setenv("MODEL", ",".join(models))
        body = configure_body(context_size, speculative_draft_model, speculative_num_tokens,
                              speculative_min_acceptance_rate, mode, think, runtime_flags,
                              lambda: engine_options(client))
        for model in models:
            call(client, "POST", "/engines/_configure", json={"model": model, **body})
            send("info", f"Successfully configured backend for model {model}")
        setenv("URL", client.base_url + "/engines/v1/")
    except ComposeError as e:
        send("error", str(e))
        sys.exit(1)


def configure_body(context_size, draft_model, num_tokens, min_acceptance_rate, mode, think,
                   runtime_flags, options=dict):
    """The `_configure` body DMR's `compose up` sends for these options. ``options()``: the
    server's engine descriptions (GET /engines/options), asked only for ``think``."""
    body = {}
    if context_size is not None and context_size > 0:
        send("info", f"Setting context size to {context_size}")
        body["context-size"] = context_size
    if runtime_flags:
        send("info", f"Setting raw runtime flags to {runtime_flags}")
        body["raw-runtime-flags"] = runtime_flags
    if draft_model or num_tokens > 0 or min_acceptance_rate > 0:
        send("info", f"Enabling speculative decoding with draft model: {draft_model}")
        body["speculative"] = {"draft_model": draft_model, "num_tokens": num_tokens,
                               "min_acceptance_rate": min_acceptance_rate}
    if mode:
        if mode.lower() not in ("completion", "embedding", "reranking"):
            raise ComposeError(f'invalid mode "{mode}": must be one of completion, embedding, '
                               "reranking")
        send("info", f"Setting backend mode to {mode}")
        body["mode"] = mode.lower()
    if think:
        if think.lower() not in THINK_BUDGETS:
            raise ComposeError(f'invalid think value "{think}": must be one of true, false, '
                               "high, medium, low")
        send("info", f"Setting think mode to {think}")
        body.update(think_blocks(think.lower(), options()))
    return body


def think_blocks(think, engines):
    """{block: {key: value}} that sets thinking to ``think`` for every engine of ``engines``
    (GET /engines/options) with a ``think`` option: its own off value for "false", a budget
    for "high"/"medium"/"low" (which needs an integer option on the same key). "true" sets
    nothing: the engine's default thinks."""
    if THINK_BUDGETS[think] is None:
        return {}
    blocks, unable = {}, []
    for name, engine in sorted(engines.items()):
        options = engine.get("options") or []
        switch = next((o for o in options if o.get("flag") == "think"), None)
        if switch is None:
            continue
        block, key = switch.get("block"), switch.get("key")
        if think == "false" and "false" in (switch.get("values") or {}):
            value = switch["values"]["false"]
        elif any(o.get("block") == block and o.get("key") == key and o.get("type") == "int"
                 for o in options):
            value = THINK_BUDGETS[think]
        else:
            unable.append(name)
            continue
        blocks.setdefault(block, {})[key] = value
    if not blocks:
        raise ComposeError(f'think "{think}": ' + (
            f"only true or false for the engines {', '.join(unable)} (no thinking budget)"
            if unable else "no engine of the server has a thinking option"))
    return blocks


def engine_options(client):
    """The server's engines and their `_configure` options (GET /engines/options)."""
    return call(client, "GET", "/engines/options").json()


def pull_missing(client, models):
    """Pull each model neither the store's IDs nor its tags name (compared normalized, so
    ``ai/x`` finds ``docker.io/ai/x:latest``); pull progress becomes ``info`` lines."""
    from .. import reference as refs
    present = set()
    for m in call(client, "GET", "/models").json():
        present.add(m["id"])
        present.update(m.get("tags") or [])
    for model in models:
        try:
            normalized = refs.normalize(model)
        except refs.InvalidReference as e:
            raise ComposeError(f"Failed to pull model: {e}")
        if model in present or normalized in present:
            continue
        pull(client, model)


def pull(client, model):
    from .http import HTTPError
    from .client import error_text
    last = 0.0
    try:
        with client.http.stream("POST", "/models/create", json={"from": model},
                                headers={"Accept": "application/json"}) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise ComposeError(f"Failed to pull model: {error_text(resp)}")
            for line in resp.iter_lines():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                kind = event.get("type")
                if kind == "error":
                    raise ComposeError(f"Failed to pull model: {event.get('message')}")
                now = time.monotonic()
                if kind != "progress" or now - last >= 1:
                    last = now
                    send("info", str(event.get("message", "")).strip())
    except HTTPError as e:
        raise ComposeError(f"Failed to pull model: {e}")


def call(client, method, path, **kwargs):
    """One request; a transport failure or an error status becomes a ComposeError."""
    from .client import error_text
    from .http import HTTPError
    try:
        resp = client.http.request(method, path, **kwargs)
    except HTTPError as e:
        raise ComposeError(f"modelrunner is not reachable at {client.base_url}: {e}")
    if resp.status_code >= 400:
        raise ComposeError(error_text(resp))
    return resp
