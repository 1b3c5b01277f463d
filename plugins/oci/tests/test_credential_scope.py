"""Registry credentials reach their own registry only: not a second registry, not a token realm
or an upload Location on another host, and never plain http to a host that is not loopback."""

import base64
import hashlib
import io
import http.server
import threading

import pytest

from modelrunner import SourceError, references
from modelrunner.testing import FilesystemStore
from modelrunner_oci import scope
from modelrunner_oci.push import push_blobs_and_manifest
from modelrunner_oci.registry import use_settings
from modelrunner_oci.source import OciSource

from plugins.oci.tests.conftest import env_credentials
from plugins.oci.tests.oci_helpers import gguf_artifact, put_in_store
from plugins.oci.tests.oci_registry import PASSWORD, USER

BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


class FakeHost:
    """An http server on 127.0.0.1 that records each request's Authorization and answers with
    ``answer(handler) -> (status, headers)``, or None once it has written its own response."""

    def __init__(self, answer):
        self.seen = []
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                host.seen.append((self.command, self.path, self.headers.get("Authorization")))
                answered = answer(self)
                if answered is None:  # the answer wrote its own response
                    return
                status, headers = answered
                self.send_response(status)
                for name, value in {"Content-Length": "0", **headers}.items():
                    self.send_header(name, value)
                self.end_headers()

            do_GET = do_HEAD = do_POST = do_PUT = _any

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def authorizations(self):
        return [auth for _, _, auth in self.seen if auth]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hosts():
    made = []

    def make(answer):
        made.append(FakeHost(answer))
        return made[-1]
    yield make
    for h in made:
        h.close()


def basic_challenge(handler):
    return 401, {"WWW-Authenticate": 'Basic realm="second"'}


def test_a_second_registry_on_another_port_never_receives_credentials_meant_for_the_first(
        auth_registry, hosts, tmp_path, monkeypatch):
    env_credentials(monkeypatch, auth_registry.host)
    second = hosts(basic_challenge)
    with pytest.raises(SourceError) as e:
        OciSource().pull(references.parse(f"{second.host}/team/private:v1"),
                         FilesystemStore(tmp_path / "s"), None)
    assert e.value.status == 401
    assert second.seen and second.authorizations() == []


def test_a_token_realm_on_another_host_is_asked_without_the_password_unless_configured(
        hosts, tmp_path, monkeypatch):
    realm = hosts(lambda h: (401, {}))
    registry = hosts(lambda h: (401, {"WWW-Authenticate":
                                      f'Bearer realm="http://{realm.host}/token",service="r"'}))
    env_credentials(monkeypatch, registry.host)
    target = references.parse(f"{registry.host}/team/private:v1")
    with pytest.raises(SourceError) as e:
        OciSource().pull(target, FilesystemStore(tmp_path / "a"), None)
    assert e.value.status == 401 and "registry_auth_hosts" in str(e.value)
    assert realm.seen and realm.authorizations() == []
    use_settings({"registry_auth_hosts": {registry.host: [realm.host]}})
    with pytest.raises(SourceError):
        OciSource().pull(target, FilesystemStore(tmp_path / "b"), None)
    assert realm.authorizations() == [BASIC]


def test_an_upload_location_on_another_host_gets_no_authorization(hosts, tmp_path, monkeypatch):
    uploads = hosts(lambda h: (201, {}))

    def registry_answer(handler):
        if handler.headers.get("Authorization") != BASIC:
            return 401, {"WWW-Authenticate": 'Basic realm="r"'}
        if handler.command == "HEAD":
            return 404, {}
        if handler.command == "POST":
            return 202, {"Location": f"http://{uploads.host}/upload/1"}
        return 201, {}
    registry = hosts(registry_answer)
    env_credentials(monkeypatch, registry.host)
    first = FilesystemStore(tmp_path / "a")
    model = put_in_store(first, gguf_artifact(tmp_path, seed=3), "x")
    manifest = first.manifest_bytes(model.id)
    blob = b"layer bytes"
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    push_blobs_and_manifest(references.parse(f"{registry.host}/team/up:v1"),
                            [(digest, len(blob), lambda: io.BytesIO(blob))], manifest, None)
    assert [m for m, _, _ in uploads.seen] == ["PUT"]
    assert uploads.authorizations() == []
    assert BASIC in registry.authorizations()


def test_credentials_never_go_over_plain_http_to_a_host_that_is_not_loopback_or_insecure():
    insecure = {"lan.example:5000"}
    assert not scope.may_authorize("http://registry.example/v2/", "registry.example", set())
    assert scope.may_authorize("https://registry.example/v2/", "registry.example", set())
    assert scope.may_authorize("http://127.0.0.1:5000/v2/", "127.0.0.1:5000", set())
    assert scope.may_authorize("http://lan.example:5000/v2/", "lan.example:5000", insecure)
    assert not scope.may_authorize("https://other.example/v2/", "registry.example", set())


def test_environment_credentials_belong_to_docker_hub_unless_a_registry_is_configured(
        monkeypatch):
    from modelrunner_oci.registry import find_credentials
    monkeypatch.setenv("MODELRUNNER_REGISTRY_USERNAME", USER)
    monkeypatch.setenv("MODELRUNNER_REGISTRY_PASSWORD", PASSWORD)
    assert find_credentials("registry-1.docker.io") == (USER, PASSWORD)
    assert find_credentials("registry.example.com") is None
    use_settings({"registry_credentials_host": "registry.example.com"})
    assert find_credentials("registry.example.com") == (USER, PASSWORD)
    assert find_credentials("registry-1.docker.io") is None


def gzip_bomb(size):
    """gzip bytes that inflate to ``size`` zero bytes (about 1000:1)."""
    import zlib
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    return b"".join(packer.compress(zeros) for _ in range(size >> 20)) + packer.flush()


def test_a_gzip_bomb_for_a_manifest_or_an_error_is_read_only_up_to_its_cap(hosts, tmp_path):
    import tracemalloc
    bomb = gzip_bomb(256 << 20)

    def answer(handler):
        status = 200 if "/manifests/v1" in handler.path else 404
        handler.send_response(status)
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        handler.send_header("Content-Length", str(len(bomb)))
        handler.end_headers()
        try:
            handler.wfile.write(bomb)
        except OSError:
            pass  # the client stopped reading: the point
    registry = hosts(answer)
    for tag, status in (("v1", 502), ("missing", 404)):
        tracemalloc.start()
        try:
            with pytest.raises(SourceError) as e:
                OciSource().pull(references.parse(f"{registry.host}/team/bomb:{tag}"),
                                 FilesystemStore(tmp_path / tag), None)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert e.value.status == status
        assert peak < 32 << 20  # 256 MiB inflated would not fit
