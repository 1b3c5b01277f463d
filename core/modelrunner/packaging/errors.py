"""Errors raised while reading model files or building model artifacts."""

from ..errors import ModelRunnerError


class PackagingError(ModelRunnerError, ValueError):
    """A model file cannot be packaged: not GGUF, truncated, a shard missing, a bad tar..."""

    status = 400
