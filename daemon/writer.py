"""When to write which duties to the LEDs: a pure, clock-injected part.

Sans-I/O, like ``mapping.Smoother`` and ``client.pacing.Pacer``: the caller
tells the :class:`Writer` what happened and when (a vector arrived, a read of
the holder's socket ended, the timer fired) and gets back a :class:`Plan`:
write these duties now, arm the one timer for *t*, keep the holder's reads
paused.  No asyncio, no clock of its own: every time is the caller's (the
event loop's ``loop.time()``), so tests drive it with a fake clock.

The rules:

* **Coalescing.**  At most ``update_hz`` writes a second on average, each of
  the newest vector: frames that come faster replace each other.  The limit
  is a token bucket (daemon/budgets.py) with room for a few writes back to back, so a
  jittered sender slower than the limit on average (a 200 Hz phone, frames
  2.5 to 7.5 ms apart, against a 4 ms tick) is written as each frame comes,
  and a frame that must wait is written the moment it may be (the timer is
  armed at that time, not a tick later).
* **Read holding.**  A sender much faster than the tick (``HOLD_AFTER_FRAMES``
  frames between two writes) would wake the daemon for every frame, yet only
  the newest is written.  So its reads are paused until the next write may
  happen: frames wait in the kernel and arrive as one read, one wake-up per
  tick.  When the hold ends, reading resumes, and the write waits for one
  pass of the event loop (the timer is armed at "now") so it writes what was
  waiting.  If that pass still read two or more frames, the holding goes on.
* **Stale blackout.**  No vector for ``stale_after_s``: the LEDs go dark.
  The stale timer is moved once per stale period, not per frame.
* **Smoothing.**  With ``smoothing_s`` > 0 the duties ease towards the target
  at most once per PWM period until settled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from .budgets import TokenBucket
from .mapping import OFF, Duties, Mapping, Smoother, duties_for
from .protocol import Vector

__all__ = ["HOLD_AFTER_FRAMES", "BURST_WRITES", "Plan", "Writer"]

HOLD_AFTER_FRAMES = 3
"""Vectors between two writes after which the holder's reads are held (read
holding pays off from about three frames per tick)."""

BURST_WRITES = 4
"""Writes the token bucket allows back to back (the GCRA's tolerance is
``BURST_WRITES - 1`` ticks).  Two are not enough for a 200 Hz phone's jitter
plus Wi-Fi bursts of 2-3 frames (2.6 % of frames then wait, up to a tick);
four let all but 0.5 % through at once, while a flood still settles to one
write per tick after its first four."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What the caller must do now.

    ``write``: write these duties to the LEDs now (None: no write).
    ``timer_at``: the one timer must be armed for this time (None: no timer);
    re-arm it only if it differs from what is armed.  A time at or before now
    means "after the event loop's next pass of I/O".
    ``hold_reads``: the holder's reads must be paused (False: resumed).
    ``stale``: this write is the stale-data blackout (worth a log line).
    """

    write: Duties | None = None
    timer_at: float | None = None
    hold_reads: bool = False
    stale: bool = False


class _Phase(Enum):
    IDLE = "idle"  # no write pending (a stale check may be)
    WAIT = "wait"  # a write is due at _write_at
    HELD = "held"  # reads paused until _write_at
    PASS = "pass"  # reads resumed; write after one pass of I/O


class Writer:
    """Decides, for one daemon, when the LEDs are written and with what."""

    def __init__(
        self,
        *,
        mapping: Mapping,
        update_hz: float,
        frequency_hz: float,
        smoothing_s: float = 0.0,
        stale_after_s: float = 1.0,
    ) -> None:
        self.mapping = mapping
        self.tick_s = 1.0 / update_hz
        # Easing: no point updating faster than the PWM period.
        self.ease_tick_s = 1.0 / min(update_hz, frequency_hz)
        self.smoother = Smoother(tau_s=smoothing_s)
        self.stale_after_s = stale_after_s
        self.latest: Vector | None = None
        self.last_vector_t = -math.inf
        self.writes = 0
        self._dirty = False  # the LEDs do not show what they should
        self._since_write = 0  # vectors since the last write
        self._pass_start = 0  # vectors seen when the read pass began
        self._vectors = 0
        self.bucket = TokenBucket(interval_s=self.tick_s, burst=BURST_WRITES)  # the write rate
        self._phase = _Phase.IDLE
        self._write_at: float | None = None
        self._stale_at: float | None = None

    # ---- what the caller reads -------------------------------------------

    @property
    def timer_at(self) -> float | None:
        """When the caller's timer must fire (the write or the stale check)."""
        w, s = self._write_at, self._stale_at
        if w is None:
            return s
        return w if s is None or w < s else s

    @property
    def may_write_at(self) -> float:
        """The earliest time the token bucket allows the next write."""
        return self.bucket.ready_at

    @property
    def holding(self) -> bool:
        return self._phase is _Phase.HELD

    # ---- events ----------------------------------------------------------

    def vector(self, v: Vector, now: float, *, count: int = 1) -> None:
        """``count`` valid vectors arrived, ``v`` the newest (cheap; decide at
        ``read_ended``)."""
        self.latest = v
        self._dirty = True
        self.last_vector_t = now
        self._since_write += count
        self._vectors += count
        if self._stale_at is None:
            self._stale_at = now + self.stale_after_s

    def read_ended(self, now: float) -> Plan:
        """A read of the holder's socket ended: one decision per read, not per
        frame, so a burst costs one write, of the newest."""
        phase = self._phase
        if self._dirty and (phase is _Phase.IDLE or phase is _Phase.WAIT):
            if now >= self.may_write_at:
                return self._write(now)
            if self._since_write >= HOLD_AFTER_FRAMES:
                self._phase = _Phase.HELD
                self._write_at = self.may_write_at
            elif phase is _Phase.IDLE:
                self._phase = _Phase.WAIT
                self._write_at = self.may_write_at
        return self._plan()

    def timer_fired(self, now: float) -> Plan:
        """The caller's timer fired (at or after ``timer_at``)."""
        stale = False
        if self._stale_at is not None and now >= self._stale_at:
            stale = self._check_stale(now)
        w = self._write_at
        if w is None or now < w:
            if stale and self._phase is _Phase.IDLE:
                return self._decide(now, stale=True)
            return self._plan(stale=stale)
        self._write_at = None
        phase = self._phase
        if phase is _Phase.HELD:
            # Resume reading; write after the pass that reads what waited.
            self._phase = _Phase.PASS
            self._pass_start = self._vectors
            self._write_at = now
            return self._plan(stale=stale)
        self._phase = _Phase.IDLE
        if phase is _Phase.PASS:
            read = self._vectors - self._pass_start
            plan = self._write(now, stale=stale)
            # Still fast: hold again until the next write may happen (on the
            # bucket's grid, so time spent reading a batch is not idle time
            # and a sender as fast as our parser cannot get ahead).
            if read >= 2 and self.may_write_at > now and self._phase is _Phase.IDLE:
                self._phase = _Phase.HELD
                self._write_at = self.may_write_at
                return Plan(plan.write, self.timer_at, True, stale)
            return plan
        if self._dirty:
            return self._write(now, stale=stale)
        return self._plan(stale=stale)

    def release(self) -> Duties:
        """The holder went away: dark now, without easing; forget everything."""
        self.latest = None
        self._dirty = False
        self._since_write = 0
        self._phase = _Phase.IDLE
        self._write_at = None
        self._stale_at = None
        self.smoother.reset()
        return OFF

    def reconfigure(self, *, mapping: Mapping, smoothing_s: float, stale_after_s: float, now: float) -> Plan:
        """Live options changed (SIGHUP): show the new mapping at once."""
        self.mapping = mapping
        self.smoother.tau_s = smoothing_s
        self.stale_after_s = stale_after_s
        stale = False
        if self.latest is not None:
            self._stale_at = self.last_vector_t + stale_after_s
            if now >= self._stale_at:
                stale = self._check_stale(now)
        self._dirty = True
        return self._decide(now, stale=stale)

    # ---- inside ------------------------------------------------------------

    def _check_stale(self, now: float) -> bool:
        """True if the LEDs must go dark for want of vectors."""
        if self.latest is None:
            self._stale_at = None
            return False
        due = self.last_vector_t + self.stale_after_s
        if now < due:  # vectors came since the check was set
            self._stale_at = due
            return False
        self._stale_at = None
        self.latest = None
        self._dirty = True
        return True

    def _decide(self, now: float, *, stale: bool = False) -> Plan:
        if self._phase is _Phase.IDLE or self._phase is _Phase.WAIT:
            if now >= self.may_write_at:
                return self._write(now, stale=stale)
            self._phase = _Phase.WAIT
            self._write_at = self.may_write_at
        return self._plan(stale=stale)

    def _write(self, now: float, *, stale: bool = False) -> Plan:
        self._phase = _Phase.IDLE
        self._write_at = None
        self._dirty = False
        self._since_write = 0
        self.bucket.take(now)
        self.writes += 1
        v = self.latest
        target = OFF if v is None else duties_for(v, self.mapping)
        smoother = self.smoother
        duties = smoother.step(target, now)
        if not smoother.settled(target):
            self._dirty = True
            self._phase = _Phase.WAIT
            self._write_at = max(now + self.ease_tick_s, self.may_write_at)
        elif smoother.tau_s:
            # Settled: snap to the exact target and restart the clock, so the
            # next change eases from here instead of jumping.
            smoother.reset(target)
            if duties != target:
                self._dirty = True
                self._phase = _Phase.WAIT
                self._write_at = self.may_write_at
        return Plan(duties, self.timer_at, False, stale)

    def _plan(self, *, stale: bool = False) -> Plan:
        return Plan(None, self.timer_at, self._phase is _Phase.HELD, stale)
