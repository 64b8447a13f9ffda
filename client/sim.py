"""A simulated phone: tilt patterns turned into physically sensible gravity vectors.

A phone lying flat reads gravity on its z axis; tilting it by ``theta``
about its long axis moves part of ``g`` onto y: ``(0, g sin theta, g cos theta)``.
That vector always has length g, which is what a real gravity sensor
reports, and the daemon's rule (``y / |v|``) turns it into ``sin theta``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import AsyncIterator

from gravity_led.daemon.protocol import STANDARD_GRAVITY, Vector

from .pacing import Pacer

__all__ = ["PATTERNS", "SimConfig", "Simulator", "vector_for_tilt", "sim_source"]

PATTERNS = ("rock", "sweep", "walk", "steps")
"""rock: smooth sine tilt; sweep: full left to full right, then again;
walk: random walk within +-amplitude; steps: fixed tilts held in turn."""


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    pattern: str = "rock"
    rate_hz: float = 50.0
    period_s: float = 4.0
    amplitude_deg: float = 90.0
    noise_deg: float = 0.0
    steps_deg: tuple[float, ...] | None = None
    percent: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {', '.join(PATTERNS)}, not {self.pattern!r}")
        if not (math.isfinite(self.rate_hz) and self.rate_hz > 0):
            raise ValueError(f"rate must be a positive number of frames per second, not {self.rate_hz}")
        if not (math.isfinite(self.period_s) and self.period_s > 0):
            raise ValueError(f"period must be a positive number of seconds, not {self.period_s}")
        if not (math.isfinite(self.amplitude_deg) and 0 <= self.amplitude_deg <= 180):
            raise ValueError(f"amplitude must be between 0 and 180 degrees, not {self.amplitude_deg}")
        if not (math.isfinite(self.noise_deg) and self.noise_deg >= 0):
            raise ValueError(f"noise must be a non-negative number of degrees, not {self.noise_deg}")
        if self.steps_deg is not None and not self.steps_deg:
            raise ValueError("steps needs at least one angle")

    @property
    def levels(self) -> tuple[float, ...]:
        """Angles of the ``steps`` pattern: explicit, or five evenly spaced across the amplitude."""
        if self.steps_deg is not None:
            return self.steps_deg
        a = self.amplitude_deg
        return (-a, -a / 2, 0.0, a / 2, a)


def vector_for_tilt(tilt_deg: float, g: float = STANDARD_GRAVITY) -> Vector:
    """Gravity as a phone tilted ``tilt_deg`` to the right (negative = left) reads it."""
    theta = math.radians(tilt_deg)
    return Vector(0.0, g * math.sin(theta), g * math.cos(theta))


class Simulator:
    """Tilt as a function of time for one :class:`SimConfig`.

    Stateful only for the random walk, whose next angle depends on the last;
    call :meth:`tilt` with non-decreasing times.
    """

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self._rng = random.Random(cfg.seed)
        self._walk = 0.0
        self._last_t = 0.0

    def tilt(self, t: float) -> float:
        cfg = self.cfg
        a, p = cfg.amplitude_deg, cfg.period_s
        if cfg.pattern == "rock":
            angle = a * math.sin(2 * math.pi * t / p)
        elif cfg.pattern == "sweep":
            angle = -a + 2 * a * ((t / p) % 1.0)
        elif cfg.pattern == "steps":
            levels = cfg.levels
            angle = levels[int((t / p) * len(levels)) % len(levels)]
        else:
            angle = self._step_walk(t)
        if cfg.noise_deg:
            angle += self._rng.gauss(0.0, cfg.noise_deg)
        return angle

    def _step_walk(self, t: float) -> float:
        # Brownian motion scaled so it roams the full +-amplitude in about a period.
        dt = max(t - self._last_t, 0.0)
        self._last_t = t
        a = self.cfg.amplitude_deg
        if a == 0:
            return 0.0
        x = self._walk + self._rng.gauss(0.0, a * math.sqrt(dt / self.cfg.period_s))
        # Reflect at the walls so the walk stays inside +-a without sticking to them.
        span = 4 * a
        x = (x + a) % span
        self._walk = (x if x <= 2 * a else span - x) - a
        return self._walk

    def vector(self, t: float) -> Vector:
        v = vector_for_tilt(self.tilt(t))
        if self.cfg.percent:
            # The article's app: each component as a percentage of |v| ("x/g*100").
            return Vector(*(c / STANDARD_GRAVITY * 100.0 for c in v))
        return v


async def sim_source(cfg: SimConfig, *, pacer: Pacer | None = None) -> AsyncIterator[Vector]:
    """Vectors at ``cfg.rate_hz``, each computed for its scheduled time so the signal stays smooth."""
    sim = Simulator(cfg)
    pacer = pacer or Pacer(cfg.rate_hz)
    while True:
        t = await pacer.tick()
        yield sim.vector(t)
