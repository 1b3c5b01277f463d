"""The API workers' side of the scheduler: small JSON calls over the daemon's Unix socket.

The first worker that finds no daemon starts one (under a file lock, so only one starts).
"""

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from ..locks import file_lock

from ..logfiles import rotate_if_large
from ..runners import UnixHTTPConnection
from ..private import private_dir, private_open
from .scheduler import SchedulerError, socket_dir


@dataclass
class Lease:
    """The right to send one request to a runner; release it when the response is done."""

    address: str          # the runner's URL: unix:///... or http://host:port
    key: list
    lease: str
    load_seconds: float | None = None
    secret: str | None = None  # the runner's API key (runners reached over a network)
    prefill: bool = False  # a prompt that holds long ones back: say when its answer starts

    def __repr__(self):  # the secret stays out of logs and tracebacks
        return f"Lease(address={self.address!r}, key={self.key!r}, lease={self.lease!r})"


class SchedulerClient:
    """Calls to the scheduler daemon, on kept-alive connections.

    A fresh Unix-socket connection per call cost about half a millisecond of every request's
    time to first token (connect, and a new handler thread in the daemon); the daemon speaks
    HTTP/1.1, so idle connections are kept (per process, up to ``KEEP``) and reused.

    The gateway sends a release once a request's answer is sent and reads the release's answer
    later (``begin_release``), so neither is in the client's time. Calls whose answer depends on
    what is in use (``ps``, ``unload``, ``configure``) first wait for the releases this process
    has sent.
    """

    KEEP = 8

    def __init__(self, settings, watch_pid=None):
        self.settings = settings
        self.socket = str(socket_dir(settings.models_path) / "scheduler.sock")
        self.watch_pid = watch_pid or _default_watch_pid()
        self._idle = []
        self._idle_pid = os.getpid()
        self._lock = threading.Lock()
        self._releases = set()  # releases sent whose answers are not read yet

    def _take(self):
        """(connection, reused): an idle one of this process, or a new one."""
        with self._lock:
            if self._idle_pid != os.getpid():  # forked: the parent's sockets are not ours
                self._idle, self._idle_pid = [], os.getpid()
            if self._idle:
                return self._idle.pop(), True
        return UnixHTTPConnection(self.socket), False

    def _give_back(self, conn, resp):
        with self._lock:
            if not resp.will_close and len(self._idle) < self.KEEP:
                self._idle.append(conn)
                return
        conn.close()

    def _request(self, conn, method, path, payload):
        body = json.dumps(payload or {}).encode() if method == "POST" else None
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})

    def _answer(self, conn):
        """The JSON answer to the call sent on ``conn``; the connection is kept or closed."""
        try:
            resp = conn.getresponse()
            data = json.loads(resp.read() or b"{}")
        except BaseException:
            conn.close()
            raise
        self._give_back(conn, resp)
        if resp.status != 200:
            raise SchedulerError(data.get("error", "scheduler error"), status=resp.status)
        return data

    def _call(self, method, path, payload=None):
        started = False
        while True:
            conn, reused = self._take()
            try:
                self._request(conn, method, path, payload)
                return self._answer(conn)
            except (FileNotFoundError, ConnectionRefusedError):
                conn.close()
                if started:
                    raise SchedulerError("the scheduler is not running", status=503) from None
                self.ensure_running()
                started = True
            except (ConnectionError, http.client.HTTPException):
                conn.close()
                if not reused:  # a kept connection to a daemon that has since gone: ask anew
                    raise

    def ensure_running(self, timeout=15):
        """Start the daemon unless one answers; returns when it is ready."""
        if self._ping():
            return
        with file_lock(self.socket + ".start", timeout=timeout + 15):
            if self._ping():
                return
            cmd = [sys.executable, "-m", "modelrunner.scheduler.daemon", "--socket", self.socket,
                   "--watch-pid", str(self.watch_pid)]
            log_dir = os.path.join(self.settings.models_path, "logs")
            private_dir(log_dir)
            rotate_if_large(os.path.join(log_dir, "scheduler.log"))
            with private_open(os.path.join(log_dir, "scheduler.log"), "ab") as log:
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

    def acquire(self, model_id, engine, mode="completion", keep_alive=None, prompt=None):
        return _lease(self._call("POST", "/acquire", _acquire_payload(model_id, engine, mode,
                                                                      keep_alive, prompt)))

    def begin_acquire(self, model_id, engine, mode="completion", keep_alive=None, prompt=None):
        """Send an acquire and return at once; calling the result waits for the Lease.

        The gateway sends its request to the runner it used last while the scheduler answers,
        which takes one round trip off the time to first token. ``prompt`` (a long prompt's
        prompt_prefix.prompt_chain) may make the answer wait for the prompt's turn.
        """
        conn, reused = self._take()
        try:
            self._request(conn, "POST", "/acquire",
                          _acquire_payload(model_id, engine, mode, keep_alive, prompt))
        except (OSError, http.client.HTTPException):  # no daemon yet, or a stale connection
            conn.close()
            return lambda: self.acquire(model_id, engine, mode, keep_alive, prompt)

        def finish():
            try:
                return _lease(self._answer(conn))
            except (ConnectionError, http.client.HTTPException):
                if reused:  # the kept connection was dead, so the daemon never saw the call
                    return self.acquire(model_id, engine, mode, keep_alive, prompt)
                raise SchedulerError("the scheduler stopped answering", status=503) from None
        return finish

    def prefilled(self, lease):
        """A prompt's answer has started: long ones may go (``Scheduler.prefilled``)."""
        self._call("POST", "/prefilled", {"key": lease.key, "lease": lease.lease})

    def release(self, lease):
        self._call("POST", "/release", {"key": lease.key, "lease": lease.lease})

    def begin_release(self, lease):
        """Send a release and return at once; calling the result (once or more) waits for its
        answer (``SchedulerError`` as ``release`` raises). A release that cannot be sent now
        is made, whole, by the call."""
        payload = {"key": lease.key, "lease": lease.lease}
        conn, reused = self._take()
        try:
            self._request(conn, "POST", "/release", payload)
        except (OSError, http.client.HTTPException):
            conn.close()
            return _Once(lambda: self.release(lease))

        def finish():
            try:
                self._answer(conn)
            except (ConnectionError, http.client.HTTPException):
                if not reused:
                    raise SchedulerError("the scheduler stopped answering", status=503) from None
                self.release(lease)  # the kept connection was dead: the daemon never saw it
            finally:
                self._releases.discard(pending)
        pending = _Once(finish)
        self._releases.add(pending)
        return pending

    def settle(self):
        """Wait for the answers to the releases this process sent (their errors are ignored)."""
        if self._idle_pid != os.getpid():
            self._releases = set()
        for pending in list(self._releases):
            try:
                pending()
            except SchedulerError:
                pass

    def ps(self):
        self.settle()
        return self._call("GET", "/ps")

    def unload(self, models=None, backend=None, everything=False):
        self.settle()
        return self._call("POST", "/unload", {"models": models, "backend": backend,
                                              "all": everything})

    def configure(self, model_id, engine, mode="completion", **fields):
        self.settle()
        return self._call("POST", "/configure", {"model": model_id, "engine": engine,
                                                 "mode": mode, **fields})


class _Once:
    """A call made at most once, whoever calls first (greenlets or threads); later calls wait
    for it, and raise what it raised."""

    def __init__(self, fn):
        self._fn = fn
        self._lock = threading.Lock()
        self._done = False
        self._error = None

    def __call__(self):
        with self._lock:
            if not self._done:
                self._done = True
                try:
                    self._fn()
                except SchedulerError as e:
                    self._error = e
            if self._error is not None:
                raise self._error


def _acquire_payload(model_id, engine, mode, keep_alive, prompt=None):
    payload = {"model": model_id, "engine": engine, "mode": mode, "keep_alive": keep_alive,
               "pid": os.getpid()}
    if prompt is not None:
        payload["prompt"] = prompt
    return payload


def _lease(data):
    return Lease(data["address"], data["key"], data["lease"], data.get("load_seconds"),
                 data.get("secret"), bool(data.get("prefill")))


def _default_watch_pid():
    """The gunicorn master when we are one of its workers, else this process."""
    if "gunicorn.arbiter" in sys.modules or os.environ.get("MODELRUNNER_WATCH_PID"):
        return int(os.environ.get("MODELRUNNER_WATCH_PID") or os.getppid())
    return os.getpid()
