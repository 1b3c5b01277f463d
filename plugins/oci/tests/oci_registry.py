"""Real registries for the OCI tests and the pull benchmark: Debian's `docker-registry` (the CNCF
distribution registry) on 127.0.0.1, anonymous, behind htpasswd basic auth, or behind token auth
with a small in-process token server.

Needs the Debian packages `docker-registry` and `apache2-utils` (for `htpasswd -B`).
"""

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelrunner_oci.registry import httpx  # gevent-safe import (see there)

REGISTRY_BIN = "/usr/bin/docker-registry"
USER, PASSWORD = "alice", "s3cret-pass"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RegistryServer:
    host: str            # 127.0.0.1:<port>, what references name
    storage: Path        # the registry's filesystem storage root
    process: subprocess.Popen
    log: Path

    def blob_data_path(self, digest):
        hexpart = digest.split(":", 1)[1]
        return (self.storage / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexpart[:2]
                / hexpart / "data")


def start_registry(root, auth_block=""):
    binary = shutil.which("docker-registry") or (REGISTRY_BIN if Path(REGISTRY_BIN).exists() else None)
    if not binary:
        pytest.fail("the OCI tests need the CNCF distribution registry: "
                    "apt-get install -y docker-registry (binary /usr/bin/docker-registry)",
                    pytrace=False)
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    storage = root / "storage"
    config = root / "config.yml"
    config.write_text(f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: modelrunner-tests
{auth_block}""")
    log = root / "registry.log"
    process = subprocess.Popen([binary, "serve", str(config)], stdout=open(log, "wb"),
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"docker-registry exited: {log.read_text()[-2000:]}", pytrace=False)
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code in (200, 401):
                return RegistryServer(f"127.0.0.1:{port}", storage, process, log)
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    pytest.fail(f"docker-registry did not start: {log.read_text()[-2000:]}", pytrace=False)


def stop_registry(server):
    server.process.terminate()
    try:
        server.process.wait(5)
    except subprocess.TimeoutExpired:
        server.process.kill()


# -- token auth: a small token server (the Docker Hub scheme) in front of a real registry ---------

class TokenServer:
    """Issues ES256 JWTs the registry trusts (x5c chain to its rootcertbundle).

    Authenticated users (USER/PASSWORD, Basic) get every action they ask for; anonymous callers
    get "pull" only; a wrong password is 401. ``requests`` records the scopes asked for."""

    service = "modelrunner-registry"
    issuer = "modelrunner-test-issuer"

    def __init__(self, root):
        import datetime
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelrunner test token issuer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.cert_path = root / "token-cert.pem"
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_port}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _handle(self, handler):
        import base64
        import json
        from urllib.parse import parse_qs, urlparse
        query = parse_qs(urlparse(handler.path).query)
        scopes = query.get("scope", [])
        self.requests.append(scopes)
        authenticated = False
        header = handler.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if (user, password) != (USER, PASSWORD):
                body = json.dumps({"details": "incorrect username or password"}).encode()
                handler.send_response(401)
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)
                return
            authenticated = True
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":", 2)
            wanted = actions.split(",")
            allowed = wanted if authenticated else [a for a in wanted if a == "pull"]
            access.append({"type": kind, "name": name, "actions": allowed})
        body = json.dumps({"token": self.jwt(access), "expires_in": 300}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def jwt(self, access):
        import base64
        import json
        import time
        import uuid
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        def b64(data):
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": USER, "aud": self.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def close(self):
        self.httpd.shutdown()
