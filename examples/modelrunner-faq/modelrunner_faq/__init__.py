"""modelrunner-faq: a model format ("faq"), its engine (engine.py, runner.py), its route."""

from modelrunner import hookimpl

from .engine import FaqEngine
from .routes import AskResource, FaqDialect


@hookimpl
def register_engines(register, settings):
    register(FaqEngine(settings))


@hookimpl
def register_routes(app, runtime):
    app.add_route("/faq/ask", AskResource(runtime))


@hookimpl
def register_dialects(register):
    register(FaqDialect())
