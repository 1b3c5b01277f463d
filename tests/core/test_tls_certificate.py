"""`model serve --tls` without a certificate makes a self-signed one: a leaf for the server's
names, not a certificate authority. Whoever trusts it (MODEL_RUNNER_TLS_CA for the CLI, a CA file
for Python's ssl, httpx, the openai client, curl) trusts this server for localhost, 127.0.0.1,
::1 and its bound host, and cannot be fooled by a certificate for another site signed with the
key that sits in the store."""

import datetime
import ipaddress
import os
import shutil
import signal
import ssl
import stat
import subprocess
import sys
import time
import urllib.request

import httpx
import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modelrunner.testing import free_port
from modelrunner.tls import self_signed


def load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def trusting(cert):
    """What a Python client is given to trust the server: an SSL context with it as the CA."""
    return ssl.create_default_context(cafile=str(cert))


def names(cert):
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in alt.get_values_for_type(x509.DNSName)} | {
        str(v) for v in alt.get_values_for_type(x509.IPAddress)}


def test_the_self_signed_certificate_is_a_leaf_for_the_servers_names(tmp_path):
    cert_path, key_path = self_signed(tmp_path / "tls", ["[fd00::7]", "models.example"])
    cert = load(cert_path)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign and not usage.crl_sign
    extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(extended) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert names(cert) == {"localhost", "127.0.0.1", "::1", "fd00::7", "models.example"}
    assert stat.S_IMODE(os.stat(tmp_path / "tls").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cert_path).st_mode) == 0o600


def test_a_certificate_authority_an_older_version_made_is_replaced(tmp_path):
    folder = tmp_path / "tls"
    folder.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelrunner")])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
           x509.IPAddress(ipaddress.ip_address("::1"))]
    old = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
           .public_key(key.public_key()).serial_number(1)
           .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
           .add_extension(x509.SubjectAlternativeName(alt), critical=False)
           .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
           .sign(key, hashes.SHA256()))
    (folder / "cert.pem").write_bytes(old.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    cert_path, _ = self_signed(folder)
    cert = load(cert_path)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert self_signed(folder)[0].read_bytes() == cert_path.read_bytes()  # a leaf is kept


@pytest.fixture
def tls_server(tmp_path, tiny_gguf):
    """`model serve --tls` as a user runs it, with a model packaged through it (the CLI)."""
    port = free_port()
    models = tmp_path / "models"
    env = dict(os.environ, MODELS_PATH=str(models), MODEL_RUNNER_HOST=f"https://127.0.0.1:{port}",
               MODEL_RUNNER_TLS_CA=str(models / "tls" / "cert.pem"))
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "modelrunner.cli", "serve", "--tls", "--port",
                             str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    cert = models / "tls" / "cert.pem"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        try:
            if cert.exists() and httpx.get(f"https://127.0.0.1:{port}/", verify=trusting(cert),
                                           timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        pytest.fail((tmp_path / "serve.log").read_text()[-3000:])
    subprocess.run([sys.executable, "-m", "modelrunner.cli", "package", "--gguf", str(tiny_gguf),
                    "ai/tiny"], env=env, check=True, capture_output=True)
    yield port, cert, env
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


def test_clients_given_the_certificate_verify_the_server(tls_server):
    port, cert, env = tls_server
    assert load(cert).extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    for host in ("127.0.0.1", "localhost"):
        url = f"https://{host}:{port}"
        context = ssl.create_default_context(cafile=str(cert))  # Python's ssl, OpenSSL's checks
        with urllib.request.urlopen(url + "/models", context=context) as answer:
            assert b"ai/tiny" in answer.read()
        strict = ssl.create_default_context(cafile=str(cert))
        strict.verify_flags |= ssl.VERIFY_X509_STRICT  # what Python 3.13 makes the default
        with urllib.request.urlopen(url + "/", context=strict) as answer:
            assert answer.status == 200
        client = openai.OpenAI(base_url=url + "/engines/v1", api_key="none",
                               http_client=httpx.Client(verify=trusting(cert)))
        assert [m.id for m in client.models.list()] == ["docker.io/ai/tiny:latest"]
    listed = subprocess.run([sys.executable, "-m", "modelrunner.cli", "ls"], env=env,
                            capture_output=True, text=True, check=True)
    assert "tiny" in listed.stdout  # the CLI with MODEL_RUNNER_TLS_CA
    if shutil.which("curl"):
        curl = subprocess.run(["curl", "-sS", "--cacert", str(cert),
                               f"https://localhost:{port}/models"], capture_output=True, text=True)
        assert curl.returncode == 0 and "ai/tiny" in curl.stdout, curl.stderr
    with pytest.raises(httpx.ConnectError):  # not trusted by the system's CAs
        httpx.get(f"https://127.0.0.1:{port}/")


def test_a_certificate_for_another_site_signed_with_the_stores_key_is_not_trusted(tls_server,
                                                                                  tmp_path):
    """What a CA certificate allowed: whoever reads key.pem signs a certificate for any name, and
    every client that trusts cert.pem believes it. A leaf signs nothing a client accepts."""
    port, cert, _ = tls_server
    key = serialization.load_pem_private_key((cert.parent / "key.pem").read_bytes(), None)
    forged_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    forged = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bank.example")]))
              .issuer_name(load(cert).subject).public_key(forged_key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now)
              .not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                             critical=False)
              .sign(key, hashes.SHA256()))
    (tmp_path / "forged.pem").write_bytes(forged.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "forged.key").write_bytes(forged_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "forged.pem", tmp_path / "forged.key")
    import socket
    import threading
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = listener.accept()
        try:
            server.wrap_socket(conn, server_side=True).close()
        except (ssl.SSLError, OSError):
            conn.close()
    threading.Thread(target=serve, daemon=True).start()
    client = ssl.create_default_context(cafile=str(cert))
    with pytest.raises(ssl.SSLCertVerificationError):
        with socket.create_connection(listener.getsockname()) as raw:
            client.wrap_socket(raw, server_hostname="localhost")
    listener.close()
