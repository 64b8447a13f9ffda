"""A bounded soak in the test suite (a few seconds at a high
rate, with telemetry, error replies and reconnects) shows flat memory.  The
60 s at 1000 Hz version is a benchmark: tests/benchmarks/bench_soak.py."""

from __future__ import annotations

import asyncio
import time

from websockets.asyncio.client import connect

from gravity_led.daemon.protocol import encode_binary, encode_subscribe

from tests.support.net import rss, text_frame

SOAK_S = 4.0


def test_memory_stays_flat_under_a_few_seconds_of_high_rate_traffic(start_daemon):
    d = start_daemon("--stale-after", "60")

    async def session(seconds: float) -> int:
        sent = 0
        async with connect(d.url, compression=None) as ws:
            await ws.send(encode_subscribe(20))
            deadline = time.monotonic() + seconds
            i = 0
            while time.monotonic() < deadline:
                for _ in range(50):
                    i += 1
                    duty = ((i % 200) - 100) / 101
                    if i % 17 == 0:
                        await ws.send("bad frame")
                    elif i % 2:
                        await ws.send(text_frame(duty))
                    else:
                        await ws.send(encode_binary((0.0, duty, 1.0)))
                    sent += 1
                await asyncio.sleep(0)  # let telemetry in
                while True:  # drain what the daemon sent, without waiting
                    try:
                        await asyncio.wait_for(ws.recv(), 0.0001)
                    except (asyncio.TimeoutError, TimeoutError):
                        break
        return sent

    asyncio.run(session(0.5))  # warm up: imports, caches, first allocations
    d.wait_for(lambda s: s["client"] is None)
    before = rss(d.proc.pid)
    frames0 = d.status()["frames"]
    total = 0
    for _ in range(4):  # reconnects too
        total += asyncio.run(session(SOAK_S / 4))
        d.wait_for(lambda s: s["client"] is None)
    # Every frame parsed (accepted or rejected), or skipped unparsed if the daemon fell behind (superseded).
    frames = d.wait_for(lambda s: sum(s["frames"].values()) - sum(frames0.values()) == total)["frames"]
    after = rss(d.proc.pid)
    assert total > 2000  # it really was a high rate
    assert frames["rejected"] > frames0["rejected"]
    growth_mib = (after - before) / 2**20
    print(f"{total} frames in {SOAK_S} s; RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB")
    assert growth_mib < 3.0, f"RSS grew {growth_mib:.1f} MiB"
