"""What runs on the node: one Ray actor per runner, owning the engine's process there.

The actor picks a free port on its node's address, starts the command the engine built (in its
own session, dying with the actor: PR_SET_PDEATHSIG), waits for the health check and reports
the pid. ``wait_exit`` blocks until the process ends, so the scheduler notices a crash with a
non-blocking ``ray.wait`` on it; an actor or node that dies fails that call the same way.
``stop`` ends the process group (SIGTERM, SIGKILL after a grace); ``ray.kill`` of the actor
then also ends anything left, through the death signal.

The class is plain Python: placement.py wraps it with ``ray.remote``. Threaded (the placement
sets ``max_concurrency``), so ``wait_exit`` never blocks ``stop`` or ``log_tail``.
"""

import ctypes
import os
import signal
import socket
import subprocess
import time

from modelrunner import placement, private_files

from . import transfer
from .nodes import http_url


def _die_with_actor():
    """preexec_fn: SIGTERM when the actor's worker process dies; own session for killpg."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setsid()


class RunnerActor:
    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.log_path = None
        self.process = None

    def where(self):
        """(node IP, a free port on it): where the runner will listen."""
        import ray
        ip = ray.util.get_node_ip_address()
        with socket.socket() as s:
            s.bind((ip, 0))
            return ip, s.getsockname()[1]

    # -- the bundle, when this node does not see the store (transfer.py) -------------------------

    def missing(self, root, files):
        """The bundle files this node lacks; raises when its disk cannot take them."""
        lacking = transfer.missing(root, files)
        if lacking:
            transfer.free_space_for(root, lacking)
        return lacking

    def write_chunk(self, root, rel, token, offset, data, size):
        return transfer.write_chunk(root, rel, token, offset, data, size)

    def commit(self, root, rel, token, size, sha256):
        return transfer.commit(root, rel, token, size, sha256)

    def discard(self, root, rel, token):
        transfer.discard(root, rel, token)

    # -- the runner process -----------------------------------------------------------------------

    def start(self, argv, env, health_path, host, port, timeout, log_name):
        """Start the runner and wait for its health; (pid, seconds) or raise with its log."""
        started = time.monotonic()
        # prompts may reach the log: 0700, this user's, no symlink
        private_files.private_dir(self.log_dir)
        self.log_path = os.path.join(self.log_dir, log_name)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "ab") as log:
            log.write(f"[{time.strftime('%Y-%m-%dT%H:%M:%S')}] starting: {' '.join(argv)}\n"
                      .encode())
            log.flush()
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL,
                                            env=placement.runner_environment(os.environ, env),
                                            preexec_fn=_die_with_actor, close_fds=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"exited with code {self.process.returncode}: "
                                   f"{self.log_tail()}")
            if placement.runner_healthy(http_url(host, port), health_path):
                return self.process.pid, time.monotonic() - started
            time.sleep(0.05)
        self.stop(2.0)
        raise RuntimeError(f"did not become ready within {timeout}s: {self.log_tail()}")

    def wait_exit(self):
        """Blocks until the runner exits; its exit code."""
        return self.process.wait() if self.process is not None else None

    def terminate(self):
        placement.terminate_process_group(self.process)

    def stop(self, grace):
        """SIGTERM to the process group, SIGKILL after ``grace`` seconds; returns the code."""
        return placement.stop_process_group(self.process, grace)

    def log_tail(self, lines=15):
        return placement.read_log_tail(self.log_path, lines) if self.log_path else ""
