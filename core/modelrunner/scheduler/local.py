"""The default placement: a runner is a child process of the scheduler, on a Unix socket.

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
from ..runners import runner_healthy, socket_path, unix_url
from .environment import runner_environment
from .placement import LoadError, Placed, Placement

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


def read_log_tail(path, lines=15):
    """The last non-empty lines of a runner's log file ("" when there is none)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 8192))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    useful = [line for line in text.splitlines() if line.strip()]
    return "\n".join(useful[-lines:])


def _log_header(log, name, engine, argv):
    now = time.time()
    stamp = (time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now))
             + f".{int(now * 1000) % 1000:03d}")
    log.write(f"[{stamp}] loading {name} with {engine}: {' '.join(argv)}\n".encode())
    log.flush()


class LocalPlacement(Placement):
    """Runners as children of the scheduler, each on ``<sockets>/runner-<slot>.sock``."""

    name = "local"
    STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL

    def __init__(self, sockets):
        self.sockets = sockets

    def place(self, spec):
        path = str(self.sockets / f"runner-{spec.slot}.sock")
        return Placed(address=unix_url(path),
                      state={"log_path": spec.log_path, "name": spec.name,
                             "engine": spec.engine.name})

    def start(self, placed, command_for, timeout):
        started = time.monotonic()
        path = socket_path(placed.address)
        command = command_for(placed.address)
        if os.path.exists(path):
            os.unlink(path)
        env = runner_environment(os.environ, command.env)  # no secrets (see .environment)
        log_path = placed.state["log_path"]
        rotate_if_large(log_path)
        log = private_open(log_path, "ab")
        _log_header(log, placed.state["name"], placed.state["engine"], command.argv)
        try:
            process = _spawn(command.argv, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env,
                             preexec_fn=_die_with_parent, close_fds=True)
        finally:
            log.close()
        placed.state["process"] = process
        placed.pid = process.pid
        timeout = command.start_timeout or timeout
        engine = placed.state["engine"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LoadError(f"{engine} exited with code {process.returncode}: "
                                f"{self.log_tail(placed)}")
            if os.path.exists(path) and runner_healthy(unix_url(path), command.health_path):
                placed.load_seconds = time.monotonic() - started
                return
            time.sleep(0.05)
        self.stop(placed)
        raise LoadError(f"{engine} did not become ready within {timeout}s: {self.log_tail(placed)}")

    def alive(self, placed):
        proc = placed.state.get("process")
        if proc is not None and proc.poll() is None:
            return True
        if proc is not None and placed.exit_reason is None:
            placed.exit_reason = f"exit code {proc.returncode}: {self.log_tail(placed, 5)}"
        return False

    def terminate(self, placed):
        terminate_process_group(placed.state.get("process"))

    def stop(self, placed):
        stop_process_group(placed.state.get("process"), self.STOP_GRACE)
        # also after a crash: a dead runner's socket file would otherwise stay behind
        try:
            os.unlink(socket_path(placed.address))
        except OSError:
            pass

    def log_tail(self, placed, lines=15):
        return read_log_tail(placed.state["log_path"], lines)


def terminate_process_group(proc):
    """SIGTERM to the process group of ``proc`` (a runner started in its own session), if it
    still runs; returns at once."""
    if proc is not None and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def stop_process_group(proc, grace):
    """End ``proc``'s process group: SIGTERM, SIGKILL after ``grace`` seconds; waits for it and
    returns its exit code (None for no process). What every placement does to stop a runner."""
    if proc is None:
        return None
    if proc.poll() is None:
        terminate_process_group(proc)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    return proc.returncode
