"""Vector sources that are not phones: stdin, replay, a single vector, plus keep-alive.

Every source is an async iterator of :class:`Vector`; the session sends each
one as it comes, so a source sets its own pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from typing import AsyncIterator, Callable, Iterable, TextIO

from gravity_led.daemon.protocol import FrameError, Vector, parse_text

from .formats import flip
from .recording import Sample

__all__ = [
    "HOLD_S",
    "KEEPALIVE_S",
    "constant_source",
    "flipped",
    "keepalive",
    "parse_line",
    "replay_source",
    "stdin_source",
]

KEEPALIVE_S = 0.25
"""Sparse sources repeat their last vector this often: four times inside the daemon's 1 s stale timeout."""
HOLD_S = 2.0
"""Push sources (phones) repeat their last vector for this long at most: a phone that stops sending
(app paused, screen off, out of Wi-Fi) lets the LEDs go dark through the daemon's stale timeout."""


async def keepalive(
    source: AsyncIterator[Vector | None], every_s: float = KEEPALIVE_S, *, hold_s: float | None = None
) -> AsyncIterator[Vector]:
    """Pass ``source`` through, repeating the last vector whenever it is silent for ``every_s``.

    With ``hold_s``, repeats stop once the source has been silent that long
    (a phone that stopped), so the daemon's failsafe darkens the LEDs; the
    next fresh vector starts them again.  Without it (stdin, replay, send) the
    last vector is held for as long as the source is open.  A source yields
    ``None`` to stop the repeats at once (phyphox says it is paused): it is
    not passed on.

    The pending ``__anext__`` lives in its own task, so a timeout never
    cancels (and so never breaks) the wrapped generator.
    """
    it = aiter(source)
    clock = asyncio.get_running_loop().time
    pending: asyncio.Task[Vector | None] | None = None
    last: Vector | None = None
    fresh_at = 0.0
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(it))
            done, _ = await asyncio.wait({pending}, timeout=every_s if last is not None else None)
            if not done:
                if hold_s is not None and clock() - fresh_at >= hold_s:
                    last = None  # held long enough: wait for the phone in silence
                    continue
                yield last  # type: ignore[misc]  # last is set whenever there is a timeout
                continue
            task, pending = pending, None
            try:
                last = task.result()
            except StopAsyncIteration:
                return
            if last is None:
                continue  # the source knows the phone stopped: no hold
            fresh_at = clock()
            yield last
    finally:
        if pending is not None:
            pending.cancel()
            try:
                await pending
            except (asyncio.CancelledError, StopAsyncIteration):
                pass
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()


async def flipped(source: AsyncIterator[Vector]) -> AsyncIterator[Vector]:
    """``source`` with all three axes negated (``--flip``, for iOS apps)."""
    async with contextlib.aclosing(source) as vectors:  # type: ignore[type-var]
        async for v in vectors:
            yield flip(v)


async def constant_source(v: Vector, *, hold: bool = False) -> AsyncIterator[Vector]:
    """One vector; then the stream ends, or with ``hold`` stays open (so :func:`keepalive` repeats it)."""
    yield v
    if hold:
        await asyncio.Event().wait()


def parse_line(line: str) -> Vector | None:
    """One line of ``x y z`` (whitespace and/or a comma); None for blank lines and ``#`` comments.

    Raises :class:`FrameError` for anything else, exactly as the daemon would.
    """
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    return parse_text(text)


def _read_lines_in_thread(stream: TextIO, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    # A plain thread (not run_in_executor): a blocked readline must not keep
    # asyncio.run from returning on Ctrl-C, and a daemon thread never does.
    def pump() -> None:
        try:
            for line in stream:
                loop.call_soon_threadsafe(queue.put_nowait, line)
        except (OSError, ValueError, UnicodeDecodeError):
            pass
        finally:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except RuntimeError:  # loop already closed: nobody is listening
                pass

    threading.Thread(target=pump, name="stdin-reader", daemon=True).start()


async def stdin_source(
    stream: TextIO | None = None,
    *,
    warn: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
) -> AsyncIterator[Vector]:
    """Vectors from lines as they arrive; bad lines are reported with their number and skipped."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    _read_lines_in_thread(stream or sys.stdin, loop, queue)
    lineno = 0
    while (line := await queue.get()) is not None:
        lineno += 1
        try:
            v = parse_line(line)
        except FrameError as e:
            warn(f"stdin line {lineno}: {e.message}; skipped")
            continue
        if v is not None:
            yield v


async def replay_source(
    samples: Iterable[Sample] | list[Sample],
    *,
    speed: float = 1.0,
    loop: bool = False,
    clock: Callable[[], float] | None = None,
) -> AsyncIterator[Vector]:
    """A recording at its own timing (divided by ``speed``), against absolute deadlines."""
    samples = list(samples)
    if not samples:
        return
    clock = clock or asyncio.get_running_loop().time
    t0 = samples[0].t
    span = samples[-1].t - t0
    # One loop lasts the recording plus one average gap, so the seam is not a double frame.
    gap = span / (len(samples) - 1) if len(samples) > 1 else 0.25
    start = clock()
    offset = 0.0
    while True:
        for s in samples:
            due = start + (offset + s.t - t0) / speed
            await asyncio.sleep(max(due - clock(), 0.0))
            yield s.vector
        if not loop:
            return
        offset += span + gap
