"""(10) Memory (RSS) idle, after a frame flood and after a burst of
connections; start-up time from exec to /status answering."""

from __future__ import annotations

import asyncio
import time

from websockets.asyncio.client import connect

from .common import CYCLE, KINDS, Result, Row, Server, frame_for, handled, median

async def _flood(server: Server, n: int) -> None:
    async with connect(server.url, compression=None) as ws:
        base = handled(server.status()["frames"])
        for i in range(n):
            await ws.send(frame_for(CYCLE[i % len(CYCLE)]))
        await asyncio.to_thread(server.wait_frames, base + n, 300.0)


async def _burst(server: Server, n: int) -> None:
    """n WebSocket connections at once, held open briefly, then closed."""

    async def one() -> None:
        try:
            async with connect(server.url, compression=None, open_timeout=20, close_timeout=2) as ws:
                await ws.send(frame_for(0.3))
                await asyncio.sleep(0.5)
        except Exception:  # dropped by the daemon's cap, or told "busy": expected
            pass

    await asyncio.gather(*(one() for _ in range(n)))


def run(n: int = 20_000, connections: int = 200, starts: int = 5) -> Result:
    # Starts in alternation (daemon, naive, daemon, ...), so a machine whose
    # speed drifts moves both alike; wall time and the CPU the start took
    # (the latter steady under --pi-zero's quota, which stretches the former).
    wall: dict[str, list[float]] = {kind: [] for kind in KINDS}
    cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _ in range(starts - 1):
        for kind in KINDS:
            with Server(kind, trace=False) as s:
                wall[kind].append(s.startup_s)
                cpu[kind].append(s.cpu_s())
    res: dict[str, dict] = {}
    for kind in KINDS:
        with Server(kind, trace=False) as server:
            wall[kind].append(server.startup_s)
            cpu[kind].append(server.cpu_s())
            time.sleep(0.3)
            idle = server.rss_mib()
            asyncio.run(_flood(server, n))
            after_flood = server.rss_mib()
            asyncio.run(_burst(server, connections))
            time.sleep(0.3)
            after_burst = server.rss_mib()
            res[kind] = {"wall_ms": 1000 * median(wall[kind]), "cpu_ms": 1000 * median(cpu[kind]), "idle": idle, "flood": after_flood, "burst": after_burst}
    d, b = res["daemon"], res["naive"]
    return Result(
        10,
        f"Memory and start-up (median of {starts} starts each, in alternation; flood of {n:,} frames; {connections} connections at once)",
        [
            Row("start-up: exec -> /status answers", "ms", d["wall_ms"], b["wall_ms"]),
            Row("CPU of that start-up", "ms", d["cpu_ms"], b["cpu_ms"]),
            Row("RSS idle", "MiB", d["idle"], b["idle"]),
            Row("RSS after the frame flood", "MiB", d["flood"], b["flood"]),
            Row(f"RSS after {connections} connections", "MiB", d["burst"], b["burst"]),
            Row("growth: idle -> after both", "MiB", d["burst"] - d["idle"], b["burst"] - b["idle"], "a few MiB"),
        ],
    )
