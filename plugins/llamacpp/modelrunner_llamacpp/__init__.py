"""modelrunner-llamacpp: GGUF models served by llama.cpp's ``llama-server`` (see engine.py)."""

from modelrunner import hookimpl

from .engine import LlamaCppEngine


@hookimpl
def register_engines(register, settings):
    register(LlamaCppEngine(settings))
