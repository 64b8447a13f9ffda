"""What every benchmark shares: start the daemon or the naive baseline as a
process on 127.0.0.1 with mock pins, read its PWM write trace, measure its
CPU and memory, print a table."""

from __future__ import annotations

import asyncio
import compileall
import functools
import json
import math
import os
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from gravity_led.daemon.protocol import encode_subscribe

from tests.support.harness import ROOT, Process, clean_env, daemon_cmd, free_port

NAIVE = Path(__file__).resolve().parent / "naive_server.py"
KINDS = ("daemon", "naive")
TRACE_ENV = "GRAVITY_LED_MOCK_WRITE_TRACE"  # daemon/mockpins.py WRITE_TRACE_ENV
RIGHT_PIN = "GPIO18"


CYCLE = (0.1, 0.2, 0.3, 0.4, -0.1, -0.2, -0.3, -0.4)
"""Duties the load generators step through (every frame a different value)."""


async def subscribe_telemetry(ws) -> asyncio.Future:
    """Ask the daemon for telemetry at its highest rate (20 Hz) and read it,
    as the live view does; cancel the returned task when done."""
    await ws.send(encode_subscribe(20))

    async def drain() -> None:
        async for _ in ws:
            pass

    return asyncio.ensure_future(drain())


def frame_for(duty: float) -> str:
    """The article's app format: percent of g, so both servers read the same
    duty (the daemon normalises by length, the naive one divides by 100)."""
    return f"0.0 {100.0 * duty!r} {100.0 * math.sqrt(max(0.0, 1.0 - duty * duty))!r}"


class PiZeroStandIn:
    """Confines the servers (not the load generator) to 10 % of one core,
    pinned to one CPU: a Pi Zero 2 W core is roughly ten times slower than
    one core of a desktop.  A cgroup (v2, else v1's cpu controller) with a
    CPU quota of 1 ms per 10 ms period (the kernel's smallest quota; a
    longer period would stall the server for longer at a time), and
    ``sched_setaffinity`` for the pinning.  Needs root."""

    SHARE = 0.10
    PERIOD_US = 10_000

    def __init__(self) -> None:
        name = f"gravity-led-bench-{os.getpid()}"
        quota = int(self.SHARE * self.PERIOD_US)
        v2 = Path("/sys/fs/cgroup")
        if (v2 / "cgroup.controllers").exists() and "cpu" in (v2 / "cgroup.controllers").read_text().split():
            if "cpu" not in (v2 / "cgroup.subtree_control").read_text().split():
                (v2 / "cgroup.subtree_control").write_text("+cpu")  # OSError if this cgroup may not
            self.path = v2 / name
            self.path.mkdir()
            try:
                (self.path / "cpu.max").write_text(f"{quota} {self.PERIOD_US}")
            except OSError:
                self.path.rmdir()
                raise
        else:
            self.path = Path("/sys/fs/cgroup/cpu") / name
            self.path.mkdir()
            (self.path / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
        self.cpu = max(os.sched_getaffinity(0))
        self.describe = f"{self.SHARE:.0%} of CPU {self.cpu} ({quota} us per {self.PERIOD_US} us, cgroup {self.path})"

    def enter(self) -> None:
        """In the server's process, before exec (``preexec_fn``)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))
        os.sched_setaffinity(0, {self.cpu})

    def throttled(self) -> str:
        """The kernel's count of periods in which the quota ran out (proof it bit)."""
        try:
            stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        except (OSError, ValueError):
            return "cpu.stat unreadable"
        return f"throttled in {stat.get('nr_throttled', '?')} of {stat.get('nr_periods', '?')} periods"

    def close(self) -> None:
        try:
            self.path.rmdir()
        except OSError:
            pass


CONFINE: PiZeroStandIn | None = None
"""Set by ``python -m tests.benchmarks --pi-zero``: every Server runs in it."""


def handled(frames: dict) -> int:
    """Vectors a server took: accepted, or skipped as superseded when the
    daemon fell behind a flood (the naive baseline has no such count)."""
    return frames["accepted"] + frames.get("superseded", 0)


@functools.cache
def compile_package() -> None:
    """Byte-compile the package's modules once, as ``pip install`` does on a
    Pi: both servers then load them from ``__pycache__``, whoever runs the
    benchmarks.  Without this, a shell with ``PYTHONDONTWRITEBYTECODE=1``
    makes every start compile the daemon's ~40 modules from source (a third
    of its start-up under ``--pi-zero``), a cost no installed daemon pays;
    the naive baseline pays it only for the one it imports
    (daemon/mockpins.py)."""
    for folder in ("daemon", "client"):
        compileall.compile_dir(str(ROOT / folder), quiet=1)


class Server:
    """``kind`` = "daemon" (python -m gravity_led.daemon) or "naive" (naive_server.py)."""

    def __init__(self, kind: str, *, write_delay_us: float = 0.0, trace: bool = True, extra: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        assert kind in KINDS
        compile_package()
        self.kind = kind
        self.port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix=f"gl-bench-{kind}-")
        d = Path(self._dir.name)
        self.trace_path = d / "trace" if trace else None
        env = clean_env(**(env or {}))
        if self.trace_path is not None:
            self.trace_path.write_bytes(b"")
            env[TRACE_ENV] = str(self.trace_path)
        if kind == "daemon":
            (d / "empty.toml").write_text("")
            env["GRAVITY_LED_CONFIG"] = str(d / "empty.toml")
            cmd = daemon_cmd(self.port, "--stale-after", "3600", "--log-level", "warning", "--mock-write-delay-us", str(write_delay_us), *extra)
        else:
            cmd = [sys.executable, str(NAIVE), "--port", str(self.port), "--write-delay-us", str(write_delay_us)]
        preexec = CONFINE.enter if CONFINE is not None else None
        # Under the Pi Zero stand-in start-up takes seconds: a longer wait.
        self.process = Process(cmd, d / "log", env=env, ready_url=f"http://127.0.0.1:{self.port}/status", ready_timeout=60.0, preexec_fn=preexec)
        self.proc = self.process.proc
        self.ps = psutil.Process(self.proc.pid)
        self.startup_s = self.process.startup_s
        self._trace_offset = 0
        self.state_at_mark: dict[str, float] = {}

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def status(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status", timeout=10) as r:
            return json.loads(r.read())

    def wait_frames(self, n: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if handled(self.status()["frames"]) >= n:
                    return
            except TimeoutError:  # a server confined by --pi-zero may answer late, behind its flood
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} did not apply {n} frames within {timeout} s")
            time.sleep(0.02)

    # ---- PWM write trace: (monotonic_ns, pin, value) ------------------------

    def mark_trace(self) -> dict[str, float]:
        """Later ``trace()`` calls return only writes after this point;
        returns what each pin holds at this point."""
        self._trace_offset = 0
        state = {pin: v for _, pin, v in self.trace()}
        self._trace_offset = self.trace_path.stat().st_size
        self.state_at_mark = state
        return state

    def trace(self) -> list[tuple[int, str, float]]:
        with open(self.trace_path, "rb") as fh:
            fh.seek(self._trace_offset)
            data = fh.read()
        out = []
        # The daemon may be halfway through writing the last line.
        for line in data[: data.rfind(b"\n") + 1].splitlines():
            t, pin, v = line.split()
            out.append((int(t), pin.decode(), float(v)))
        return out

    def wait_trace(self, pred, timeout: float = 120.0, poll_s: float = 0.002) -> list[tuple[int, str, float]]:
        """Poll the trace until ``pred(trace)`` holds; return the trace."""
        deadline = time.monotonic() + timeout
        while True:
            tr = self.trace()
            if pred(tr):
                return tr
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind}: trace condition not met within {timeout} s; last writes: {tr[-4:]}")
            time.sleep(poll_s)

    # ---- resources -------------------------------------------------------------

    def cpu_s(self) -> float:
        """On-CPU seconds of all the server's threads.  On Linux, the
        scheduler's own nanosecond account (/proc/PID/task/*/schedstat);
        elsewhere user+sys from psutil, in 10 ms clock ticks."""
        try:
            total = 0
            for task in os.scandir(f"/proc/{self.proc.pid}/task"):
                with open(f"{task.path}/schedstat", "rb") as fh:
                    total += int(fh.read().split()[0])
            return total / 1e9
        except (OSError, ValueError, IndexError):
            t = self.ps.cpu_times()
            return t.user + t.system

    def rss_mib(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def wakeups(self) -> int:
        return sum(self.ps.num_ctx_switches())

    def stop(self) -> None:
        self.process.stop()
        self._dir.cleanup()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def first_time_showing(trace: list[tuple[int, str, float]], want: dict[str, float], initial: dict[str, float], tol: float = 1e-9) -> int | None:
    """Replay PWM writes from ``initial``; the first time every pin in ``want`` holds its value."""
    state = dict(initial)
    for t, pin, v in trace:
        state[pin] = v
        if all(abs(state.get(p, math.nan) - w) <= tol for p, w in want.items()):
            return t
    return None


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return math.nan
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


# ---- results and tables -----------------------------------------------------------


@dataclass
class Row:
    metric: str
    unit: str
    daemon: float
    naive: float
    target: str = ""

    @property
    def ratio(self) -> float:
        if self.naive == 0 or math.isnan(self.naive) or math.isnan(self.daemon):
            return math.nan
        return self.daemon / self.naive


@dataclass
class Result:
    number: int
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        head = ("metric", "unit", "daemon", "naive", "daemon/naive", "target")
        body = [(r.metric, r.unit, fmt(r.daemon), fmt(r.naive), fmt(r.ratio, ratio=True), r.target) for r in self.rows]
        widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
        line = lambda cells: "| " + " | ".join(c.ljust(w) if i < 2 or i == 5 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"
        out = [f"({self.number}) {self.title}", line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        out += [line(b) for b in body]
        out += [f"  {n}" for n in self.notes]
        return "\n".join(out)


def fmt(x: float, *, ratio: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if ratio:
        return f"{x:.3g}x" if x < 100 else f"{x:.0f}x"
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else math.nan
