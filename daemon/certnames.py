"""Which of the page's URLs the served certificate covers.

The daemon announces a URL for each address of the machine, but
``make-cert`` leaves out of the certificate the addresses this Pi's CA may not
sign for (a public address), and a certificate made before a new address or
host name came along does not name it either.  A phone refuses such a URL
outright, so with TLS the daemon announces only the URLs whose host the
certificate names (its subject alternative names, read once at start with
``cryptography``), and says in one line which it left out and how to add them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .errors import CertError
from .urls import is_loopback_url

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

__all__ = ["CertNames", "left_out_line", "phone_urls", "served_names", "split_covered"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class CertNames:
    """The names a server certificate is valid for, and the CA that signed it."""

    dns: frozenset[str]
    """DNS names, lower case (``*.example`` covers one label)."""
    ips: frozenset[IPAddress]
    ca: Certificate | None = None
    """This Pi's CA certificate from the chain, or None (self-signed)."""

    def covers(self, host: str) -> bool:
        """Whether a browser would accept the certificate for ``host``."""
        h = host.strip("[]").rstrip(".").lower()
        try:
            return _unmapped(ipaddress.ip_address(h)) in self.ips
        except ValueError:
            pass
        if h in self.dns:
            return True
        first, _, rest = h.partition(".")
        return bool(first and rest) and f"*.{rest}" in self.dns


def _unmapped(ip: IPAddress) -> IPAddress:
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped or ip


def served_names(certfile: str | Path) -> CertNames | None:
    """The names of the first certificate in ``certfile`` (a PEM chain), or
    None if it cannot be read as one (then nothing is filtered: the TLS stack
    has the last word on the file)."""
    from cryptography import x509

    from .ca import ca_of_chain

    try:
        pem = Path(certfile).read_bytes()
        leaf = x509.load_pem_x509_certificates(pem)[0]
    except (OSError, ValueError, IndexError):
        return None
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])  # browsers ignore the common name
    return CertNames(
        dns=frozenset(n.lower().rstrip(".") for n in san.get_values_for_type(x509.DNSName)),
        ips=frozenset(_unmapped(ip) for ip in san.get_values_for_type(x509.IPAddress)),
        ca=ca_of_chain(pem),
    )


def split_covered(urls: list[str], names: CertNames | None) -> tuple[list[str], list[str]]:
    """(the URLs whose host ``names`` covers, in order; the hosts of the others)."""
    if names is None:
        return list(urls), []
    kept, left_out = [], []
    for url in urls:
        host = urlsplit(url).hostname or ""
        if names.covers(host):
            kept.append(url)
        elif host not in left_out:
            left_out.append(host)
    return kept, left_out


def phone_urls(urls: list[str], local_url: str | None, names: CertNames | None) -> tuple[list[str], str | None, list[str]]:
    """What the daemon and the installer announce: the URLs ``names`` covers,
    the ``.local`` URL if it does, and the hosts left out."""
    kept, left_out = split_covered(urls + ([local_url] if local_url else []), names)
    local = local_url if local_url in kept else None
    urls = [u for u in kept if u != local_url]
    if local and all(is_loopback_url(u) for u in urls):
        # The certificate names no address a phone can reach (make-cert
        # leaves out public ones): the .local name is the phone's way in.
        return [local, *urls], None, left_out
    return urls, local, left_out


def left_out_line(hosts: list[str], names: CertNames, *, make_cert: str) -> str:
    """One start-up line: which hosts were not announced, why, and how to add
    them (``make_cert``: the make-cert command that works on this machine)."""
    signable = [h for h in hosts if names.ca is None or _permits(names.ca, h)]
    refused = [h for h in hosts if h not in signable]
    how = []
    if signable:
        how.append(f"'{make_cert} --force --host {' --host '.join(signable)}' adds {_them(signable)}")
    if refused:
        how.append(
            f"this Pi's CA may not sign for {', '.join(refused)} (only private addresses and its own names): "
            f"only a new CA can (move ca.pem and ca-key.pem away, run '{make_cert} --force --host {' --host '.join(refused)}', "
            "and trust the new CA on each phone)"
        )
    return (
        f"not announced: {', '.join(hosts)}, as the TLS certificate does not name {_them(hosts)} "
        f"and phones would refuse the page there; {'; '.join(how)}"
    )


def _permits(ca: Certificate, host: str) -> bool:
    from .ca import permits  # here: start-up without TLS need not load the CA code

    try:
        return permits(ca, host)
    except CertError:  # not a name a certificate can hold
        return False


def _them(hosts: list[str]) -> str:
    return "it" if len(hosts) == 1 else "them"
