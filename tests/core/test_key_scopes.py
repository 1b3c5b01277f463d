"""Who is asking (modelrunner.caller): the trust boundary records the key's scope and an owner id
for every request, so a route can tell an admin from an inference key; and no key in a URL.

The dialects' own stories (an inference key's num_ctx and keep_alive, stored responses per key)
are beside their plugins: plugins/ollama/tests/test_inference_keys.py and
plugins/openai/tests/test_responses_owners.py."""

import sys

import falcon.testing
import httpx
import openai
import pytest

import modelrunner
from modelrunner.app import create_app
from modelrunner.settings import load_settings
from modelrunner.testing import Server, write_small_gguf

from test_trust import LOCAL, routes

KEYS = {"api_keys": ["sk-alice", "sk-bob"], "admin_api_keys": ["sk-admin"]}


class WhoAmI:
    """A plugin's route that answers what ``modelrunner.caller`` says."""

    scope = "inference"

    def on_get(self, req, resp):
        who = modelrunner.caller(req)
        resp.media = {"scope": who.scope, "owner": who.owner, "admin": who.admin,
                      "may_change_state": who.may_change_state, "keys": who.keys}


def app(tmp_path, **settings):
    wsgi = create_app(load_settings(models_path=str(tmp_path / "models"), **settings))
    wsgi.falcon_app.add_route("/whoami", WhoAmI())
    return falcon.testing.TestClient(wsgi, headers=LOCAL)


def whoami(client, key=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    answer = client.simulate_get("/whoami", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json


def test_a_route_knows_whether_an_admin_or_an_inference_key_is_asking(tmp_path):
    client = app(tmp_path, **KEYS)
    admin, alice, bob = (whoami(client, k) for k in ("sk-admin", "sk-alice", "sk-bob"))
    assert admin["scope"] == "admin" and admin["admin"] and admin["may_change_state"]
    assert alice["scope"] == "inference" and not alice["admin"]
    assert not alice["may_change_state"], "an inference key may not change the server for others"
    # each key is its own owner; the id is a hash, never the key itself
    assert len({admin["owner"], alice["owner"], bob["owner"]}) == 3
    assert all("sk-" not in who["owner"] and len(who["owner"]) == 32
               for who in (admin, alice, bob))
    # Anthropic's x-api-key header is the same key, the same owner
    same = client.simulate_get("/whoami", headers={"x-api-key": "sk-alice"}).json
    assert same["owner"] == alice["owner"]


def test_the_owner_id_of_a_key_is_the_same_after_a_restart(tmp_path):
    first = whoami(app(tmp_path, **KEYS), "sk-alice")["owner"]
    again = whoami(app(tmp_path, api_keys=["sk-other", "sk-alice"]), "sk-alice")["owner"]
    assert first == again  # what alice stored is still hers once the server restarts


def test_without_keys_everyone_is_the_user(tmp_path):
    who = whoami(app(tmp_path))
    assert who == {"scope": "none", "owner": None, "admin": False, "may_change_state": True,
                   "keys": False}


def test_a_caller_sees_only_what_its_own_key_stored():
    from modelrunner.trust import Caller, owner_id
    alice, bob = owner_id("sk-alice"), owner_id("sk-bob")
    assert Caller("inference", alice).may_see(alice)
    assert not Caller("inference", bob).may_see(alice)
    assert not Caller("inference", bob).may_see(None)  # made before keys were on: admin only
    assert Caller("admin", owner_id("sk-admin")).may_see(alice)
    assert Caller("none").may_see(alice) and Caller("none").may_see(None)
    assert not Caller("anonymous").may_see(alice)


@pytest.mark.parametrize("settings", [{}, KEYS], ids=["no keys", "keys"])
def test_a_key_in_the_query_string_is_refused_on_every_route(tmp_path, settings):
    wsgi = create_app(load_settings(models_path=str(tmp_path / "models"), **settings))
    client = falcon.testing.TestClient(wsgi, headers={**LOCAL, "Content-Type": "application/json"})
    found = list(routes(wsgi.falcon_app))
    for method, template, path in found:
        for name in ("api_key", "key", "access_token", "API-KEY"):
            answer = client.simulate_request(method, path, query_string=f"{name}=sk-alice",
                                             body=b"{}")
            assert answer.status_code == 400, (method, template, name, answer.status_code)
            if method != "HEAD":  # no body to read
                assert "Authorization" in answer.text and "sk-alice" not in answer.text
    # the same routes still answer without it (here: a listing)
    assert client.simulate_get("/models", headers={"Authorization": "Bearer sk-admin"},
                               query_string="tag=x").status_code == 200


@pytest.mark.parametrize("name", ["api_key[]", "api_key%5B0%5D", "apikey%00", "api.key",
                                  "openai_api_key", "hf_token"])
def test_a_key_in_the_query_string_under_a_dressed_up_name_is_refused_too(tmp_path, name):
    """PHP's and Rails' array names (``api_key[]``), a NUL, a prefix or a dot: each reached the
    route, and the access log, with the key in it."""
    wsgi = create_app(load_settings(models_path=str(tmp_path / "models"), **KEYS))
    client = falcon.testing.TestClient(wsgi, headers=LOCAL)
    answer = client.simulate_get("/engines/v1/models", headers={"Authorization": "Bearer sk-alice"},
                                 query_string=f"{name}=sk-bob")
    assert answer.status_code == 400, (name, answer.status_code)
    assert "Authorization" in answer.text and "sk-bob" not in answer.text


def test_the_openai_client_with_the_key_in_the_url_is_told_to_use_the_header(tmp_path):
    env = {"MODELRUNNER_API_KEYS": "sk-alice", "MODEL_RUNNER_API_KEY": "sk-admin"}
    with Server(tmp_path / "models", env=env) as server:
        server.package(write_small_gguf(tmp_path / "small.gguf"), "ai/small")
        in_url = openai.OpenAI(base_url=server.url + "/engines/v1", api_key="unused",
                               default_query={"api_key": "sk-alice"}, max_retries=0)
        with pytest.raises(openai.BadRequestError) as err:
            in_url.models.list()
        assert "Authorization" in err.value.message
        header = openai.OpenAI(base_url=server.url + "/engines/v1", api_key="sk-alice",
                               max_retries=0)
        assert [m.id for m in header.models.list()] == ["docker.io/ai/small:latest"]


def test_an_inference_key_learns_no_path_of_the_machine_from_the_engine_routes(tmp_path, smollm2):
    """/engines/status, /engines/builds and /engines/ps answered an inference key with the
    interpreter's and llama-server's paths and each runner's socket (the store's path); the
    admin, who runs the machine, still sees them."""
    env = {"MODELRUNNER_API_KEYS": "sk-alice", "MODEL_RUNNER_API_KEY": "sk-admin"}
    with Server(tmp_path / "models", env=env) as server:
        server.package(smollm2, "ai/smollm2")
        alice = openai.OpenAI(base_url=server.url + "/engines/v1", api_key="sk-alice",
                              max_retries=0)
        alice.chat.completions.create(model="ai/smollm2", max_tokens=1,
                                      messages=[{"role": "user", "content": "hi"}])
        store = str((tmp_path / "models").resolve())
        for path in ("/engines/status", "/engines/builds", "/engines/ps"):
            seen = httpx.get(server.url + path, headers={"Authorization": "Bearer sk-alice"},
                             timeout=30)
            assert seen.status_code == 200, seen.text
            assert store not in seen.text and sys.prefix not in seen.text, (path, seen.text)
            assert "unix:///" not in seen.text, (path, seen.text)  # a socket's folder
        rows = httpx.get(server.url + "/engines/ps", headers={"Authorization": "Bearer sk-alice"},
                         timeout=30).json()
        assert rows and rows[0]["model_name"].endswith("ai/smollm2:latest")
        admin = httpx.get(server.url + "/engines/ps", headers={"Authorization": "Bearer sk-admin"},
                          timeout=30)
        assert admin.json()[0]["address"].startswith("unix:///")  # for the machine's user

