"""Network helpers for the security, fuzz and fault tests: raw sockets that
speak just enough WebSocket to misbehave, and small real-client shortcuts.

Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
from contextlib import contextmanager
from typing import Iterator

import psutil
from websockets.sync.client import ClientConnection, connect

from tests.support.harness import tilt_text as text_frame  # noqa: F401 (the suite's one tilt helper)

ROOT_PATH = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def approx_leds(leds: tuple[float, float], want: tuple[float, float], tol: float = 1e-6) -> bool:
    return abs(leds[0] - want[0]) <= tol and abs(leds[1] - want[1]) <= tol


def leds_of(status: dict) -> tuple[float, float]:
    return status["leds"]["right"], status["leds"]["left"]


def want_duty(duty: float) -> tuple[float, float]:
    return (max(duty, 0.0), max(-duty, 0.0))


@contextmanager
def ws_client(url: str, **kwargs) -> Iterator[ClientConnection]:
    """A real (sync) websockets client; no compression unless asked."""
    kwargs.setdefault("compression", None)
    kwargs.setdefault("open_timeout", 5)
    kwargs.setdefault("close_timeout", 1)
    with connect(url, **kwargs) as ws:
        yield ws


def drive_and_check(daemon, duty: float, timeout: float = 5.0) -> None:
    """A new client connects, tilts, and the LEDs follow it (then it leaves)."""
    want = want_duty(duty)
    with ws_client(daemon.url) as ws:
        ws.send(text_frame(duty))
        daemon.wait_for(lambda s: approx_leds(leds_of(s), want), timeout)


# ---- raw WebSocket over a plain socket ---------------------------------------


def handshake_request(port: int, path: str = "/", headers: dict[str, str] | None = None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_http_head(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Bytes up to and including the blank line that ends an HTTP head."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf


def raw_ws(port: int, *, rcvbuf: int | None = None, headers: dict[str, str] | None = None) -> socket.socket:
    """A socket that completed a WebSocket handshake (status 101)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    sock.sendall(handshake_request(port, headers=headers))
    head = read_http_head(sock)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None) -> bytes:
    """One masked client-to-server frame (RFC 6455 section 5.2)."""
    mask = os.urandom(4) if mask is None else mask
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


TEXT, BINARY, CLOSE, PING = 0x1, 0x2, 0x8, 0x9


def tcp_closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """True once the peer closes (EOF or reset), reading and dropping any data."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except (socket.timeout, TimeoutError):
            return False
    return False


def rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


def connect_from(source: str, port: int, timeout: float = 5.0) -> socket.socket:
    """A TCP connection to the daemon from ``source`` (127.0.0.2, ...: another
    host on the LAN, as far as the daemon can tell)."""
    return socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))


def open_idle_connections(port: int, n: int, timeout: float = 15.0, *, sources: tuple[str, ...] = ("127.0.0.1",)) -> list[socket.socket]:
    """``n`` TCP connections opened at once (non-blocking connects), returned
    once each has connected or failed; they never send a byte.  They come
    from ``sources`` in turn."""
    import selectors

    socks = []
    sel = selectors.DefaultSelector()
    for i in range(n):
        s = socket.socket()
        s.bind((sources[i % len(sources)], 0))
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE)
    pending = len(socks)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.1):
            sel.unregister(key.fileobj)
            pending -= 1
    sel.close()
    for s in socks:
        s.setblocking(True)
    return socks
