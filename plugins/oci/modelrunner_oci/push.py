"""Push a model: upload the blobs the registry lacks, streamed from disk, then the manifest.

Each missing blob is one monolithic upload: ``POST /blobs/uploads/`` opens a session, then
``PUT <location>?digest=...`` carries the file as a streamed body with its Content-Length (1 MiB
reads, never the whole file in memory). The manifest goes up byte for byte as stored, so the
model ID (sha256 of the manifest) is the same on both sides.
"""

import json
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from modelrunner import Progress, SourceError, media_types

from .registry import CHUNK, Registry

MAX_PARALLEL = 4


def _chunks(opener, digest, size, report):
    """A generator over the blob's bytes in 1 MiB reads, reporting upload progress."""
    def generate():
        sent = 0
        with opener() as f:
            while chunk := f.read(CHUNK):
                sent += len(chunk)
                yield chunk
                report.layer(digest, size, sent)
    return generate()


def upload_blob(reg, digest, size, opener, report):
    """Upload one blob unless the registry has it (HEAD)."""
    head = reg.request("HEAD", f"blobs/{digest}")
    head.close()
    if head.status_code == 200:
        report.layer(digest, size, size)
        return
    start = reg.request("POST", "blobs/uploads/", headers={"Content-Length": "0"})
    start.close()
    if start.status_code not in (201, 202):
        reg.fail(start, f"starting the upload of {digest}")
    if start.status_code == 201:  # the registry already had it (mounted)
        report.layer(digest, size, size)
        return
    location = start.headers.get("location")
    if not location:
        raise SourceError(f"registry {reg.host} gave no upload location for {digest}", status=502)
    url = reg.absolute(location)
    url += ("&" if "?" in url else "?") + f"digest={digest}"
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    done = reg.request("PUT", url, headers=headers,
                       content=lambda: _chunks(opener, digest, size, report))
    done.close()
    if done.status_code not in (201, 204):
        reg.fail(done, f"upload of {digest}")


def _open_bytes(data):
    import io
    return lambda: io.BytesIO(data)


def push_blobs_and_manifest(ref, blobs, manifest_bytes, progress, token=None):
    """``blobs``: (digest, size, opener) with ``opener()`` giving a binary file. Returns the
    manifest digest the registry answered."""
    manifest = json.loads(manifest_bytes)
    media_type = manifest.get("mediaType") or media_types.OCI_MANIFEST
    target = ref.digest or ref.tag or "latest"
    if progress is not None:
        progress.set_total(sum(size for _, size, _ in blobs))
    report = progress or Progress(lambda message: None)
    with Registry(ref.registry, ref.repository, token=token, push=True) as reg:
        unique = list({b[0]: b for b in blobs}.values())
        if unique:
            # authenticate once for push before the threads start
            reg.request("HEAD", f"blobs/{unique[0][0]}").close()
        with ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL, len(unique)))) as pool:
            futures = [pool.submit(upload_blob, reg, d, s, o, report) for d, s, o in unique]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in futures if f in done and f.exception() is not None]
            if failed:
                wait(futures)
                raise failed[0].exception()
        response = reg.request("PUT", f"manifests/{target}", content=manifest_bytes,
                               headers={"Content-Type": media_type})
        response.close()
        if response.status_code not in (200, 201):
            reg.fail(response, f"manifest upload to {ref}")
        return response.headers.get("docker-content-digest")


def push(ref, model, store, progress, token=None):
    """Push the stored ``model`` to ``ref``."""
    manifest_bytes = _manifest_bytes(store, model)
    manifest = json.loads(manifest_bytes)
    descriptors = list(manifest.get("layers") or []) + [manifest["config"]]
    blobs = []
    for d in descriptors:
        path = store.blob_path(d["digest"])
        if not path.exists():
            raise SourceError(f"blob {d['digest']} of {model.id} is missing from the store",
                              status=500)
        blobs.append((d["digest"], int(d["size"]), lambda path=path: open(path, "rb")))
    push_blobs_and_manifest(ref, blobs, manifest_bytes, progress, token)
    return model


def push_artifact(ref, artifact, progress=None, token=None):
    """Push a packaging Artifact (``modelrunner.packaging.Artifact``) straight from its files,
    without the store (``model package --push``). Returns the model ID."""
    blobs = []
    for digest, size, source in artifact.blobs():
        if isinstance(source, (bytes, bytearray)):
            blobs.append((digest, size, _open_bytes(bytes(source))))
        else:
            blobs.append((digest, size, source.open))
    push_blobs_and_manifest(ref, blobs, artifact.manifest_bytes, progress, token)
    return artifact.model_id


def _manifest_bytes(store, model):
    """The manifest exactly as stored (re-serialising would change the model ID)."""
    return store.manifest_bytes(model.id)
