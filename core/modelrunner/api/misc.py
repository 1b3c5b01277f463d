"""GET / and /version (DMR), GET /plugins (what `model plugins` shows)."""

from .. import __version__
from ..plugins import describe_plugins


class RootResource:
    def on_get(self, req, resp):
        resp.content_type = "text/plain"
        resp.text = "Docker Model Runner is running"

    def on_head(self, req, resp):
        resp.content_type = "text/plain"


class VersionResource:
    def on_get(self, req, resp):
        resp.media = {"version": __version__}


class PluginsResource:
    def __init__(self, runtime):
        self.runtime = runtime

    def on_get(self, req, resp):
        resp.media = describe_plugins(self.runtime.pm)
