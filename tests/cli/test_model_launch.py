"""A user types `model launch claude` (or codex, opencode, aider, openwebui, copilot), and the
app starts pointed at this server: its own variables, command-line options or inline config,
the server's key as the app's key, the model they asked for, a warning when that model's
context is too small for the app's prompt, and the command that installs an app they lack.

The server is a real one (SmolLM2 as ai/smollm2, an 8192-token context); the one real launch
runs opencode from tests/agents (as .ci/install puts it there), and asks it for the config it
resolved, which proves both the exec and what the app received. Making the agents complete
turns is tests/agents' business.
"""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from modelrunner.cli.apps import APPS
from modelrunner.cli.launch import forget
from modelrunner.cli.processes import find_server, stop_server
from modelrunner.testing import free_port
from modelrunner.testing.tiny_gguf import write_tiny_llama_gguf

AGENTS = Path(__file__).resolve().parents[1] / "agents" / "node_modules" / ".bin"


def launch(*args, env, check=True):
    result = subprocess.run([sys.executable, "-m", "modelrunner.cli", "launch", *args], env=env,
                            capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"model launch {' '.join(args)} failed ({result.returncode}): "
                             f"{result.stderr}{result.stdout}")
    return result


def printed(out):
    """(variables, command line) from `model launch APP --config`."""
    lines = out.splitlines()
    env, command, section = {}, None, None
    for line in lines:
        if not line.startswith("  "):
            section = line.rstrip(":")
        elif section == "Environment":
            name, _, value = line.strip().partition("=")
            env[name] = value
        elif section == "Command":
            command = shlex.split(line)
    return env, command


@pytest.fixture
def with_key(server):
    return dict(server.env, MODEL_RUNNER_API_KEY="sk-local-secret-1234")


def agents_on_path(env, home):
    assert (AGENTS / "opencode").exists(), (
        "the agent clients are not installed: run `npm install --prefix tests/agents` "
        "(bash .ci/install does)")
    return dict(env, PATH=f"{AGENTS}{os.pathsep}{env['PATH']}", HOME=str(home),
                XDG_CONFIG_HOME=str(home / ".config"), XDG_DATA_HOME=str(home / ".local/share"),
                XDG_STATE_HOME=str(home / ".local/state"), XDG_CACHE_HOME=str(home / ".cache"),
                OPENCODE_DISABLE_AUTOUPDATE="1")


def test_claude_gets_the_anthropic_route_the_model_for_every_tier_and_the_key(server, with_key):
    out = launch("claude", "--model", "ai/smollm2", "--config", env=with_key).stdout
    env, command = printed(out)
    assert env["ANTHROPIC_BASE_URL"] == f"{server.url}/anthropic"
    for tier in ("ANTHROPIC_MODEL", "ANTHROPIC_SMALL_FAST_MODEL", "ANTHROPIC_DEFAULT_OPUS_MODEL",
                 "ANTHROPIC_DEFAULT_SONNET_MODEL", "ANTHROPIC_DEFAULT_HAIKU_MODEL",
                 "CLAUDE_CODE_SUBAGENT_MODEL"):
        assert env[tier] == "ai/smollm2"
    assert env["ANTHROPIC_AUTH_TOKEN"].startswith("********")  # the key, masked
    assert env["ANTHROPIC_API_KEY"] == ""  # a real Anthropic key in the shell stays out
    assert "sk-local-secret-1234" not in out
    assert command == ["claude"]


def test_codex_gets_a_responses_provider_on_its_command_line_and_no_file(server, with_key):
    env, command = printed(launch("codex", "--model", "ai/smollm2", "--config",
                                  env=with_key).stdout)
    assert env == {}
    overrides = [command[i + 1] for i, arg in enumerate(command) if arg == "-c"]
    assert 'model_provider="modelrunner"' in overrides
    assert f'model_providers.modelrunner.base_url="{server.url}/v1"' in overrides
    assert 'model_providers.modelrunner.wire_api="responses"' in overrides
    # the key by the name of its variable: nothing secret on a command line
    assert 'model_providers.modelrunner.env_key="MODEL_RUNNER_API_KEY"' in overrides
    assert "model_context_window=8192" in overrides  # SmolLM2's, asked of the server
    assert command[0] == "codex" and command[-2:] == ["-m", "ai/smollm2"]


def test_opencode_gets_an_inline_openai_compatible_provider(server, with_key):
    env, command = printed(launch("opencode", "--model", "ai/smollm2", "--config",
                                  env=with_key).stdout)
    config = json.loads(env["OPENCODE_CONFIG_CONTENT"])
    provider = config["provider"]["modelrunner"]
    assert provider["npm"] == "@ai-sdk/openai-compatible"
    assert provider["options"] == {"baseURL": f"{server.url}/v1",
                                   "apiKey": "{env:MODEL_RUNNER_API_KEY}"}
    assert provider["models"]["ai/smollm2"]["limit"]["context"] == 8192
    assert config["model"] == config["small_model"] == "modelrunner/ai/smollm2"
    assert command == ["opencode"]


def test_aider_openwebui_and_copilot_get_their_openai_variables(server, with_key):
    env, command = printed(launch("aider", "--model", "ai/smollm2", "--config",
                                  env=with_key).stdout)
    assert env["OPENAI_API_BASE"] == f"{server.url}/v1"
    assert env["OPENAI_API_KEY"].startswith("********")
    assert command == ["aider", "--model", "openai/ai/smollm2"]

    env, command = printed(launch("openwebui", "--model", "ai/smollm2", "--config",
                                  env=with_key).stdout)
    assert env["OPENAI_API_BASE_URL"] == f"{server.url}/v1"
    assert env["OPENAI_API_KEY"].startswith("********")
    assert env["ENABLE_OLLAMA_API"] == "False" and env["DEFAULT_MODELS"] == "ai/smollm2"
    # no login, so this machine only (its own default listens on every interface)
    assert command == ["open-webui", "serve", "--host", "127.0.0.1"]

    env, command = printed(launch("copilot", "--model", "ai/smollm2", "--config",
                                  env=with_key).stdout)
    assert env["COPILOT_PROVIDER_BASE_URL"] == f"{server.url}/v1"
    assert env["COPILOT_PROVIDER_WIRE_API"] == "responses"
    assert env["COPILOT_MODEL"] == "ai/smollm2"
    assert env["COPILOT_PROVIDER_API_KEY"].startswith("********")


@pytest.mark.parametrize("app", sorted(APPS))
def test_every_app_config_exits_0_with_the_server_and_never_prints_the_key(app, with_key):
    # the model named: the session's server holds whatever other tests packaged
    result = launch(app, "--model", "ai/smollm2", "--config", env=with_key)
    assert "sk-local-secret-1234" not in result.stdout + result.stderr
    assert f"{app}: {APPS[app].title}" in result.stdout
    assert "Model: ai/smollm2 (context 8192: the model's)" in result.stdout


def test_without_a_key_the_apps_get_a_placeholder_the_server_accepts(server):
    env = {k: v for k, v in server.env.items() if k != "MODEL_RUNNER_API_KEY"}
    claude, _ = printed(launch("claude", "--model", "ai/smollm2", "--config", env=env).stdout)
    assert claude["ANTHROPIC_AUTH_TOKEN"] == "modelrunner"
    _, codex = printed(launch("codex", "--model", "ai/smollm2", "--config", env=env).stdout)
    assert not any("env_key" in arg for arg in codex)  # Codex then sends no key at all
    opencode, _ = printed(launch("opencode", "--model", "ai/smollm2", "--config", env=env).stdout)
    assert json.loads(opencode["OPENCODE_CONFIG_CONTENT"])["provider"]["modelrunner"][
        "options"]["apiKey"] == "modelrunner"


@pytest.mark.parametrize("app", sorted(APPS))
def test_an_app_that_is_not_installed_gets_the_command_that_installs_it(app, tmp_path):
    port = free_port()
    env = dict(os.environ, PATH=str(tmp_path), MODEL_RUNNER_HOST=f"http://127.0.0.1:{port}",
               MODELS_PATH=str(tmp_path / "models"))
    result = launch(app, "--model", "ai/smollm2", env=env, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"Error: {APPS[app].title} is not installed (no "
                                     f"{APPS[app].program!r} on PATH); install it with: "
                                     f"{APPS[app].install}")
    assert find_server(port)[0] is None  # no server started for an app that cannot run


def test_launch_execs_opencode_with_its_config_and_warns_the_model_is_too_small(server,
                                                                                 tmp_path):
    env = agents_on_path(server.env, tmp_path)
    result = launch("opencode", "--model", "ai/smollm2", "--", "debug", "config", env=env)
    assert ("Warning: opencode needs a context of at least 16384 tokens (opencode 1.18's first "
            "request is about 7.5k tokens: its system prompt and 10 tools); ai/smollm2 has 8192 "
            "(the model's)") in result.stderr
    resolved = json.loads(result.stdout)  # what opencode itself read: it ran, and got our config
    assert resolved["model"] == "modelrunner/ai/smollm2"
    assert resolved["provider"]["modelrunner"]["options"]["baseURL"] == f"{server.url}/v1"


def test_no_warning_when_the_context_is_enough(server):
    result = launch("aider", "--model", "ai/smollm2", "--config", env=server.env)
    assert "Warning" not in result.stderr  # aider asks 8192, SmolLM2 has 8192


def test_the_warning_names_the_loaded_runners_context(tmp_path, smollm2):
    from modelrunner.testing import Server
    with Server(tmp_path / "models") as srv:
        srv.package(smollm2, "ai/smollm2")
        srv.model("configure", "--context-size", "2048", "ai/smollm2")
        srv.runner_argv("ai/smollm2")  # loads it, with the configured context
        result = launch("codex", "--model", "ai/smollm2", "--config", env=srv.env)
    assert ("Codex CLI needs a context of at least 16384 tokens" in result.stderr
            and "ai/smollm2 has 2048 (its loaded runner's)" in result.stderr)
    assert "-c model_context_window=2048" in result.stdout


def test_launch_starts_the_server_when_none_answers(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("MODELRUNNER_AUTOSTART",
                                                             "MODELRUNNER_PORT",
                                                             "MODEL_RUNNER_API_KEY")}
    env.update(MODEL_RUNNER_HOST=f"http://127.0.0.1:{port}", MODELS_PATH=str(tmp_path / "models"))
    env = agents_on_path(env, tmp_path)
    gguf = write_tiny_llama_gguf(tmp_path / "tiny.gguf")
    try:
        subprocess.run([sys.executable, "-m", "modelrunner.cli", "package", "--gguf", str(gguf),
                        "ai/tiny"], env=env, check=True, capture_output=True, timeout=300)
        subprocess.run([sys.executable, "-m", "modelrunner.cli", "stop-runner"], env=env,
                       check=True, capture_output=True, timeout=120)
        assert find_server(port)[0] is None
        result = launch("opencode", "--model", "ai/tiny", "--", "--version", env=env)
        assert "modelrunner is not running at" in result.stderr
        assert result.stdout.strip() == "1.18.33"  # the app ran
        assert find_server(port)[0] is not None  # and the server it was pointed at runs
    finally:
        master, _ = find_server(port)
        if master:
            stop_server(master)
        forget(port)


def test_docker_model_launch_is_the_same_command(docker_cli, server):
    result = docker_cli.run("model", "launch", "claude", "--model", "ai/smollm2", "--config",
                            env=server.env)
    env, command = printed(result.stdout)
    assert env["ANTHROPIC_BASE_URL"] == f"{server.url}/anthropic" and command == ["claude"]
    listed = docker_cli.run("model", "launch", env=server.env).stdout
    assert all(f"  {name} " in listed for name in APPS)


def test_a_server_with_keys_reads_an_inference_key_and_refuses_a_wrong_one(tmp_path, smollm2):
    from modelrunner.testing import Server
    keys = {"MODELRUNNER_API_KEYS": "sk-alice", "MODEL_RUNNER_API_KEY": "sk-admin"}
    with Server(tmp_path / "models", env=keys) as srv:
        srv.package(smollm2, "ai/smollm2")
        alice = launch("aider", "--config", env=dict(srv.env, MODEL_RUNNER_API_KEY="sk-alice"))
        wrong = launch("aider", "--config", env=dict(srv.env, MODEL_RUNNER_API_KEY="sk-eve"),
                       check=False)
    env, command = printed(alice.stdout)
    assert env["OPENAI_API_KEY"].startswith("********") and "sk-alice" not in alice.stdout
    # the store's only model, from the listing an inference key may read
    assert command == ["aider", "--model", "openai/ai/smollm2"]
    assert wrong.returncode == 1 and "Error: an API key is needed" in wrong.stderr
