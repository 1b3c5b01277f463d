"""Every route of every installed dialect answers its errors in that dialect's shape.

A client of one API parses errors as that API writes them: the openai SDK reads
``error.message`` and ``error.code``, the anthropic SDK ``error.type``, Ollama's clients
``{"error": "..."}``. Each dialect's routes are walked here, as the app registered them, with the
errors any route can meet: no key when keys are on (refused before routing), a method the route
lacks, a body that is not JSON; each answer is checked against the official schema of its
dialect's error (the schemas the plugins' conformance tests hold, written from OpenAI's OpenAPI
description, Anthropic's API reference and Ollama's docs/api.md).
"""

import json
import re
from pathlib import Path

import falcon.testing
import pytest

from modelrunner.app import create_app
from modelrunner.settings import load_settings
from modelrunner.testing import Schemas

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
# the dialect -> (its error's schema, the schema's name there)
ERROR_SCHEMAS = {
    "openai": (PLUGINS / "openai/tests/openai_schema.json", "ErrorResponse"),
    "anthropic": (PLUGINS / "anthropic/tests/anthropic_schema.json", "ErrorResponse"),
    "ollama": (PLUGINS / "ollama/tests/ollama_schema.json", "ErrorResponse"),
}
# a value for each kind of path parameter, naming nothing that exists
PARAMS = {"engine": "llama.cpp", "name": "ai/no-such-model", "response_id": "resp_missing",
          "digest": "sha256:" + "0" * 64}
LOCAL = {"Host": "127.0.0.1", "Content-Type": "application/json"}


def _app(tmp_path, **settings):
    return create_app(load_settings(models_path=str(tmp_path / "models"), **settings))


def _dialect_routes(app):
    """(path, resource, dialect) of every route whose resource names a dialect."""
    routes = []
    for template, resource in app.routes:
        dialect = getattr(resource, "dialect", None)
        if dialect:
            path = re.sub(r"{(\w+)(:\w+)?}", lambda m: PARAMS[m.group(1)], template)
            routes.append((path, resource, dialect))
    return routes


def _conforms(dialect, answer, where):
    """The answer is the dialect's error: checked against the official schema for the APIs we
    match; another installed plugin's dialect (an example's) must at least be its own JSON."""
    assert answer.headers["content-type"].startswith("application/json"), where
    if dialect not in ERROR_SCHEMAS:
        assert isinstance(json.loads(answer.content), dict), where
        return
    schema, name = ERROR_SCHEMAS[dialect]
    Schemas(schema).conforms(name, json.loads(answer.content), where)


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    app = _app(tmp_path_factory.mktemp("walk"))
    return app, _dialect_routes(app)


def test_each_dialect_plugin_has_routes_and_an_error_renderer(walk):
    app, routes = walk
    named = {dialect for _, _, dialect in routes}
    assert set(ERROR_SCHEMAS) <= named and named <= set(app.dialects)  # each has its renderer
    # the routes a user of each API expects are among them
    paths = {path for path, _, _ in routes}
    assert {"/v1/chat/completions", "/engines/llama.cpp/v1/embeddings", "/v1/responses",
            "/v1/messages", "/anthropic/v1/messages/count_tokens", "/api/chat", "/api/tags",
            "/rerank"} <= paths


def test_a_body_that_is_not_json_is_each_dialects_400(walk):
    app, routes = walk
    client = falcon.testing.TestClient(app, headers=LOCAL)
    posted = 0
    for path, resource, dialect in routes:
        if not hasattr(resource, "on_post"):
            continue
        answer = client.simulate_post(path, body=b'{"model": ')
        assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)
        _conforms(dialect, answer, f"POST {path}")
        posted += 1
    assert posted >= 30


def test_a_method_a_route_lacks_is_each_dialects_405(walk):
    app, routes = walk
    client = falcon.testing.TestClient(app, headers=LOCAL)
    for path, _, dialect in routes:
        answer = client.simulate_request("PATCH", path, body=b"{}")
        assert answer.status_code == 405, (path, answer.status_code)
        _conforms(dialect, answer, f"PATCH {path}")


def test_a_client_without_a_key_is_refused_in_its_dialect(tmp_path):
    """The trust boundary refuses before any route runs; the refusal still speaks the API the
    client called (the anthropic SDK raises AuthenticationError from Anthropic's shape)."""
    app = _app(tmp_path, api_keys="inference-key-0123456789", admin_api_keys="admin-key-0123456789")
    client = falcon.testing.TestClient(app, headers=LOCAL)
    for path, resource, dialect in _dialect_routes(app):
        method = "POST" if hasattr(resource, "on_post") else "GET"
        answer = client.simulate_request(method, path, body=b"{}")
        assert answer.status_code == 401, (method, path, answer.status_code)
        _conforms(dialect, answer, f"{method} {path} without a key")
    # the core's own routes keep DMR's plain text
    answer = client.simulate_get("/engines/ps")
    assert answer.status_code == 401 and answer.headers["content-type"].startswith("text/plain")
