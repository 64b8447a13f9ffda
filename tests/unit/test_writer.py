"""The LED writer (daemon/writer.py), in-process with a fake clock: what it
writes and when, for every pattern of arrivals."""

from __future__ import annotations

import bisect
import math
import random

import pytest

from gravity_led.daemon.mapping import OFF, Duties, Mapping
from tests.support.harness import tilt as harness_tilt
from gravity_led.daemon.protocol import Vector
from gravity_led.daemon.writer import BURST_WRITES, HOLD_AFTER_FRAMES, Plan, Writer

TICK = 0.004  # update_hz 250, the default


def make(**kw) -> Writer:
    opts = dict(mapping=Mapping(), update_hz=1 / TICK, frequency_hz=100.0, smoothing_s=0.0, stale_after_s=1.0)
    opts.update(kw)
    return Writer(**opts)


def tilt(duty: float) -> Vector:
    """:func:`tests.support.harness.tilt` as the writer takes it."""
    return Vector(*harness_tilt(duty))


class Sim:
    """Drives a Writer as daemon/driver.py does, on a fake clock: one timer,
    reads held or not; records every write as (time, duties)."""

    def __init__(self, w: Writer) -> None:
        self.w = w
        self.now = 0.0
        self.timer: float | None = None
        self.held = False
        self.waiting: list[Vector] = []  # frames in the kernel while reads are held
        self.writes: list[tuple[float, Duties]] = []
        self.stale_writes = 0

    def apply(self, plan: Plan) -> None:
        if plan.write is not None:
            self.writes.append((self.now, plan.write))
            self.stale_writes += plan.stale
        self.timer = plan.timer_at
        if self.held and not plan.hold_reads and self.waiting:
            self.held = False
            self.read(self.waiting)  # the waiting frames arrive as one read
            self.waiting = []
        self.held = plan.hold_reads

    def read(self, vectors: list[Vector]) -> None:
        for v in vectors:
            self.w.vector(v, self.now)
        self.apply(self.w.read_ended(self.now))

    def advance(self, t: float) -> None:
        """Run timers due up to ``t``, then set the clock to ``t``."""
        while self.timer is not None and self.timer <= t:
            self.now = max(self.now, self.timer)
            self.apply(self.w.timer_fired(self.now))
        self.now = t

    def frame(self, t: float, v: Vector) -> None:
        self.advance(t)
        if self.held:
            self.waiting.append(v)
        else:
            self.read([v])


def test_first_frame_is_written_at_once():
    s = Sim(make())
    s.frame(1.0, tilt(0.5))
    assert s.writes == [(1.0, Duties(pytest.approx(0.5), 0.0))]


def test_a_frame_too_soon_is_written_when_due_not_a_tick_later():
    s = Sim(make())
    times = [1.0 + 0.0005 * i for i in range(BURST_WRITES + 1)]
    for i, t in enumerate(times):  # the bucket lets BURST_WRITES through, the next waits
        s.frame(t, tilt(0.1 * (i + 1)))
    assert [t for t, _ in s.writes] == times[:-1]
    assert s.timer == pytest.approx(1.0 + TICK)  # due when the bucket allows: 1 tick after the first write
    s.advance(1.1)
    assert s.writes[-1] == (pytest.approx(1.0 + TICK), Duties(pytest.approx(0.1 * len(times)), 0.0))
    assert len(s.writes) == len(times)


def test_a_burst_in_one_read_costs_one_write_of_the_newest():
    s = Sim(make())
    s.read([tilt(0.1), tilt(0.2), tilt(0.3)])
    assert s.writes == [(0.0, Duties(pytest.approx(0.3), 0.0))]


def test_a_jittered_sender_slower_than_the_tick_is_written_as_it_comes():
    """200 Hz with a phone's jitter (gaps 0.5-1.5 x 5 ms) and Wi-Fi bursts
    (2-3 frames at once, each its own read) against a 4 ms tick."""
    rng = random.Random(1)
    s = Sim(make())
    t, arrivals = 1.0, []
    for i in range(2000):
        t += 0.005 * rng.uniform(0.5, 1.5)
        for _ in range(rng.choice((2, 3)) if rng.randrange(25) == 0 else 1):
            s.frame(t, tilt(0.1 + (i % 7) / 10))
            arrivals.append(t)
    s.advance(t + 1.0)
    write_times = [w for w, _ in s.writes]
    # Each write is of the newest vector: the first write at or after a
    # frame's arrival shows it (or a newer one).
    waits = [write_times[bisect.bisect_left(write_times, a)] - a for a in arrivals]
    late = sum(w > 0.001 for w in waits)
    assert late < len(arrivals) * 0.01, f"{late} of {len(arrivals)} frames waited over 1 ms"


def test_read_holding_under_a_flood():
    s = Sim(make())
    t = 1.0
    for i in range(BURST_WRITES + HOLD_AFTER_FRAMES):  # frames 0.1 ms apart
        s.frame(t, tilt(0.2))
        t += 0.0001
    assert s.held, "a sender much faster than the tick is held"
    # A long flood: at most one write per tick, the newest always written.
    n = 10_000
    for i in range(n):
        s.frame(t, tilt(0.1 + 0.8 * i / n))
        t += 0.00002
    s.advance(t + 1.0)
    times = [w for w, _ in s.writes]
    span = times[-1] - times[0]
    assert len(times) <= span / TICK + BURST_WRITES
    assert s.writes[-1][1].right == pytest.approx(0.1 + 0.8 * (n - 1) / n)
    assert not s.held, "a sender that stopped is no longer held"


def test_holding_stops_when_the_sender_slows_down():
    s = Sim(make())
    t = 1.0
    for _ in range(20):
        s.frame(t, tilt(0.2))
        t += 0.0001
    assert s.held
    t += 0.05
    for _ in range(5):
        s.frame(t, tilt(0.3))
        t += 0.02  # 50 Hz now
    assert not s.held
    assert s.writes[-1] == (pytest.approx(t - 0.02), Duties(pytest.approx(0.3), 0.0))


def test_stale_blackout_once_per_stale_period():
    s = Sim(make(stale_after_s=1.0))
    s.frame(1.0, tilt(0.5))
    assert s.timer == pytest.approx(2.0)
    s.frame(1.5, tilt(0.5))  # the stale check is moved when it fires, not per frame
    assert s.timer == pytest.approx(2.0)
    s.advance(2.0)
    assert s.timer == pytest.approx(2.5) and s.stale_writes == 0
    s.advance(2.5)
    assert s.writes[-1] == (2.5, OFF) and s.stale_writes == 1
    assert s.timer is None, "nothing more to do: no timer"


def test_smoothing_eases_once_per_pwm_period_then_snaps():
    s = Sim(make(smoothing_s=0.05, frequency_hz=100.0))
    s.frame(1.0, tilt(0.8))
    s.advance(1.5)
    times = [t for t, _ in s.writes]
    assert len(times) > 5
    easing = times[:-1]  # the last write snaps to the exact target, a tick after
    assert all(b - a >= 0.01 - 1e-9 for a, b in zip(easing, easing[1:])), "no faster than the 100 Hz PWM period"
    values = [d.right for _, d in s.writes]
    assert values == sorted(values) and values[-1] == pytest.approx(0.8)
    assert s.timer == pytest.approx(2.0), "settled: only the stale check is left"


def test_release_blacks_out_and_forgets():
    w = make()
    s = Sim(w)
    s.frame(1.0, tilt(0.5))
    s.frame(1.0001, tilt(0.6))
    s.frame(1.0002, tilt(0.7))
    assert w.release() == OFF
    assert w.timer_at is None and w.latest is None and not w.holding


def test_reconfigure_shows_the_new_mapping_at_once():
    w = make()
    s = Sim(w)
    s.frame(1.0, tilt(0.5))
    s.advance(1.1)
    s.apply(w.reconfigure(mapping=Mapping(invert=True), smoothing_s=0.0, stale_after_s=1.0, now=s.now))
    assert s.writes[-1] == (1.1, Duties(0.0, pytest.approx(0.5)))


@pytest.mark.parametrize("seed", range(20))
def test_the_newest_vector_is_always_written_within_one_tick(seed):
    """Random arrivals (bursts, floods, pauses): every frame's value, or a
    newer frame's, reaches the LEDs within one tick of its arrival."""
    rng = random.Random(seed)
    s = Sim(make())
    t = 1.0
    arrivals: list[tuple[float, int]] = []
    for i in range(3000):
        t += rng.choice([0.0, 0.00005, 0.001, 0.003, 0.005, 0.02, rng.uniform(0, 0.01)])
        s.frame(t, Vector(0.0, 1.0 + i, 1.0))  # y encodes the index
        arrivals.append((t, i))
    s.advance(t + 0.5)
    written = [(wt, round(d.right / math.sqrt(1 - d.right**2)) - 1) for wt, d in s.writes if d.right > 0]
    j = 0
    for at, i in arrivals:
        while written[j][1] < i:
            j += 1
        assert written[j][0] - at <= TICK + 1e-9, f"frame {i} at {at:.6f} first shown at {written[j][0]:.6f}"
    gaps = [b - a for (a, _), (b, _) in zip(written, written[1:])]
    # The bucket: never more than BURST_WRITES writes within one tick.
    times = [wt for wt, _ in written]
    for k in range(len(times) - BURST_WRITES):
        assert times[k + BURST_WRITES] - times[k] >= TICK - 1e-9
    assert min(gaps) >= 0


def test_a_flood_of_rejected_frames_gets_read_holding_too():
    # Issue 21.3: a flood of rejects was read as fast as it came, while one
    # of vectors is held until the next tick.  Now a read with at least
    # HOLD_AFTER_FRAMES rejects (and no vector) holds the reads for one tick;
    # the LEDs do not change.
    w = make()
    w.vector(tilt(0.5), 1.0)
    assert w.read_ended(1.0).write is not None
    w.rejected(HOLD_AFTER_FRAMES - 1, 1.001)
    assert not w.read_ended(1.001).hold_reads, "a few bad frames are not a flood"
    w.rejected(1, 1.002)  # counted across reads, as vectors are
    plan = w.read_ended(1.002)
    assert plan.hold_reads and plan.write is None and plan.timer_at == pytest.approx(1.002 + TICK)
    w.rejected(50, 1.003)  # more while held: the hold does not grow
    assert w.timer_at == pytest.approx(1.002 + TICK)
    plan = w.timer_fired(1.002 + TICK)
    assert not plan.hold_reads and plan.write is None, "resumed; nothing written"
    assert w.last_vector_t == 1.0, "rejects do not keep the LEDs from going stale"
    assert w.timer_at == pytest.approx(2.0)  # the stale check stays
