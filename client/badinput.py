"""Bad input from a phone app, counted and said at a bounded rate: pure,
the caller passes the time (the readers that raise it: client/formats.py;
the I/O that reports it: client/receivers.py and client/phones.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

__all__ = ["BadInputReport"]


@dataclass
class BadInputReport:
    """Counts bad input and says so at most once per ``every_s``: the first at once, then a summary.

    Pure: the caller passes the time.  ``add`` returns the sentence to show,
    or None inside the quiet period; once that period is over, ``flush``
    returns the summary of what it held back (the caller wakes up after
    ``wait_s`` for it, so a burst that stops is still counted).

    Input that is fine but holds no gravity (another sensor on the same
    stream) is no error; but when, for ``every_s``, input comes and none of
    it holds gravity, the app is not sending it: ``ignored`` says so once,
    with the sensors that did come and ``advice``, until ``used`` (a vector
    came) starts over.
    """

    SEEN_SHOWN = 5
    """Sensor names kept for the sentence (each at most 40 characters): strangers on the LAN choose them."""

    what: str = "datagram"
    every_s: float = 5.0
    advice: str = "turn on Gravity in the app"
    total: int = 0
    _since: int = 0
    _last_said: float | None = None
    _latest: tuple[str, str] = ("", "")
    _ignored_since: float | None = None
    _ignored: int = 0
    _ignored_said: bool = False
    _seen: dict[str, None] = field(default_factory=dict)
    _seen_more: bool = False

    def used(self) -> None:
        """A reading gave a vector: gravity is coming."""
        self._ignored_since, self._ignored, self._ignored_said = None, 0, False
        self._seen, self._seen_more = {}, False

    @property
    def wants_names(self) -> bool:
        """Whether ``ignored`` would still use the sensor names of a reading (they cost a parse)."""
        return not self._ignored_said and not self._seen_more

    def ignored(self, now: float, seen: Iterable[str] = ()) -> str | None:
        """A reading without gravity, from the sensors ``seen`` (:func:`sensor_names`);
        the sentence once they have come alone for ``every_s``."""
        if self._ignored_since is None:
            self._ignored_since = now
        self._ignored += 1
        for name in seen:
            if self._seen_more:
                break
            shown = "".join(c for c in name if c.isprintable())[:40]
            if shown and shown not in self._seen:
                if len(self._seen) < self.SEEN_SHOWN:
                    self._seen[shown] = None
                else:
                    self._seen_more = True
        if self._ignored_said or now - self._ignored_since < self.every_s:
            return None
        self._ignored_said = True
        names = ", ".join(self._seen) + (" and others" if self._seen_more else "")
        return (
            f"{self._ignored} {self.what}s in {now - self._ignored_since:.0f} s, none with gravity"
            f"{f' (saw {names})' if names else ''}: {self.advice}"
        )

    def wait_s(self, now: float) -> float | None:
        """How long until ``flush`` has a summary to give; None while nothing is held back."""
        if not self._since or self._last_said is None:
            return None
        return max(self._last_said + self.every_s - now, 0.0)

    def add(self, now: float, reason: str, sample: bytes | str = b"") -> str | None:
        self.total += 1
        self._since += 1
        shown = _shown(sample)
        self._latest = (reason, shown)
        if self._last_said is None:
            self._since = 0
            self._last_said = now
            return f"bad {self.what}{_quoted(shown)}: {reason}; skipped"
        return self.flush(now)

    def flush(self, now: float) -> str | None:
        if not self._since or self._last_said is None or now - self._last_said < self.every_s:
            return None
        reason, shown = self._latest
        plural = "s" if self._since != 1 else ""
        text = f"{self._since} bad {self.what}{plural} in the last {now - self._last_said:.0f} s ({self.total} in all), latest{_quoted(shown)}: {reason}"
        self._since = 0
        self._last_said = now
        return text


def _shown(sample: bytes | str) -> str:
    return sample[:60].decode("utf-8", errors="replace") if isinstance(sample, (bytes, bytearray)) else sample[:60]


def _quoted(sample: str) -> str:
    """`` 'what it started with'``, or nothing for input refused before it was read (an oversized POST)."""
    return f" {sample!r}" if sample else ""
