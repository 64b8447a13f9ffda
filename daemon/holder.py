"""The holder slot (one client at a time drives the LEDs) and what the daemon
keeps per client: frame counts and rate, the rejected-frame log, the
error-reply budget and telemetry.

:class:`Holder` is also the one public sink for the holder's messages: its
connection (daemon/wsadapter.py) calls ``message(data)`` for each and
``read_ended()`` after each read; valid vectors go on to the LED writer.
The per-client budgets are small pure classes with an injected clock.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from typing import Callable

from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from .driver import LedDriver
from .protocol import BUSY_CLOSE_CODE, BUSY_REASON, FrameCounts, FrameError, LedLevels, StateMessage, Vector, encode_error, parse_frame
from .ratelog import RateLimitedLog
from .wording import frame_counts
from .wsadapter import LedConnection

__all__ = ["ClientState", "ErrorBudget", "FrameRate", "Holder", "RejectLog"]

log = logging.getLogger("gravity_led")

ERRORS_PER_S = 5.0
"""Error replies per second to one client (a burst of the same size allowed)."""
LOG_REJECTS_EVERY_S = 5.0
"""At most one log line per client this often about rejected frames."""


class FrameRate:
    """Frames per second over the last whole second; O(1) per frame."""

    __slots__ = ("_sec", "_count", "_last")

    def __init__(self) -> None:
        self._sec = 0
        self._count = 0
        self._last = 0

    def tick(self, now: float) -> None:
        s = int(now)
        if s != self._sec:
            self._last = self._count if s == self._sec + 1 else 0
            self._sec = s
            self._count = 0
        self._count += 1

    def rate(self, now: float) -> int:
        s = int(now)
        if s == self._sec:
            return self._last
        return self._count if s == self._sec + 1 else 0


class ErrorBudget:
    """Token bucket for error replies: a client that floods bad frames gets a
    few answers a second; each answer says how many went unanswered."""

    __slots__ = ("per_s", "tokens", "refilled_t", "suppressed")

    def __init__(self, *, per_s: float = ERRORS_PER_S, now: float = 0.0) -> None:
        self.per_s = per_s
        self.tokens = per_s
        self.refilled_t = now
        self.suppressed = 0

    def take(self, now: float, *, can_send: bool = True) -> int | None:
        """The count to report as suppressed if an answer may go now, else None."""
        self.tokens = min(self.per_s, self.tokens + (now - self.refilled_t) * self.per_s)
        self.refilled_t = now
        if self.tokens >= 1.0 and can_send:
            self.tokens -= 1.0
            suppressed, self.suppressed = self.suppressed, 0
            return suppressed
        self.suppressed += 1
        return None


class RejectLog:
    """Rate-limits log lines about rejected frames: one per ``every_s``."""

    __slots__ = ("every_s", "unlogged", "logged_t")

    def __init__(self, *, every_s: float = LOG_REJECTS_EVERY_S) -> None:
        self.every_s = every_s
        self.unlogged = 0
        self.logged_t = -math.inf

    def add(self, now: float) -> int | None:
        """Count one rejection; the number to log (with this one) if a line is due."""
        self.unlogged += 1
        if now - self.logged_t < self.every_s:
            return None
        n, self.unlogged, self.logged_t = self.unlogged, 0, now
        return n


@dataclass(slots=True, eq=False)
class ClientState:
    """What the daemon knows about the client holding the LEDs."""

    conn: LedConnection
    peer: str
    accepted: int = 0
    rejected: int = 0
    rate: FrameRate = field(default_factory=FrameRate)
    errors: ErrorBudget = field(default_factory=ErrorBudget)
    rejects: RejectLog = field(default_factory=RejectLog)
    telemetry: asyncio.Task | None = None
    telemetry_interval_s: float = 1.0
    telemetry_changed: asyncio.Event = field(default_factory=asyncio.Event)
    last_state_t: float = -math.inf
    """When the last state message went (or was skipped): the telemetry cap
    counts from it, whatever the client re-subscribes."""
    last_valid_t: float = 0.0
    """When the last valid vector came (or the client connected)."""
    released: str | None = None
    """Why the daemon let go of this client, if it did."""


class Holder:
    """The slot, and the sink for its client's messages."""

    def __init__(
        self,
        driver: LedDriver,
        *,
        clock: Callable[[], float],
        events: RateLimitedLog,
        idle_release_s: Callable[[], float] = lambda: 0.0,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.driver = driver
        self.clock = clock
        self.events = events
        self.idle_release_s = idle_release_s  # a callable: reload may change it
        self.on_change = on_change
        self.client: ClientState | None = None
        self.busy_refused = 0
        self.stopping = False  # set by the daemon at shutdown, for the log line
        self._past = FrameCounts(0, 0)  # frames of clients gone

    @property
    def frames(self) -> FrameCounts:
        c, p = self.client, self._past
        return p if c is None else FrameCounts(p.accepted + c.accepted, p.rejected + c.rejected)

    def state(self) -> StateMessage:
        """What telemetry and /status report."""
        d = self.driver.leds.duties
        c = self.client
        return StateMessage(
            leds=LedLevels(d.right, d.left),
            client=c.peer if c else None,
            frames=self.frames,
            rate_hz=c.rate.rate(self.clock()) if c else 0,
        )

    # ---- the slot --------------------------------------------------------

    async def serve(self, conn: LedConnection) -> None:
        """websockets' connection handler: hold the LEDs until the client goes."""
        if self.client is not None:
            self.busy_refused += 1
            self.events.log(logging.INFO, "refused: LEDs busy", "refused %s: the LEDs are in use by %s", conn.peer, self.client.peer, extra={"CLIENT_ADDRESS": conn.peer})
            await conn.close(BUSY_CLOSE_CODE, BUSY_REASON)
            return
        now = self.clock()
        c = self.client = ClientState(conn, conn.peer, errors=ErrorBudget(now=now), last_valid_t=now)
        self.events.log(logging.INFO, "clients connected", "client %s connected", c.peer, extra={"CLIENT_ADDRESS": c.peer})
        self.driver.attach(conn)
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
            if c.telemetry is not None:
                c.telemetry.cancel()
            self.driver.release()
            self.client = None
            self._past = FrameCounts(self._past.accepted + c.accepted, self._past.rejected + c.rejected)
            reason = c.released or conn.disconnect_reason(closed)
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
            idle_s = self.idle_release_s()
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

    def message(self, data: str | bytes) -> None:
        c = self.client
        try:
            msg = parse_frame(data)
        except FrameError as err:
            self._reject(c, err)
            return
        if type(msg) is Vector:
            now = self.clock()
            c.accepted += 1
            c.last_valid_t = now
            c.rate.tick(now)
            self.driver.vector(msg, now)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("frame %r from %s", msg, c.peer)
        else:
            self._set_telemetry(c, msg.rate_hz)

    def read_ended(self) -> None:
        self.driver.read_ended()

    # ---- per client ------------------------------------------------------

    def _reject(self, c: ClientState, err: FrameError) -> None:
        now = self.clock()
        c.rejected += 1
        n = c.rejects.add(now)
        if n is not None:
            more = f" (and {n - 1} more since the last report)" if n > 1 else ""
            self.events.log(
                logging.INFO,
                "rejected frames",
                "rejected a frame from %s: %s%s",
                c.peer,
                err.message,
                more,
                extra={"CLIENT_ADDRESS": c.peer, "FRAMES_REJECTED": c.rejected},
            )
        suppressed = c.errors.take(now, can_send=c.conn.has_room())
        if suppressed is not None:
            asyncio.ensure_future(c.conn.send_quietly(encode_error(err, suppressed=suppressed)))

    def _set_telemetry(self, c: ClientState, rate_hz: float) -> None:
        if rate_hz <= 0:
            if c.telemetry is not None:
                c.telemetry.cancel()
                c.telemetry = None
            return
        c.telemetry_interval_s = 1.0 / rate_hz
        if c.telemetry is None:
            c.telemetry = asyncio.ensure_future(self._telemetry(c))
        else:
            c.telemetry_changed.set()  # the running task takes the new rate

    async def _telemetry(self, c: ClientState) -> None:
        # Paced from the last message sent, not from the subscribe: a client
        # that re-subscribes a thousand times a second gets the rate it asked
        # for, never more than 20 messages a second.
        loop = asyncio.get_running_loop()
        try:
            while True:
                wait = c.last_state_t + c.telemetry_interval_s - loop.time()
                if wait > 0:
                    c.telemetry_changed.clear()
                    try:
                        await asyncio.wait_for(c.telemetry_changed.wait(), wait)
                    except TimeoutError:
                        pass
                    continue
                c.last_state_t = loop.time()  # a skipped message uses its slot too
                if c.conn.has_room():
                    await c.conn.send(self.state().encode())
        except ConnectionClosed:
            pass
