"""Docker Compose runs a compose file's models with modelrunner's docker-model plugin.

Compose is not installed here, so each test replays, call for call, what Compose (2.38+) does
(docker/compose pkg/compose/model.go and plugins.go): it execs the plugin's path with bare
arguments and reads its stdout. Then a service's request goes to the URL Compose would inject.
"""

import json

import httpx
import pytest


def compose_version_less_than(version, floor):
    """moby's versions.LessThan, as Compose applies it to the plugin's metadata Version."""
    def ints(v):
        out = []
        for part in v.split("."):
            try:
                out.append(int(part))
            except ValueError:
                out.append(0)
        return out
    a, b = ints(version.removeprefix("v")), ints(floor)
    n = max(len(a), len(b))
    a, b = a + [0] * (n - len(a)), b + [0] * (n - len(b))
    return a < b


def chat(url, model):
    resp = httpx.post(url + "chat/completions", timeout=300, json={
        "model": model, "max_tokens": 8,
        "messages": [{"role": "user", "content": "Say hello."}]})
    assert resp.status_code == 200, resp.text
    return resp.json()["choices"][0]["message"]["content"]


def configured(server, model):
    resp = httpx.get(server.url + "/engines/_configure", params={"model": model})
    return resp.json()[0]["Config"]


@pytest.fixture(scope="module")
def pushed(docker_cli, server, registry):
    """ai/smollm2 in the test registry and not in the store, so Compose has to pull it."""
    name = f"{registry.host}/tests/compose-smollm2"
    docker_cli.run("model", "tag", "ai/smollm2", name, env=server.env)
    docker_cli.run("model", "push", name, env=server.env)
    docker_cli.run("model", "rm", name, env=server.env)
    return name


def test_a_models_section_is_pulled_configured_and_injected_as_compose_does(docker_cli, server,
                                                                           pushed):
    # models: {llm: {model: <pushed>, context_size: 3072, runtime_flags: [--temp, "0"]}}
    # services: {app: {models: [llm]}}
    env, plugin = server.env, docker_cli.plugin
    meta = json.loads(plugin("docker-cli-plugin-metadata", env=env).stdout)
    passes_runtime_flags = not compose_version_less_than(meta["Version"], "1.0.6")
    assert passes_runtime_flags

    available = [t for m in json.loads(plugin("ls", "--json", env=env).stdout) for t in m["tags"]]
    assert pushed not in available
    plugin("pull", pushed, env=env)
    plugin("configure", "--context-size", "3072", pushed, "--", "--temp", "0", env=env)
    status = json.loads(plugin("status", "--json", env=env).stdout)
    app_env = {"LLM_URL": status["endpoint"], "LLM_MODEL": pushed}

    assert configured(server, pushed) == {**configured(server, pushed), "context_size": 3072,
                                          "runtime_flags": ["--temp", "0"]}
    assert chat(app_env["LLM_URL"], app_env["LLM_MODEL"]).strip()
    available = [t for m in json.loads(plugin("ls", "--json", env=env).stdout) for t in m["tags"]]
    assert f"{pushed}:latest" in available


def provider_args(meta, command, options, project="demo", service="llm"):
    """plugins.go setupPluginCommand: only the options the metadata lists, as --key=value."""
    listed = {p["name"] for p in (meta[command]["parameters"] or [])}
    args = ["compose", f"--project-name={project}", command]
    for key, values in options.items():
        args += [f"--{key}={v}" for v in values if key in listed]
    return args + [service]


def read_messages(stdout):
    """plugins.go executePlugin: JSON messages; setenv becomes a prefixed variable."""
    variables, infos = {}, []
    for line in stdout.splitlines():
        msg = json.loads(line)
        assert msg["type"] in ("info", "error", "setenv", "debug", "rawsetenv")
        if msg["type"] == "setenv":
            key, sep, value = msg["message"].partition("=")
            assert sep
            variables["LLM_" + key] = value
        elif msg["type"] == "info":
            infos.append(msg["message"])
    return variables, infos


def test_a_model_provider_service_gets_url_and_model_for_its_dependents(docker_cli, server):
    # services: {llm: {provider: {type: model, options: {model: ai/smollm2, context-size: 1024,
    #            not-a-flag: x}}}, app: {depends_on: [llm]}}
    env, plugin = server.env, docker_cli.plugin
    meta = json.loads(plugin("compose", "--project-name=demo", "metadata", env=env).stdout)
    assert meta["description"] == "Docker Model Runner"
    required = [p["name"] for p in meta["up"]["parameters"] if p["required"]]
    assert required == ["model"]
    options = {"model": ["ai/smollm2"], "context-size": ["1024"], "not-a-flag": ["x"]}
    up = plugin(*provider_args(meta, "up", options), env=env)
    variables, infos = read_messages(up.stdout)
    assert variables == {"LLM_MODEL": "ai/smollm2", "LLM_URL": f"{server.url}/engines/v1/"}
    assert "Setting context size to 1024" in infos
    assert configured(server, "ai/smollm2")["context_size"] == 1024
    assert chat(variables["LLM_URL"], variables["LLM_MODEL"]).strip()
    down = plugin(*provider_args(meta, "down", options), env=env)
    assert down.stdout == ""


def test_a_provider_without_a_model_reports_an_error_line(docker_cli, server):
    result = docker_cli.plugin("compose", "--project-name=demo", "up", "llm", env=server.env,
                               check=False)
    assert result.returncode == 1
    assert json.loads(result.stdout.splitlines()[-1]) == {"type": "error",
                                                          "message": "options.model is required"}


def test_a_provider_whose_model_cannot_be_pulled_reports_an_error_line(docker_cli, server,
                                                                       registry):
    result = docker_cli.plugin("compose", "--project-name=demo", "up",
                               f"--model={registry.host}/tests/absent", "llm", env=server.env,
                               check=False)
    assert result.returncode == 1
    last = json.loads(result.stdout.splitlines()[-1])
    assert last["type"] == "error" and last["message"].startswith("Failed to pull model")


def test_a_provider_think_option_sets_the_thinking_budget_where_the_engine_keeps_it(
        docker_cli, server, tiny_gguf):
    # services: {llm: {provider: {type: model, options: {model: ai/compose-think, think: low}}}}
    # The plugin names no engine: the server's engine options say where thinking is switched.
    env, plugin = server.env, docker_cli.plugin
    server.model("package", "--gguf", str(tiny_gguf), "ai/compose-think")
    meta = json.loads(plugin("compose", "--project-name=demo", "metadata", env=env).stdout)
    for think, budget in (("low", 256), ("false", 0), ("high", -1)):
        up = plugin(*provider_args(meta, "up", {"model": ["ai/compose-think"], "think": [think]}),
                    env=env)
        _, infos = read_messages(up.stdout)
        assert f"Setting think mode to {think}" in infos
        assert configured(server, "ai/compose-think")["extra"] == {
            "llamacpp": {"reasoning-budget": budget}}
    bad = plugin(*provider_args(meta, "up", {"model": ["ai/compose-think"], "think": ["lots"]}),
                 env=env, check=False)
    assert bad.returncode == 1
    assert json.loads(bad.stdout.splitlines()[-1])["message"].startswith('invalid think value')
