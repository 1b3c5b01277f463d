"""Pull a model: resolve the manifest, check its config type, stream the blobs into the store.

Blobs download in parallel threads (gevent's monkey patching turns them into greenlets in the
server), their bodies read 4 MiB at a time over http.client (``blobget``), into
``store.blob_writer``, which writes each read at once and hashes on an OS thread. An interrupted
blob stays as ``<hex>.incomplete`` and the next attempt asks only for the rest (``Range``); the
model enters the store's index only after every blob is in and verified.
"""

import hashlib
import http.client
import re
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from modelrunner import Progress, SourceError, downloads, parse_json, units

from .blobget import open_blob
from .registry import (INDEX_TYPES, MANIFEST_TYPES, MAX_MANIFEST, RETRY_DELAYS,
                       SUPPORTED_CONFIG_TYPES, Registry, httpx)

MAX_PARALLEL = 4
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
ACCEPT = ", ".join(MANIFEST_TYPES + INDEX_TYPES)


def _sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fetch_manifest(reg, reference):
    """(manifest bytes, parsed manifest) for a tag or digest; an index resolves to its first
    manifest. The bytes are checked against the digest asked for or announced."""
    for _ in range(2):  # at most one hop through an index
        response = reg.request("GET", f"manifests/{reference}", headers={"Accept": ACCEPT})
        if response.status_code != 200:
            reg.fail(response, f"manifest {reference}")
        data = response.content
        if len(data) > MAX_MANIFEST:
            raise SourceError(f"manifest {reference} is larger than 4 MiB", status=502)
        expected = reference if reference.startswith("sha256:") else \
            response.headers.get("docker-content-digest", "")
        if expected.startswith("sha256:") and _sha256(data) != expected:
            raise SourceError(f"manifest {reference} does not match its digest {expected}",
                              status=502)
        try:
            manifest = parse_json(data)  # nested too deeply: a ValueError too
        except ValueError:
            raise SourceError(f"manifest {reference} is not JSON", status=502) from None
        if not isinstance(manifest, dict):
            raise SourceError(f"manifest {reference} is not a JSON object", status=502)
        media_type = manifest.get("mediaType") or \
            response.headers.get("content-type", "").split(";")[0].strip()
        if media_type in INDEX_TYPES or (not media_type and "manifests" in manifest):
            entries = manifest.get("manifests") or []
            if not entries:
                raise SourceError(f"index {reference} lists no manifest", status=422)
            first = entries[0] if isinstance(entries, list) else None
            digest = first.get("digest") if isinstance(first, dict) else None
            if not isinstance(digest, str) or not DIGEST.match(digest):
                raise SourceError(f"index {reference} names no valid manifest digest", status=502)
            reference = digest  # a digest, so the manifest fetched next is checked against it
            continue
        if media_type and media_type not in MANIFEST_TYPES:
            raise SourceError(f"unsupported manifest media type {media_type!r} for {reference}: "
                              f"expected an OCI image manifest", status=422)
        return data, manifest
    raise SourceError(f"index {reference} points at another index", status=422)


def check_config_type(manifest, ref):
    config_type = (manifest.get("config") or {}).get("mediaType", "")
    if config_type not in SUPPORTED_CONFIG_TYPES:
        raise SourceError(f"{ref} is not a model this runner can use: config media type "
                          f"{config_type!r} is unsupported (expected one of "
                          f"{', '.join(SUPPORTED_CONFIG_TYPES)})", status=422)


def download_blob(reg, store, descriptor, report, cancelled):
    """Stream one blob into the store (``modelrunner.fetch_blob``: resumed, retried, verified)."""
    digest, size = descriptor["digest"], int(descriptor["size"])
    downloads.fetch_blob(store, digest, size, lambda offset: _open_body(reg, digest, offset),
                         progress=report, cancelled=cancelled,
                         where=f" from {reg.host}/{reg.repository}",
                         transient=TRANSIENT, retry_delays=RETRY_DELAYS)


TRANSIENT = (httpx.TransportError, httpx.StreamError, ConnectionError, TimeoutError,
             http.client.HTTPException)


def _open_body(reg, digest, offset):
    """One GET of the blob's bytes from ``offset`` on (Range when resuming)."""
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    response = open_blob(reg.url(f"blobs/{digest}"), headers, reg.authorization,
                         reg.user_agent, reg.timeout)
    if response is None:  # not a plain 200/206 (auth, errors, retries) or a proxy: httpx
        response = reg.request("GET", f"blobs/{digest}", headers=headers, stream=True)
    try:
        if response.status_code == 416:
            response.close()
            return downloads.BlobBody(None)
        if response.status_code not in (200, 206):
            reg.fail(response, f"blob {digest}")
        start = 0
        if response.status_code == 206:
            text = response.headers.get("content-range", "").removeprefix("bytes ").split("-")[0]
            start = int(text) if text.isdigit() else -1
    except BaseException:
        response.close()
        raise
    readinto = getattr(response, "readinto", None) or downloads.chunks_readinto(response.iter_raw())
    return downloads.BlobBody(start, readinto, response.close)


def pull(ref, store, progress, token=None):
    """Pull ``ref`` into ``store``; returns the Model."""
    reference = ref.digest or ref.tag or "latest"
    tags = [str(ref)] if not ref.digest else []  # a digest pull names the model by its ID only
    with Registry(ref.registry, ref.repository, token=token) as reg:
        manifest_bytes, manifest = fetch_manifest(reg, reference)
        check_config_type(manifest, ref)
        model_id = _sha256(manifest_bytes)
        cached = _cached(store, model_id)
        if cached is not None:
            size = cached.inner_config.get("size") or units.format_size(cached.size)
            if progress is not None:
                progress.message(f"Using cached model: {size}")
            return store.add_model(manifest_bytes, tags=tags) if tags else cached
        descriptors = [manifest["config"]] + list(manifest.get("layers") or [])
        for d in descriptors:
            if not isinstance(d.get("digest"), str) or not isinstance(d.get("size"), int):
                raise SourceError(f"manifest of {ref} has a malformed descriptor", status=502)
        if progress is not None:
            progress.set_total(sum(d["size"] for d in descriptors))
        report = progress or Progress(lambda message: None)
        cancelled = threading.Event()
        unique = list({d["digest"]: d for d in descriptors}.values())
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(unique))) as pool:
            futures = [pool.submit(download_blob, reg, store, d, report, cancelled) for d in unique]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in futures if f in done and f.exception() is not None]
            if failed:
                cancelled.set()  # the others stop at their next chunk
                wait(futures)
                raise failed[0].exception()
    return store.add_model(manifest_bytes, tags=tags)


def _cached(store, model_id):
    try:
        model = store.get(model_id)
    except Exception:
        return None
    return model if model.id == model_id else None
