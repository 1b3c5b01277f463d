"""The whole plugin contract of modelrunner.

Every plugin, including the core's own defaults, talks to the server only through these hooks.
A plugin is a module (or a package installed with an entry point in the group ``modelrunner``)
that defines functions named like the specs below, decorated with ``@modelrunner.hookimpl``.

The shape follows simonw/llm: a ``register_*`` hook receives a ``register`` callback and calls it
once per thing it provides, so one plugin can provide several engines or sources.

Areas:

* stores      ``make_store`` (first result wins; the core's filesystem store is the default)
* sources     ``register_sources``: remote places references resolve to (OCI registries, Hugging Face)
* engines     ``register_engines``: how to run a model format in its own runner process
* placement   ``make_placement``: where runner processes start (first result wins; local default)
* dialects    ``register_routes``: Falcon routes of an API surface (OpenAI, Ollama, metrics...);
              ``register_dialects``: how a surface renders its errors
* commands    ``register_commands``: extra ``model`` CLI sub-commands
* serving     ``on_server_start``, ``on_worker_exit``: set-up in the gunicorn master
* telemetry   ``on_request``, ``on_runner``, ``on_pull``: events any number of plugins observe

The objects passed around are all importable from ``modelrunner`` (Engine, Source, Progress, the
Store protocol, Model, Runtime...); docs/plugins.md is the guide, with which process calls what.
"""

import pluggy

hookspec = pluggy.HookspecMarker("modelrunner")
hookimpl = pluggy.HookimplMarker("modelrunner")


# -- stores -------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def make_store(settings):
    """Return the Store that holds blobs, manifests, the tag index and bundles.

    The first plugin to return a store wins; the core registers the filesystem store (DMR's
    layout under ``settings.models_path``) last, so a plugin can replace it.
    """


# -- sources ------------------------------------------------------------------------------------


@hookspec
def register_sources(register, settings):
    """Call ``register(source)`` for each ``modelrunner.Source`` this plugin provides.

    Called once per process that pulls (API workers). ``settings`` are modelrunner's settings.

    A source says which references it handles (``source.handles(ref)``) and pulls or pushes them
    to and from the store, reporting progress. The first registered source that handles a
    reference gets it; registry sources should handle everything that is not claimed by a more
    specific source, so they register with ``fallback = True``.
    """


# -- engines ------------------------------------------------------------------------------------


@hookspec
def register_engines(register, settings):
    """Call ``register(engine)`` for each ``modelrunner.Engine`` this plugin provides.

    An engine declares data (name, formats, modes, install hint, runtime-flag allow-list,
    ``_configure`` blocks, default settings) and builds the command that starts a runner
    process for a model bundle at an address, and says how much memory that runner will need.
    Called in the scheduler process (which starts runners) and in API workers (which pick an
    engine for a model and show /engines/status). ``settings`` are modelrunner's settings.
    """


# -- placement ----------------------------------------------------------------------------------


@hookspec(firstresult=True)
def make_placement(settings):
    """Return the ``modelrunner.Placement`` that starts runner processes, or None.

    Called once in the scheduler process. The first plugin to return one wins; the core's
    ``LocalPlacement`` (children of the scheduler on Unix sockets) is registered last, so it is
    the default. A placement chooses where a runner goes (``place``), starts the engine's
    command there and waits for its health (``start``), watches it (``alive``) and stops it
    (``terminate``/``stop``). A runner it reports as ``network`` gets a per-runner secret in the
    engine's ``api_key_env``, which the gateway sends as ``Authorization: Bearer``.
    """


# -- dialects and other HTTP surfaces -----------------------------------------------------------


@hookspec
def register_routes(app, runtime):
    """Add Falcon routes to ``app`` (a ``falcon.App``).

    ``runtime`` (``modelrunner.Runtime``) is the facade a route needs: the settings, the store,
    finding models, opening a request to a runner, listing, configuring and unloading runners,
    pulling and pushing. Routes are added with ``app.add_route(path, resource)``; resources stay
    plain Falcon resources and raise ``modelrunner.ModelRunnerError`` for errors. A resource
    with a ``max_body`` attribute (bytes, or None for no limit) replaces the ``max_body``
    setting for its route; ``modelrunner.UPLOAD`` marks a model upload, bounded by the
    ``max_upload`` setting and the store's free disk space. With API keys configured, a route
    needs an admin key unless its resource says ``scope = "inference"`` (or
    ``{"GET": "inference"}`` per method): mark chat, completion, embedding and model-listing
    resources so. The trust boundary (modelrunner.trust) runs before any resource. Called once
    per API worker.
    """


@hookspec
def register_dialects(register):
    """Call ``register(dialect)`` for each ``modelrunner.Dialect`` this plugin provides.

    A dialect renders the errors of the routes whose resources name it (``dialect = "openai"``
    as a class attribute): its ``error_body(error)`` gives the body for a
    ``modelrunner.ModelRunnerError`` (status, kind, param, code; ``Unsupported`` and
    ``ContextExceeded`` say what the model lacks). Routes of no dialect answer DMR's plain text.
    Called once per API worker.
    """


# -- CLI ----------------------------------------------------------------------------------------


@hookspec
def register_commands(cli):
    """Add sub-commands to the ``model`` click group ``cli``.

    The CLI is a thin HTTP client: a command should talk to the server, never to the store.
    """


# -- serving ------------------------------------------------------------------------------------


@hookspec
def on_server_start(settings):
    """``model serve`` is starting: called once in the gunicorn master, before any worker.

    For set-up that workers inherit (environment variables, folders), e.g. Prometheus'
    multiprocess folder. Not called when the app runs under another WSGI server.
    """


@hookspec
def on_worker_exit(settings, pid):
    """An API worker process ``pid`` exited (called in the gunicorn master)."""


# -- telemetry ----------------------------------------------------------------------------------


@hookspec
def on_request(event, record):
    """A request to a model started or finished.

    ``event`` is "started" or "finished". ``record`` is a ``modelrunner.telemetry.RequestRecord``:
    model, engine, mode, path, request body, and when finished the status, the response (streams
    reassembled), usage (prompt/completion tokens as the runner reported them), finish reason and
    timings (seconds: ttft, duration, inter-token latencies). Called in the API worker process.
    """


@hookspec
def on_runner(event, runner):
    """A runner "loading", "loaded", "unloaded", "crashed" or "failed".

    ``runner`` is a dict: model, model_id, engine, mode, pid, socket, memory (estimated bytes),
    load_seconds (for "loaded") and error (for "failed"/"crashed"). Called in the scheduler process.
    """


@hookspec
def on_pull(event, progress):
    """Pull or push progress: ``event`` is "progress", "success" or "error".

    ``progress`` is the DMR progress message dict (type, message, total, layer{id,size,current}).
    """
