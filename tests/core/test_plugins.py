"""A third party publishes a plugin package; the server finds it through its entry point."""

import json
import subprocess
import sys
import textwrap

import httpx
import pytest

from modelrunner.testing import Server

PLUGIN = '''
"""A throwaway plugin: one route, one CLI command, and it counts on_request calls."""
import falcon
from modelrunner import hookimpl


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
        assert hello["hooks"] == ["register_commands", "register_routes"]
        assert server.model("hello").stdout.strip() == "hello from a plugin command"


def test_modelrunner_plugins_limits_which_plugins_load(plugin_site, tmp_path):
    env = {"PYTHONPATH": str(plugin_site), "MODELRUNNER_PLUGINS": "openai"}
    with Server(tmp_path / "models", env=env) as server:
        assert httpx.get(server.url + "/hello").status_code == 404
        names = {p["name"] for p in json.loads(server.model("plugins", "--json").stdout)}
        assert "hello" not in names and "openai" in names
        assert "modelrunner.store.plugin" in names
