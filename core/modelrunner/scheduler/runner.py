"""One runner: an engine's process serving one model over HTTP on a Unix socket.

The process is started in its own session with PR_SET_PDEATHSIG, so it dies with the scheduler
even on SIGKILL; its output goes to a log file whose tail is the error a failed load reports.

PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process. Loads run
in short-lived threads, so every runner is forked from one long-lived spawner thread instead
(``_spawn``); otherwise each runner would get SIGTERM as soon as its load finished.
"""

import ctypes
import os
import queue
import signal
import subprocess
import threading
import time

from ..logfiles import rotate_if_large
from ..private import private_open
from .environment import runner_environment
from ..runners import UnixHTTPConnection, unix_url

_libc = None


def _die_with_parent():
    """preexec_fn: ask the kernel to SIGTERM us when the scheduler process goes away."""
    global _libc
    try:
        _libc = _libc or ctypes.CDLL("libc.so.6", use_errno=True)
        _libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setsid()


_spawn_queue = queue.Queue()
_spawner = None
_spawner_lock = threading.Lock()


def _spawner_loop():
    while True:
        args, kwargs, done = _spawn_queue.get()
        try:
            done["process"] = subprocess.Popen(*args, **kwargs)
        except BaseException as e:  # handed back to the caller
            done["error"] = e
        done["event"].set()


def _spawn(*args, **kwargs):
    """subprocess.Popen, run in the long-lived spawner thread (see the module docstring)."""
    global _spawner
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive():
            _spawner = threading.Thread(target=_spawner_loop, daemon=True, name="runner-spawner")
            _spawner.start()
    done = {"event": threading.Event()}
    _spawn_queue.put((args, kwargs, done))
    done["event"].wait()
    if "error" in done:
        raise done["error"]
    return done["process"]


class LoadError(Exception):
    """The runner could not start; the message is the engine's own reason."""


class Runner:
    """State of one loaded (or loading) model, owned by the scheduler."""

    STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL

    def __init__(self, key, model, engine, config, socket_path, memory, keep_alive, log_path):
        self.key = key                  # (engine name, model id, mode)
        self.model = model              # store Model
        self.engine = engine
        self.config = config            # RunnerConfig
        self.socket_path = socket_path
        self.memory = memory
        self.keep_alive = keep_alive    # seconds; 0 unload after use; -1 never
        self.log_path = log_path
        self.process = None
        self.in_use = 0
        self.leases = {}                # lease id -> pid of the worker holding it
        self.loading = True
        self.error = None
        self.ready = threading.Event()
        self.gone = threading.Event()   # set once the process has exited and been reaped
        self.last_used = time.time()
        self.started = None
        self.load_seconds = None
        self.context_reason = ""        # why config.context_size is what it is (choose_context)

    @property
    def model_name(self):
        return self.model.tags[0] if self.model.tags else self.model.id

    def start(self, command, timeout):
        """Start the process and wait until its health check answers 200, or raise LoadError."""
        self.started = time.monotonic()
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        env = runner_environment(os.environ, command.env)  # no secrets (see .environment)
        rotate_if_large(self.log_path)
        log = private_open(self.log_path, "ab")
        now = time.time()
        stamp = (time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now))
                 + f".{int(now * 1000) % 1000:03d}")
        log.write(f"[{stamp}] loading {self.model_name} "
                  f"with {self.engine.name}: {' '.join(command.argv)}\n".encode())
        log.flush()
        try:
            self.process = _spawn(command.argv, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env,
                                  preexec_fn=_die_with_parent, close_fds=True)
        finally:
            log.close()
        timeout = command.start_timeout or timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LoadError(f"{self.engine.name} exited with code {self.process.returncode}: "
                                f"{self.log_tail()}")
            if self._healthy(command.health_path):
                self.load_seconds = time.monotonic() - self.started
                return
            time.sleep(0.05)
        self.stop()
        raise LoadError(f"{self.engine.name} did not become ready within {timeout}s: {self.log_tail()}")

    def _healthy(self, path):
        if not os.path.exists(self.socket_path):
            return False
        conn = UnixHTTPConnection(self.socket_path, timeout=2)
        try:
            conn.request("GET", path)
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def terminate(self):
        """Ask the runner to exit (SIGTERM to its process group); returns at once."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop(self):
        """Terminate and wait for the exit (SIGKILL after ``STOP_GRACE``); sets ``gone``."""
        proc = self.process
        try:
            if proc is not None and proc.poll() is None:
                self.terminate()
                try:
                    proc.wait(self.STOP_GRACE)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait()
            # also after a crash: a dead runner's socket file would otherwise stay behind
            try:
                os.unlink(self.socket_path)
            except OSError:
                pass
        finally:
            self.gone.set()

    def log_tail(self, lines=15):
        """The last lines the engine printed: the reason a load failed, in its own words."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - 8192))
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        useful = [line for line in text.splitlines() if line.strip()]
        return "\n".join(useful[-lines:])

    def describe(self):
        """GET /engines/ps entry (DMR's fields) plus modelrunner's extras."""
        return {
            "backend_name": self.engine.name,
            "model_name": self.model_name,
            "model_id": self.model.id,
            "mode": self.key[2],
            "last_used": int(self.last_used),
            "in_use": self.in_use > 0,
            "loading": self.loading,
            "keep_alive": self.keep_alive,
            "pid": self.process.pid if self.process else None,
            "memory": self.memory,
            "address": unix_url(self.socket_path),
            "leases": len(self.leases),
            "load_seconds": self.load_seconds,
            "context_size": self.config.context_size or self.model.inner_config.get("context_size"),
            "context_reason": self.context_reason,
            "expires_at": (None if self.keep_alive is None or self.keep_alive < 0 or self.in_use
                           else self.last_used + self.keep_alive),
        }
