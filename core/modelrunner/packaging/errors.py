"""Errors raised while reading model files or building model artifacts."""


class PackagingError(ValueError):
    """A model file cannot be packaged: not GGUF, truncated, a shard missing, a bad tar..."""
