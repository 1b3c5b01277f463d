"""Where runners start is a plugin's choice (make_placement); the scheduler's rules stay.

A fake engine is allowed here only because what is under test is the scheduler's side of the
seam; the runner is a real process (modelrunner.testing's fake_runner.py) on a real socket.
"""

import sys

import pytest

import modelrunner
from modelrunner import hookimpl
from modelrunner.engines import Engine, RunnerCommand
from modelrunner.scheduler import Scheduler, SchedulerError
from modelrunner.settings import load_settings
from modelrunner.testing import FAKE_RUNNER, add_to_store, write_small_gguf


class FakeEngine(Engine):
    name = "fake"
    formats = ("gguf",)
    api_key_env = "FAKE_RUNNER_API_KEY"

    def gpus(self, bundle, config):  # what a placement that hands GPUs out is asked for
        return 2 if "--two-gpus" in (config.runtime_flags or []) else 0

    def command(self, bundle, config, address):
        return RunnerCommand([sys.executable, str(FAKE_RUNNER), "--socket",
                              address.removeprefix("unix://")])


class NodePlacement(modelrunner.placement.LocalPlacement):
    """A plugin's placement: the local one, saying it is on a named node and on a network."""

    def __init__(self, sockets, network):
        super().__init__(sockets)
        self.network = network
        self.placed = []

    def place(self, spec):
        placed = super().place(spec)
        placed.node, placed.network = "node-a", self.network
        self.placed.append((spec.name, spec.gpus))
        return placed


@pytest.fixture
def settings(tmp_path):
    return load_settings(models_path=str(tmp_path / "models"), memory_budget=0,
                         runner_start_timeout=30)


@pytest.fixture
def model(store, tmp_path):
    return add_to_store(store, write_small_gguf(tmp_path / "m.gguf"), ["test/placed"])


def placement_plugin(network):
    class Plugin:
        @hookimpl
        def make_placement(self, settings):
            sockets = modelrunner.private_files.private_dir(f"{settings.models_path}/sockets")
            return NodePlacement(sockets, network)
    return Plugin()


def test_without_a_placement_plugin_runners_start_here(plugin_manager, settings):
    assert isinstance(plugin_manager.hook.make_placement(settings=settings),
                      modelrunner.placement.LocalPlacement)


def test_a_plugin_placement_starts_the_runner_and_ps_shows_its_node(
        plugin_manager, settings, store, model):
    plugin_manager.register(placement_plugin(network=False), name="nodes")
    placement = plugin_manager.hook.make_placement(settings=settings)
    scheduler = Scheduler(store, {"fake": FakeEngine()}, settings, placement=placement)
    try:
        runner, lease = scheduler.acquire(scheduler.engines["fake"], model)
        assert placement.placed == [(model.tags[0], 0)]
        row, = scheduler.ps()
        assert row["node"] == "node-a" and row["address"].startswith("unix://")
        assert runner.secret is None  # a local socket needs none
        scheduler.release(runner.key, lease)
    finally:
        scheduler.shutdown()


def test_a_placement_is_told_how_many_gpus_the_engine_says_the_runner_uses(
        plugin_manager, settings, store, model):
    plugin_manager.register(placement_plugin(network=False), name="nodes")
    placement = plugin_manager.hook.make_placement(settings=settings)
    engine = FakeEngine()
    engine.runtime_flags = frozenset({"--two-gpus"})
    scheduler = Scheduler(store, {"fake": engine}, settings, placement=placement)
    try:
        scheduler.configure(engine, model, "completion", runtime_flags=["--two-gpus"])
        runner, lease = scheduler.acquire(engine, model)
        assert placement.placed == [(model.tags[0], 2)]
        scheduler.release(runner.key, lease)
    finally:
        scheduler.shutdown()


def test_a_runner_on_a_network_gets_a_secret_in_its_environment_never_in_argv(
        plugin_manager, settings, store, model):
    plugin_manager.register(placement_plugin(network=True), name="nodes")
    placement = plugin_manager.hook.make_placement(settings=settings)
    scheduler = Scheduler(store, {"fake": FakeEngine()}, settings, placement=placement)
    try:
        runner, lease = scheduler.acquire(scheduler.engines["fake"], model)
        assert runner.secret and len(runner.secret) >= 32
        with open(f"/proc/{runner.pid}/environ", "rb") as f:
            environ = f.read().split(b"\0")
        with open(f"/proc/{runner.pid}/cmdline", "rb") as f:
            argv = f.read()
        assert f"FAKE_RUNNER_API_KEY={runner.secret}".encode() in environ
        assert runner.secret.encode() not in argv
        assert runner.secret not in str(scheduler.ps())
        scheduler.release(runner.key, lease)
    finally:
        scheduler.shutdown()


def test_an_engine_that_cannot_check_a_secret_is_not_put_on_a_network(
        plugin_manager, settings, store, model):
    class OpenEngine(FakeEngine):
        api_key_env = None

    plugin_manager.register(placement_plugin(network=True), name="nodes")
    placement = plugin_manager.hook.make_placement(settings=settings)
    scheduler = Scheduler(store, {"fake": OpenEngine()}, settings, placement=placement)
    try:
        with pytest.raises(SchedulerError) as refused:
            scheduler.acquire(scheduler.engines["fake"], model)
        assert refused.value.status == 412 and "API key" in str(refused.value)
        assert scheduler.ps() == []
    finally:
        scheduler.shutdown()
