"""What the user sees while streaming.

Four modes, chosen once from how stdin and stdout are connected:
``tty``   one status line redrawn in place (bars for both LEDs from the
          daemon's telemetry, frames sent, actual rate, connection state),
          never wider than the terminal: fields are dropped, not wrapped,
          and the width is read again on every redraw, so resizes follow;
``lines`` for ``stdin`` typed on a terminal: no redraw (it would erase what
          is being typed); one status line after each line entered;
``log``   plain timestamped lines, one per second plus events, for pipes and
          journald;
``quiet`` errors only; also a terminal's background job (``send ... &``),
          whose redraws would land on the shell's prompt and on what is
          typed there.
Errors and warnings always go to stderr.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
from dataclasses import dataclass
from typing import TextIO

__all__ = ["Snapshot", "View", "bar", "choose_mode", "status_line"]

MODES = ("tty", "lines", "log", "quiet")
_EIGHTHS = " ▏▎▍▌▋▊▉█"
BAR_CELLS = (16, 12, 10, 8, 6, 5, 4, 3)
"""Bar widths tried, widest first, before a field is dropped."""
AFTER_INPUT_S = 0.15
"""``lines`` mode: the status is printed this long after a line was entered, once telemetry reflects it."""


def choose_mode(quiet: bool, stream: TextIO = sys.stdout, *, typing_in: TextIO | None = None) -> str:
    """``quiet`` (asked, or a background job), ``log`` (not a terminal), ``lines`` (``typing_in`` is a terminal too) or ``tty``."""
    if quiet:
        return "quiet"
    if not _isatty(stream):
        return "log"
    if _in_background(stream):
        return "quiet"
    return "lines" if typing_in is not None and _isatty(typing_in) else "tty"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _in_background(stream: TextIO) -> bool:
    """True for a job started with ``&``: the terminal's foreground process group is another one."""
    try:
        return os.tcgetpgrp(stream.fileno()) != os.getpgrp()
    except (AttributeError, ValueError, OSError):
        return False


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


def status_line(s: Snapshot, width: int = 80, *, unicode: bool = True) -> str:
    """The status line, at most ``width`` characters.

    The LED bars shrink first (16 cells down to 8); then the optional fields
    go, least useful first: dropped count, rate, frame count; then the bars
    shrink to 3 cells. Below about 30 columns the line is cut.
    """
    lo, hi = ("▕", "▏") if unicode else ("[", "]")

    def led(name: str, level: float | None, cells: int) -> str:
        return f"{name} {lo}{bar(level, cells, unicode=unicode)}{hi}{_pct(level)}"

    optional = [f"  {s.sent:>8} frames", f" {s.rate_hz:7.1f}/s", f"  {s.dropped} dropped" if s.dropped else ""]
    optional = [f for f in optional if f]
    line = ""
    while True:
        # Bars down to 8 cells with the fields; only the bare LEDs get narrower bars.
        for cells in BAR_CELLS if not optional else BAR_CELLS[:4]:
            line = f"{s.state:<10} {led('L', s.left, cells)}  {led('R', s.right, cells)}{''.join(optional)}"
            if len(line) <= width:
                return line
        if not optional:
            return line[:width]
        optional.pop()


class View:
    def __init__(
        self,
        mode: str,
        *,
        out: TextIO | None = None,
        err: TextIO | None = None,
        log_every_s: float = 1.0,
        width: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(mode)
        self.mode = mode
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.unicode = _unicode_ok(self.out)
        self.log_every_s = log_every_s
        self._width = width
        self._start = time.monotonic()
        self._last_log = -float("inf")
        self._line_shown = False
        self._last: Snapshot | None = None
        self._print_at: float | None = None
        self._drawn = (0, 0)
        """Length of the status line last drawn, and the terminal's width then."""

    # ---- terminal ---------------------------------------------------------

    def columns(self) -> int:
        """The terminal's width now (asked on every redraw, so a resize is followed)."""
        if self._width is not None:
            return self._width
        try:
            return os.get_terminal_size(self.out.fileno()).columns or 80
        except (AttributeError, ValueError, OSError):
            return 80

    def _stamp(self) -> str:
        return f"[{time.monotonic() - self._start:7.1f}s]"

    def _back_over_reflow(self, columns: int) -> str:
        """If the terminal got narrower since the status line was drawn, how to get back over it, cleared; else ''.

        Such a terminal re-flowed the line over several rows (tmux, VTE, kitty,
        iTerm do): go up to its first row and clear from there to the end.
        """
        length, drawn_at = self._drawn
        if self._line_shown and columns < drawn_at and length > columns:
            return f"\x1b[{(length - 1) // columns}A\r\x1b[J"
        return ""

    def _clear_line(self) -> None:
        if self._line_shown:
            self.out.write(self._back_over_reflow(self.columns()) or "\r\x1b[K")
            self.out.flush()
            self._line_shown = False

    def _fit(self, message: str) -> str:
        """A message wrapped to the terminal's width, so that a long one does not get cut by the redraw."""
        if self.mode not in ("tty", "lines"):
            return message
        width = max(self.columns() - 1, 20)
        return "\n".join(textwrap.fill(part, width, subsequent_indent="  ", break_on_hyphens=False) or part
                         for part in message.split("\n"))  # fmt: skip

    # ---- messages ---------------------------------------------------------

    def event(self, message: str) -> None:
        """A state change in plain words (connected, daemon down, ...)."""
        if self.mode == "quiet":
            return
        if self.mode == "tty":
            self._clear_line()
            self.out.write(self._fit(message) + "\n")
            if self._last is not None:
                self._draw(self._last)
        elif self.mode == "lines":
            self.out.write(self._fit(message) + "\n")
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

    def error(self, message: str) -> None:
        """The error that ends the run: under the last status line, which stays, and nothing drawn after it."""
        if self.mode == "tty" and self._line_shown:
            self.out.write("\n")
            self.out.flush()
            self._line_shown = False
        self._last = None
        self.err.write(f"gravity-led-client: {message}\n")
        self.err.flush()

    def input_done(self) -> None:
        """``lines`` mode: a line was entered; show the status once the daemon's answer is in."""
        if self.mode == "lines":
            self._print_at = time.monotonic() + AFTER_INPUT_S

    # ---- status -----------------------------------------------------------

    def format(self, s: Snapshot, width: int | None = None) -> str:
        # One column spare: writing the last column makes some terminals wrap at once.
        return status_line(s, (width or self.columns()) - 1, unicode=self.unicode)

    def _draw(self, s: Snapshot) -> None:
        columns = self.columns()
        line = self.format(s, columns)
        self.out.write((self._back_over_reflow(columns) or "\r") + line + "\x1b[K")
        self.out.flush()
        self._line_shown = True
        self._drawn = (len(line), columns)

    def update(self, s: Snapshot) -> None:
        self._last = s
        if self.mode == "tty":
            self._draw(s)
        elif self.mode == "lines":
            if self._print_at is not None and time.monotonic() >= self._print_at:
                self._print_at = None
                self.out.write(self.format(s) + "\n")
                self.out.flush()
        elif self.mode == "log" and s.state == "connected":
            now = time.monotonic()
            if now - self._last_log >= self.log_every_s:
                self._last_log = now
                self.out.write(
                    f"{self._stamp()} {s.state} left={_pct(s.left).strip()} right={_pct(s.right).strip()}"
                    f" frames={s.sent} rate={s.rate_hz:.1f}/s" + (f" dropped={s.dropped}" if s.dropped else "") + "\n"
                )
                self.out.flush()

    def finish(self, summary: str, *, stamp: bool = True) -> None:
        """Leave the status line in place and print the final summary under it (``stamp=False``: as is, even in a log)."""
        if self.mode == "quiet":
            return
        if self.mode == "tty" and self._line_shown:
            self.out.write("\n")
            self._line_shown = False
        self.out.write((f"{self._stamp()} " if self.mode == "log" and stamp else "") + summary + "\n")
        self.out.flush()
