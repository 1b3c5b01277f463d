"""An API key never reaches a log, however a client sends it: as a Basic auth user (`curl -u
KEY:`), as a Bearer token, in x-api-key, in the query string (`?api_key=`, refused) or in a
Referer, right or wrong, accepted or refused. Checked in every log the server writes: server.log,
serve.log (gunicorn's own output under `model serve --detach`) and what an admin reads through
GET /logs and `model logs`. Also with an access log format that names the user, the
Authorization header and the query string outright."""

import os
import re
import subprocess
import sys

import httpx
import pytest

from modelrunner.testing import free_port

INFERENCE_KEY = "sk-infer-5d2b7c41e9"
ADMIN_KEY = "sk-admin-a81f03c6d2"
WRONG_KEY = "sk-wrong-0c9e4b77f3"
KEYS = (INFERENCE_KEY, ADMIN_KEY, WRONG_KEY)
# a format naming every place a key could travel (gunicorn's atoms)
HOSTILE_FORMAT = ('%(h)s user=%(u)s "%(r)s" %(s)s q=%(q)s ref="%(f)s" '
                  'auth="%({authorization}i)s" xkey="%({x-api-key}i)s" '
                  'env="%({http_authorization}e)s" raw="%({raw_uri}e)s"')


def attempts(url):
    """Every way a client might send a key; (the request, the status the server should answer)."""
    yield httpx.get(url + "/models", auth=(INFERENCE_KEY, "")), 401       # curl -u KEY:
    yield httpx.get(url + "/models", auth=(ADMIN_KEY, "x")), 401
    yield httpx.get(url + "/models", auth=(WRONG_KEY, "")), 401
    yield httpx.get(url + "/models", headers={"Authorization": f"Bearer {INFERENCE_KEY}"}), 200
    yield httpx.get(url + "/models", headers={"Authorization": f"Bearer {WRONG_KEY}"}), 401
    yield httpx.get(url + "/models", headers={"x-api-key": WRONG_KEY}), 401
    for name in ("api_key", "key", "token", "access_token", "apikey", "api%5Fkey"):
        yield httpx.get(f"{url}/models?{name}={INFERENCE_KEY}&tail=1"), None
        yield httpx.get(f"{url}/engines/v1/models?x=1&{name}={ADMIN_KEY}",
                        headers={"Authorization": f"Bearer {ADMIN_KEY}"}), None
    yield httpx.get(url + "/models", headers={"Authorization": f"Bearer {INFERENCE_KEY}",
                                              "Referer": f"{url}/ui/?api_key={WRONG_KEY}"}), 200


def cli(env, *args):
    done = subprocess.run([sys.executable, "-m", "modelrunner.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


@pytest.fixture(scope="module", params=["default format", "hostile format"])
def logged(request, tmp_path_factory):
    """`model serve --detach` with keys, after every attempt; yields {log name: text}."""
    port = free_port()
    models = tmp_path_factory.mktemp("keys") / "models"
    env = dict(os.environ, MODELS_PATH=str(models), MODEL_RUNNER_HOST=f"http://127.0.0.1:{port}",
               MODELRUNNER_API_KEYS=INFERENCE_KEY, MODELRUNNER_ADMIN_API_KEYS=ADMIN_KEY,
               MODEL_RUNNER_API_KEY=ADMIN_KEY)  # the CLI's own key
    if request.param == "hostile format":
        env["GUNICORN_CMD_ARGS"] = f"--access-logformat '{HOSTILE_FORMAT}'"
    url = f"http://127.0.0.1:{port}"
    cli(env, "serve", "--detach", "--port", str(port))
    try:
        for answer, status in attempts(url):
            if status is not None:
                assert answer.status_code == status, (answer.request.url, answer.text)
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        logs = {"GET /logs": httpx.get(url + "/logs", headers=admin, timeout=30).text,
                "model logs": cli(env, "logs", "--no-engines")}
    finally:
        cli(env, "stop-runner", "--port", str(port))  # every line flushed
    logs["server.log"] = (models / "logs" / "server.log").read_text()
    logs["serve.log"] = (models / "logs" / "serve.log").read_text()
    yield logs


def test_no_key_is_in_any_log(logged):
    logs = logged
    for name, text in logs.items():
        for key in KEYS:
            assert key not in text, (name, key, [line for line in text.splitlines()
                                                 if key in line][:3])
        assert not re.search(r"Basic [A-Za-z0-9+/]{8,}", text), name  # base64 "KEY:" either


def test_the_attempts_are_logged_with_their_secrets_redacted(logged):
    logs = logged
    for name in ("server.log", "serve.log", "GET /logs"):
        text = logs[name]
        assert re.search(r'"GET /models HTTP/1.1" 401', text), name  # the Basic attempts
        for param in ("api_key", "key", "token", "access_token", "apikey", "api%5Fkey"):
            assert f"/models?{param}=[redacted]&tail=1" in text, (name, param)
            assert f"/engines/v1/models?x=1&{param}=[redacted]" in text, (name, param)


def test_the_access_log_names_no_user_even_when_its_format_asks(logged):
    logs = logged
    text = logs["serve.log"]
    if "user=" in text:  # the hostile format names the user, the credential headers, the environ
        assert set(re.findall(r"user=(\S+)", text)) == {"-"}
        assert set(re.findall(r'auth="([^"]*)"', text)) == {"-"}
        assert set(re.findall(r'xkey="([^"]*)"', text)) == {"-"}
        assert set(re.findall(r'env="([^"]*)"', text)) == {"-"}
    else:  # gunicorn's default: %(h)s %(l)s %(u)s [%(t)s] ...
        users = set(re.findall(r"^127\.0\.0\.1 - (\S+) \[", text, re.M))
        assert users == {"-"}, users


def test_a_key_under_an_array_or_escaped_parameter_name_is_redacted():
    """What gunicorn writes for a request line that the trust layer refused: the name stays,
    the value goes, however the name is dressed (an array, a NUL, an escape)."""
    from modelrunner.redact import redact
    for name in ("api_key[]", "api_key[0][x]", "apikey%00", "api%5Fkey%5B%5D", "hf_token[]"):
        line = f'"GET /v1/models?tag=x&{name}=sk-alice HTTP/1.1" 400 98 "-" "curl/8"'
        clean = redact(line)
        assert "sk-alice" not in clean and f"{name}=[redacted]" in clean, clean
