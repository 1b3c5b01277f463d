"""POST /api/pull and /api/push through the installed sources, with Ollama's progress lines.

The source reports DMR progress messages ({type, message, total, layer{id,size,current}}); they
become Ollama's ``{"status": "pulling <12 hex>", "digest", "total", "completed"}`` lines, framed by
"pulling manifest" ... "verifying sha256 digest", "writing manifest", "success" (push:
"retrieving manifest", "pushing <12 hex>", "pushing manifest", "success").
"""

import json
import queue
import threading

from modelrunner import Progress, SourceError, StoreError, references

from .errors import OllamaError, error_line
from .models import find
from .util import model_name, read_json



def _short(digest):
    return (digest or "").split(":", 1)[-1][:12]


def translate(message, verb):
    """One DMR progress message -> an Ollama status line (or None to drop it)."""
    layer = message.get("layer")
    if layer:
        return {"status": f"{verb} {_short(layer.get('id'))}", "digest": layer.get("id"),
                "total": layer.get("size", 0), "completed": layer.get("current", 0)}
    text = message.get("message")
    if message.get("type") == "warning" and text:
        return {"status": f"warning: {text}"}
    return {"status": text[0].lower() + text[1:]} if text else None


def transfer(runtime, req, resp, mode):
    body = read_json(req)
    name = model_name(body)
    try:
        ref = references.parse(name)
    except references.InvalidReference as e:
        raise OllamaError(400, str(e)) from None
    try:
        runtime.find_source(ref)  # its status (412) before any streaming
    except SourceError as e:
        raise OllamaError(e.status, str(e)) from None
    token = body.get("bearer-token") or None
    if mode == "push":
        model = find(runtime, name)
        if references.is_model_id(name):
            raise OllamaError(400, "push needs a name, not a model ID")
        first_lines = [{"status": "retrieving manifest"}, {"status": "starting upload"}]
        last_lines = [{"status": "pushing manifest"}, {"status": "success"}]

        def work(progress):
            return runtime.push(ref, model, progress, token)
        verb = "pushing"
    else:
        first_lines = [{"status": "pulling manifest"}]
        last_lines = [{"status": "verifying sha256 digest"}, {"status": "writing manifest"},
                      {"status": "success"}]
        def work(progress):
            return runtime.pull(ref, progress, token)
        verb = "pulling"

    events = queue.Queue()

    def emit(message):
        runtime.emit_pull("progress", message)
        events.put(("progress", message))

    def worker():
        try:
            work(Progress(emit, mode=mode))
            runtime.emit_pull("success", {"type": "success", "message": f"{mode} done"})
            events.put(("success", None))
        except (SourceError, StoreError) as e:
            events.put(("error", (getattr(e, "status", 500), str(e))))
        except Exception as e:  # a bug in a source must still end the stream
            events.put(("error", (500, f"{type(e).__name__}: {e}")))

    threading.Thread(target=worker, daemon=True, name=f"ollama-{mode}").start()

    if body.get("stream") is False:
        while True:
            kind, value = events.get()
            if kind == "error":
                runtime.emit_pull("error", {"type": "error", "message": value[1]})
                raise OllamaError(value[0], value[1])
            if kind == "success":
                resp.media = {"status": "success"}
                return

    # Streaming: wait for the first event so an early failure keeps its HTTP status.
    kind, value = events.get()
    if kind == "error":
        runtime.emit_pull("error", {"type": "error", "message": value[1]})
        raise OllamaError(value[0], value[1])

    def lines():
        nonlocal kind, value
        for line in first_lines:
            yield (json.dumps(line) + "\n").encode()
        while True:
            if kind == "progress":
                line = translate(value, verb)
                if line:
                    yield (json.dumps(line) + "\n").encode()
            elif kind == "success":
                for line in last_lines:
                    yield (json.dumps(line) + "\n").encode()
                return
            else:
                runtime.emit_pull("error", {"type": "error", "message": value[1]})
                yield error_line(value[1])
                return
            kind, value = events.get()

    resp.content_type = "application/x-ndjson"
    resp.set_header("X-Accel-Buffering", "no")
    resp.stream = lines()


class PullResource:
    dialect = "ollama"  # errors as {"error": ...} (modelrunner.dialects)
    def __init__(self, runtime):
        self.runtime = runtime

    def on_post(self, req, resp):
        transfer(self.runtime, req, resp, "pull")


class PushResource:
    dialect = "ollama"  # errors as {"error": ...} (modelrunner.dialects)
    def __init__(self, runtime):
        self.runtime = runtime

    def on_post(self, req, resp):
        transfer(self.runtime, req, resp, "push")
