"""Runtime: what a running server holds, handed to every plugin's ``register_routes``.

One per API process: the settings, the plugin manager, the store, the scheduler client, the
gateway to runners, the engines and sources that plugins registered.
"""

import logging

from .gateway import Gateway
from .plugins import get_plugin_manager
from .scheduler import SchedulerClient
from .settings import load_settings

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
