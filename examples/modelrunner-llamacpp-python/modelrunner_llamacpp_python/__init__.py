"""modelrunner-llamacpp-python: GGUF models served by llama-cpp-python's server (engine.py)."""

from modelrunner import hookimpl

from .engine import LlamaCppPythonEngine


@hookimpl
def register_engines(register, settings):
    register(LlamaCppPythonEngine(settings))
