"""GET /engines/requests[?model=&include_existing=true]: the request inspector (DMR's recorder).

JSON: ``[{count, model, config, records: [...]}]``, one entry per model, records oldest first.
With ``Accept: text/event-stream``: a live feed of the events ``connected``, ``existing_request``
(each recorded pair, when include_existing=true) and ``new_request``, read from the shared record
files that every worker appends to (polled every 0.3 s; a comment line every 15 s keeps the
connection alive and tells a gone client apart).
"""

import json
import time


from .. import reference as refs
from ..client_socket import client_gone
from ..inspector import RequestLog
from ..scheduler.scheduler import config_key
from ..store import StoreError
from .errors import dmr_error
from .follow import Ticker

POLL_SECONDS = 0.3
IDLE_SECONDS = 5.0     # how often an idle follower checks that its client is still there
PING_SECONDS = 15.0
MAX_FOLLOW_SECONDS = 24 * 3600


def _param_true(req, name):
    return (req.get_param(name) or "").lower() in ("1", "true", "yes")


class RequestsResource:
    def __init__(self, runtime):
        self.runtime = runtime
        self.log = RequestLog.from_settings(runtime.settings)
        self._signature = None
        # one poll of the records' signature per worker, for every follower (see .follow)
        self.ticker = Ticker(self._changed, POLL_SECONDS)

    def _changed(self):
        current = self.log.signature()
        changed = current != self._signature
        self._signature = current
        return changed

    def _model_id(self, req):
        name = req.get_param("model")
        if not name:
            return None
        try:
            return self.runtime.store.get(name).id
        except (StoreError, refs.InvalidReference):
            for records in self.log.all().values():
                if any(r.get("model") == name for r in records):
                    return records[0]["model_id"]
            raise dmr_error(404, f"model {name} not found") from None

    def _group(self, model_id, records):
        name, config = records[-1].get("model") if records else model_id, {}
        store = self.runtime.store
        try:
            model = store.get(model_id)
            name = model.tags[0] if model.tags else model_id
            last = records[-1] if records else {}
            engine = last.get("engine") or self.runtime.engine_for(model).name
            key = config_key(engine, model_id, last.get("mode") or "completion")
            config = store.runner_configs().get(key) or {}
        except Exception:
            pass
        return {"count": len(records), "model": name, "config": config, "records": records}

    def on_get(self, req, resp):
        model_id = self._model_id(req)
        if "text/event-stream" in (req.accept or ""):
            resp.content_type = "text/event-stream"
            resp.set_header("Cache-Control", "no-cache")
            resp.set_header("X-Accel-Buffering", "no")
            resp.stream = self._feed(req, model_id, _param_true(req, "include_existing"))
            return
        resp.media = [self._group(mid, records)
                      for mid, records in sorted(self.log.all(model_id).items())]

    def _feed(self, req, model_id, include_existing):
        def event(name, data):
            return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

        version = self.ticker.join()  # before the listing: a record after it wakes us
        try:
            yield event("connected", {"message": "connected to the request inspector",
                                      "model": req.get_param("model") or ""})
            seen = {}
            for mid, records in self.log.all(model_id).items():
                seen[mid] = {r["id"] for r in records}
                if include_existing:
                    for r in records:
                        yield event("existing_request", r)
            yield from self._news(req, model_id, seen, version, event)
        finally:
            self.ticker.leave()

    def _news(self, req, model_id, seen, version, event):
        started = last_ping = time.monotonic()
        while time.monotonic() - started < MAX_FOLLOW_SECONDS:
            seen_version, version = version, self.ticker.wait(version, IDLE_SECONDS)
            if client_gone(req):
                return
            now = time.monotonic()
            if now - last_ping >= PING_SECONDS:
                last_ping = now
                yield b": ping\n\n"
            if version == seen_version:
                continue
            for mid, records in self.log.all(model_id).items():
                ids = {r["id"] for r in records}
                old = seen.get(mid, set())
                for r in records:
                    if r["id"] not in old:
                        yield event("new_request", r)
                seen[mid] = ids  # trimmed ids never come back, so this stays bounded
