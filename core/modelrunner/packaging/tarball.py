"""The model tar of DMR's ``POST /models/load`` (and ``docker model save``/``package`` to a file).

Layout (DMR ``pkg/distribution/tarball/target.go``): directory entries ``blobs`` and
``blobs/sha256``, one ``blobs/sha256/<hex>`` per layer, then the config blob, then
``manifest.json`` holding the raw manifest bytes. Both directions stream: the writer copies each
file in chunks into a non-seekable tar stream, and the reader (``tarfile`` mode ``"r|"``) hands each
blob's stream to a callback without buffering it.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from typing import BinaryIO, Callable

from ..bodies import parse_json
from .artifact import Artifact, CHUNK_SIZE
from .errors import PackagingError

MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_SIZE = 4 * 1024 * 1024
# tarfile reads a GNU long name or a PAX header into memory whole, before handing out the member:
# an upload could claim gigabytes there. A real one holds a path and a few numbers.
MAX_HEADER_SIZE = 64 * 1024
_EXTENDED_HEADERS = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                     tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
_BLOB_RE = re.compile(r"^blobs/sha256/([0-9a-f]{64})$")


def _info(name: str, size: int, *, is_dir: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0  # fixed, so the same artifact always gives the same tar bytes
    if is_dir:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = size
        info.mode = 0o666
    return info


def write_model_tar(artifact: Artifact, fileobj: BinaryIO) -> None:
    """Stream ``artifact`` as a DMR model tar into ``fileobj`` (needs only ``write``)."""
    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT, bufsize=CHUNK_SIZE) as tf:
        tf.addfile(_info("blobs", 0, is_dir=True))
        tf.addfile(_info("blobs/sha256", 0, is_dir=True))
        written: set[str] = set()
        for layer in artifact.layers:
            if layer.digest in written:  # the same file twice: one blob
                continue
            written.add(layer.digest)
            with layer.open() as f:
                tf.addfile(_info(_blob_name(layer.digest), layer.size), f)
        if artifact.config_digest not in written:
            tf.addfile(
                _info(_blob_name(artifact.config_digest), len(artifact.config_bytes)),
                io.BytesIO(artifact.config_bytes),
            )
        tf.addfile(_info(MANIFEST_NAME, len(artifact.manifest_bytes)), io.BytesIO(artifact.manifest_bytes))


def _blob_name(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"blobs/{algo}/{hexpart}"


class _HashingReader(io.RawIOBase):
    """Read-through wrapper that sha256-hashes everything read from ``inner``."""

    def __init__(self, inner: BinaryIO):
        self.inner = inner
        self.hash = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.hash.update(data)
        self.count += len(data)
        return data

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(CHUNK_SIZE):
            pass


class _BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses extended headers (long names, PAX) larger than MAX_HEADER_SIZE
    before tarfile reads them."""

    def _proc_member(self, tarfile_):
        if self.type in _EXTENDED_HEADERS and self.size > MAX_HEADER_SIZE:
            raise PackagingError(f"model tar has a {self.size}-byte extended header for "
                                 f"{self.name!r} (at most {MAX_HEADER_SIZE})")
        return super()._proc_member(tarfile_)


def read_model_tar(
    fileobj: BinaryIO,
    write_blob: Callable[[str, BinaryIO], None],
    *,
    have_blob: Callable[[str], bool] | None = None,
    verify: bool = True,
) -> bytes:
    """Read a DMR model tar from a (possibly non-seekable) stream; return the raw manifest bytes.

    For every ``blobs/sha256/<hex>`` member, ``write_blob("sha256:<hex>", stream)`` is called with
    a stream of the member's content (read it before returning; what is left is drained). With
    ``verify``, the content's sha256 is checked after the callback returns and a mismatch raises
    PackagingError, so a store callback should write to a temporary name and only commit after
    this function returns successfully. At the end, every blob the manifest names (config and
    layers) must have been in the tar, or be reported present by ``have_blob``; otherwise
    PackagingError lists what is missing.
    """
    manifest: bytes | None = None
    seen: set[str] = set()
    try:
        with tarfile.open(fileobj=fileobj, mode="r|", bufsize=CHUNK_SIZE,
                          tarinfo=_BoundedTarInfo) as tf:
            for member in tf:
                name = member.name
                while name.startswith("./"):
                    name = name[2:]
                if not member.isfile():
                    continue
                if name == MANIFEST_NAME:
                    if member.size > MAX_MANIFEST_SIZE:
                        raise PackagingError(f"manifest.json is too large ({member.size} bytes)")
                    f = tf.extractfile(member)
                    assert f is not None
                    manifest = f.read()
                    continue
                m = _BLOB_RE.match(name)
                if not m:
                    continue  # unknown entries are ignored, as DMR does
                digest = "sha256:" + m.group(1)
                stream = tf.extractfile(member)
                assert stream is not None
                reader = _HashingReader(stream)
                write_blob(digest, reader)  # type: ignore[arg-type]
                reader.drain()
                if verify and "sha256:" + reader.hash.hexdigest() != digest:
                    raise PackagingError(f"blob {name} does not match its digest (corrupt tar?)")
                seen.add(digest)
    except tarfile.TarError as e:
        raise PackagingError(f"invalid model tar: {e}") from e
    except EOFError as e:
        raise PackagingError(f"truncated model tar: {e}") from e

    if manifest is None:
        raise PackagingError("model tar has no manifest.json")
    try:
        doc = parse_json(manifest)  # nested too deeply: a ValueError too
        required = [doc["config"]["digest"]] + [layer["digest"] for layer in doc.get("layers") or []]
    except (ValueError, KeyError, TypeError) as e:
        raise PackagingError(f"invalid manifest.json in model tar: {e}") from e
    missing = [d for d in dict.fromkeys(required) if d not in seen and not (have_blob and have_blob(d))]
    if missing:
        raise PackagingError(f"model tar is missing blob(s): {', '.join(missing)}")
    return manifest
