"""The scheduler's own rules, driven directly with a fake engine.

A fake engine is allowed here only because what is under test is the scheduler's logic (loads,
leases, keep-alive, eviction, crashes, configuration); the runner is a real process
(modelrunner.testing's fake_runner.py) on a real Unix socket. Real llama.cpp is in test_llamacpp_runners.py.
"""

import contextlib
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import gguf
import numpy as np
import pytest

from modelrunner.engines import Engine, EngineError, RunnerCommand
from modelrunner.packaging import build_gguf_artifact
from modelrunner.prompt_prefix import prompt_chain
from modelrunner.scheduler import Scheduler, SchedulerError
from modelrunner.runners import UnixHTTPConnection
from modelrunner.settings import load_settings
from modelrunner.store.filesystem import FilesystemStore

from modelrunner.testing import FAKE_RUNNER, process_gone  # noqa: E402
GIB = 1024**3


# -- the fake engine and its models -------------------------------------------------------------

class FakeEngine(Engine):
    """Starts fake_runner.py; how it behaves is set on the instance by each test."""

    name = "fake"
    formats = ("gguf",)
    modes = ("completion",)
    runtime_flags = frozenset({"--threads"})

    def __init__(self):
        self.slow_start = 0.0
        self.slow_exit = 0.0
        self.fail = False
        self.memory = {}          # model id -> bytes (default 0)
        self.commands = []        # argv of every runner started

    def command(self, bundle, config, address):
        argv = [sys.executable, str(FAKE_RUNNER), "--socket", address.removeprefix("unix://")]
        if self.fail:
            argv.append("--fail")
        if self.slow_start:
            argv += ["--slow-start", str(self.slow_start)]
        if self.slow_exit:
            argv += ["--slow-exit", str(self.slow_exit)]
        if config.context_size:
            argv += ["--ctx-size", str(config.context_size)]
        self.commands.append(argv)
        return RunnerCommand(argv)

    def estimate_memory(self, bundle, config):
        return self.memory.get(bundle.model_id, 0)


class Events:
    """A hook relay stand-in recording on_runner events."""

    def __init__(self):
        self.events = []

    def on_runner(self, event, runner):
        self.events.append((event, runner))

    def count(self, event):
        return sum(1 for e, _ in self.events if e == event)


def write_small_gguf(path, seed):
    """A header-valid GGUF with one small tensor; the seed makes each file (and model) distinct."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(2048)
    writer.add_block_count(1)
    writer.add_uint32("test.seed", seed)
    writer.add_tensor("token_embd.weight",
                      np.random.default_rng(seed).standard_normal((8, 16)).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def add_model(store, tmp_path, name, seed, context_size=None):
    path = write_small_gguf(tmp_path / f"{name.replace('/', '_')}.gguf", seed)
    artifact = build_gguf_artifact(path, context_size=context_size)
    for layer in artifact.layers:
        store.import_file(layer.path, layer.digest)
    store.write_blob_bytes(artifact.config_bytes)
    return store.add_model(artifact.manifest_bytes, tags=[name])


# -- fixtures -----------------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path):
    return FilesystemStore(tmp_path / "models")


@pytest.fixture
def engine():
    return FakeEngine()


@pytest.fixture
def make_scheduler(tmp_path, store, engine):
    made = []

    def make(**settings):
        values = {"max_loaded": 0, "memory_budget": 0, "keep_alive": "5m",
                  "runner_start_timeout": 30, **settings}
        events = Events()
        scheduler = Scheduler(store, {engine.name: engine},
                              load_settings(models_path=str(tmp_path / "models"), **values),
                              hooks=events)
        scheduler.events = events
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        scheduler.shutdown()


@pytest.fixture
def models(store, tmp_path):
    return [add_model(store, tmp_path, f"test/model-{i}", seed=i) for i in range(3)]


def chat(runner, **fields):
    """One chat completion straight to a runner's socket; returns the decoded answer."""
    conn = UnixHTTPConnection(runner.socket_path, timeout=10)
    try:
        body = json.dumps({"model": runner.model_name, "messages": [], **fields}).encode()
        conn.request("POST", "/v1/chat/completions", body=body,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200
        return json.loads(resp.read())
    finally:
        conn.close()


def loaded_names(scheduler):
    return sorted(entry["model_name"].removeprefix("docker.io/") for entry in scheduler.ps())


# -- stories ------------------------------------------------------------------------------------

def test_concurrent_requests_during_a_load_share_one_load(make_scheduler, engine, models):
    scheduler = make_scheduler()
    engine.slow_start = 1.0
    results, errors = [], []

    def request():
        try:
            results.append(scheduler.acquire(engine, models[0]))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=request) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    loading = scheduler.ps()
    assert len(loading) == 1 and loading[0]["loading"] is True
    for t in threads:
        t.join(30)
    assert not errors
    assert len(results) == 8
    assert len(engine.commands) == 1
    assert scheduler.events.count("loading") == 1 and scheduler.events.count("loaded") == 1
    assert len({id(runner) for runner, _ in results}) == 1
    assert len({lease for _, lease in results}) == 8
    runner = results[0][0]
    assert runner.in_use == 8 and runner.alive()
    assert chat(runner)["echo"]["pid"] == runner.process.pid
    for r, lease in results:
        scheduler.release(r.key, lease)
    assert runner.in_use == 0
    assert scheduler.ps()[0]["in_use"] is False


def test_a_loaded_runner_outlives_the_thread_that_loaded_it(make_scheduler, engine, models):
    # The runner is started from a short-lived load thread; PR_SET_PDEATHSIG fires when the
    # *thread* that forked the child exits, so it must not be that thread.
    scheduler = make_scheduler()
    runner, lease = scheduler.acquire(engine, models[0])
    scheduler.release(runner.key, lease)
    time.sleep(1.0)
    assert runner.alive()
    assert chat(runner)["echo"]["pid"] == runner.process.pid


def test_max_loaded_one_evicts_least_recently_used_idle_runner(make_scheduler, engine, models):
    scheduler = make_scheduler(max_loaded=1)
    first, lease = scheduler.acquire(engine, models[0])
    scheduler.release(first.key, lease)
    first_pid = first.process.pid
    second, lease = scheduler.acquire(engine, models[1])
    scheduler.release(second.key, lease)
    assert loaded_names(scheduler) == ["test/model-1:latest"]
    assert process_gone(first_pid)
    assert scheduler.events.count("evicted") == 1
    assert chat(second)["echo"]["pid"] == second.process.pid


def test_with_two_slots_the_least_recently_used_runner_goes_first(make_scheduler, engine, models):
    scheduler = make_scheduler(max_loaded=2)
    a, lease = scheduler.acquire(engine, models[0])
    scheduler.release(a.key, lease)
    b, lease = scheduler.acquire(engine, models[1])
    scheduler.release(b.key, lease)
    time.sleep(0.02)
    again, lease = scheduler.acquire(engine, models[0])  # model-0 is now the most recent
    assert again is a
    scheduler.release(a.key, lease)
    c, lease = scheduler.acquire(engine, models[2])
    scheduler.release(c.key, lease)
    assert loaded_names(scheduler) == ["test/model-0:latest", "test/model-2:latest"]
    assert process_gone(b.process.pid)
    assert a.alive()


def test_busy_runner_is_never_evicted_and_the_newcomer_gets_503(make_scheduler, engine, models):
    scheduler = make_scheduler(max_loaded=1)
    busy, lease = scheduler.acquire(engine, models[0])
    with pytest.raises(SchedulerError) as err:
        scheduler.acquire(engine, models[1])
    assert err.value.status == 503
    assert "busy" in str(err.value) and "max_loaded=1" in str(err.value)
    assert busy.alive() and loaded_names(scheduler) == ["test/model-0:latest"]
    assert chat(busy)["echo"]["pid"] == busy.process.pid
    scheduler.release(busy.key, lease)
    newcomer, lease = scheduler.acquire(engine, models[1])  # now the idle one can go
    scheduler.release(newcomer.key, lease)
    assert loaded_names(scheduler) == ["test/model-1:latest"]
    assert process_gone(busy.process.pid)


def test_memory_budget_refuses_a_model_that_cannot_fit_with_the_memory_it_needs(
        make_scheduler, engine, models):
    scheduler = make_scheduler(memory_budget="2GiB")
    engine.memory = {models[0].id: GIB, models[1].id: 3 * GIB}
    small, lease = scheduler.acquire(engine, models[0])
    scheduler.release(small.key, lease)
    with pytest.raises(SchedulerError) as err:
        scheduler.acquire(engine, models[1])
    assert err.value.status == 503
    message = str(err.value)
    assert "test/model-1" in message and "3.00 GiB" in message and "2.00 GiB" in message
    # a model that can never fit does not throw out the runners that do
    assert small.alive() and loaded_names(scheduler) == ["test/model-0:latest"]
    assert scheduler.events.count("evicted") == 0


def test_a_runner_slow_to_exit_does_not_hold_up_other_models(make_scheduler, engine, models):
    scheduler = make_scheduler()
    engine.slow_exit = 3
    slow, lease = scheduler.acquire(engine, models[0])
    scheduler.release(slow.key, lease)
    engine.slow_exit = 0
    started = time.monotonic()
    assert scheduler.unload(models=[models[0].id]) == 1
    other, lease = scheduler.acquire(engine, models[1])
    scheduler.release(other.key, lease)
    assert time.monotonic() - started < 2.5, "the unload held the scheduler while it exited"
    assert loaded_names(scheduler) == ["test/model-1:latest"]
    assert slow.alive(), "still exiting in the background"
    assert process_gone(slow.process.pid)


def test_a_load_that_needs_an_exiting_runners_memory_waits_for_it(make_scheduler, engine,
                                                                   models):
    scheduler = make_scheduler(memory_budget="2GiB")
    engine.memory = {m.id: GIB for m in models}
    engine.slow_exit = 1
    first, lease = scheduler.acquire(engine, models[0])
    scheduler.release(first.key, lease)
    second, lease = scheduler.acquire(engine, models[1])
    scheduler.release(second.key, lease)
    engine.slow_exit = 0
    third, lease = scheduler.acquire(engine, models[2])  # evicts the first, waits for its exit
    scheduler.release(third.key, lease)
    assert not first.alive(), "the new model loaded before the evicted one gave its memory back"
    assert loaded_names(scheduler) == ["test/model-1:latest", "test/model-2:latest"]


def test_configure_and_unload_while_the_model_waits_for_room_are_not_lost(make_scheduler,
                                                                          engine, models):
    """A configure (or unload) of a model whose runner waits for an evicted runner's memory
    answered 'done' while nothing was listed; the runner then loaded with the old context."""
    scheduler = make_scheduler(memory_budget="2GiB")
    engine.memory = {m.id: GIB for m in models}
    engine.slow_exit = 2
    for model in models[:2]:
        runner, lease = scheduler.acquire(engine, model)
        scheduler.release(runner.key, lease)

    def load(model):
        runner, lease = scheduler.acquire(engine, model)
        scheduler.release(runner.key, lease)

    third = threading.Thread(target=load, args=(models[2],))
    third.start()
    time.sleep(0.5)  # the third waits for the first's exit
    try:
        scheduler.configure(engine, models[2], "completion", context_size=4096)
    except SchedulerError as e:
        assert e.status == 409  # it is loading: busy
    else:
        third.join(30)
        runner, lease = scheduler.acquire(engine, models[2])
        scheduler.release(runner.key, lease)
        assert chat(runner)["echo"]["ctx_size"] == 4096, "configured, but loaded as before"
    third.join(30)
    first = threading.Thread(target=load, args=(models[0],))  # evicts the second, waits
    first.start()
    time.sleep(0.5)
    assert scheduler.unload(models=[models[0].id]) == 1
    first.join(30)
    engine.slow_exit = 0
    assert loaded_names(scheduler) == ["test/model-2:latest"], "unloaded, but loaded after"


def test_memory_budget_evicts_idle_runners_to_make_room(make_scheduler, engine, models):
    scheduler = make_scheduler(memory_budget="2GiB")
    engine.memory = {m.id: GIB for m in models}
    runners = []
    for model in models:
        runner, lease = scheduler.acquire(engine, model)
        scheduler.release(runner.key, lease)
        runners.append(runner)
        time.sleep(0.02)
    assert loaded_names(scheduler) == ["test/model-1:latest", "test/model-2:latest"]
    assert process_gone(runners[0].process.pid)
    assert sum(entry["memory"] for entry in scheduler.ps()) == 2 * GIB


def test_keep_alive_expiry_unloads_idle_runner(make_scheduler, engine, models):
    scheduler = make_scheduler(keep_alive="1s")
    runner, lease = scheduler.acquire(engine, models[0])
    time.sleep(1.2)
    scheduler.tick()
    assert runner.alive(), "a runner in use never expires"
    scheduler.release(runner.key, lease)
    scheduler.tick()
    assert runner.alive(), "keep-alive counts from the end of the last request"
    entry = scheduler.ps()[0]
    assert entry["keep_alive"] == 1 and entry["expires_at"] >= time.time()
    time.sleep(1.1)
    scheduler.tick()
    assert scheduler.ps() == []
    assert process_gone(runner.process.pid)
    assert scheduler.events.count("unloaded") == 1


def test_configured_keep_alive_applies_to_the_model(make_scheduler, engine, models):
    scheduler = make_scheduler()  # default 5m
    scheduler.configure(engine, models[0], "completion", keep_alive="1s")
    runner, lease = scheduler.acquire(engine, models[0])
    scheduler.release(runner.key, lease)
    assert runner.keep_alive == 1
    time.sleep(1.1)
    scheduler.tick()
    assert scheduler.ps() == []


def test_keep_alive_zero_unloads_after_the_request(make_scheduler, engine, models):
    scheduler = make_scheduler()
    runner, lease = scheduler.acquire(engine, models[0], keep_alive="0")
    other, other_lease = scheduler.acquire(engine, models[0])
    assert other is runner
    assert chat(runner)["choices"][0]["message"]["content"] == "echo"
    scheduler.release(runner.key, lease)
    assert runner.alive(), "still in use by the second request"
    scheduler.release(runner.key, other_lease)
    assert scheduler.ps() == []
    assert process_gone(runner.process.pid)


def test_keep_alive_minus_one_never_unloads(make_scheduler, engine, models):
    scheduler = make_scheduler(keep_alive="1s")
    runner, lease = scheduler.acquire(engine, models[0], keep_alive="-1")
    scheduler.release(runner.key, lease)
    runner.last_used -= 10 * 365 * 86400  # idle for ten years
    scheduler.tick()
    assert runner.alive() and len(scheduler.ps()) == 1
    assert scheduler.ps()[0]["expires_at"] is None


def test_dead_runner_is_noticed_and_replaced_on_next_request(make_scheduler, engine, models):
    scheduler = make_scheduler()
    runner, lease = scheduler.acquire(engine, models[0])
    scheduler.release(runner.key, lease)
    old_pid = runner.process.pid
    os.kill(old_pid, signal.SIGKILL)
    runner.process.wait(5)
    # no tick in between: the next request itself notices
    fresh, lease = scheduler.acquire(engine, models[0])
    assert fresh is not runner and fresh.process.pid != old_pid
    assert chat(fresh)["echo"]["pid"] == fresh.process.pid
    scheduler.release(fresh.key, lease)
    assert scheduler.events.count("crashed") == 1
    # and the housekeeping tick notices a crash of an idle runner on its own
    os.kill(fresh.process.pid, signal.SIGKILL)
    fresh.process.wait(5)
    scheduler.tick()
    assert scheduler.ps() == []
    assert scheduler.events.count("crashed") == 2


def test_dead_runner_while_in_use_releases_cleanly(make_scheduler, engine, models):
    scheduler = make_scheduler()
    runner, lease = scheduler.acquire(engine, models[0])
    os.kill(runner.process.pid, signal.SIGKILL)
    runner.process.wait(5)
    scheduler.tick()
    assert scheduler.ps() == []
    scheduler.release(runner.key, lease)  # the worker finishing its (failed) request
    fresh, lease = scheduler.acquire(engine, models[0])
    assert fresh.alive() and fresh.in_use == 1
    scheduler.release(fresh.key, lease)
    assert fresh.in_use == 0


def test_failed_load_reports_the_engines_own_reason(make_scheduler, engine, models):
    scheduler = make_scheduler()
    engine.fail = True
    engine.slow_start = 0.5
    errors = []

    def request():
        with pytest.raises(SchedulerError) as err:
            scheduler.acquire(engine, models[0])
        errors.append(err.value)

    threads = [threading.Thread(target=request) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(errors) == 3 and len(engine.commands) == 1
    for error in errors:
        assert error.status == 500
        assert "exited with code 1" in str(error)
        assert "tensor 'blk.0' has the wrong shape" in str(error)
    assert scheduler.ps() == []
    assert scheduler.events.count("failed") == 1
    # once the cause is fixed the next request loads
    engine.fail = False
    engine.slow_start = 0
    runner, lease = scheduler.acquire(engine, models[0])
    assert chat(runner)["echo"]["pid"] == runner.process.pid
    scheduler.release(runner.key, lease)


def test_a_runner_that_never_becomes_ready_times_out(make_scheduler, engine, models):
    scheduler = make_scheduler(runner_start_timeout=1)
    engine.slow_start = 30
    started = time.monotonic()
    with pytest.raises(SchedulerError) as err:
        scheduler.acquire(engine, models[0])
    assert time.monotonic() - started < 10
    assert "did not become ready within 1" in str(err.value)
    assert "fake runner" in str(err.value) and "starting" in str(err.value)
    pid = int(str(err.value).split("fake runner ")[1].split()[0])
    assert process_gone(pid)
    assert scheduler.ps() == []


def test_lease_of_a_dead_worker_is_released(make_scheduler, engine, models):
    scheduler = make_scheduler()
    worker = subprocess.Popen([sys.executable, "-c", "pass"])
    worker.wait()
    runner, lease = scheduler.acquire(engine, models[0], pid=worker.pid)
    mine, my_lease = scheduler.acquire(engine, models[0], pid=os.getpid())
    assert runner.in_use == 2
    scheduler.tick()
    assert runner.in_use == 1 and lease not in runner.leases and my_lease in runner.leases
    assert runner.alive(), "the live worker's lease keeps the runner"
    scheduler.release(mine.key, my_lease)
    assert runner.in_use == 0
    scheduler.release(runner.key, lease)  # a late release of the reaped lease is harmless
    assert runner.in_use == 0


def test_lease_of_a_dead_worker_with_keep_alive_zero_unloads_once(make_scheduler, engine, models):
    scheduler = make_scheduler()
    worker = subprocess.Popen([sys.executable, "-c", "pass"])
    worker.wait()
    runner, lease = scheduler.acquire(engine, models[0], keep_alive="0", pid=worker.pid)
    scheduler.tick()
    assert scheduler.ps() == []
    assert process_gone(runner.process.pid)
    assert scheduler.events.count("unloaded") == 1


def test_configure_busy_runner_gives_409_and_idle_runner_reloads_with_new_context(
        make_scheduler, engine, models, store):
    scheduler = make_scheduler()
    runner, lease = scheduler.acquire(engine, models[0])
    assert chat(runner)["echo"]["ctx_size"] == 2048  # the model's own context length
    with pytest.raises(SchedulerError) as err:
        scheduler.configure(engine, models[0], "completion", context_size=4096)
    assert err.value.status == 409
    assert scheduler.ps()[0]["context_size"] == 2048
    assert store.runner_configs() == {}, "a refused configuration is not persisted"
    scheduler.release(runner.key, lease)

    config = scheduler.configure(engine, models[0], "completion", context_size=4096,
                                 runtime_flags=["--threads", "1"])
    assert config.context_size == 4096
    assert scheduler.ps() == [], "the idle runner is unloaded to apply the new configuration"
    assert process_gone(runner.process.pid)
    saved = store.runner_configs()[f"fake|{models[0].id}|completion"]
    assert saved["context_size"] == 4096 and saved["runtime_flags"] == ["--threads", "1"]

    fresh, lease = scheduler.acquire(engine, models[0])
    assert chat(fresh)["echo"]["ctx_size"] == 4096
    assert scheduler.ps()[0]["context_size"] == 4096
    assert engine.commands[-1][-2:] == ["--ctx-size", "4096"]
    scheduler.release(fresh.key, lease)

    # a new scheduler (a restarted daemon) applies the persisted configuration too
    scheduler.shutdown()
    again = make_scheduler()
    runner, lease = again.acquire(engine, models[0])
    assert chat(runner)["echo"]["ctx_size"] == 4096
    again.release(runner.key, lease)


def test_unload_takes_idle_runners_now_and_busy_ones_after_their_request(
        make_scheduler, engine, models):
    scheduler = make_scheduler()
    idle, lease = scheduler.acquire(engine, models[0])
    scheduler.release(idle.key, lease)
    busy, busy_lease = scheduler.acquire(engine, models[1])
    assert scheduler.unload(everything=True) == 2
    assert loaded_names(scheduler) == ["test/model-1:latest"]
    assert process_gone(idle.process.pid)
    assert chat(busy)["echo"]["pid"] == busy.process.pid
    scheduler.release(busy.key, busy_lease)
    assert scheduler.ps() == []


def test_a_model_the_engine_refuses_evicts_nothing(make_scheduler, engine, models):
    scheduler = make_scheduler(max_loaded=1)
    runner, lease = scheduler.acquire(engine, models[0])
    scheduler.release(runner.key, lease)
    with pytest.raises(EngineError):
        scheduler.acquire(engine, models[1], mode="embedding")  # the fake engine has no such mode
    assert runner.alive() and loaded_names(scheduler) == ["test/model-0:latest"]


def test_a_crashed_runner_leaves_no_socket_behind(make_scheduler, engine, models):
    scheduler = make_scheduler()
    runner, lease = scheduler.acquire(engine, models[0])
    scheduler.release(runner.key, lease)
    assert os.path.exists(runner.socket_path)
    os.kill(runner.process.pid, signal.SIGKILL)
    runner.process.wait(5)
    scheduler.tick()
    assert not os.path.exists(runner.socket_path)
    assert not [p for p in scheduler.sockets.glob("runner-*.sock")]


# -- the gateway in front of the scheduler --------------------------------------------------------

class InProcessClient:
    """The SchedulerClient's interface over an in-process Scheduler (no daemon)."""

    def __init__(self, scheduler, store):
        self.scheduler = scheduler
        self.store = store

    def acquire(self, model_id, engine, mode="completion", keep_alive=None, prompt=None):
        from modelrunner.scheduler import Lease
        runner, lease = self.scheduler.acquire(self.scheduler.engines[engine],
                                               self.store.get(model_id), mode, keep_alive,
                                               prompt=prompt)
        return Lease(runner.socket_path, list(runner.key), lease, runner.load_seconds,
                     prefill=lease in runner.long_running or lease in runner.prefilling)

    def begin_acquire(self, model_id, engine, mode="completion", keep_alive=None, prompt=None):
        lease = self.acquire(model_id, engine, mode, keep_alive, prompt)
        return lambda: lease

    def prefilled(self, lease):
        self.scheduler.prefilled(lease.key, lease.lease)

    def release(self, lease):
        self.scheduler.release(lease.key, lease.lease)

    def begin_release(self, lease):
        self.release(lease)
        return lambda: None


@pytest.fixture
def gateway(make_scheduler, store, engine):
    from modelrunner.gateway import Gateway

    scheduler = make_scheduler()

    class Runtime:
        settings = scheduler.settings
        engines = {engine.name: engine}

        def emit_request(self, event, record):
            pass

    runtime = Runtime()
    runtime.store = store
    runtime.scheduler = InProcessClient(scheduler, store)
    gw = Gateway(runtime)
    gw.scheduler = scheduler
    return gw


def test_gateway_replaces_a_runner_that_died_just_before_the_request(gateway, engine, models):
    scheduler = gateway.scheduler
    body = json.dumps({"model": "test/model-0", "messages": []}).encode()
    first = gateway.open("test/model-0", "/v1/chat/completions", body, engine="fake").json()
    [runner] = scheduler.runners.values()
    assert first["echo"]["pid"] == runner.process.pid
    # the runner dies right after the scheduler saw it alive: the request is not lost
    os.kill(runner.process.pid, signal.SIGKILL)
    assert process_gone(runner.process.pid)
    looks = iter([True])
    runner.alive = lambda: next(looks, False)
    answer = gateway.open("test/model-0", "/v1/chat/completions", body, engine="fake")
    assert answer.status == 200
    data = answer.json()
    [fresh] = scheduler.runners.values()
    assert fresh is not runner and data["echo"]["pid"] == fresh.process.pid
    assert fresh.in_use == 0


def test_gateway_follows_a_model_to_its_new_runner_after_a_reload(gateway, engine, models):
    """The gateway sends a request to the runner it used last while the scheduler answers its
    lease; after a reconfigure replaced that runner, the answer still comes from the new one."""
    scheduler = gateway.scheduler
    body = json.dumps({"model": "test/model-0", "messages": []}).encode()
    gateway.open("test/model-0", "/v1/chat/completions", body, engine="fake").json()
    [old] = scheduler.runners.values()
    scheduler.configure(engine, models[0], "completion", context_size=4096)
    data = gateway.open("test/model-0", "/v1/chat/completions", body, engine="fake").json()
    [new] = scheduler.runners.values()
    assert new is not old and data["echo"]["pid"] == new.process.pid
    assert new.in_use == 0 and not new.leases


def test_gateway_sends_no_prompt_early_to_the_port_a_network_runner_left(gateway, models):
    """A runner on another node is gone; whoever listens at its port now must not get the
    next request's prompt (sent early, before the scheduler names the runner)."""
    from modelrunner.testing.hostile import answering_server
    body = json.dumps({"model": "test/model-0", "messages": [], "secret": "prompt"}).encode()
    gateway.open("test/model-0", "/v1/chat/completions", body, engine="fake").json()
    [key] = gateway._last_address
    with answering_server(b"{}") as port_taken:
        gateway._last_address[key] = (port_taken, "the-gone-runners-secret")
        data = gateway.open("test/model-0", "/v1/chat/completions", body, engine="fake").json()
        assert data["echo"]["pid"] == gateway.scheduler.runners[key].process.pid
        time.sleep(0.2)  # a request sent would have been read by now
        assert port_taken.requests == [], "the prompt went to whoever holds the old port"


def test_a_runner_answering_what_is_not_http_is_a_502_and_frees_its_runner(gateway, models):
    """A runner (another engine's, or a broken one) answering garbage kept its lease for the
    worker's life: never evicted, unloaded or reconfigured; the client got a 500."""
    from modelrunner.gateway import GatewayError
    with impostor(gateway, b"garbage\r\n\r\n") as runner:
        with pytest.raises(GatewayError) as err:
            gateway.open("test/model-0", "/v1/chat/completions", BODY, engine="fake")
        assert err.value.status == 502
        assert runner.in_use == 0 and not runner.leases


def test_an_answer_cut_before_its_content_length_is_an_error_not_a_200(gateway, models):
    """A runner dying mid-answer: the client got a 200 with half a JSON body."""
    from modelrunner.gateway import GatewayError
    cut = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 90\r\n\r\n{"ch'
    with impostor(gateway, cut) as runner:
        answer = gateway.open("test/model-0", "/v1/chat/completions", BODY, engine="fake")
        with pytest.raises(GatewayError):
            answer.read()
        assert runner.in_use == 0


BODY = json.dumps({"model": "test/model-0", "messages": []}).encode()


@contextlib.contextmanager
def impostor(gateway, reply):
    """The loaded runner's socket answered by a stand-in that writes ``reply`` and hangs up."""
    gateway.open("test/model-0", "/v1/chat/completions", BODY, engine="fake").json()
    [runner] = gateway.scheduler.runners.values()
    os.rename(runner.socket_path, runner.socket_path + ".aside")
    stand_in = socket.socket(socket.AF_UNIX)
    stand_in.bind(runner.socket_path)
    stand_in.listen()

    def answer():
        while True:
            try:
                conn, _ = stand_in.accept()
            except OSError:
                return
            request = b""
            while b"\r\n\r\n" not in request:  # all of it: a close with unread bytes resets
                request += conn.recv(65536)
            head, _, body = request.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            while len(body) < length:
                body += conn.recv(65536)
            conn.sendall(reply)
            conn.close()

    threading.Thread(target=answer, daemon=True).start()
    try:
        yield runner
    finally:
        stand_in.close()
        os.replace(runner.socket_path + ".aside", runner.socket_path)


def test_gateway_ends_a_stream_with_an_error_when_the_runner_dies(gateway, engine, models):
    from modelrunner.gateway import GatewayError
    scheduler = gateway.scheduler
    body = json.dumps({"model": "test/model-0", "messages": [], "stream": True,
                       "max_tokens": 200, "delay": 0.05}).encode()
    answer = gateway.open("test/model-0", "/v1/chat/completions", body, engine="fake")
    assert answer.streaming
    [runner] = scheduler.runners.values()
    assert runner.in_use == 1
    chunks = []
    with pytest.raises(GatewayError) as err:
        for chunk in answer:
            chunks.append(chunk)
            if len(chunks) == 2:
                os.kill(runner.process.pid, signal.SIGKILL)
    assert "runner" in str(err.value)
    assert b"[DONE]" not in b"".join(chunks)
    assert runner.in_use == 0, "the lease is released"


@pytest.mark.parametrize("gone", ["unloaded", "expired", "evicted", "crashed"])
def test_a_requests_context_goes_with_the_runner_it_started(make_scheduler, engine, models,
                                                             store, gone):
    """configure(persist=False) (Ollama's num_ctx from one request) holds for the runner it
    starts, never for the next load: whoever loads the model after it is gone gets the
    configured (here: the model's own) context again."""
    scheduler = make_scheduler(max_loaded=1 if gone == "evicted" else 0)
    scheduler.configure(engine, models[0], "completion", context_size=512, persist=False)
    runner, lease = scheduler.acquire(engine, models[0], keep_alive="0s" if gone == "expired"
                                      else None)
    assert chat(runner)["echo"]["ctx_size"] == 512
    scheduler.release(runner.key, lease)  # keep-alive 0s ("expired"): unloaded now
    if gone == "unloaded":
        scheduler.unload(models=[models[0].id])
    elif gone == "evicted":  # max_loaded 1: another model's load evicts it
        other, other_lease = scheduler.acquire(engine, models[1])
        scheduler.release(other.key, other_lease)
    elif gone == "crashed":
        os.kill(runner.process.pid, signal.SIGKILL)
        runner.process.wait()
        scheduler.tick()
    assert all(r["model_id"] != models[0].id for r in scheduler.ps())
    fresh, lease = scheduler.acquire(engine, models[0])
    assert chat(fresh)["echo"]["ctx_size"] == 2048  # the model's own context length
    scheduler.release(fresh.key, lease)
    assert store.runner_configs() == {}  # and nothing was ever written


# -- an engine's lifecycle: before_stop and after_ready (issue 30) ------------------------------

class LifecycleEngine(FakeEngine):
    """Records the scheduler's calls of after_ready and before_stop, and whether the runner still
    answered then; ``wedged`` makes before_stop hang, ``broken`` makes after_ready raise."""

    prompt_cache = True
    lifecycle_timeout = 1.0

    def __init__(self):
        super().__init__()
        self.calls = []
        self.wedged = False
        self.broken = False

    def _answers(self, runner):
        try:
            return runner.request("GET", "/health", timeout=5)[0] == 200
        except OSError:
            return False

    def after_ready(self, runner):
        self.calls.append(("after_ready", runner.bundle.model_id, runner.cache_dir,
                           self._answers(runner)))
        if self.broken:
            raise RuntimeError("a bug in after_ready")

    def before_stop(self, runner):
        # reached at a name of its own: a gateway's early request cannot take its slots now
        hidden = runner.address.endswith(".sock.stopping") and not os.path.exists(
            runner.address.removeprefix("unix://").removesuffix(".stopping"))
        self.calls.append(("before_stop", runner.bundle.model_id, runner.cache_dir,
                           self._answers(runner) and hidden))
        if self.wedged:
            time.sleep(60)


def lifecycle_scheduler(tmp_path, store, engine, **settings):
    values = {"max_loaded": 0, "memory_budget": 0, "keep_alive": "5m",
              "runner_start_timeout": 30, **settings}
    return Scheduler(store, {engine.name: engine},
                     load_settings(models_path=str(tmp_path / "models"), **values), hooks=Events())


def test_every_unload_path_lets_the_engine_save_first_and_every_load_restore(tmp_path, store,
                                                                              models):
    engine = LifecycleEngine()
    scheduler = lifecycle_scheduler(tmp_path, store, engine, max_loaded=1, keep_alive="1s")
    try:
        def use(model):
            runner, lease = scheduler.acquire(engine, model)
            # restored before the first request: acquire answers after after_ready
            assert engine.calls[-1][:2] == ("after_ready", model.id)
            scheduler.release(runner.key, lease)
            return runner

        first = use(models[0])
        folder = engine.calls[-1][2]
        assert folder == tmp_path / "models" / "cache" / "prompts" / models[0].id.split(":")[1]
        assert folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) == 0o700
        use(models[1])                          # max_loaded=1: models[0] is evicted
        assert first.gone.wait(10)
        time.sleep(1.1)
        scheduler.tick()                        # models[1] expires
        use(models[0])
        scheduler.unload(everything=True)       # POST /engines/unload
        use(models[2])
        scheduler.configure(engine, models[2], "completion", keep_alive="10m")  # a new config
        use(models[2])
    finally:
        scheduler.shutdown()                    # server shutdown, and so restart-runner
    stops = [(model, alive) for what, model, _, alive in engine.calls if what == "before_stop"]
    assert stops == [(models[0].id, True), (models[1].id, True), (models[0].id, True),
                     (models[2].id, True), (models[2].id, True)]
    assert sum(1 for c in engine.calls if c[0] == "after_ready") == 5
    assert all(alive for what, _, _, alive in engine.calls if what == "after_ready")


def test_a_wedged_save_or_a_failing_restore_never_breaks_a_load_or_an_unload(tmp_path, store,
                                                                            models):
    engine = LifecycleEngine()
    engine.wedged = engine.broken = True
    scheduler = lifecycle_scheduler(tmp_path, store, engine)
    try:
        runner, lease = scheduler.acquire(engine, models[0])
        assert chat(runner)["echo"]["pid"] == runner.process.pid   # loaded, whatever it raised
        scheduler.release(runner.key, lease)
        scheduler.unload(everything=True)
        # stopped after lifecycle_timeout (1s) and the grace, not after the 60s it would hang
        assert runner.gone.wait(runner.exit_within + 5)
        assert process_gone(runner.process.pid)
    finally:
        scheduler.shutdown()


def test_while_an_evicted_runner_saves_its_caches_other_requests_go_on(tmp_path, store, models):
    """A load that must wait for an evicted runner's memory waits with the scheduler's lock
    released: the evicted runner saving its prompt caches (before_stop, up to a minute on a big
    KV cache) froze ps and every other model's requests for as long as it saved."""
    engine = LifecycleEngine()
    engine.lifecycle_timeout = 4.0
    scheduler = lifecycle_scheduler(tmp_path, store, engine, memory_budget="2GiB")
    engine.memory = {m.id: GIB for m in models}
    try:
        for model in models[:2]:
            runner, lease = scheduler.acquire(engine, model)
            scheduler.release(runner.key, lease)
        engine.wedged = True                 # the evicted one saves for its whole timeout
        got = {}

        def load_third():
            runner, lease = scheduler.acquire(engine, models[2])
            got["third"] = runner
            scheduler.release(runner.key, lease)

        third = threading.Thread(target=load_third)
        third.start()
        time.sleep(1.0)                      # the third waits for the first's memory
        started = time.monotonic()
        assert [r["model_name"] for r in scheduler.ps()]
        other, lease = scheduler.acquire(engine, models[1])   # loaded: no wait for the lock
        scheduler.release(other.key, lease)
        assert time.monotonic() - started < 1.5, "the scheduler was held while a runner saved"
        third.join(30)
        assert "third" in got and loaded_names(scheduler) == ["test/model-1:latest",
                                                                "test/model-2:latest"]
    finally:
        engine.wedged = False
        scheduler.shutdown()


def test_a_cache_area_that_cannot_be_used_costs_no_load(tmp_path, store, models):
    """A file, or another user's link, where the prompt cache area should be: the model loads
    without saved caches (every load was a 500 'not a plain folder')."""
    engine = LifecycleEngine()
    area = tmp_path / "models" / "cache"
    area.mkdir(parents=True)
    (area / "prompts").symlink_to(tmp_path)
    scheduler = lifecycle_scheduler(tmp_path, store, engine)
    try:
        runner, lease = scheduler.acquire(engine, models[0])
        assert chat(runner)["echo"]["pid"] == runner.process.pid
        scheduler.release(runner.key, lease)
        assert engine.calls[-1][:3] == ("after_ready", models[0].id, None)
    finally:
        scheduler.shutdown()


# -- long prompts take turns ---------------------------------------------------------------------

def conversation(session, turns=1, size=6000):
    """An agent's request after ``turns`` turns: a long system prompt, then the turns so far."""
    messages = [{"role": "system", "content": f"session {session} " + "tool schema " * (size // 12)},
                {"role": "user", "content": "fix the failing test"}]
    for turn in range(1, turns):
        messages += [{"role": "assistant", "content": f"calling read_file {turn}"},
                     {"role": "user", "content": f"result {turn}: def handler(): pass"}]
    return prompt_chain({"messages": messages, "tools": [{"type": "function"}]})


def acquire_in_thread(scheduler, engine, model, prompt, pid=None):
    """Start an acquire that may wait; returns (thread, results: [(runner, lease)] or [error])."""
    results = []

    def run():
        try:
            results.append(scheduler.acquire(engine, model, prompt=prompt, pid=pid))
        except Exception as e:  # noqa: BLE001 - the test reads it
            results.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, results


def test_a_returning_session_passes_long_prompts_waiting_their_turn(make_scheduler, engine,
                                                                     models):
    engine.long_prompts_at_once = 1
    scheduler = make_scheduler()
    runner, turn1 = scheduler.acquire(engine, models[0], prompt=conversation(1))
    scheduler.prefilled(runner.key, turn1)     # session 1's first turn is answered
    scheduler.release(runner.key, turn1)
    _, first = scheduler.acquire(engine, models[0], prompt=conversation(4))
    assert first in runner.long_running
    waiting, waited = acquire_in_thread(scheduler, engine, models[0], conversation(2))
    time.sleep(0.5)
    assert waiting.is_alive() and not waited, "a second cold long prompt waits its turn"
    assert scheduler.ps()[0]["long_prompts_waiting"] == 1

    # session 1's next turn: the same prompt grown by an answer and a tool result goes at once
    _, returning = scheduler.acquire(engine, models[0], prompt=conversation(1, turns=2))
    assert returning not in runner.long_running
    # so does a short prompt, and one the scheduler has seen whole
    _, short = scheduler.acquire(engine, models[0], prompt=conversation(3, size=100))
    _, again = scheduler.acquire(engine, models[0], prompt=conversation(1))
    assert waiting.is_alive()

    scheduler.prefilled(runner.key, first)   # the first prompt's answer has started
    time.sleep(0.3)
    assert waiting.is_alive(), "it also lets the returning prompts start their answers first"
    for lease in (returning, short, again):
        scheduler.prefilled(runner.key, lease)
    waiting.join(5)
    assert not waiting.is_alive() and waited[0][1] in runner.long_running
    for lease in (first, returning, short, again, waited[0][1]):
        scheduler.release(runner.key, lease)
    assert runner.in_use == 0 and not runner.long_running


def test_long_prompts_take_their_turns_in_the_order_they_came(make_scheduler, engine, models):
    engine.long_prompts_at_once = 1
    scheduler = make_scheduler()
    runner, first = scheduler.acquire(engine, models[0], prompt=conversation(1))
    queue = []
    for session in (2, 3, 4):
        queue.append(acquire_in_thread(scheduler, engine, models[0], conversation(session)))
        time.sleep(0.2)
    order, held = [], first
    for _ in range(3):
        scheduler.release(runner.key, held)  # a lease that ends ends its turn too
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not [i for i, (_, r) in enumerate(queue)
                                                   if r and i not in order]:
            time.sleep(0.01)
        [now] = [i for i, (_, r) in enumerate(queue) if r and i not in order]
        order.append(now)
        held = queue[now][1][0][1]
        time.sleep(0.2)
        assert len([1 for _, r in queue if r]) == len(order), "one at a time"
    assert order == [0, 1, 2]
    scheduler.release(runner.key, held)


def test_a_long_prompt_whose_worker_died_gives_up_its_place(make_scheduler, engine, models):
    engine.long_prompts_at_once = 1
    scheduler = make_scheduler()
    runner, first = scheduler.acquire(engine, models[0], prompt=conversation(1))
    worker = subprocess.Popen([sys.executable, "-c", "pass"])
    worker.wait()
    gone, gone_result = acquire_in_thread(scheduler, engine, models[0], conversation(2),
                                          pid=worker.pid)
    time.sleep(0.2)
    behind, behind_result = acquire_in_thread(scheduler, engine, models[0], conversation(3))
    time.sleep(0.2)
    scheduler.tick()                       # notices the dead worker, releases its lease
    gone.join(5)
    assert isinstance(gone_result[0], SchedulerError)
    scheduler.prefilled(runner.key, first)
    behind.join(5)
    assert behind_result and behind_result[0][1] in runner.long_running
    assert runner.in_use == 2 and not runner.long_waiting
    scheduler.release(runner.key, first)
    scheduler.release(runner.key, behind_result[0][1])


def test_without_the_engines_say_every_long_prompt_goes_at_once(make_scheduler, engine, models):
    scheduler = make_scheduler()              # the fake engine leaves long_prompts_at_once None
    runner, first = scheduler.acquire(engine, models[0], prompt=conversation(1))
    _, second = scheduler.acquire(engine, models[0], prompt=conversation(2))
    assert not runner.long_running
    scheduler.release(runner.key, first)
    scheduler.release(runner.key, second)


def test_an_unload_lets_waiting_long_prompts_go(make_scheduler, engine, models):
    engine.long_prompts_at_once = 1
    scheduler = make_scheduler()
    runner, first = scheduler.acquire(engine, models[0], prompt=conversation(1))
    waiting, waited = acquire_in_thread(scheduler, engine, models[0], conversation(2))
    time.sleep(0.3)
    scheduler.unload(everything=True)        # busy: it goes after its requests
    scheduler.release(runner.key, first)
    waiting.join(5)
    assert not waiting.is_alive() and waited


def test_a_long_prompt_lets_returning_ones_first_for_a_bounded_time(make_scheduler, engine,
                                                                      models):
    engine.long_prompts_at_once = 1
    scheduler = make_scheduler(long_prompt_yield=1.0)
    runner, returning = scheduler.acquire(engine, models[0], prompt=conversation(1, size=100))
    assert returning in runner.prefilling
    started = time.monotonic()
    runner_, cold = scheduler.acquire(engine, models[0], prompt=conversation(2))
    waited = time.monotonic() - started
    assert 0.9 <= waited < 10, "a returning prompt that never starts holds it back a second"
    assert cold in runner.long_running
    scheduler.release(runner.key, returning)
    scheduler.release(runner.key, cold)
    assert not runner.prefilling and not runner.long_running


def test_a_long_prompt_whose_answer_never_starts_holds_its_turn_for_a_bounded_time(
        make_scheduler, engine, models):
    engine.long_prompts_at_once = 1
    scheduler = make_scheduler(long_prompt_yield=1.0)
    runner, first = scheduler.acquire(engine, models[0], prompt=conversation(1))
    started = time.monotonic()
    _, second = scheduler.acquire(engine, models[0], prompt=conversation(2))
    assert 0.9 <= time.monotonic() - started < 10, "a non-streamed answer ends its turn late"
    assert set(runner.long_running) == {first, second}
    scheduler.release(runner.key, first)
    scheduler.release(runner.key, second)


# -- long prompts take turns: what a client sends cannot break or skip them ----------------------

def long_body(content, **fields):
    """A chat request of more than long_prompt_bytes (4096) for the gateway."""
    return json.dumps({"model": "test/model-0", "messages": [
        {"role": "user", "content": content + " tool result" * 500}], **fields}).encode()


def test_a_long_prompt_with_a_lone_surrogate_still_reaches_the_runner(gateway, engine, models):
    """JSON may escape half a UTF-16 pair ("\\ud800"); the prompt's chain must still hash it
    (a UnicodeEncodeError made the whole request a 500)."""
    engine.long_prompts_at_once = 1
    body = long_body("\\ud800 broken emoji").replace(b"\\\\ud800", b"\\ud800")
    assert b'"\\ud800 broken' in body
    data = gateway.open("test/model-0", "/v1/chat/completions", body, engine="fake").json()
    assert data["echo"]["request"]["messages"][0]["content"].startswith("\ud800 broken emoji")


def test_a_conversation_longer_than_the_chain_counts_what_it_adds(gateway):
    """The chain stops at MAX_LINKS links; messages after that still count as new (they did not
    count at all: any prompt that began with 4,095 messages seen before passed as returning)."""
    from modelrunner.prompt_prefix import MAX_LINKS, uncached_bytes
    messages = [{"role": "user", "content": f"ok {i}"} for i in range(MAX_LINKS + 10)]
    before = prompt_chain({"messages": messages})
    grown = prompt_chain({"messages": messages + [{"role": "user", "content": "x" * 100000}]})
    assert uncached_bytes(grown, {before["chain"][-1]}) >= 100000


@pytest.mark.parametrize("prompt", ["many words " * 500, list(range(2000)),
                                    ["many words " * 500]], ids=["text", "token ids", "texts"])
def test_a_completions_prompt_takes_turns_and_returns_as_a_conversation_does(
        make_scheduler, engine, models, prompt):
    """/v1/completions takes a prompt as text, token ids or a list of either: each is chained in
    blocks, and its next turn (the same prompt grown) is a returning session's. A list took no
    turn at all; a text whose length was not a multiple of the block never returned (only its
    last hash, over a part block, was kept)."""
    engine.long_prompts_at_once = 1
    scheduler = make_scheduler()
    runner, first = scheduler.acquire(engine, models[0], prompt=prompt_chain({"prompt": prompt}))
    assert first in runner.long_running, "a long prompt of any shape takes its turn"
    scheduler.prefilled(runner.key, first)
    scheduler.release(runner.key, first)
    grown = (prompt + " and more" if isinstance(prompt, str) else prompt + [1]
             if isinstance(prompt[0], int) else [prompt[0] + " and more"])
    _, again = scheduler.acquire(engine, models[0], prompt=prompt_chain({"prompt": grown}))
    assert again in runner.prefilling, "its next turn goes as a returning session's"
    scheduler.release(runner.key, again)


def test_counting_a_long_prompts_tokens_neither_waits_nor_counts_as_sent(gateway, engine,
                                                                        models):
    """Anthropic's count_tokens and Ollama's num_ctx fit send a conversation to the runner's
    /apply-template and /tokenize: no prompt is processed there, so they never wait for a
    turn, and the conversation is not "seen" (its chat request then passed the queue)."""
    engine.long_prompts_at_once = 1
    scheduler = gateway.scheduler
    runner, first = scheduler.acquire(engine, models[0], prompt=conversation(1))
    body = long_body("count me")
    done = []
    counting = threading.Thread(target=lambda: done.append(gateway.open(
        "test/model-0", "/apply-template", body, engine="fake", raise_for_status=False).read()),
        daemon=True)
    counting.start()
    counting.join(10)
    assert done, "the count waited for the long prompt's turn"
    waiting, waited = acquire_in_thread(scheduler, engine, models[0],
                                        prompt_chain(json.loads(body)))
    time.sleep(0.3)
    assert waiting.is_alive() and not waited, "the counted conversation passed as returning"
    scheduler.release(runner.key, first)
    waiting.join(5)
    scheduler.release(runner.key, waited[0][1])


def test_the_same_long_prompt_sent_again_waits_its_turn_too(make_scheduler, engine, models):
    """A prompt counts as seen once its answer has begun, not when it is let in: a client that
    sent its long prompt twice (or retried one still waiting) passed every prompt in line, and
    its copy held them back as a returning session's."""
    engine.long_prompts_at_once = 1
    scheduler = make_scheduler()
    runner, first = scheduler.acquire(engine, models[0], prompt=conversation(1))
    waiting, waited = acquire_in_thread(scheduler, engine, models[0], conversation(2))
    time.sleep(0.2)
    copy, copied = acquire_in_thread(scheduler, engine, models[0], conversation(2))
    time.sleep(0.3)
    assert copy.is_alive() and not copied, "the copy passed the queue"
    scheduler.prefilled(runner.key, first)   # the first answer begins: its prompt is seen now
    waiting.join(5)
    assert waited and waited[0][1] in runner.long_running
    _, returning = scheduler.acquire(engine, models[0], prompt=conversation(1, turns=2))
    assert returning in runner.prefilling, "a returning session still goes at once"
    for lease in (first, returning, waited[0][1]):
        scheduler.release(runner.key, lease)
    copy.join(5)
    scheduler.release(runner.key, copied[0][1])


def test_a_long_prompt_waiting_behind_a_turn_sleeps_until_it_may_go(make_scheduler, engine,
                                                                  models):
    """Once its own yield had passed, a long prompt waiting behind another's turn woke 100 times
    a second, each time taking the scheduler's lock (a daemon spinning on a busy machine)."""
    engine.long_prompts_at_once = 1
    scheduler = make_scheduler(long_prompt_yield=1.0)
    wakes = []
    wait = scheduler.changed.wait
    scheduler.changed.wait = lambda timeout=None: (wakes.append(timeout), wait(timeout))[1]
    runner, first = scheduler.acquire(engine, models[0], prompt=conversation(1))
    second, got_second = acquire_in_thread(scheduler, engine, models[0], conversation(2))
    time.sleep(0.1)
    third, got_third = acquire_in_thread(scheduler, engine, models[0], conversation(3))
    third.join(10)           # the first turn ends after 1 s, the second's 1 s later
    assert got_third and got_second
    assert len(wakes) < 20, f"{len(wakes)} wake-ups for two turns that ended by the clock"
    for lease in (first, got_second[0][1], got_third[0][1]):
        scheduler.release(runner.key, lease)


def test_an_answer_goes_on_when_the_scheduler_cannot_be_told_it_began(gateway, engine, models):
    """Saying an answer began is bookkeeping: a scheduler answering it badly (here a cut HTTP
    answer) ended the client's answer with the exception; the release ends the turn anyway."""
    import http.client
    engine.long_prompts_at_once = 1

    def cut(lease):
        raise http.client.IncompleteRead(b"")

    gateway.runtime.scheduler.prefilled = cut
    data = gateway.open("test/model-0", "/v1/chat/completions", long_body("hello"),
                        engine="fake").json()
    assert data["echo"]["request"]["messages"][0]["content"].startswith("hello")
    [runner] = gateway.scheduler.runners.values()
    assert runner.in_use == 0 and not runner.long_running


class CountingLock:
    """The scheduler's lock, counting how often a waiting thread woke and took it back."""

    def __init__(self, lock):
        self.lock, self.wakes = lock, 0

    def __enter__(self):
        return self.lock.__enter__()

    def __exit__(self, *exc):
        return self.lock.__exit__(*exc)

    def acquire(self, *args, **kwargs):
        return self.lock.acquire(*args, **kwargs)

    def release(self):
        self.lock.release()

    def _release_save(self):
        return self.lock._release_save()

    def _acquire_restore(self, state):
        self.lock._acquire_restore(state)
        self.wakes += 1

    def _is_owned(self):
        return self.lock._is_owned()


def test_a_queue_of_long_prompts_costs_other_requests_nothing(make_scheduler, engine, models):
    """Every lease's change woke every long prompt in line, each taking the scheduler's lock in
    turn: with 3,000 waiting (one client's flood) each release or answer begun held the lock
    for 120 ms, for every model's requests. Only the prompt at the head of the line can go, so
    only it is woken."""
    engine.long_prompts_at_once = 1
    scheduler = make_scheduler()
    scheduler.lock = CountingLock(scheduler.lock)
    scheduler.changed = threading.Condition(scheduler.lock)
    runner, first = scheduler.acquire(engine, models[0], prompt=conversation(1))
    line = [acquire_in_thread(scheduler, engine, models[0], conversation(n)) for n in range(2, 42)]
    deadline = time.monotonic() + 10
    while len(runner.long_waiting) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    scheduler.lock.wakes = 0
    for _ in range(10):   # short prompts come and go, and their answers begin
        _, short = scheduler.acquire(engine, models[0], prompt=conversation(99, size=100))
        scheduler.prefilled(runner.key, short)
        scheduler.release(runner.key, short)
        time.sleep(0.05)  # what is woken runs
    assert scheduler.lock.wakes < 40, f"{scheduler.lock.wakes} wake-ups for 10 short requests"
    scheduler.release(runner.key, first)
    held = None
    for _ in line:      # and the line still goes, one at a time, in order
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (set(runner.long_running) - {held}):
            time.sleep(0.01)
        [held] = set(runner.long_running) - {held} if held else set(runner.long_running)
        scheduler.release(runner.key, held)
    assert not runner.long_waiting and not runner.long_running
    assert [r for _, r in line if not r or isinstance(r[0], Exception)] == []


def test_the_first_tokens_do_not_wait_for_the_scheduler_to_hear_of_them(gateway, engine,
                                                                        models):
    """Telling the scheduler that an answer began (so long prompts may go) is a round trip to
    its daemon: it came before the answer's first bytes went to the client, in its TTFT."""
    engine.long_prompts_at_once = 1
    told = []
    client = gateway.runtime.scheduler
    tell = client.prefilled
    client.prefilled = lambda lease: (told.append(lease.lease), tell(lease))
    answer = gateway.open("test/model-0", "/v1/chat/completions",
                          long_body("hello", stream=True, max_tokens=3, delay=0), engine="fake")
    chunks = iter(answer)
    assert b"t0" in next(chunks) and told == [], "the client waited for the scheduler"
    assert next(chunks) and len(told) == 1, "and the scheduler hears of it right after"
    assert b"[DONE]" in b"".join(chunks)
    [runner] = gateway.scheduler.runners.values()
    assert runner.in_use == 0 and not runner.long_running and not runner.prefilling


@pytest.mark.parametrize("turns", [None, 1], ids=["engine without turns", "engine with turns"])
def test_a_long_chat_goes_early_unless_its_engine_makes_it_wait_its_turn(gateway, engine,
                                                                        models, turns):
    """A request goes to the runner its model used last while the scheduler answers its lease;
    a long one must not (it may have to wait its turn), but only where long prompts take turns:
    every long chat to any other engine lost the early send too."""
    engine.long_prompts_at_once = turns
    gateway.open("test/model-0", "/v1/chat/completions", BODY, engine="fake").json()
    order = []
    send, client = gateway._send, gateway.runtime.scheduler
    begin = client.begin_acquire
    gateway._send = lambda *args: (order.append("sent"), send(*args))[1]
    client.begin_acquire = lambda *args: (order.append("leased"), begin(*args))[1]
    data = gateway.open("test/model-0", "/v1/chat/completions", long_body("hi"),
                        engine="fake").json()
    assert data["echo"]["request"]["messages"][0]["content"].startswith("hi")
    assert order == (["sent", "leased"] if turns is None else ["leased", "sent"])


def test_a_prompt_the_runner_refused_is_not_counted_as_held(gateway, engine, models):
    """A runner's error answer (a prompt over the context, a full KV cache) processed nothing:
    the same prompt sent again is still a new long one, not a returning session's that passes
    the line and holds it back."""
    from modelrunner.gateway import GatewayError
    engine.long_prompts_at_once = 1
    error = b'{"error": {"message": "failed to find a slot in the KV cache"}}'
    refused = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(error), error))
    body = long_body("refused")
    with impostor(gateway, refused) as runner:
        with pytest.raises(GatewayError):
            gateway.open("test/model-0", "/v1/chat/completions", body, engine="fake")
        assert runner.in_use == 0
    _, lease = gateway.scheduler.acquire(engine, models[0], prompt=prompt_chain(json.loads(body)))
    assert lease in runner.long_running, "the refused prompt came back as a returning one"
    gateway.scheduler.release(runner.key, lease)


@pytest.mark.parametrize("gone", ["unloaded", "crashed"])
def test_a_runner_gone_with_nothing_saved_takes_its_prompts_with_it(make_scheduler, engine,
                                                                    models, gone):
    """The next runner of the model holds none of its predecessor's prompts unless they were
    saved for it (prompt caches): a returning session's next turn is a new long prompt again,
    which waited for no turn and held the long ones back."""
    engine.long_prompts_at_once = 1
    scheduler = make_scheduler()
    runner, lease = scheduler.acquire(engine, models[0], prompt=conversation(1))
    scheduler.prefilled(runner.key, lease)
    scheduler.release(runner.key, lease)
    if gone == "unloaded":
        scheduler.unload(everything=True)
    else:
        os.kill(runner.process.pid, signal.SIGKILL)
        runner.process.wait()
        scheduler.tick()
    fresh, lease = scheduler.acquire(engine, models[0], prompt=conversation(1, turns=2))
    assert fresh is not runner and lease in fresh.long_running
    scheduler.release(fresh.key, lease)


def test_a_runner_that_saved_its_prompt_caches_leaves_its_prompts_to_the_next(tmp_path, store,
                                                                               models):
    engine = LifecycleEngine()
    engine.long_prompts_at_once = 1
    scheduler = lifecycle_scheduler(tmp_path, store, engine)
    try:
        runner, lease = scheduler.acquire(engine, models[0], prompt=conversation(1))
        scheduler.prefilled(runner.key, lease)
        scheduler.release(runner.key, lease)
        scheduler.unload(everything=True)       # before_stop saves what its slots held
        fresh, lease = scheduler.acquire(engine, models[0], prompt=conversation(1, turns=2))
        assert fresh is not runner and lease in fresh.prefilling, "restored: a returning turn"
        scheduler.release(fresh.key, lease)
    finally:
        scheduler.shutdown()


def test_a_flood_of_long_prompts_waits_no_more_than_its_line_holds(make_scheduler, engine,
                                                                   models):
    """Each long prompt in line holds a thread and a connection of the scheduler daemon, which
    serves every model: one client's thousands of long requests could take all it has (a
    container's process limit: every model's requests failed). Past the line's length, a long
    prompt goes at once, as with llama-server alone."""
    engine.long_prompts_at_once = 1
    scheduler = make_scheduler()
    scheduler.max_long_waiting = 3
    runner, first = scheduler.acquire(engine, models[0], prompt=conversation(1))
    line = [acquire_in_thread(scheduler, engine, models[0], conversation(n)) for n in (2, 3, 4)]
    deadline = time.monotonic() + 5
    while len(runner.long_waiting) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    over, got = acquire_in_thread(scheduler, engine, models[0], conversation(5))
    over.join(5)
    assert got and not over.is_alive(), "the line is full: it goes at once"
    assert len(runner.long_waiting) == 3
    for lease in (first, got[0][1]):
        scheduler.release(runner.key, lease)
    for thread, result in line:
        thread.join(5)
        scheduler.release(runner.key, result[0][1])


def test_a_long_prompt_whose_client_left_while_it_waited_never_reaches_the_runner(
        gateway, engine, models):
    """An agent stopped by its user (Esc in Claude Code) closes its connection while its long
    prompt waits its turn: when the turn comes, the prompt is dropped, not processed for
    nobody, and its turn passes on."""
    from modelrunner.gateway import GatewayError
    engine.long_prompts_at_once = 1
    gateway.open("test/model-0", "/v1/chat/completions", BODY, engine="fake").json()
    runner = gateway.scheduler.runners[(engine.name, models[0].id, "completion")]
    _, first = gateway.scheduler.acquire(engine, models[0],
                                         prompt=prompt_chain(json.loads(long_body("first"))))
    ours, theirs = socket.socketpair()
    request = type("Request", (), {"env": {"gunicorn.socket": ours}})()
    sent = []
    send = gateway._send
    gateway._send = lambda *args: (sent.append(args[1]), send(*args))[1]
    outcome = []

    def ask():
        try:
            gateway.open("test/model-0", "/v1/chat/completions", long_body("left"),
                         engine="fake", request=request)
        except GatewayError as e:
            outcome.append(e)

    waiting = threading.Thread(target=ask, daemon=True)
    waiting.start()
    time.sleep(0.3)
    assert waiting.is_alive() and runner.long_waiting, "it waits its turn"
    theirs.close()                          # the client goes away
    gateway.scheduler.prefilled(runner.key, first)
    waiting.join(5)
    assert outcome and outcome[0].status == 499
    assert sent == [], "the prompt never went to the runner"
    gateway.scheduler.release(runner.key, first)
    assert runner.in_use == 0 and not runner.long_running
    ours.close()


@pytest.mark.parametrize("value, expected", [("8KiB", 8192), (2048, 2048), ("0", 0),
                                             ("off", 0), ("eight kilobytes", 4096)])
def test_long_prompt_bytes_takes_a_size_and_a_typo_keeps_the_server_up(make_scheduler, value,
                                                                        expected):
    assert make_scheduler(long_prompt_bytes=value).long_prompt_bytes == expected
