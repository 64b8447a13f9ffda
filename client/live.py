"""What the user sees while streaming.

Three modes, chosen once from how stdout is connected:
``tty``   one status line redrawn in place (bars for both LEDs from the
          daemon's telemetry, frames sent, actual rate, connection state);
``log``   plain timestamped lines, one per second plus events, for pipes and
          journald;
``quiet`` errors only.
Errors and warnings always go to stderr.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO

__all__ = ["Snapshot", "View", "bar", "choose_mode"]

MODES = ("tty", "log", "quiet")
_EIGHTHS = " ▏▎▍▌▋▊▉█"


def choose_mode(quiet: bool, stream: TextIO = sys.stdout) -> str:
    if quiet:
        return "quiet"
    try:
        return "tty" if stream.isatty() else "log"
    except (AttributeError, ValueError):
        return "log"


def _unicode_ok(stream: TextIO) -> bool:
    encoding = getattr(stream, "encoding", None) or ""
    return encoding.lower().replace("-", "") in ("utf8", "utf8sig")


def bar(level: float | None, width: int = 16, *, unicode: bool = True) -> str:
    """A horizontal bar for a duty in [0, 1], with eighth-cell resolution in Unicode; '?' cells if unknown."""
    if level is None:
        return "?" * width if not unicode else "·" * width
    level = min(max(level, 0.0), 1.0)
    if not unicode:
        full = round(level * width)
        return "#" * full + "." * (width - full)
    eighths = round(level * width * 8)
    full, part = divmod(eighths, 8)
    cells = "█" * full + (_EIGHTHS[part] if part else "")
    return cells + " " * (width - len(cells))


@dataclass(frozen=True, slots=True)
class Snapshot:
    state: str
    right: float | None
    left: float | None
    sent: int
    rate_hz: float
    dropped: int = 0


def _pct(level: float | None) -> str:
    return "  ?%" if level is None else f"{level * 100:3.0f}%"


class View:
    def __init__(self, mode: str, *, out: TextIO | None = None, err: TextIO | None = None, log_every_s: float = 1.0) -> None:
        if mode not in MODES:
            raise ValueError(mode)
        self.mode = mode
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.unicode = _unicode_ok(self.out)
        self.log_every_s = log_every_s
        self._start = time.monotonic()
        self._last_log = -float("inf")
        self._line_shown = False
        self._last: Snapshot | None = None

    # ---- messages ---------------------------------------------------------

    def _stamp(self) -> str:
        return f"[{time.monotonic() - self._start:7.1f}s]"

    def _clear_line(self) -> None:
        if self._line_shown:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self._line_shown = False

    def event(self, message: str) -> None:
        """A state change in plain words (connected, daemon down, ...)."""
        if self.mode == "quiet":
            return
        if self.mode == "tty":
            self._clear_line()
            self.out.write(message + "\n")
            if self._last is not None:
                self._draw(self._last)
        else:
            self.out.write(f"{self._stamp()} {message}\n")
        self.out.flush()

    def warn(self, message: str) -> None:
        """Something the user should fix (a bad input line); shown even with --quiet."""
        self._clear_line()
        self.err.write(f"gravity-led-client: {message}\n")
        self.err.flush()
        if self.mode == "tty" and self._last is not None:
            self._draw(self._last)

    error = warn

    # ---- status -----------------------------------------------------------

    def format(self, s: Snapshot) -> str:
        u = self.unicode
        left = f"L {'[' if not u else '▕'}{bar(s.left, unicode=u)}{']' if not u else '▏'}{_pct(s.left)}"
        right = f"R {'[' if not u else '▕'}{bar(s.right, unicode=u)}{']' if not u else '▏'}{_pct(s.right)}"
        dropped = f"  {s.dropped} dropped" if s.dropped else ""
        return f"{s.state:<10} {left}  {right}  {s.sent:>8} frames {s.rate_hz:7.1f}/s{dropped}"

    def _draw(self, s: Snapshot) -> None:
        self.out.write("\r" + self.format(s) + "\x1b[K")
        self.out.flush()
        self._line_shown = True

    def update(self, s: Snapshot) -> None:
        self._last = s
        if self.mode == "tty":
            self._draw(s)
        elif self.mode == "log" and s.state == "connected":
            now = time.monotonic()
            if now - self._last_log >= self.log_every_s:
                self._last_log = now
                self.out.write(
                    f"{self._stamp()} {s.state} left={_pct(s.left).strip()} right={_pct(s.right).strip()}"
                    f" frames={s.sent} rate={s.rate_hz:.1f}/s" + (f" dropped={s.dropped}" if s.dropped else "") + "\n"
                )
                self.out.flush()

    def finish(self, summary: str) -> None:
        """Leave the status line in place and print the final summary under it."""
        if self.mode == "quiet":
            return
        if self.mode == "tty" and self._line_shown:
            self.out.write("\n")
            self._line_shown = False
        self.out.write((f"{self._stamp()} " if self.mode == "log" else "") + summary + "\n")
        self.out.flush()
