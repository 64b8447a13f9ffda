"""Where the daemon is when the command line does not say: mDNS / DNS-SD.

On a Pi, avahi-daemon advertises the daemon as ``_gravity-led._tcp`` (the
installer's service file, :mod:`gravity_led.daemon.dnssd`). Without ``--url``
or ``$GRAVITY_LED_URL``, the client takes a daemon on this machine's default
port if one listens (as it always did), else browses for about 2 s and uses
the one daemon that answered; several, or none, is an error that says what
to give ``--url``.

Choosing among the answers and building the URL from the TXT record is pure
(:class:`Found`, :func:`choose`); :func:`browse` is the wire side
(python-zeroconf), :func:`find_daemon` puts them together.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from gravity_led.daemon.dnssd import SERVICE_TYPE, WS_PATH
from gravity_led.daemon.protocol import DEFAULT_PORT, PROTOCOL_VERSION

from . import EXIT_ERROR, EXIT_USAGE, ClientError

__all__ = ["BROWSE_S", "Found", "browse", "choose", "find_daemon", "found_from", "local_daemon"]

BROWSE_S = 2.0
"""How long to listen for answers: responders answer within a few hundred ms."""
FQDN_TYPE = SERVICE_TYPE + ".local."
HOW_TO_SAY = "give its address with --url HOST[:PORT] (or set GRAVITY_LED_URL)"


@dataclass(frozen=True)
class Found:
    """One daemon that answered: its DNS-SD instance, host name, addresses, port and TXT record."""

    name: str
    host: str
    addresses: tuple[str, ...]
    port: int
    txt: Mapping[str, str] = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        return self.txt.get("tls") == "1"

    @property
    def protocol(self) -> str | None:
        return self.txt.get("protocol")

    @property
    def speaks_ours(self) -> bool:
        """True unless the TXT names another wire protocol version than this client's."""
        return self.protocol is None or self.protocol == str(PROTOCOL_VERSION)

    @property
    def address(self) -> str:
        """The address to connect to: IPv4 first (no ``.local`` lookup needed), then
        routable IPv6, link-local IPv4, loopback; the host name if none is usable
        (a link-local IPv6 address needs a zone that a URL cannot carry)."""
        ranked = sorted((_rank(a), n, a) for n, a in enumerate(self.addresses) if _rank(a) is not None)
        return ranked[0][2] if ranked else self.host

    @property
    def url(self) -> str:
        path = self.txt.get("path") or WS_PATH
        host = self.address
        if ":" in host:
            host = f"[{host}]"
        return f"{'wss' if self.tls else 'ws'}://{host}:{self.port}{path if path.startswith('/') else '/' + path}"

    def summary(self) -> str:
        """Name, address and port, as a list of several names them."""
        return f"{self.name} at {self.address} port {self.port}"

    def line(self) -> str:
        """What ``discover`` prints: the URL to use, and where it came from."""
        where = ", ".join(dict.fromkeys([self.host, *self.addresses]))
        other = "" if self.speaks_ours else f"; speaks protocol {self.protocol}, this client {PROTOCOL_VERSION}"
        return f"{self.name}: {self.url} ({where}{other})"


def _rank(addr: str) -> int | None:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    if ip.is_multicast or ip.is_unspecified or (ip.version == 6 and ip.is_link_local):
        return None
    if ip.is_loopback:
        return 3
    if ip.is_link_local:
        return 2
    return 0 if ip.version == 4 else 1


def found_from(fqdn: str, server: str | None, addresses: list[str], port: int | None, properties: Mapping[bytes, bytes | None]) -> Found | None:
    """A :class:`Found` from a resolved answer (python-zeroconf's ServiceInfo fields); None without a port."""
    if not port:
        return None
    name = fqdn[: -len(FQDN_TYPE) - 1] if fqdn.endswith("." + FQDN_TYPE) else fqdn.rstrip(".")
    txt = {k.decode("utf-8", "replace").lower(): (v or b"").decode("utf-8", "replace") for k, v in properties.items()}
    host = (server or "").rstrip(".") or name
    return Found(name=name, host=host, addresses=tuple(addresses), port=port, txt=txt)


def choose(found: list[Found], *, seconds: float = BROWSE_S) -> Found:
    """The one daemon to use, or a ClientError that says why there is none."""
    ours = [f for f in found if f.speaks_ours]
    if len(ours) == 1:
        return ours[0]
    if len(ours) > 1:
        listed = "; ".join(f.summary() for f in sorted(ours, key=lambda f: f.name))
        raise ClientError(f"{len(ours)} gravity-led daemons answered ({listed}): say which with --url, "
                          f"for example --url {sorted(ours, key=lambda f: f.name)[0].url}", EXIT_USAGE)  # fmt: skip
    if found:
        listed = "; ".join(f"{f.summary()} (protocol {f.protocol})" for f in found)
        raise ClientError(f"only daemons of another gravity-led version answered ({listed}; this client speaks protocol "
                          f"{PROTOCOL_VERSION}): update one side, or {HOW_TO_SAY}")  # fmt: skip
    raise ClientError(f"no gravity-led daemon answered on this network within {seconds:g} s (mDNS): {HOW_TO_SAY}", EXIT_ERROR)


# ---- the wire side ----------------------------------------------------------------------------


def browse(seconds: float = BROWSE_S) -> list[Found]:
    """Every ``_gravity-led._tcp`` service that answers within ``seconds``, resolved."""
    import logging

    from zeroconf import ServiceBrowser, ServiceStateChange, Zeroconf

    logging.getLogger("zeroconf").setLevel(logging.CRITICAL)  # its socket warnings are not the user's business
    names: dict[str, None] = {}
    lock = threading.Lock()

    def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        with lock:
            if state_change is ServiceStateChange.Removed:
                names.pop(name, None)  # it said goodbye (a daemon stopping)
            else:
                names[name] = None

    try:
        zc = Zeroconf()
    except OSError as e:
        raise ClientError(f"cannot look for the daemon on this network (mDNS: {e.strerror or e}): {HOW_TO_SAY}") from None
    try:
        browser = ServiceBrowser(zc, FQDN_TYPE, handlers=[on_change])
        try:
            time.sleep(seconds)  # the window for answers: the browser's thread collects them meanwhile
        finally:
            browser.cancel()
        found = []
        with lock:
            heard = list(names)
        for name in heard:
            info = zc.get_service_info(FQDN_TYPE, name, timeout=1000)
            if info is not None:
                f = found_from(name, info.server, info.parsed_addresses(), info.port, info.properties)
                if f is not None:
                    found.append(f)
        return found
    finally:
        zc.close()


def local_daemon(port: int = DEFAULT_PORT, timeout_s: float = 0.3) -> bool:
    """True if something listens on this machine's default port (the daemon on the Pi itself, or one started by hand)."""
    try:
        with socket.create_connection(("localhost", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def find_daemon(*, say: Callable[[str], None], seconds: float = BROWSE_S) -> str:
    """The daemon's address when the user gave none: ``localhost`` if a daemon
    listens here on the default port (silently, as before discovery), else the
    URL of the one daemon mDNS found (and ``say`` names it)."""
    if local_daemon():
        return "localhost"
    chosen = choose(browse(seconds), seconds=seconds)
    say(f"found {chosen.name} ({chosen.host}, {chosen.address} port {chosen.port}): using {chosen.url}")
    return chosen.url
