"""Runs the pure LED writer (daemon/writer.py) on the event loop: one timer,
the pins, and pausing the holder's reads.  It decides nothing itself; it
carries out each :class:`~daemon.writer.Plan`.

Loop callbacks rather than a task: a frame costs no task switch, and in a
steady stream no timer either.  One clock, the loop's (``loop.time()``),
for the writer's times and for ``call_at``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Protocol

from .leds import LedPair
from .ratelog import RateLimitedLog
from .writer import Plan, Writer

__all__ = ["LedDriver", "Reads"]

log = logging.getLogger("gravity_led")


class Reads(Protocol):
    """The holder's connection, as far as read holding goes."""

    peer: str

    def hold_reads(self) -> None: ...
    def resume_reads(self) -> None: ...


class LedDriver:
    """Carries out the writer's plans; ``vector`` is the writer's own (hot path)."""

    def __init__(self, writer: Writer, leds: LedPair, *, on_failure: Callable[[BaseException], None], events: RateLimitedLog) -> None:
        self.writer = writer
        self._events = events  # a client can cause the stale line at will: rate-limited
        self.leds = leds
        self.vector = writer.vector  # per frame: no extra call
        self._on_failure = on_failure
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at: float | None = None
        self._reads: Reads | None = None
        self._stopped = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def attach(self, reads: Reads) -> None:
        """A client now holds the LEDs: its reads are the ones to hold."""
        self._reads = reads

    def release(self) -> None:
        """The holder went away: LEDs off now, without easing."""
        self._reads = None
        self.writer.release()
        self._arm(None)
        self.leds.off()

    def read_ended(self) -> None:
        self.apply(self.writer.read_ended(self._loop.time()))

    def reconfigure(self, **options: object) -> None:
        if not self._stopped:
            self.apply(self.writer.reconfigure(now=self._loop.time(), **options))

    def set_frequency(self, *, frequency_hz: float, hardware_frequency_hz: float) -> None:
        """A new PWM frequency (SIGHUP): the pins take it at once, the duties
        kept; easing need not tick faster than the slowest PWM period."""
        if self._stopped:
            return
        try:
            self.leds.set_frequency(frequency_hz=frequency_hz, hardware_frequency_hz=hardware_frequency_hz)
        except Exception as e:  # as a failed write: stop loudly
            log.error("changing the PWM frequency failed: %s", e)
            self.close()
            self._on_failure(e)
            return
        self.writer.ease_tick_s = 1.0 / min([1.0 / self.writer.tick_s, *(f for f in self.leds.frequencies_hz if f > 0)])

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
            peer = self._reads.peer if self._reads is not None else ""
            self._events.log(
                logging.INFO,
                "stale-data blackouts",
                "no valid frame for %.1f s: LEDs off (stale-data failsafe)",
                self.writer.stale_after_s,
                extra={"CLIENT_ADDRESS": peer},
            )
        if plan.timer_at != self._armed_at:
            self._arm(plan.timer_at)
        reads = self._reads
        if reads is not None:
            if plan.hold_reads:
                reads.hold_reads()
            else:
                reads.resume_reads()

    def _arm(self, t: float | None) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._armed_at = t
        if t is not None and not self._stopped:
            # A time already past runs after the loop's next pass of I/O:
            # after the read of whatever waited, so the write is of the newest.
            self._handle = self._loop.call_at(t, self._fired)

    def _fired(self) -> None:
        self._handle = None
        self._armed_at = None
        self.apply(self.writer.timer_fired(self._loop.time()))
