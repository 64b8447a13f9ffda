"""The connection to the daemon: connect, subscribe to telemetry, come back after failures.

One :class:`Link` owns at most one WebSocket at a time.  :meth:`Link.run`
loops forever: connect, confirm we hold the LEDs (the daemon closes a second
client with 1013 right after the handshake), read telemetry until the
connection ends, then wait an exponential backoff with jitter and try again.
Senders call :meth:`Link.send`, which drops the frame while disconnected
instead of queueing stale tilt.
"""

from __future__ import annotations

import asyncio
import enum
import os
import random
import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from typing import Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import CloseCode
from websockets.uri import parse_uri

from gravity_led.daemon.protocol import (
    TLS_ONLY_ANSWER,
    BUSY_CLOSE_CODE,
    DEFAULT_PORT,
    FrameError,
    StateMessage,
    Vector,
    decode_server_message,
    encode_binary,
    encode_subscribe,
    encode_text,
)

from gravity_led.daemon.wording import count

from . import EXIT_BUSY, EXIT_ERROR, EXIT_USAGE, ClientError

__all__ = ["BACKOFF_CAP_S", "Link", "LinkOptions", "State", "backoff_delay", "normalize_url"]

BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 5.0
CONFIRM_S = 0.5
"""How long a fresh connection must survive (or get telemetry) before it counts as holding the LEDs."""


def backoff_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempt`` (1-based): doubling from 0.25 s, capped at 5 s, with jitter.

    "Equal jitter": half the step is fixed so retries never hammer, half is
    random so many clients restarting together do not retry in lockstep.
    """
    step = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(attempt - 1, 0))
    return step / 2 + (rng or random).uniform(0, step / 2)


def normalize_url(url: str, *, tls: bool = False) -> str:
    """Accept ``host``, ``host:port`` or a full ``ws://``/``wss://`` URL; raise ClientError otherwise.

    Without a port, the daemon's (5678), for ``wss://`` too: the daemon serves
    TLS on its own port.  A bare host is ``wss://`` when ``tls`` (the user gave
    ``--cafile`` or ``--insecure``), else ``ws://``."""
    url = url.strip()
    if "://" not in url:
        url = ("wss://" if tls else "ws://") + url
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme in ("http", "https"):
            raise ClientError(f"{url!r} is a web page address; use ws:// or wss:// for the daemon", EXIT_USAGE)
        port = parts.port
        parsed = parse_uri(url)
    except (InvalidURI, ValueError):
        raise ClientError(f"{url!r} is not a valid ws:// or wss:// URL", EXIT_USAGE) from None
    if not parsed.host:
        raise ClientError(f"{url!r} has no host name", EXIT_USAGE)
    if port is None:
        netloc = parts.netloc + f":{DEFAULT_PORT}"
        url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url


class State(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BUSY = "busy"
    DOWN = "down"
    CLOSED = "closed"


@dataclass(frozen=True, kw_only=True)
class LinkOptions:
    url: str
    binary: bool = False
    max_retries: int | None = None
    """Failed attempts in a row before giving up; None = forever."""
    telemetry_hz: float | None = 10.0
    """Ask the daemon for state this often (None = do not subscribe)."""
    cafile: str | None = None
    insecure: bool = False
    token: str | None = None
    open_timeout_s: float = 5.0

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.url.startswith("wss://"):
            return None
        try:
            ctx = ssl.create_default_context(cafile=self.cafile)
        except FileNotFoundError:
            raise ClientError(f"the CA file {self.cafile} does not exist") from None
        except (ssl.SSLError, OSError) as e:
            raise ClientError(f"the CA file {self.cafile} is not usable ({e})") from None
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


@dataclass
class Telemetry:
    """The daemon's last ``state`` message, as far as the live view cares."""

    right: float | None = None
    left: float | None = None
    received_at: float = 0.0
    last: StateMessage | None = None


class Link:
    """One self-healing connection; see the module docstring."""

    def __init__(self, opts: LinkOptions, *, notify: Callable[[str], None] = lambda msg: None) -> None:
        self.opts = opts
        self.notify = notify
        self.state = State.CONNECTING
        self.ws: ClientConnection | None = None
        self.telemetry = Telemetry()
        self.sent = 0
        self.dropped = 0
        self.connections = 0
        self.rejected: dict[str, int] = {}
        self.last_error: str | None = None
        self.connected = asyncio.Event()
        self._ssl = opts.ssl_context()
        self._encode: Callable[[Vector], str | bytes] = encode_binary if opts.binary else encode_text
        self._problem: str | None = None
        self._problem_text = ""
        self._closing = False

    @property
    def problem(self) -> str:
        """The last connection problem in words ("the daemon at ... is not answering (connection refused)"), or ""."""
        return self._problem_text

    # ---- sending -----------------------------------------------------------

    async def send(self, v: Vector) -> bool:
        """Send ``v`` if connected; count it as dropped (and return False) otherwise."""
        ws = self.ws
        if ws is None:
            self.dropped += 1
            return False
        try:
            await ws.send(self._encode(v))
        except ConnectionClosed:
            self.dropped += 1
            return False
        self.sent += 1
        return True

    async def close(self) -> None:
        """Close the WebSocket cleanly (code 1000) and stop reconnecting."""
        self._closing = True
        self.state = State.CLOSED
        ws, self.ws = self.ws, None
        self.connected.clear()
        if ws is not None:
            await ws.close()

    # ---- connection loop ---------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.opts.token}"} if self.opts.token else {}

    async def run(self) -> None:
        """Connect and reconnect until :meth:`close`, or raise ClientError after ``max_retries``.

        ``max_retries`` N: after a failed attempt or a lost connection, at most
        N more attempts in a row (so N + 1 attempts in all to connect at first).
        """
        retries = 0
        after_loss = False
        while not self._closing:
            self.state = State.CONNECTING
            outcome = await self._one_connection(first=not after_loss)
            if self._closing:
                return
            if outcome == "held":  # then lost: a new streak of retries
                retries, after_loss = 0, True
            if self.opts.max_retries is not None and retries >= self.opts.max_retries:
                raise self._gave_up(outcome, retries, after_loss)
            retries += 1
            await asyncio.sleep(backoff_delay(retries))

    def _gave_up(self, outcome: str, retries: int, after_loss: bool) -> ClientError:
        attempts = retries if after_loss else retries + 1
        if self.opts.max_retries == 0:
            tail = "not retrying (--max-retries 0)"
        else:
            tail = f"gave up after {count(attempts, 'attempt')}" + (" to reconnect" if after_loss else "")
        if outcome == "busy":
            return ClientError(f"the LEDs are in use by another client ({self.opts.url}); {tail}", EXIT_BUSY)
        return ClientError(f"{self._problem_text}; {tail}", EXIT_ERROR)

    def _report(self, kind: str, message: str) -> None:
        """Tell the user about a problem once, not on every retry."""
        self._problem_text = message
        if kind != self._problem:
            self._problem = kind
            if self.opts.max_retries == 0:
                return  # the error that ends the run says it at once
            forever = self.opts.max_retries is None
            self.notify(message + ("; retrying (Ctrl-C to stop)" if forever else "; retrying"))

    async def _one_connection(self, *, first: bool) -> str:
        """One attempt: 'held' if we held the LEDs for a while, 'busy' or 'down' otherwise."""
        url = self.opts.url
        try:
            ws = await connect(
                url,
                ssl=self._ssl,
                additional_headers=self._headers(),
                open_timeout=self.opts.open_timeout_s,
                close_timeout=2,
                compression=None,
                max_queue=64,
                user_agent_header="gravity-led-client",
            )
        except socket.gaierror:
            host = urllib.parse.urlsplit(url).hostname
            if first:
                raise ClientError(f"cannot find the host {host!r} of {url}") from None
            self._report("dns", f"cannot find the host {host!r} right now")
            return "down"
        except ssl.SSLCertVerificationError as e:
            raise ClientError(
                f"the daemon's certificate is not trusted ({e.verify_message}); pass --cafile or --insecure"
            ) from None
        except InvalidStatus as e:
            code = e.response.status_code
            if code == 401 and not self.opts.token:
                raise ClientError(
                    "the daemon needs a token (HTTP 401): give --token-file (or set $GRAVITY_LED_TOKEN_FILE)"
                ) from None
            if code == 401:
                raise ClientError("the daemon refused the token (HTTP 401): give the right --token-file") from None
            if code == 403:
                raise ClientError(
                    "the daemon refused the connection (HTTP 403): this client's Origin header is not allowed"
                ) from None
            if code == 429:
                wait = e.response.headers.get("Retry-After", "a few")
                raise ClientError(
                    f"the daemon refused the connection (HTTP 429): too many wrong tokens came from this address; try again in {wait} s with the right --token-file"
                ) from None
            if code == 400 and url.startswith("ws://") and TLS_ONLY_ANSWER.encode() in (e.response.body or b""):
                raise ClientError(
                    f"the daemon at {url} uses TLS: use wss://{url.removeprefix('ws://')} (with --cafile or --insecure for its own certificate)"
                ) from None
            if code < 500:
                raise ClientError(f"{url} answered HTTP {code}, not a WebSocket: is it the gravity-led daemon?") from None
            self.state = State.DOWN
            self._report("http", f"the daemon at {url} answered HTTP {code}")
            return "down"
        except InvalidHandshake as e:
            # Often a daemon shutting down mid-handshake, or not a WebSocket server at all.
            self.state = State.DOWN
            tls_hint = "; if the daemon uses TLS (--certfile), the address starts with wss://" if url.startswith("ws://") else ""
            self._report("handshake", f"{url} did not complete a WebSocket handshake ({e}){tls_hint}")
            return "down"
        except (OSError, TimeoutError) as e:
            reason = "connection refused" if isinstance(e, ConnectionRefusedError) else (
                "no answer" if isinstance(e, TimeoutError) else (e.strerror or str(e))
            )
            self.state = State.DOWN
            self._report("down", f"the daemon at {url} is not answering ({reason})")
            return "down"
        try:
            return await self._serve(ws)
        finally:
            self.ws = None
            self.connected.clear()
            # Dropped, not closed by us: make sure the transport is released.
            if not self._closing:
                await ws.close()

    async def _serve(self, ws: ClientConnection) -> str:
        url = self.opts.url
        opened = time.monotonic()
        try:
            if self.opts.telemetry_hz:
                await ws.send(encode_subscribe(self.opts.telemetry_hz))
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns an answer that comes as
                # the link is cancelled and swallows the cancellation, so --duration and Ctrl-C hang.
                async with asyncio.timeout(CONFIRM_S):
                    first = await ws.recv()
            except TimeoutError:
                first = None
            self._problem = None
            self.connections += 1
            self.state = State.CONNECTED
            self.notify(f"connected to {url}" if self.connections == 1 else f"reconnected to {url}")
            self.ws = ws
            self.connected.set()
            if first is not None:
                self._on_message(first)
            async for message in ws:
                self._on_message(message)
        except ConnectionClosed:
            pass
        if self._closing:
            return "held"
        code = ws.close_code
        if code == BUSY_CLOSE_CODE and self.state is not State.CONNECTED:
            self.state = State.BUSY
            self._report("busy", "the LEDs are in use by another client")
            return "busy"
        was_connected = self.state is State.CONNECTED
        self.state = State.DOWN
        if code == CloseCode.POLICY_VIOLATION:
            raise ClientError(f"the daemon closed the connection: {ws.close_reason or 'policy violation'} (code {code})")
        if code == CloseCode.MESSAGE_TOO_BIG:
            raise ClientError(f"the daemon closed the connection because a frame was too big (code {code})")
        why = {CloseCode.GOING_AWAY: "the daemon is shutting down or restarting", CloseCode.SERVICE_RESTART: "the daemon is restarting"}.get(
            code or 0, f"the daemon closed the connection: {ws.close_reason} (code {code})" if ws.close_reason else f"the connection to the daemon was lost (code {code})"
        )
        self._problem = None
        self._report("lost", why)
        return "held" if was_connected or time.monotonic() - opened > CONFIRM_S else "down"

    def _on_message(self, message: str | bytes) -> None:
        try:
            msg = decode_server_message(message)
        except FrameError:
            return
        if isinstance(msg, StateMessage):
            t = self.telemetry
            t.right, t.left = msg.leds.right, msg.leds.left
            t.received_at = time.monotonic()
            t.last = msg
        else:
            self.last_error = msg.message
            n = self.rejected[msg.error] = self.rejected.get(msg.error, 0) + 1 + msg.suppressed
            if n == 1 + msg.suppressed:
                self.notify(f"the daemon rejected a frame: {msg.message}")


def env_url(default: str = "localhost") -> str:
    return os.environ.get("GRAVITY_LED_URL") or default
