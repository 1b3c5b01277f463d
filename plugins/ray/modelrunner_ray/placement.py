"""The Ray placement: each runner is a ``RunnerActor`` pinned to the node ``nodes.choose`` picks.

The scheduler keeps its rules (load on demand, keep-alive, eviction, crash recovery); only where
the process starts changes. Runner addresses are ``http://<node ip>:<port>``, so the gateway
proxies to them as to a local socket, with the runner's secret as a bearer token.

The model bundle reaches the node at ``ray_models_path`` (the store's folder as the nodes see it;
default the same path). On a shared volume the files are already there; a node with a folder of
its own gets the bundle's files copied from the scheduler's store through Ray, verified by sha256
(transfer.py). The engine's argv is rewritten from the scheduler's path to that one.

Every Ray call has a timeout: an actor pinned to a node that has gone, or asking for what no
node has, would otherwise wait forever. ``place`` runs under the scheduler's lock, so it makes no
unbounded Ray call: the node list comes from a snapshot a background thread refreshes each
second, and joining the cluster or a stale snapshot's refresh is given ``ray_call_timeout``
seconds (default 10) before the request gets a 503.
"""

import json
import logging
import os
import threading
import time

from modelrunner import SchedulerError, placement

from . import nodes, transfer
from .actor import RunnerActor
from .connect import connect
from .nodes import http_url

log = logging.getLogger("modelrunner.ray")


def _mapping(value):
    """A dict setting given as a dict or as JSON (MODELRUNNER_RAY_NODE_LABELS='{"ai/x": "gpu"}')."""
    if not value:
        return {}
    if isinstance(value, str):
        return json.loads(value)
    return dict(value)


class RayPlacement(placement.Placement):
    name = "ray"
    manages_memory = True
    STOP_GRACE = 5.0

    def __init__(self, settings):
        self.settings = settings
        self.labels = _mapping(settings.get("ray_node_labels"))
        memory = settings.get("ray_node_memory")
        self.node_memory = int(memory) if memory else None
        self.place_timeout = float(settings.get("ray_place_timeout") or 60)
        self.models_path = os.path.abspath(str(settings.models_path))
        self.node_models_path = str(settings.get("ray_models_path") or self.models_path)
        self.log_dir = str(settings.get("ray_log_dir")
                           or os.path.join(self.node_models_path, "logs", "ray"))
        self.call_timeout = float(settings.get("ray_call_timeout") or 10)
        self._snapshot = None          # (monotonic time, ray.nodes()) from the refresher
        self._refresher = None
        self._closed = threading.Event()
        self.held = {}                 # node ID -> bytes of the runners placed there
        self.held_gpus = {}            # node ID -> GPUs of the runners placed there
        self.lock = threading.Lock()
        self._ray = None
        self._actor_class = None
        self._connecting = threading.Lock()  # one ray.init, even after a call timed out

    def _connect(self):
        with self._connecting:
            if self._ray is None:
                try:
                    ray = connect(self.settings)
                except Exception as e:  # unreachable cluster, refused token...
                    raise SchedulerError(f"cannot reach the Ray cluster at "
                                         f"{self.settings.get('ray_address')}: {e}",
                                         status=503) from None
                self._actor_class = ray.remote(RunnerActor)
                self._ray = ray
        return self._ray

    def _bounded(self, call, doing):
        """``call()`` in a thread, waited for at most ``call_timeout`` seconds (a Ray call that
        hangs must not hold the scheduler's lock with it); a 503 past that."""
        outcome = {}

        def run():
            try:
                outcome["value"] = call()
            except BaseException as e:  # handed to the caller below
                outcome["error"] = e
        thread = threading.Thread(target=run, daemon=True, name="ray-call")
        thread.start()
        thread.join(self.call_timeout)
        if thread.is_alive():
            raise SchedulerError(f"the Ray cluster at {self.settings.get('ray_address')} did not "
                                 f"{doing} within {self.call_timeout:g}s (ray_call_timeout)",
                                 status=503)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def _nodes(self):
        """The cluster's nodes: the refresher's snapshot when fresh, else asked now (bounded)."""
        snapshot = self._snapshot
        if snapshot is not None and time.monotonic() - snapshot[0] < 2.0:
            return snapshot[1]

        def ask():
            ray = self._connect()
            found = ray.nodes()
            self._snapshot = (time.monotonic(), found)
            self._start_refresher()
            return found
        return self._bounded(ask, "answer")

    def _start_refresher(self):
        if self._refresher is not None:
            return

        def refresh():
            while not self._closed.wait(1.0):
                try:
                    self._snapshot = (time.monotonic(), self._ray.nodes())
                except Exception:  # the cluster is away: place() asks again, bounded
                    pass
        self._refresher = threading.Thread(target=refresh, daemon=True, name="ray-nodes")
        self._refresher.start()

    # -- the placement protocol -----------------------------------------------------------------

    def place(self, spec):
        found = nodes.from_ray(self._nodes(), self.node_memory)
        label = nodes.label_for(self.labels, spec.model)
        files = transfer.bundle_files(self.models_path, spec.bundle.path)  # before reserving
        if getattr(spec.bundle, "draft", None) is not None:  # speculative decoding's draft model
            files += transfer.bundle_files(self.models_path, spec.bundle.draft.path)
        with self.lock:
            node = nodes.choose(found, self.held, spec.name, spec.memory, label,
                                gpus=spec.gpus, held_gpus=self.held_gpus)
            self.held[node.id] = self.held.get(node.id, 0) + spec.memory
            self.held_gpus[node.id] = self.held_gpus.get(node.id, 0) + spec.gpus
        log.info("placing %s on node %s (%s)", spec.name, node.name, node.id)
        return placement.Placed(address=http_url(node.ip, 0), node=node.name, network=True,
                                state={"node_id": node.id, "memory": spec.memory,
                                       "gpus": spec.gpus, "slot": spec.slot,
                                       "engine": spec.engine.name, "name": spec.name,
                                       "files": files})

    def start(self, placed, command_for, timeout):
        try:
            self._start(placed, command_for, timeout)
        except BaseException:
            self.stop(placed)
            raise

    def _start(self, placed, command_for, timeout):
        ray = self._ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        state = placed.state
        actor = self._actor_class.options(
            # num_gpus: Ray gives the actor (and so the runner) those GPUs, in CUDA_VISIBLE_DEVICES
            num_cpus=0, num_gpus=state["gpus"], max_concurrency=4, max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(state["node_id"], soft=False),
        ).remote(self.log_dir)
        state["actor"] = actor
        try:
            host, port = ray.get(actor.where.remote(), timeout=self.place_timeout)
        except ray.exceptions.GetTimeoutError:
            raise placement.LoadError(f"no Ray actor started on node {placed.node} within "
                                      f"{self.place_timeout:g}s (ray_place_timeout)") from None
        except ray.exceptions.RayError as e:
            raise placement.LoadError(f"the Ray actor on node {placed.node} failed: {_cause(e)}") from None
        self._bundle_to_node(placed, actor)
        placed.address = http_url(host, port)
        command = command_for(placed.address)
        timeout = command.start_timeout or timeout
        log_name = f"runner-{state['slot']}-{state['engine']}.log"
        try:
            placed.pid, placed.load_seconds = ray.get(
                actor.start.remote(self._on_node(command.argv), command.env, command.health_path,
                                   host, port, timeout, log_name),
                timeout=timeout + 30)
        except ray.exceptions.GetTimeoutError:
            raise placement.LoadError(f"{state['engine']} on node {placed.node} did not become ready "
                                      f"within {timeout:g}s") from None
        except ray.exceptions.RayError as e:
            raise placement.LoadError(f"{state['engine']} on node {placed.node}: {_cause(e)}") from None
        state["exit"] = actor.wait_exit.remote()

    def _bundle_to_node(self, placed, actor):
        """Copy the files of the runner's bundle that its node lacks (none on a shared volume)."""
        ray = self._ray
        try:
            lacking = ray.get(actor.missing.remote(self.node_models_path, placed.state["files"]),
                              timeout=self.place_timeout)
            if lacking:
                started = time.monotonic()
                sent = transfer.send(ray, actor, self.node_models_path, self.models_path, lacking,
                                     self.place_timeout)
                log.info("copied %s's bundle to node %s: %d files, %d bytes in %.2fs",
                         placed.state["name"], placed.node, len(lacking), sent,
                         time.monotonic() - started)
        except ray.exceptions.GetTimeoutError:
            raise placement.LoadError(f"copying the model to node {placed.node} stalled for over "
                                      f"{self.place_timeout:g}s (ray_place_timeout)") from None
        except ray.exceptions.RayError as e:
            raise placement.LoadError(f"copying the model to node {placed.node}: {_cause(e)}") from None
        except (OSError, transfer.TransferError) as e:
            raise placement.LoadError(f"copying the model to node {placed.node}: {e}") from None

    def _on_node(self, argv):
        """The engine's argv with the store's path as the nodes see it."""
        if self.node_models_path == self.models_path:
            return list(argv)
        prefix = self.models_path.rstrip("/") + "/"  # /models/x, never /models-extra/x
        return [self.node_models_path.rstrip("/") + "/" + a[len(prefix):]
                if isinstance(a, str) and a.startswith(prefix) else a for a in argv]

    def alive(self, placed):
        exit_ref = placed.state.get("exit")
        if exit_ref is None:
            return placed.state.get("actor") is not None
        ray = self._ray
        ready, _ = ray.wait([exit_ref], timeout=0)
        if not ready:
            return True
        if placed.exit_reason is None:
            try:
                code = ray.get(exit_ref, timeout=5)
                placed.exit_reason = (f"exit code {code} on node {placed.node}: "
                                      f"{self.log_tail(placed, 5)}")
            except Exception as e:  # the actor or its node died
                placed.exit_reason = f"the runner's node {placed.node} or its Ray actor died: " \
                                     f"{type(e).__name__}"
        return False

    def terminate(self, placed):
        actor = placed.state.get("actor")
        if actor is not None:
            try:
                actor.terminate.remote()
            except Exception:  # an actor already gone
                pass

    def stop(self, placed):
        """End the process group on the node, kill the actor, give the node's memory back."""
        actor = placed.state.pop("actor", None)
        if actor is not None:
            ray = self._ray
            try:
                ray.get(actor.stop.remote(self.STOP_GRACE), timeout=self.STOP_GRACE + 10)
            except Exception:  # dead actor or node: nothing left to stop there
                pass
            try:
                ray.kill(actor)
            except Exception:
                pass
        with self.lock:
            if not placed.state.get("released"):
                placed.state["released"] = True
                node_id = placed.state["node_id"]
                self.held[node_id] = max(0, self.held.get(node_id, 0) - placed.state["memory"])
                self.held_gpus[node_id] = max(0, self.held_gpus.get(node_id, 0)
                                              - placed.state["gpus"])

    def log_tail(self, placed, lines=15):
        actor = placed.state.get("actor")
        if actor is None:
            return ""
        try:
            return self._ray.get(actor.log_tail.remote(lines), timeout=5)
        except Exception:
            return ""

    def close(self):
        self._closed.set()
        if self._ray is not None and self._ray.is_initialized():
            self._ray.shutdown()


def _cause(error):
    """The runner's own words from a Ray error (a RayTaskError wraps the actor's exception)."""
    cause = getattr(error, "cause", None)
    return str(cause) if cause is not None else str(error).strip().splitlines()[-1]
