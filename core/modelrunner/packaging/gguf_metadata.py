"""Read the metadata DMR puts in a model config from a GGUF file's header.

DMR uses gpustack/gguf-parser-go (``pkg/distribution/format/gguf.go``); this module reproduces
the fields it stores: architecture, parameter count ("134.52M"), file type ("Q4_1"), context size
and the ``gguf`` key/value map (arrays longer than 50 elements dropped, values rendered like Go's
``fmt``: ints ``%d``, floats ``%f``, bools ``true``/``false``, arrays joined with ", ").

Why not ``gguf.GGUFReader``: it builds a numpy view for every element of every array field, which
takes ~2 s on the 100 MB SmolLM2 file (49k tokens and 49k merges). This module walks the header
itself with ``struct`` over an ``mmap`` and skips long arrays without materialising them (~50 ms),
while still taking the enums and block sizes (``GGUFValueType``, ``GGMLQuantizationType``,
``GGML_QUANT_SIZES``, ``LlamaFileType``) from the ``gguf`` package so new types keep working.
"""

from __future__ import annotations

import collections
import mmap
import os
import struct
from pathlib import Path
from typing import Any

from gguf import GGML_QUANT_SIZES, GGUF_DEFAULT_ALIGNMENT, GGMLQuantizationType, GGUFValueType, LlamaFileType

from .errors import PackagingError
from .units import format_parameters, format_size  # noqa: F401  (re-exported)

GGUF_MAGIC = b"GGUF"
MAX_ARRAY_SIZE = 50  # DMR drops metadata arrays longer than this from the config's "gguf" map
# Arrays of arrays deeper than this are refused: each level is a recursion here (5000 levels
# were a RecursionError, a 500 from /api/create and a traceback from `model package`).
# llama.cpp's own reader refuses any array of arrays, so no model llama.cpp loads has even one
# level; gguf-py can write a few, and 8 leaves room for those.
MAX_ARRAY_NESTING = 8
# Strings longer than this are left out of the config's "gguf" map, as long arrays are: a hostile
# mirror's 500 MB string would be copied into every config.json and listing. Chat templates, the
# longest real ones, are tens of KB. Names (keys, tensors) longer than MAX_NAME are refused
# (llama.cpp's own tensor names are at most 64 bytes).
MAX_STRING_BYTES = 1 << 20
MAX_NAME = 64 << 10

_SCALAR_FMT = {
    GGUFValueType.UINT8: "B",
    GGUFValueType.INT8: "b",
    GGUFValueType.UINT16: "H",
    GGUFValueType.INT16: "h",
    GGUFValueType.UINT32: "I",
    GGUFValueType.INT32: "i",
    GGUFValueType.FLOAT32: "f",
    GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "Q",
    GGUFValueType.INT64: "q",
    GGUFValueType.FLOAT64: "d",
}


class _Truncated(Exception):
    pass




def _go_str(vtype: GGUFValueType, value: Any) -> str:
    if vtype == GGUFValueType.BOOL:
        return "true" if value else "false"
    if vtype in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
        return "%f" % value
    if vtype == GGUFValueType.STRING:
        return value
    return str(int(value))


class _HeaderParser:
    def __init__(self, buf: mmap.mmap | bytes, size: int, endian: str, path: Any = "GGUF file"):
        self.path = path  # for errors
        self.buf = buf
        self.size = size
        self.pos = 0
        self.e = endian

    def need(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise _Truncated()

    def scalar(self, fmt: str) -> Any:
        s = struct.calcsize(fmt)
        self.need(s)
        (v,) = struct.unpack_from(self.e + fmt, self.buf, self.pos)
        self.pos += s
        return v

    def string(self, limit: int | None = None) -> str | None:
        """The next string; None (skipped, not decoded) when longer than ``limit``."""
        n = self.scalar("Q")
        self.need(n)
        if limit is not None and n > limit:
            self.pos += n
            return None
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def value_type(self) -> GGUFValueType:
        t = self.scalar("I")
        try:
            return GGUFValueType(t)
        except ValueError:
            raise PackagingError(f"{self.path}: unknown GGUF metadata value type {t} at offset "
                                 f"{self.pos - 4}") from None

    def value(self, vtype: GGUFValueType, depth: int = 0) -> Any:
        """The value of type ``vtype``; ``depth`` is how many arrays it is inside."""
        if vtype == GGUFValueType.STRING:
            value = self.string(MAX_STRING_BYTES)
            return _SKIPPED if value is None else value
        if vtype == GGUFValueType.ARRAY:
            itype, count = self._array_header(depth)
            if count > MAX_ARRAY_SIZE:
                self.skip_items(itype, count, depth + 1)
                return _SkippedArray(itype, count)
            if itype == GGUFValueType.ARRAY:
                # Arrays of arrays are walked, never built: DMR renders them empty and llama.cpp
                # loads none, while built, 50 items at each of 8 levels of a 1 GB file would be
                # billions of Python objects.
                self.skip_items(itype, count, depth + 1)
                return (itype, [])
            items = [self.value(itype, depth + 1) for _ in range(count)]
            if _SKIPPED in items:  # a string too long to keep: the array goes as a whole
                return _SkippedArray(itype, count)
            return (itype, items)
        return self.scalar(_SCALAR_FMT[vtype])

    def _array_header(self, depth: int) -> tuple[GGUFValueType, int]:
        if depth >= MAX_ARRAY_NESTING:
            raise PackagingError(f"{self.path}: GGUF metadata arrays nested deeper than "
                                 f"{MAX_ARRAY_NESTING} levels at offset {self.pos} (llama.cpp "
                                 f"loads no nested arrays)")
        return self.value_type(), self.scalar("Q")

    def skip_items(self, itype: GGUFValueType, count: int, depth: int = 1) -> None:
        if itype in _SCALAR_FMT:
            n = struct.calcsize(_SCALAR_FMT[itype]) * count
            self.need(n)
            self.pos += n
        elif itype == GGUFValueType.STRING:
            # Walk the length prefixes only; nothing is decoded.
            buf, size, fmt, pos = self.buf, self.size, self.e + "Q", self.pos
            unpack = struct.unpack_from
            for _ in range(count):
                if pos + 8 > size:
                    raise _Truncated()
                pos += 8 + unpack(fmt, buf, pos)[0]
            if pos > size:
                raise _Truncated()
            self.pos = pos
        else:  # nested arrays: each one's header, then its items, skipped the same way
            for _ in range(count):
                inner, n = self._array_header(depth)
                self.skip_items(inner, n, depth + 1)


_SKIPPED = object()  # a string value too long to keep


class _SkippedArray:
    __slots__ = ("itype", "count")

    def __init__(self, itype: GGUFValueType, count: int):
        self.itype = itype
        self.count = count


def _render(vtype: GGUFValueType, value: Any) -> str:
    if vtype == GGUFValueType.ARRAY:
        itype, items = value
        if itype == GGUFValueType.ARRAY:
            return ""  # DMR: nested arrays not supported, rendered empty
        return ", ".join(_go_str(itype, v) for v in items)
    return _go_str(vtype, value)


def _quant_name(file_type: Any, tensor_types: list[int]) -> str:
    if file_type is not None:
        try:
            ft = LlamaFileType(int(file_type))
        except ValueError:
            ft = None
        if ft is not None and ft != LlamaFileType.GUESSED:
            name = ft.name
            for prefix in ("MOSTLY_", "ALL_"):
                if name.startswith(prefix):
                    name = name[len(prefix) :]
            return name
    if not tensor_types:
        return ""
    counts = collections.Counter(tensor_types)
    t = counts.most_common(1)[0][0]
    try:
        return GGMLQuantizationType(t).name
    except ValueError:
        return f"TYPE_{t}"


def read_gguf(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a GGUF file's header and return DMR config fields.

    Returns ``{"architecture", "parameters" ("134.52M"), "parameter_count" (int), "quantization"
    ("Q4_1"), "context_size" (int or None), "gguf" ({key: str}), "tensor_count", "file_size"}``.
    Raises :class:`PackagingError` if the file is not GGUF, is truncated (header or tensor data
    running past the end of the file) or is otherwise malformed.
    """
    path = Path(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise PackagingError(f"cannot open GGUF file {path}: {e.strerror or e}") from e
    with f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        if head[:4] != GGUF_MAGIC:
            raise PackagingError(f"{path} is not a GGUF file (magic {head[:4]!r}, expected {GGUF_MAGIC!r})")
        if len(head) < 8:
            raise PackagingError(f"{path} is a truncated GGUF file (ends inside the header)")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        return _parse(path, mm, size)
    except _Truncated:
        raise PackagingError(
            f"{path} is a truncated GGUF file (header runs past the end of the {size}-byte file)"
        ) from None
    except (struct.error, UnicodeDecodeError, OverflowError, MemoryError) as e:
        raise PackagingError(f"{path} is not a valid GGUF file: {e}") from e
    finally:
        mm.close()


def _parse(path: Path, mm: mmap.mmap, size: int) -> dict[str, Any]:
    (version,) = struct.unpack_from("<I", mm, 4)
    endian = "<"
    if version & 0xFFFF == 0:  # written big-endian
        endian = ">"
        (version,) = struct.unpack_from(">I", mm, 4)
    if version not in (2, 3):
        raise PackagingError(f"{path}: unsupported GGUF version {version} (supported: 2, 3)")
    p = _HeaderParser(mm, size, endian, path)
    p.pos = 8
    n_tensors = p.scalar("Q")
    n_kv = p.scalar("Q")
    # Every tensor info / KV takes at least 8 bytes: larger counts mean garbage or truncation.
    if n_tensors > size // 8 or n_kv > size // 8:
        raise PackagingError(f"{path} is not a valid GGUF file (implausible counts: {n_tensors} tensors, {n_kv} KVs)")

    raw: dict[str, Any] = {}
    rendered: dict[str, str] = {}
    for _ in range(n_kv):
        key = p.string(MAX_NAME)
        if key is None:
            raise PackagingError(f"{path}: a GGUF metadata key longer than {MAX_NAME} bytes")
        vtype = p.value_type()
        value = p.value(vtype)
        if value is _SKIPPED or isinstance(value, _SkippedArray):
            continue
        raw[key] = value
        rendered[key] = _render(vtype, value)

    tensor_types: list[int] = []
    n_params = 0
    data_end = 0  # relative to the start of the data section
    last_name = ""
    for _ in range(n_tensors):
        name = p.string(MAX_NAME)
        if name is None:
            raise PackagingError(f"{path}: a tensor name longer than {MAX_NAME} bytes")
        n_dims = p.scalar("I")
        if n_dims > 8:
            raise PackagingError(f"{path}: tensor {name!r} has {n_dims} dimensions (corrupt file?)")
        n_el = 1
        for _ in range(n_dims):
            n_el *= p.scalar("Q")
        ttype = p.scalar("I")
        offset = p.scalar("Q")
        n_params += n_el
        tensor_types.append(ttype)
        try:
            block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ttype)]
            end = offset + n_el // block * type_size
        except (ValueError, KeyError):
            end = offset  # tensor type unknown to this gguf version: check only its start
        if end >= data_end:
            data_end, last_name = end, name

    alignment = raw.get("general.alignment", GGUF_DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0:
        alignment = GGUF_DEFAULT_ALIGNMENT
    data_start = (p.pos + alignment - 1) // alignment * alignment
    if n_tensors and data_start + data_end > size:
        raise PackagingError(
            f"{path} is a truncated GGUF file: tensor {last_name!r} ends at byte {data_start + data_end} "
            f"but the file has only {size} bytes"
        )

    arch = str(raw.get("general.architecture", "")).strip()
    ctx = raw.get(f"{arch}.context_length") if arch else None
    context_size = int(ctx) if isinstance(ctx, int) and not isinstance(ctx, bool) and 0 < ctx <= 2**31 - 1 else None
    return {
        "architecture": arch,
        "parameters": format_parameters(n_params),
        "parameter_count": n_params,
        "quantization": _quant_name(raw.get("general.file_type"), tensor_types),
        "context_size": context_size,
        "gguf": rendered,
        "tensor_count": n_tensors,
        "file_size": size,
    }
