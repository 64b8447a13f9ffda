"""This Pi's own certificate authority, limited to this Pi.

iOS accepts a self-signed certificate for a page but not for the page's
``wss://`` socket, so a phone must *trust* the certificate's issuer.  A CA
that a phone trusts could vouch for any site, so this one carries a critical
Name Constraints extension: it may only sign for this Pi's names (its host
name, ``NAME.local``, ``localhost``, and names given to ``make-cert --host``)
and for private, link-local and loopback addresses.  A stolen CA key then
cannot impersonate a bank to a phone that trusts the CA.  Its key never
leaves the folder ``make-cert`` writes it to; the daemon finds the CA
certificate in its own certificate chain (:func:`ca_of_chain`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets

from .errors import CertError
from .tls import general_name, server_certificate, unique

__all__ = ["CA_DAYS", "PRIVATE_NETWORKS", "ca_of_chain", "create_ca", "issue", "permits", "permitted_names"]

CA_DAYS = 3650
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918
        "169.254.0.0/16", "127.0.0.0/8",  # link-local, loopback
        "fc00::/7", "fe80::/10", "::1/128",  # unique local, link-local, loopback
    )
)
"""The address ranges any CA made here may sign for."""


def _in_private(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(ip in net for net in PRIVATE_NETWORKS if net.version == ip.version)


def create_ca(*, names: list[str], label: str, days: int = CA_DAYS):
    """A new CA (key, certificate) that may sign only for ``names`` (host
    names, and addresses outside the private ranges) and the private ranges.
    ``label`` (this Pi's name) goes into its common name."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    dns: list[x509.GeneralName] = []
    ips: list[x509.GeneralName] = [x509.IPAddress(n) for n in PRIVATE_NETWORKS]
    for n in unique(names):
        g = general_name(n)
        if isinstance(g, x509.DNSName):
            dns.append(g)
        elif not _in_private(g.value):
            ips.append(x509.IPAddress(ipaddress.ip_network(g.value)))
    key = ec.generate_private_key(ec.SECP256R1())
    cn = f"gravity-led CA for {label[:30]} ({secrets.token_hex(3)})"  # two Pis named alike stay apart on a phone
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gravity-led")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.NameConstraints(permitted_subtrees=dns + ips, excluded_subtrees=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _constraints(ca_cert):
    from cryptography import x509

    try:
        return ca_cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return None


def permits(ca_cert, host: str) -> bool:
    """Whether ``ca_cert``'s Name Constraints allow a certificate for ``host``
    (as a verifier checks them: a DNS subtree covers the name and its subdomains)."""
    from cryptography import x509

    nc = _constraints(ca_cert)
    if nc is None:
        return True
    g = general_name(host)
    for tree in nc.permitted_subtrees or []:
        if isinstance(g, x509.DNSName) and isinstance(tree, x509.DNSName):
            base = tree.value.lower().lstrip(".")
            if g.value == base or g.value.endswith("." + base):
                return True
        elif isinstance(g, x509.IPAddress) and isinstance(tree, x509.IPAddress):
            if g.value.version == tree.value.version and g.value in tree.value:
                return True
    return False


def permitted_names(ca_cert) -> list[str]:
    """The constraints as text, for messages: names, then address ranges."""
    nc = _constraints(ca_cert)
    return [str(t.value) for t in (nc.permitted_subtrees or [])] if nc else []


def issue(ca_key, ca_cert, *, hosts: list[str], days: int):
    """A server key and certificate for ``hosts`` signed by the CA: (key, certificate)."""
    outside = [h for h in hosts if not permits(ca_cert, h)]
    if outside:
        raise CertError(f"this Pi's CA may not sign for {outside[0]!r} (it may for: {', '.join(permitted_names(ca_cert))})")
    now = dt.datetime.now(dt.timezone.utc)
    left = (ca_cert.not_valid_after_utc - now).days
    if left < days:
        raise CertError(f"this Pi's CA expires in {left} days, before the {days} asked for; remove ca.pem and ca-key.pem to make a new one")
    return server_certificate(hosts=hosts, issuer=(ca_cert, ca_key), days=days)


def ca_of_chain(pem: bytes):
    """The CA certificate in a PEM chain (the daemon's certfile) that signed
    its first certificate, or None (a self-signed certificate: no CA)."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        return None
    leaf = certs[0]
    for c in certs[1:]:
        try:
            if c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                leaf.verify_directly_issued_by(c)
                return c
        except (x509.ExtensionNotFound, InvalidSignature, ValueError, TypeError):
            continue  # not a CA, or another CA's certificate
    return None
