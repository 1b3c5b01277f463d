"""POST /models/prune and POST /models/fsck: the store's collection and check, as JSON.

DMR has neither route; these are modelrunner's, used by `model prune` and `model fsck`.
"""

from ..bodies import parse_json
from ..store import StoreError
from .errors import dmr_error


class PruneResource:
    """Remove what no model needs: unreferenced blobs, partial downloads nobody resumes, orphan
    manifests and bundles, crashed writers' temp files. 409 while operations stay in flight.
    With the body ``{"caches": true}`` the saved prompt caches go too (the store's cache area):
    they are no garbage, only space a user may want back."""

    def __init__(self, runtime):
        self.runtime = runtime

    def on_post(self, req, resp):
        raw = req.bounded_stream.read()
        try:
            body = parse_json(raw) if raw else {}
        except ValueError as e:  # not JSON, or nested too deeply
            raise dmr_error(400, f"invalid JSON body: {e}")
        if not isinstance(body, dict) or not isinstance(body.get("caches", False), bool):
            raise dmr_error(400, 'the body must be {"caches": true|false}')
        prune = getattr(self.runtime.store, "prune", None)
        if prune is None:
            raise dmr_error(501, "this store cannot prune")
        try:
            report = prune()
        except StoreError as e:
            raise dmr_error(e.status, str(e))
        from ..store.prompt_caches import PromptCaches
        store = self.runtime.store
        known = getattr(store, "listing", store.models)   # a broken model is still a model
        caches = PromptCaches.from_settings(self.runtime.settings)
        # a deleted model's caches always go (its users' prompts); all of them when asked
        count, freed = (caches.clear() if body.get("caches") else
                        caches.forget_models(m.id for m in known()))
        if count or body.get("caches"):
            report["prompt_caches"] = count
            report["bytes"] = report.get("bytes", 0) + freed
        resp.media = report


class FsckResource:
    """Check the store (body {"repair": bool}); the report says what is wrong and, with repair,
    what was removed."""

    def __init__(self, runtime):
        self.runtime = runtime

    def on_post(self, req, resp):
        fsck = getattr(self.runtime.store, "fsck", None)
        if fsck is None:
            raise dmr_error(501, "this store cannot be checked")
        raw = req.bounded_stream.read()
        try:
            body = parse_json(raw) if raw else {}
        except ValueError as e:  # not JSON, or nested too deeply
            raise dmr_error(400, f"invalid JSON body: {e}")
        if not isinstance(body, dict) or not isinstance(body.get("repair", False), bool):
            raise dmr_error(400, 'the body must be {"repair": true|false}')
        try:
            resp.media = fsck(repair=body.get("repair", False))
        except StoreError as e:
            raise dmr_error(e.status, str(e))
