"""Vector -> duties: pure, so tested exactly."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from gravity_led.daemon.mapping import Duties, Mapping, MappingError, Smoother, duties_for
from gravity_led.daemon.protocol import Vector
from tests.support.harness import G, roll


def tilted(deg: float, g: float = G) -> Vector:
    """A phone rolled ``deg`` degrees to the right (positive y)."""
    return Vector(*roll(deg, g=g))


def test_defaults_reproduce_the_article_with_float_precision():
    # Article: duty% = int(float(y_percent)); we keep the fraction.
    assert duties_for(Vector(0, 50.7, 86.2)) == pytest.approx((50.7 / math.hypot(50.7, 86.2), 0))
    assert duties_for(Vector(0, -9.81, 0)) == (0.0, 1.0)
    assert duties_for(Vector(0, 9.81, 0)) == (1.0, 0.0)
    assert duties_for(Vector(0, 0, 9.81)) == (0.0, 0.0)


def test_units_do_not_matter():
    assert duties_for(Vector(1, 2, 3)) == pytest.approx(duties_for(Vector(100, 200, 300)))


def test_full_scale_and_dead_zone():
    m = Mapping(full_scale_deg=45)
    assert duties_for(tilted(45), m).right == pytest.approx(1.0)
    assert duties_for(tilted(60), m).right == 1.0
    assert duties_for(tilted(-22.5), m).left == pytest.approx(math.sin(math.radians(22.5)) / math.sin(math.radians(45)))
    dz = Mapping(dead_zone_deg=5)
    assert duties_for(tilted(4.9), dz) == (0.0, 0.0)
    assert duties_for(tilted(-90), dz) == (0.0, 1.0)
    assert 0 < duties_for(tilted(10), dz).right < math.sin(math.radians(10))


def test_axis_invert_and_gamma():
    assert duties_for(Vector(9.81, 0, 0), Mapping(axis="x")) == (1.0, 0.0)
    assert duties_for(tilted(30), Mapping(invert=True)) == pytest.approx((0.0, 0.5))
    assert duties_for(tilted(30), Mapping(curve="gamma", gamma=2.0)).right == pytest.approx(0.25)


@pytest.mark.parametrize(
    "kwargs",
    [dict(axis="w"), dict(curve="log"), dict(full_scale_deg=0), dict(full_scale_deg=91), dict(dead_zone_deg=-1), dict(dead_zone_deg=50, full_scale_deg=45), dict(gamma=0)],
)
def test_bad_mapping_is_refused(kwargs):
    with pytest.raises(MappingError):
        Mapping(**kwargs)


@given(
    st.floats(min_value=-1e6, max_value=1e6),
    st.floats(min_value=-1e6, max_value=1e6),
    st.floats(min_value=-1e6, max_value=1e6),
    st.sampled_from(["x", "y", "z"]),
    st.booleans(),
    st.floats(min_value=0, max_value=40),
    st.floats(min_value=45, max_value=90),
    st.sampled_from(["linear", "gamma"]),
)
def test_duties_are_always_valid(x, y, z, axis, invert, dz, fs, curve):
    if math.hypot(x, y, z) == 0:
        return
    d = duties_for(Vector(x, y, z), Mapping(axis=axis, invert=invert, dead_zone_deg=dz, full_scale_deg=fs, curve=curve))
    assert 0.0 <= d.right <= 1.0 and 0.0 <= d.left <= 1.0
    assert d.right == 0.0 or d.left == 0.0  # never both lit


def test_smoother_off_is_identity():
    s = Smoother()
    assert s.step(Duties(0.7, 0), 0.0) == (0.7, 0)


def test_smoother_follows_the_time_constant():
    s = Smoother(tau_s=0.1)
    assert s.step(Duties(1, 0), 10.0) == (0, 0)  # first step starts the clock
    assert s.step(Duties(1, 0), 10.1).right == pytest.approx(1 - math.exp(-1))
    assert s.step(Duties(1, 0), 10.2).right == pytest.approx(1 - math.exp(-2))
    assert not s.settled(Duties(1, 0))
    s.step(Duties(1, 0), 11.0)
    assert s.settled(Duties(1, 0))
    with pytest.raises(MappingError):
        Smoother(tau_s=-1)
