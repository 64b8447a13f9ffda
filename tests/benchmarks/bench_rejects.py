"""(12) Rejected frames cost no more than accepted ones (issue 21.3): the
holder floods 125-byte text frames for a while, valid vectors in one run and
a frame the daemon rejects (``1 1 1 ... 1``, 63 numbers) in another; a
second client asks for ``/healthz`` every 20 ms meanwhile.  Reported: the
server's CPU per frame and the health check's p90, valid and rejected side
by side, each the median of alternating runs.  Target: a rejected frame
costs <= 1.5x a valid one, in CPU and in the health check's p90.  The naive baseline (no checks:
it reads both as numbers) has only ``/status``, which it answers instead."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request

from websockets.asyncio.client import connect

from .common import Result, Row, Server, median, percentile

NUMBER = "9.806650000000000000000000000000000000001"
VALID = f"0.{NUMBER[2:]} {NUMBER} 0.{NUMBER[2:]}"
REJECTED = " ".join(["1"] * 63)
assert len(VALID) == len(REJECTED) == 125
PROBE_EVERY_S = 0.02


def _probe(url: str, stop: threading.Event, out: list[float]) -> None:
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                r.read()
            out.append((time.monotonic() - t0) * 1000)
        except OSError:
            out.append(10_000.0)
        stop.wait(PROBE_EVERY_S)


async def _flood(server: Server, frame: str, seconds: float) -> dict:
    health = f"http://127.0.0.1:{server.port}/{'healthz' if server.kind == 'daemon' else 'status'}"
    latencies: list[float] = []
    stop = threading.Event()
    async with connect(server.url, compression=None, max_size=None) as ws:
        cpu0 = server.cpu_s()
        prober = threading.Thread(target=_probe, args=(health, stop, latencies))
        prober.start()
        sent = 0
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            for _ in range(100):
                await ws.send(frame)
            sent += 100
        stop.set()
        await asyncio.to_thread(prober.join)
        # Every frame read before the CPU is counted (the connection stays open).
        await asyncio.to_thread(_wait_read, server, sent)
        cpu = server.cpu_s() - cpu0
    return {"cpu_us_per_frame": cpu / sent * 1e6, "p90_ms": percentile(latencies, 0.9), "sent": sent, "probes": len(latencies)}


def _wait_read(server: Server, sent: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        f = server.status()["frames"]
        if f["accepted"] + f.get("rejected", 0) + f.get("superseded", 0) >= sent:
            return
        time.sleep(0.01)


def run(seconds: float = 3.0, repeats: int = 3) -> Result:
    # Valid and rejected runs alternate, each its own server, and each figure
    # is the median of ``repeats``: on a shared machine one run's p90 can be
    # another program's doing.
    runs: dict[tuple[str, str], list[dict]] = {}
    for _ in range(repeats):
        for kind in ("daemon", "naive"):
            for name, frame in (("valid", VALID), ("rejected", REJECTED)):
                with Server(kind, trace=False) as server:
                    runs.setdefault((kind, name), []).append(asyncio.run(_flood(server, frame, seconds)))
    res = {key: {x: median([r[x] for r in rs]) for x in rs[0]} for key, rs in runs.items()}
    d = lambda k, m, x: res[k, m][x]  # noqa: E731
    ratio = lambda k, x: d(k, "rejected", x) / d(k, "valid", x)  # noqa: E731
    return Result(
        12,
        f"Rejected vs valid frames: the holder floods 125-byte text frames for {seconds:g} s; /healthz every {PROBE_EVERY_S * 1000:g} ms; medians of {repeats} alternating runs",
        [
            Row("valid: CPU per frame", "us", d("daemon", "valid", "cpu_us_per_frame"), d("naive", "valid", "cpu_us_per_frame")),
            Row("rejected: CPU per frame", "us", d("daemon", "rejected", "cpu_us_per_frame"), d("naive", "rejected", "cpu_us_per_frame")),
            Row("valid: /healthz p90", "ms", d("daemon", "valid", "p90_ms"), d("naive", "valid", "p90_ms")),
            Row("rejected: /healthz p90", "ms", d("daemon", "rejected", "p90_ms"), d("naive", "rejected", "p90_ms")),
            Row("rejected / valid: CPU per frame", "x", ratio("daemon", "cpu_us_per_frame"), ratio("naive", "cpu_us_per_frame"), "<= 1.5"),
            Row("rejected / valid: /healthz p90", "x", ratio("daemon", "p90_ms"), ratio("naive", "p90_ms"), "<= 1.5"),
        ],
        [
            f"Frames sent: valid {d('daemon', 'valid', 'sent'):,}, rejected {d('daemon', 'rejected', 'sent'):,} (the daemon holds a flood's reads, so the sender is paced by TCP).",
            "The naive baseline takes '1 1 1 ... 1' as numbers (it checks nothing), and answers /status, its only endpoint.",
        ],
    )
