"""Usage is true (issue 30): Claude Code sending its long prompt again is told, as Anthropic
counts it, how much of it was a cache read: ``cache_read_input_tokens`` is the count
llama-server reported (read here from the request inspector's record of the runner's own
answer) and ``input_tokens`` the rest of the prompt, plain and streamed."""

import json
import time

import httpx
import httpx2
import pytest
from anthropic import Anthropic

from messages_conformance import Recorder

MODEL = "ai/smollm2"
# long enough (about 400 tokens) that a cache hit is plain to see, short enough for two cores
LONG = [{"role": "user", "content": "Here are the fruits on today's list: "
         + ", ".join(f"fruit number {n}" for n in range(60)) + ". Name one of them."}]


@pytest.fixture(scope="module")
def recorder():
    return Recorder()


@pytest.fixture(autouse=True)
def every_answer_conforms(recorder):
    yield
    recorder.check()


@pytest.fixture(scope="module")
def client(server, recorder):
    return Anthropic(base_url=server.url + "/anthropic", api_key="unused", max_retries=0,
                     http_client=httpx2.Client(timeout=600,
                                               event_hooks={"response": [recorder]}))


def records(server):
    """The request inspector's records of the model, oldest first."""
    entries = httpx.get(server.url + "/engines/requests", params={"model": MODEL},
                        timeout=30).json()
    return sorted((r for entry in entries for r in entry["records"]),
                  key=lambda r: int(r["id"].rsplit("_", 1)[1]))


def runner_answer(server, seen):
    """The runner's own answer to the first Messages request recorded since ``seen`` (the
    records' ids before it); a record is written as the answer ends, maybe a moment after the
    client has its answer."""
    for _ in range(300):
        mine = [r for r in records(server)
                if r["id"] not in seen and r["url"].split("?")[0].endswith("/messages")]
        if mine:
            return json.loads(mine[0]["response"])
        time.sleep(0.1)
    raise AssertionError("no record of the Messages request")


def test_a_repeated_prompt_reads_from_the_cache_what_the_runner_reused(client, server):
    client.messages.create(model=MODEL, max_tokens=2, messages=LONG)
    seen = {r["id"] for r in records(server)}
    usage = client.messages.create(model=MODEL, max_tokens=2, messages=LONG).usage
    runner = runner_answer(server, seen)
    assert usage.cache_read_input_tokens == runner["timings"]["cache_n"] > 0
    assert (usage.input_tokens + usage.cache_read_input_tokens
            == runner["usage"]["prompt_tokens"])

    seen = {r["id"] for r in records(server)}
    with client.messages.stream(model=MODEL, max_tokens=2, messages=LONG) as stream:
        usage = stream.get_final_message().usage
    runner = runner_answer(server, seen)
    assert usage.cache_read_input_tokens == runner["timings"]["cache_n"] > 0
    assert (usage.input_tokens + usage.cache_read_input_tokens
            == runner["usage"]["prompt_tokens"])
