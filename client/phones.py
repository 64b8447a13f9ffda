"""Phone app sources: SensorServer (WebSocket), phyphox (HTTP polling), UDP CSV (HyperIMU and friends).

Each source raises :class:`ClientError` with one plain sentence when the
phone side fails, since the user can only fix it on the phone.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from daemon.protocol import NUMBER_RE, FrameError, Vector, make_vector

from . import EXIT_USAGE, ClientError
from .pacing import Pacer

__all__ = [
    "PHYPHOX_BUFFERS",
    "SENSORSERVER_CLOSE_CODES",
    "parse_datagram",
    "phone_url",
    "phyphox_source",
    "sensorserver_source",
    "udp_source",
]

PHONE_PORT = 8080
"""Both SensorServer and phyphox listen on 8080 by default."""

SENSORSERVER_CLOSE_CODES = {
    4001: "the phone has no such sensor (try --sensor android.sensor.accelerometer)",
    4002: "SensorServer did not recognise the request path",
    4003: "SensorServer needs a sensor type in the request",
    4004: "SensorServer was stopped on the phone",
    4005: "the connection was closed on the phone",
}
"""Close codes from SensorServer's SensorWebSocketServer (umer0586/SensorServer)."""

PHYPHOX_BUFFERS = ("accX", "accY", "accZ")
"""Buffers of phyphox's "Acceleration with g" experiment."""


def phone_url(phone: str, scheme: str, path: str = "") -> str:
    """``PHONE``, ``PHONE:PORT`` or a full URL -> a URL with the app's default port and ``path``."""
    if "://" in phone:
        return phone
    if phone.startswith("["):
        host = phone if "]:" in phone else f"{phone}:{PHONE_PORT}"
    elif phone.count(":") > 1:  # a bare IPv6 address
        host = f"[{phone}]:{PHONE_PORT}"
    elif ":" in phone:
        host = phone
    else:
        host = f"{phone}:{PHONE_PORT}"
    return f"{scheme}://{host}{path}"


def _unreachable(what: str, url: str, err: BaseException) -> ClientError:
    if isinstance(err, socket.gaierror):
        reason = "the phone's name does not resolve"
    elif isinstance(err, ConnectionRefusedError):
        reason = "connection refused: is the app's server started?"
    elif isinstance(err, (TimeoutError, asyncio.TimeoutError)):
        reason = "no answer: is the phone on the same network?"
    else:
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return ClientError(f"{what} at {url} is not answering ({reason})")


# --------------------------------------------------------------------------- SensorServer


async def sensorserver_source(
    phone: str, *, sensor: str = "android.sensor.gravity", open_timeout_s: float = 5.0
) -> AsyncIterator[Vector]:
    """Gravity readings pushed by SensorServer, one JSON message per sensor event."""
    base = phone_url(phone, "ws")
    parts = urllib.parse.urlsplit(base)
    path = parts.path if parts.path not in ("", "/") else "/sensor/connect"
    query = parts.query or urllib.parse.urlencode({"type": sensor})
    url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, query, ""))
    try:
        ws = await connect(url, open_timeout=open_timeout_s, compression=None, close_timeout=1)
    except InvalidURI:
        raise ClientError(f"{phone!r} is not a phone address or ws:// URL", EXIT_USAGE) from None
    except (OSError, TimeoutError) as e:
        raise _unreachable("SensorServer", url, e) from None
    except InvalidHandshake as e:
        raise ClientError(f"{url} does not speak SensorServer's WebSocket protocol ({e})") from None
    async with ws:
        try:
            async for message in ws:
                v = _sensorserver_vector(message)
                if v is not None:
                    yield v
        except ConnectionClosed:
            pass
    rcvd = ws.close_code
    meaning = SENSORSERVER_CLOSE_CODES.get(rcvd or 0)
    if meaning:
        raise ClientError(f"SensorServer closed the connection: {meaning} (code {rcvd})")
    raise ClientError(f"SensorServer at {url} closed the connection (code {rcvd})")


def _sensorserver_vector(message: str | bytes) -> Vector | None:
    """``{"values": [x, y, z], ...}`` -> Vector; None for anything else (never fatal)."""
    try:
        values = json.loads(message)["values"]
        return make_vector(float(values[0]), float(values[1]), float(values[2]))
    except (ValueError, KeyError, IndexError, TypeError):
        return None


# --------------------------------------------------------------------------- phyphox


@dataclass
class _Phyphox:
    """A tiny blocking HTTP client for phyphox's remote access, run in a thread."""

    base: str
    timeout_s: float

    def get(self, path: str) -> dict:
        url = self.base.rstrip("/") + path
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
                body = resp.read(1 << 20)
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


def _phyphox_vector(data: dict, buffers: tuple[str, str, str]) -> Vector | None:
    """The newest value of each buffer; None while a buffer is empty or holds ``null``."""
    try:
        values = [data["buffer"][name]["buffer"][-1] for name in buffers]
        return make_vector(*map(float, values))
    except (KeyError, IndexError, TypeError, ValueError):
        return None


async def phyphox_source(
    phone: str,
    *,
    rate_hz: float = 20.0,
    buffers: tuple[str, str, str] = PHYPHOX_BUFFERS,
    timeout_s: float = 2.0,
) -> AsyncIterator[Vector]:
    """Poll phyphox's ``/get`` at ``rate_hz``, starting the experiment first if it is not measuring."""
    api = _Phyphox(phone_url(phone, "http"), timeout_s)
    query = "/get?" + "&".join(urllib.parse.quote(b) for b in buffers)
    data = await asyncio.to_thread(api.get, query)
    missing = [b for b in buffers if b not in data.get("buffer", {})]
    if missing:
        raise ClientError(
            f"the phyphox experiment has no buffer {missing[0]!r}; open 'Acceleration with g' or pass --buffers"
        )
    if not data.get("status", {}).get("measuring", False):
        await asyncio.to_thread(api.get, "/control?cmd=start")
    pacer = Pacer(rate_hz)
    while True:
        await pacer.tick()
        data = await asyncio.to_thread(api.get, query)
        v = _phyphox_vector(data, buffers)
        if v is not None:
            yield v


# --------------------------------------------------------------------------- UDP

_FIELD_SPLIT = re.compile(r"[,;\s]+")
_NUMBER = NUMBER_RE  # the daemon's own number syntax
_TIMESTAMP = re.compile(r"\d{10,}")


def parse_datagram(data: bytes) -> list[Vector]:
    """The vectors in one datagram, by the rule documented in the README.

    Each line is one reading.  Fields are separated by commas, semicolons
    and/or whitespace.  Leading fields that are not numbers (a device name)
    are ignored; from the first number on, the run of consecutive numbers
    counts.  If the first of them is a whole number of at least 10 digits
    (a Unix time in s, ms or ns; no gravity reading looks like that), it is
    a timestamp and skipped.  The next three numbers are x, y, z; the rest
    (other sensors) are ignored.  Raises :class:`FrameError` if no line
    holds a valid vector.
    """
    text = data.decode("utf-8", errors="replace")
    vectors: list[Vector] = []
    error: FrameError | None = None
    for line in text.splitlines():
        fields = [f for f in _FIELD_SPLIT.split(line.strip()) if f]
        if not fields:
            continue
        numbers: list[str] = []
        for f in fields:
            if _NUMBER.fullmatch(f):
                numbers.append(f)
            elif numbers:
                break
        if numbers and _TIMESTAMP.fullmatch(numbers[0]):
            numbers = numbers[1:]
        if len(numbers) < 3:
            error = FrameError("wrong_count", f"expected at least 3 numbers, got {len(numbers)}")
            continue
        try:
            vectors.append(make_vector(*(float(n) for n in numbers[:3])))
        except FrameError as e:
            error = e
    if not vectors:
        raise error or FrameError("empty", "the datagram is empty")
    return vectors


def parse_listen(spec: str, default_port: int) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT``, ``PORT`` or ``HOST`` -> (host, port)."""
    host, sep, port = spec.rpartition(":")
    if not sep:
        host, port = ("", spec) if spec.isdigit() else (spec, str(default_port))
    host = host.strip("[]") or "0.0.0.0"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ClientError(f"--listen {spec!r} is not HOST:PORT", EXIT_USAGE)
    return host, int(port)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, queue: asyncio.Queue[bytes]) -> None:
        self.queue = queue

    def datagram_received(self, data: bytes, addr: object) -> None:
        if self.queue.qsize() < 10_000:  # a flood drops datagrams instead of eating memory
            self.queue.put_nowait(data)


async def udp_source(
    host: str,
    port: int,
    *,
    warn: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
    on_listening: Callable[[tuple[str, int]], None] | None = None,
) -> AsyncIterator[Vector]:
    """Vectors from CSV datagrams as they arrive; bad datagrams are reported (first, then every 100th)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        transport, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(queue), local_addr=(host, port), family=family)
    except OSError as e:
        raise ClientError(f"cannot listen for UDP on {host}:{port} ({e.strerror or e})") from None
    if on_listening is not None:
        on_listening(transport.get_extra_info("sockname")[:2])
    bad = 0
    try:
        while True:
            data = await queue.get()
            try:
                vectors = parse_datagram(data)
            except FrameError as e:
                bad += 1
                if bad == 1 or bad % 100 == 0:
                    shown = data[:60].decode("utf-8", errors="replace")
                    warn(f"bad UDP datagram #{bad} {shown!r}: {e.message}; skipped")
                continue
            for v in vectors:
                yield v
    finally:
        transport.close()
