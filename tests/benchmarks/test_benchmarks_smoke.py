"""A quick smoke of every benchmark in tests/benchmarks with tiny sizes: it
runs, prints its table, and its numbers are sane.  No timed assertions: the
figures themselves mean little at these sizes (run the benchmarks for them)."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import pytest

from tests.benchmarks.run import BENCHMARKS, run_one
from tests.support.harness import ROOT


def finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_benchmark_runs_with_tiny_sizes_and_gives_sane_numbers(name):
    result = run_one(name, "smoke")
    table = result.table()
    assert f"({result.number})" in table and "daemon/naive" in table
    assert len(result.rows) >= 3
    for row in result.rows:
        assert row.metric in table
        for v in (row.daemon, row.naive):
            assert finite(v) and v >= 0, (row.metric, v)
    rows = {r.metric: r for r in result.rows}
    if name == "lag":
        r = rows["PWM writes until then"]
        assert r.naive >= 2 * 299  # the naive baseline writes both pins for every frame
        assert 1 <= r.daemon < r.naive  # the daemon coalesces
        assert rows["lag: last send -> LEDs show the last frame"].daemon > 0
    if name == "latency":
        for rate in (60, 200, 1000):
            p50, p99, mx = (rows[f"{rate} Hz: {k}"] for k in ("p50", "p99", "max"))
            for kind in ("daemon", "naive"):
                assert 0 < getattr(p50, kind) <= getattr(p99, kind) <= getattr(mx, kind)
            assert rows[f"{rate} Hz: frames written / sent"].naive == 100
    if name == "memory":
        assert 5 < rows["RSS idle"].daemon < 500 and rows["start-up: exec -> /status answers"].daemon > 0


def test_the_runner_prints_every_table():
    out = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks", "--smoke", "--only", "lag"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "(7) Stale lag under flood" in out.stdout and "| lag: last send" in out.stdout
    bad = subprocess.run([sys.executable, "tests/benchmarks/run.py", "--only", "nope"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown benchmark" in bad.stderr


def _cgroup_cpu() -> bool:
    """Whether the Pi Zero stand-in can be set up here (root, a cgroup CPU controller)."""
    from tests.benchmarks.common import PiZeroStandIn

    try:
        PiZeroStandIn().close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _cgroup_cpu(), reason="needs root and a cgroup CPU controller")
def test_the_pi_zero_stand_in_confines_the_servers():
    out = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks", "--smoke", "--pi-zero", "--only", "lag"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "Pi Zero stand-in: every server runs on 10% of CPU" in out.stdout and "| lag: last send" in out.stdout
    throttled = re.search(r"throttled in (\d+) of (\d+) periods", out.stdout)
    assert throttled and int(throttled[1]) > 0, "the quota never bit: the servers ran outside the cgroup"
