"""(9) CPU per frame (user+sys of the server process, fast mock pins), under a
flood and at a paced 1000 Hz, and idle CPU with no client (no busy loops:
the daemon should sleep until a frame or a timer)."""

from __future__ import annotations

import asyncio
import time

from websockets.asyncio.client import connect

from .common import KINDS, Result, Row, Server, frame_for

CYCLE = (0.1, 0.2, 0.3, 0.4, -0.1, -0.2, -0.3, -0.4)


async def _load(server: Server, n: int, rate_hz: float | None) -> float:
    """CPU seconds the server spent on n frames (flood if rate_hz is None)."""
    frames = [frame_for(CYCLE[i % len(CYCLE)]) for i in range(n)]
    async with connect(server.url, compression=None) as ws:
        await ws.send(frame_for(0.5))
        await asyncio.to_thread(server.wait_frames, 1)
        base = server.status()["frames"]["accepted"]
        cpu0 = server.cpu_s()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i, f in enumerate(frames):
            if rate_hz is not None:
                delay = t0 + i / rate_hz - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            await ws.send(f)
        await asyncio.to_thread(server.wait_frames, base + n, 300.0)
        return server.cpu_s() - cpu0


def _idle(server: Server, seconds: float) -> tuple[float, float]:
    """(CPU %, wake-ups per second) with no client connected."""
    time.sleep(0.3)  # let start-up settle
    cpu0, w0, t0 = server.cpu_s(), server.wakeups(), time.monotonic()
    time.sleep(seconds)
    dt = time.monotonic() - t0
    return 100 * (server.cpu_s() - cpu0) / dt, (server.wakeups() - w0) / dt


def run(n: int = 20_000, paced_s: float = 5.0, idle_s: float = 3.0) -> Result:
    res: dict[str, dict] = {}
    for kind in KINDS:
        with Server(kind, trace=False) as server:
            idle_cpu, idle_wakeups = _idle(server, idle_s)
            # Median of three floods: one flood is a few hundred ms of CPU,
            # measured in 10 ms clock ticks.
            flood = sorted(asyncio.run(_load(server, n, None)) for _ in range(3))[1]
            n_paced = max(10, int(1000 * paced_s))
            paced = asyncio.run(_load(server, n_paced, 1000.0))
            res[kind] = {
                "flood_us": 1e6 * flood / n,
                "paced_us": 1e6 * paced / n_paced,
                "paced_pct": 100 * paced / (n_paced / 1000.0),
                "idle_pct": idle_cpu,
                "idle_wakeups": idle_wakeups,
            }
    d, b = res["daemon"], res["naive"]
    return Result(
        9,
        f"CPU of the server process (user+sys), fast mock pins: flood of {n:,} frames (median of 3), {paced_s:g} s at 1000 Hz, {idle_s:g} s idle",
        [
            Row("flood: CPU per frame", "us", d["flood_us"], b["flood_us"], "<= naive"),
            Row("1000 Hz: CPU per frame", "us", d["paced_us"], b["paced_us"], "<= naive"),
            Row("1000 Hz: CPU load", "% of a core", d["paced_pct"], b["paced_pct"]),
            Row("idle, no client: CPU load", "% of a core", d["idle_pct"], b["idle_pct"], "~0"),
            Row("idle, no client: context switches", "per s", d["idle_wakeups"], b["idle_wakeups"], "~0"),
        ],
        ["psutil cpu_times resolution is one clock tick (10 ms): idle figures of 0 mean < 10 ms in the window."],
    )
