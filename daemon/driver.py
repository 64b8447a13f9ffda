"""Runs the pure LED writer (daemon/writer.py) on the event loop: one timer,
the pins, and the valve on the holder's reads.  It decides nothing itself;
it carries out each :class:`~gravity_led.daemon.writer.Plan`.

Loop callbacks rather than a task: a frame costs no task switch, and in a
steady stream no timer either.  One clock, the loop's, given once at
construction, for the writer's times and for ``call_at``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Protocol

from .config import Config
from .mapping import Duties
from .protocol import Vector
from .ratelog import RateLimitedLog
from .writer import Plan, Writer

__all__ = ["LedDriver", "Pins", "ReadValve", "Transport"]

log = logging.getLogger("gravity_led")


class Pins(Protocol):
    """The two LEDs (daemon/leds.py's ``LedPair``)."""

    @property
    def duties(self) -> Duties: ...
    def write(self, duties: Duties) -> None: ...
    def off(self) -> None: ...


class Transport(Protocol):
    """asyncio's transport, as far as pausing reads goes."""

    def is_closing(self) -> bool: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


class ReadValve:
    """Pauses and resumes reading one connection's transport; the driver
    turns it as the writer's plans say.  ``overruled`` says when the
    transport's reads are paused by someone else (websockets' own flow
    control), so resuming must not overrule it."""

    __slots__ = ("_transport", "_overruled", "held")

    def __init__(self, transport: Transport, *, overruled: Callable[[], bool] = lambda: False) -> None:
        self._transport = transport
        self._overruled = overruled
        self.held = False

    def set(self, hold: bool) -> None:
        if hold == self.held:
            return
        t = self._transport
        if hold:
            if not t.is_closing():
                t.pause_reading()
                self.held = True
            return
        self.held = False
        if not t.is_closing() and not self._overruled():
            t.resume_reading()


class LedDriver:
    """Carries out the writer's plans: the pins, the one timer, the reads."""

    def __init__(
        self,
        writer: Writer,
        leds: Pins,
        *,
        clock: Callable[[], float],
        call_at: Callable[[float, Callable[[], None]], asyncio.TimerHandle],
        events: RateLimitedLog,
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self.writer = writer
        self.leds = leds
        self._clock = clock
        self._call_at = call_at
        self._events = events  # a client can cause the stale line at will: rate-limited
        self._on_failure = on_failure
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at: float | None = None
        self._reads: ReadValve | None = None
        self._peer = ""
        self._stopped = False

    @property
    def duties(self) -> Duties:
        """What the LEDs show now."""
        return self.leds.duties

    def attach(self, reads: ReadValve, *, peer: str) -> None:
        """A client now holds the LEDs: its reads are the ones to hold."""
        self._reads = reads
        self._peer = peer

    def release(self) -> None:
        """The holder went away: LEDs off now, without easing."""
        self._reads = None
        self._peer = ""
        self.writer.release()
        self._arm(None)
        self.leds.off()

    def after_read(self, newest: Vector | None, vectors: int, now: float) -> None:
        """A read of the holder's socket ended, with ``vectors`` valid vectors
        (``newest`` the last): one decision per read, not per frame."""
        if vectors:
            self.writer.vector(newest, now, count=vectors)
        self.apply(self.writer.read_ended(now))

    def reconfigure(self, cfg: Config) -> None:
        """Live options changed (SIGHUP): show the new mapping at once."""
        if not self._stopped:
            self.apply(self.writer.reconfigure(mapping=cfg.mapping(), smoothing_s=cfg.smoothing_s, stale_after_s=cfg.stale_after_s, now=self._clock()))

    def close(self) -> None:
        """Shutting down: no more writes or timers; LEDs off."""
        self._stopped = True
        self._arm(None)
        self.leds.off()

    def apply(self, plan: Plan) -> None:
        if self._stopped:
            return
        if plan.write is not None:
            try:
                self.leds.write(plan.write)
            except Exception as e:  # a pin library failed: stop loudly, not silently
                log.error("writing to the LEDs failed: %s", e)
                self.close()
                self._on_failure(e)
                return
        if plan.stale:
            self._events.log(
                logging.INFO,
                "stale-data blackouts",
                "no valid frame for %.1f s: LEDs off (stale-data failsafe)",
                self.writer.stale_after_s,
                extra={"CLIENT_ADDRESS": self._peer},
            )
        if plan.timer_at != self._armed_at:
            self._arm(plan.timer_at)
        if self._reads is not None:
            self._reads.set(plan.hold_reads)

    def _arm(self, t: float | None) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._armed_at = t
        if t is not None and not self._stopped:
            # A time already past runs after the loop's next pass of I/O:
            # after the read of whatever waited, so the write is of the newest.
            self._handle = self._call_at(t, self._fired)

    def _fired(self) -> None:
        self._handle = None
        self._armed_at = None
        self.apply(self.writer.timer_fired(self._clock()))
