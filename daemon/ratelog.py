"""Log lines a remote peer can trigger, rate-limited, with counts.

A refused handshake, a busy refusal, a bad request: each is worth a line,
but a peer can cause thousands a second and fill the journal (or the SD
card).  Each kind of line gets a small burst per window; the rest are
counted and reported in one line when the window ends:
``refused a WebSocket: origin not allowed ... and 1,532 more in the last 10 s``.

:class:`LogBudget` is the pure decision (fake-clock tested);
:class:`RateLimitedLog` puts it in front of a logger and a loop timer.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any, Callable, Protocol

__all__ = ["LibraryLog", "LogBudget", "RateLimitedLog", "Summary"]


@dataclass(frozen=True, slots=True)
class Summary:
    """Lines of one kind left out during one window."""

    key: str
    suppressed: int
    window_s: float

    def text(self) -> str:
        return f"{self.key} ... and {self.suppressed:,} more in the last {self.window_s:.0f} s"


@dataclass(slots=True)
class _Window:
    start_t: float
    logged: int = 0
    suppressed: int = 0


class LogBudget:
    """At most ``burst`` lines of each kind per ``window_s``; counts the rest.

    A window opens with the first line of its kind and closes ``window_s``
    later; :meth:`due` then reports what it left out.  Kinds are fixed
    strings from the code, never peer data, so the table stays small.
    """

    def __init__(self, *, burst: int = 5, window_s: float = 10.0) -> None:
        self.burst = burst
        self.window_s = window_s
        self._windows: dict[str, _Window] = {}

    def allow(self, key: str, now: float) -> bool:
        """Whether to write this line of kind ``key`` now."""
        w = self._windows.get(key)
        if w is not None and now >= w.start_t + self.window_s and not w.suppressed:
            w = None  # ended with nothing to report: start afresh
        if w is None:
            w = self._windows[key] = _Window(now)
        if w.logged < self.burst and now < w.start_t + self.window_s:
            w.logged += 1
            return True
        w.suppressed += 1
        return False

    def next_due(self) -> float | None:
        """When the next :meth:`due` has something to report."""
        ends = [w.start_t + self.window_s for w in self._windows.values() if w.suppressed]
        return min(ends) if ends else None

    def due(self, now: float, *, all: bool = False) -> list[Summary]:
        """Summaries of the windows that ended by ``now`` (every one if
        ``all``, at shutdown); their kinds start afresh."""
        out = []
        for key, w in list(self._windows.items()):
            end = w.start_t + self.window_s
            if w.suppressed and (all or now >= end):
                out.append(Summary(key, w.suppressed, min(now, end) - w.start_t))
                del self._windows[key]
            elif now >= end:
                del self._windows[key]
        return out


class _Timer(Protocol):
    def cancel(self) -> None: ...


class RateLimitedLog:
    """A logger for peer-triggered lines: ``log(level, key, msg, *args)``
    writes ``msg % args`` if ``key``'s budget allows, and the summary line
    when its window ends (on a timer, so it comes even if the peer stops)."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        clock: Callable[[], float],
        call_at: Callable[[float, Callable[[], None]], _Timer],
        budget: LogBudget | None = None,
    ) -> None:
        self.logger = logger
        self.budget = budget or LogBudget()
        self._clock = clock
        self._call_at = call_at
        self._levels: dict[str, int] = {}
        self._timer: _Timer | None = None
        self._timer_t = 0.0

    def log(self, level: int, key: str, msg: str, *args: Any, **kwargs: Any) -> None:
        if not self.logger.isEnabledFor(level):
            return
        self._levels[key] = level
        if self.budget.allow(key, self._clock()):
            self.logger.log(level, msg, *args, **kwargs)
        else:
            self._arm()

    def _arm(self) -> None:
        t = self.budget.next_due()
        if t is None or (self._timer is not None and self._timer_t <= t):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_t = t
        self._timer = self._call_at(t, self.flush)

    def flush(self, *, all: bool = False) -> None:
        """Write the summaries that are due (all of them if ``all``)."""
        self._timer = None
        for s in self.budget.due(self._clock(), all=all):
            self.logger.log(self._levels.get(s.key, logging.INFO), "%s", s.text())
        if not all:
            self._arm()

    def close(self) -> None:
        """At shutdown: cancel the timer and write every pending summary."""
        if self._timer is not None:
            self._timer.cancel()
        self.flush(all=True)


class LibraryLog(logging.LoggerAdapter):
    """A library's logger (websockets') whose lines a peer can cause: each
    line at INFO and above goes through ``events`` (its format string is the
    kind, fixed in the library's code), with the exception in one line and
    its traceback only at DEBUG.  DEBUG lines pass as they are."""

    def __init__(self, logger: logging.Logger, events: RateLimitedLog) -> None:
        super().__init__(logger, {})
        self.events = events

    def log(self, level: int, msg: object, *args: Any, exc_info: Any = None, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        kwargs.pop("stack_info", None)
        kwargs.pop("stacklevel", None)
        if level <= logging.DEBUG:
            self.logger.log(level, msg, *args, exc_info=exc_info, **kwargs)
            return
        exc = sys.exc_info()[1] if exc_info is True else exc_info if isinstance(exc_info, BaseException) else None
        text = str(msg)
        try:
            line = text % args if args else text
        except (TypeError, ValueError):
            line = " ".join([text, *map(str, args)])
        if exc is not None:
            line = f"{line} ({type(exc).__name__}: {exc})" if str(exc) else f"{line} ({type(exc).__name__})"
        self.events.log(level, f"websockets: {text}", "websockets: %s", line)
        if exc is not None and self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("websockets: %s (details)", text, exc_info=exc)
