"""Fixtures: real registries on 127.0.0.1 (see oci_registry.py)."""

import shutil
import subprocess

import pytest

from modelrunner_oci.registry import use_settings

from plugins.oci.tests.oci_registry import PASSWORD, USER, TokenServer, start_registry, stop_registry


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    stop_registry(server)


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth-registry")
    if not shutil.which("htpasswd"):
        pytest.fail("the basic-auth registry test needs htpasswd: apt-get install -y apache2-utils",
                    pytrace=False)
    htpasswd = root / "htpasswd"
    line = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True,
                          text=True).stdout.strip()
    htpasswd.write_text(line + "\n")
    server = start_registry(root, f"""auth:
  htpasswd:
    realm: modelrunner-tests
    path: {htpasswd}
""")
    yield server
    stop_registry(server)


@pytest.fixture(autouse=True)
def _isolated_credentials(tmp_path, monkeypatch):
    """No developer credentials or registry settings leak into a test."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    for name in ("MODELRUNNER_REGISTRY_USERNAME", "MODELRUNNER_REGISTRY_PASSWORD",
                 "MODELRUNNER_REGISTRY_CREDENTIALS_HOST", "DEFAULT_REGISTRY", "INSECURE_REGISTRY"):
        monkeypatch.delenv(name, raising=False)
    use_settings(None)
    yield
    use_settings(None)


def env_credentials(monkeypatch, host, password=PASSWORD):
    """MODELRUNNER_REGISTRY_USERNAME/_PASSWORD, meant for the registry ``host``."""
    monkeypatch.setenv("MODELRUNNER_REGISTRY_USERNAME", USER)
    monkeypatch.setenv("MODELRUNNER_REGISTRY_PASSWORD", password)
    monkeypatch.setenv("MODELRUNNER_REGISTRY_CREDENTIALS_HOST", host)


def trust_token_realm(server):
    """Let ``server``'s credentials go to its token server (another port: another host)."""
    realm = server.tokens.realm.split("/")[2]
    use_settings({"registry_auth_hosts": {server.host: [realm]}})


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("token-registry")
    tokens = TokenServer(root)
    server = start_registry(root, f"""auth:
  token:
    realm: {tokens.realm}
    service: {tokens.service}
    issuer: {tokens.issuer}
    rootcertbundle: {tokens.cert_path}
""")
    server.tokens = tokens
    yield server
    stop_registry(server)
    tokens.close()
