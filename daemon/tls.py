"""Server certificates for the phone page: names, and the certificate itself.

Phones give motion sensors only to secure contexts, so the page must come
over ``https://``.  A server certificate here is a leaf (``CA:FALSE``,
``serverAuth``) with an ECDSA P-256 key, valid for at most 825 days (the
longest Apple's platforms accept for a TLS server certificate), naming every
host name and address a phone may use to reach the Pi.  ``make-cert`` issues
it from this Pi's own CA (daemon/ca.py); a self-signed one, as made before
there was a CA, is still served as it is (:func:`make_cert`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from pathlib import Path

from . import urls
from .errors import CertError
from .certpair import replace_pair

__all__ = ["CertError", "MAX_DAYS", "default_hosts", "general_name", "is_bare_name", "make_cert", "server_certificate", "unique"]

MAX_DAYS = 825


def default_hosts() -> list[str]:
    """This machine's host name, ``NAME.local``, its non-loopback IPs, and loopback."""
    hosts: list[str] = []
    name = socket.gethostname().split(".")[0]
    if name and name != "localhost":
        hosts += [name, f"{name}.local"]
    fqdn = socket.getfqdn()
    if fqdn and "." in fqdn and not fqdn.startswith("localhost"):
        hosts.append(fqdn)
    hosts += urls.local_addresses()
    hosts += ["localhost", "127.0.0.1", "::1"]
    return unique(hosts)


def unique(items: list[str]) -> list[str]:
    """``items`` without repeats (ignoring case), in their first order."""
    seen: set[str] = set()
    out = []
    for item in items:
        key = item.lower()
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def is_bare_name(host: str) -> bool:
    """A one-label host name (``pi``), which mDNS also answers as ``pi.local``."""
    h = host.strip().strip("[]")
    try:
        ipaddress.ip_address(h)
    except ValueError:
        return bool(h) and "." not in h and h.lower() != "localhost"
    return False


def general_name(host: str):
    """``host`` as a subject alternative name: an IP address, or a DNS name."""
    from cryptography import x509

    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    name = text.rstrip(".").lower()
    labels = name.split(".")
    if not name or len(name) > 253 or not all(
        0 < len(label) <= 63 and all(c.isalnum() or c == "-" for c in label) and label[0] != "-" and label[-1] != "-"
        for label in (labels[1:] if labels[0] == "*" else labels)
    ) or not name.isascii():
        raise CertError(f"{host!r} is neither a host name nor an IP address")
    return x509.DNSName(name)


def check_days(days: int, *, most: int = MAX_DAYS) -> None:
    if not 1 <= days <= most:
        raise CertError(f"days must be between 1 and {most} (phones refuse longer), not {days}")


def server_certificate(*, hosts: list[str], issuer=None, days: int = MAX_DAYS):
    """A new key and server certificate for ``hosts``: (key, certificate).

    ``issuer`` is (its certificate, its key) of the CA that signs; None signs
    with the new key itself (self-signed).  The first host is the common name;
    every host is a subject alternative name.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not [h for h in hosts if h.strip()]:
        raise CertError("give at least one host name or address for the certificate")
    check_days(days)
    sans = [general_name(h) for h in unique([h.strip() for h in hosts if h.strip()])]
    key = ec.generate_private_key(ec.SECP256R1())
    org = "gravity-led" if issuer else "gravity-led (self-signed)"
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, str(sans[0].value)[:64]), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    )
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    return key, builder.sign(issuer_key, hashes.SHA256())


def key_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def cert_pem(*certs) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def make_cert(*, hosts: list[str], cert_path: str | os.PathLike, key_path: str | os.PathLike, days: int = MAX_DAYS) -> list[str]:
    """Write a self-signed certificate for ``hosts`` and its key (0600; the
    certificate 0644), as ``make-cert`` did before this Pi had a CA.  Returns
    the names written into the certificate."""
    from cryptography import x509

    key, cert = server_certificate(hosts=hosts, days=days)
    replace_pair(key_path=Path(key_path), key_data=key_pem(key), cert_path=Path(cert_path), cert_data=cert_pem(cert))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(n.value) for n in san]
