"""A third party publishes a plugin package; the server finds it through its entry point."""

import json
import subprocess
import sys
import textwrap

import httpx
import pytest

from modelrunner.testing import Server

PLUGIN = '''
"""A throwaway plugin: one route, one CLI command, and it writes the events it sees to a file in
the store's folder."""
import os

import falcon
from modelrunner import hookimpl


def _note(models_path, line):
    with open(os.path.join(models_path, "hello-events"), "a") as f:
        f.write(line + "\\n")


@hookimpl
def on_server_start(settings):
    _note(settings.models_path, "server_start")


@hookimpl
def on_worker_exit(settings, pid):
    _note(settings.models_path, f"worker_exit {pid}")


@hookimpl
def on_pull(event, progress):
    _note(os.environ["MODELS_PATH"], f"pull {event}")


@hookimpl
def on_request(event, record):
    _note(os.environ["MODELS_PATH"], f"request {event} {record.dialect} {record.status}")


class Hello:
    def on_get(self, req, resp):
        resp.media = {"hello": "from a plugin"}


@hookimpl
def register_routes(app, runtime):
    app.add_route("/hello", Hello())


@hookimpl
def register_commands(cli):
    import click

    @cli.command()
    def hello():
        """Say hello from a plugin."""
        click.echo("hello from a plugin command")
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    src = tmp_path_factory.mktemp("plugin-src")
    (src / "modelrunner_hello").mkdir()
    (src / "modelrunner_hello" / "__init__.py").write_text(PLUGIN)
    (src / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "modelrunner-hello"
        version = "1.2.3"

        [project.entry-points.modelrunner]
        hello = "modelrunner_hello"
    """))
    site = tmp_path_factory.mktemp("plugin-site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(site), str(src)], check=True)
    return site


def test_installed_plugin_is_found_and_its_hooks_are_called(plugin_site, tmp_path):
    with Server(tmp_path / "models", env={"PYTHONPATH": str(plugin_site)}) as server:
        assert httpx.get(server.url + "/hello").json() == {"hello": "from a plugin"}
        plugins = json.loads(server.model("plugins", "--json").stdout)
        hello = next(p for p in plugins if p["name"] == "hello")
        assert hello["version"] == "1.2.3"
        assert hello["hooks"] == ["on_pull", "on_request", "on_server_start", "on_worker_exit",
                                  "register_commands", "register_routes"]
        assert server.model("hello").stdout.strip() == "hello from a plugin command"


def test_modelrunner_plugins_limits_which_plugins_load(plugin_site, tmp_path):
    env = {"PYTHONPATH": str(plugin_site), "MODELRUNNER_PLUGINS": "openai"}
    with Server(tmp_path / "models", env=env) as server:
        assert httpx.get(server.url + "/hello").status_code == 404
        names = {p["name"] for p in json.loads(server.model("plugins", "--json").stdout)}
        assert "hello" not in names and "openai" in names
        assert "modelrunner.store.plugin" in names


def test_a_plugin_sees_the_server_start_requests_pulls_and_its_workers_exit(
        plugin_site, smollm2, tmp_path):
    models = tmp_path / "models"
    with Server(models, env={"PYTHONPATH": str(plugin_site)}) as server:
        assert (models / "hello-events").read_text().splitlines() == ["server_start"]
        failed = server.model("pull", "127.0.0.1:1/nobody/nothing", check=False)
        assert failed.returncode == 1
        server.package(smollm2, "ai/smollm2")
        answer = httpx.post(server.url + "/v1/chat/completions", timeout=300, json={
            "model": "ai/smollm2", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]})
        assert answer.status_code == 200
    events = (models / "hello-events").read_text().splitlines()
    assert "pull error" in events
    assert "request started openai None" in events and "request finished openai 200" in events
    assert any(e.startswith("worker_exit ") for e in events)


def test_modelrunner_plugins_order_decides_which_engine_serves_a_format_two_claim(
        tmp_path, monkeypatch):
    """Two installed engine plugins for one format: the one MODELRUNNER_PLUGINS names first
    serves it (and one it leaves out is not loaded at all)."""
    import importlib.metadata
    import sys

    from modelrunner.engines import select_engine
    from modelrunner.plugins import make_plugin_manager

    for name in ("toy_a", "toy_b", "toy_c"):
        (tmp_path / f"{name}.py").write_text(
            "import modelrunner\n"
            f"class Toy(modelrunner.Engine):\n    name, formats = {name!r}, ('toy',)\n"
            "@modelrunner.hookimpl\n"
            "def register_engines(register, settings):\n    register(Toy(settings))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = [importlib.metadata.EntryPoint(name, name, "modelrunner")
             for name in ("toy_a", "toy_b", "toy_c")]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: found)
    for order, first in (("toy_b,toy_a", "toy_b"), ("toy_a,toy_b", "toy_a"),
                         ("toy_c, toy_b", "toy_c")):
        monkeypatch.setenv("MODELRUNNER_PLUGINS", order)
        engines = {}
        make_plugin_manager().hook.register_engines(
            register=lambda e: engines.setdefault(e.name, e), settings={})
        assert set(engines) == {n.strip() for n in order.split(",")}
        assert select_engine(engines, "toy").name == first
    for name in ("toy_a", "toy_b", "toy_c"):
        sys.modules.pop(name, None)
