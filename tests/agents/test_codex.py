"""Codex CLI, unchanged, against this server's Responses API and a small local model.

A user adds the server as a provider in Codex's config.toml (``wire_api = "responses"``,
``base_url = "<server>/v1"``, ``env_key`` naming the variable that holds the key; and
``model_context_window``, which Codex cannot know for a model outside its catalogue) and runs
``codex exec``; it must answer. Its first request (Codex 0.171: ``stream``, ``store: false``,
``include: ["reasoning.encrypted_content"]``, eight function tools, a ``namespace`` of five
sub-agent functions and a ``web_search`` tool) was a 400 before the Responses API learnt
namespaces. What it sent is kept by a recording proxy, then sent again as Codex's next request
would be (the whole conversation as ``input``: a reasoning item, its ``exec_command`` call and
the call's output appended), plain and streamed, and each answer held to the Open Responses
schemas (plugins/openai/tests/openresponses_schema.json).

One ``codex exec`` turn takes about 1 to 2 minutes on 2 cores (4,553 prompt tokens; see
``agent_harness``).
"""

import json
import os
import subprocess

import httpx
import pytest

from plugins.openai.tests.conformance import answer_conforms
from tests.agents.agent_harness import CONTEXT, MODEL, RecordingProxy, serve_agent_model

CONFIG = """\
model = "{model}"
model_provider = "modelrunner"
model_context_window = {context}

[model_providers.modelrunner]
name = "Model Runner"
base_url = "{url}/v1"
wire_api = "responses"
env_key = "MODEL_RUNNER_API_KEY"
"""


@pytest.fixture(scope="module")
def agent_server(tmp_path_factory, smollm2):
    yield from serve_agent_model(tmp_path_factory, smollm2)


@pytest.fixture(scope="module")
def codex_turn(agent_bin, agent_server, tmp_path_factory):
    """One ``codex exec`` turn through the recording proxy: ``(completed process, proxy)``."""
    proxy = RecordingProxy(agent_server.url)
    home = tmp_path_factory.mktemp("codex-home")
    (home / ".codex").mkdir()
    (home / ".codex" / "config.toml").write_text(CONFIG.format(model=MODEL, url=proxy.url,
                                                               context=CONTEXT))
    work = home / "work"
    work.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home / ".codex"),
           "MODEL_RUNNER_API_KEY": "unused"}  # the server has no keys: any will do
    try:
        done = subprocess.run([agent_bin("codex"), "exec", "--skip-git-repo-check", "-m", MODEL,
                               "Say hi"], env=env, cwd=work, capture_output=True, text=True,
                              timeout=900, stdin=subprocess.DEVNULL)
    finally:
        proxy.close()
    return done, proxy


def test_codex_exec_answers_from_a_local_model(codex_turn):
    done, proxy = codex_turn
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip(), done.stderr  # codex exec prints the model's last message
    sent = proxy.posts("/v1/responses")
    assert sent and all(e["status"] == 200 for e in sent), [e["status"] for e in sent]


def test_what_codex_sends_is_what_this_server_takes(codex_turn):
    """Codex's request has the tools this server did not take before (a namespace, web_search)."""
    _, proxy = codex_turn
    body = json.loads(proxy.posts("/v1/responses")[0]["body"])
    kinds = {tool["type"] for tool in body["tools"]}
    assert {"function", "namespace", "web_search"} <= kinds
    assert body["stream"] is True and body["store"] is False


def next_turn(body):
    """Codex's request as its next one would be after the model ran a command: the conversation
    so far, then a reasoning item, the call and its output (Codex keeps no server state: store
    false, no previous_response_id). Bounded, as a small model may not stop by itself."""
    body = dict(body)
    body["input"] = body["input"] + [
        {"type": "reasoning", "id": "rs_1", "summary": [],
         "content": [{"type": "reasoning_text", "text": "The user greets me; run echo."}],
         "encrypted_content": None},
        {"type": "function_call", "call_id": "call_1", "name": "exec_command",
         "arguments": json.dumps({"cmd": "echo hi"})},
        {"type": "function_call_output", "call_id": "call_1",
         "output": "Chunk ID: 1\nProcess exited with code 0\nOutput:\nhi\n"}]
    body["max_output_tokens"] = 64
    return body


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_codex_request_replayed_with_a_tool_result_answers_by_the_specification(
        codex_turn, agent_server, stream):
    _, proxy = codex_turn
    exchange = proxy.posts("/v1/responses")[0]
    body = {**next_turn(json.loads(exchange["body"])), "stream": stream}
    answer = httpx.post(agent_server.url + exchange["path"], json=body,
                        headers={"Authorization": exchange["headers"].get("authorization", "")},
                        timeout=900)
    assert answer.status_code == 200, answer.text
    answer_conforms("POST", "/v1/responses", answer.status_code,
                    answer.headers["content-type"], answer.content)
    if not stream:
        response = answer.json()
        assert response["status"] in ("completed", "incomplete") and response["output"]
        assert response["usage"]["input_tokens"] > 4000  # Codex's whole prompt reached the model


def test_codex_prompt_over_the_models_context_is_context_length_exceeded(
        codex_turn, agent_server, smollm2):
    """A prompt longer than the model's context is OpenAI's ``context_length_exceeded`` (400,
    ``param`` input), which Codex reads to compact and retry: never a 500 nor a cut prompt."""
    _, proxy = codex_turn
    agent_server.package(smollm2, "ai/smollm2-short", "--context-size", "2048")
    body = {**json.loads(proxy.posts("/v1/responses")[0]["body"]), "model": "ai/smollm2-short"}
    answer = httpx.post(agent_server.url + "/v1/responses", json=body, timeout=900)
    assert answer.status_code == 400, answer.text
    answer_conforms("POST", "/v1/responses", 400, answer.headers["content-type"], answer.content)
    error = answer.json()["error"]
    assert error["code"] == "context_length_exceeded" and error["param"] == "input"
