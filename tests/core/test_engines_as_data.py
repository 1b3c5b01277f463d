"""Engines are data the core reads, never names: each engine's settings and their defaults, the
environment its runners may read, and the engine of each format are declared by the engine (or
a setting), so a new engine needs no change in the core."""

import tomllib
from pathlib import Path

import pytest

import modelrunner
from modelrunner import hookimpl, plugins
from modelrunner.engines import select_engine
from modelrunner.runtime import Runtime
from modelrunner.scheduler import environment
from modelrunner.settings import DEFAULT_FILE, load_settings

ROOT = Path(__file__).resolve().parents[2]


class Echo(modelrunner.Engine):
    """A third party's engine: its own settings, environment and format."""

    name, formats, modes = "echo", ("gguf",), ("completion",)
    env_prefixes = ("ECHO_",)
    defaults = {"echo_voice": "loud"}

    def command(self, bundle, config, address):
        return modelrunner.RunnerCommand(["echo", self.setting("echo_voice"), address])


class EchoPlugin:
    @hookimpl
    def register_engines(self, register, settings):
        register(Echo(settings))


@pytest.fixture
def settings(tmp_path):
    return load_settings(models_path=str(tmp_path / "models"))


@pytest.fixture
def installed(monkeypatch):
    """The engines the environment of every runner is built from: the installed plugins, plus
    the echo engine as a third party would install it."""
    pm = plugins.make_plugin_manager()
    pm.register(EchoPlugin(), name="echo")
    monkeypatch.setattr(plugins, "_pm", pm)
    environment.engine_prefixes.cache_clear()
    yield pm
    environment.engine_prefixes.cache_clear()


def test_a_runner_reads_its_engines_variables_but_never_a_secret(installed):
    server = {"PATH": "/usr/bin", "ECHO_VOICE_MODEL": "en", "ECHO_API_KEY": "s3cret",
              "ELSEWHERE_SETTING": "x", "HF_TOKEN": "hf_x"}
    env = environment.runner_environment(server, {"ECHO_PORT": "1"})
    assert env == {"PATH": "/usr/bin", "ECHO_VOICE_MODEL": "en", "ECHO_PORT": "1"}


def test_the_core_allows_no_engines_variables_of_its_own():
    source = (ROOT / "core/modelrunner/scheduler/environment.py").read_text()
    assert not {"LLAMA_", "VLLM_", "DIFFUSERS_"} & {p for p in environment.ALLOWED_PREFIXES}
    assert '"LLAMA_"' not in source and '"VLLM_"' not in source
    assert not environment.allowed("LLAMA_ARG_CTX_SIZE", prefixes=())


def test_llama_servers_variables_reach_its_runners_when_llama_cpp_is_installed(installed):
    if not any(getattr(p, "__name__", "") == "modelrunner_llamacpp"
               for p in installed.get_plugins()):
        pytest.skip("modelrunner-llamacpp is not installed")
    env = environment.runner_environment({"LLAMA_ARG_N_GPU_LAYERS": "0", "LLAMA_API_KEY": "k"})
    assert env == {"LLAMA_ARG_N_GPU_LAYERS": "0"}


def test_an_engines_settings_have_their_defaults_in_the_engine_and_the_user_overrides_them(
        plugin_manager, settings, monkeypatch):
    plugin_manager.register(EchoPlugin(), name="echo")
    echo = Runtime(settings, plugin_manager).engines["echo"]
    assert echo.setting("echo_voice") == "loud"
    monkeypatch.setenv("MODELRUNNER_ECHO_VOICE", "quiet")
    echo = Runtime(load_settings(models_path=settings.models_path), plugin_manager).engines["echo"]
    assert echo.setting("echo_voice") == "quiet"


def test_the_cores_settings_file_holds_no_engines_setting(settings):
    """Every installed engine reads its own defaults; none is in the core's settings.toml, and
    a user's conf or MODELRUNNER_* value still overrides them (the test above)."""
    with open(DEFAULT_FILE, "rb") as f:
        core = {key.lower() for key in tomllib.load(f)}
    engines = Runtime(settings).engines
    assert engines
    for engine in engines.values():
        assert not core & set(engine.defaults), engine.name
        for key, default in engine.defaults.items():
            assert engine.setting(key) == default, (engine.name, key)
    assert not {k for k in core if k.startswith(("llamacpp_", "vllm_", "diffusers_"))}
    assert "default_engine" not in core


class Second(Echo):
    name = "second"


def test_the_format_engines_setting_picks_between_two_engines_of_one_format(settings):
    engines = {"echo": Echo(settings), "second": Second(settings)}
    assert select_engine(engines, "gguf").name == "echo"  # none named: the first registered
    chosen = select_engine(engines, "gguf", format_engines={"gguf": "second"})
    assert chosen.name == "second"
    # the setting wins over a caller's default; a default still serves an unnamed format
    assert select_engine(engines, "gguf", None, "echo", {"gguf": "second"}).name == "second"
    assert select_engine(engines, "gguf", None, "second", {}).name == "second"
    # a format's engine that is not installed falls back to one that is
    assert select_engine(engines, "gguf", format_engines={"gguf": "llama.cpp"}).name == "echo"
