"""daemon/leds.py on gpiozero's own MockFactory, in process."""

from __future__ import annotations

from gravity_led.daemon.leds import LedPair
from gravity_led.daemon.mockpins import MOCK_HISTORY
from gravity_led.daemon.mapping import Duties


def test_writes_reach_the_pins_and_unchanged_duties_are_skipped():
    with LedPair(right_pin="GPIO18", left_pin="GPIO22", pin_factory="mock") as leds:
        leds.write(Duties(right=0.25, left=0.0))
        leds.write(Duties(right=0.25, left=0.0))
        assert leds.duties == Duties(right=0.25, left=0.0)
        assert leds.writes == 1


def test_mock_pins_remember_a_bounded_history():
    # gpiozero's MockPin appends every state change to a list: unbounded, a
    # demo left running would grow by megabytes a minute.
    with LedPair(right_pin="GPIO18", left_pin="GPIO22", pin_factory="mock") as leds:
        for i in range(10 * MOCK_HISTORY):
            leds.write(Duties(right=(i % 100) / 100, left=((i + 50) % 100) / 100))
        pins = list(leds._factory.pins.values())
        assert len(pins) == 2
        for pin in pins:
            assert MOCK_HISTORY <= len(pin.states) <= 2 * MOCK_HISTORY
        assert leds.duties == Duties(right=((10 * MOCK_HISTORY - 1) % 100) / 100, left=((10 * MOCK_HISTORY + 49) % 100) / 100)


def test_a_new_software_pwm_frequency_applies_live_and_keeps_the_duties():
    from gravity_led.daemon.config import Config
    from gravity_led.daemon.reload import plan_reload

    assert plan_reload(Config(), Config(frequency_hz=400.0, hardware_frequency_hz=2000.0)).live == ("frequency_hz", "hardware_frequency_hz")
    with LedPair(right_pin="GPIO18", left_pin="GPIO22", pin_factory="mock") as leds:
        leds.write(Duties(right=0.3, left=0.6))
        leds.set_frequency(frequency_hz=400.0, hardware_frequency_hz=2000.0)
        assert leds.frequencies_hz == (400.0, 400.0)
        assert [pin.frequency for pin in leds._factory.pins.values()] == [400.0, 400.0]
        assert leds.duties == Duties(right=0.3, left=0.6)
