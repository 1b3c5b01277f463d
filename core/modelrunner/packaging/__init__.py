"""Build Docker Model Runner compatible OCI model artifacts from local files.

- :mod:`.gguf_metadata`: fast GGUF header reader (``read_gguf``).
- :mod:`.artifact`: media types, layers, config/manifest construction and model IDs.
- :mod:`.formats`: a format a plugin adds: any files, a config naming the format.
- :mod:`.tarball`: the ``POST /models/load`` tar format, streamed both ways.
"""

from .errors import PackagingError
from .units import format_parameters, format_size
from .artifact import (
    Artifact,
    Layer,
    build_gguf_artifact,
    build_safetensors_artifact,
    build_dduf_artifact,
    discover_gguf_shards,
    sha256_file,
)
from .formats import build_format_artifact, parse_config_items
from .tarball import write_model_tar, read_model_tar


def __getattr__(name):
    # read_gguf needs the gguf package, whose import pulls in a tokenizer stack (hundreds of ms,
    # tens of MB): loaded on first use, so the API server never pays for it.
    if name == "read_gguf":
        from .gguf_metadata import read_gguf
        return read_gguf
    raise AttributeError(name)

__all__ = [
    "PackagingError",
    "read_gguf",
    "format_parameters",
    "format_size",
    "Artifact",
    "Layer",
    "build_gguf_artifact",
    "build_safetensors_artifact",
    "build_dduf_artifact",
    "build_format_artifact",
    "parse_config_items",
    "discover_gguf_shards",
    "sha256_file",
    "write_model_tar",
    "read_model_tar",
]
