"""Loose check of the simulator's pacing; tests/benchmarks/bench_client_rate.py prints the real figure."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.client_fixtures import ROOT, client_env


def test_achieved_rate_at_50_and_1000_hz_is_close_to_target() -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "benchmarks" / "bench_client_rate.py"), "--seconds", "2", "--rates", "50,1000", "--json"],
        cwd=ROOT, env=client_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    results = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["target_hz"] for x in results] == [50, 1000]
    for x in results:
        # Loose on purpose (shared CI machines); the goal is 2 %, the benchmark reports it.
        assert abs(x["error_pct"]) < 10, x
        assert x["sent"] >= 0.85 * x["target_hz"] * 2, x
        # Every frame sent reached the daemon and was accepted.
        assert x["daemon_accepted"] == x["sent"], x
