"""Where a runner process starts: the seam between the scheduler and the machines.

The scheduler decides *whether* a runner runs (load on demand, keep-alive, eviction, crash
recovery); a ``Placement`` decides *where*, and owns the process there. The default
(``LocalPlacement``) starts it as a child of the scheduler on a Unix socket; a plugin's
``make_placement`` hook can return another one (e.g. Ray actors on the nodes of a cluster), and
nothing else in the server changes: runner addresses are URLs, and the gateway proxies to
``unix://`` and ``http://`` alike.

A placement is called by the scheduler in this order, for each runner:

1. ``place(spec)``      under the scheduler's lock: choose where, reserve it, return ``Placed``
                        (its ``address`` may still be provisional, e.g. ``http://node:0``). Fast:
                        no process starts here. Raise ``SchedulerError(503)`` when nothing fits.
2. ``start(placed, command_for, timeout)``  in a load thread: start the process for
                        ``command_for(address)`` (the engine's ``RunnerCommand``, the runner's
                        secret already in its environment), wait for its health check, set
                        ``placed.address`` to where it listens; raise ``LoadError`` with the
                        engine's own words when it cannot.
3. ``alive(placed)``    once a second and before each lease: cheap, never blocks.
4. ``terminate(placed)`` asks it to exit, returns at once; ``stop(placed)`` waits for the exit
                        (forcing it after a grace), frees what ``place`` reserved; both may be
                        called after a crash or twice.
"""

from dataclasses import dataclass, field


class LoadError(Exception):
    """The runner could not start; the message is the engine's own reason."""


@dataclass
class RunnerSpec:
    """What the scheduler asks a placement to place (read-only for the placement)."""

    name: str              # the model's display name, for messages
    engine: object         # modelrunner.Engine
    model: object          # modelrunner.Model
    bundle: object         # modelrunner.Bundle (its files on the scheduler's machine)
    config: object         # modelrunner.RunnerConfig
    memory: int            # the engine's estimate, bytes
    slot: int              # a number unique in this scheduler (socket and log names)
    log_path: object       # where the local placement writes the runner's output
    gpus: int = 0          # GPUs the runner uses (Engine.gpus); 0: none to hand out


@dataclass
class Placed:
    """Where one runner lives. ``address`` is what the gateway connects to."""

    address: str
    node: str | None = None     # the machine's name for ps (None: this machine)
    pid: int | None = None      # the process id on that machine
    network: bool = False       # reached over a network: the runner must check a secret
    state: dict = field(default_factory=dict)  # the placement's own bookkeeping
    load_seconds: float | None = None
    exit_reason: str | None = None  # set when it died: "exit code 1: <log tail>"


class Placement:
    """Base class (and protocol) of placements; see the module docstring for the call order.

    ``manages_memory`` True means the placement keeps its own memory budgets (per node) and
    refuses in ``place``; the scheduler then applies only ``max_loaded`` and its LRU eviction.
    """

    name = "local"
    manages_memory = False

    def place(self, spec: RunnerSpec) -> Placed:
        raise NotImplementedError

    def start(self, placed: Placed, command_for, timeout: float) -> None:
        raise NotImplementedError

    def alive(self, placed: Placed) -> bool:
        raise NotImplementedError

    def terminate(self, placed: Placed) -> None:
        raise NotImplementedError

    def stop(self, placed: Placed) -> None:
        raise NotImplementedError

    def log_tail(self, placed: Placed, lines: int = 15) -> str:
        """The last lines the engine printed: the reason a load failed, in its own words."""
        return ""

    def close(self) -> None:
        """The scheduler is shutting down, every runner already stopped."""
