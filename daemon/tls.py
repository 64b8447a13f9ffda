"""A self-signed certificate for the phone page: ``gravity-led-daemon make-cert``.

Phones give motion sensors only to secure contexts, so the page must come
over ``https://``.  This writes one self-signed server certificate (no CA:
nothing to install, the phone accepts it once) for the names and addresses
a phone may use to reach the Pi, with an ECDSA P-256 key readable by its
owner only.  It is a leaf (``CA:FALSE``, ``serverAuth``) valid for 825 days,
the longest Apple's platforms accept for a TLS server certificate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import socket
import sys
from pathlib import Path

from . import urls
from .errors import CertError
from .usage import UsageParser
from .wording import count

__all__ = ["CertError", "DEFAULT_DIR", "default_hosts", "make_cert", "main"]

DEFAULT_DIR = Path("/etc/gravity-led")
SERVICE_USER = "gravity-led"
CERT_NAME = "cert.pem"
KEY_NAME = "key.pem"


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
    return _unique(hosts)


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        key = item.lower()
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _san(host: str):
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


def make_cert(*, hosts: list[str], cert_path: str | os.PathLike, key_path: str | os.PathLike, days: int = 825) -> list[str]:
    """Write a self-signed certificate for ``hosts`` and its private key.

    The first host is the certificate's common name; every host is a subject
    alternative name (an IP address entry for addresses, DNS otherwise).  The
    key is written with mode 0600 and the certificate with 0644.  Existing
    files are replaced.  Returns the names written into the certificate.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not hosts:
        raise CertError("give at least one host name or address for the certificate")
    if not 1 <= days <= 825:
        raise CertError(f"days must be between 1 and 825 (phones refuse longer), not {days}")
    sans = [_san(h) for h in _unique([h.strip() for h in hosts if h.strip()])]
    names = [str(s.value) for s in sans]

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gravity-led (self-signed)"),
        ]
    )
    now = dt.datetime.now(dt.timezone.utc)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(Path(key_path), key_pem, 0o600)
    _write(Path(cert_path), cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return names


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically, created with ``mode`` (never wider)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # whatever the umask
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _parser() -> argparse.ArgumentParser:
    p = UsageParser(
        prog="gravity-led-daemon make-cert",
        description="Create a self-signed TLS certificate so phones can open the page over https:// "
        "(motion sensors need a secure context).",
    )
    p.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="NAME",
        help="host name or IP address phones will use (repeatable); "
        "default: this machine's name, NAME.local, its IP addresses, localhost",
    )
    p.add_argument(
        "--out-dir",
        metavar="DIR",
        default=None,
        help=f"where to write {CERT_NAME} and {KEY_NAME} (default: {DEFAULT_DIR} as root, else the current directory)",
    )
    p.add_argument("--days", type=int, default=825, help="validity in days, at most 825 (default: 825)")
    p.add_argument(
        "--owner",
        metavar="USER",
        default=None,
        help=f"user to own the files, so a daemon running as that user can read the key "
        f"(default as root: {SERVICE_USER}, the systemd service's user, if it exists)",
    )
    p.add_argument("--force", action="store_true", help="replace existing files")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.out_dir is not None:
        out = Path(args.out_dir)
    else:
        out = DEFAULT_DIR if os.geteuid() == 0 else Path.cwd()
    given: list[str] = []
    for h in args.host:
        given.append(h)
        if _is_bare_name(h):
            given.append(f"{h}.local")  # what mDNS (avahi) answers for it
    hosts = _unique(given + default_hosts())
    cert_path, key_path = out / CERT_NAME, out / KEY_NAME
    try:
        owner = _owner(args.owner)
        existing = [p for p in (cert_path, key_path) if p.exists()]
        if existing and not args.force:
            raise CertError(f"{existing[0]} already exists; add --force to replace it (phones must then accept the new certificate)")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CertError(f"cannot create directory {out}: {e.strerror}") from None
        try:
            names = make_cert(hosts=hosts, cert_path=cert_path, key_path=key_path, days=args.days)
        except OSError as e:
            raise CertError(f"cannot write to {out}: {e.strerror}") from None
        if owner is not None:
            try:
                for path in (key_path, cert_path):
                    os.chown(path, owner[1], owner[2])
            except OSError as e:
                raise CertError(f"cannot give the files to user {owner[0]}: {e.strerror}") from None
    except CertError as e:
        print(f"gravity-led-daemon make-cert: error: {e}", file=sys.stderr)
        return 1
    cert_abs, key_abs = cert_path.resolve(), key_path.resolve()
    print(f"Wrote certificate {cert_abs}")
    print(f"  and private key  {key_abs} (mode 0600)")
    print(f"Valid {count(args.days, 'day')} for: {', '.join(names)}")
    print()
    print("Start the daemon with:")
    print(f"  gravity-led-daemon --certfile {_q(cert_abs)} --keyfile {_q(key_abs)}")
    print("or put in the TOML config file (/etc/gravity-led/daemon.toml):")
    print(f'  certfile = "{cert_abs}"')
    print(f'  keyfile = "{key_abs}"')
    print()
    print("Then open on the phone (accept the self-signed certificate once):")
    for u in _phone_urls(names):
        print(f"  {u}")
    if owner is not None:
        print(f"Owned by user {owner[0]}, who alone can read the key.")
    return 0


def _owner(name: str | None) -> tuple[str, int, int] | None:
    """(user, uid, gid) to give the files to, or None to leave them to us."""
    import pwd

    if name is None:
        if os.geteuid() != 0:
            return None
        try:
            pw = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return None
        return SERVICE_USER, pw.pw_uid, pw.pw_gid
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise CertError(f"there is no user named {name!r} on this machine") from None
    if os.geteuid() != 0 and pw.pw_uid != os.geteuid():
        raise CertError(f"only root can give the files to user {name!r}; run with sudo") from None
    return name, pw.pw_uid, pw.pw_gid


def _is_bare_name(host: str) -> bool:
    h = host.strip().strip("[]")
    try:
        ipaddress.ip_address(h)
    except ValueError:
        return bool(h) and "." not in h and h.lower() != "localhost"
    return False


def _q(p: Path) -> str:
    s = str(p)
    return s if all(c.isalnum() or c in "/._-+:@" for c in s) else "'" + s.replace("'", "'\\''") + "'"


def _phone_urls(names: list[str]) -> list[str]:
    from .protocol import DEFAULT_PORT

    out = []
    for n in names:
        if n in ("localhost", "127.0.0.1", "::1"):
            continue
        try:
            ip = ipaddress.ip_address(n)
        except ValueError:
            out.append(f"https://{n}:{DEFAULT_PORT}/")
            continue
        if ip.version == 4:  # the default host 0.0.0.0 listens on IPv4 only
            out.append(f"https://{ip}:{DEFAULT_PORT}/")
    return out or [f"https://localhost:{DEFAULT_PORT}/"]
