"""Run every benchmark and print its table (see tests/benchmarks/__init__.py).

    python -m tests.benchmarks [--quick] [--only lag,latency,cpu,memory,soak,pwm,rejects] [--pi-zero]
    python tests/benchmarks/run.py [...]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

if __package__ in (None, ""):  # python tests/benchmarks/run.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    __package__ = "tests.benchmarks"

from importlib import import_module  # noqa: E402

from . import common  # noqa: E402

# name -> (module, full sizes, --quick sizes, smoke sizes)
BENCHMARKS = {
    "lag": ("bench_flood_lag", {}, {"n": 5000, "repeats": 3}, {"n": 300, "write_delay_us": 200.0, "repeats": 1}),
    "latency": ("bench_latency", {}, {"duration_s": 1.0}, {"duration_s": 0.1}),
    "cpu": ("bench_cpu", {}, {"n": 5000, "paced_s": 0.5, "idle_s": 1.0, "repeats": 3}, {"n": 300, "paced_s": 0.05, "idle_s": 0.2, "repeats": 1}),
    "memory": ("bench_memory", {}, {"n": 5000, "connections": 100, "starts": 1}, {"n": 200, "connections": 20, "starts": 1}),
    "soak": ("bench_soak", {}, {"seconds": 10.0}, {"seconds": 0.3}),
    "pwm": ("bench_pwm", {}, {"seconds": 2.0, "repeats": 2}, {"seconds": 0.3, "repeats": 1}),
    "rejects": ("bench_rejects", {}, {"seconds": 1.5, "repeats": 1}, {"seconds": 0.3, "repeats": 1}),
}


PI_ZERO = ("latency", "cpu", "memory", "lag")
"""What --pi-zero runs by default: latency at 60/200 Hz, CPU share, start-up, flood lag."""


def run_one(name: str, size: str = "full"):
    module, full, quick, smoke = BENCHMARKS[name]
    kwargs = {"full": full, "quick": quick, "smoke": smoke}[size]
    mod = import_module(f".{module}", __package__ or "tests.benchmarks")
    return mod.run(**kwargs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.benchmarks", description="gravity-led benchmarks, each with a naive baseline")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a few seconds per benchmark)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks that everything runs; figures mean little")
    ap.add_argument("--only", default=None, help=f"comma-separated subset of {', '.join(BENCHMARKS)} (default: all; with --pi-zero: {','.join(PI_ZERO)})")
    ap.add_argument("--pi-zero", action="store_true", help="a Pi Zero stand-in: run the servers (daemon and naive alike) in a cgroup limited to 10%% of one core, pinned to one CPU; the load generator stays outside (Linux, root)")
    args = ap.parse_args(argv)
    only = args.only if args.only is not None else ",".join(PI_ZERO if args.pi_zero else BENCHMARKS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(unknown)}")
    size = "smoke" if args.smoke else "quick" if args.quick else "full"
    from importlib.metadata import version

    print(f"gravity-led benchmarks ({size}): Python {platform.python_version()}, websockets {version('websockets')}, "
          f"gpiozero {version('gpiozero')}, {os.cpu_count()} CPUs, {platform.machine()}")
    if args.pi_zero:
        try:
            common.CONFINE = common.PiZeroStandIn()
        except OSError as e:
            print(f"python -m tests.benchmarks: --pi-zero needs root and a cgroup CPU controller: {e}", file=sys.stderr)
            return 1
        print(f"Pi Zero stand-in: every server runs on {common.CONFINE.describe}; the load generator outside it")
    try:
        return _run(names, size)
    finally:
        if common.CONFINE is not None:
            print(f"\nPi Zero stand-in: the servers' cgroup was {common.CONFINE.throttled()}.")
            common.CONFINE.close()
            common.CONFINE = None


def _run(names: list[str], size: str) -> int:
    for name in names:
        t0 = time.monotonic()
        result = run_one(name, size)
        print()
        print(result.table())
        print(f"  ({time.monotonic() - t0:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
