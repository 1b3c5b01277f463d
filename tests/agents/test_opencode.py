"""opencode, unchanged, against this server's chat completions and a small local model.

A user adds the server as an OpenAI-compatible provider in opencode.json (``npm:
"@ai-sdk/openai-compatible"``, ``options.baseURL = "<server>/v1"``, the key from the
environment) and runs ``opencode run -m <provider>/<model>``; it must answer. opencode 1.18 sends
two streamed chat completions: a title for the session (no tools), then the turn (a 10 KB system
prompt, ten function tools, ``tool_choice: "auto"``, ``stream_options.include_usage``,
``max_tokens`` from the model's configured output limit). The turn's request, kept by a recording
proxy, is sent again as opencode's next one would be (the model's ``bash`` call and its result
appended), plain and streamed, and each answer held to OpenAI's schemas
(plugins/openai/tests/openai_schema.json).

opencode installs its plugin package from the npm registry into its config folder when it can;
here the registry is unreachable on purpose (``npm_config_registry``), as on a machine without
one, and it runs without. One ``opencode run`` turn takes about 1 to 2 minutes on 2 cores (2,211
prompt tokens; see ``agent_harness``).
"""

import json
import os
import subprocess

import httpx
import pytest

from plugins.openai.tests.chat_conformance import answer_conforms
from tests.agents.agent_harness import CONTEXT, MODEL, RecordingProxy, serve_agent_model

# What opencode may ask the model to write in one answer (its max_tokens): a small model may not
# stop by itself, and opencode prints what it got.
OUTPUT = 256


def opencode_config(url):
    return {"$schema": "https://opencode.ai/config.json",
            "provider": {"modelrunner": {
                "npm": "@ai-sdk/openai-compatible", "name": "Model Runner",
                "options": {"baseURL": f"{url}/v1", "apiKey": "{env:MODEL_RUNNER_API_KEY}"},
                "models": {MODEL: {"name": MODEL,
                                   "limit": {"context": CONTEXT, "output": OUTPUT}}}}}}


@pytest.fixture(scope="module")
def agent_server(tmp_path_factory, smollm2):
    yield from serve_agent_model(tmp_path_factory, smollm2)


@pytest.fixture(scope="module")
def opencode_turn(agent_bin, agent_server, tmp_path_factory):
    """One ``opencode run`` turn through the recording proxy: ``(completed process, proxy)``."""
    proxy = RecordingProxy(agent_server.url)
    home = tmp_path_factory.mktemp("opencode-home")
    config = home / ".config"
    (config / "opencode").mkdir(parents=True)
    (config / "opencode" / "opencode.json").write_text(json.dumps(opencode_config(proxy.url)))
    work = home / "work"
    work.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "XDG_CONFIG_HOME": str(config),
           "XDG_DATA_HOME": str(home / ".local/share"), "XDG_CACHE_HOME": str(home / ".cache"),
           "XDG_STATE_HOME": str(home / ".local/state"),
           "MODEL_RUNNER_API_KEY": "unused",  # the server has no keys: any will do
           # no registry, no models.dev, no update check: nothing but the local server
           "npm_config_registry": "http://127.0.0.1:9/", "OPENCODE_DISABLE_AUTOUPDATE": "1",
           "OPENCODE_DISABLE_MODELS_FETCH": "1"}
    try:
        done = subprocess.run([agent_bin("opencode"), "run", "-m", f"modelrunner/{MODEL}",
                               "Say hi"], env=env, cwd=work, capture_output=True, text=True,
                              timeout=900, stdin=subprocess.DEVNULL)
    finally:
        proxy.close()
    return done, proxy


def test_opencode_run_answers_from_a_local_model(opencode_turn):
    done, proxy = opencode_turn
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip(), done.stderr
    sent = proxy.posts("/v1/chat/completions")
    assert len(sent) >= 2 and all(e["status"] == 200 for e in sent), \
        [e["status"] for e in sent]


def turn_request(proxy):
    """opencode's request for the turn: the one that offers the model its tools."""
    bodies = [json.loads(e["body"]) for e in proxy.posts("/v1/chat/completions")]
    [turn] = [b for b in bodies if b.get("tools")][:1]
    return turn


def next_turn(body):
    """opencode's request as its next one would be after the model ran ``bash``."""
    body = dict(body)
    call = {"id": "call_1", "type": "function",
            "function": {"name": "bash", "arguments": json.dumps(
                {"command": "echo hi", "description": "Print hi"})}}
    body["messages"] = body["messages"] + [
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "hi\n"}]
    body["max_tokens"] = 64
    return body


def test_what_opencode_sends_is_its_tools_streamed(opencode_turn):
    _, proxy = opencode_turn
    body = turn_request(proxy)
    assert body["stream"] is True and body["tool_choice"] == "auto"
    assert {t["function"]["name"] for t in body["tools"]} >= {"bash", "read", "edit"}
    assert body["max_tokens"] == OUTPUT


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_opencode_request_replayed_with_a_tool_result_answers_by_openais_schema(
        opencode_turn, agent_server, stream):
    _, proxy = opencode_turn
    body = {**next_turn(turn_request(proxy)), "stream": stream}
    if not stream:
        body.pop("stream_options", None)
    answer = httpx.post(agent_server.url + "/v1/chat/completions", json=body, timeout=900,
                        headers={"Authorization": "Bearer unused"})
    assert answer.status_code == 200, answer.text
    parsed = answer_conforms("POST", "/v1/chat/completions", answer.status_code,
                             answer.headers["content-type"], answer.content)
    if stream:
        assert parsed[-1]["usage"]["prompt_tokens"] > 2000  # include_usage: the last chunk
    else:
        assert parsed["choices"][0]["message"]["role"] == "assistant"
        assert parsed["usage"]["prompt_tokens"] > 2000  # opencode's whole prompt reached it


def test_opencode_request_with_a_forced_call_streams_the_call_as_tool_call_deltas(
        opencode_turn, agent_server):
    """opencode reads a tool call from streamed ``delta.tool_calls``: its real request, the model
    made to call (SmolLM2 does not call by itself), streams one call of one of its tools."""
    _, proxy = opencode_turn
    # room for the whole call (a call cut by max_tokens is no call), greedy
    body = {**turn_request(proxy), "tool_choice": "required", "max_tokens": 400,
            "temperature": 0}
    answer = httpx.post(agent_server.url + "/v1/chat/completions", json=body, timeout=900,
                        headers={"Authorization": "Bearer unused"})
    assert answer.status_code == 200, answer.text
    chunks = answer_conforms("POST", "/v1/chat/completions", answer.status_code,
                             answer.headers["content-type"], answer.content)
    calls = [call for chunk in chunks for choice in chunk["choices"]
             for call in choice["delta"].get("tool_calls") or []]
    names = {call["function"]["name"] for call in calls if call["function"].get("name")}
    assert len(names) == 1 and names <= {t["function"]["name"] for t in body["tools"]}
    assert [c["finish_reason"] for chunk in chunks for c in chunk["choices"]
            if c["finish_reason"]] == ["tool_calls"]
