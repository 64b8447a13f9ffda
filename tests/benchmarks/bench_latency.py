"""(8) Latency from the client's send to the PWM write, p50/p99/max, at 60,
200 and 1000 Hz on loopback.  Target: p99 under 1 ms at 200 Hz."""

from __future__ import annotations

import asyncio
import time

from websockets.asyncio.client import connect

from .common import KINDS, RIGHT_PIN, Result, Row, Server, frame_for, percentile

RATES = (60, 200, 1000)
LO, SPAN = 0.05, 0.9


async def _paced(server: Server, rate_hz: float, n: int) -> dict:
    """Send n frames at rate_hz, each with its own duty; match PWM writes."""
    duties = [LO + SPAN * i / n for i in range(n)]
    sent_ns = [0] * n
    async with connect(server.url, compression=None) as ws:
        await ws.send(frame_for(0.01))  # warm up the connection and the pins
        await asyncio.to_thread(server.wait_trace, lambda tr: any(abs(v - 0.01) < 1e-9 for _, p, v in tr if p == RIGHT_PIN), 30.0)
        server.mark_trace()
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.01
        for i, duty in enumerate(duties):
            delay = t0 + i / rate_hz - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            f = frame_for(duty)
            sent_ns[i] = time.monotonic_ns()
            await ws.send(f)
        last = duties[-1]
        trace = await asyncio.to_thread(server.wait_trace, lambda tr: any(abs(v - last) < 1e-9 for _, p, v in tr if p == RIGHT_PIN), 60.0)
    lat_us: list[float] = []
    seen: set[int] = set()
    for t, pin, v in trace:
        if pin != RIGHT_PIN:
            continue
        i = round((v - LO) * n / SPAN)
        if 0 <= i < n and abs(duties[i] - v) < 1e-9 and i not in seen:
            seen.add(i)
            lat_us.append((t - sent_ns[i]) / 1e3)
    return {
        "p50": percentile(lat_us, 0.50),
        "p99": percentile(lat_us, 0.99),
        "max": max(lat_us) if lat_us else float("nan"),
        "written": len(lat_us),
        "n": n,
    }


def run(duration_s: float = 3.0, rates: tuple[int, ...] = RATES) -> Result:
    res: dict[str, dict[int, dict]] = {k: {} for k in KINDS}
    for kind in KINDS:
        with Server(kind) as server:
            for rate in rates:
                res[kind][rate] = asyncio.run(_paced(server, rate, max(10, int(rate * duration_s))))
    rows = []
    for rate in rates:
        d, b = res["daemon"][rate], res["naive"][rate]
        target = "< 1000 us" if rate == 200 else ""
        rows += [
            Row(f"{rate} Hz: p50", "us", d["p50"], b["p50"]),
            Row(f"{rate} Hz: p99", "us", d["p99"], b["p99"], target),
            Row(f"{rate} Hz: max", "us", d["max"], b["max"]),
            Row(f"{rate} Hz: frames written / sent", "%", 100 * d["written"] / d["n"], 100 * b["written"] / b["n"]),
        ]
    return Result(
        8,
        f"Latency, client send -> PWM write ({duration_s:g} s per rate, fast mock pins, loopback)",
        rows,
        [
            "Latency of each frame that reached the pins; the daemon coalesces frames closer than one update tick",
            "(--update-hz, default 250 = 4 ms), so above 250 Hz some frames are replaced by newer ones before a write.",
        ],
    )
