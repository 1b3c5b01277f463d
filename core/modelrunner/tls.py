"""A self-signed certificate for `model serve --tls` when no certificate is configured.

Made with the ``cryptography`` package (a dependency of the core; imported only here, only when a
certificate is made). It names localhost, 127.0.0.1, ::1 and the hosts given, so clients check it
as usual once they trust it: ``MODEL_RUNNER_TLS_CA=<models_path>/tls/cert.pem`` for the CLI,
``SSL_CERT_FILE`` or an ``httpx`` ``verify=`` for the openai/ollama/anthropic clients, ``curl
--cacert``. It is kept and reused while it still names every host asked for and is a leaf.

A leaf, not a CA: ``CA:FALSE`` (critical), key usage digitalSignature, extended key usage
serverAuth. Whoever trusts it trusts this server for these names and nothing else; a CA
certificate (as an older version made) would let anyone holding its key (it sits in the store)
sign a certificate for any site, and every client that trusted it would believe them. OpenSSL
accepts a self-signed leaf as its own trust anchor (it is in the trust store, so no chain is
built past it); Python's ssl, httpx and curl verify it when given it as the CA file.
The folder is 0700 and both files 0600, like the rest of the store.
"""

import datetime
import ipaddress
import os
from pathlib import Path

from .private import private_dir, private_open

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def self_signed(folder, hosts=()):
    """``(cert_path, key_path)`` in ``folder``, made unless a usable pair is already there."""
    folder = Path(folder)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    names = sorted({h.strip("[]") for h in (*LOCAL_NAMES, *hosts)} - {"", "0.0.0.0", "::"})
    if cert_path.exists() and key_path.exists() and _usable(cert_path, names):
        return cert_path, key_path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                         content_commitment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    private_dir(folder)
    # owner-only from the start (the key never world-readable, even briefly); the new pair
    # replaces the old one by rename, so a server reading them never sees half a file
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _replace(key_path, key_pem)
    _replace(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _replace(path, data):
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with private_open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _usable(cert_path, names):
    """Whether the certificate file is a leaf for server authentication that names every one of
    ``names`` (False when unreadable: it is made again)."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        leaf = not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (ValueError, x509.ExtensionNotFound, OSError):
        return False
    held = {str(v) for v in alt.get_values_for_type(x509.DNSName)} | {
        str(v) for v in alt.get_values_for_type(x509.IPAddress)}
    return leaf and ExtendedKeyUsageOID.SERVER_AUTH in usage and held >= set(names)
