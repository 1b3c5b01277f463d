"""modelrunner-vllm: safetensors models served by ``vllm serve`` (see engine.py)."""

from modelrunner import hookimpl

from .engine import VLLMEngine


@hookimpl
def register_engines(register, settings):
    register(VLLMEngine(settings))
