"""Rates a peer may not exceed: one token bucket, and what is built from it.

:class:`TokenBucket` is the one primitive (a GCRA: a theoretical arrival
time instead of a token count, so it needs no refill step and no float
tokens).  The LED writer paces its writes with one (daemon/writer.py); the
holder answers bad frames (:class:`ErrorBudget`) and logs them
(:class:`RejectLog`) through one each.  Pure: every time is the caller's,
so tests drive them with a fake clock.
"""

from __future__ import annotations

import math

__all__ = ["ERRORS_PER_S", "LOG_REJECTS_EVERY_S", "ErrorBudget", "RejectLog", "TokenBucket"]

ERRORS_PER_S = 5.0
"""Error replies per second to one client (a burst of the same size allowed)."""
LOG_REJECTS_EVERY_S = 5.0
"""At most one log line per client this often about rejected frames."""


_ROUNDING_S = 1e-9


class TokenBucket:
    """``burst`` events back to back, then one per ``interval_s`` on average.

    ``ready_at`` is the earliest time the next event conforms; ``take`` spends
    one (whether or not it conformed: the caller decides whether to wait).
    A new bucket is full.
    """

    __slots__ = ("interval_s", "burst", "_tat")

    def __init__(self, *, interval_s: float, burst: int = 1) -> None:
        self.interval_s = interval_s
        self.burst = burst
        self._tat = -math.inf  # the theoretical arrival time of the next event

    @property
    def ready_at(self) -> float:
        return self._tat - (self.burst - 1) * self.interval_s

    def take(self, now: float) -> None:
        tat = self._tat
        self._tat = (tat if tat > now else now) + self.interval_s

    def try_take(self, now: float) -> bool:
        """Spend one if an event conforms now (give or take a nanosecond of
        float rounding: a burst at one instant gets exactly ``burst``)."""
        tat = self._tat  # inlined: a flood of bad frames calls this per frame
        if now < tat - (self.burst - 1) * self.interval_s - _ROUNDING_S:
            return False
        self._tat = (tat if tat > now else now) + self.interval_s
        return True


class ErrorBudget:
    """Error replies to one client: a client that floods bad frames gets a
    few answers a second; each answer says how many went unanswered."""

    __slots__ = ("bucket", "suppressed")

    def __init__(self, *, per_s: float = ERRORS_PER_S) -> None:
        self.bucket = TokenBucket(interval_s=1.0 / per_s, burst=max(1, int(per_s)))
        self.suppressed = 0

    def take(self, now: float, *, can_send: bool = True) -> int | None:
        """The count to report as suppressed if an answer may go now, else None."""
        if can_send and self.bucket.try_take(now):
            suppressed, self.suppressed = self.suppressed, 0
            return suppressed
        self.suppressed += 1
        return None


class RejectLog:
    """Rate-limits log lines about rejected frames: one per ``every_s``."""

    __slots__ = ("bucket", "unlogged")

    def __init__(self, *, every_s: float = LOG_REJECTS_EVERY_S) -> None:
        self.bucket = TokenBucket(interval_s=every_s)
        self.unlogged = 0

    def add(self, now: float) -> int | None:
        """Count one rejection; the number to log (with this one) if a line is due."""
        self.unlogged += 1
        if not self.bucket.try_take(now):
            return None
        n, self.unlogged = self.unlogged, 0
        return n
