"""The phone-app subcommands: their arguments and their sources (``sensorserver``, ``phyphox``, ``udp``, ``sensorlogger``).

:mod:`client.cli` calls :func:`add_phone_parsers` while building its parser
and :func:`phone_source` for a subcommand in :data:`PHONE_COMMANDS`; all that
is specific to phone apps lives here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
from typing import AsyncIterator, Callable

from gravity_led.daemon.protocol import Vector
from gravity_led.daemon.urls import local_addresses, url_for
from gravity_led.daemon.wording import count

from . import EXIT_USAGE, ClientError
from .formats import ANDROID_GRAVITY, DEFAULT_OSC_ADDRESSES, FORMATS, Reading
from .link import backoff_delay
from .live import View
from .phones import PHYPHOX_BUFFERS, NotAnswering, phyphox_bases, phyphox_source, sensorserver_source, sensorserver_url
from .receivers import parse_listen, sensorlogger_source, udp_source
from .sources import HOLD_S, keepalive

__all__ = ["PHONE_COMMANDS", "add_phone_parsers", "phone_source"]

PHONE_COMMANDS = ("sensorserver", "phyphox", "udp", "sensorlogger")
UDP_DEFAULT_PORT = 5555
SENSORLOGGER_DEFAULT_PORT = 8000

Add = Callable[..., argparse.ArgumentParser]
Options = Callable[[argparse.ArgumentParser], None]


def _buffers(text: str) -> tuple[str, str, str]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if len(names) != 3:
        raise argparse.ArgumentTypeError(f"{text!r}: give three buffer names, x,y,z")
    return names  # type: ignore[return-value]


def _columns(text: str) -> tuple[int, int, int]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r}: give three positions counted from 1, e.g. 4,5,6")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def _hold_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--hold",
        type=_seconds,
        default=HOLD_S,
        metavar="S",
        help=f"repeat the last reading for at most S seconds when the phone goes quiet, then let the LEDs "
        f"go dark (default: {HOLD_S:g})",
    )


def add_phone_parsers(add: Add, connection_options: Options, run_options: Options, *, positive: Callable[[str], float]) -> None:
    """Add the phone subcommands through ``add(name, help, description)`` from :mod:`client.cli`."""
    p = add(
        "sensorserver",
        "stream from the SensorServer Android app (WebSocket)",
        "Stream from the SensorServer Android app (github.com/umer0586/SensorServer): connects to "
        "ws://PHONE:8080/sensor/connect?type=SENSOR. Start the app's server on the phone first. A full "
        "ws:// URL is kept; with /sensors/connect?types=[...] only the --sensor messages are used.",
    )
    p.add_argument("phone", metavar="PHONE", help="phone address: IP, IP:PORT, or a full ws:// URL")
    p.add_argument("--sensor", default=ANDROID_GRAVITY, help=f"Android sensor type (default: {ANDROID_GRAVITY})")
    _hold_option(p)
    connection_options(p)
    run_options(p)

    p = add(
        "phyphox",
        "poll the phyphox app's remote access (HTTP)",
        "Poll phyphox's remote access (the 'Acceleration with g' experiment, 'Allow remote access' in its menu). "
        "Starts the measurement if it is not running; sends nothing while it is paused. Without a port, tries "
        "port 80 (iPhone) then 8080 (Android).",
    )
    p.add_argument("phone", metavar="PHONE", help="phone address: IP, IP:PORT, or the http:// URL phyphox shows")
    p.add_argument("--rate", type=positive, default=20.0, metavar="HZ", help="polls per second (default: 20)")
    p.add_argument(
        "--buffers",
        type=_buffers,
        default=PHYPHOX_BUFFERS,
        metavar="X,Y,Z",
        help=f"names of the x, y, z buffers (default: {','.join(PHYPHOX_BUFFERS)})",
    )
    p.add_argument(
        "--time-buffer",
        default="acc_time",
        metavar="NAME",
        help="the experiment's time buffer, for reading every sample exactly once ('' for none; default: acc_time)",
    )
    _hold_option(p)
    connection_options(p)
    run_options(p)

    p = add(
        "udp",
        "receive datagrams from phone apps: CSV (HyperIMU, Sensorstream), JSON (SensaGram, ZIG SIM), OSC",
        "Receive datagrams pushed by phone apps. Each datagram's format is detected: OSC when it starts with "
        "'/' or '#bundle', JSON when with '{', else CSV (Sensorstream IMU+GPS recognised by its sensor ids). "
        "docs/phones.md gives the exact reading rule of each.",
    )
    p.add_argument("--listen", default=f"0.0.0.0:{UDP_DEFAULT_PORT}", metavar="HOST:PORT", help=f"where to listen (default: 0.0.0.0:{UDP_DEFAULT_PORT})")
    p.add_argument("--format", choices=FORMATS, default="auto", help="force one format instead of detecting it per datagram")
    p.add_argument(
        "--columns",
        type=_columns,
        metavar="I,J,K",
        help="CSV with several sensors per line (HyperIMU): the positions of gravity's x, y, z among the values, "
        "counted from 1 after the timestamp and MAC address (e.g. 4,5,6 when the gyroscope comes first); "
        "plain CSV only (Sensorstream: --sensor)",
    )
    p.add_argument(
        "--sensor",
        metavar="NAME",
        help="JSON: the Android sensor type (default: android.sensor.gravity) or ZIG SIM key (default: gravity); "
        "Sensorstream: the sensor id (default: 83 gravity, else 3 accelerometer)",
    )
    p.add_argument(
        "--osc-address",
        action="append",
        metavar="PATTERN",
        help=f"OSC address pattern of the gravity messages, * and ? allowed; repeatable (default: {' '.join(DEFAULT_OSC_ADDRESSES)})",
    )
    _hold_option(p)
    connection_options(p)
    run_options(p)

    p = add(
        "sensorlogger",
        "receive the Sensor Logger app's HTTP push (iOS and Android)",
        "Receive Sensor Logger's HTTP push (gear icon on the Logger page, HTTP Push on, push URL "
        "http://THIS-MACHINE:PORT/). Uses the newest gravity sample of each batch (Android's total "
        "acceleration when gravity is off). Every POST is answered 200 at once.",
    )
    p.add_argument(
        "--listen",
        default=f"0.0.0.0:{SENSORLOGGER_DEFAULT_PORT}",
        metavar="HOST:PORT",
        help=f"where to listen (default: 0.0.0.0:{SENSORLOGGER_DEFAULT_PORT})",
    )
    _hold_option(p)
    connection_options(p)
    run_options(p)


def _netloc(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reachable(host: str) -> list[str]:
    """The addresses to give the phone app: this machine's LAN ones (as the daemon logs them) for a wildcard."""
    if host in ("0.0.0.0", "::"):
        return local_addresses(ipv6=host == "::") or [host]
    return [host]


async def until_it_answers(
    make: Callable[[], AsyncIterator[Vector | None]], *, max_retries: int | None, notify: Callable[[str], None]
) -> AsyncIterator[Vector | None]:
    """The phone app's stream, started again while the app does not answer (its server not started yet,
    the phone waking up): up to ``max_retries`` times in a row, or until Ctrl-C / --duration (None),
    with the daemon's backoff. Said once, not on every attempt."""
    failures = 0
    while True:
        try:
            async with contextlib.aclosing(make()) as stream:  # type: ignore[type-var]
                async for v in stream:
                    failures = 0
                    yield v
            return
        except NotAnswering as e:
            if max_retries is not None and failures >= max_retries:
                if failures == 0:
                    raise
                raise ClientError(f"{e}; gave up after {count(failures + 1, 'attempt')}") from None
            failures += 1
            if failures == 1:
                notify(f"{e}; retrying" + (" (Ctrl-C to stop)" if max_retries is None else ""))
            await asyncio.sleep(backoff_delay(failures))


def phone_source(args: argparse.Namespace, view: View) -> Callable[[], AsyncIterator[Vector]]:
    """The source factory of a phone subcommand, built after checking its arguments."""
    cmd, hold_s = args.command, args.hold
    if cmd == "sensorserver":
        sensorserver_url(args.phone, args.sensor)  # a bad address or URL is a usage error before anything connects
        return lambda: keepalive(
            until_it_answers(
                lambda: sensorserver_source(args.phone, sensor=args.sensor, warn=view.warn), max_retries=args.max_retries, notify=view.event
            ),
            hold_s=hold_s,
        )
    if cmd == "phyphox":
        phyphox_bases(args.phone)  # likewise
        time_buffer = args.time_buffer or None
        return lambda: keepalive(
            until_it_answers(
                lambda: phyphox_source(args.phone, rate_hz=args.rate, buffers=args.buffers, time_buffer=time_buffer, notify=view.event),
                max_retries=args.max_retries,
                notify=view.event,
            ),
            hold_s=hold_s,
        )
    if cmd == "udp":
        host, port = parse_listen(args.listen, UDP_DEFAULT_PORT)
        try:
            reading = Reading(
                format=args.format,
                columns=args.columns,
                sensor=args.sensor,
                osc_addresses=tuple(args.osc_address) if args.osc_address else DEFAULT_OSC_ADDRESSES,
            )
        except ValueError as e:
            raise ClientError(str(e), EXIT_USAGE) from None
        return lambda: keepalive(
            udp_source(
                host, port, reading=reading, warn=view.warn,
                on_listening=lambda addr: view.event(
                    f"listening for UDP on {_netloc(addr)}: in the app, send to {' or '.join(_reachable(addr[0]))}, port {addr[1]}"
                ),
            ),
            hold_s=hold_s,
        )  # fmt: skip
    if cmd == "sensorlogger":
        host, port = parse_listen(args.listen, SENSORLOGGER_DEFAULT_PORT)
        return lambda: keepalive(
            sensorlogger_source(
                host, port, warn=view.warn,
                on_listening=lambda addr: view.event(
                    f"listening for Sensor Logger's HTTP push on {_netloc(addr)}: push URL "
                    + " or ".join(url_for(a, addr[1], tls=False) for a in _reachable(addr[0]))
                ),
            ),
            hold_s=hold_s,
        )  # fmt: skip
    raise AssertionError(cmd)
