"""The holder slot (one client at a time drives the LEDs), and the one way
its messages come in: :meth:`Holder.read`, one call per read of its socket
(daemon/wsadapter.py), with that read's messages.  Valid vectors go on to
the LED driver (daemon/driver.py), bad frames are counted, answered and
logged within their budgets (daemon/budgets.py), subscriptions go to the
client's telemetry (daemon/telemetry.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from .budgets import ErrorBudget, RejectLog
from .config import Config
from .mapping import Duties
from .protocol import BUSY_CLOSE_CODE, BUSY_REASON, FrameCounts, FrameError, LedLevels, StateMessage, Vector, encode_error, parse_frame
from .ratelog import RateLimitedLog
from .telemetry import Telemetry
from .wording import frame_counts

__all__ = ["ClientConnection", "ClientState", "Driver", "FrameRate", "Holder", "Valve"]

log = logging.getLogger("gravity_led")


class Valve(Protocol):
    """The valve on a connection's reads (daemon/driver.py's ``ReadValve``)."""

    def set(self, hold: bool) -> None: ...


class Driver(Protocol):
    """The LED driver (daemon/driver.py), as the holder uses it."""

    @property
    def duties(self) -> Duties: ...
    def attach(self, reads: Valve, *, peer: str) -> None: ...
    def release(self) -> None: ...
    def after_read(self, newest: Vector | None, vectors: int, now: float) -> None: ...


class ClientConnection(Protocol):
    """The holder's side of a client's connection (daemon/wsadapter.py)."""

    @property
    def peer(self) -> str: ...
    @property
    def superseded(self) -> int: ...
    @property
    def reads(self) -> Valve: ...
    def attach(self, sink: Holder) -> None: ...
    def detach(self) -> None: ...
    async def pump(self) -> None: ...
    def disconnect_reason(self, exc: ConnectionClosed | None) -> str: ...
    def has_room(self) -> bool: ...
    async def send(self, message: str) -> None: ...
    async def send_quietly(self, message: str) -> None: ...
    async def close(self, code: int, reason: str) -> None: ...


class FrameRate:
    """Frames per second over the last whole second; O(1) per read."""

    __slots__ = ("_sec", "_count", "_last")

    def __init__(self) -> None:
        self._sec = 0
        self._count = 0
        self._last = 0

    def tick(self, now: float, n: int = 1) -> None:
        s = int(now)
        if s != self._sec:
            self._last = self._count if s == self._sec + 1 else 0
            self._sec = s
            self._count = 0
        self._count += n

    def rate(self, now: float) -> int:
        s = int(now)
        if s == self._sec:
            return self._last
        return self._count if s == self._sec + 1 else 0


@dataclass(slots=True, eq=False)
class ClientState:
    """What the daemon knows about the client holding the LEDs."""

    conn: ClientConnection
    peer: str
    telemetry: Telemetry
    accepted: int = 0
    rejected: int = 0
    rate: FrameRate = field(default_factory=FrameRate)
    errors: ErrorBudget = field(default_factory=ErrorBudget)
    last_valid_t: float = 0.0
    """When the last valid vector came (or the client connected)."""
    released: str | None = None
    """Why the daemon let go of this client, if it did."""


class Holder:
    """The slot, and the sink for its client's messages."""

    def __init__(
        self,
        driver: Driver,
        *,
        clock: Callable[[], float],
        events: RateLimitedLog,
        idle_release_s: float = 0.0,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.driver = driver
        self.clock = clock
        self.events = events
        self.idle_release_s = idle_release_s
        self.on_change = on_change
        self.client: ClientState | None = None
        self.busy_refused = 0
        self.rejects = RejectLog()  # the slot's, not a client's: reconnecting does not reset it
        self.stopping = False  # set by the daemon at shutdown, for the log line
        self._past = FrameCounts(0, 0)  # frames of clients gone

    def reconfigure(self, cfg: Config) -> None:
        self.idle_release_s = cfg.idle_release_s

    @property
    def frames(self) -> FrameCounts:
        c, p = self.client, self._past
        return p if c is None else FrameCounts(p.accepted + c.accepted, p.rejected + c.rejected, p.superseded + c.conn.superseded)

    @property
    def peer(self) -> str | None:
        """Who holds the LEDs (None: nobody)."""
        return self.client.peer if self.client is not None else None

    @property
    def rate_hz(self) -> int:
        """The holder's frames per second over the last whole second."""
        c = self.client
        return c.rate.rate(self.clock()) if c is not None else 0

    def state(self) -> StateMessage:
        """What telemetry and /status report."""
        d = self.driver.duties
        return StateMessage(leds=LedLevels(d.right, d.left), client=self.peer, frames=self.frames, rate_hz=self.rate_hz)

    # ---- the slot --------------------------------------------------------

    async def serve(self, conn: ClientConnection) -> None:
        """websockets' connection handler: hold the LEDs until the client goes."""
        if self.client is not None:
            self.busy_refused += 1
            self.events.log(logging.INFO, "refused: LEDs busy", "refused %s: the LEDs are in use by %s", conn.peer, self.client.peer, extra={"CLIENT_ADDRESS": conn.peer})
            await conn.close(BUSY_CLOSE_CODE, BUSY_REASON)
            return
        now = self.clock()
        c = self.client = ClientState(conn, conn.peer, Telemetry(conn, state=self.state, clock=self.clock), last_valid_t=now)
        self.events.log(logging.INFO, "clients connected", "client %s connected", c.peer, extra={"CLIENT_ADDRESS": c.peer})
        self.driver.attach(conn.reads, peer=c.peer)
        conn.attach(self)
        self.on_change()
        idle_watch = asyncio.ensure_future(self._release_when_idle(c))
        closed: ConnectionClosed | None = None
        try:
            await conn.pump()
        except ConnectionClosed as e:
            closed = e
        finally:
            conn.detach()
            idle_watch.cancel()
            self._leave(c, conn.disconnect_reason(closed))

    def _leave(self, c: ClientState, reason: str) -> None:
        """``c`` went (``reason`` in words for the log): LEDs off, slot free."""
        c.telemetry.close()
        self.driver.release()
        self.client = None
        self._past = FrameCounts(self._past.accepted + c.accepted, self._past.rejected + c.rejected, self._past.superseded + c.conn.superseded)
        reason = c.released or reason
        if self.stopping and c.released is None:
            reason = "was disconnected (the daemon is stopping)"
        self.events.log(
            logging.INFO,
            "clients left",
            "client %s %s after %s: LEDs off",
            c.peer,
            reason,
            frame_counts(c.accepted, c.rejected),
            extra={"CLIENT_ADDRESS": c.peer, "FRAMES_ACCEPTED": c.accepted, "FRAMES_REJECTED": c.rejected},
        )
        self.on_change()

    async def _release_when_idle(self, c: ClientState) -> None:
        """Close the holder's connection once it sent no valid frame for
        ``idle_release_s`` (0 = never): a phone whose sensor stopped (screen
        off) while its WebSocket library still answers pings must not keep
        the LEDs from everyone else.  (They went dark at ``stale_after_s``.)"""
        while True:
            idle_s = self.idle_release_s
            if idle_s <= 0:
                await asyncio.sleep(1.0)  # re-read: a reload may set it
                continue
            wait = c.last_valid_t + idle_s - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            c.released = f"was released after {idle_s:g} s without a valid frame"
            await c.conn.close(CloseCode.NORMAL_CLOSURE, f"no valid frame for {idle_s:g} s: LEDs released")
            return

    # ---- the sink --------------------------------------------------------

    def read(self, messages: Iterable[str | bytes]) -> None:
        """One read of the holder's socket ended with these messages."""
        c = self.client
        now = self.clock()
        newest: Vector | None = None
        vectors = 0
        debug = log.isEnabledFor(logging.DEBUG)
        for data in messages:
            try:
                msg = parse_frame(data)
            except FrameError as err:
                self._reject(c, err, now)
                continue
            if type(msg) is Vector:
                newest = msg
                vectors += 1
                if debug:
                    log.debug("frame %r from %s", msg, c.peer)
            else:
                c.telemetry.subscribe(msg.rate_hz)
        if vectors:
            c.accepted += vectors
            c.last_valid_t = now
            c.rate.tick(now, vectors)
        self.driver.after_read(newest, vectors, now)

    def _reject(self, c: ClientState, err: FrameError, now: float) -> None:
        c.rejected += 1
        n = self.rejects.add(now)  # the one rate limit on this line
        if n is not None:
            more = f" (and {n - 1} more since the last report)" if n > 1 else ""
            log.info("rejected a frame from %s: %s%s", c.peer, err.message, more, extra={"CLIENT_ADDRESS": c.peer, "FRAMES_REJECTED": c.rejected})
        suppressed = c.errors.take(now, can_send=c.conn.has_room())
        if suppressed is not None:
            asyncio.ensure_future(c.conn.send_quietly(encode_error(err, suppressed=suppressed)))
