"""modelrunner-diffusers: image generation with Diffusers pipelines (see engine.py; the runner
process is runner.py)."""

from modelrunner import hookimpl

from .engine import DiffusersEngine


@hookimpl
def register_engines(register, settings):
    register(DiffusersEngine(settings))
