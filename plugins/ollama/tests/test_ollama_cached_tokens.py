"""Usage is true (issue 30), as Ollama reports it since it reports its prompt cache
(ollama/ollama#16428, #17943): ``prompt_eval_count`` is the whole prompt, cached tokens
included, and ``prompt_eval_cached_count`` the part llama-server took from its cache: the very
counts the runner reported, read here from the request inspector's record of its answer."""

import json
import time

import httpx
import pytest

from ollama_conformance import Recorder
from ollama_helpers import MODEL

# long enough (about 400 tokens) that a cache hit is plain to see, short enough for two cores
LONG = [{"role": "user", "content": "Here are the fruits on today's list: "
         + ", ".join(f"fruit number {n}" for n in range(60)) + ". Name one of them."}]
OPTIONS = {"num_predict": 2, "temperature": 0}


@pytest.fixture(scope="module")
def recorder():
    return Recorder()


@pytest.fixture(autouse=True)
def every_answer_conforms(recorder):
    yield
    recorder.check()


@pytest.fixture(scope="module")
def http(server, recorder):
    # the official client leaves out the fields it does not know (prompt_eval_cached_count)
    with httpx.Client(base_url=server.url, timeout=600,
                      event_hooks={"response": [recorder]}) as c:
        yield c


def records(server):
    """The request inspector's records of the model, oldest first."""
    entries = httpx.get(server.url + "/engines/requests", params={"model": MODEL},
                        timeout=30).json()
    return sorted((r for entry in entries for r in entry["records"]),
                  key=lambda r: int(r["id"].rsplit("_", 1)[1]))


def runner_answer(server, path, seen):
    """The runner's own answer to the first request to ``path`` recorded since ``seen`` (the
    records' ids before it); a record is written as the answer ends, maybe a moment after the
    client has its answer."""
    for _ in range(300):
        mine = [r for r in records(server) if r["id"] not in seen and r["url"] == path]
        if mine:
            return json.loads(mine[0]["response"])
        time.sleep(0.1)
    raise AssertionError(f"no record of the request to {path}")


def test_a_repeated_chat_counts_the_whole_prompt_and_its_cached_part(client, http, server):
    client.chat(model=MODEL, messages=LONG, options=OPTIONS)
    seen = {r["id"] for r in records(server)}
    again = client.chat(model=MODEL, messages=LONG, options=OPTIONS)
    runner = runner_answer(server, "/api/chat", seen)
    assert again.prompt_eval_count == runner["usage"]["prompt_tokens"]
    for stream in (False, True):
        seen = {r["id"] for r in records(server)}
        r = http.post("/api/chat", json={"model": MODEL, "messages": LONG, "stream": stream,
                                         "options": OPTIONS})
        final = json.loads(r.text.strip().splitlines()[-1])
        runner = runner_answer(server, "/api/chat", seen)
        assert final["prompt_eval_cached_count"] == runner["timings"]["cache_n"] > 0
        assert final["prompt_eval_count"] == runner["usage"]["prompt_tokens"]


def test_a_repeated_generate_prompt_too(http, server):
    ask = {"model": MODEL, "prompt": LONG[0]["content"], "stream": False, "options": OPTIONS}
    http.post("/api/generate", json=ask)
    seen = {r["id"] for r in records(server)}
    final = http.post("/api/generate", json=ask).json()
    runner = runner_answer(server, "/api/generate", seen)
    assert final["prompt_eval_cached_count"] == runner["timings"]["cache_n"] > 0
    assert final["prompt_eval_count"] == runner["usage"]["prompt_tokens"]
