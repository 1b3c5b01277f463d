"""Artifacts of a model format a plugin adds: any files, and a config that names the format.

DMR's formats (GGUF, safetensors, DDUF) have packagers that read their files; a format that an
engine plugin brings is one the core cannot read. ``model package --format NAME --file F ...``
packages the files as they are, one layer each (``org.cncf.model.filepath`` = the file's name,
so the engine finds them in ``bundle.model_dir``), with a config whose ``format`` is NAME: the
gateway then sends the model to the engine that declares NAME in its ``formats``.

Why no packaging hook: the engine is the one judge of its files, and it judges them where it
runs them (a runner that cannot read its model fails its load with its own words). A hook would
make the CLI load plugins, and a model packaged on a machine without the plugin (to push it to
a registry) would be refused for no reason.

Layers keep DMR's classification (``classify_file``: a license, a chat template, a ``.gguf``
keep their media types); the format's own files, which DMR would call generic
(``MEDIA_TYPE_MODEL_FILE``), get the format's media type, ``application/vnd.docker.ai.NAME``
(``format_media_type``): a registry, or a client that reads only the manifest, tells a whisper
model's weights from a FAQ table without reading the config. The store and the bundle go by the
layers' file paths, never by that type, so any format packs and runs the same way.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from .artifact import (MEDIA_TYPE_CONFIG_V02, MEDIA_TYPE_LICENSE, MEDIA_TYPE_MODEL_FILE, Artifact,
                       _created_from, _existing_file, assemble, classify_file, make_layer)
from .errors import PackagingError
from .units import format_size

#: DMR's own formats, and the option that packages each from files it reads
BUILT_IN = {"gguf": "--gguf", "safetensors": "--safetensors-dir",
            "diffusers": "--safetensors-dir (a pipeline directory)", "dduf": "--dduf"}
FORMAT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
CONFIG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
#: config keys the packager writes itself
RESERVED_KEYS = ("format", "size")


def check_format_name(name: str) -> str:
    """``name`` if a plugin's format may have it; PackagingError otherwise (DMR's own formats
    are packaged by the options that read their files, so their media types stay DMR's)."""
    if name in BUILT_IN:
        raise PackagingError(f"{name} models are packaged with {BUILT_IN[name]}, not --format")
    if not isinstance(name, str) or not FORMAT_NAME.fullmatch(name):
        raise PackagingError(f"invalid format name {name!r}: lowercase letters, digits, '.', '_' "
                             f"and '-', starting with a letter or digit, at most 64 characters")
    return name


def format_media_type(fmt: str) -> str:
    """The media type of the model files of a plugin's format ``fmt``."""
    return f"application/vnd.docker.ai.{check_format_name(fmt)}"


def _layer_media_type(fmt: str, path: Path) -> str:
    media_type = classify_file(path.name)
    return format_media_type(fmt) if media_type == MEDIA_TYPE_MODEL_FILE else media_type


def parse_config_items(items: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as config entries. A VALUE that is JSON is that JSON (``4096``,
    ``true``, ``{"a": 1}``, ``"007"``), anything else is the text as given."""
    config: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not CONFIG_KEY.fullmatch(key):
            raise PackagingError(f"invalid config item {item!r}: want KEY=VALUE, KEY a name")
        if key in RESERVED_KEYS:
            raise PackagingError(f"config key {key!r} is written by the packager")
        try:
            config[key] = json.loads(value)
        except ValueError:
            config[key] = value
    return config


def build_format_artifact(
    fmt: str,
    files: Sequence[str | os.PathLike[str]],
    *,
    config: dict[str, Any] | None = None,
    licenses: Sequence[str | os.PathLike[str]] = (),
    created: _dt.datetime | str | float | None = None,
    file_mode: int | None = None,
) -> Artifact:
    """Package ``files`` (and ``licenses``) as a v0.2 artifact of format ``fmt``.

    ``config`` adds entries to the artifact's config (``context_size``, or whatever the format's
    engine reads); ``size`` is the files' total. ``created`` and ``file_mode`` as for
    ``build_gguf_artifact``.
    """
    check_format_name(fmt)
    if not files:
        raise PackagingError(f"a {fmt} model needs at least one --file")
    extra = dict(config or {})
    for key in RESERVED_KEYS:
        if key in extra:
            raise PackagingError(f"config key {key!r} is written by the packager")
    size = extra.get("context_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int)
                             or not 0 < size <= 2**31 - 1):
        raise PackagingError(f"invalid context size {size!r}: must be a positive 32-bit integer")
    paths = [(_existing_file(p, "model file"), None) for p in files]
    paths += [(_existing_file(p, "license file"), MEDIA_TYPE_LICENSE) for p in licenses]
    seen: dict[str, Path] = {}
    for p, _ in paths:
        if p.name in seen:
            raise PackagingError(f"{seen[p.name]} and {p} have one name, {p.name!r}: a model's "
                                 f"files need distinct names")
        seen[p.name] = p
    created_s = _created_from([p for p, _ in paths], created)
    layers = [make_layer(p, media_type or _layer_media_type(fmt, p), mtime=created_s,
                         mode=file_mode)
              for p, media_type in paths]
    model_config = {**extra, "format": fmt,
                    "size": format_size(sum(layer.size for layer, (_, mt) in zip(layers, paths)
                                            if mt is None))}
    return assemble(model_config, layers, created=created_s, config_media_type=MEDIA_TYPE_CONFIG_V02)
