"""One runner: the scheduler's state of one loaded (or loading) model.

Where its process lives is the placement's business (``.placement``): a child on a Unix socket
by default (``.local``), or elsewhere through a plugin. A runner reached over a network gets a
secret the scheduler generates; the engine's runner checks it (``Engine.api_key_env``) and the
gateway sends it, so nobody else on that network can use the runner.
"""

import threading
import time

from ..runners import socket_path


class Runner:
    """State of one loaded (or loading) model, owned by the scheduler."""

    STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL (the local placement's grace)

    def __init__(self, key, model, engine, config, placement, placed, memory, keep_alive,
                 secret=None):
        self.key = key                  # (engine name, model id, mode)
        self.model = model              # store Model
        self.engine = engine
        self.config = config            # RunnerConfig
        self.placement = placement
        self.placed = placed            # Placed: address, node, pid
        self.memory = memory
        self.keep_alive = keep_alive    # seconds; 0 unload after use; -1 never
        self.secret = secret            # the runner's API key (network runners); never logged
        self.in_use = 0
        self.leases = {}                # lease id -> pid of the worker holding it
        self.long_waiting = []          # leases of long prompts waiting their turn, oldest first
        self.turns = {}                 # lease -> the Condition its waiting prompt is woken by
        self.long_running = {}          # lease -> when its long prompt took its turn (monotonic)
        self.prefilling = set()         # leases of returning prompts whose answer has not begun
        self.chains = {}                # lease -> its prompt's last hashes, seen once it answers
        self.loading = True
        self.error = None
        self.ready = threading.Event()
        self.gone = threading.Event()   # set once the process has exited and been reaped
        self.saved = threading.Event()  # set once the engine's before_stop is over (or skipped)
        self.bundle = None              # the Bundle it runs (set by the scheduler)
        self.handle = None              # the RunnerHandle its engine's lifecycle methods get
        self.last_used = time.time()
        self.started = None
        self.load_seconds = None
        self.context_reason = ""        # why config.context_size is what it is (choose_context)
        self.details = {}               # the engine's runner_details: e.g. its chat template, why
        self.transient = None           # the request's configuration it started from (scheduler)

    @property
    def exit_within(self):
        """Seconds from an unload to the process's exit at most: the engine's ``before_stop``
        (when it has one), then the grace between SIGTERM and SIGKILL."""
        from ..engines import Engine
        own = getattr(type(self.engine), "before_stop", None) is not Engine.before_stop
        return self.STOP_GRACE + (float(self.engine.lifecycle_timeout) if own else 0.0)

    @property
    def model_name(self):
        return self.model.tags[0] if self.model.tags else self.model.id

    @property
    def address(self):
        return self.placed.address

    @property
    def socket_path(self):
        """The Unix socket of a local runner (None for a runner reached over the network)."""
        return socket_path(self.placed.address)

    @property
    def process(self):
        """The local placement's ``subprocess.Popen`` (None elsewhere)."""
        return self.placed.state.get("process")

    @property
    def pid(self):
        return self.placed.pid

    def start(self, command_for, timeout):
        """Start the process and wait until its health check answers 200, or raise LoadError."""
        self.started = time.monotonic()
        self.placement.start(self.placed, command_for, timeout)
        self.load_seconds = self.placed.load_seconds
        if self.load_seconds is None:
            self.load_seconds = time.monotonic() - self.started

    def alive(self):
        return self.placement.alive(self.placed)

    def terminate(self):
        """Ask the runner to exit; returns at once."""
        self.placement.terminate(self.placed)

    def stop(self):
        """Terminate and wait for the exit (forced after a grace); sets ``gone``."""
        try:
            self.placement.stop(self.placed)
        finally:
            self.gone.set()

    def log_tail(self, lines=15):
        """The last lines the engine printed: the reason a load failed, in its own words."""
        return self.placement.log_tail(self.placed, lines)

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
            "pid": self.placed.pid,
            "node": self.placed.node,
            "memory": self.memory,
            "address": self.placed.address,
            "leases": len(self.leases),
            "long_prompts_waiting": len(self.long_waiting),
            "load_seconds": self.load_seconds,
            "context_size": self.config.context_size or self.model.inner_config.get("context_size"),
            "context_reason": self.context_reason,
            "details": self.details,
            "expires_at": (None if self.keep_alive is None or self.keep_alive < 0 or self.in_use
                           else self.last_used + self.keep_alive),
        }
