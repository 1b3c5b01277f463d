"""The web UI's server side, in process: headers, the browser redirect, and keys."""

import falcon.testing
import pytest

from modelrunner.testing import create_app, load_settings

LOCAL = {"Host": "127.0.0.1:12434"}


@pytest.fixture
def client(tmp_path):
    def make(**settings):
        wsgi = create_app(load_settings(models_path=str(tmp_path / "models"), **settings))
        return falcon.testing.TestClient(wsgi, headers=LOCAL)
    return make


def test_a_browser_at_the_root_goes_to_the_ui_and_programs_keep_dmrs_text(client):
    c = client()
    browser = c.simulate_get("/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert browser.status_code == 302 and browser.headers["Location"].endswith("/ui/")
    assert c.simulate_get("/").text == "Docker Model Runner is running"
    assert c.simulate_get("/", headers={"Accept": "*/*"}).text == "Docker Model Runner is running"


def test_the_page_is_served_under_a_strict_content_security_policy(client):
    answer = client().simulate_get("/ui/")
    assert answer.status_code == 200 and "<title>modelrunner</title>" in answer.text
    csp = answer.headers["Content-Security-Policy"]
    for rule in ("default-src 'self'", "script-src 'self'", "object-src 'none'",
                 "base-uri 'none'", "frame-ancestors 'none'", "connect-src 'self'"):
        assert rule in csp
    js = client().simulate_get("/ui/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["Content-Type"]
    assert client().simulate_get("/ui/../trust.py").status_code == 404
    assert client().simulate_get("/ui/nothing.js").status_code == 404


def test_with_keys_the_page_loads_but_its_data_needs_a_key(client):
    c = client(api_keys=["sk-inference"], admin_api_keys=["sk-admin"])
    assert c.simulate_get("/ui/").status_code == 200
    assert c.simulate_get("/ui/app.js").status_code == 200
    assert c.simulate_get("/ui/api/pulls").status_code == 401
    assert c.simulate_get("/models").status_code == 401
    started = c.simulate_post("/ui/api/pulls", json={"from": "ai/x"},
                              headers={"Authorization": "Bearer sk-inference"})
    assert started.status_code == 403  # pulling is admin, from the page as from anywhere
