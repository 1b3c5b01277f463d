"""Native Hugging Face pulls and pushes (DMR ``pkg/distribution/huggingface``).

Pull ``huggingface.co/org/repo:<quant>``:

1. ``model_info(repo, revision="main")`` gives the head commit and ``lastModified``; the listing
   (``list_repo_tree(recursive=True)``) and every download use that commit, so one pull sees one
   repository state. ``lastModified`` becomes the artifact's ``created``: the same repository
   state always gives the same model ID.
2. The files are chosen by :mod:`.selection` (quant, shards, mmproj, chat template or the
   safetensors layer-per-file set).
3. Each file is streamed from ``/{repo}/resolve/{commit}/{path}`` (URL from ``hf_hub_url``,
   headers from ``build_hf_headers``, client from ``get_session``) straight into the store:
   LFS/Xet files, whose sha256 the Hub lists, go through ``store.blob_writer`` and resume an
   interrupted download from the ``.incomplete`` offset with a Range request; small git files
   (configs) are hashed while streaming into a staging file, checked against their git blob id
   and imported. ``hf_hub_download`` is not used: it writes the whole file into its own cache
   first, which would double the disk use and lose the store's resumable ``.incomplete``.
4. The artifact is built by ``modelrunner.packaging`` from hard links to the blobs, named as in
   the repository, in a staging folder inside the store root (same filesystem: nothing copied),
   then the config blob and manifest are stored under the tag ``str(ref)``.

``HF_ENDPOINT`` is read at each pull (``huggingface_hub`` reads it only once, at import);
``HF_TOKEN`` (or the request's bearer token) authenticates, to that endpoint only: every URL
is built from it, and the Hub's redirects to its CDN (another host) go without the token
(httpx drops Authorization on a redirect to another origin). Over plain http the token goes
only to a loopback endpoint (a local mirror); a remote ``http://`` mirror gets no token.
"""

import hashlib
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from modelrunner import Source, SourceError, downloads, model_files, units

from . import selection
from .selection import RemoteFile

CHUNK = 1 << 20
PARALLEL_DOWNLOADS = 4
STAGING = ".hf-staging"  # under the store root; removed after each pull
# The permission bits a layer's metadata records (DMR's annotation): fixed, so a repo's model ID
# is the same on every machine, while the blobs themselves stay 0600 (the store is private).
FILE_MODE = 0o644


def _hf():
    import huggingface_hub
    return huggingface_hub


def endpoint():
    """The Hub endpoint: HF_ENDPOINT now, else what huggingface_hub was configured with."""
    env = os.environ.get("HF_ENDPOINT", "").strip()
    if env:
        return env.rstrip("/")
    from huggingface_hub import constants
    return constants.ENDPOINT.rstrip("/")


def _token(token, base):
    """The request's bearer token, else HF_TOKEN now (huggingface_hub's own lookup, which also
    finds a stored login, applies when both are absent: None). False, which huggingface_hub
    reads as "send none", when ``base`` is plain http to a host that is not loopback."""
    if not may_send_token(base):
        return False
    return token or os.environ.get("HF_TOKEN", "").strip() or None


def may_send_token(base):
    """A token travels over https, or plain http to this machine only."""
    parts = urlsplit(base)
    return parts.scheme == "https" or (parts.hostname or "") in ("localhost", "127.0.0.1", "::1")


def _http_errors():
    errors = []
    for module in ("httpx2", "httpx", "requests"):
        try:
            errors.append(__import__(module).HTTPError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors) or (OSError,)


def _status_of(exc):
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def map_hub_error(exc, repo_id, token):
    """Turn a huggingface_hub error into a SourceError with the status a client should see."""
    from huggingface_hub import errors as hf_errors

    name = f"hf.co/{repo_id}"
    status = _status_of(exc)
    if isinstance(exc, hf_errors.GatedRepoError):
        if not token:
            return SourceError(f"{name} is a gated repository: accept its conditions on Hugging Face and "
                               f"set HF_TOKEN (or pass a token) to pull it", status=401)
        return SourceError(f"{name} is a gated repository and this token has no access to it: accept its "
                           f"conditions on Hugging Face with the token's account", status=403)
    if isinstance(exc, hf_errors.RepositoryNotFoundError):
        hint = "" if token else " (if it is private or gated, set HF_TOKEN or pass a token)"
        return SourceError(f"repository {name} not found{hint}", status=404)
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return SourceError(f"repository {name} has no main branch", status=404)
    if isinstance(exc, hf_errors.DisabledRepoError):
        return SourceError(f"repository {name} is disabled", status=403)
    if status == 401:
        return SourceError(f"Hugging Face rejected the credentials for {name}: check HF_TOKEN", status=401)
    if status == 403:
        return SourceError(f"access to {name} is forbidden with this token: {exc}", status=403)
    if status == 404:
        return SourceError(f"{name}: not found ({exc})", status=404)
    if status == 429:
        return SourceError(f"Hugging Face rate limit reached while pulling {name}: {exc}", status=429)
    if status:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return SourceError(f"Hugging Face at {endpoint()} answered HTTP {status} for {name}: {first}", status=502)
    if isinstance(exc, _http_errors()) or isinstance(exc, OSError):
        return SourceError(f"cannot reach Hugging Face at {endpoint()} for {name}: {exc}", status=502)
    return None


def _git_blob_oid(path, size):
    h = hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _staging_dir(store):
    root = Path(getattr(store, "root", tempfile.gettempdir())) / STAGING
    for _ in range(3):  # another pull's clean-up may remove an empty .hf-staging meanwhile
        root.mkdir(parents=True, exist_ok=True)
        try:
            return Path(tempfile.mkdtemp(dir=root, prefix="pull-"))
        except FileNotFoundError:
            continue
    raise SourceError(f"cannot make a staging folder in {root}", status=500)


def _remove_staging(path):
    shutil.rmtree(path, ignore_errors=True)
    try:
        path.parent.rmdir()  # the .hf-staging folder itself, once no pull is using it
    except OSError:
        pass


def _link(src, dst, staging):
    """Hard link (same filesystem: the staging folder is in the store root), else a symlink;
    never outside ``staging``, whatever name a listing gave."""
    if not dst.resolve().is_relative_to(staging.resolve()):
        raise SourceError(f"refusing the file path {dst.name!r}: outside the model", status=502)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        os.symlink(src, dst)


class HuggingFaceSource(Source):
    name = "huggingface"
    fallback = False
    search_key = "huggingface"

    def search(self, term, limit):
        from .search import search
        return search(term, limit)

    def handles(self, ref):
        return ref.registry == "huggingface.co"

    # -- pull -----------------------------------------------------------------------------------

    def pull(self, ref, store, progress, token=None):
        repo_id = ref.original_name or ref.repository
        token = _token(token, endpoint())
        hf = _hf()
        api = hf.HfApi(endpoint=endpoint(), token=token)
        try:
            info = api.model_info(repo_id, revision="main")
            commit = info.sha or "main"
            listing = list(api.list_repo_tree(repo_id, revision=commit, recursive=True))
        except Exception as exc:
            mapped = map_hub_error(exc, repo_id, token)
            if mapped is None:
                raise
            raise mapped from exc
        created = info.last_modified  # the repository's lastModified: a stable model ID
        files = []
        for entry in listing:
            if not hasattr(entry, "blob_id") or not selection.keep(entry.path):
                continue  # folders, and files DMR does not download
            lfs = getattr(entry, "lfs", None)
            sha = lfs.get("sha256") if lfs else None
            size = (lfs.get("size") if lfs else None) or entry.size or 0
            files.append(RemoteFile(entry.path, int(size), f"sha256:{sha}" if sha else None, entry.blob_id))

        plan = self._plan(ref, repo_id, files)
        existing = self._existing(store, ref)
        known = self._known_digests(store, plan, existing)
        if existing is not None and len(known) == len(plan["files"]) and all(store.has_blob(d) for d in known.values()):
            layer_digests = {layer["digest"] for layer in existing.manifest.get("layers", [])}
            if set(known.values()) == layer_digests:
                progress.message(f"Using cached model: {units.format_size(existing.size)}")
                return existing

        digests = self._download(api, repo_id, commit, plan["files"], known, store, progress, token)
        return self._package(ref, store, plan, digests, created)

    def _plan(self, ref, repo_id, files):
        """{"format", "files": [(RemoteFile, name in the bundle)], "weights", "mmproj", "template"}."""
        ggufs = [f for f in files if f.path.lower().endswith(".gguf")]
        if ggufs:
            try:
                weights, mmproj = selection.select_gguf(files, ref.tag)
            except selection.QuantNotFound as e:
                raise SourceError(
                    f"quantization {e.quant} not found in hf.co/{repo_id}; available: "
                    f"{', '.join(e.available) or 'none'}", status=404) from None
            if not weights:
                raise SourceError(f"hf.co/{repo_id} has only multimodal projector GGUF files", status=422)
            template = selection.select_chat_template(files)
            chosen = [(f, f.name) for f in weights]
            if mmproj is not None:
                chosen.append((mmproj, mmproj.name))
            if template is not None:
                chosen.append((template, template.name))
            names = [n for _, n in chosen]
            if len(set(names)) != len(names):
                raise SourceError(f"hf.co/{repo_id}: the selected files share a name: {', '.join(names)}", status=422)
            return {"format": "gguf", "files": chosen, "weights": weights, "mmproj": mmproj, "template": template}
        if any(f.path.lower().endswith(".safetensors") for f in files):
            chosen = [(f, f.path) for f in selection.select_safetensors(files)]
            return {"format": "safetensors", "files": chosen}
        raise SourceError(f"hf.co/{repo_id} has no GGUF or safetensors weights to pull", status=422)

    @staticmethod
    def _existing(store, ref):
        try:
            return store.get(str(ref))
        except Exception:  # NotFound (or a store that names it otherwise): nothing cached
            return None

    @staticmethod
    def _known_digests(store, plan, existing):
        """Digests of the chosen files known without downloading: the Hub's sha256 for LFS/Xet
        files; for small git files, a layer of the cached model with the same path whose content
        has the same git blob id."""
        known = {}
        by_path = {}  # bundle path -> candidate layers, the cached model of this tag first
        models = [existing] if existing is not None else []
        try:
            models += [m for m in store.models() if existing is None or m.id != existing.id]
        except Exception:
            pass
        for model in models:
            for layer in model.manifest.get("layers", []):
                path = (layer.get("annotations") or {}).get("org.cncf.model.filepath")
                if path:
                    by_path.setdefault(path, []).append(layer)
        for f, name in plan["files"]:
            if f.sha256:
                known[f.path] = f.sha256
                continue
            if not f.git_oid or f.size > 64 << 20:
                continue
            for layer in by_path.get(name, []):
                if layer.get("size") != f.size or not store.has_blob(layer["digest"]):
                    continue
                if _git_blob_oid(store.blob_path(layer["digest"]), f.size) == f.git_oid:
                    known[f.path] = layer["digest"]
                    break
        return known

    def _download(self, api, repo_id, commit, chosen, known, store, progress, token):
        """Every chosen file into the store; returns {repo path: digest}."""
        hf = _hf()
        session = hf.get_session()
        headers = hf.utils.build_hf_headers(token=token, library_name="modelrunner")
        base = endpoint()
        progress.set_total(sum(f.size for f, _ in chosen))
        staging = _staging_dir(store)  # for small files, hashed before they become blobs
        digests = {}

        def fetch(f):
            url = hf.hf_hub_url(repo_id, f.path, revision=commit, endpoint=base)
            digest = known.get(f.path)
            if digest and store.has_blob(digest):
                progress.layer(digest, f.size, f.size)
                return f.path, digest
            if digest:
                return f.path, self._fetch_blob(session, url, headers, f, digest, store, progress, repo_id)
            return f.path, self._fetch_small(session, url, headers, f, store, progress, repo_id, staging)

        try:
            files = [f for f, _ in chosen]
            with ThreadPoolExecutor(max_workers=max(1, min(PARALLEL_DOWNLOADS, len(files)))) as pool:
                for path, digest in pool.map(fetch, files):
                    digests[path] = digest
        finally:
            _remove_staging(staging)
        return digests

    @staticmethod
    def _check_response(response, f, repo_id):
        status = response.status_code
        if status in (200, 206):
            return
        # the body is not read: the headers say what went wrong, and an error body has no cap
        code = response.headers.get("x-error-code", "")
        where = f"hf.co/{repo_id}/{f.path}"
        if status == 401 and code == "RepoNotFound":
            # The listing just came from this repository with the same credentials, so the
            # repository exists and is readable: this is a missing file (mirrors such as olah
            # answer 401 RepoNotFound for it, like the Hub does for an unknown repository).
            raise SourceError(f"{where} not found", status=404)
        if status == 401:
            raise SourceError(f"Hugging Face rejected the credentials for {where}: check HF_TOKEN", status=401)
        if status == 403:
            raise SourceError(f"access to {where} is forbidden (gated or private repository?)", status=403)
        if status == 404:
            raise SourceError(f"{where} not found", status=404)
        raise SourceError(f"downloading {where} failed: HTTP {status}", status=502)

    def _fetch_blob(self, session, url, headers, f, digest, store, progress, repo_id):
        """Stream an LFS/Xet file into the store (``modelrunner.fetch_blob``: resumed from an
        interrupted pull's partial file, verified against its sha256)."""

        def open_body(offset):
            request_headers = dict(headers)
            if offset:
                request_headers["Range"] = f"bytes={offset}-"
            stream = session.stream("GET", url, headers=request_headers)
            response = stream.__enter__()

            def close():
                stream.__exit__(None, None, None)
            try:
                if response.status_code == 416 and offset:
                    close()
                    return downloads.BlobBody(None)  # our partial file is longer than the remote one
                self._check_response(response, f, repo_id)
                content_range = response.headers.get("content-range", "")
                resumed = response.status_code == 206 and content_range.startswith(f"bytes {offset}-")
            except BaseException:
                close()
                raise
            return downloads.BlobBody(offset if resumed else 0,
                                      downloads.chunks_readinto(response.iter_bytes()), close)

        progress.layer(digest, f.size, 0)
        downloads.fetch_blob(store, digest, f.size, open_body, progress=progress,
                             where=f" (hf.co/{repo_id}/{f.path})", transient=_http_errors() + (ConnectionError, TimeoutError), retry_delays=())
        progress.layer(digest, f.size, f.size)
        return digest

    def _fetch_small(self, session, url, headers, f, store, progress, repo_id, staging):
        """A git (non-LFS) file: its sha256 is unknown before the download, so it is hashed while
        streaming into a staging file, checked against its git blob id, then imported."""
        fd, tmp = tempfile.mkstemp(dir=staging, prefix="file-")
        sha = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                progress.layer(f.path, f.size, 0)
                try:
                    with session.stream("GET", url, headers=dict(headers)) as response:
                        self._check_response(response, f, repo_id)
                        for chunk in response.iter_bytes(CHUNK):
                            size += len(chunk)
                            if f.size is not None and size > f.size:
                                # a mirror sending more than its listing said: never fill the disk
                                raise SourceError(f"hf.co/{repo_id}/{f.path}: the server sent more "
                                                  f"than the {f.size} bytes listed", status=502)
                            out.write(chunk)
                            sha.update(chunk)
                            progress.layer(f.path, f.size, size)
                except _http_errors() as exc:
                    raise SourceError(f"downloading hf.co/{repo_id}/{f.path} failed: {exc}", status=502) from exc
            if f.size is not None and size != f.size:
                raise SourceError(f"hf.co/{repo_id}/{f.path}: {size} bytes arrived, the listing "
                                  f"says {f.size}", status=502)
            if f.git_oid and len(f.git_oid) == 40 and _git_blob_oid(tmp, size) != f.git_oid:
                raise SourceError(f"hf.co/{repo_id}/{f.path}: downloaded content does not match its git "
                                  f"blob id {f.git_oid}", status=502)
            digest = "sha256:" + sha.hexdigest()
            store.import_file(tmp, digest)
            return digest
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _package(self, ref, store, plan, digests, created):
        """Build the DMR artifact from hard links to the blobs and record it under str(ref)."""
        staging = _staging_dir(store)
        try:
            paths = {}
            for f, name in plan["files"]:
                blob = store.blob_path(digests[f.path])
                target = staging / name
                _link(blob, target, staging)
                paths[f.path] = target
            try:
                if plan["format"] == "gguf":
                    artifact = model_files.build_gguf_artifact(
                        paths[plan["weights"][0].path],
                        mmproj=paths[plan["mmproj"].path] if plan["mmproj"] else None,
                        chat_template=paths[plan["template"].path] if plan["template"] else None,
                        created=created, file_mode=FILE_MODE,
                    )
                else:
                    artifact = model_files.build_safetensors_artifact(
                        staging, created=created, file_mode=FILE_MODE)
            except model_files.PackagingError as exc:
                raise SourceError(f"cannot package {ref}: {exc}", status=422) from exc
            for layer in artifact.layers:
                if not store.has_blob(layer.digest):
                    store.import_file(layer.path, layer.digest)
            store.write_blob_bytes(artifact.config_bytes)
            return store.add_model(artifact.manifest_bytes, tags=[str(ref)])
        finally:
            _remove_staging(staging)

    # -- push -----------------------------------------------------------------------------------

    def push(self, ref, model, store, progress, token=None):
        """Upload the model's files as a model repository (create it if needed), one commit.

        Each layer is uploaded under its bundle path (``org.cncf.model.filepath``, else the name
        the bundle gives it: model.gguf, model.mmproj, template.jinja...).
        """
        hf = _hf()
        repo_id = ref.original_name or ref.repository
        token = _token(token, endpoint())
        api = hf.HfApi(endpoint=endpoint(), token=token)
        operations = []
        layers = model_files.bundle_files(model)
        progress.set_total(sum(layer.get("size", 0) for layer, _ in layers))
        for layer, name in layers:
            operations.append(hf.CommitOperationAdd(path_in_repo=name,
                                                    path_or_fileobj=str(store.blob_path(layer["digest"]))))
        try:
            api.create_repo(repo_id, repo_type="model", exist_ok=True)
            for layer, _ in layers:
                progress.layer(layer["digest"], layer.get("size", 0), 0)
            api.create_commit(repo_id, operations, commit_message=f"Upload {ref} with modelrunner",
                              revision="main")
        except Exception as exc:
            mapped = map_hub_error(exc, repo_id, token)
            if mapped is None:
                raise
            hint = ""
            if _status_of(exc) in (404, 405, 501):
                hint = f" ({endpoint()} does not accept uploads: is it a read-only mirror?)"
            raise SourceError(f"push to hf.co/{repo_id} failed: {mapped}{hint}", status=mapped.status) from exc
        for layer, _ in layers:
            progress.layer(layer["digest"], layer.get("size", 0), layer.get("size", 0))
        progress.message(f"Uploaded {ref}")
        return model
