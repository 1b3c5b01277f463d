"""Usage is true (issue 30): an agent sending the same long prompt again is told how much of it
the runner took from its prompt cache, in chat completions' ``usage.prompt_tokens_details
.cached_tokens`` (plain, and the streamed usage chunk) and the Responses API's
``usage.input_tokens_details.cached_tokens``: the very count llama-server reported, read here
from the request inspector's record of the runner's own answer."""

import json
import time

import httpx
import httpx2
import pytest
from openai import OpenAI

import chat_conformance
import conformance
from modelrunner_openai.responses.objects import base_response
from modelrunner_openai.responses.stream import EventStream
from modelrunner_openai.shapes import chat_completion, chat_chunk
from openai_helpers import MODEL

# long enough (about 400 tokens) that a cache hit is plain to see, short enough for two cores
LONG = ("Here are the fruits on today's list: "
        + ", ".join(f"fruit number {n}" for n in range(60)) + ". Name one of them.")
MESSAGES = [{"role": "user", "content": LONG}]


@pytest.fixture(scope="module")
def recorders():
    return chat_conformance.Recorder(), conformance.Recorder()


@pytest.fixture(autouse=True)
def every_answer_conforms(recorders):
    """Each answer these tests get validates against OpenAI's or Open Responses' schemas."""
    yield
    for recorder in recorders:
        recorder.check()


@pytest.fixture(scope="module")
def client(server, recorders):
    http = httpx2.Client(timeout=600, event_hooks={"response": list(recorders)})
    return OpenAI(base_url=server.url + "/engines/v1", api_key="unused", max_retries=0,
                  http_client=http)


def records(server):
    """The request inspector's records of the model, oldest first."""
    entries = httpx.get(server.url + "/engines/requests", params={"model": MODEL},
                        timeout=30).json()
    return sorted((r for entry in entries for r in entry["records"]),
                  key=lambda r: int(r["id"].rsplit("_", 1)[1]))


def runner_answer(server, path, seen):
    """The runner's own answer (its usage and llama-server's ``timings``) to the first request
    to ``path`` recorded since ``seen`` (the records' ids before it); the record is written as
    the answer ends, so it may come a moment after the client has its answer."""
    for _ in range(300):
        mine = [r for r in records(server)
                if r["id"] not in seen and r["url"].split("?")[0].endswith(path)]
        if mine:
            return json.loads(mine[0]["response"])
        time.sleep(0.1)
    raise AssertionError(f"no record of the request to {path}")


def ids(server):
    return {r["id"] for r in records(server)}


def test_a_repeated_chat_prompt_reports_the_runners_cached_tokens_plain_and_streamed(
        client, server):
    # OpenAI's prompt_cache_key is a hint: accepted; the runner caches every prompt by its prefix
    ask = dict(model=MODEL, messages=MESSAGES, max_tokens=2, temperature=0,
               prompt_cache_key="session-1")
    client.chat.completions.create(**ask)
    before = ids(server)
    again = client.chat.completions.create(**ask)
    runner = runner_answer(server, "/chat/completions", before)
    assert runner["timings"]["cache_n"] > 0
    assert again.usage.prompt_tokens_details.cached_tokens == runner["timings"]["cache_n"]
    assert again.usage.prompt_tokens == runner["usage"]["prompt_tokens"]

    before = ids(server)
    chunks = list(client.chat.completions.create(**ask, stream=True,
                                                 stream_options={"include_usage": True}))
    runner = runner_answer(server, "/chat/completions", before)
    [usage] = [c.usage for c in chunks if c.usage is not None]
    assert usage.prompt_tokens_details.cached_tokens == runner["timings"]["cache_n"] > 0


def test_a_repeated_responses_prompt_reports_the_runners_cached_tokens_plain_and_streamed(
        client, server):
    ask = dict(model=MODEL, input=LONG, max_output_tokens=16, temperature=0)
    client.responses.create(**ask)
    before = ids(server)
    again = client.responses.create(**ask).usage
    runner = runner_answer(server, "/responses", before)
    assert again.input_tokens_details.cached_tokens == runner["timings"]["cache_n"] > 0
    assert again.input_tokens == runner["usage"]["prompt_tokens"]

    before = ids(server)
    events = list(client.responses.create(**ask, stream=True))
    final = events[-1].response.usage   # response.completed, or .incomplete at the 16 tokens
    runner = runner_answer(server, "/responses", before)
    assert final.input_tokens_details.cached_tokens == runner["timings"]["cache_n"] > 0


# A llama-server build older than the installed one says its cached tokens only in ``timings``.
OLDER_BUILD = {"usage": {"prompt_tokens": 400, "completion_tokens": 2, "total_tokens": 402},
               "timings": {"cache_n": 399, "prompt_n": 1}}


def test_a_runner_that_counts_its_cache_only_in_timings_is_reported_in_usage():
    answer = chat_completion({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                              "choices": [], **json.loads(json.dumps(OLDER_BUILD))})
    assert answer["usage"]["prompt_tokens_details"]["cached_tokens"] == 399
    chunk = chat_chunk({"object": "chat.completion.chunk", "choices": [],
                        **json.loads(json.dumps(OLDER_BUILD))})
    assert chunk["usage"]["prompt_tokens_details"]["cached_tokens"] == 399
    nothing = chat_chunk({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1,
                                                   "total_tokens": 4}})
    assert nothing["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}


def test_a_streamed_response_reads_the_cache_count_of_an_older_build_from_its_timings():
    events = [{"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]},
              {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
              {"choices": [], **OLDER_BUILD}]
    raw = ("".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n").encode()

    class Answer(list):
        def close(self):
            pass

    response = base_response("resp_x", {"model": "m", "input": "x"}, 1)
    stream = b"".join(EventStream(response, Answer([raw]), lambda r: None))
    done = conformance.stream_conforms(stream)[-1]
    assert done["response"]["usage"]["input_tokens_details"]["cached_tokens"] == 399
    assert done["response"]["usage"]["input_tokens"] == 400
