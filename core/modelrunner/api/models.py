"""DMR's model management routes: /models, /models/create, /models/load, /models/{ref}[/...].

Errors are DMR's: a plain-text message with the right status. References contain slashes
(``/models/hf.co/org/repo:Q4_K_M/tag``), so one resource takes the rest of the path and splits off
the action suffix.
"""

import json
import logging
import queue
import threading

import falcon

from .. import reference as refs
from ..packaging import PackagingError, read_model_tar
from ..sources import Progress, SourceError, find_source, human_size
from ..store import StoreError
from ..uploads import UPLOAD
from ..bodies import read_json_body
from ..engines import RunnerConfig
from ..errors import ModelRunnerError
from ..scheduler.scheduler import config_key
from ..store.operation import operation
from .errors import dmr_error
from .repackage import repackage_model
from .tar import stream_model_tar

_ACTIONS = ("tag", "push", "export", "repackage")

log = logging.getLogger("modelrunner")


class ModelsResource:
    def __init__(self, runtime):
        self.runtime = runtime

    def on_get(self, req, resp):
        """Every entry; one that cannot be read is listed with "broken": reason, never fails
        the listing (`model ls` shows it, `model rm` removes it)."""
        store = self.runtime.store
        try:
            models = store.listing() if hasattr(store, "listing") else store.models()
        except StoreError as e:
            raise dmr_error(e.status, str(e))
        resp.media = [m.to_api() for m in models]


class ModelResource:
    """/models/{ref} with GET (inspect), DELETE, and the /tag, /push, /export, /repackage
    actions."""

    def __init__(self, runtime):
        self.runtime = runtime

    @staticmethod
    def _split(path):
        ref, _, action = path.rpartition("/")
        if ref and action in _ACTIONS:
            return ref, action
        return path, None

    def _model(self, ref, partial=False):
        try:
            return self.runtime.store.get(ref, partial=partial)
        except refs.InvalidReference as e:
            raise dmr_error(400, str(e))
        except StoreError as e:
            raise dmr_error(e.status, str(e))

    def on_get(self, req, resp, ref):
        ref, action = self._split(ref)
        if action == "export":
            model = self._model(ref)
            resp.content_type = "application/x-tar"
            resp.stream = stream_model_tar(self.runtime.store, model)
            return
        if action:
            raise dmr_error(405, f"GET is not allowed on /models/{{ref}}/{action}")
        if req.get_param_as_bool("remote"):
            raise dmr_error(501, "remote inspect is not supported; pull the model first")
        model = self._model(ref, partial=True)
        resp.media = dict(model.to_api(), details=model_details(self.runtime, model))

    def on_delete(self, req, resp, ref):
        """Works for a broken entry too (it is never loaded, only removed)."""
        force = req.get_param_as_bool("force") or False
        try:
            result = self.runtime.store.delete(ref, force=force)
        except refs.InvalidReference as e:
            raise dmr_error(400, str(e))
        except StoreError as e:
            raise dmr_error(e.status, str(e))
        deleted = [r["Deleted"] for r in result if "Deleted" in r]
        if deleted:
            try:
                self.runtime.scheduler.unload(models=deleted)
            except Exception:
                pass
        resp.media = result

    def on_post(self, req, resp, ref):
        ref, action = self._split(ref)
        if action == "tag":
            return self._tag(req, resp, ref)
        if action == "push":
            return self._push(req, resp, ref)
        if action == "repackage":
            return repackage_model(self.runtime, req, resp, self._model(ref))
        raise dmr_error(404, f"unknown action on /models/{ref}")

    def _tag(self, req, resp, ref):
        repo = req.get_param("repo")
        tag = req.get_param("tag") or "latest"
        if not repo:
            raise dmr_error(400, "repo is required")
        model = self._model(ref)
        try:
            target = self.runtime.store.tag(model.id, f"{repo}:{tag}")
        except refs.InvalidReference as e:
            raise dmr_error(400, str(e))
        resp.status = falcon.HTTP_201
        resp.media = {"message": f"Model tagged successfully with {target}", "target": target}

    def _push(self, req, resp, ref):
        model = self._model(ref)
        body = _json_body(req)
        try:
            parsed = refs.parse(ref)
        except refs.InvalidReference as e:
            raise dmr_error(400, str(e))
        if refs.is_model_id(ref):
            raise dmr_error(400, "push needs a reference with a name, not an ID")
        _source(self.runtime, parsed)  # 412 before any streaming when nothing can push it
        run_transfer(self.runtime, req, resp, "push",
                     lambda progress: self.runtime.push(parsed, model, progress,
                                                        body.get("bearer-token")),
                     success="Model pushed successfully")


def model_details(runtime, model):
    """What the engine that serves ``model``'s format says about running it
    (``Engine.model_details``: e.g. which chat template and why), with the model's persisted
    configuration; {} when no installed engine serves it. A sibling key of DMR's inspect shape,
    so DMR's clients, which read id, tags, created and config, see what they always saw. An
    engine's failure here is logged and answered as {}: inspecting a model never fails on it."""
    try:
        engine = runtime.engine_for(model)
    except ModelRunnerError:  # no installed engine serves its format: nothing to say
        return {}
    mode = engine.default_mode
    try:
        stored = runtime.store.runner_configs().get(config_key(engine.name, model.id, mode))
        config = RunnerConfig.from_dict(stored)
        config.mode = mode
        return dict(engine.model_details(runtime.store.bundle(model), config) or {})
    except Exception:  # noqa: BLE001 - a plugin's bug or an unreadable file: inspect still answers
        log.warning("the %s engine could not describe model %s", engine.name, model.id,
                    exc_info=True)
        return {}


class CreateResource:
    """POST /models/create {"from": ref, "bearer-token"?}: pull, streaming progress."""

    def __init__(self, runtime):
        self.runtime = runtime

    def on_post(self, req, resp):
        body = _json_body(req)
        name = body.get("from")
        if not name:
            raise dmr_error(400, "from is required")
        try:
            ref = refs.parse(name)
        except refs.InvalidReference as e:
            raise dmr_error(400, str(e))
        _source(self.runtime, ref)  # 412 before any streaming when no source handles it
        run_transfer(self.runtime, req, resp, "pull",
                     lambda progress: self.runtime.pull(ref, progress, body.get("bearer-token")),
                     success="Model pulled successfully")


class LoadResource:
    """POST /models/load: a tar of blobs/sha256/<hex> + manifest.json (what `package` sends).

    One store operation: blobs the manifest does not name, and every blob of a load that
    fails, are taken back at the end; a full disk answers 507."""

    max_body = UPLOAD  # a model upload: max_upload and the free disk space (modelrunner.uploads)

    def __init__(self, runtime):
        self.runtime = runtime

    def on_post(self, req, resp):
        tag = req.get_param("tag")
        try:
            if tag:
                refs.parse(tag)
            with operation(self.runtime.store) as store:
                manifest = read_model_tar(req.stream,
                                          lambda digest, stream: store.write_blob(digest, stream),
                                          have_blob=store.has_blob)
                model = store.add_model(manifest, tags=[tag] if tag else [])
        except (PackagingError, refs.InvalidReference) as e:
            raise dmr_error(400, str(e))
        except StoreError as e:
            raise dmr_error(e.status, str(e))
        resp.status = falcon.HTTP_201
        resp.media = {"message": f"Model loaded successfully: {model.id}", "id": model.id,
                      "tags": model.tags}


class PurgeResource:
    def __init__(self, runtime):
        self.runtime = runtime

    def on_delete(self, req, resp):
        try:
            self.runtime.scheduler.unload(everything=True)
        except Exception:
            pass
        try:
            count = self.runtime.store.purge()
        except StoreError as e:
            raise dmr_error(500, str(e))
        resp.media = {"message": f"Purged {count} models"}


def _json_body(req):
    return read_json_body(req, required=False)


def _source(runtime, ref):
    try:
        return find_source(runtime.sources, ref)
    except SourceError as e:
        raise dmr_error(e.status, str(e))


def run_transfer(runtime, req, resp, mode, work, success):
    """Run a pull or push, streaming DMR's progress: NDJSON with Accept: application/json, else
    text lines. An error before any progress keeps its HTTP status (401, 404, 422...); after the
    stream started it becomes a final {"type": "error"} line."""
    events = queue.Queue()
    as_json = "application/json" in (req.get_header("Accept") or "")

    def emit(message):
        runtime.emit_pull("progress", message)
        events.put(message)

    def worker():
        try:
            model = work(Progress(emit, mode=mode))
            final = {"type": "success", "message": success}
            if model is not None:
                final["id"] = model.id
            runtime.emit_pull("success", final)
            events.put(final)
        except (SourceError, StoreError) as e:
            events.put({"type": "error", "message": str(e), "status": getattr(e, "status", 500)})
        except Exception as e:
            events.put({"type": "error", "message": f"{type(e).__name__}: {e}", "status": 500})
        finally:
            events.put(None)

    threading.Thread(target=worker, daemon=True).start()
    first = events.get()
    if first is not None and first["type"] == "error":
        runtime.emit_pull("error", first)
        raise dmr_error(first.get("status", 500), first["message"])

    def lines():
        message = first
        while message is not None:
            message.pop("status", None)
            if as_json:
                yield (json.dumps(message) + "\n").encode()
            else:
                yield (message["message"] + "\n").encode()
            message = events.get()

    resp.content_type = "application/x-ndjson" if as_json else "text/plain"
    resp.set_header("X-Accel-Buffering", "no")
    resp.stream = lines()


__all__ = ["ModelsResource", "ModelResource", "CreateResource", "LoadResource", "PurgeResource",
           "run_transfer", "human_size"]
