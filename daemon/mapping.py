"""From a gravity vector to two PWM duty cycles: pure functions, no I/O.

The article's rule, made exact: with ``a = y / |v|`` (the sine of the tilt
about the phone's long axis), the right LED gets ``max(a, 0)`` and the left
LED ``max(-a, 0)``.  Every option below defaults to that rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from .errors import MappingError
from .protocol import Vector

__all__ = ["AXES", "CURVES", "Duties", "Mapping", "MappingError", "Smoother", "duties_for"]

AXES = ("x", "y", "z")
_AXIS_INDEX = {name: i for i, name in enumerate(AXES)}
CURVES = ("linear", "gamma")


class Duties(NamedTuple):
    """PWM duty cycles in [0, 1]."""

    right: float
    left: float


OFF = Duties(0.0, 0.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Mapping:
    """How tilt becomes brightness.

    Angles are tilt from level, in degrees.  ``dead_zone_deg`` keeps both
    LEDs dark near level; ``full_scale_deg`` is the tilt that gives 100 %
    (90 = the article: only a phone on its side is fully bright).  ``linear``
    is linear in the sine of the tilt, as in the article; ``gamma`` then
    raises the duty to ``gamma`` so brightness looks even to the eye.
    """

    axis: str = "y"
    invert: bool = False
    dead_zone_deg: float = 0.0
    full_scale_deg: float = 90.0
    curve: str = "linear"
    gamma: float = 2.2

    def __post_init__(self) -> None:
        if self.axis not in AXES:
            raise MappingError(f"axis must be one of x, y, z, not {self.axis!r}")
        if self.curve not in CURVES:
            raise MappingError(f"curve must be 'linear' or 'gamma', not {self.curve!r}")
        if not 0.0 < self.full_scale_deg <= 90.0:
            raise MappingError(f"full_scale_deg must be in (0, 90], not {self.full_scale_deg}")
        if not 0.0 <= self.dead_zone_deg < self.full_scale_deg:
            raise MappingError(
                f"dead_zone_deg must be at least 0 and below full_scale_deg ({self.full_scale_deg}),"
                f" not {self.dead_zone_deg}"
            )
        if not (math.isfinite(self.gamma) and 0.1 <= self.gamma <= 10.0):
            raise MappingError(f"gamma must be between 0.1 and 10, not {self.gamma}")


def duties_for(v: Vector, m: Mapping = Mapping()) -> Duties:
    """The two duties for vector ``v`` (finite and non-zero, as parsed)."""
    a = v[_AXIS_INDEX[m.axis]] / math.hypot(v[0], v[1], v[2])
    if m.invert:
        a = -a
    # Rounding can put |a| a hair above 1.
    level = min(abs(a), 1.0)
    if m.dead_zone_deg or m.full_scale_deg != 90.0:
        lo = math.sin(math.radians(m.dead_zone_deg))
        hi = math.sin(math.radians(m.full_scale_deg))
        level = min(max((level - lo) / (hi - lo), 0.0), 1.0)
    if m.curve == "gamma":
        level = level**m.gamma
    return Duties(level, 0.0) if a > 0 else Duties(0.0, level) if a < 0 else OFF


class Smoother:
    """First-order low-pass on duties, with time constant ``tau_s`` (0 = off).

    Pure: the caller passes the time, so it is deterministic under test.
    """

    __slots__ = ("tau_s", "_value", "_t")

    def __init__(self, *, tau_s: float = 0.0) -> None:
        if not (math.isfinite(tau_s) and tau_s >= 0):
            raise MappingError(f"smoothing must be a non-negative number of seconds, not {tau_s}")
        self.tau_s = tau_s
        self._value = OFF
        self._t: float | None = None

    def reset(self, value: Duties = OFF) -> None:
        self._value = value
        self._t = None

    @property
    def value(self) -> Duties:
        return self._value

    def step(self, target: Duties, now_s: float) -> Duties:
        """Move towards ``target`` for the time since the last step.

        The first step after a reset only starts the clock.
        """
        if self.tau_s == 0.0:
            self._value = target
        elif self._t is not None:
            k = 1.0 - math.exp(-max(now_s - self._t, 0.0) / self.tau_s)
            v = self._value
            self._value = Duties(v.right + (target.right - v.right) * k, v.left + (target.left - v.left) * k)
        self._t = now_s
        return self._value

    def settled(self, target: Duties, *, tolerance: float = 1e-3) -> bool:
        return abs(self._value.right - target.right) <= tolerance and abs(self._value.left - target.left) <= tolerance
