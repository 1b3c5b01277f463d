"""Fixtures: real registries on 127.0.0.1 (see oci_registry.py)."""

import shutil
import subprocess

import pytest

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
                 "DEFAULT_REGISTRY", "INSECURE_REGISTRY"):
        monkeypatch.delenv(name, raising=False)


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
