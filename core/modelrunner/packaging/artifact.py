"""DMR-compatible OCI model artifacts (config blob + OCI image manifest + raw file layers).

Wire facts (DMR ``pkg/distribution/types/config.go``, ``internal/partial/{layer,partial}.go``):

- Layers are the raw, uncompressed files. Each carries the annotations ``org.cncf.model.filepath``
  (path inside the bundle), ``org.cncf.model.file.metadata+json`` and
  ``org.cncf.model.file.mediatype.untested: "false"``. A layer's digest is also its diff ID.
- The manifest is an OCI image manifest (schemaVersion 2). The model ID is
  ``"sha256:" + sha256(raw manifest bytes)``.

Determinism. The same input files must give the same model ID, so nothing depends on the time of
packaging: JSON is written with sorted keys and compact separators, and the config's
``descriptor.created`` and every layer's metadata ``mtime`` are the newest modification time among
the input files (or an explicit ``created``, e.g. a Hugging Face repo's ``lastModified``). A fixed
constant would also be stable, but the file time keeps ``model ls``'s CREATED column meaningful.
Re-packaging identical files with identical mtimes/permissions yields the identical ID; touching
or chmod-ing a file (like DMR, the metadata records the permission bits) changes it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import stat
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator, Sequence

from ..bodies import parse_json
from .errors import PackagingError
from .units import format_parameters, format_size

# --- media types (DMR pkg/distribution/types/config.go) ---------------------------------------
MEDIA_TYPE_CONFIG_V01 = "application/vnd.docker.ai.model.config.v0.1+json"
MEDIA_TYPE_CONFIG_V02 = "application/vnd.docker.ai.model.config.v0.2+json"
MEDIA_TYPE_GGUF = "application/vnd.docker.ai.gguf.v3"
MEDIA_TYPE_SAFETENSORS = "application/vnd.docker.ai.safetensors"
MEDIA_TYPE_DDUF = "application/vnd.docker.ai.dduf"
MEDIA_TYPE_LICENSE = "application/vnd.docker.ai.license"
MEDIA_TYPE_MMPROJ = "application/vnd.docker.ai.mmproj"
MEDIA_TYPE_CHAT_TEMPLATE = "application/vnd.docker.ai.chat.template.jinja"
MEDIA_TYPE_MODEL_FILE = "application/vnd.docker.ai.model.file"

# --- CNCF ModelPack (DMR pkg/distribution/modelpack/types.go, modelpack/model-spec) -------------
MEDIA_TYPE_CNCF_CONFIG_V1 = "application/vnd.cncf.model.config.v1+json"
MEDIA_TYPE_CNCF_WEIGHT_GGUF = "application/vnd.cncf.model.weight.v1.gguf"
MEDIA_TYPE_CNCF_WEIGHT_SAFETENSORS = "application/vnd.cncf.model.weight.v1.safetensors"

# --- OCI ---------------------------------------------------------------------------------------
MEDIA_TYPE_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

#: Config media types DMR accepts on pull (others -> 422, ``distribution/client.go:checkCompat``).
SUPPORTED_CONFIG_MEDIA_TYPES = (MEDIA_TYPE_CONFIG_V01, MEDIA_TYPE_CONFIG_V02, MEDIA_TYPE_CNCF_CONFIG_V1)
#: Layer media types holding GGUF weights, Docker and ModelPack spellings.
GGUF_MEDIA_TYPES = (MEDIA_TYPE_GGUF, MEDIA_TYPE_CNCF_WEIGHT_GGUF)

# --- annotations ---------------------------------------------------------------------------------
ANNOTATION_FILEPATH = "org.cncf.model.filepath"
ANNOTATION_FILE_METADATA = "org.cncf.model.file.metadata+json"
ANNOTATION_MEDIATYPE_UNTESTED = "org.cncf.model.file.mediatype.untested"

CHUNK_SIZE = 1 << 20
GGUF_SHARD_RE = re.compile(r"^(?P<prefix>.+)-(?P<index>\d{5})-of-(?P<total>\d{5})\.gguf$")
#: HF config.json keys holding the max context, in DMR's priority order (format/safetensors.go).
CONTEXT_SIZE_CONFIG_KEYS = (
    "max_position_embeddings",
    "n_ctx",
    "n_positions",
    "max_length",
    "max_sequence_length",
    "model_max_length",
)
MAX_JSON_HEADER = 100 * 1024 * 1024


def canonical_json(obj: Any) -> bytes:
    """The one JSON serialisation used for every blob: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """Stream a file through sha256 in 1 MiB chunks; return ("sha256:<hex>", size)."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def rfc3339(t: _dt.datetime | float | int | str) -> str:
    """UTC RFC 3339 with whole seconds ("2025-01-02T03:04:05Z"); strings are passed through."""
    if isinstance(t, str):
        return t
    if isinstance(t, (int, float)):
        t = _dt.datetime.fromtimestamp(int(t), tz=_dt.timezone.utc)
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return t.astimezone(_dt.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Layer:
    """One file of the artifact, stored as a raw blob."""

    path: Path
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def filepath(self) -> str:
        """The path of the file inside the bundle (``org.cncf.model.filepath``)."""
        return self.annotations.get(ANNOTATION_FILEPATH, self.path.name)

    def descriptor(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d

    def open(self) -> BinaryIO:
        return open(self.path, "rb")


def make_layer(
    path: str | os.PathLike[str],
    media_type: str,
    *,
    relative_path: str | None = None,
    mtime: str | None = None,
    mode: int | None = None,
) -> Layer:
    """Hash ``path`` (streaming) and describe it as a layer with DMR's annotations.

    ``relative_path`` is the path inside the bundle (default: the file name), ``mtime`` the RFC 3339
    time recorded in the file metadata (default: the file's own mtime), ``mode`` the permission
    bits recorded (default: the file's own; a source packaging files that are already blobs gives
    0o644, since a blob is 0600 in this store and 0644 elsewhere, and the ID must not differ).
    """
    path = Path(path)
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise PackagingError(f"{path} is not a regular file")
        digest, size = sha256_file(path)
    except OSError as e:
        raise PackagingError(f"cannot read {path}: {e.strerror or e}") from e
    metadata = {
        "name": path.name,
        "mode": stat.S_IMODE(st.st_mode) & 0o777 if mode is None else mode,
        "uid": 0,
        "gid": 0,
        "size": size,
        "mtime": mtime or rfc3339(st.st_mtime),
        "typeflag": 0,
    }
    rel = (relative_path or path.name).replace(os.sep, "/")
    annotations = {
        ANNOTATION_FILEPATH: rel,
        ANNOTATION_FILE_METADATA: canonical_json(metadata).decode("utf-8"),
        ANNOTATION_MEDIATYPE_UNTESTED: "false",
    }
    return Layer(path=path, media_type=media_type, digest=digest, size=size, annotations=annotations)


@dataclass(frozen=True)
class Artifact:
    """A built model: config blob, manifest and layers; ``model_id`` = sha256 of the manifest."""

    config: dict[str, Any]
    config_bytes: bytes
    config_media_type: str
    config_digest: str
    manifest: dict[str, Any]
    manifest_bytes: bytes
    layers: tuple[Layer, ...]
    model_id: str

    @property
    def files(self) -> list[str]:
        """Blob digests in DMR's models.json order: the layers, then the config."""
        return [layer.digest for layer in self.layers] + [self.config_digest]

    def blobs(self) -> Iterator[tuple[str, int, Layer | bytes]]:
        """(digest, size, source) for every blob; ``source`` is a Layer or the config bytes."""
        for layer in self.layers:
            yield layer.digest, layer.size, layer
        yield self.config_digest, len(self.config_bytes), self.config_bytes


def assemble(
    model_config: dict[str, Any],
    layers: Sequence[Layer],
    *,
    created: str,
    config_media_type: str = MEDIA_TYPE_CONFIG_V01,
) -> Artifact:
    """Wrap a DMR ``config`` object and layers into config blob + manifest + model ID."""
    config = {
        "config": {k: v for k, v in model_config.items() if v not in (None, "", {})},
        "descriptor": {"created": created},
        "rootfs": {"type": "rootfs", "diff_ids": [layer.digest for layer in layers]},
    }
    config_bytes = canonical_json(config)
    config_digest = sha256_bytes(config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_OCI_MANIFEST,
        "config": {"mediaType": config_media_type, "size": len(config_bytes), "digest": config_digest},
        "layers": [layer.descriptor() for layer in layers],
    }
    manifest_bytes = canonical_json(manifest)
    return Artifact(
        config=config,
        config_bytes=config_bytes,
        config_media_type=config_media_type,
        config_digest=config_digest,
        manifest=manifest,
        manifest_bytes=manifest_bytes,
        layers=tuple(layers),
        model_id=sha256_bytes(manifest_bytes),
    )


def _created_from(paths: Iterable[Path], created: Any) -> str:
    if created is not None:
        return rfc3339(created)
    newest = 0.0
    for p in paths:
        try:
            newest = max(newest, p.stat().st_mtime)
        except OSError as e:
            raise PackagingError(f"cannot read {p}: {e.strerror or e}") from e
    return rfc3339(newest)


def _existing_file(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise PackagingError(f"{what} {p} does not exist or is not a file")
    return p


# --- GGUF ---------------------------------------------------------------------------------------


def discover_gguf_shards(path: str | os.PathLike[str]) -> list[Path]:
    """All shards of a split GGUF given any ``name-0000i-of-0000N.gguf``; ``[path]`` otherwise.

    Raises PackagingError naming the missing shard(s) if the set is incomplete.
    """
    p = _existing_file(path, "GGUF file")
    m = GGUF_SHARD_RE.match(p.name)
    if not m:
        return [p]
    total = int(m["total"])
    if total < 1 or int(m["index"]) < 1 or int(m["index"]) > total:
        raise PackagingError(f"{p.name}: invalid shard numbering")
    shards = [p.parent / f"{m['prefix']}-{i:05d}-of-{total:05d}.gguf" for i in range(1, total + 1)]
    missing = [s.name for s in shards if not s.is_file()]
    if missing:
        raise PackagingError(
            f"incomplete GGUF shard set for {p.name}: found {total - len(missing)} of {total} shards, "
            f"missing {', '.join(missing)}"
        )
    return shards


def build_gguf_artifact(
    gguf_path: str | os.PathLike[str],
    *,
    licenses: Sequence[str | os.PathLike[str]] = (),
    chat_template: str | os.PathLike[str] | None = None,
    mmproj: str | os.PathLike[str] | None = None,
    context_size: int | None = None,
    created: _dt.datetime | str | float | None = None,
    file_mode: int | None = None,
) -> Artifact:
    """Package a GGUF (single file, or the first shard of a split one) as a v0.1 DMR artifact.

    Layers, in order: GGUF shard(s), licenses, multimodal projector, chat template.
    ``context_size`` overrides the GGUF's ``<arch>.context_length``. ``created`` overrides the
    newest input mtime (see the module docstring), ``file_mode`` the files' own permission bits
    (``make_layer``'s ``mode``).
    """
    shards = discover_gguf_shards(gguf_path)
    from .gguf_metadata import read_gguf  # imports the gguf package: only when packaging GGUF

    metas = [read_gguf(s) for s in shards]  # validates every shard (magic, truncation)
    first = metas[0]
    n_params = sum(m["parameter_count"] for m in metas)
    weights_size = sum(m["file_size"] for m in metas)
    if context_size is not None:
        if isinstance(context_size, bool) or not isinstance(context_size, int) or not 0 < context_size <= 2**31 - 1:
            raise PackagingError(f"invalid context size {context_size!r}: must be a positive 32-bit integer")
    extra: list[tuple[Path, str]] = [(_existing_file(p, "license file"), MEDIA_TYPE_LICENSE) for p in licenses]
    if mmproj is not None:
        extra.append((_existing_file(mmproj, "multimodal projector"), MEDIA_TYPE_MMPROJ))
    if chat_template is not None:
        extra.append((_existing_file(chat_template, "chat template"), MEDIA_TYPE_CHAT_TEMPLATE))

    created_s = _created_from([*shards, *(p for p, _ in extra)], created)
    layers = [make_layer(s, MEDIA_TYPE_GGUF, mtime=created_s, mode=file_mode) for s in shards]
    layers += [make_layer(p, mt, mtime=created_s, mode=file_mode) for p, mt in extra]
    model_config = {
        "format": "gguf",
        "quantization": first["quantization"],
        "parameters": format_parameters(n_params),
        "architecture": first["architecture"],
        "size": format_size(weights_size),
        "gguf": first["gguf"],
        "context_size": context_size if context_size is not None else first["context_size"],
    }
    return assemble(model_config, layers, created=created_s, config_media_type=MEDIA_TYPE_CONFIG_V01)


# --- safetensors ------------------------------------------------------------------------------------

_LICENSE_NAMES = ("license", "licence", "copying", "notice")


def classify_file(name: str) -> str:
    """Media type of a file in a model directory, like DMR's ``files.Classify``."""
    lower = name.lower()
    if lower.endswith(".safetensors"):
        return MEDIA_TYPE_SAFETENSORS
    if lower.endswith(".gguf"):
        return MEDIA_TYPE_GGUF
    if lower.endswith(".dduf"):
        return MEDIA_TYPE_DDUF
    if lower.endswith(".jinja"):
        return MEDIA_TYPE_CHAT_TEMPLATE
    stem = lower.rsplit(".", 1)[0] if "." in lower else lower
    if stem.startswith(_LICENSE_NAMES) and (lower == stem or lower.endswith((".txt", ".md"))):
        return MEDIA_TYPE_LICENSE
    return MEDIA_TYPE_MODEL_FILE


def read_safetensors_header(source: str | os.PathLike[str] | BinaryIO) -> dict[str, Any]:
    """Only the JSON header of a safetensors file (8-byte little-endian length, then JSON).

    ``source`` is a path or a file open for reading at the file's start (a member of a DDUF
    zip, say). Raises :class:`PackagingError` for anything that is not a safetensors header.
    """
    if hasattr(source, "read"):
        return _safetensors_header(source, getattr(source, "name", "safetensors file"))
    p = Path(source)
    try:
        with open(p, "rb") as f:
            return _safetensors_header(f, p)
    except OSError as e:
        raise PackagingError(f"cannot read {p}: {e.strerror or e}") from e


def _safetensors_header(f: BinaryIO, p: Any) -> dict[str, Any]:
    head = f.read(8)
    if len(head) < 8:
        raise PackagingError(f"{p} is not a safetensors file (shorter than 8 bytes)")
    (n,) = struct.unpack("<Q", head)
    if n > MAX_JSON_HEADER:
        raise PackagingError(f"{p}: safetensors header length {n} is too large")
    raw = f.read(n)
    if len(raw) < n:
        raise PackagingError(f"{p} is a truncated safetensors file (header cut short)")
    try:
        header = parse_json(raw)  # nested too deeply: a ValueError too
    except ValueError as e:
        raise PackagingError(f"{p}: invalid safetensors JSON header: {e}") from e
    if not isinstance(header, dict):
        raise PackagingError(f"{p}: safetensors header is not a JSON object")
    return header


def _walk_files(root: Path) -> list[tuple[Path, str]]:
    """Non-hidden regular files under root (symlinks followed), sorted like Go's filepath.Walk."""
    out: list[tuple[Path, str]] = []

    def walk(d: Path, prefix: str) -> None:
        for entry in sorted(os.scandir(d), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            rel = f"{prefix}{entry.name}"
            if entry.is_dir():
                walk(Path(entry.path), rel + "/")
            elif entry.is_file():
                out.append((Path(entry.path), rel))

    walk(root, "")
    return out


def _read_hf_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = parse_json(path.read_bytes()[: MAX_JSON_HEADER + 1])
    except (OSError, ValueError) as e:
        raise PackagingError(f"{path}: invalid config.json: {e}") from e
    return data if isinstance(data, dict) else {}


def context_size_from_hf_config(cfg: dict[str, Any]) -> int | None:
    for key in CONTEXT_SIZE_CONFIG_KEYS:
        v = cfg.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 2**31 - 1:
            return v
    text = cfg.get("text_config")
    if isinstance(text, dict):  # multimodal configs nest the language model's settings
        return context_size_from_hf_config(text)
    return None


def read_diffusers_index(root: Path) -> dict[str, Any] | None:
    """A diffusers pipeline directory's ``model_index.json`` (must name a ``_class_name``), or None.

    Its presence is what makes a safetensors directory a diffusers model (config format
    ``"diffusers"``, served by the diffusers engine) rather than a text model for vLLM.
    """
    path = root / "model_index.json"
    if not path.is_file():
        return None
    try:
        data = parse_json(path.read_bytes()[: MAX_JSON_HEADER + 1])
    except (OSError, ValueError) as e:
        raise PackagingError(f"{path}: invalid model_index.json: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("_class_name"), str):
        raise PackagingError(f"{path}: model_index.json names no pipeline _class_name")
    return data


def build_safetensors_artifact(
    directory: str | os.PathLike[str],
    *,
    created: _dt.datetime | str | float | None = None,
    file_mode: int | None = None,
) -> Artifact:
    """Package a Hugging Face style directory as a v0.2 (layer-per-file) artifact.
    ``file_mode``: the permission bits recorded for every file (default: each file's own).

    Every non-hidden file becomes a layer whose ``org.cncf.model.filepath`` is its path relative
    to ``directory``. Metadata: parameters from the safetensors headers (only the JSON headers are
    read), dtype as quantization ("mixed" if several), architecture from config.json
    (``architectures[0]``, else ``model_type``), context size from config.json.

    A directory with a ``model_index.json`` is a diffusers pipeline: its format is ``"diffusers"``
    (not ``"safetensors"``, so the diffusers engine serves it), the architecture is the pipeline
    class (``_class_name``), ``config.diffusers`` keeps ``_class_name``/``_diffusers_version``,
    and there is no context size.
    """
    root = Path(directory)
    if not root.is_dir():
        raise PackagingError(f"{root} is not a directory")
    entries = _walk_files(root)
    weights = [(p, rel) for p, rel in entries if classify_file(p.name) == MEDIA_TYPE_SAFETENSORS]
    if not weights:
        raise PackagingError(f"no .safetensors files found in {root}")

    n_params = 0
    dtypes: Counter[str] = Counter()
    st_meta: dict[str, str] = {}
    n_tensors = 0
    for i, (p, _) in enumerate(weights):
        header = read_safetensors_header(p)
        meta = header.pop("__metadata__", None)
        if i == 0 and isinstance(meta, dict):
            st_meta = {str(k): str(v) for k, v in meta.items()}
        for name, info in header.items():
            if not isinstance(info, dict):
                continue
            shape = info.get("shape") or []
            count = 1
            for dim in shape:
                if not isinstance(dim, int):
                    raise PackagingError(f"{p}: tensor {name!r} has a non-integer shape {shape!r}")
                count *= dim
            n_params += count
            n_tensors += 1
            if info.get("dtype"):
                dtypes[str(info["dtype"])] += 1
    st_meta["tensor_count"] = str(n_tensors)
    quantization = "unknown" if not dtypes else (next(iter(dtypes)) if len(dtypes) == 1 else "mixed")

    pipeline = read_diffusers_index(root)
    if pipeline is not None:
        # A diffusers pipeline: components in sub-folders, no text-model context size.
        fmt, architecture, context_size = "diffusers", pipeline["_class_name"], None
    else:
        fmt = "safetensors"
        hf = _read_hf_config(root / "config.json")
        if not hf:
            hf = _read_hf_config(weights[0][0].parent / "config.json")
        archs = hf.get("architectures")
        architecture = ""
        if isinstance(archs, list) and archs and isinstance(archs[0], str):
            architecture = archs[0]
        elif isinstance(hf.get("model_type"), str):
            architecture = hf["model_type"]
        elif "architecture" in st_meta:
            architecture = st_meta["architecture"]
        context_size = context_size_from_hf_config(hf)

    created_s = _created_from((p for p, _ in entries), created)
    layers = [make_layer(p, classify_file(p.name), relative_path=rel, mtime=created_s, mode=file_mode)
              for p, rel in entries]
    model_config = {
        "format": fmt,
        "quantization": quantization,
        "parameters": format_parameters(n_params),
        "architecture": architecture,
        "size": format_size(sum(p.stat().st_size for p, _ in weights)),
        "safetensors": st_meta,
        "context_size": context_size,
    }
    if pipeline is not None:
        model_config["diffusers"] = {k: str(v) for k, v in pipeline.items()
                                     if k in ("_class_name", "_diffusers_version")}
    return assemble(model_config, layers, created=created_s, config_media_type=MEDIA_TYPE_CONFIG_V02)


# --- DDUF ---------------------------------------------------------------------------------------------


def build_dduf_artifact(
    path: str | os.PathLike[str],
    *,
    created: _dt.datetime | str | float | None = None,
) -> Artifact:
    """Package a DDUF (Diffusers Unified Format, a zip) file as a single-layer v0.1 artifact."""
    p = _existing_file(path, "DDUF file")
    with open(p, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            raise PackagingError(f"{p} is not a DDUF file (not a zip archive)")
    created_s = _created_from([p], created)
    layer = make_layer(p, MEDIA_TYPE_DDUF, mtime=created_s)
    model_config = {"format": "dduf", "size": format_size(layer.size)}
    return assemble(model_config, [layer], created=created_s, config_media_type=MEDIA_TYPE_CONFIG_V01)
