"""Receivers the phone pushes to: UDP datagrams (many apps) and Sensor Logger's HTTP push.

Sockets only: what a datagram or a POST body means is :mod:`client.formats`.
Bad input is counted and reported at a bounded rate (:class:`BadInputReport`),
never raised: a stranger on the LAN cannot stop the client or move the LEDs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, AsyncIterator, Awaitable, Callable

from gravity_led.daemon.protocol import FrameError, Vector

from . import EXIT_USAGE, ClientError
from .badinput import BadInputReport
from .formats import Reading, SensorLoggerReader, read_datagram, sensor_names

__all__ = ["MAX_POST_BYTES", "parse_listen", "read_each", "sensorlogger_source", "udp_source"]

QUEUE_LIMIT = 256
"""Datagrams waiting to be read: a flood drops the rest instead of eating memory (at most 256 x 64 KiB
= 16 MiB; a phone sends at most a few hundred a second, each read as it comes)."""
BODY_QUEUE_LIMIT = 4
"""POST bodies waiting to be read (up to MAX_POST_BYTES each, so 32 MiB at most); more are dropped.
Sensor Logger posts one batch at a time."""
MAX_POST_BYTES = 8 << 20
"""Sensor Logger batches every enabled sensor; 8 MiB is minutes of them.  Bigger bodies get 413."""
MAX_HTTP_CONNECTIONS = 16
"""One phone needs one or two; more are closed at once, so a flood cannot start a thread each."""

UDP_ADVICE = "turn on Gravity in the app (or pick the sensor with --sensor, the OSC address with --osc-address)"
SENSORLOGGER_ADVICE = "turn on Gravity in Sensor Logger's sensors"

Warn = Callable[[str], None]
Inputs = asyncio.Queue[bytes | tuple[str, bytes]]
"""What a socket hands the reader: a datagram or body, or ``(reason, sample)`` for input refused at the socket."""


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def parse_listen(spec: str, default_port: int) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT``, ``:PORT``, ``PORT``, ``HOST`` or a bare IPv6 address -> (host, port)."""
    host, sep, port = spec.rpartition(":")
    if (spec.count(":") > 1 and not spec.startswith("[")) or spec.endswith("]"):
        host, port = spec, str(default_port)  # '::1' is an address, not host ':' and port 1
    elif not sep:
        host, port = ("", spec) if spec.isdigit() else (spec, str(default_port))
    host = host.strip("[]") or "0.0.0.0"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ClientError(f"--listen {spec!r} is not HOST:PORT", EXIT_USAGE)
    return host, int(port)


async def read_each(
    get: Callable[[], Awaitable[Any]], read: Callable[[Any], list[Vector]], report: BadInputReport, warn: Warn
) -> AsyncIterator[Vector]:
    """Read each input ``get`` returns (a datagram, a body, a WebSocket message); bad ones, and the
    ``(reason, sample)`` notes of input refused at the socket, are reported at ``report``'s rate;
    input that keeps coming without gravity, once.

    ``get`` is awaited under a timeout when a summary is due, so it must be safe to cancel
    (``asyncio.Queue.get`` and websockets' ``recv`` are); what it raises ends the iteration.
    """
    while True:
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the result and swallows a
            # cancellation that comes as ``get`` completes (under a flood, often), and the client hangs at exit.
            async with asyncio.timeout(report.wait_s(time.monotonic())):
                item = await get()
        except TimeoutError:
            said = report.flush(time.monotonic())
        else:
            if isinstance(item, tuple):
                said = report.add(time.monotonic(), *item)
            else:
                try:
                    vectors = read(item)
                except FrameError as e:
                    said = report.add(time.monotonic(), e.message, item)
                else:
                    if vectors:
                        report.used()
                        for v in vectors:
                            yield v
                        continue
                    # another sensor's reading: which one, for the sentence if none brings gravity
                    said = report.ignored(time.monotonic(), sensor_names(item) if report.wants_names else ())
        if said:
            warn(said)


# --------------------------------------------------------------------------- UDP


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, queue: Inputs) -> None:
        self.queue = queue

    def datagram_received(self, data: bytes, addr: object) -> None:
        if self.queue.qsize() < QUEUE_LIMIT:
            self.queue.put_nowait(data)


async def udp_source(
    host: str,
    port: int,
    *,
    reading: Reading = Reading(),
    warn: Warn = _stderr,
    on_listening: Callable[[tuple[str, int]], None] | None = None,
) -> AsyncIterator[Vector]:
    """Vectors from datagrams as they arrive (CSV, Sensorstream, JSON or OSC, per ``reading``)."""
    loop = asyncio.get_running_loop()
    queue: Inputs = asyncio.Queue()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        transport, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(queue), local_addr=(host, port), family=family)
    except OSError as e:
        raise ClientError(f"cannot listen for UDP on {host}:{port} ({e.strerror or e})") from None
    if on_listening is not None:
        on_listening(transport.get_extra_info("sockname")[:2])
    try:
        report = BadInputReport(what="UDP datagram", advice=UDP_ADVICE)
        reader = read_each(queue.get, lambda data: read_datagram(data, reading), report, warn)
        async with contextlib.aclosing(reader) as vectors:
            async for v in vectors:
                yield v
    finally:
        transport.close()


# --------------------------------------------------------------------------- Sensor Logger (HTTP push)


class _PushServer(ThreadingHTTPServer):
    daemon_threads = True
    bodies: Inputs
    loop: asyncio.AbstractEventLoop
    slots = threading.BoundedSemaphore(MAX_HTTP_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a peer that hangs up mid-request is not worth a traceback

    def put(self, item: bytes | tuple[str, bytes]) -> None:
        def put_now() -> None:
            if self.bodies.qsize() < BODY_QUEUE_LIMIT:
                self.bodies.put_nowait(item)

        try:
            self.loop.call_soon_threadsafe(put_now)
        except RuntimeError:  # the loop is closed: the client is stopping
            pass


class _PushHandler(BaseHTTPRequestHandler):
    """Any path, any method with a body: answer at once, hand the body to the event loop."""

    server: _PushServer
    protocol_version = "HTTP/1.1"  # keep-alive: Sensor Logger posts every batch period
    timeout = 30

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if length < 0:
            self._answer(411, b"Content-Length required\n", close=True)
            self.server.put(("the POST has no Content-Length (chunked bodies are not read)", b""))
            return
        if length > MAX_POST_BYTES:
            self._answer(413, b"too large\n", close=True)
            self.server.put((f"a POST of {length} bytes is over the {MAX_POST_BYTES >> 20} MiB limit", b""))
            return
        self._answer(200, b"ok\n")
        self.server.put(self.rfile.read(length))

    do_PUT = do_POST  # noqa: N815

    def do_GET(self) -> None:  # noqa: N802
        self._answer(200, b"gravity-led-client: POST Sensor Logger's push here\n")

    def _answer(self, code: int, body: bytes, *, close: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # no line per request: bad input is counted by the source instead


async def sensorlogger_source(
    host: str,
    port: int,
    *,
    warn: Warn = _stderr,
    on_listening: Callable[[tuple[str, int]], None] | None = None,
) -> AsyncIterator[Vector]:
    """The newest gravity sample of each batch Sensor Logger POSTs (any path), answered 200 at once;
    a batch older than one already applied is ignored (:class:`SensorLoggerReader`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server_class = type("PushServer", (_PushServer,), {"address_family": family, "slots": threading.BoundedSemaphore(MAX_HTTP_CONNECTIONS)})
    try:
        server = server_class((host, port), _PushHandler)
    except OSError as e:
        raise ClientError(f"cannot listen for HTTP on {host}:{port} ({e.strerror or e})") from None
    server.bodies = asyncio.Queue()
    server.loop = asyncio.get_running_loop()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="sensorlogger-http", daemon=True)
    thread.start()
    if on_listening is not None:
        on_listening(server.server_address[:2])
    try:
        report = BadInputReport(what="Sensor Logger POST", advice=SENSORLOGGER_ADVICE)
        reader = read_each(server.bodies.get, SensorLoggerReader().read, report, warn)
        async with contextlib.aclosing(reader) as vectors:
            async for v in vectors:
                yield v
    finally:
        await asyncio.to_thread(server.shutdown)
        server.server_close()
