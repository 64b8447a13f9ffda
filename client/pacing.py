"""Frame pacing against absolute deadlines, and rate measurement.

Sleeping ``1/rate`` after each frame drifts: every sleep overshoots a little
(epoll rounds timeouts up to the millisecond) and the overshoots add up.
Frame ``n`` is instead due at ``start + n / rate`` on the monotonic clock, so
a late frame makes the next sleep shorter and the long-run rate is exact.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Pacer", "SendRate"]


@dataclass
class Pacer:
    """Hands out deadlines ``start + n * period``; :meth:`tick` sleeps until the next one.

    If the process falls more than ``max_lag_s`` behind (laptop suspended,
    event loop blocked), the missed frames are skipped rather than sent in a
    burst, and counted in ``skipped``.
    """

    rate_hz: float
    max_lag_s: float = 0.25
    clock: Callable[[], float] = time.monotonic
    start: float | None = None
    n: int = 0
    skipped: int = 0

    def __post_init__(self) -> None:
        if not self.rate_hz > 0:
            raise ValueError(f"rate must be positive, not {self.rate_hz}")
        self.period = 1.0 / self.rate_hz

    def due(self, now: float) -> float:
        """Deadline of the next frame, skipping ahead if we are too far behind (pure but for counters)."""
        if self.start is None:
            self.start = now
        due = self.start + self.n * self.period
        lag = now - due
        if lag > self.max_lag_s:
            missed = int(lag / self.period + 1e-9)
            self.n += missed
            self.skipped += missed
            due = self.start + self.n * self.period
        return due

    async def tick(self) -> float:
        """Wait for the next frame's deadline; return its scheduled time since start (s)."""
        now = self.clock()
        due = self.due(now)
        # Always yield to the loop, even when late, so receivers keep running.
        await asyncio.sleep(max(due - now, 0.0))
        t = self.n * self.period
        self.n += 1
        return t


@dataclass
class SendRate:
    """Events per second over a sliding window of ``window_s`` seconds, from a running count.

    (Not the daemon's per-second frame counter: this one is given totals.)"""

    window_s: float = 1.0
    _marks: deque[tuple[float, int]] = field(default_factory=deque)

    def update(self, now: float, count: int) -> float:
        """Record that ``count`` events had happened by ``now``; return the recent rate."""
        marks = self._marks
        marks.append((now, count))
        while len(marks) > 2 and now - marks[1][0] >= self.window_s:
            marks.popleft()
        t0, c0 = marks[0]
        return (count - c0) / (now - t0) if now > t0 else 0.0
