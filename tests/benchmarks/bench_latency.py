"""(8) Latency from the client's send to the PWM write, p50/p99/max, at 60,
200 and 1000 Hz on loopback, with a phone's jitter: gaps drawn uniformly from
0.5 to 1.5 times the period, and now and then (1 frame in 25) a burst of 2
or 3 frames back to back, as Wi-Fi batching does.  Target: p99 under 1 ms at
60 and 200 Hz, and the last frame of every burst written.

A third sender, in the same turns, measures the machine's floor: the same
schedule to a bare asyncio TCP server (``floor_server.py``) that does no work.
Neither server can be faster than that floor; where the floor's own p99 is
above the target (a virtual machine whose idle vCPUs the host wakes late), the
daemon's figure is read against it."""

from __future__ import annotations

import asyncio
import json
import random
import struct
import subprocess
import sys
import time
from typing import AsyncIterator

from websockets.asyncio.client import connect

from . import common
from .common import KINDS, RIGHT_PIN, Result, Row, Server, fmt, frame_for, free_port, percentile

RATES = (60, 200, 1000)
LO, SPAN = 0.05, 0.9
TICK_NS = 4_000_000
"""The daemon's default update tick (--update-hz 250)."""
BURST_EVERY = 25
"""One frame in this many starts a burst."""


def schedule(rate_hz: float, n: int, seed: int = 6) -> tuple[list[float], set[int]]:
    """Send times (s from the start) of n frames, and the indices of the last
    frame of each burst."""
    rng = random.Random(seed)
    times, burst_ends = [], set()
    t, i = 0.0, 0
    period = 1.0 / rate_hz
    while i < n:
        size = rng.choice((2, 3)) if rng.randrange(BURST_EVERY) == 0 else 1
        size = min(size, n - i)
        times += [t] * size
        i += size
        if size > 1:
            burst_ends.add(i - 1)
        t += period * rng.uniform(0.5, 1.5)
    return times, burst_ends


async def on_schedule(at: list[float]) -> AsyncIterator[int]:
    """Yield each index of ``at`` at its time (s from now, plus 10 ms to settle)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.01
    for i, t in enumerate(at):
        delay = t0 + t - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        yield i


async def _paced(server: Server, rate_hz: float, n: int) -> dict:
    """Send n frames at rate_hz, jittered, each with its own duty; match PWM writes."""
    duties = [LO + SPAN * i / n for i in range(n)]
    at, burst_ends = schedule(rate_hz, n)
    sent_ns = [0] * n
    async with connect(server.url, compression=None) as ws:
        await ws.send(frame_for(0.01))  # warm up the connection and the pins
        await asyncio.to_thread(server.wait_trace, lambda tr: any(abs(v - 0.01) < 1e-9 for _, p, v in tr if p == RIGHT_PIN), 30.0)
        server.mark_trace()
        async for i in on_schedule(at):
            f = frame_for(duties[i])
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
        "lat_us": lat_us,
        "written": len(lat_us),
        "n": n,
        "bursts": len(burst_ends),
        "burst_ends_written": len(burst_ends & seen),
        # A frame may be replaced by one that comes within a tick (the newest
        # is written); only a burst's end that is neither written nor so
        # replaced is a lost frame.
        "burst_ends_shown": sum(b in seen or (b + 1 < n and sent_ns[b + 1] - sent_ns[b] <= TICK_NS) for b in burst_ends),
    }


class Floor:
    """``floor_server.py`` in its own process (confined like the servers under --pi-zero)."""

    def __init__(self) -> None:
        self.port = free_port()
        preexec = common.CONFINE.enter if common.CONFINE is not None else None
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.benchmarks.floor_server", str(self.port)],
                                     stdout=subprocess.PIPE, text=True, preexec_fn=preexec, cwd=common.ROOT)
        assert self.proc.stdout.readline().strip() == "listening"

    def result(self) -> list[float]:
        out, _ = self.proc.communicate(timeout=60)
        return json.loads(out)


async def _floor(rate_hz: float, n: int) -> dict:
    """The same schedule as _paced, as bare 8-byte stamps to a floor server."""
    at, _ = schedule(rate_hz, n)
    floor = Floor()
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", floor.port)
        async for _ in on_schedule(at):
            writer.write(struct.pack("<q", time.monotonic_ns()))
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        return {"lat_us": await asyncio.to_thread(floor.result)}
    finally:
        if floor.proc.poll() is None:
            floor.proc.kill()
            floor.proc.wait()


def _merge(turns: list[dict]) -> dict:
    lat = [x for t in turns for x in t["lat_us"]]
    out = {k: sum(t[k] for t in turns) for k in ("written", "n", "bursts", "burst_ends_written", "burst_ends_shown")}
    return {**out, "p50": percentile(lat, 0.50), "p99": percentile(lat, 0.99), "max": max(lat) if lat else float("nan")}


def _merge_floor(turns: list[dict]) -> dict:
    lat = [x for t in turns for x in t["lat_us"]]
    return {"p50": percentile(lat, 0.50), "p99": percentile(lat, 0.99)}


def run(duration_s: float = 3.0, rates: tuple[int, ...] = RATES, turns: int = 3) -> Result:
    """Both servers run side by side and take turns (``turns`` per rate, in
    alternating order), so a shared machine's bad moments fall on both alike."""
    kinds = (*KINDS, "floor")
    runs: dict[str, dict[int, list[dict]]] = {k: {r: [] for r in rates} for k in kinds}
    with Server("daemon") as d, Server("naive") as b:
        servers = {"daemon": d, "naive": b}
        for rate in rates:
            n = max(10, int(rate * duration_s / turns))
            for i in range(turns):
                for kind in kinds if i % 2 == 0 else kinds[::-1]:
                    turn = _floor(rate, n) if kind == "floor" else _paced(servers[kind], rate, n)
                    runs[kind][rate].append(asyncio.run(turn))
    res = {k: {r: _merge_floor(runs[k][r]) if k == "floor" else _merge(runs[k][r]) for r in rates} for k in kinds}
    rows = []
    for rate in rates:
        d, b = res["daemon"][rate], res["naive"][rate]
        target = "< 1000 us" if rate <= 200 else ""
        rows += [
            Row(f"{rate} Hz: p50", "us", d["p50"], b["p50"]),
            Row(f"{rate} Hz: p99", "us", d["p99"], b["p99"], target),
            Row(f"{rate} Hz: p99 of a bare socket (floor)", "us", res["floor"][rate]["p99"], res["floor"][rate]["p99"]),
            Row(f"{rate} Hz: max", "us", d["max"], b["max"]),
            Row(f"{rate} Hz: frames written / sent", "%", 100 * d["written"] / d["n"], 100 * b["written"] / b["n"]),
        ]
        if rate <= 200:  # faster, a burst's last frame may be replaced by the next one
            pct = lambda r, key: 100 * r[key] / r["bursts"] if r["bursts"] else 100.0  # noqa: E731
            rows.append(Row(f"{rate} Hz: bursts' last frames written", "%", pct(d, "burst_ends_written"), pct(b, "burst_ends_written")))
            rows.append(Row(f"{rate} Hz: ... or replaced within a tick", "%", pct(d, "burst_ends_shown"), pct(b, "burst_ends_shown"), "100 %"))
    return Result(
        8,
        f"Latency, client send -> PWM write ({duration_s:g} s per rate in {turns} turns taken in alternation, jittered sender with bursts, fast mock pins, loopback)",
        rows,
        [
            "Gaps uniform in 0.5-1.5 periods; 1 frame in 25 starts a burst of 2-3 frames back to back.",
            "Latency of each frame that reached the pins; the daemon writes at most --update-hz (250) times a second on",
            "average (four back to back allowed), so frames of a burst, and above 250 Hz some others, are replaced by newer ones.",
            "Floor: the same schedule to a bare asyncio TCP server that only stamps arrivals (floor_server.py); no server beats it.",
            "Floor p50 " + ", ".join(f"{r} Hz {fmt(res['floor'][r]['p50'])} us" for r in rates) + ".",
        ],
    )
