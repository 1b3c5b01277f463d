"""A request shaped as Claude Code's, through the official client's beta API (``?beta=true``,
``anthropic-beta``) to SmolLM2: answered, in Anthropic's shape; and what the API does not have,
refused by name. tests/agents/test_claude_code.py runs Claude Code itself."""

import json

import anthropic
import httpx2
import pytest
from anthropic import Anthropic

from messages_conformance import Recorder

MODEL = "ai/smollm2"
EPHEMERAL = {"type": "ephemeral"}
BASH = {"name": "Bash", "description": "Run a shell command",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}},
                         "required": ["command"]}, "cache_control": EPHEMERAL}
BETAS = ["claude-code-20250219", "interleaved-thinking-2025-05-14",
         "context-management-2025-06-27", "effort-2025-11-24"]


@pytest.fixture(scope="module")
def recorder():
    return Recorder()


@pytest.fixture(autouse=True)
def every_answer_conforms(recorder):
    recorder.check()
    yield
    recorder.check()


@pytest.fixture(scope="module")
def client(server, recorder):
    return Anthropic(base_url=server.url + "/anthropic", api_key="unused", max_retries=0,
                     http_client=httpx2.Client(timeout=600,
                                               event_hooks={"response": [recorder]}))


def claude_code_request(**extra):
    return dict(
        model=MODEL, max_tokens=16, betas=BETAS,
        system=[{"type": "text", "text": "You are a helpful agent."},
                {"type": "text", "text": "Answer in one word.", "cache_control": EPHEMERAL}],
        messages=[{"role": "user", "content": [
                      {"type": "text", "text": "What is the capital of France?",
                       "cache_control": EPHEMERAL}]},
                  {"role": "system", "content": [{"type": "text", "text": "cwd: /tmp"}]}],
        tools=[BASH, {"name": "WebFetch", "description": "Fetch a URL", "defer_loading": True,
                      "input_schema": {"type": "object"}}],
        metadata={"user_id": json.dumps({"device_id": "d", "session_id": "s"})},
        thinking={"type": "adaptive", "display": "omitted"},
        context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        output_config={"effort": "high"}, extra_body={"temperature": 0},
        extra_query={"beta": "true"}, **extra)  # Claude Code's TypeScript SDK adds it; Python's not


def test_a_request_shaped_as_claude_codes_is_answered_plain_and_streamed(client):
    plain = client.beta.messages.create(**claude_code_request())
    assert plain.content and plain.stop_reason in ("end_turn", "max_tokens")
    with client.beta.messages.stream(**claude_code_request()) as stream:
        streamed = stream.get_final_message()
    assert [b.text for b in streamed.content] == [b.text for b in plain.content]


def test_output_config_format_makes_the_answer_follow_the_schema(client):
    schema = {"type": "object", "properties": {"capital": {"type": "string"}},
              "required": ["capital"], "additionalProperties": False}
    answer = client.messages.create(
        model=MODEL, max_tokens=40, extra_body={"temperature": 0},
        output_config={"format": {"type": "json_schema", "schema": schema}},
        messages=[{"role": "user", "content": "What is the capital of France? JSON."}])
    value = json.loads(answer.content[0].text)
    assert set(value) == {"capital"} and isinstance(value["capital"], str)


def test_a_field_the_api_does_not_have_is_refused_by_name(client):
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model=MODEL, max_tokens=4, extra_body={"n": 2},
                               messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["error"] == {"type": "invalid_request_error",
                                     "message": "n: Extra inputs are not permitted"}
