"""One streaming session: a source, a :class:`Link`, the live view, and a clean ending.

The session waits for the first connection before it starts the source, so
``--count`` and ``replay`` start from the beginning on the daemon, then sends
each vector the source yields until the source ends, ``--count`` frames were
sent, ``--duration`` passed, Ctrl-C/SIGTERM, or the link gives up.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from gravity_led.daemon.protocol import Vector
from gravity_led.daemon.wording import count

from .link import Link, LinkOptions
from .live import Snapshot, View
from .pacing import SendRate
from .recording import Recorder

__all__ = ["StreamOptions", "Summary", "stream", "run_stream"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SourceFactory = Callable[[], AsyncIterator[Vector]]


@dataclass(frozen=True, kw_only=True)
class StreamOptions:
    duration_s: float | None = None
    """Stop this long after streaming started (the first connection)."""
    count: int | None = None
    """Stop after this many frames were sent."""
    record: str | None = None


@dataclass(frozen=True)
class Summary:
    sent: int
    dropped: int
    elapsed_s: float
    """From the first to the last frame sent."""
    connections: int
    interrupted: bool

    @property
    def rate_hz(self) -> float:
        return (self.sent - 1) / self.elapsed_s if self.sent > 1 and self.elapsed_s > 0 else 0.0

    def describe(self) -> str:
        dropped = f", {self.dropped} dropped while disconnected" if self.dropped else ""
        rate = f" ({self.rate_hz:.1f} per second)" if self.elapsed_s >= 0.5 else ""
        return f"sent {count(self.sent, 'frame')} in {self.elapsed_s:.2f} s{rate}{dropped}"


class _Pump:
    """Moves vectors from the source to the link, noting when the first and last frame went out."""

    def __init__(self, link: Link, opts: StreamOptions, recorder: Recorder | None) -> None:
        self.link, self.opts, self.recorder = link, opts, recorder
        self.first_t: float | None = None
        self.last_t: float | None = None

    async def run(self, source: AsyncIterator[Vector]) -> None:
        link, count, recorder = self.link, self.opts.count, self.recorder
        clock = time.monotonic
        async with contextlib.aclosing(source) as vectors:  # type: ignore[type-var]
            async for v in vectors:
                now = clock()
                if recorder is not None:
                    recorder.write(now, v)
                if await link.send(v):
                    self.last_t = now
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


async def _wait_first(*aws: asyncio.Future) -> None:
    await asyncio.wait(aws, return_when=asyncio.FIRST_COMPLETED)


async def stream(make_source: SourceFactory, link_opts: LinkOptions, opts: StreamOptions, view: View) -> Summary:
    """Run a session to its end; raises :class:`ClientError` for failures worth a non-zero exit."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # SIGHUP too: a closed terminal ends the run as cleanly as Ctrl-C.
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    link = Link(link_opts, notify=view.event)
    recorder = Recorder(opts.record) if opts.record else None
    pump = _Pump(link, opts, recorder)
    link_task = asyncio.ensure_future(link.run())
    stop_task = asyncio.ensure_future(stop.wait())
    refresher = asyncio.ensure_future(_refresh(link, view, 0.1 if view.mode in ("tty", "lines") else 0.25))
    pump_task: asyncio.Task[None] | None = None
    try:
        connected = asyncio.ensure_future(link.connected.wait())
        await _wait_first(connected, link_task, stop_task)
        connected.cancel()
        if link.connected.is_set() and not stop.is_set():
            pump_task = asyncio.ensure_future(pump.run(make_source()))
            await asyncio.wait({pump_task, link_task, stop_task}, timeout=opts.duration_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pump_task, stop_task, refresher):
            if task is not None and not task.done():
                task.cancel()
        await asyncio.gather(*(t for t in (pump_task, stop_task, refresher) if t is not None), return_exceptions=True)
        await link.close()
        if not link_task.done():
            link_task.cancel()
        await asyncio.gather(link_task, return_exceptions=True)
        if recorder is not None:
            recorder.close()
        for sig in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)  # (which sets SIG_DFL, so put back what was there)
                if previous[sig] is not None:
                    signal.signal(sig, previous[sig])
    # Failures surface only now, after everything was closed.
    if link_task.done() and not link_task.cancelled() and link_task.exception() is not None:
        raise link_task.exception()  # type: ignore[misc]
    if pump_task is not None and pump_task.done() and not pump_task.cancelled() and pump_task.exception() is not None:
        raise pump_task.exception()  # type: ignore[misc]
    elapsed = (pump.last_t - pump.first_t) if pump.first_t is not None and pump.last_t is not None else 0.0
    return Summary(link.sent, link.dropped, elapsed, link.connections, stop.is_set())


def run_stream(make_source: SourceFactory, link_opts: LinkOptions, opts: StreamOptions, view: View) -> Summary:
    """:func:`stream` in a fresh event loop, printing the summary line at the end."""
    summary = asyncio.run(stream(make_source, link_opts, opts, view))
    view.finish(summary.describe())
    return summary
