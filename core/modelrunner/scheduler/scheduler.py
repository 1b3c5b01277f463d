"""The scheduler: which runners are loaded, who is using them, and when they go.

Rules (ARCHITECTURE.md, "Runners"): load on first request; concurrent requests during a load wait
for that one load; keep-alive per model (default 5m, 0 = unload after the request, -1 = never);
a max-loaded limit and a memory budget evict idle runners least-recently-used first; a busy
runner is never evicted; a request that cannot fit is refused with the memory it needs; a dead
runner is noticed and replaced; configuration from `_configure` is persisted in the store and is
the only source of how a runner starts.

Engine-agnostic: an engine only supplies the command, the memory estimate and flag validation.
This object lives in the scheduler daemon, one per store, shared by every API worker.
"""

import collections
import contextlib
import dataclasses
import itertools
import logging
import os
import secrets
import threading
import time
from pathlib import Path

from ..engines import Engine, EngineError, RunnerConfig, RunnerHandle
from .. import private
from ..errors import ModelRunnerError
from ..prompt_prefix import long_prompt_bytes, uncached_bytes
from ..runners import unix_url
from ..store.prompt_caches import PromptCaches
from .durations import format_keep_alive, parse_keep_alive
from .local import LocalPlacement
from .placement import LoadError, RunnerSpec
from .runner import Runner

log = logging.getLogger("modelrunner.scheduler")

class SchedulerError(ModelRunnerError):
    """The scheduler could not give a runner (503 when nothing fits, 500 when a load failed)."""


def config_key(engine_name, model_id, mode):
    return f"{engine_name}|{model_id}|{mode}"


socket_dir = private.socket_dir  # a private folder for Unix sockets (see modelrunner.private)


class Scheduler:
    # long prompts a runner's line holds (_take_turn); each holds a thread and a connection of
    # the daemon, which serves every model: past it, a long prompt goes at once
    max_long_waiting = 256

    def __init__(self, store, engines, settings, hooks=None, placement=None):
        self.store = store
        self.engines = engines            # name -> Engine
        self.settings = settings
        self.hooks = hooks                # pluggy hook relay, for on_runner
        self.runners = {}                 # key -> Runner
        self.transient = {}               # config key -> RunnerConfig not to persist (see configure)
        self.stopping = set()             # runners out of service, still exiting
        self.placing = {}                 # key -> model, of runners being placed (lock released)
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.sockets = socket_dir(settings.models_path)
        self.log_dir = private.private_dir(Path(settings.models_path) / "logs")
        self._ids = itertools.count(1)
        self.default_keep_alive = parse_keep_alive(settings.get("keep_alive", "5m"))
        self.max_loaded = int(settings.get("max_loaded", 0) or 0)
        # where runners start (modelrunner.Placement; the make_placement hook): here by default
        self.placement = placement or LocalPlacement(self.sockets)
        self.budget = (0 if self.placement.manages_memory
                       else _memory_budget(settings.get("memory_budget", "auto")))
        self.start_timeout = float(settings.get("runner_start_timeout", 300))
        # the store's cache area: what an engine keeps across its runners (saved prompt caches)
        self.caches = PromptCaches.from_settings(settings)
        # long prompts take turns (_take_turn): how long is long, and the last hashes of each
        # prompt whose answer began, per runner key (prompt_prefix.py), newest last
        self.long_prompt_bytes = long_prompt_bytes(settings)
        self.long_prompt_yield = float(settings.get("long_prompt_yield", 30) or 0)
        self.prompts = {}

    # -- configuration --------------------------------------------------------------------------

    def config_for(self, engine_name, model, mode):
        transient = self.transient.get(config_key(engine_name, model.id, mode))
        if transient is not None:
            return RunnerConfig.from_dict(transient.to_dict())
        configs = self.store.runner_configs()
        data = configs.get(config_key(engine_name, model.id, mode))
        if data is None and mode in ("reranking", "image-generation"):
            data = configs.get(config_key(engine_name, model.id, "completion"))
        config = RunnerConfig.from_dict(data)
        config.mode = mode
        # No context configured stays None: the engine's choose_context decides (and tells why).
        return config

    def configure(self, engine, model, mode, context_size=None, runtime_flags=None,
                  keep_alive=None, extra=None, persist=True):
        """Persist a runner configuration; reload an idle runner, 409 for a busy one.

        With ``persist`` False (a dialect's per-request option, such as Ollama's num_ctx) the
        configuration holds for the next runner this scheduler starts, and for as long as that
        runner lives; it is never written to the store, and it goes with that runner (unloaded,
        evicted, expired, crashed: ``_forget_transient``), so the next load uses what ``model
        configure`` set (or the default) again: a chat request must not change it for later
        clients. Asking again for the configuration already in effect reloads nothing."""
        if runtime_flags is not None:
            engine.validate_runtime_flags(runtime_flags)
        if extra:
            engine.validate_configure(extra)
            self._draft_model(extra)  # a draft model that is not in the store: 404 now
        if keep_alive is not None:
            parse_keep_alive(keep_alive)
        if context_size is not None and (not isinstance(context_size, int) or context_size < -1
                                         or context_size == 0):
            raise EngineError("context-size must be a positive integer (or -1 for the model's maximum)")
        key = config_key(engine.name, model.id, mode)
        with self.lock:
            # a runner of this model being placed was built with the configuration before this
            # one: wait until it is listed (loading, so busy: 409), never apply to nothing
            self._wait_placed(lambda k, m: k == (engine.name, model.id, mode))
            if persist:
                self.transient.pop(key, None)
                current = RunnerConfig.from_dict(self.store.runner_configs().get(key))
            else:
                current = self.config_for(engine.name, model, mode)
                before = current.to_dict()
            current.mode = mode
            if context_size is not None:
                current.context_size = context_size
            if runtime_flags is not None:
                current.runtime_flags = list(runtime_flags)
            if keep_alive is not None:
                current.keep_alive = str(keep_alive)
            for block, value in (extra or {}).items():
                # a block's keys merge: `configure --think` keeps an earlier hf-overrides
                previous = current.extra.get(block)
                if isinstance(value, dict) and isinstance(previous, dict):
                    value = {**previous, **value}
                current.extra[block] = value
            if not persist and current.to_dict() == before:
                return current
            runner = self.runners.get((engine.name, model.id, mode))
            if runner is not None:
                if runner.in_use:
                    raise SchedulerError(f"runner for {runner.model_name} is busy; try again when "
                                         f"its requests finish", status=409)
                self._unload(runner, "unloaded")
            if persist:
                self.store.set_runner_config(key, current.to_dict())
            else:
                self.transient[key] = current
        return current

    def _draft_model(self, extra):
        """The draft model a ``speculative`` block names (DMR's _configure), else None."""
        speculative = (extra or {}).get("speculative")
        name = speculative.get("draft_model") if isinstance(speculative, dict) else None
        if not name:
            return None
        if not isinstance(name, str):
            raise EngineError("speculative.draft_model must be a model name")
        try:
            return self.store.get(name)
        except ModelRunnerError as e:  # not found (404), a bad reference (400)...
            raise SchedulerError(f"draft model {name}: {e}", status=e.status) from None

    # -- leases ---------------------------------------------------------------------------------

    def acquire(self, engine, model, mode="completion", keep_alive=None, pid=None, prompt=None):
        """Lease a ready runner for one request, loading it first if needed. Blocks while loading,
        and while a long prompt waits its turn (``prompt``: prompt_prefix.prompt_chain's)."""
        key = (engine.name, model.id, mode)
        with self.lock:
            # another request placing this runner waits for room with the lock released
            # (_wait_gone): wait for its runner rather than start a second one
            while key in self.placing and key not in self.runners:
                self.changed.wait(1.0)
            runner = self.runners.get(key)
            if runner is not None and not runner.loading and not runner.alive():
                self._crashed(runner)
                runner = None
            if runner is None:
                transient = self.transient.get(config_key(*key))
                self.placing[key] = model
                try:
                    runner = self._new_runner(engine, model, mode)
                except BaseException:
                    # a request's configuration that could not even start a runner (no room,
                    # refused by the engine) goes too, as with a runner that failed to load
                    self._forget_transient(key, transient)
                    raise
                finally:
                    self.placing.pop(key, None)
                    self.changed.notify_all()
            if keep_alive is not None:
                runner.keep_alive = parse_keep_alive(keep_alive)
            lease = f"{next(self._ids)}"
            runner.in_use += 1
            runner.leases[lease] = pid
        runner.ready.wait()
        if runner.error:
            self.release(key, lease)
            raise SchedulerError(f"unable to load runner: {runner.error}", status=500)
        if prompt is not None:
            self._take_turn(runner, lease, prompt)
        return runner, lease

    def _take_turn(self, runner, lease, prompt):
        """Hold a long prompt until its turn, so short ones and returning sessions pass it.

        A runner whose engine says so (``Engine.long_prompts_at_once``) processes at most that
        many long prompts at once (``long_prompt_bytes`` or more that no earlier prompt began
        with), in the order they came, and a long one also waits while a returning session's
        prompt (one that begins with an earlier prompt) has not started its answer, for at most
        ``long_prompt_yield`` seconds: llama-server gives a request the first free slot and
        fills each batch slot by slot, so a returning session's few new tokens otherwise queue
        behind every long prompt sent before them (bench/agent.py --fairness). Other requests
        never wait here. A turn ends when the answer starts (``prefilled``), when the lease
        goes, or ``long_prompt_yield`` seconds after it began (an answer not streamed starts
        only when it ends)."""
        limit = runner.engine.long_prompts_at_once
        if not limit:
            return
        with self.lock:
            seen = self.prompts.setdefault(runner.key, collections.OrderedDict())
            long = (self.long_prompt_bytes > 0
                    and uncached_bytes(prompt, seen) >= self.long_prompt_bytes)
            # seen once its answer begins (prefilled), not now: a copy of a prompt still waiting
            # or being processed is not cached. Its last two links: a text's last one is a part
            # block, and the next turn extends it
            runner.chains[lease] = prompt["chain"][-2:]
            if not long:
                runner.prefilling.add(lease)
                return
            if len(runner.long_waiting) >= self.max_long_waiting:
                return  # the line is full (a flood): it goes, as with no turns at all
            runner.long_waiting.append(lease)
            # woken alone (_wake_turns): a change woke every prompt in line, each taking this
            # lock, and a flood of long prompts slowed every model's requests
            turn = runner.turns[lease] = threading.Condition(self.lock)
            yield_until = time.monotonic() + self.long_prompt_yield
            try:
                while True:
                    now = time.monotonic()
                    head = runner.long_waiting[0] == lease
                    yielding = bool(runner.prefilling) and now < yield_until
                    if head and self._long_running(runner) < limit and not yielding:
                        break
                    if lease not in runner.leases:  # its worker died (tick released it)
                        raise SchedulerError("the request went away while it waited", status=503)
                    if self.runners.get(runner.key) is not runner:
                        break  # unloaded meanwhile: go on, the request meets what is there
                    # a change (prefilled, release) wakes the head; so does the clock, when its
                    # yield or a turn ends (it polled 100 times a second once its yield was over)
                    wake = yield_until if yielding else now + (1.0 if head else 10.0)
                    for began in runner.long_running.values():
                        if head and now < began + self.long_prompt_yield < wake:
                            wake = began + self.long_prompt_yield
                    turn.wait(max(0.01, min(10.0, wake - now)))
            finally:
                runner.long_waiting.remove(lease)
                del runner.turns[lease]
                self._wake_turns(runner)
            runner.long_running[lease] = time.monotonic()

    @staticmethod
    def _wake_turns(runner, lease=None, everyone=False):
        """Wake the long prompt at the head of ``runner``'s line, the only one that may go
        (and ``lease``'s, whose lease went; or ``everyone``, when the runner went)."""
        waiting = list(runner.turns) if everyone else [
            *runner.long_waiting[:1], *([lease] if lease in runner.turns else [])]
        for each in waiting:
            runner.turns[each].notify()

    def _long_running(self, runner):
        """How many long prompts hold their turn: until their answer begins, for at most
        ``long_prompt_yield`` seconds (an answer not streamed begins only when it ends)."""
        since = time.monotonic() - self.long_prompt_yield
        return sum(1 for began in runner.long_running.values() if began > since)

    def prefilled(self, key, lease):
        """A prompt's answer has started: it no longer holds long prompts back, and the runner
        holds it now (a prompt that begins with it is a returning session's)."""
        with self.lock:
            runner = self.runners.get(tuple(key))
            if runner is None:
                return
            hashes = runner.chains.pop(lease, None)
            if hashes:
                seen = self.prompts.setdefault(runner.key, collections.OrderedDict())
                for value in hashes:
                    seen[value] = True
                    seen.move_to_end(value)
                while len(seen) > 4096:
                    seen.popitem(last=False)
            if lease in runner.long_running or lease in runner.prefilling:
                runner.long_running.pop(lease, None)
                runner.prefilling.discard(lease)
                self._wake_turns(runner)

    def release(self, key, lease):
        with self.lock:
            runner = self.runners.get(tuple(key))
            if runner is None or lease not in runner.leases:
                return
            del runner.leases[lease]
            runner.long_running.pop(lease, None)
            runner.prefilling.discard(lease)
            runner.chains.pop(lease, None)
            self._wake_turns(runner, lease)
            runner.in_use -= 1
            runner.last_used = time.time()
            if runner.in_use == 0 and runner.keep_alive == 0 and not runner.loading:
                self._unload(runner, "unloaded")
            self.changed.notify_all()

    def _new_runner(self, engine, model, mode):
        installed, detail = engine.installed()
        if not installed:
            raise SchedulerError(f"engine {engine.name} is not installed: {detail}", status=412)
        bundle = self.store.bundle(model)
        transient = self.transient.get(config_key(engine.name, model.id, mode))
        config = self.config_for(engine.name, model, mode)
        draft = self._draft_model(config.extra)
        if draft is not None:
            bundle.draft = self.store.bundle(draft)
        # The context first: the estimate and the command are then for the same context.
        config.context_size, context_reason = engine.choose_context(bundle, config, self.budget)
        memory = int(engine.estimate_memory(bundle, config) or 0)
        keep_alive = parse_keep_alive(config.keep_alive)
        if keep_alive is None:
            keep_alive = self.default_keep_alive
        name = model.tags[0] if model.tags else model.id
        spec = RunnerSpec(name, engine, model, bundle, config, memory, next(self._ids),
                          self.log_dir / f"runner-{engine.name}-{model.short_id}-{mode}.log",
                          gpus=int(engine.gpus(bundle, config) or 0))
        placed = self._place(spec)
        try:
            secret = None
            if placed.network:  # reached over a network: only the gateway may use it
                if not engine.api_key_env:
                    raise SchedulerError(f"the {engine.name} engine cannot check an API key, so "
                                         f"it cannot run on a network address", status=412)
                secret = secrets.token_urlsafe(32)
            if engine.prompt_cache and not placed.network and self.caches.enabled:
                try:   # a folder on this machine; a cache area we cannot use costs no load
                    bundle.cache_dir = self.caches.folder(model.id)
                except (OSError, ValueError) as e:
                    log.warning("no saved prompt caches for %s: %s", name, e)
            command_for = _CommandFor(engine, bundle, config, secret)
            # the command first: a model the engine refuses (EngineError) evicts nothing
            command_for(placed.address)
            self._make_room(memory, model, config.context_size, context_reason)
        except BaseException:
            self.placement.stop(placed)
            raise
        runner = Runner((engine.name, model.id, mode), model, engine, config, self.placement,
                        placed, memory, keep_alive, secret)
        runner.bundle = bundle
        runner.context_reason = context_reason
        runner.details = dict(engine.runner_details(bundle, config) or {})
        runner.transient = transient  # the request's configuration it started with, if any
        self.runners[runner.key] = runner
        self._emit("loading", runner)
        threading.Thread(target=self._load, args=(runner, command_for), daemon=True,
                         name=f"load-{model.short_id}").start()
        return runner

    def _place(self, spec):
        """The placement's choice; a placement with its own (per node) memory budgets that
        finds no room first waits for the runners still exiting (an unload answers before their
        processes are gone, and their node's memory comes back only then: a load right after an
        unload was a 503 "not enough memory on any node"), then gets the idle runners evicted,
        least recently used first, until it fits."""
        while True:
            try:
                return self.placement.place(spec)
            except SchedulerError as e:
                if e.status != 503 or not self.placement.manages_memory:
                    raise
                exiting = list(self.stopping)
                if exiting:
                    for runner in exiting:
                        self._wait_gone(runner, runner.exit_within + 30)
                    continue
                idle = sorted((r for r in self.runners.values() if r.in_use == 0 and not r.loading),
                              key=lambda r: r.last_used)
                if not idle:
                    raise
                self._unload(idle[0], "evicted")
                self._wait_gone(idle[0], idle[0].exit_within + 30)

    def _load(self, runner, command_for):
        try:
            runner.start(command_for, self.start_timeout)
        except LoadError as e:
            with self.lock:
                runner.error = str(e)
                runner.loading = False
                self.runners.pop(runner.key, None)
                self._forget_transient(runner.key, runner.transient)
            self._emit("failed", runner, error=str(e))
        except Exception as e:  # a bug or an OS error: still wake the waiters
            with self.lock:
                runner.error = f"{type(e).__name__}: {e}"
                runner.loading = False
                self.runners.pop(runner.key, None)
                self._forget_transient(runner.key, runner.transient)
            runner.stop()
            self._emit("failed", runner, error=runner.error)
        else:
            if _overrides(runner.engine, "after_ready"):
                # a runner of the same model still saving what it held (an unload, then a load
                # at once: restart, reconfigure): its files first, then this one reads them
                for old in list(self.stopping):
                    if old.key == runner.key:
                        old.saved.wait(old.engine.lifecycle_timeout + 5)
                runner.handle = self._handle(runner, command_for)
                _bounded(runner.engine.after_ready, runner.handle, runner.engine.lifecycle_timeout,
                         f"after_ready of {runner.model_name}")
            with self.lock:
                runner.loading = False
                runner.last_used = time.time()
            self._emit("loaded", runner, load_seconds=runner.load_seconds)
        finally:
            runner.ready.set()

    # -- room -----------------------------------------------------------------------------------

    def _make_room(self, memory, model, context=None, context_reason=""):
        """Evict idle runners, least recently used first, until the new one fits.

        A model that would not fit even with every idle runner gone is refused before anything is
        evicted: unloading models for a request that fails anyway only costs their next load.
        The refusal names the context the memory is for, and why it is that context.
        """
        name = model.tags[0] if model.tags else model.id
        what = f"{name} with context {context} ({context_reason})" if context else name
        hint = ("; configure a smaller context (model configure --context-size N) or raise "
                "memory_budget" if context else "")
        if self.budget:
            held = sum(r.memory for r in self.runners.values() if r.in_use or r.loading)
            if held + memory > self.budget:
                raise SchedulerError(
                    f"not enough memory to load {what}: it needs {_gib(memory)}, the budget is "
                    f"{_gib(self.budget)} and busy runners hold {_gib(held)}{hint}", status=503)
        while True:
            loaded = list(self.runners.values())
            used = sum(r.memory for r in loaded)
            exiting = list(self.stopping)
            fits_count = not self.max_loaded or len(loaded) < self.max_loaded
            fits_memory = not self.budget or used + sum(r.memory for r in exiting) + memory \
                <= self.budget
            if fits_count and fits_memory:
                return
            if fits_count and exiting and used + memory <= self.budget:
                for runner in exiting:  # their memory comes back once they have exited
                    self._wait_gone(runner, runner.exit_within + 5)
                continue
            idle = sorted((r for r in loaded if r.in_use == 0 and not r.loading),
                          key=lambda r: r.last_used)
            if not idle:
                break
            self._unload(idle[0], "evicted")
        if not fits_memory:
            raise SchedulerError(
                f"not enough memory to load {what}: it needs {_gib(memory)}, the budget is "
                f"{_gib(self.budget)} and busy runners hold {_gib(used)}{hint}", status=503)
        raise SchedulerError(f"cannot load {name}: {len(loaded)} models are loaded and busy "
                             f"(max_loaded={self.max_loaded})", status=503)

    def _wait_placed(self, matches):
        """Wait (lock released) until no runner that ``matches(key, model)`` is being placed: an
        unload or a configure answered while its runner waited for room found nothing loaded,
        and the runner then loaded anyway, with the configuration before (caller holds the
        lock)."""
        while any(matches(key, model) and key not in self.runners
                  for key, model in list(self.placing.items())):
            self.changed.wait(1.0)

    def _wait_gone(self, runner, timeout):
        """Wait for an exiting runner with the lock released, then count it gone: a runner
        saving its prompt caches (``before_stop``) may take a minute, and ps, acquire, release
        and the keep-alive tick go on meanwhile (a load that makes room waited with the lock
        held: every request froze for as long as the evicted runner saved). The caller's
        state may change while it waits: it loops and looks again."""
        deadline = time.monotonic() + timeout
        while not runner.gone.is_set() and time.monotonic() < deadline:
            self.changed.wait(min(1.0, max(0.0, deadline - time.monotonic())))
        self.stopping.discard(runner)

    def _unload(self, runner, event):
        """Take a runner out of service now; it exits in the background.

        SIGTERM goes at once, and a reaper thread waits for the exit (SIGKILL after the grace),
        so the scheduler's lock is not held while a runner takes its time: ps, acquire and
        release go on. Until it has exited its memory still counts against the budget, and a
        load that needs that memory waits for it (``_make_room``).
        """
        self.runners.pop(runner.key, None)
        self._forget_transient(runner.key, runner.transient)
        self._wake_turns(runner, everyone=True)  # its waiting long prompts go on
        self.stopping.add(runner)
        save = _overrides(runner.engine, "before_stop") and runner.alive()
        if not (save and getattr(runner.bundle, "cache_dir", None)):
            self.prompts.pop(runner.key, None)  # nothing it held comes back (_take_turn)
        if not save:
            runner.saved.set()
            runner.terminate()
        hidden = _hide_socket(runner) if save else None

        def reap():
            if save:  # the engine's last word (save its prompt caches), bounded, then SIGTERM
                try:
                    handle = runner.handle or self._handle(runner, None)
                    if hidden:
                        handle = dataclasses.replace(handle, address=unix_url(hidden))
                    _bounded(runner.engine.before_stop, handle,
                             runner.engine.lifecycle_timeout, f"before_stop of {runner.model_name}")
                finally:
                    runner.saved.set()
            runner.stop()
            if hidden:
                with contextlib.suppress(OSError):
                    os.unlink(hidden)
            with self.lock:
                self.stopping.discard(runner)
                self.changed.notify_all()   # a load waiting for this runner's memory
            if save:
                try:
                    self.caches.enforce()
                except OSError:
                    log.exception("could not keep the prompt cache area within its budget")

        threading.Thread(target=reap, daemon=True, name=f"stop-{runner.model.short_id}").start()
        self._emit(event, runner)

    def _handle(self, runner, command_for):
        """What the engine's lifecycle methods are given of ``runner``."""
        command = command_for(runner.address) if command_for is not None else None
        return RunnerHandle(address=runner.address, bundle=runner.bundle, config=runner.config,
                            command=command, api_key=runner.secret)

    def _forget_transient(self, key, transient):
        """A request's configuration (``configure(persist=False)``) lives as long as the runner
        it started (``key``: the runner's): once that runner is gone, the next load is
        configured as before it. A newer one, set meanwhile, stays."""
        key = config_key(*key)
        if transient is not None and self.transient.get(key) is transient:
            del self.transient[key]

    def _crashed(self, runner):
        self.runners.pop(runner.key, None)
        self._forget_transient(runner.key, runner.transient)
        self.prompts.pop(runner.key, None)  # what it held died with it
        self._wake_turns(runner, everyone=True)
        runner.stop()  # reaps it and removes its socket file
        self._emit("crashed", runner, error=runner.placed.exit_reason or "the runner is gone")

    # -- housekeeping ---------------------------------------------------------------------------

    def tick(self):
        """Once a second: expire idle runners, notice dead ones, drop leases of dead workers."""
        now = time.time()
        with self.lock:
            for runner in list(self.runners.values()):
                if runner.loading:
                    continue
                if not runner.alive():
                    self._crashed(runner)
                    continue
                for lease, pid in list(runner.leases.items()):
                    if pid and not _pid_alive(pid):
                        self.release(runner.key, lease)
                if self.runners.get(runner.key) is not runner:
                    continue  # the release above unloaded it (keep-alive 0)
                if (runner.in_use == 0 and runner.keep_alive is not None and runner.keep_alive >= 0
                        and now - runner.last_used >= runner.keep_alive):
                    self._unload(runner, "unloaded")

    def unload(self, models=None, backend=None, everything=False):
        """POST /engines/unload: idle runners go now; busy ones after their requests."""
        count = 0

        def matches(key, model):
            return everything or (backend and key[0] == backend) or (
                models and (model.id in models or set(model.tags) & set(models)))

        with self.lock:
            self._wait_placed(matches)  # one being placed is unloaded after its request too
            for runner in list(self.runners.values()):
                match = everything or (backend and runner.engine.name == backend) or (
                    models and (runner.model.id in models or set(runner.model.tags) & set(models)))
                if not match:
                    continue
                count += 1
                if runner.in_use or runner.loading:
                    runner.keep_alive = 0
                else:
                    self._unload(runner, "unloaded")
        return count

    def ps(self):
        with self.lock:
            return [r.describe() for r in self.runners.values()]

    def shutdown(self):
        with self.lock:
            for runner in list(self.runners.values()):
                self._unload(runner, "unloaded")
            exiting = list(self.stopping)
        for runner in exiting:
            runner.gone.wait(runner.exit_within + 5)
        self.placement.close()

    def _emit(self, event, runner, **extra):
        if self.hooks is None:
            return
        info = {"model": runner.model_name, "model_id": runner.model.id,
                "engine": runner.engine.name, "mode": runner.key[2],
                "pid": runner.pid, "node": runner.placed.node,
                "address": runner.address, "memory": runner.memory,
                "keep_alive": format_keep_alive(runner.keep_alive), **extra}
        try:
            self.hooks.on_runner(event=event, runner=info)
        except Exception:  # an observer must never break scheduling
            import logging
            logging.getLogger("modelrunner.scheduler").exception("on_runner observer failed")


def _hide_socket(runner):
    """Rename a local runner's socket before its engine's ``before_stop``, so that no new
    connection reaches a runner on its way out (a gateway sends a request early to the runner a
    model used last, while the scheduler answers its lease: that request would take the slot
    being saved, and the CPU the next runner loads with); the engine reaches it at the new name.
    Returns the new path, or None (not on a Unix socket, or it could not be renamed)."""
    path = runner.socket_path
    if not path:
        return None
    hidden = path + ".stopping"
    try:
        os.rename(path, hidden)
    except OSError:
        return None
    return hidden


def _overrides(engine, method):
    """Whether ``engine`` has its own lifecycle ``method`` (the base's does nothing: a runner of
    an engine without one is stopped at once, as before there were any)."""
    return getattr(type(engine), method, None) is not getattr(Engine, method)


def _bounded(call, handle, timeout, what):
    """``call(handle)`` in a thread, waited for at most ``timeout`` seconds; an exception or a
    timeout is logged, never raised: a load or an unload goes on whatever the engine's hook does.
    Returns whether it finished."""
    def run():
        try:
            call(handle)
        except Exception:  # noqa: BLE001 - logged; the runner's lifecycle goes on
            log.exception("%s failed", what)

    thread = threading.Thread(target=run, daemon=True, name=what[:40])
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        log.warning("%s still runs after %ss: going on without it", what, timeout)
        return False
    return True


class _CommandFor:
    """``command_for(address)``: the engine's command for a runner at ``address``, its secret
    (if any) in the environment variable the engine reads it from: never in argv, which other
    local users can read. Built once per address (the scheduler checks it before placing)."""

    def __init__(self, engine, bundle, config, secret):
        self.engine, self.bundle, self.config, self.secret = engine, bundle, config, secret
        self._built = {}

    def __call__(self, address):
        command = self._built.get(address)
        if command is None:
            command = self.engine.runner_command(self.bundle, self.config, address)
            if self.secret:
                command.env = {**command.env, self.engine.api_key_env: self.secret}
            self._built = {address: command}
        return command


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _memory_budget(value):
    from .durations import parse_bytes
    if value in (None, "", 0, "0", "none"):
        return 0
    if str(value).lower() == "auto":
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return int(total * 0.8)
    if str(value).endswith("%"):
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return int(total * float(str(value)[:-1]) / 100)
    return parse_bytes(value)


def _gib(n):
    return f"{n / 1024**3:.2f} GiB"
