"""(9) CPU per frame (user+sys of the server process, fast mock pins), under a
flood and at a paced 1000 Hz, with the daemon's telemetry on (20 Hz); and
idle CPU with no client (no busy loops: the daemon should sleep until a
frame or a timer)."""

from __future__ import annotations

import asyncio
import time

from websockets.asyncio.client import connect

from .common import CYCLE, KINDS, Result, Row, Server, frame_for, handled, median, subscribe_telemetry

async def _load(server: Server, n: int, rate_hz: float | None) -> float:
    """CPU seconds the server spent on n frames (flood if rate_hz is None)."""
    frames = [frame_for(CYCLE[i % len(CYCLE)]) for i in range(n)]
    async with connect(server.url, compression=None) as ws:
        # Telemetry on: the daemon's figures include it.
        reader = await subscribe_telemetry(ws) if server.kind == "daemon" else None
        await ws.send(frame_for(0.5))
        await asyncio.to_thread(server.wait_frames, 1)
        base = handled(server.status()["frames"])
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
        cpu = server.cpu_s() - cpu0
        if reader is not None:
            reader.cancel()
        return cpu


def _idle(server: Server, seconds: float) -> tuple[float, float]:
    """(CPU %, wake-ups per second) with no client connected."""
    time.sleep(0.3)  # let start-up settle
    cpu0, w0, t0 = server.cpu_s(), server.wakeups(), time.monotonic()
    time.sleep(seconds)
    dt = time.monotonic() - t0
    return 100 * (server.cpu_s() - cpu0) / dt, (server.wakeups() - w0) / dt


def run(n: int = 20_000, paced_s: float = 3.0, idle_s: float = 3.0, repeats: int = 5) -> Result:
    """Both servers run side by side and take turns, ``repeats`` times, so
    that a shared machine's drift (other tenants, CPU frequency) falls on
    both alike; each figure is the median of its turns."""
    floods: dict[str, list[float]] = {k: [] for k in KINDS}
    paced: dict[str, list[float]] = {k: [] for k in KINDS}
    idle: dict[str, tuple[float, float]] = {}
    n_paced = max(10, int(1000 * paced_s))
    with Server("daemon", trace=False) as d, Server("naive", trace=False) as b:
        servers = {"daemon": d, "naive": b}
        for kind, server in servers.items():
            idle[kind] = _idle(server, idle_s)
        for i in range(repeats):
            # Alternate who goes first, too.
            for kind in KINDS if i % 2 == 0 else KINDS[::-1]:
                floods[kind].append(asyncio.run(_load(servers[kind], n, None)) / n)
                paced[kind].append(asyncio.run(_load(servers[kind], n_paced, 1000.0)) / n_paced)
    res = {
        k: {
            "flood_us": 1e6 * median(floods[k]),
            "paced_us": 1e6 * median(paced[k]),
            "paced_pct": 100 * median(paced[k]) * 1000.0,
            "idle_pct": idle[k][0],
            "idle_wakeups": idle[k][1],
        }
        for k in KINDS
    }
    d, b = res["daemon"], res["naive"]
    wins = sum(x < y for x, y in zip(floods["daemon"], floods["naive"])), sum(x < y for x, y in zip(paced["daemon"], paced["naive"]))
    return Result(
        9,
        f"CPU of the server process, fast mock pins, daemon telemetry on (20 Hz): flood of {n:,} frames, {paced_s:g} s at 1000 Hz (median of {repeats} turns each), {idle_s:g} s idle",
        [
            Row("flood: CPU per frame", "us", d["flood_us"], b["flood_us"], "<= naive"),
            Row("1000 Hz: CPU per frame", "us", d["paced_us"], b["paced_us"], "<= naive"),
            Row("1000 Hz: CPU load", "% of a core", d["paced_pct"], b["paced_pct"]),
            Row("idle, no client: CPU load", "% of a core", d["idle_pct"], b["idle_pct"], "~0"),
            Row("idle, no client: context switches", "per s", d["idle_wakeups"], b["idle_wakeups"], "~0"),
        ],
        [
            f"Turns the daemon used less CPU than the baseline: flood {wins[0]}/{repeats}, 1000 Hz {wins[1]}/{repeats}.",
            "CPU = on-CPU time of all the server's threads (Linux: /proc/PID/task/*/schedstat, in ns; elsewhere user+sys in 10 ms ticks).",
        ],
    )
