"""`model configure` names no engine: each engine declares its `_configure` options as data, the
server lists them (GET /engines/options), and the CLI makes them its options, from the server or,
with no server to ask, from the plugins installed here."""

import falcon.testing
import pytest
from click.testing import CliRunner

import modelrunner
from modelrunner import hookimpl, plugins
from modelrunner.app import create_app
from modelrunner.cli.configure import configure
from modelrunner.runtime import Runtime
from modelrunner.settings import load_settings


class Echo(modelrunner.Engine):
    """A third party's engine, with an option of its own."""

    name, formats, modes = "echo", ("echo",), ("completion",)
    configure_blocks = ("echo",)
    configure_options = (
        modelrunner.ConfigureOption("voice", "echo", "voice", "string", metavar="NAME",
                                    help="how the echo sounds"),
        modelrunner.ConfigureOption("shout", "echo", "voice", "bool",
                                    values={"true": "loud", "false": "quiet"},
                                    help="shout the echo (or not)"),
    )

    def status(self):
        return "Running: echo 1.0"

    def command(self, bundle, config, address):
        return modelrunner.RunnerCommand(["echo", address])


class EchoPlugin:
    @hookimpl
    def register_engines(self, register, settings):
        register(Echo(settings))


@pytest.fixture
def settings(tmp_path):
    return load_settings(models_path=str(tmp_path / "models"))


def test_the_server_lists_each_engines_status_and_configure_options(plugin_manager, settings):
    plugin_manager.register(EchoPlugin(), name="echo")
    client = falcon.testing.TestClient(create_app(runtime=Runtime(settings, plugin_manager)),
                                       headers={"Host": "127.0.0.1"})
    echo = client.simulate_get("/engines/options").json["echo"]
    assert echo["status"] == "Running: echo 1.0" and echo["formats"] == ["echo"]
    assert [o["flag"] for o in echo["options"]] == ["voice", "shout"]
    assert echo["options"][1] == {"flag": "shout", "block": "echo", "key": "voice",
                                  "type": "bool", "help": "shout the echo (or not)",
                                  "aliases": [], "values": {"true": "loud", "false": "quiet"},
                                  "metavar": ""}
    # DMR's status map keeps its strings, now each engine's own
    assert client.simulate_get("/engines/status").json["echo"] == "Running: echo 1.0"


def test_llama_cpp_and_vllm_declare_dmrs_configure_options(plugin_manager, settings):
    described = {}
    for name in ("modelrunner_llamacpp", "modelrunner_vllm"):
        module = pytest.importorskip(name)
        plugin_manager.register(module, name=name)
    client = falcon.testing.TestClient(create_app(runtime=Runtime(settings, plugin_manager)),
                                       headers={"Host": "127.0.0.1"})
    for engine, about in client.simulate_get("/engines/options").json.items():
        described.update({o["flag"]: (engine, o["block"], o["key"]) for o in about["options"]})
    assert described["think"] == ("llama.cpp", "llamacpp", "reasoning-budget")
    assert described["reasoning-budget"] == ("llama.cpp", "llamacpp", "reasoning-budget")
    assert described["chat-template"] == ("llama.cpp", "llamacpp", "chat-template")
    assert described["hf-overrides"] == ("vllm", "vllm", "hf-overrides")
    assert described["gpu-memory-utilization"] == ("vllm", "vllm", "gpu-memory-utilization")


@pytest.fixture
def no_server_but_echo_installed(monkeypatch):
    """Nothing listens at the server's address; the echo plugin is installed here."""
    pm = plugins.make_plugin_manager()
    pm.register(EchoPlugin(), name="echo")
    monkeypatch.setattr(plugins, "_pm", pm)
    monkeypatch.setenv("MODEL_RUNNER_HOST", "http://127.0.0.1:9")  # discard: refused
    configure._engine_params = None
    yield
    configure._engine_params = None


def test_configure_help_lists_the_installed_engines_options_with_no_server(
        no_server_but_echo_installed):
    result = CliRunner().invoke(configure, ["--help"])
    assert result.exit_code == 0, result.output
    assert "--voice NAME" in result.output and "echo: how the echo sounds" in result.output
    assert "--shout / --no-shout" in result.output


def test_an_engine_option_is_a_real_option_not_a_runtime_flag(no_server_but_echo_installed):
    """Given before ``--`` it is parsed (Go's --flag=false spelling too), so the request fails
    only because no server answers, never because the option was sent as a runtime flag."""
    for args in (["--voice", "low", "ai/x"], ["--shout=false", "ai/x"]):
        result = CliRunner().invoke(configure, args)
        assert result.exit_code == 1 and "not running" in result.output, result.output
    result = CliRunner().invoke(configure, ["--shout=maybe", "ai/x"])
    assert result.exit_code == 2 and "not a boolean" in result.output
