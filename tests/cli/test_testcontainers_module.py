"""Testcontainers for Go's dockermodelrunner module, pointed at modelrunner: each call it makes,
made the way it makes it (modules/dockermodelrunner at testcontainers-go 5dec9ddf, 2026-08).

* wait strategy: the mapped port listens and ``GET /`` answers 200;
* ``PullModel``: ``POST {base}/models/create`` with the body ``{"from": "<model>"}`` and no
  Content-Type (Go's http.NewRequest sets none), wanting 200 and reading the text lines;
* ``ListModels``: ``GET {base}/models``, a JSON array of {id, tags, created (unix seconds)};
  ``InspectModel(ns, name)``: ``GET {base}/models/{ns}/{name}``, one such object;
* ``OpenAIEndpoint()``: ``{base}/engines/v1``, used with an OpenAI client.
"""

import http.client
import json
from urllib.parse import urlsplit

import httpx
import openai
import pytest

from modelrunner.testing import Server

MODEL = "ai/tc-tiny:360M-Q4_K_M"


@pytest.fixture(scope="module")
def dmr(tmp_path_factory, registry, tiny_gguf):
    """modelrunner whose `ai/...` names pull from the test registry, which has the model."""
    root = tmp_path_factory.mktemp("testcontainers")
    with Server(root / "publisher") as publisher:
        publisher.package(tiny_gguf, f"{registry.host}/{MODEL}")
        publisher.model("push", f"{registry.host}/{MODEL}")
    srv = Server(root / "models", env={"DEFAULT_REGISTRY": registry.host}).start()
    yield srv
    srv.stop()


def go_request(server, method, path, body=None):
    """A request as Go's net/http client sends it: Host from the URL, User-Agent
    Go-http-client/1.1, no Content-Type for a strings.Reader body."""
    url = urlsplit(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=300)
    conn.putrequest(method, path, skip_accept_encoding=True)
    conn.putheader("User-Agent", "Go-http-client/1.1")
    if body is not None:
        conn.putheader("Content-Length", str(len(body)))
    conn.putheader("Accept-Encoding", "gzip")
    conn.endheaders(body)
    response = conn.getresponse()
    return response.status, response.read().decode(), conn.close()


def test_the_wait_strategy_sees_200_on_the_root(dmr):
    status, _, _ = go_request(dmr, "GET", "/")
    assert status == 200


def test_pull_model_gets_200_and_progress_lines_then_the_model_is_listed(dmr):
    status, text, _ = go_request(dmr, "POST", "/models/create",
                                 json.dumps({"from": MODEL}).encode())
    assert status == 200, text
    assert text.strip().splitlines()[-1] == "Model pulled successfully"

    status, text, _ = go_request(dmr, "GET", "/models")
    models = json.loads(text)
    assert status == 200 and isinstance(models, list)
    [entry] = [m for m in models if any(t.endswith(MODEL) for t in m["tags"])]
    assert isinstance(entry["id"], str) and entry["id"].startswith("sha256:")
    assert isinstance(entry["created"], int) and entry["created"] > 0

    status, text, _ = go_request(dmr, "GET", "/models/ai/tc-tiny")  # InspectModel("ai", "tc-tiny")
    assert status == 200 and json.loads(text)["id"] == entry["id"]


def test_the_openai_endpoint_chats_with_the_pulled_model(dmr):
    go_request(dmr, "POST", "/models/create", json.dumps({"from": MODEL}).encode())
    # the module's examples pass an empty key ("No API key needed"); the Python client wants one
    client = openai.OpenAI(base_url=dmr.url + "/engines/v1", api_key="unused", max_retries=0)
    answer = client.chat.completions.create(model=MODEL, max_tokens=4,
                                            messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content is not None
    assert any(m.id.endswith(MODEL) for m in client.models.list().data)


def test_a_model_that_is_nowhere_is_not_200(dmr):
    status, _, _ = go_request(dmr, "POST", "/models/create",
                              json.dumps({"from": "ai/not-there:latest"}).encode())
    assert status == 404  # PullModel reports "unexpected status code: 404"
    assert httpx.get(dmr.url + "/models/ai/not-there", timeout=30).status_code == 404
