"""Runtime: what a running server holds, handed to every plugin's ``register_routes``.

One per API process: the settings, the plugin manager, the store, the scheduler client, the
gateway to runners, the engines and sources that plugins registered.
"""

import logging
import threading
from pathlib import Path

from filelock import FileLock

from .gateway import Gateway
from .plugins import get_plugin_manager
from .scheduler import SchedulerClient
from .settings import load_settings
from .sources import find_source
from .store.operation import operation

log = logging.getLogger("modelrunner")


class Runtime:
    def __init__(self, settings=None, pm=None):
        self.settings = settings or load_settings()
        self.pm = pm or get_plugin_manager()
        self.hook = self.pm.hook
        self.store = self.hook.make_store(settings=self.settings)
        self.engines = {}
        self.hook.register_engines(register=lambda e: self.engines.setdefault(e.name, e))
        self.sources = []
        self.hook.register_sources(register=self.sources.append)
        self.scheduler = SchedulerClient(self.settings)
        self.gateway = Gateway(self)
        self._pull_slots = threading.BoundedSemaphore(
            int(self.settings.get("max_concurrent_pulls", 2)))

    def pull(self, ref, progress, token=None):
        """Pull ``ref`` through the source that handles it, for every dialect alike: at most
        ``max_concurrent_pulls`` at once in this process, and one pull of a reference at a time
        across processes (file lock), so a second concurrent pull finds the model cached."""
        source = find_source(self.sources, ref)
        lock = Path(self.settings.models_path) / f".pull-{str(ref).replace('/', '_')}.lock"
        # one store operation: what the pull relies on is never collected meanwhile, and a
        # full disk takes back what it wrote (store/operation.py)
        with self._pull_slots, FileLock(str(lock)), \
                operation(self.store, keep_on_failure=True) as store:
            return source.pull(ref, store, progress, token)

    def push(self, ref, model, progress, token=None):
        return find_source(self.sources, ref).push(ref, model, self.store, progress, token)

    def emit_request(self, event, record):
        """Tell telemetry observers about a request; an observer's failure is only logged."""
        try:
            self.hook.on_request(event=event, record=record)
        except Exception:
            log.exception("on_request observer failed")

    def emit_pull(self, event, progress):
        try:
            self.hook.on_pull(event=event, progress=progress)
        except Exception:
            log.exception("on_pull observer failed")
