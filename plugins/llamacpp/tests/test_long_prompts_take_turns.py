"""A returning agent session is not queued behind new sessions' long prompts (issue 30).

Real llama-server (SmolLM2) behind `model serve`, 2 slots: two new sessions send long prompts
at once, then a session that has already had a turn sends its next one. llama-server alone gives
the two new prompts both slots and queues the returning turn until one of them has answered;
modelrunner lets one long prompt through, gives the returning turn the other slot, and lets the
second long prompt go once the returning turn's answer has begun.
"""

import json
import threading
import time

import httpx
import pytest

from modelrunner.testing import Server

MODEL = "ai/smollm2"


def conversation(session, turns=1):
    """An agent's request after ``turns`` turns: a long system prompt, then the turns so far."""
    tools = " ".join(f"tool_{session}_{n}(path, pattern, limit) reads lines of a file;"
                     for n in range(60))
    messages = [{"role": "system", "content": f"You are agent {session}. Tools: {tools}"},
                {"role": "user", "content": "Why does the handler return 500?"}]
    for turn in range(1, turns):
        messages += [{"role": "assistant", "content": "Calling tool_1."},
                     {"role": "user", "content": f"tool_1 result {turn}: line 3 raises KeyError"}]
    return messages


def first_event_at(url, messages, started, when, name):
    """Stream one chat; record when its first content event came (seconds after ``started``)."""
    body = {"model": MODEL, "messages": messages, "max_tokens": 4, "temperature": 0,
            "stream": True}
    with httpx.stream("POST", url + "/engines/v1/chat/completions", json=body,
                      timeout=300) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data: {") and json.loads(line[6:])["choices"]:
                when.setdefault(name, time.monotonic() - started)


@pytest.fixture(scope="module")
def server(tmp_path_factory, smollm2):
    root = tmp_path_factory.mktemp("turns")
    with Server(root / "models", env={"MODELRUNNER_LLAMACPP_SLOTS": "2",
                                      "MODELRUNNER_LONG_PROMPT_BYTES": "2048"}) as server:
        server.package(smollm2, MODEL)
        server.model("configure", MODEL, "--context-size", "2048")
        yield server


def test_a_returning_session_answers_before_a_second_new_long_prompt(server):
    assert len(json.dumps(conversation(1))) > 2048
    when = {}
    first_event_at(server.url, conversation(1), time.monotonic(), {}, "turn 1")
    started = time.monotonic()
    threads = [threading.Thread(target=first_event_at,
                                args=(server.url, conversation(s), started, when, f"new {s}"))
               for s in (2, 3)]
    for thread in threads:
        thread.start()
        time.sleep(0.1)
    first_event_at(server.url, conversation(1, turns=2), started, when, "returning")
    for thread in threads:
        thread.join(300)
    assert set(when) == {"new 2", "new 3", "returning"}
    order = sorted(when, key=when.get)
    assert order.index("returning") < order.index("new 3"), when
    ps = httpx.get(server.url + "/engines/ps", timeout=30).json()
    assert ps[0]["long_prompts_waiting"] == 0 and ps[0]["in_use"] is False
