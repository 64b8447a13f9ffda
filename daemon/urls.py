"""Where a phone can open the page: the URLs the daemon logs at start, and a QR code.

Only the standard library (plus ``segno`` for the QR code); Linux first, with a
portable fallback.  Nothing here sends a packet.
"""

from __future__ import annotations

import io
import ipaddress
import socket
import struct
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["PHONES_NEED_HTTPS", "announcement", "beside", "local_addresses", "local_name_url", "qr_text", "url_for", "urls_to_open"]

_ANY = {"", "0.0.0.0", "::", "[::]", "*"}
_VIRTUAL_PREFIXES = ("docker", "br-", "veth", "virbr", "lxc", "lxd", "podman", "cni", "flannel", "tun", "tap", "wg", "zt")
_SIOCGIFADDR = 0x8915


def _ipv4_of(ifname: str) -> str | None:
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            res = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", ifname.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(res[20:24])


def _ipv6_by_interface() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    try:
        text = Path("/proc/net/if_inet6").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 6 and len(parts[0]) == 32:
            addr = ipaddress.IPv6Address(bytes.fromhex(parts[0]))
            out.setdefault(parts[5], []).append(str(addr))
    return out


def _usable(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    # Link-local IPv6 needs a zone id that browsers do not take in a URL.
    return not (ip.is_loopback or ip.is_unspecified or ip.is_multicast or ip.is_link_local)


def local_addresses(*, ipv6: bool = True) -> list[str]:
    """This machine's non-loopback IP addresses, real interfaces before virtual ones, IPv4 first."""
    v4: list[tuple[bool, str]] = []
    v6: list[tuple[bool, str]] = []
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        names = []
    six = _ipv6_by_interface() if ipv6 else {}
    for name in names:
        virtual = name.startswith(_VIRTUAL_PREFIXES)
        try:
            a = _ipv4_of(name)
        except (ImportError, OSError):
            a = None
        if a:
            v4.append((virtual, a))
        for a6 in six.get(name, []):
            v6.append((virtual, a6))
    if not v4 and not v6:  # not Linux, or no /proc: ask the resolver
        try:
            infos = socket.getaddrinfo(socket.gethostname(), None)
        except OSError:
            infos = []
        for family, *_, sockaddr in infos:
            if family == socket.AF_INET:
                v4.append((False, sockaddr[0]))
            elif family == socket.AF_INET6 and ipv6:
                v6.append((False, sockaddr[0].split("%")[0]))
    ordered = [a for _, a in sorted(v4, key=lambda t: t[0])] + [a for _, a in sorted(v6, key=lambda t: t[0])]
    seen: set[str] = set()
    out = []
    for a in ordered:
        if a not in seen and _usable(a):
            seen.add(a)
            out.append(a)
    return out


def url_for(host: str, port: int, *, tls: bool) -> str:
    """``http(s)://HOST:PORT/``, with IPv6 addresses in brackets."""
    h = host.strip("[]")
    try:
        if ipaddress.ip_address(h).version == 6:
            h = f"[{h}]"
    except ValueError:
        h = host
    return f"{'https' if tls else 'http'}://{h}:{port}/"


def urls_to_open(host: str, port: int, *, tls: bool, addresses: list[str] | None = None) -> list[str]:
    """The page's URLs, best first.

    For a wildcard ``host`` (``0.0.0.0``, ``::``) every non-loopback address
    of this machine (``::`` adds IPv6 ones), then loopback last; otherwise the
    given host alone.  ``addresses`` replaces the machine's own (for tests).
    """
    if host.strip() not in _ANY:
        return [url_for(host.strip(), port, tls=tls)]
    wildcard6 = host.strip() in ("::", "[::]")
    if addresses is None:
        addresses = local_addresses(ipv6=wildcard6)
    elif not wildcard6:
        addresses = [a for a in addresses if ":" not in a]
    urls = [url_for(a, port, tls=tls) for a in addresses if _usable(a)]
    return urls + [url_for("127.0.0.1", port, tls=tls)]


def local_name_url(host: str, port: int, *, tls: bool, hostname: str | None = None) -> str | None:
    """The page's URL by this machine's mDNS name (``NAME.local``, as avahi-daemon
    answers it) when the daemon listens on every address; else None.

    Only ever second to an IP address: Android before 12, or with Private DNS
    on, cannot resolve ``.local``, so the QR code and the first URL carry an address.
    """
    if host.strip() not in _ANY:
        return None
    name = (hostname or socket.gethostname()).split(".")[0]
    return url_for(f"{name}.local", port, tls=tls) if name and name != "localhost" else None


def beside(url: str, local_url: str | None) -> str:
    """``url`` with the ``.local`` one beside it, if any."""
    return f"{url} (or {local_url} where .local names resolve)" if local_url else url


PHONES_NEED_HTTPS = (
    "phones give their motion sensors only to an https:// page: run '{command}', "
    "set certfile and keyfile as it says, and restart"
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address, bracketed or not, or a name) is this
    machine's loopback: no phone reaches it."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` names this machine's loopback."""
    return is_loopback(urlsplit(url).hostname or "")


def announcement(urls: list[str], *, tls: bool, make_cert: str = "sudo gravity-led-daemon make-cert", local_url: str | None = None) -> list[str]:
    """The lines the daemon logs at start to say where to open the page.

    With TLS each URL is one for a phone.  Without, an ``http://`` page works
    in a computer's browser but a phone's browser will not hand it the motion
    sensor, so the lines say so, and how to get a certificate, instead of
    sending a phone to a page that cannot work (``make_cert``: the command
    that makes one on this machine).  The first URL (an address, as in the
    QR code) gets ``local_url`` (:func:`local_name_url`) beside it.
    """
    also = f", or {local_url} where .local names resolve" if local_url else ""
    if tls:
        lines = [f"open {url} in a browser on this machine" if is_loopback_url(url) else f"open {url} on a phone" for url in urls]
    else:
        lines = [f"page at {url} (a computer's browser; not a phone's)" for url in urls]
    if lines:
        lines[0] += also
    return lines if tls else lines + [PHONES_NEED_HTTPS.format(command=make_cert)]


def qr_text(url: str, *, border: int = 2) -> str:
    """``url`` as a QR code drawn with Unicode half blocks, for a terminal.

    Dark text on a light terminal and light on dark both scan: the code is
    drawn with its own quiet zone.
    """
    import segno

    qr = segno.make(url, error="m", micro=False)
    buf = io.StringIO()
    qr.terminal(out=buf, border=border, compact=True)
    return buf.getvalue()
