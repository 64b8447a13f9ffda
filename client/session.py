"""One streaming session: a source, a :class:`Link`, the live view, and a clean ending.

The session waits for the first connection before it starts the source, so
``--count`` and ``replay`` start from the beginning on the daemon, then sends
each vector the source yields until the source ends, ``--count`` frames were
sent, ``--duration`` passed, Ctrl-C/SIGTERM, or the link gives up.

``--duration`` is a wall-clock limit on the whole run, connecting included:
whatever the daemon or the phone does (down, silent, stopped mid-handshake),
the run ends on time, and one that sent nothing says why and fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Iterator

from gravity_led.daemon.protocol import Vector, encode_text
from gravity_led.daemon.wording import count

from . import ClientError
from .link import Link, LinkOptions
from .live import Snapshot, View
from .pacing import SendRate
from .recording import Recorder

__all__ = ["StreamOptions", "Summary", "led_levels", "stream", "run_stream"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SETTLE_S = 1.0
"""After the source ended by itself, wait at most this long for the daemon's telemetry of the last frame."""
CLOSE_S = 2.0
"""Closing the connection waits at most this long (a daemon that stopped answering cannot hold the exit)."""
SourceFactory = Callable[[], AsyncIterator[Vector]]


@dataclass(frozen=True, kw_only=True)
class StreamOptions:
    duration_s: float | None = None
    """Stop this long after streaming started (the first connection)."""
    count: int | None = None
    """Stop after this many frames were sent."""
    record: str | None = None
    source: str = "the source"
    """What the vectors come from, for the sentence of a run that sent none ("standard input", "the phone app")."""


def led_levels(right: float, left: float) -> str:
    """The LED levels as ``send`` and the summaries say them: "right LED 50%, left LED 0%"."""
    return f"right LED {right * 100:.0f}%, left LED {left * 100:.0f}%"


@dataclass(frozen=True)
class Summary:
    sent: int
    dropped: int
    elapsed_s: float
    """From the first frame sent to the end of sending."""
    connections: int
    interrupted: bool
    leds: tuple[float, float] | None = None
    """(right, left) as the daemon last reported them, if it did after the last frame."""
    only: Vector | None = None
    """The vector, when exactly one was sent."""

    @property
    def rate_hz(self) -> float:
        """Frames divided by the duration as printed (rounded to 10 ms), so the line adds up."""
        shown = round(self.elapsed_s, 2)
        return self.sent / shown if shown > 0 else 0.0

    def describe(self) -> str:
        if self.only is not None and self.leds is not None and self.sent == 1:
            return f"sent {encode_text(self.only)}: {led_levels(*self.leds)}"  # as 'send' says it
        dropped = f", {self.dropped} dropped while disconnected" if self.dropped else ""
        rate = f" ({self.rate_hz:.1f} per second)" if self.elapsed_s >= 0.5 else ""
        leds = f"; at the end: {led_levels(*self.leds)}" if self.leds is not None else ""
        return f"sent {count(self.sent, 'frame')} in {self.elapsed_s:.2f} s{rate}{dropped}{leds}"


class _Pump:
    """Moves vectors from the source to the link, noting when the first and last frame went out."""

    def __init__(self, link: Link, opts: StreamOptions, recorder: Recorder | None) -> None:
        self.link, self.opts, self.recorder = link, opts, recorder
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.last: Vector | None = None

    async def run(self, source: AsyncIterator[Vector]) -> None:
        link, count, recorder = self.link, self.opts.count, self.recorder
        clock = time.monotonic
        async with contextlib.aclosing(source) as vectors:  # type: ignore[type-var]
            async for v in vectors:
                now = clock()
                if recorder is not None:
                    recorder.write(now, v)
                if await link.send(v):
                    self.last_t, self.last = now, v
                    if self.first_t is None:
                        self.first_t = now
                    if count is not None and link.sent >= count:
                        return


async def _refresh(link: Link, view: View, period_s: float) -> None:
    meter = SendRate()
    while True:
        t = link.telemetry
        fresh = time.monotonic() - t.received_at < 1.0 and link.ws is not None
        view.update(
            Snapshot(
                state=link.state.value,
                right=t.right if fresh else None,
                left=t.left if fresh else None,
                sent=link.sent,
                rate_hz=meter.update(time.monotonic(), link.sent),
                dropped=link.dropped,
            )
        )
        await asyncio.sleep(period_s)


async def _settle(link: Link, sent_at: float, limit_s: float) -> None:
    """Wait (at most ``limit_s``) for telemetry sent after the frame of ``sent_at``: the LEDs it caused."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and link.ws is not None and link.telemetry.received_at <= sent_at + 0.03:
        await asyncio.sleep(0.01)


def _final_leds(link: Link, last_t: float | None) -> tuple[float, float] | None:
    t = link.telemetry
    if last_t is None or t.received_at <= last_t or t.right is None or t.left is None:
        return None
    return (t.right, t.left)


async def stream(make_source: SourceFactory, link_opts: LinkOptions, opts: StreamOptions, view: View) -> Summary:
    """Run a session to its end; raises :class:`ClientError` for failures worth a non-zero exit."""
    loop = asyncio.get_running_loop()
    started = time.monotonic()

    def left_s() -> float | None:
        return None if opts.duration_s is None else max(started + opts.duration_s - time.monotonic(), 0.0)

    stop = asyncio.Event()
    with _signals_set(stop, loop):
        return await _stream(make_source, link_opts, opts, view, stop, started, left_s)


@contextlib.contextmanager
def _signals_set(stop: asyncio.Event, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP (a closed terminal) set ``stop``; what was there before is put back after."""
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)  # (which sets SIG_DFL, so put back what was there)
                if previous[sig] is not None:
                    signal.signal(sig, previous[sig])


async def _stream(
    make_source: SourceFactory, link_opts: LinkOptions, opts: StreamOptions, view: View,
    stop: asyncio.Event, started: float, left_s: Callable[[], float | None],
) -> Summary:  # fmt: skip
    link = Link(link_opts, notify=view.event)
    recorder = Recorder(opts.record) if opts.record else None
    pump = _Pump(link, opts, recorder)
    link_task = asyncio.ensure_future(link.run())
    stop_task = asyncio.ensure_future(stop.wait())
    refresher = asyncio.ensure_future(_refresh(link, view, 0.1 if view.mode in ("tty", "lines") else 0.25))
    pump_task: asyncio.Task[None] | None = None
    ended_at: float | None = None
    try:
        connected = asyncio.ensure_future(link.connected.wait())
        await asyncio.wait({connected, link_task, stop_task}, timeout=left_s(), return_when=asyncio.FIRST_COMPLETED)
        connected.cancel()
        if link.connected.is_set() and not stop.is_set():
            pump_task = asyncio.ensure_future(pump.run(make_source()))
            await asyncio.wait({pump_task, link_task, stop_task}, timeout=left_s(), return_when=asyncio.FIRST_COMPLETED)
            ended_at = time.monotonic()
            ended_itself = pump_task.done() and not pump_task.cancelled() and pump_task.exception() is None
            if ended_itself and pump.last_t is not None and (opts.count is None or link.sent < opts.count):
                # The source ended by itself (stdin, replay): show the LEDs its last vector caused, as send does.
                left = left_s()
                await _settle(link, pump.last_t, SETTLE_S if left is None else min(SETTLE_S, left))
    finally:
        for task in (pump_task, stop_task, refresher):
            if task is not None and not task.done():
                task.cancel()
        await asyncio.gather(*(t for t in (pump_task, stop_task, refresher) if t is not None), return_exceptions=True)
        try:
            async with asyncio.timeout(CLOSE_S):  # (not wait_for: see Link._serve)
                await link.close()
        except TimeoutError:
            pass
        if not link_task.done():
            link_task.cancel()
        await asyncio.gather(link_task, return_exceptions=True)
        if recorder is not None:
            recorder.close()
    # Failures surface only now, after everything was closed.
    if link_task.done() and not link_task.cancelled() and link_task.exception() is not None:
        raise link_task.exception()  # type: ignore[misc]
    if pump_task is not None and pump_task.done() and not pump_task.cancelled() and pump_task.exception() is not None:
        raise pump_task.exception()  # type: ignore[misc]
    if link.sent == 0:
        raise _nothing_sent(link, opts, pump_task is not None, time.monotonic() - started, stop.is_set())
    elapsed = (ended_at or pump.last_t or 0.0) - (pump.first_t or 0.0)
    return Summary(
        link.sent, link.dropped, elapsed, link.connections, stop.is_set(),
        leds=_final_leds(link, pump.last_t), only=pump.last if link.sent == 1 else None,
    )  # fmt: skip


def _nothing_sent(link: Link, opts: StreamOptions, reached: bool, elapsed_s: float, stopped: bool) -> ClientError:
    """The one sentence for a run that sent no frame: why, in the user's terms."""
    within = "before it was stopped" if stopped else f"within --duration {opts.duration_s:g} s" if opts.duration_s else f"in {elapsed_s:.1f} s"
    if not reached:
        return ClientError(f"sent nothing {within}: {link.problem or f'the daemon at {link.opts.url} did not answer'}")
    return ClientError(f"sent nothing {within}: {opts.source} gave no vector")


def run_stream(make_source: SourceFactory, link_opts: LinkOptions, opts: StreamOptions, view: View) -> Summary:
    """:func:`stream` in a fresh event loop, printing the summary line at the end."""
    summary = asyncio.run(stream(make_source, link_opts, opts, view))
    view.finish(summary.describe())
    return summary
