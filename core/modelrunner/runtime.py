"""Runtime: the facade every plugin's ``register_routes`` gets, one per API worker.

It holds the settings, the store, the engines and sources that plugins registered, and answers
what a route needs: find a model, open a request to its runner, list, configure and unload
runners, pull and push. Plugins use these methods; ``scheduler`` and ``gateway`` are the core's
own machinery behind them, not part of the plugin API.
"""

import logging
import os
import threading
from pathlib import Path

from .gateway import Gateway
from .locks import file_lock
from .plugins import get_plugin_manager
from .scheduler import SchedulerClient
from .settings import load_settings
from .sources import find_source
from .store.operation import operation

log = logging.getLogger("modelrunner")


class Runtime:
    """What a route reads: ``settings`` (``.get(key, default)``), ``store`` (the ``Store``),
    ``engines`` ({name: ``Engine``}, the first registered of a name kept) and ``sources`` (the
    ``Source``s in registration order); and the methods below. docs/plugins.md, "The Runtime"."""

    def __init__(self, settings=None, pm=None):
        self.settings = settings or load_settings()
        self.pm = pm or get_plugin_manager()
        self.hook = self.pm.hook
        self.store = self.hook.make_store(settings=self.settings)
        self.engines = {}
        self.hook.register_engines(register=lambda e: self.engines.setdefault(e.name, e),
                                   settings=self.settings)
        self.sources = []
        self.hook.register_sources(register=self.sources.append, settings=self.settings)
        self.scheduler = SchedulerClient(self.settings)
        self.gateway = Gateway(self)
        self._pull_slots = threading.BoundedSemaphore(
            int(self.settings.get("max_concurrent_pulls", 2)))

    # -- models ---------------------------------------------------------------------------------

    def find_model(self, name):
        """The stored ``Model`` a request names (tag, name or ID); 400 for a bad reference, 404
        for an unknown model (``GatewayError``). The server never pulls on its own."""
        return self.gateway.find_model(name)

    def engine_for(self, model, requested=None):
        """The ``Engine`` that serves ``model``: ``requested`` (the engine a path names), else
        the one the ``format_engines`` setting names for its format, else the first registered
        that serves the format; ``GatewayError`` when none does."""
        return self.gateway.engine_for(model, requested)

    # -- runners --------------------------------------------------------------------------------

    def open(self, model_name, path, body, *, engine=None, mode=None, keep_alive=None,
             headers=None, dialect="openai", request=None, observed=True,
             raise_for_status=True):
        """Send ``body`` (bytes, an OpenAI API request) to ``path`` on the runner of
        ``model_name``, loading it first if needed; returns a ``RunnerResponse`` to stream.
        ``mode`` defaults from the path (embeddings, rerank, images...). The request is
        recorded and reported to ``on_request`` observers under ``dialect``; with ``observed``
        False it is not (a dialect's own helper call, such as counting a prompt's tokens, is
        not a request of the client's: it would show in the inspector and in /metrics).

        What the model cannot do is raised before anything loads (``Unsupported``: images to a
        model without a projector, a mode no engine of its format has), and a runner's error
        answer is raised with its status (``ContextExceeded`` for a prompt longer than the
        context, else ``GatewayError``), for the route's dialect to render; with
        ``raise_for_status`` False the error answer is returned instead."""
        return self.gateway.open(model_name, path, body, engine=engine, mode=mode,
                                 keep_alive=keep_alive, headers=headers, dialect=dialect,
                                 request=request, observed=observed,
                                 raise_for_status=raise_for_status)

    def check(self, model_name, path, body=b"", engine=None, mode=None):
        """Raise what ``open`` would raise before anything loads (no such model, no engine or
        mode for it, media it cannot read or that the runner would download), without sending:
        for a dialect that must change something first (a context to reload with). Returns
        ``(model, engine, mode)``."""
        return self.gateway.check(model_name, path, body, engine, mode)

    def preload(self, model_name, engine=None, mode="completion", keep_alive=None):
        """Load a model's runner and answer nothing else (``X-Preload-Only``); returns the
        seconds this call waited for a load (0.0 when the runner was already loaded)."""
        return self.gateway.preload(model_name, engine, mode, keep_alive)

    def runners(self, start=True):
        """The runners, as GET /engines/ps rows: dicts with ``backend_name`` (the engine),
        ``model_name`` (the model's first tag, else its ID), ``model_id``, ``mode``, ``pid``,
        ``node``, ``address``, ``memory`` (bytes), ``in_use``, ``loading``, ``leases``,
        ``keep_alive`` (seconds, -1 never), ``last_used``, ``expires_at`` (epoch seconds, None
        for never or in use), ``load_seconds``, ``context_size``, ``context_reason`` and
        ``details``. One row per (engine, model, mode). With ``start`` False, an empty list
        rather than starting a scheduler just to ask."""
        if not start and not os.path.exists(self.scheduler.socket):
            return []
        return self.scheduler.ps()

    def unload(self, models=None, backend=None, everything=False):
        """Unload the runners of ``models`` (IDs or tags), or of one engine (``backend``, its
        name), or all: idle ones at once, busy ones when their requests finish. Returns
        ``{"unloaded_runners": n}``."""
        return self.scheduler.unload(models=models, backend=backend, everything=everything)

    def configure(self, model_id, engine, mode="completion", **fields):
        """Persist the configuration of the runner of (``engine``, ``model_id``, ``mode``):
        ``engine`` is the engine's name, and each mode has its own configuration and runner.
        ``fields``: ``context_size``, ``runtime_flags``, ``keep_alive``, ``extra`` (the engine's
        ``configure_blocks``, merged key by key into what is set) and ``persist``. The values
        are validated first (runtime flags against the engine's allow-list, ``extra`` by its
        ``validate_configure``); a runner of that key that is not in use is unloaded, so the
        next request starts it anew; the new ``RunnerConfig`` is returned as a dict.
        ``persist=False``: only for the next runner the scheduler starts, until it unloads,
        never written to the store (a request's option, such as Ollama's num_ctx).
        ``SchedulerError`` with the status: 400 for a bad value, 404 for an unknown model, 409
        for a busy runner, 412 for an engine not installed."""
        return self.scheduler.configure(model_id, engine, mode, **fields)

    # -- transfer -------------------------------------------------------------------------------

    def find_source(self, ref):
        """The ``Source`` that pulls and pushes ``ref`` (412 when no plugin handles it)."""
        return find_source(self.sources, ref)

    def pull(self, ref, progress, token=None):
        """Pull ``ref`` through the source that handles it, for every dialect alike: at most
        ``max_concurrent_pulls`` at once in this process, and one pull of a reference at a time
        across processes (file lock), so a second concurrent pull finds the model cached."""
        source = self.find_source(ref)
        lock = Path(self.settings.models_path) / f".pull-{str(ref).replace('/', '_')}.lock"
        # one store operation: what the pull relies on is never collected meanwhile, and a
        # full disk takes back what it wrote (store/operation.py)
        with self._pull_slots, file_lock(lock), \
                operation(self.store, keep_on_failure=True) as store:
            return source.pull(ref, store, progress, token)

    def push(self, ref, model, progress, token=None):
        """Push the stored ``model`` to ``ref`` through the source that handles ``ref``."""
        return self.find_source(ref).push(ref, model, self.store, progress, token)

    # -- telemetry ------------------------------------------------------------------------------

    def emit_request(self, event, record):
        """Tell telemetry observers about a request; an observer's failure is only logged."""
        if not getattr(record, "observed", True):
            return
        try:
            self.hook.on_request(event=event, record=record)
        except Exception:
            log.exception("on_request observer failed")

    def emit_pull(self, event, progress):
        """Tell ``on_pull`` observers about a pull or push; an observer's failure is only
        logged."""
        try:
            self.hook.on_pull(event=event, progress=progress)
        except Exception:
            log.exception("on_pull observer failed")
