"""The trust boundary (modelrunner.trust): only the user's own clients drive the server.

The route-table tests walk every route Falcon knows, so a route added later is covered too."""

import re

import falcon.testing
import pytest

from modelrunner.app import create_app
from modelrunner.settings import load_settings
from modelrunner.testing import write_small_gguf
from modelrunner.testing.artifacts import add_to_store, snapshot
from modelrunner.store import FilesystemStore

LOCAL = {"Host": "127.0.0.1:12434"}
CHANGING = ("POST", "PUT", "PATCH", "DELETE")
FILL = {"{engine}": "llama.cpp", "{name:path}": "ai/small", "{response_id}": "resp_1",
        "{digest}": "sha256:" + "0" * 64, "{file}": "app.js"}


def routes(app):
    """(method, template, concrete path) for every responder the app has, but the 405 stubs."""
    def walk(nodes):
        for node in nodes:
            if node.resource is not None:
                for method, responder in node.method_map.items():
                    if "method_not_allowed" not in responder.__qualname__ and method != "OPTIONS":
                        yield method, node.uri_template
            yield from walk(node.children)
    found = sorted(set(walk(app._router._roots)))
    assert len(found) > 60, "the walk found too few routes: Falcon's router changed?"
    for method, template in found:
        path = template
        for name, value in FILL.items():
            path = path.replace(name, value)
        if "{ref:path}" in path:  # POST: tag (push needs the same checks); GET/DELETE: the model
            path = path.replace("{ref:path}", "ai/small/tag" if method == "POST" else "ai/small")
        yield method, template, path


@pytest.fixture
def app_with_a_model(tmp_path):
    def make(**settings):
        models = tmp_path / "models"
        add_to_store(FilesystemStore(models), write_small_gguf(tmp_path / "small.gguf"),
                     ["ai/small"])
        wsgi = create_app(load_settings(models_path=str(models), **settings))
        return wsgi, models
    return make


ATTACKS = {
    "a rebound DNS name (foreign Host)": {"Host": "evil.example:12434",
                                          "Content-Type": "application/json"},
    "a page on another origin": {**LOCAL, "Origin": "http://evil.example",
                                 "Content-Type": "application/json"},
    "a no-cors text/plain body": {**LOCAL, "Content-Type": "text/plain;charset=UTF-8"},
    "a no-cors form body": {**LOCAL, "Content-Type": "application/x-www-form-urlencoded"},
    "a cross-site request with no Origin": {**LOCAL, "Sec-Fetch-Site": "cross-site",
                                            "Content-Type": "application/json"},
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_page_cannot_change_anything_on_any_route(app_with_a_model, attack):
    wsgi, models = app_with_a_model()
    client = falcon.testing.TestClient(wsgi)
    before = snapshot(models)
    changing = [(m, t, p) for m, t, p in routes(wsgi.falcon_app) if m in CHANGING]
    assert len(changing) > 25
    for method, template, path in changing:
        answer = client.simulate_request(
            method, path, headers=ATTACKS[attack], params={"repo": "ai/pwned", "tag": "latest"},
            body=b'{"models": [], "all": true, "from": "ai/small", "name": "x", "model": "x"}')
        assert answer.status_code == 403, (method, template, answer.status_code, answer.text)
    assert snapshot(models) == before


def test_the_users_own_clients_still_change_things(app_with_a_model):
    wsgi, models = app_with_a_model()
    client = falcon.testing.TestClient(wsgi, headers=LOCAL)
    tagged = client.simulate_post("/models/ai/small/tag", params={"repo": "ai/mine", "tag": "v1"})
    assert tagged.status_code == 201, tagged.text  # curl -X POST: no body, no Content-Type
    unloaded = client.simulate_post("/engines/unload", json={"all": True})
    assert unloaded.status_code == 200
    local_page = client.simulate_post("/engines/unload", json={"all": True},
                                      headers={"Origin": "http://localhost:3000"})
    assert local_page.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"


def test_preflights_are_answered_for_allowed_origins_only(app_with_a_model, monkeypatch):
    monkeypatch.setenv("DMR_ORIGINS", "https://chat.example")
    wsgi, _ = app_with_a_model()
    client = falcon.testing.TestClient(wsgi, headers=LOCAL)
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    allowed = client.simulate_options("/v1/chat/completions",
                                      headers={**ask, "Origin": "https://chat.example"})
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://chat.example"
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    foreign = client.simulate_options("/v1/chat/completions",
                                      headers={**ask, "Origin": "https://evil.example"})
    assert foreign.status_code == 403 and "Access-Control-Allow-Origin" not in foreign.headers
    # refusals come in the route's dialect: OpenAI's error object here, Ollama's {"error"} there
    assert foreign.json["error"]["type"] == "permission_error"
    ollama = client.simulate_post("/api/chat", json={}, headers={"Origin": "https://evil.example"})
    assert ollama.status_code == 403 and isinstance(ollama.json["error"], str)


def test_hosts_beyond_loopback_need_naming(app_with_a_model):
    wsgi, _ = app_with_a_model(allowed_hosts=["models.lan"])
    client = falcon.testing.TestClient(wsgi)
    for host, status in (("localhost:12434", 200), ("[::1]:12434", 200), ("models.lan", 200),
                         ("evil.example", 403), ("127.0.0.1.evil.example", 403)):
        assert client.simulate_get("/models", headers={"Host": host}).status_code == status, host


# -- API keys -------------------------------------------------------------------------------------

INFERENCE_ROUTES = re.compile(
    r"^(GET (/version|/models|/models/\{ref:path\}|/engines/status|/engines/builds|/engines/ps"
    r"|/api/(version|tags|ps)|.*/v1/models(/\{name:path\})?"
    r"|.*/responses/\{response_id\}(/input_items)?)"
    r"|HEAD /api/(version|tags)"
    r"|DELETE .*/responses/\{response_id\}"
    r"|POST (.*/(chat/completions|completions|embeddings|images/generations|rerank|score"
    r"|responses|responses/compact|messages|messages/count_tokens"
    r"|audio/transcriptions|audio/translations)"  # plugins/whisper
    r"|/api/(show|chat|generate|embed|embeddings)"
    r"|/faq/ask))$")  # examples/modelrunner-faq: a question to a model, as a chat is


def expected_scope(method, template):
    if (method, template) in (("GET", "/"), ("HEAD", "/")):
        return "public"
    if method in ("GET", "HEAD") and template in ("/ui", "/ui/{file}"):  # the web UI's files
        return "public"
    return "inference" if INFERENCE_ROUTES.match(f"{method} {template}") else "admin"


def test_every_route_has_the_key_scope_it_should(app_with_a_model):
    wsgi, _ = app_with_a_model(api_keys=["sk-inference"], admin_api_keys=["sk-admin"])
    client = falcon.testing.TestClient(wsgi, headers={**LOCAL, "Content-Type": "application/json"})
    scopes = {}
    for method, template, path in routes(wsgi.falcon_app):
        scope = expected_scope(method, template)
        scopes[scope] = scopes.get(scope, 0) + 1
        bare = client.simulate_request(method, path, body=b"{}")
        inference = client.simulate_request(method, path, body=b"{}",
                                            headers={"Authorization": "Bearer sk-inference"})
        where = (method, template, bare.status_code, inference.status_code)
        if scope == "public":
            assert bare.status_code in (200, 302), where  # /ui answers with /ui/
        elif scope == "inference":
            assert bare.status_code == 401, where
            assert inference.status_code not in (401, 403), where
        else:
            assert bare.status_code == 401, where
            assert inference.status_code == 403, where
    assert scopes["inference"] > 30 and scopes["admin"] > 15
    # an admin key does everything (safe routes only here: the rest would pull and push)
    for header in ({"Authorization": "Bearer sk-admin"}, {"x-api-key": "sk-admin"}):
        assert client.simulate_get("/engines/df", headers=header).status_code == 200
        assert client.simulate_get("/v1/models", headers=header).status_code == 200
    wrong = client.simulate_get("/v1/models", headers={"Authorization": "Bearer sk-admin2"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"


def test_a_plugin_route_is_admin_unless_its_resource_says_inference():
    from modelrunner.trust import route_scope

    class Plain:
        pass

    class Chat:
        scope = "inference"

    class Sneaky:
        scope = "public"

    assert route_scope("POST", "/new/thing", Plain()) == "admin"
    assert route_scope("POST", "/new/chat", Chat()) == "inference"
    # public is for reading static files: GET (and HEAD) only, never a state change
    assert route_scope("GET", "/new/open", Sneaky()) == "public"
    assert route_scope("HEAD", "/new/open", Sneaky()) == "public"
    assert route_scope("POST", "/new/open", Sneaky()) == "admin"
    assert route_scope("DELETE", "/new/open", Sneaky()) == "admin"


# -- proxies --------------------------------------------------------------------------------------


def test_a_forwarded_prefix_counts_only_from_a_trusted_proxy(app_with_a_model):
    wsgi, _ = app_with_a_model(forwarded_allow_ips="10.0.0.1")
    client = falcon.testing.TestClient(wsgi, headers=LOCAL)
    prefix = {"X-Forwarded-Prefix": "/models"}
    # /models/models is no route; the proxy's prefix makes it /models
    assert client.simulate_get("/models/models", headers=prefix,
                               remote_addr="10.0.0.1").status_code == 200
    assert client.simulate_get("/models/models", headers=prefix,
                               remote_addr="10.0.0.9").status_code == 404


# -- real server, real clients ----------------------------------------------------------------------

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 # Chromium's own local-network guard would stop the page before the server sees
                 # it; the server must hold without it (other browsers, a user who said yes)
                 "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,"
                 "PrivateNetworkAccessSendPreflights,PrivateNetworkAccessRespectPreflightResults"]

ATTACK_PAGE = """<script>
async function attack(server) {
  const tries = {
    tag: () => fetch(server + "/models/ai/tiny/tag?repo=ai/pwned&tag=latest",
                     {method: "POST", mode: "no-cors"}),
    configure: () => fetch(server + "/engines/_configure", {method: "POST", mode: "no-cors",
                     body: JSON.stringify({model: "ai/tiny", "context-size": 7})}),
    remove: () => fetch(server + "/models/ai/tiny?force=true", {method: "DELETE"}),
    read: () => fetch(server + "/models").then(r => r.json()),
  };
  const out = {};
  for (const [name, go] of Object.entries(tries)) {
    try { const r = await go(); out[name] = r.type || "read"; } catch (e) { out[name] = "failed"; }
  }
  return out;
}
</script>"""


def test_page_on_another_origin_cannot_drive_the_server(tmp_path):
    """A real Chromium on a page from another origin (127.0.0.2: loopback, but not a localhost
    origin) tries what a page can: no-cors POSTs, a CORS DELETE, reading the model list."""
    import http.server
    import shutil
    import threading

    import httpx
    from playwright.sync_api import sync_playwright

    from modelrunner.testing import Server, free_port

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "index.html").write_text(ATTACK_PAGE)
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=tmp_path / "page")
    page_server = http.server.ThreadingHTTPServer(("127.0.0.2", free_port()), handler)
    threading.Thread(target=page_server.serve_forever, daemon=True).start()
    with Server(tmp_path / "models") as server:
        server.package(write_small_gguf(tmp_path / "tiny.gguf"), "ai/tiny")
        configured = httpx.get(server.url + "/engines/_configure").text
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.2:{page_server.server_port}/index.html")
            outcome = page.evaluate("server => attack(server)", server.url)
            browser.close()
        page_server.shutdown()
        # no-cors answers are opaque whatever happened: what counts is what changed
        assert outcome["remove"] == "failed" and outcome["read"] == "failed", outcome
        tags = [t for m in httpx.get(server.url + "/models").json() for t in m["tags"]]
        assert tags == ["docker.io/ai/tiny:latest"], (tags, outcome)
        assert httpx.get(server.url + "/engines/_configure").text == configured
        log = server.log_path.read_text()
        # the requests did reach the server (Chromium did not stop them): refused there
        assert re.search(r'"POST /models/ai/tiny/tag\S* HTTP/1.1" 403', log), outcome
        assert re.search(r'"POST /engines/_configure HTTP/1.1" 403', log), outcome


def test_openai_client_over_tls_with_a_ca_file_and_keys(tmp_path):
    import httpx
    import openai

    from modelrunner.testing import Server
    from modelrunner.tls import self_signed

    cert, key = self_signed(tmp_path / "tls")
    env = {"MODELRUNNER_API_KEYS": "sk-inference", "MODEL_RUNNER_API_KEY": "sk-admin"}
    with Server(tmp_path / "models", tls=(cert, key), env=env) as server:
        assert server.url.startswith("https://")
        server.package(write_small_gguf(tmp_path / "tiny.gguf"), "ai/tiny")  # the CLI: admin key
        client = openai.OpenAI(base_url=server.url + "/engines/v1", api_key="sk-inference",
                               http_client=httpx.Client(verify=str(cert)))
        assert [m.id for m in client.models.list()] == ["docker.io/ai/tiny:latest"]
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.url + "/engines/v1", api_key="sk-wrong",
                          http_client=httpx.Client(verify=str(cert))).models.list()
        pull = httpx.post(server.url + "/models/create", json={"from": "ai/x"}, verify=str(cert),
                          headers={"Authorization": "Bearer sk-inference"})
        assert pull.status_code == 403  # pulls need an admin key
        with pytest.raises(httpx.ConnectError):  # the system's CAs do not know the certificate
            httpx.get(server.url + "/")
        assert "tiny" in server.model("ls").stdout  # the CLI: CA file, admin key


def test_an_inference_key_cannot_export_a_models_weights(app_with_a_model):
    wsgi, _ = app_with_a_model(api_keys=["chat-key"], admin_api_keys=["admin-key"])
    client = falcon.testing.TestClient(wsgi)

    def get(path, key):
        return client.simulate_get(path, headers={**LOCAL, "Authorization": f"Bearer {key}"})

    assert get("/models/ai/small", "chat-key").status_code == 200  # inspecting is inference
    assert get("/models/ai/small/export", "chat-key").status_code == 403
    assert get("/models/ai/small/export", "admin-key").status_code == 200


@pytest.mark.parametrize("origin", ["http://[::1]:5173", "http://[::1]"])
def test_a_page_on_ipv6_loopback_is_a_local_origin(app_with_a_model, origin):
    wsgi, _ = app_with_a_model()
    client = falcon.testing.TestClient(wsgi)
    answer = client.simulate_get("/models", headers={**LOCAL, "Origin": origin})
    assert answer.status_code == 200
    assert answer.headers.get("access-control-allow-origin") == origin


def test_an_error_that_echoes_a_model_name_is_never_sniffed_as_a_page(app_with_a_model):
    wsgi, _ = app_with_a_model()
    client = falcon.testing.TestClient(wsgi)
    answer = client.simulate_get("/models/<script>alert(1)</script>", headers=LOCAL)
    assert answer.status_code in (400, 404)
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
