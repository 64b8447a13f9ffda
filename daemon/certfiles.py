"""The certificate files ``make-cert`` keeps in one folder, and how they are renewed.

* ``ca-key.pem`` (0600) and ``ca.pem``: this Pi's CA (daemon/ca.py), made
  once and reused by ``make-cert --force``, so that a phone that trusts the
  CA keeps trusting every renewed server certificate;
* ``key.pem`` (0600) and ``cert.pem``: the server's key and certificate, the
  certificate followed by the CA's (the chain the daemon serves, and where it
  finds the CA certificate a phone may download).

Each key and its certificate are replaced as one pair (daemon/certpair.py),
so that a kill at any point leaves the old pair or the new one; nothing here
prints.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .ca import create_ca, issue, permits
from .errors import CertError
from .certpair import replace_pair, settle
from .safewrite import check_directory, folder_lock
from .tls import cert_pem, general_name, key_pem

__all__ = ["CA_KEY_NAME", "CA_NAME", "CERT_NAME", "KEY_NAME", "Made", "load_ca", "make_certificates"]

CERT_NAME = "cert.pem"
KEY_NAME = "key.pem"
CA_NAME = "ca.pem"
CA_KEY_NAME = "ca-key.pem"
MAX_PEM_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Made:
    """What :func:`make_certificates` did."""

    names: list[str]
    """The names and addresses in the server certificate."""
    left_out: list[str] = field(default_factory=list)
    """This machine's names the CA may not sign for (a public address, a new host name)."""
    new_ca: bool = False
    """The CA was made now (phones must trust it); else the old one signed."""


def _read_private(path: Path, owners: set[int]) -> bytes:
    """A CA key file, only if it is ours alone: a regular file (not a link),
    owned by one of ``owners`` (root, this user, the user the files are for),
    with no access for group or others."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise CertError(f"cannot read {path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_PEM_BYTES:
            raise CertError(f"{path} is not a key file")
        if st.st_uid not in owners:
            raise CertError(f"{path} belongs to another user (uid {st.st_uid}); this Pi's CA key must be root's or that of the user making the certificate")
        if st.st_mode & 0o077:
            raise CertError(f"{path} may be read by others (mode {stat.S_IMODE(st.st_mode):04o}): run 'chmod 600 {path}' if no one else has it")
        return os.read(fd, MAX_PEM_BYTES + 1)
    finally:
        os.close(fd)


def load_ca(directory: Path, *, owner: int | None = None):
    """(key, certificate) of the CA in ``directory``, or None if it has none.
    Its key must belong to root, this user or ``owner`` (a uid)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key_path, cert_path = directory / CA_KEY_NAME, directory / CA_NAME
    have = [p for p in (key_path, cert_path) if os.path.lexists(p)]
    if not have:
        return None
    if len(have) == 1:
        other = cert_path if have[0] == key_path else key_path
        raise CertError(f"{have[0]} is there but {other} is not; restore it, or remove {have[0]} to make a new CA (phones must then trust it again)")
    try:
        owners = {0, os.geteuid()} | ({owner} if owner is not None else set())
        key = load_pem_private_key(_read_private(key_path, owners), password=None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes()[:MAX_PEM_BYTES])
    except (ValueError, TypeError, OSError):
        raise CertError(f"{key_path} and {cert_path} are not a PEM key and certificate") from None
    if cert.public_key() != key.public_key():
        raise CertError(f"{key_path} is not the key of {cert_path}")
    return key, cert


def make_certificates(
    *,
    directory: Path,
    required: list[str],
    optional: list[str],
    label: str,
    days: int,
    force: bool,
    owner: tuple[int, int] | None = None,
    ca_owner: tuple[int, int] | None = None,
) -> Made:
    """Issue a server certificate for ``required`` (an error if the CA may not
    sign one of them) and those of ``optional`` the CA allows; make the CA first
    if ``directory`` has none, limited to the names among both.  ``owner`` gets
    the server's files (the daemon's user), ``ca_owner`` the CA's."""
    from cryptography import x509

    check_directory(directory)
    with folder_lock(directory, what="make-cert"):
        cert_path, key_path = directory / CERT_NAME, directory / KEY_NAME
        for pair in ((directory / CA_KEY_NAME, directory / CA_NAME), (key_path, cert_path)):
            settle(*pair)  # a run killed mid-swap: its new pair, or the old one
        existing = [p for p in (cert_path, key_path) if os.path.lexists(p)]
        if existing and not force:
            raise CertError(f"{existing[0]} already exists; add --force to replace it (this Pi's CA signs the new one)")
        ca = load_ca(directory, owner=ca_owner[0] if ca_owner else None)
        new_ca = ca is None
        if ca is None:
            dns = [h for h in optional if isinstance(general_name(h), x509.DNSName)]
            ca_key, ca_cert = create_ca(names=required + dns, label=label)
            replace_pair(key_path=directory / CA_KEY_NAME, key_data=key_pem(ca_key), cert_path=directory / CA_NAME, cert_data=cert_pem(ca_cert), owner=ca_owner)
        else:
            ca_key, ca_cert = ca
        hosts = required + [h for h in optional if permits(ca_cert, h)]
        left_out = [h for h in optional if h not in hosts]
        key, cert = issue(ca_key, ca_cert, hosts=hosts, days=days)
        replace_pair(key_path=key_path, key_data=key_pem(key), cert_path=cert_path, cert_data=cert_pem(cert, ca_cert), owner=owner)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return Made(names=[str(n.value) for n in san], left_out=left_out, new_ca=new_ca)
