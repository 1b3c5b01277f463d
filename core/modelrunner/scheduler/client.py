"""The API workers' side of the scheduler: small JSON calls over the daemon's Unix socket.

The first worker that finds no daemon starts one (under a file lock, so only one starts).
"""

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from filelock import FileLock

from ..logfiles import rotate_if_large
from .runner import UnixHTTPConnection
from .scheduler import SchedulerError, socket_dir


@dataclass
class Lease:
    """The right to send one request to a runner; release it when the response is done."""

    socket: str
    key: list
    lease: str
    load_seconds: float | None = None


class SchedulerClient:
    def __init__(self, settings, watch_pid=None):
        self.settings = settings
        self.socket = str(socket_dir(settings.models_path) / "scheduler.sock")
        self.watch_pid = watch_pid or _default_watch_pid()

    def _call(self, method, path, payload=None, timeout=None):
        body = json.dumps(payload or {}).encode() if method == "POST" else None
        for attempt in range(2):
            conn = UnixHTTPConnection(self.socket, timeout=timeout)
            try:
                conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = json.loads(resp.read() or b"{}")
            except (FileNotFoundError, ConnectionRefusedError):
                if attempt:
                    raise SchedulerError("the scheduler is not running", status=503) from None
                self.ensure_running()
                continue
            finally:
                conn.close()
            if resp.status != 200:
                raise SchedulerError(data.get("error", "scheduler error"), status=resp.status)
            return data

    def ensure_running(self, timeout=15):
        """Start the daemon unless one answers; returns when it is ready."""
        if self._ping():
            return
        with FileLock(self.socket + ".start"):
            if self._ping():
                return
            cmd = [sys.executable, "-m", "modelrunner.scheduler.daemon", "--socket", self.socket,
                   "--watch-pid", str(self.watch_pid)]
            log_dir = os.path.join(self.settings.models_path, "logs")
            os.makedirs(log_dir, exist_ok=True)
            rotate_if_large(os.path.join(log_dir, "scheduler.log"))
            with open(os.path.join(log_dir, "scheduler.log"), "ab") as log:
                subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._ping():
                    return
                time.sleep(0.05)
            raise SchedulerError("the scheduler did not start; see logs/scheduler.log", status=503)

    def _ping(self):
        conn = UnixHTTPConnection(self.socket, timeout=2)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def acquire(self, model_id, engine, mode="completion", keep_alive=None):
        data = self._call("POST", "/acquire", {"model": model_id, "engine": engine, "mode": mode,
                                                "keep_alive": keep_alive, "pid": os.getpid()})
        return Lease(data["socket"], data["key"], data["lease"], data.get("load_seconds"))

    def release(self, lease):
        self._call("POST", "/release", {"key": lease.key, "lease": lease.lease})

    def ps(self):
        return self._call("GET", "/ps")

    def unload(self, models=None, backend=None, everything=False):
        return self._call("POST", "/unload", {"models": models, "backend": backend,
                                              "all": everything})

    def configure(self, model_id, engine, mode="completion", **fields):
        return self._call("POST", "/configure", {"model": model_id, "engine": engine,
                                                 "mode": mode, **fields})


def _default_watch_pid():
    """The gunicorn master when we are one of its workers, else this process."""
    if "gunicorn.arbiter" in sys.modules or os.environ.get("MODELRUNNER_WATCH_PID"):
        return int(os.environ.get("MODELRUNNER_WATCH_PID") or os.getppid())
    return os.getpid()
