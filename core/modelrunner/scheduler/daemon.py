"""The scheduler daemon: one process per store that owns every runner.

Why a process of its own: gunicorn runs several workers, and a model must load once for all of
them; runners are children of this process, so a crash is noticed (waitpid) and keep-alive timers
run in one place. Workers talk to it over a Unix socket with small JSON requests (see client.py);
request bodies never pass through here, workers proxy straight to the runner's socket.

It exits, stopping its runners, when the process it watches (the gunicorn master, or the process
that created the app) is gone.

    python -m modelrunner.scheduler.daemon --socket PATH --watch-pid PID
"""

import argparse
import fcntl
import logging
import os
import signal
import sys
import threading
import time

from ..engines import EngineError
from ..plugins import get_plugin_manager
from ..private import SERVER_UMASK
from ..redact import redact_handlers
from ..settings import load_settings
from ..store import StoreError
from ..unix_http import JSONRequestHandler, UnixHTTPServer
from .scheduler import Scheduler, SchedulerError

log = logging.getLogger("modelrunner.scheduler")


def collect_engines(pm, settings):
    engines = {}
    pm.hook.register_engines(register=lambda engine: engines.setdefault(engine.name, engine),
                             settings=settings)
    return engines


class Handler(JSONRequestHandler):
    scheduler: Scheduler = None

    def log_message(self, fmt, *args):
        log.debug(fmt, *args)

    def _reply(self, status, payload):
        self.send_json(status, payload)

    def _body(self):
        return self.read_json()

    def do_GET(self):
        if self.path == "/health":
            return self._reply(200, {"pid": os.getpid()})
        if self.path == "/ps":
            return self._reply(200, self.scheduler.ps())
        self._reply(404, {"error": "not found"})

    def do_POST(self):
        try:
            data = self._body()
            handler = {"/acquire": self.acquire, "/release": self.release,
                       "/prefilled": self.prefilled,
                       "/unload": self.unload, "/configure": self.configure}.get(self.path)
            if handler is None:
                return self._reply(404, {"error": "not found"})
            self._reply(200, handler(data))
        except (SchedulerError, EngineError, StoreError) as e:
            self._reply(getattr(e, "status", 500), {"error": str(e)})
        except Exception as e:  # reported to the worker, which answers the client
            log.exception("scheduler request failed")
            self._reply(500, {"error": f"{type(e).__name__}: {e}"})

    def _engine_and_model(self, data):
        engine = self.scheduler.engines.get(data["engine"])
        if engine is None:
            raise SchedulerError(f"engine {data['engine']} is not installed", status=412)
        return engine, self.scheduler.store.get(data["model"])

    def acquire(self, data):
        engine, model = self._engine_and_model(data)
        asked = time.monotonic()
        runner, lease = self.scheduler.acquire(engine, model, data.get("mode") or "completion",
                                               data.get("keep_alive"), data.get("pid"),
                                               _prompt(data.get("prompt")))
        # only a request that waited for the load paid for it (Ollama's load_duration)
        waited = runner.started is not None and runner.started + (runner.load_seconds or 0) >= asked
        return {"address": runner.address, "key": list(runner.key), "lease": lease,
                "secret": runner.secret, "load_seconds": runner.load_seconds if waited else 0.0,
                "prefill": lease in runner.long_running or lease in runner.prefilling}

    def release(self, data):
        self.scheduler.release(data["key"], data["lease"])
        return {}

    def prefilled(self, data):
        self.scheduler.prefilled(data["key"], data["lease"])
        return {}

    def unload(self, data):
        n = self.scheduler.unload(models=data.get("models"), backend=data.get("backend"),
                                  everything=bool(data.get("all")))
        return {"unloaded_runners": n}

    def configure(self, data):
        engine, model = self._engine_and_model(data)
        config = self.scheduler.configure(engine, model, data.get("mode") or "completion",
                                          context_size=data.get("context_size"),
                                          runtime_flags=data.get("runtime_flags"),
                                          keep_alive=data.get("keep_alive"),
                                          extra=data.get("extra"),
                                          persist=data.get("persist", True) is not False)
        return config.to_dict()


def _prompt(data):
    """A worker's prompt chain (prompt_prefix.prompt_chain), or None when it is not one."""
    if not isinstance(data, dict):
        return None
    chain, sizes = data.get("chain"), data.get("sizes")
    if (not isinstance(chain, list) or not isinstance(sizes, list) or len(chain) != len(sizes)
            or not all(isinstance(h, str) for h in chain)
            or not all(isinstance(n, int) for n in sizes)):
        return None
    return {"chain": chain, "sizes": sizes}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--watch-pid", type=int, default=0)
    args = parser.parse_args(argv)
    os.umask(SERVER_UMASK)  # what it and its runners create (in the store too) is this user's
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(name)s: %(message)s")
    redact_handlers(logging.getLogger())  # no key in scheduler.log either

    lock = open(args.socket + ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another scheduler owns this store
    settings = load_settings()
    pm = get_plugin_manager()
    store = pm.hook.make_store(settings=settings)
    placement = pm.hook.make_placement(settings=settings)
    log.info("runners start with the %s placement", placement.name)
    scheduler = Scheduler(store, collect_engines(pm, settings), settings, hooks=pm.hook,
                          placement=placement)
    Handler.scheduler = scheduler
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    server = UnixHTTPServer(args.socket, Handler)
    stopping = threading.Event()

    def stop(*_):
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log.info("scheduler ready on %s (store %s)", args.socket, settings.models_path)
    while not stopping.wait(1.0):
        scheduler.tick()
        if args.watch_pid and not _alive(args.watch_pid):
            log.info("process %s is gone; stopping runners", args.watch_pid)
            break
    scheduler.shutdown()
    server.shutdown()
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    return 0


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    # a zombie child of ours counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


if __name__ == "__main__":
    time.tzset()
    sys.exit(main())

