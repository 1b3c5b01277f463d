"""The core's own parts that a plugin's tests drive, so that those tests import nothing past
``modelrunner`` and ``modelrunner.testing`` (a test in tests/core walks them to hold that).

Each is the core's real part, never a stand-in: an engine test builds its engine with the
settings the server would give it, a route test runs the server's whole WSGI app.
"""

from ..bodies import chat_has_images
from ..packaging import write_model_tar
from ..packaging.artifact import assemble
from ..store import FilesystemStore

__all__ = ["load_settings", "select_engine", "create_app", "make_plugin_manager",
           "FilesystemStore", "assemble", "write_model_tar", "chat_has_images"]

# FilesystemStore(path): the core's default store (the ``store`` fixture is an empty one);
# assemble(config, layers, created=...) and write_model_tar(artifact, fileobj): an artifact
# from layers, and a DMR model tar of it (what `model package` writes and `docker model load`
# reads); chat_has_images(chat): whether the gateway's capability check sees an image in an
# OpenAI chat body (what a dialect's translation must keep visible).


def load_settings(**overrides):
    """The settings a plugin's hooks and objects receive (conf/settings.toml < MODELRUNNER_*
    environment), with ``overrides`` on top: build an engine or a source under test with it."""
    from ..settings import load_settings as load
    return load(**overrides)


def select_engine(engines, model_format, requested=None, **kwargs):
    """The engine the gateway picks from ``engines`` ({name: Engine}) for a model of
    ``model_format``, ``requested`` the engine a path names; raises EngineError as the gateway
    would (412 when no installed engine serves the format)."""
    from ..engines import select_engine as select
    return select(engines, model_format, requested, **kwargs)


def create_app(settings=None):
    """The server's WSGI app (every installed plugin's routes, behind the trust layer), for
    ``falcon.testing.TestClient``; ``settings`` from ``load_settings``."""
    from ..app import create_app as create
    return create(settings)


def make_plugin_manager():
    """The plugin manager as the server builds it: the core's defaults and each installed
    distribution's entry point (MODELRUNNER_PLUGINS chooses and orders them). The
    ``plugin_manager`` fixture is the in-process one, with the core's defaults only."""
    from ..plugins import make_plugin_manager as make
    return make()
