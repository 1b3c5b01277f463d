"""Claude Code, unchanged, against this server's Anthropic dialect and a small local model.

A user points Claude Code at the server (``ANTHROPIC_BASE_URL=<server>/anthropic``) and runs
``claude -p``; it must answer. What it sent is kept by a recording proxy between the two, then
sent again as the next turn would be (its tool call answered with a tool result), plain and
streamed, and each answer held to Anthropic's schemas (plugins/anthropic/tests/
anthropic_schema.json): an agent reads every field of them.

Claude Code's prompt is about 50 KB of text (a system prompt, its environment as a system-role
message, a dozen tools, more behind a ToolSearch tool); SmolLM2's chat template renders no tools,
so its prompt is about 4,100 tokens: the model is packaged with a 16,384-token context to hold
that and the turns after. Claude Code sends no temperature, and SmolLM2 at its default one often
runs on to the output limit (Claude Code's error, not an answer), so the model is configured as
a user would: greedy, with a repeat penalty that stops its loops (``model configure MODEL --
--temp 0 --repeat-penalty 1.5``). The prompt takes about 40 s to read on 2 idle cores.
"""

import json
import os
import subprocess

import httpx
import pytest

from plugins.anthropic.tests.messages_conformance import conforms, stream_conforms
from tests.agents.agent_harness import MODEL, RecordingProxy, serve_agent_model

@pytest.fixture(scope="module")
def agent_server(tmp_path_factory, smollm2):
    yield from serve_agent_model(tmp_path_factory, smollm2)


def claude_env(home, base_url):
    """What a user sets: the server's Anthropic URL and a key (any: the server has none), and
    Claude Code's own switches for a machine with no way to Anthropic (no telemetry, no update
    checks). Its answers are bounded, as a small model may not stop by itself (an answer cut
    there is an error to Claude Code, so the bound is well above what SmolLM2 says to "Say
    hi")."""
    return {"PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": "unused", "DISABLE_TELEMETRY": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "1024"}


@pytest.fixture(scope="module")
def claude_turn(agent_bin, agent_server, tmp_path_factory):
    """One `claude -p` turn through the recording proxy: ``(completed process, proxy)``."""
    proxy = RecordingProxy(agent_server.url)
    home = tmp_path_factory.mktemp("claude-home")
    try:
        done = subprocess.run([agent_bin("claude"), "-p", "Say hi", "--model", MODEL],
                              env=claude_env(home, proxy.url + "/anthropic"), cwd=home,
                              capture_output=True, text=True, timeout=900)
    finally:
        proxy.close()
    return done, proxy


def test_claude_p_answers_from_a_local_model(claude_turn):
    done, proxy = claude_turn
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip(), done.stderr
    sent = proxy.posts("/v1/messages")
    assert sent and all(e["status"] == 200 for e in sent)


def test_what_claude_code_sends_is_what_this_server_takes(claude_turn):
    """The fields the issue found refused are all there, so the turn above proves they are
    taken (a later Claude Code that stops sending one makes this say so)."""
    _, proxy = claude_turn
    first = proxy.posts("/v1/messages")[0]
    body = json.loads(first["body"])
    assert "?beta=true" in first["path"] and first["headers"].get("anthropic-beta")
    assert "system" in [m["role"] for m in body["messages"]]
    assert {"thinking", "context_management", "output_config", "metadata"} <= set(body)
    assert len(body["tools"]) >= 10


def next_turn(body, tools):
    """Claude Code's request as its next turn: the model called a tool, here is the result."""
    call = "Bash" if "Bash" in tools else sorted(tools)[0]
    tool_input = {"command": "echo hi", "description": "Say hi"} if call == "Bash" else {}
    return {**body, "max_tokens": 32, "messages": body["messages"] + [
        {"role": "assistant", "content": [
            {"type": "text", "text": "I will run it."},
            {"type": "tool_use", "id": "toolu_01", "name": call, "input": tool_input}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01",
             "content": [{"type": "text", "text": "hi"}], "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Now say bye."}]}]}


def test_its_request_with_a_tool_result_is_answered_in_anthropics_shape(claude_turn,
                                                                        agent_server):
    _, proxy = claude_turn
    first = proxy.posts("/v1/messages")[0]
    body = json.loads(first["body"])
    turn = next_turn(body, {t["name"] for t in body["tools"]})
    url = agent_server.url + first["path"]  # /anthropic/v1/messages?beta=true
    with httpx.Client(headers=first["headers"], timeout=900) as http:
        plain = http.post(url, json={**turn, "stream": False})
        assert plain.status_code == 200, plain.text
        conforms("Message", plain.json(), "a plain answer to Claude Code's next turn")
        assert plain.json()["usage"]["input_tokens"] + plain.json()["usage"][
            "cache_read_input_tokens"] > 4000  # its whole prompt reached the model
        streamed = http.post(url, json={**turn, "stream": True})
        assert streamed.status_code == 200, streamed.text
        events = stream_conforms(streamed.content, "a streamed answer to Claude Code's next turn")
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
