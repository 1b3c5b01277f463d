"""The `model` CLI imports only what the command asked for needs (issue 14).

Each check runs in a fresh interpreter: it imports modelrunner.cli, resolves a command the way
click does for `model <name>`, and lists what got imported. Asserted on modules, never on time.
"""

import json
import subprocess
import sys

import pytest

HEAVY = ("falcon", "dynaconf", "flask", "gevent", "httpx", "httpcore", "rich", "pluggy", "gguf")

PROBE = """
import json, sys
from modelrunner.cli import cli
ctx = cli.make_context("model", [sys.argv[1]] + sys.argv[2:], resilient_parsing=True)
name, command, args = cli.resolve_command(ctx, [sys.argv[1]])
print(json.dumps({"command": command and command.name, "modules": sorted(sys.modules)}))
"""


def resolve(*argv):
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def heavy(modules):
    return sorted(m for m in modules
                  if m.split(".")[0] in HEAVY or m.startswith("modelrunner_"))


@pytest.mark.parametrize("argv", [("ls",), ("ps",), ("version",), ("list", "-q"), ("rm", "x"),
                                  ("status",), ("show", "x"), ("bench", "x"), ("compose",),
                                  ("purge",), ("run", "m")])
def test_core_commands_import_nothing_heavy(argv):
    result = resolve(*argv)
    assert result["command"] == ("list" if argv[0] == "ls" else argv[0])
    assert heavy(result["modules"]) == []


def test_a_command_the_core_lacks_loads_the_plugins():
    """`model run` is the core's (a client of the OpenAI routes, importing no dialect plugin);
    only a name the core does not know makes the CLI ask the plugins for their commands."""
    pytest.importorskip("modelrunner_openai")
    result = resolve("no-such-command")
    assert result["command"] is None
    assert "modelrunner_openai" in result["modules"]


def test_the_cli_is_a_client_outside_the_sdk():
    """A plugin's command talks to the server over HTTP like any client: the CLI's own client,
    its errors and helpers are not names of ``modelrunner`` (so the CLI could be its own
    distribution)."""
    import modelrunner
    cli_names = [name for name in modelrunner.__all__
                 if getattr(getattr(modelrunner, name), "__module__", "").startswith("modelrunner.cli")]
    assert cli_names == []
