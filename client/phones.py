"""Phone apps the client connects to: SensorServer (WebSocket) and phyphox (HTTP polling).

Reading what the apps send is :mod:`client.formats` (pure); this module only
moves bytes.  Each source raises :class:`ClientError` with one plain sentence
when the phone side fails, since the user can only fix it on the phone.
The receivers the phone pushes to (UDP, Sensor Logger) are :mod:`client.receivers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from gravity_led.daemon.protocol import Vector

from . import EXIT_USAGE, ClientError
from .badinput import BadInputReport
from .formats import ANDROID_GRAVITY, PhyphoxReader, read_sensorserver
from .pacing import Pacer
from .receivers import read_each

__all__ = [
    "NotAnswering",
    "PHYPHOX_BUFFERS",
    "PHYPHOX_PORTS",
    "SENSORSERVER_CLOSE_CODES",
    "phone_url",
    "phyphox_bases",
    "phyphox_source",
    "sensorserver_source",
    "sensorserver_url",
]

SENSORSERVER_PORT = 8080
PHYPHOX_PORTS = (80, 8080)
"""phyphox on iOS serves remote access on port 80 (8080 only when 80 is taken); Android uses 8080."""

SENSORSERVER_CLOSE_CODES = {
    4001: "the phone has no such sensor (try --sensor android.sensor.accelerometer)",
    4002: "it does not know the request path (use /sensor/connect or /sensors/connect)",
    4003: "it needs a sensor type in the request (?type=... or ?types=[...])",
    4004: "it was stopped on the phone",
    4005: "the connection was closed on the phone",
    4006: 'the types list in the URL is not a valid JSON array (types=["android.sensor.gravity","android.sensor.accelerometer"])',
    4007: "/sensors/connect needs at least two sensor types (for one, use /sensor/connect?type=...)",
    4008: "the request names no sensor type",
    4009: "it lacks a permission on the phone: allow it in the phone's app settings",
}
"""Close codes of SensorServer's SensorWebSocketServer.kt (umer0586/SensorServer), in plain words."""

SENSORSERVER_PATHS = ("/sensor/connect", "/sensors/connect")
"""The app lower-cases the path before matching, so any case works."""

PHYPHOX_BUFFERS = ("accX", "accY", "accZ")
"""Buffers of phyphox's "Acceleration with g" experiment; its time buffer is ``acc_time``."""
PHYPHOX_TIME_BUFFER = "acc_time"


def _split_host(phone: str) -> tuple[str, int | None]:
    """``HOST``, ``HOST:PORT``, ``[V6]``, ``[V6]:PORT`` or a bare IPv6 address -> (netloc host, port)."""
    if phone.startswith("["):
        host, _, port = phone.partition("]")
        host += "]"
        port = port.lstrip(":")
    elif phone.count(":") > 1:
        host, port = f"[{phone}]", ""
    else:
        host, _, port = phone.partition(":")
    if port and not port.isdigit():
        raise ClientError(f"{phone!r} is not a phone address (HOST or HOST:PORT)", EXIT_USAGE)
    return host, int(port) if port else None


def phone_url(phone: str, scheme: str, path: str = "", *, default_port: int = SENSORSERVER_PORT) -> str:
    """``PHONE``, ``PHONE:PORT`` or a full URL -> a URL with the app's default port and ``path``."""
    if "://" in phone:
        return phone
    host, port = _split_host(phone)
    return f"{scheme}://{host}:{port or default_port}{path}"


class NotAnswering(ClientError):
    """The phone app does not answer at ``url`` (so another port may): one sentence with the ``reason``."""

    def __init__(self, what: str, url: str, reason: str) -> None:
        super().__init__(f"{what} at {url} is not answering ({reason})")
        self.reason = reason


def _unreachable(what: str, url: str, err: BaseException) -> NotAnswering:
    if isinstance(err, socket.gaierror):
        reason = "the phone's name does not resolve"
    elif isinstance(err, ConnectionRefusedError):
        reason = "connection refused: is the app's server started?"
    elif isinstance(err, (TimeoutError, asyncio.TimeoutError)):
        reason = "no answer: is the phone on the same network?"
    else:
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return NotAnswering(what, url, reason)


# --------------------------------------------------------------------------- SensorServer


def sensorserver_url(phone: str, sensor: str = ANDROID_GRAVITY) -> str:
    """The WebSocket URL to open; a URL the user gave is kept, but must ask for ``sensor``."""
    parts = urllib.parse.urlsplit(phone_url(phone, "ws"))
    path = parts.path.lower()
    if path in ("", "/"):
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, SENSORSERVER_PATHS[0], urllib.parse.urlencode({"type": sensor}), ""))
    if path not in SENSORSERVER_PATHS:
        raise ClientError(f"{parts.path} is not a SensorServer sensor path: use /sensor/connect or /sensors/connect", EXIT_USAGE)
    query = urllib.parse.parse_qs(parts.query)
    if path == SENSORSERVER_PATHS[0]:
        asked = [t.lower() for t in query.get("type", [])]
    else:
        try:
            asked = [str(t).lower() for t in json.loads(query.get("types", ["[]"])[0])]
        except (ValueError, TypeError):
            asked = []  # the app explains a bad list with close code 4006
    if asked and sensor.lower() not in asked:
        raise ClientError(
            f"the URL asks SensorServer for {', '.join(asked)} but not {sensor}: add it, or name the one to use with --sensor",
            EXIT_USAGE,
        )
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


async def sensorserver_source(
    phone: str,
    *,
    sensor: str = ANDROID_GRAVITY,
    open_timeout_s: float = 5.0,
    warn: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
) -> AsyncIterator[Vector]:
    """Gravity readings pushed by SensorServer, one JSON message per sensor event.

    On ``/sensors/connect`` every message names its ``"type"``; only those of
    ``sensor`` are used.  Malformed messages are reported at a bounded rate.
    """
    url = sensorserver_url(phone, sensor)
    try:
        ws = await connect(url, open_timeout=open_timeout_s, compression=None, close_timeout=1, max_size=1 << 16)
    except InvalidURI:
        raise ClientError(f"{phone!r} is not a phone address or ws:// URL", EXIT_USAGE) from None
    except (OSError, TimeoutError) as e:
        raise _unreachable("SensorServer", url, e) from None
    except InvalidHandshake as e:
        raise ClientError(f"{url} does not speak SensorServer's WebSocket protocol ({e})") from None
    report = BadInputReport(what="SensorServer message", advice=f"the URL does not ask SensorServer for {sensor}")
    messages = read_each(ws.recv, lambda m: read_sensorserver(m, sensor=sensor), report, warn)
    try:
        async with contextlib.aclosing(messages):
            async for v in messages:
                yield v
    except ConnectionClosed:
        pass
    finally:
        # A normal close (1000) when the client stops; ``async with ws`` would say 1011 (internal error) to the phone.
        await ws.close()
    rcvd = ws.close_code
    meaning = SENSORSERVER_CLOSE_CODES.get(rcvd or 0)
    if meaning:
        raise ClientError(f"SensorServer closed the connection: {meaning} (code {rcvd})")
    raise ClientError(f"SensorServer at {url} closed the connection (code {rcvd})")


# --------------------------------------------------------------------------- phyphox


def phyphox_bases(phone: str) -> list[str]:
    """Base URLs to try in turn: the one given, or port 80 (iOS) then 8080 (Android) when none is."""
    if "://" in phone:
        return [phone.rstrip("/")]
    host, port = _split_host(phone)
    if port is not None:
        return [f"http://{host}:{port}"]
    return [f"http://{host}:{p}" for p in PHYPHOX_PORTS]


@dataclass
class _Phyphox:
    """A tiny blocking HTTP client for phyphox's remote access, run in a thread."""

    base: str
    timeout_s: float

    def get(self, path: str) -> dict:
        url = self.base.rstrip("/") + path
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
                body = resp.read(1 << 22)
        except urllib.error.HTTPError as e:
            raise ClientError(f"phyphox at {self.base} answered {path.split('?')[0]} with HTTP {e.code}") from None
        except urllib.error.URLError as e:
            raise _unreachable("phyphox", self.base, e.reason if isinstance(e.reason, BaseException) else e) from None
        except (OSError, TimeoutError) as e:
            raise _unreachable("phyphox", self.base, e) from None
        except ValueError:
            raise ClientError(f"{self.base!r} is not a phone address or http:// URL", EXIT_USAGE) from None
        try:
            data = json.loads(body)
        except ValueError:
            raise ClientError(f"{self.base} is not phyphox remote access (the answer is not JSON)") from None
        if not isinstance(data, dict):
            raise ClientError(f"{self.base} is not phyphox remote access (unexpected JSON)")
        return data


async def _first_answer(phone: str, reader: PhyphoxReader, timeout_s: float) -> tuple[_Phyphox, dict]:
    """The first ``/get``, trying each candidate port; one sentence naming them all if none answers."""
    failures: list[NotAnswering] = []
    for base in phyphox_bases(phone):
        api = _Phyphox(base, timeout_s)
        try:
            return api, await asyncio.to_thread(api.get, reader.query())
        except NotAnswering as e:
            failures.append(e)
    if len(failures) == 1:
        raise failures[0]
    raise NotAnswering("phyphox", " or ".join(phyphox_bases(phone)), failures[-1].reason)


async def phyphox_source(
    phone: str,
    *,
    rate_hz: float = 20.0,
    buffers: tuple[str, str, str] = PHYPHOX_BUFFERS,
    time_buffer: str | None = PHYPHOX_TIME_BUFFER,
    timeout_s: float = 2.0,
    notify: Callable[[str], None] = lambda msg: print(msg),
) -> AsyncIterator[Vector | None]:
    """Poll phyphox's ``/get`` at ``rate_hz``: every new sample once, nothing while it is not measuring
    (``None`` then, for :func:`client.sources.keepalive`: do not hold the last one).

    Starts the experiment once if it is not measuring when the client starts;
    a later pause is the user's: the client waits (the LEDs go dark) and
    resumes when the measurement does, saying so each time.
    """
    reader = PhyphoxReader(buffers, time_buffer)
    api, data = await _first_answer(phone, reader, timeout_s)
    missing = reader.missing(data)
    if missing:
        raise ClientError(f"the phyphox experiment has no buffer {missing[0]!r}; open 'Acceleration with g' or pass --buffers")
    first, _ = reader.read(data)
    if not reader.measuring:
        await asyncio.to_thread(api.get, "/control?cmd=start")
        reader.measuring = None  # the next answer that measures is the start, not a resume
        notify("started the phyphox measurement")
    for v in first:
        yield v
    pacer = Pacer(rate_hz)
    lost = False
    while True:
        await pacer.tick()
        try:
            answer = await asyncio.to_thread(api.get, reader.query())
        except ClientError as e:
            if e.exit_code == EXIT_USAGE:
                raise
            if not lost:  # out of Wi-Fi, app in the background: wait for it (the LEDs go dark)
                notify(f"{e}; trying again")
                lost = True
            continue
        if lost:
            notify("phyphox answers again")
            lost = False
        vectors, note = reader.read(answer)
        if note:
            notify(note)
        if not reader.measuring:
            yield None  # paused, or the timed run ended: no --hold, the LEDs go dark at the daemon's stale timeout
        for v in vectors:
            yield v
