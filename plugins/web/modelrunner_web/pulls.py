"""Pulls started from the page, remembered so their progress survives a reload of the page.

POST /models/create streams a pull's progress to the one client that asked; a reloaded page has
lost that stream (the pull goes on in the worker). So the page starts pulls here instead:
POST /ui/api/pulls {"from": ref} runs ``runtime.pull`` in the background and keeps, per
reference, the latest progress of each layer; GET /ui/api/pulls answers them all, and the page
polls it. Finished pulls are kept for FINISHED_SECONDS so the page can show how they ended.

The state lives in this worker process only: with several gunicorn workers (``workers`` > 1) a
poll may reach a worker that did not start the pull and shows nothing for it. Nothing is written
to disk; the model itself lands in the store as with any pull.
"""

import threading
import time

import falcon

import modelrunner

FINISHED_SECONDS = 600
MAX_KEPT = 20


class Pulls:
    """ref -> {ref, state, message, total, layers: {id: {size, current}}, started, finished}."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items = {}

    def snapshot(self):
        now = time.time()
        with self.lock:
            for ref, item in list(self.items.items()):
                if item["finished"] and now - item["finished"] > FINISHED_SECONDS:
                    del self.items[ref]
            return sorted(({**i, "layers": dict(i["layers"])} for i in self.items.values()),
                          key=lambda i: i["started"], reverse=True)

    def start(self, ref):
        with self.lock:
            current = self.items.get(ref)
            if current and current["state"] == "running":
                return False
            self.items[ref] = {"ref": ref, "state": "running", "message": "starting",
                               "total": 0, "layers": {}, "started": time.time(), "finished": None,
                               "id": None}
            for old in sorted(self.items.values(), key=lambda i: i["started"])[:-MAX_KEPT]:
                if old["state"] != "running":
                    del self.items[old["ref"]]
            return True

    def update(self, ref, message):
        with self.lock:
            item = self.items.get(ref)
            if item is None:
                return
            item["message"] = message.get("message", item["message"])
            item["total"] = message.get("total") or item["total"]
            layer = message.get("layer")
            if layer:
                item["layers"][layer["id"]] = {"size": layer.get("size", 0),
                                               "current": layer.get("current", 0)}

    def finish(self, ref, state, message, model_id=None):
        with self.lock:
            item = self.items.get(ref)
            if item is not None:
                item.update(state=state, message=message, finished=time.time(), id=model_id)


class PullsResource:
    """GET: every remembered pull. POST {"from": ref, "bearer-token"?}: start one (202)."""

    def __init__(self, runtime, pulls=None):
        self.runtime = runtime
        self.pulls = pulls or Pulls()

    def on_get(self, req, resp):
        resp.set_header("Cache-Control", "no-store")
        resp.media = {"pulls": self.pulls.snapshot()}

    def on_post(self, req, resp):
        body = modelrunner.read_json_body(req)
        name = (body.get("from") or "").strip()
        if not name:
            raise modelrunner.ModelRunnerError("from is required", status=400)
        try:
            ref = modelrunner.references.parse(name)
            self.runtime.find_source(ref)  # 412 now, not in the background, if nothing handles it
        except modelrunner.ModelRunnerError:
            raise
        except Exception as e:
            raise modelrunner.ModelRunnerError(str(e), status=400) from None
        key = str(ref)
        if not self.pulls.start(key):
            resp.status = falcon.HTTP_200
            resp.media = {"ref": key, "state": "running"}
            return
        token = body.get("bearer-token")
        threading.Thread(target=self._run, args=(ref, key, token), daemon=True).start()
        resp.status = falcon.HTTP_202
        resp.media = {"ref": key, "state": "running"}

    def _run(self, ref, key, token):
        def emit(message):
            self.runtime.emit_pull("progress", message)
            self.pulls.update(key, message)

        try:
            model = self.runtime.pull(ref, modelrunner.Progress(emit, mode="pull"), token)
            final = {"type": "success", "message": "Model pulled successfully"}
            if model is not None:
                final["id"] = model.id
            self.runtime.emit_pull("success", final)
            self.pulls.finish(key, "success", final["message"], final.get("id"))
        except Exception as e:  # shown on the page; the pull's own error text
            self.runtime.emit_pull("error", {"type": "error", "message": str(e)})
            self.pulls.finish(key, "error", str(e) or type(e).__name__)
