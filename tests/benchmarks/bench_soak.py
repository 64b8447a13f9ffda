"""(6) Soak: a steady 1000 Hz stream for a minute, with the daemon's telemetry
on; resident memory sampled every second should stay flat (within a few MiB
of where it started).  Both servers run at once, each with its own client,
so they see the same minute of the machine."""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import connect

from .common import CYCLE, KINDS, Result, Row, Server, frame_for, subscribe_telemetry


async def _stream(server: Server, seconds: float, rate_hz: float, samples: list[float]) -> int:
    n = int(seconds * rate_hz)
    async with connect(server.url, compression=None) as ws:
        reader = await subscribe_telemetry(ws) if server.kind == "daemon" else None
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        samples.append(server.rss_mib())
        next_sample = t0 + 1.0
        for i in range(n):
            delay = t0 + i / rate_hz - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await ws.send(frame_for(CYCLE[i % len(CYCLE)]))
            if loop.time() >= next_sample:
                samples.append(server.rss_mib())
                next_sample += 1.0
        await asyncio.to_thread(server.wait_frames, n, 60.0)  # every frame counted
        samples.append(server.rss_mib())
        if reader is not None:
            reader.cancel()
    return n


def run(seconds: float = 60.0, rate_hz: float = 1000.0) -> Result:
    samples: dict[str, list[float]] = {k: [] for k in KINDS}
    sent: dict[str, int] = {}
    with Server("daemon", trace=False) as d, Server("naive", trace=False) as b:
        servers = {"daemon": d, "naive": b}

        async def both() -> None:
            counts = await asyncio.gather(*(_stream(servers[k], seconds, rate_hz, samples[k]) for k in KINDS))
            sent.update(zip(KINDS, counts))

        asyncio.run(both())
    rows = []
    for name, f in (("RSS at the start", lambda s: s[0]), ("RSS at the end", lambda s: s[-1]), ("RSS peak", max), ("growth: start -> end", lambda s: s[-1] - s[0])):
        rows.append(Row(name, "MiB", f(samples["daemon"]), f(samples["naive"]), "a few MiB" if name.startswith("growth") else ""))
    return Result(
        6,
        f"Soak: {seconds:g} s at {rate_hz:g} Hz ({sent['daemon']:,} frames each; the daemon also sends telemetry at 20 Hz), RSS sampled every second",
        rows,
        [f"{len(samples['daemon'])} samples each."],
    )
