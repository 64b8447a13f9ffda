#!/usr/bin/env python3
"""Achieved send rate of the simulator vs its target, against the real daemon on mock pins.

    python tests/benchmarks/bench_client_rate.py [--seconds 5] [--rates 50,1000] [--json]

For each target rate, streams ``sim`` for ``--seconds`` and prints the rate
the client achieved (frames sent between the first and the last one) and
how many frames the daemon accepted.  The client's own pacing goal is within
2 % of the target up to 1000 Hz.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gravity_led.client.demo import LocalDaemon  # noqa: E402
from gravity_led.client.link import LinkOptions  # noqa: E402
from gravity_led.client.live import View  # noqa: E402
from gravity_led.client.session import StreamOptions, stream  # noqa: E402
from gravity_led.client.sim import SimConfig, sim_source  # noqa: E402


def measure(rate_hz: float, seconds: float) -> dict:
    with LocalDaemon("--log-level", "warning") as daemon:
        cfg = SimConfig(rate_hz=rate_hz, period_s=1.0)
        summary = asyncio.run(
            stream(lambda: sim_source(cfg), LinkOptions(url=daemon.url, max_retries=3), StreamOptions(duration_s=seconds), View("quiet"))
        )
        import urllib.request

        with urllib.request.urlopen(daemon.http_url + "/status", timeout=5) as resp:
            status = json.load(resp)
    achieved = summary.rate_hz
    return {
        "target_hz": rate_hz,
        "seconds": round(summary.elapsed_s, 3),
        "sent": summary.sent,
        "achieved_hz": round(achieved, 2),
        "error_pct": round((achieved - rate_hz) / rate_hz * 100, 2),
        "daemon_accepted": status["frames"]["accepted"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--rates", default="50,1000")
    p.add_argument("--json", action="store_true", help="one JSON object per rate, for tests")
    args = p.parse_args()
    for rate in (float(r) for r in args.rates.split(",")):
        r = measure(rate, args.seconds)
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print(
                f"target {r['target_hz']:7.1f} Hz  achieved {r['achieved_hz']:8.2f} Hz  ({r['error_pct']:+.2f} %)"
                f"  over {r['seconds']:.2f} s  sent {r['sent']}  daemon accepted {r['daemon_accepted']}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
