"""What the daemon is advertised as over mDNS / DNS-SD, declared once.

The daemon itself never speaks mDNS: on a Pi, avahi-daemon owns port 5353
and advertises what a static service file in ``/etc/avahi/services`` names.
``deploy/install.sh`` writes that file with :func:`avahi_service_file` (run as
``python -m gravity_led.daemon.dnssd --config FILE``), and the client's
discovery (:mod:`gravity_led.client.discover`) reads the TXT record that
:func:`txt_record` defines, so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import sys
from typing import Mapping, Sequence
from xml.sax.saxutils import escape

from .protocol import PROTOCOL_VERSION

__all__ = ["SERVICE_TYPE", "WS_PATH", "avahi_service_file", "main", "txt_record", "web_service_type"]

SERVICE_TYPE = "_gravity-led._tcp"
"""The daemon's own DNS-SD service type: a WebSocket the client streams to."""
WS_PATH = "/"
"""Where the daemon takes WebSocket connections (and serves the phone's page)."""
INSTANCE_NAME = "gravity-led on %h"
"""The instance name; Avahi replaces ``%h`` with the host name (and adds " #2" on a clash)."""


def txt_record(*, tls: bool) -> dict[str, str]:
    """The TXT record of ``_gravity-led._tcp``: the WebSocket's path, ``tls=1``
    for ``wss://`` (``0``: ``ws://``), and the wire protocol's version."""
    return {"path": WS_PATH, "tls": "1" if tls else "0", "protocol": str(PROTOCOL_VERSION)}


def web_service_type(*, tls: bool) -> str:
    """The page's DNS-SD type: ``_http._tcp``, or ``_https._tcp`` with TLS
    (a browser that follows ``_http._tcp`` opens ``http://``, which a TLS
    port does not answer)."""
    return "_https._tcp" if tls else "_http._tcp"


def _service(kind: str, port: int, txt: Mapping[str, str]) -> list[str]:
    return [
        "  <service>",
        f"    <type>{kind}</type>",
        f"    <port>{port}</port>",
        *(f"    <txt-record>{escape(f'{k}={v}')}</txt-record>" for k, v in txt.items()),
        "  </service>",
    ]


def avahi_service_file(*, port: int, tls: bool) -> str:
    """An Avahi static service file (avahi.service(5)) advertising the daemon
    on ``port``: its page over HTTP(S) and its WebSocket as ``_gravity-led._tcp``."""
    if not 0 < port < 65536:
        raise ValueError(f"port {port} cannot be advertised (1-65535)")
    lines = [
        "<?xml version=\"1.0\" standalone='no'?>",
        '<!DOCTYPE service-group SYSTEM "avahi-service.dtd">',
        "<!-- Written by gravity-led's deploy/install.sh from the daemon's configuration: run it",
        "     again after changing the port or the certificate; it removes this file when it uninstalls. -->",
        "<service-group>",
        f'  <name replace-wildcards="yes">{escape(INSTANCE_NAME)}</name>',
        *_service(SERVICE_TYPE, port, txt_record(tls=tls)),
        *_service(web_service_type(tls=tls), port, {"path": WS_PATH}),
        "</service-group>",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the Avahi service file for the daemon's configuration."""
    from .config import ConfigError, load_config

    parser = argparse.ArgumentParser(prog="python -m gravity_led.daemon.dnssd", description=main.__doc__)
    parser.add_argument("--config", metavar="FILE", help="the daemon's TOML configuration (default: its usual one)")
    parser.add_argument("--port", type=int, metavar="PORT", help="advertise this port instead of the configuration's (a systemd socket's)")
    args = parser.parse_args(argv)
    try:
        cfg, _ = load_config(argparse.Namespace(config=args.config), {})
        text = avahi_service_file(port=args.port or cfg.port, tls=cfg.tls)
    except (ConfigError, ValueError) as e:
        print(f"gravity-led: no Avahi service file: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
