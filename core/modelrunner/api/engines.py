"""DMR's engine control routes: status, ps, df, unload, _configure."""

import shlex

import falcon

from .. import reference as refs
from ..bodies import read_json_body
from ..engines import EngineError, install_hint
from ..gateway import GatewayError
from ..machine_paths import hide_paths
from ..scheduler import SchedulerError, parse_keep_alive
from ..store import StoreError
from ..trust import caller
from .errors import dmr_error


def _body(req):
    return read_json_body(req, required=False)


def _for(req, media):
    """What an engine route shows ``req``'s caller: with an inference key, no path of the
    machine (the interpreter's and the engines' binaries, a runner's socket in the store:
    ``hide_paths``), as in every error body; the admin and a server without keys see them."""
    who = caller(req)
    if not who.keys or who.admin:
        return media
    if isinstance(media, dict):
        return {k: _for(req, v) for k, v in media.items()}
    if isinstance(media, list):
        return [_for(req, v) for v in media]
    return hide_paths(media) if isinstance(media, str) else media


class StatusResource:
    def __init__(self, runtime):
        self.runtime = runtime

    def on_get(self, req, resp):
        # the engines usually installed for each format (a setting), then those installed
        usual = (self.runtime.settings.get("format_engines") or {}).values()
        status = {name: f"Not Installed: {install_hint(name)}" for name in usual}
        for name, engine in self.runtime.engines.items():
            status[name] = engine.status()
        resp.media = _for(req, status)


class OptionsResource:
    """GET /engines/options (modelrunner's): {engine: its status, formats, modes, install hint
    and `_configure` options}, so `model configure` and the web UI offer the options of the
    engines installed without naming any."""

    def __init__(self, runtime):
        self.runtime = runtime

    def on_get(self, req, resp):
        resp.media = _for(req, {name: engine.describe()
                                for name, engine in self.runtime.engines.items()})


class BuildsResource:
    """GET /engines/builds (modelrunner's): {engine: what build of its runtime runs}, for
    ``model status``. DMR's /engines/status stays a map of strings, as its clients expect."""

    def __init__(self, runtime):
        self.runtime = runtime

    def on_get(self, req, resp):
        builds = {}
        for name, engine in self.runtime.engines.items():
            info = engine.build_info()
            if info:
                builds[name] = info
        resp.media = _for(req, builds)


class PsResource:
    def __init__(self, runtime):
        self.runtime = runtime

    def on_get(self, req, resp):
        try:
            resp.media = _for(req, self.runtime.scheduler.ps())
        except SchedulerError as e:
            raise dmr_error(e.status, str(e))


class DfResource:
    def __init__(self, runtime):
        self.runtime = runtime

    def on_get(self, req, resp):
        from ..store.prompt_caches import PromptCaches
        caches = PromptCaches.from_settings(self.runtime.settings)
        # DMR's two fields, and modelrunner's cache area (saved prompt caches) with its budget
        resp.media = {"models_disk_usage": self.runtime.store.disk_usage(),
                      "default_backend_disk_usage": 0,
                      "prompt_cache_disk_usage": caches.usage(),
                      "prompt_cache_budget": caches.budget}


class UnloadResource:
    def __init__(self, runtime):
        self.runtime = runtime

    def on_post(self, req, resp):
        body = _body(req)
        ids = []
        for name in body.get("models") or []:
            try:
                ids.append(self.runtime.store.get(name).id)
            except (StoreError, refs.InvalidReference):
                continue
        try:
            resp.media = self.runtime.scheduler.unload(models=ids, backend=body.get("backend"),
                                                       everything=bool(body.get("all")))
        except SchedulerError as e:
            raise dmr_error(e.status, str(e))


class ConfigureResource:
    """POST /engines[/{backend}]/_configure: persisted, validated, applied on every path."""

    def __init__(self, runtime):
        self.runtime = runtime

    def on_post(self, req, resp, engine=None):
        backend = engine
        body = _body(req)
        gateway = self.runtime.gateway
        try:
            model = gateway.find_model(body.get("model"))
            engine = gateway.engine_for(model, backend)
        except GatewayError as e:
            raise dmr_error(e.status, str(e))
        # the modes the model's engine declares (a whisper model's is transcription)
        mode = body.get("mode") or engine.default_mode
        if mode not in engine.modes:
            raise dmr_error(400, f"mode must be one of {', '.join(engine.modes)}: the modes "
                                 f"{engine.name} serves")
        flags = body.get("runtime-flags")
        if body.get("raw-runtime-flags"):
            try:
                flags = (flags or []) + shlex.split(body["raw-runtime-flags"])
            except ValueError as e:
                raise dmr_error(400, f"raw-runtime-flags: {e}")
        if flags is not None and not isinstance(flags, list):
            raise dmr_error(400, "runtime-flags must be a list of strings")
        keep_alive = body.get("keep_alive")
        if keep_alive is not None:
            try:
                parse_keep_alive(keep_alive)
            except ValueError as e:
                raise dmr_error(400, str(e))
        extra = {k: body[k] for k in engine.configure_blocks if body.get(k)}
        # modelrunner's addition: "persist": false holds for the next runner, until it unloads,
        # and is never written (`model run`'s /set num_ctx, as Ollama's num_ctx option)
        persist = body.get("persist", True)
        if not isinstance(persist, bool):
            raise dmr_error(400, "persist must be true or false")
        try:
            config = self.runtime.scheduler.configure(
                model.id, engine.name, mode, context_size=body.get("context-size"),
                runtime_flags=flags, keep_alive=keep_alive, extra=extra or None,
                persist=persist)
        except (SchedulerError, EngineError) as e:
            raise dmr_error(e.status, str(e))
        resp.status = falcon.HTTP_202
        resp.media = {"Backend": engine.name, "Model": model.tags[0] if model.tags else model.id,
                      "ModelID": model.id, "Mode": mode, "Config": config}

    def on_get(self, req, resp, engine=None):
        backend = engine
        wanted = req.get_param("model")
        store = self.runtime.store
        wanted_id = None
        if wanted:
            try:
                wanted_id = store.get(wanted).id
            except (StoreError, refs.InvalidReference) as e:
                raise dmr_error(404, str(e))
        result = []
        for key, config in store.runner_configs().items():
            engine_name, model_id, mode = key.split("|")
            if (wanted_id and model_id != wanted_id) or (backend and engine_name != backend):
                continue
            try:
                model = store.get(model_id)
            except StoreError:
                continue
            result.append({"Backend": engine_name, "Model": model.tags[0] if model.tags else model_id,
                           "ModelID": model_id, "Mode": mode, "Config": config})
        resp.media = result
