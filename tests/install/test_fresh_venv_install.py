"""Install only what you need (issue 17): the core alone, and the core with each light plugin
alone, into a fresh venv (no system site-packages), then `model serve --detach`, `model plugins`,
`model status` and `pip check` there, as a user who cloned the repository would.

Wheels of the core and the light plugins (and the third-party wheels they need, from pip's
cache) are built once into a wheelhouse; one venv gets the core, then each plugin in turn, and
what a plugin brought is uninstalled before the next, so each is checked with only what it
declares. The llama.cpp plugin's wheel carries llama-server (reused from the cache: nothing is
compiled), so `model status` says its engine runs with no second step. vLLM and Diffusers are
not installed here (GBs of torch): test_declared_imports.py covers them.
"""

import json
import time

import pytest

from modelrunner.testing import free_port
from tests.install.fresh_venv import (LIGHT_PLUGINS, Venv, build_wheels, plugins_json, project,
                                      serve_detached, stop_server)

pytestmark = pytest.mark.install

# the entry-point name and the `model status` backend each plugin brings
ENTRY_POINTS = {name: name for name in LIGHT_PLUGINS}
ENGINES = {"llamacpp": "llama.cpp"}


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    started = time.monotonic()
    folder = build_wheels(tmp_path_factory.mktemp("wheelhouse"),
                          [project("core"), *(project(p) for p in LIGHT_PLUGINS)])
    print(f"\nwheels of the core and {len(LIGHT_PLUGINS)} plugins: "
          f"{time.monotonic() - started:.1f} s")
    return folder


@pytest.fixture(scope="module")
def core_venv(wheelhouse, tmp_path_factory):
    started = time.monotonic()
    venv = Venv(tmp_path_factory.mktemp("venv") / "venv").create()
    venv.install("modelrunner", wheelhouse=wheelhouse)
    print(f"\ncore venv: {time.monotonic() - started:.1f} s, site-packages "
          f"{venv.size() / 2**20:.0f} MiB")
    return venv


def serve_and_check(venv, home):
    """What a user runs first: serve in the background, list plugins, ask the status; and
    `pip check`. Returns (plugins, status JSON, status text); the server is stopped whatever happens."""
    port = free_port()
    env = venv.environ(home, port)
    pid = serve_detached(venv, env, port)
    try:
        plugins = plugins_json(venv, env)
        status = json.loads(venv.model("status", "--json", env=env).stdout)
        text = venv.model("status", env=env).stdout
    finally:
        stop_server(pid)
    ok, report = venv.check()
    assert ok, report
    return plugins, status, text


def test_the_core_alone_serves_and_says_what_to_install(core_venv, tmp_path):
    plugins, status, _ = serve_and_check(core_venv, tmp_path)
    assert all(not p.get("error") for p in plugins), plugins
    assert status["running"] is True
    # the usual engine for GGUF, not installed, with what installs it
    assert status["backends"]["llama.cpp"] == "Not Installed: pip install modelrunner-llamacpp"


@pytest.mark.parametrize("plugin", LIGHT_PLUGINS)
def test_the_core_with_one_plugin_serves_it(core_venv, wheelhouse, tmp_path, plugin):
    before = core_venv.distributions()
    started = time.monotonic()
    core_venv.install(f"modelrunner-{plugin}", wheelhouse=wheelhouse)
    added = sorted(set(core_venv.distributions()) - set(before))
    print(f"\n{plugin}: installed in {time.monotonic() - started:.1f} s, "
          f"{core_venv.size() / 2**20:.0f} MiB with the core; adds {', '.join(added)}")
    try:
        plugins, status, text = serve_and_check(core_venv, tmp_path)
    finally:
        core_venv.uninstall(*added)
    mine = [p for p in plugins if p["name"] == ENTRY_POINTS[plugin]]
    assert mine and not mine[0].get("error"), plugins
    assert mine[0]["hooks"], mine
    assert status["running"] is True
    engine = ENGINES.get(plugin)
    if engine:
        assert status["backends"][engine].startswith("Running: "), status["backends"]
        assert status["builds"][engine]["version"], status
        assert f"{engine} build: " in text
