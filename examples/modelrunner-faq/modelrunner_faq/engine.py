"""The engine: models of format "faq" (`model package --format faq --file TABLE.json`)."""

import sys

from modelrunner import Engine, EngineError, RunnerCommand


class FaqEngine(Engine):
    name = "faq"                # GET /engines/status, `model ps`, /engines/faq/v1/...
    formats = ("faq",)          # a model whose config says format "faq" comes here
    modes = ("completion",)     # chat: the answer to the last question, from the tables
    install_hint = "pip install modelrunner-faq"

    def command(self, bundle, config, address):
        tables = sorted(bundle.model_dir.glob("*.json"))
        if not tables:
            raise EngineError(f"model {bundle.model_id} has no .json table")
        argv = [sys.executable, "-m", "modelrunner_faq.runner", address, *map(str, tables)]
        return RunnerCommand(argv=argv, health_path="/health")
