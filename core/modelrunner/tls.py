"""A self-signed certificate for `model serve --tls` when no certificate is configured.

Made with the ``cryptography`` package (a dependency of the core; imported only here, only when a
certificate is made). It names localhost, 127.0.0.1, ::1 and the hosts given, so clients check it
as usual once they trust it: ``MODEL_RUNNER_TLS_CA=<models_path>/tls/cert.pem`` for the CLI,
``SSL_CERT_FILE`` or an ``httpx`` ``verify=`` for the openai/ollama/anthropic clients. It is kept
and reused while it still names every host asked for.
"""

import datetime
import ipaddress
import os
from pathlib import Path

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def self_signed(folder, hosts=()):
    """``(cert_path, key_path)`` in ``folder``, made unless a usable pair is already there."""
    folder = Path(folder)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    names = sorted({h.strip("[]") for h in (*LOCAL_NAMES, *hosts)} - {"", "0.0.0.0", "::"})
    if cert_path.exists() and key_path.exists() and _names(cert_path) >= set(names):
        return cert_path, key_path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelrunner")])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    # the key is written owner-only from the start (never world-readable, even briefly)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _names(cert_path):
    """The host names and addresses a certificate file holds (empty if unreadable)."""
    from cryptography import x509
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound, OSError):
        return set()
    return {str(v) for v in alt.get_values_for_type(x509.DNSName)} | {
        str(v) for v in alt.get_values_for_type(x509.IPAddress)}
