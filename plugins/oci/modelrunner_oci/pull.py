"""Pull a model: resolve the manifest, check its config type, stream the blobs into the store.

Blobs download in parallel threads (gevent's monkey patching turns them into greenlets in the
server), their bodies read 4 MiB at a time over http.client (``blobget``), into
``store.blob_writer``, which writes each read at once and hashes on an OS thread. An interrupted
blob stays as ``<hex>.incomplete`` and the next attempt asks only for the rest (``Range``); the
model enters the store's index only after every blob is in and verified.
"""

import hashlib
import http.client
import json
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from modelrunner.sources import Progress, SourceError, chunks_readinto, human_size
from modelrunner.store import DigestMismatch

from .blobget import open_blob
from .registry import (INDEX_TYPES, MANIFEST_TYPES, MAX_MANIFEST, RETRY_DELAYS,
                       SUPPORTED_CONFIG_TYPES, Registry, httpx)

MAX_PARALLEL = 4
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
            manifest = json.loads(data)
        except ValueError:
            raise SourceError(f"manifest {reference} is not JSON", status=502) from None
        media_type = manifest.get("mediaType") or \
            response.headers.get("content-type", "").split(";")[0].strip()
        if media_type in INDEX_TYPES or (not media_type and "manifests" in manifest):
            entries = manifest.get("manifests") or []
            if not entries:
                raise SourceError(f"index {reference} lists no manifest", status=422)
            reference = entries[0]["digest"]
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
    """Stream one blob into the store, resuming a partial download; retried twice when the
    connection breaks (each retry resumes where the bytes stopped)."""
    digest, size = descriptor["digest"], int(descriptor["size"])
    if store.has_blob(digest):
        report.layer(digest, size, size)
        return
    writer = store.blob_writer(digest, size)
    try:
        failures = 0
        while writer.offset < size:
            try:
                _fetch_rest(reg, writer, digest, size, report, cancelled)
                if writer.offset < size:
                    raise httpx.RemoteProtocolError("body ended early")
            except (httpx.TransportError, httpx.StreamError, ConnectionError, TimeoutError,
                    http.client.HTTPException) as e:
                if failures >= len(RETRY_DELAYS):
                    raise SourceError(f"download of {digest} broke off at {writer.offset} of "
                                      f"{size} bytes: {e or type(e).__name__}", status=502) from None
                time.sleep(RETRY_DELAYS[failures])
                failures += 1
        try:
            writer.commit()
        except DigestMismatch as e:  # the partial file is gone, nothing stored
            raise SourceError(f"blob {digest} from {reg.host}/{reg.repository} failed "
                              f"verification: {e}", status=502) from None
    finally:
        writer.close()


def _fetch_rest(reg, writer, digest, size, report, cancelled):
    """One GET of the bytes from ``writer.offset`` on (Range when resuming)."""
    headers = {"Accept-Encoding": "identity"}
    if writer.offset:
        headers["Range"] = f"bytes={writer.offset}-"
    response = open_blob(reg.url(f"blobs/{digest}"), headers, reg.authorization,
                         reg.user_agent, reg.timeout)
    if response is None:  # not a plain 200/206 (auth, errors, retries) or a proxy: httpx
        response = reg.request("GET", f"blobs/{digest}", headers=headers, stream=True)
    try:
        if response.status_code == 416:           # the partial file is bad: start over
            writer.restart()
            return _fetch_rest(reg, writer, digest, size, report, cancelled)
        if response.status_code not in (200, 206):
            reg.fail(response, f"blob {digest}")
        if response.status_code == 200 and writer.offset:
            writer.restart()                       # the server ignored Range
        elif response.status_code == 206:
            start = response.headers.get("content-range", "").removeprefix("bytes ").split("-")[0]
            if start != str(writer.offset):
                raise SourceError(f"registry answered a Range request for {digest} with bytes "
                                  f"from {start!r}", status=502)

        def on_chunk(offset):
            report.layer(digest, size, offset)
            if cancelled.is_set():
                raise SourceError("pull cancelled", status=499)

        readinto = getattr(response, "readinto", None) or chunks_readinto(response.iter_raw())
        writer.receive(readinto, size, on_chunk)
    finally:
        response.close()


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
            size = cached.inner_config.get("size") or human_size(cached.size)
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
