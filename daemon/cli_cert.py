"""``gravity-led-daemon make-cert``: this Pi's CA and a server certificate from it.

Where the files go: ``--out-dir``; else ``/etc/gravity-led`` when run as
root on a machine with the installed service; else the current folder (a
laptop, even under sudo, whose user then gets the files).
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import sys
from pathlib import Path

from .certfiles import CA_KEY_NAME, CA_NAME, CERT_NAME, KEY_NAME, make_certificates
from .errors import CertError
from .installed import DEFAULT_DIR, SERVICE_USER, make_cert_command, service_installed
from .mobileconfig import CA_PATH, PROFILE_PATH
from .protocol import DEFAULT_PORT
from .tls import MAX_DAYS, default_hosts, is_bare_name, unique
from .usage import UsageParser
from .wording import count

__all__ = ["main"]

PROG = "gravity-led-daemon make-cert"


def _parser() -> argparse.ArgumentParser:
    p = UsageParser(
        prog=PROG,
        description="Create this Pi's own certificate authority (once) and a TLS server certificate from it, "
        "so that phones can open the page and its WebSocket over https:// after trusting the CA once.",
    )
    p.add_argument(
        "--host", action="append", default=[], metavar="NAME",
        help="host name or IP address phones will use (repeatable); "
        "default: this machine's name, NAME.local, its IP addresses, localhost",
    )
    p.add_argument(
        "--out-dir", metavar="DIR", default=None,
        help=f"where to write the files (default: {DEFAULT_DIR} as root where the service is installed, else the current folder)",
    )
    p.add_argument("--days", type=int, default=MAX_DAYS, help=f"server certificate validity in days, at most {MAX_DAYS} (default: {MAX_DAYS})")
    p.add_argument(
        "--owner", metavar="USER", default=None,
        help=f"user to own {CERT_NAME} and {KEY_NAME}, so a daemon running as that user can read the key "
        f"(default as root: {SERVICE_USER}, the systemd service's user, if it exists)",
    )
    p.add_argument("--force", action="store_true", help=f"replace {CERT_NAME} and {KEY_NAME} (this Pi's CA is kept and signs the new ones)")
    return p


def _user(name: str) -> tuple[str, int, int] | None:
    import pwd

    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    return name, pw.pw_uid, pw.pw_gid


def _owners(name: str | None, installed: bool) -> tuple[tuple[str, int, int] | None, tuple[str, int, int] | None]:
    """Who gets the server's files, and who the CA's (None: this user)."""
    root = os.geteuid() == 0
    if name is not None:
        owner = _user(name)
        if owner is None:
            raise CertError(f"there is no user named {name!r} on this machine")
        if not root and owner[1] != os.geteuid():
            raise CertError(f"only root can give the files to user {name!r}; run with sudo")
        return owner, None
    if not root:
        return None, None
    if installed:
        return _user(SERVICE_USER), None
    sudo_uid, sudo_gid = os.environ.get("SUDO_UID", ""), os.environ.get("SUDO_GID", "")
    if sudo_uid.isdigit() and sudo_gid.isdigit() and int(sudo_uid) != 0:  # a laptop: the files are the user's
        user = (os.environ.get("SUDO_USER") or sudo_uid, int(sudo_uid), int(sudo_gid))
        return user, user
    return None, None


def _q(p: Path) -> str:
    return shlex.quote(str(p))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    installed = service_installed()
    if args.out_dir is not None:
        out = Path(args.out_dir)
    else:
        out = DEFAULT_DIR if os.geteuid() == 0 and installed else Path.cwd()
    required: list[str] = []
    for h in args.host:
        required.append(h)
        if is_bare_name(h):
            required.append(f"{h}.local")  # what mDNS (avahi) answers for it
    required = unique(required)
    optional = [h for h in default_hosts() if h.lower() not in {r.lower() for r in required}]
    label = socket.gethostname().split(".")[0] or "localhost"
    try:
        owner, ca_owner = _owners(args.owner, installed)
        try:
            out.mkdir(mode=0o755, parents=True, exist_ok=True)  # never wider, whatever the umask
        except OSError as e:
            raise CertError(f"cannot create directory {out}: {e.strerror}") from None
        try:
            made = make_certificates(
                directory=out, required=required, optional=optional, label=label, days=args.days, force=args.force,
                owner=owner[1:] if owner else None, ca_owner=ca_owner[1:] if ca_owner else None,
            )
        except OSError as e:
            raise CertError(f"cannot write to {out}: {e.strerror}") from None
    except CertError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    try:
        _report(out.resolve(), made, days=args.days, owner=owner)
        sys.stdout.flush()
    except BrokenPipeError:  # '| head': the files are written, the rest is not wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _report(out: Path, made, *, days: int, owner: tuple[str, int, int] | None) -> None:
    cert, key = out / CERT_NAME, out / KEY_NAME
    print(f"Wrote into {out}:")
    if made.new_ca:
        print(f"  {CA_NAME}      this Pi's new certificate authority: phones trust it once")
    else:
        print(f"  (kept {CA_NAME}: phones that trust this Pi's CA trust the new certificate too)")
    print(f"  {CA_KEY_NAME}  its private key (mode 0600): stays here, never served; keep it for renewals")
    print(f"  {CERT_NAME}    the server certificate, valid {count(days, 'day')} for: {', '.join(made.names)}")
    print(f"  {KEY_NAME}     its private key (mode 0600)")
    if made.left_out:
        print(f"Left out (this Pi's CA may not sign for them): {', '.join(made.left_out)}")
    if owner is not None:
        print(f"{CERT_NAME} and {KEY_NAME} belong to user {owner[0]}, who alone can read the key.")
    print()
    print("Start the daemon with:")
    print(f"  gravity-led-daemon --certfile {_q(cert)} --keyfile {_q(key)}")
    print("or put in the TOML config file (/etc/gravity-led/daemon.toml):")
    print(f'  certfile = "{cert}"')
    print(f'  keyfile = "{key}"')
    print()
    urls = _phone_urls(made.names)
    print("Then, on each phone, trust this Pi's CA once (the page shows how):")
    print(f"  iPhone, iPad: {urls[0]}{PROFILE_PATH[1:]}")
    print(f"  Android:      {urls[0]}{CA_PATH[1:]}")
    print("and open:")
    for u in urls:
        print(f"  {u}")


def _phone_urls(names: list[str]) -> list[str]:
    """Where a phone opens the page: private IPv4 addresses (every phone
    reaches them), then ``.local`` and other dotted names; never loopback."""
    import ipaddress

    ips, dotted = [], []
    for n in names:
        try:
            ip = ipaddress.ip_address(n)
        except ValueError:
            if "." in n and n != "localhost":
                dotted.append(f"https://{n}:{DEFAULT_PORT}/")
            continue
        if ip.version == 4 and not ip.is_loopback:  # the default host 0.0.0.0 listens on IPv4 only
            ips.append(f"https://{ip}:{DEFAULT_PORT}/")
    return ips + dotted or [f"https://localhost:{DEFAULT_PORT}/"]


def ca_announcement(url: str, downloads) -> list[str]:
    """The daemon's start-up lines about this Pi's CA, after the page's URLs."""
    if downloads is None:
        return [
            "this certificate is self-signed: iPhones load the page but not its WebSocket; "
            f"'{make_cert_command()} --force' makes this Pi's CA, which phones can trust"
        ]
    return [f"phones trust this Pi's CA once: {url}{PROFILE_PATH[1:]} (iPhone, iPad), {url}{CA_PATH[1:]} (Android)"]
