"""The only module that touches GPIO: two gpiozero PWMLEDs behind a small API.

Keeping gpiozero here (as gpiozero keeps pin factories behind devices) lets
the rest of the daemon run unchanged on lgpio, RPi.GPIO, pigpio or mock pins.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from .benchpins import bench_pin_class
from .errors import HardwareError
from .mapping import OFF, Duties

__all__ = ["FACTORY_NAMES", "HardwareError", "LedPair"]

FACTORY_NAMES = ("lgpio", "rpigpio", "pigpio", "native", "mock")
"""Accepted ``pin_factory`` names; ``None`` means gpiozero's own choice."""


MOCK_HISTORY = 256
"""Pin states a mock pin remembers (gpiozero's own keeps them all)."""


def _make_factory(name: str | None, write_delay_s: float) -> Any:
    from gpiozero import Device
    from gpiozero.exc import BadPinFactory

    if name is None and os.environ.get("GPIOZERO_PIN_FACTORY"):
        # gpiozero's own variable names a factory: load it the same careful way.
        name = os.environ["GPIOZERO_PIN_FACTORY"].strip().lower()
    if name == "mock":
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        class BoundedMockPWMPin(MockPWMPin):
            """gpiozero's mock pin keeps every state it ever had (for tests
            that assert sequences): 500 writes a second would grow a demo left
            running by megabytes a minute.  Keep the last few hundred."""

            def _change_state(self, value: float) -> bool:
                changed = super()._change_state(value)
                if len(self.states) > MOCK_HISTORY * 2:
                    del self.states[:-MOCK_HISTORY]
                return changed

        # The benchmarks' options (slow writes, a write trace): daemon/benchpins.py.
        pin_class = bench_pin_class(BoundedMockPWMPin, write_delay_s=write_delay_s)
        return MockFactory(pin_class=pin_class)

    if name is None:
        with warnings.catch_warnings():
            # gpiozero warns once per factory it skips; we report the outcome.
            warnings.simplefilter("ignore")
            try:
                return Device._default_pin_factory()
            except BadPinFactory:
                raise HardwareError(
                    "no GPIO pin library works on this machine (it is not a Raspberry Pi, or lgpio/RPi.GPIO"
                    " are not installed); run with --pin-factory mock to drive mock pins instead"
                ) from None

    from importlib.metadata import entry_points

    for ep in entry_points(group="gpiozero_pin_factories"):
        if ep.name == name:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return ep.load()()
            except Exception as e:  # any library error means: this factory is unusable here
                raise HardwareError(
                    f"the {name!r} pin factory could not start ({e}); choose another with --pin-factory,"
                    " or --pin-factory mock to run without GPIO"
                ) from None
    raise HardwareError(f"unknown pin factory {name!r}; choose one of {', '.join(FACTORY_NAMES)}")


class LedPair:
    """The right and left LEDs, as PWM outputs.

    Writes that would not change a duty are skipped, so a flood of identical
    values costs nothing on a slow pin backend.
    """

    def __init__(
        self,
        *,
        right_pin: int | str,
        left_pin: int | str,
        frequency_hz: float = 100.0,
        pin_factory: str | None = None,
        write_delay_s: float = 0.0,
    ) -> None:
        from gpiozero import PWMLED
        from gpiozero.exc import GPIOPinInUse, GPIOZeroError

        self._factory = _make_factory(pin_factory, write_delay_s)
        self.factory_name = pin_factory or type(self._factory).__name__.removesuffix("Factory").lower()
        self._right = self._left = None
        try:
            self._right = PWMLED(right_pin, frequency=frequency_hz, pin_factory=self._factory)
            self._left = PWMLED(left_pin, frequency=frequency_hz, pin_factory=self._factory)
        except GPIOPinInUse:
            self.close()
            raise HardwareError(f"right_pin {right_pin} and left_pin {left_pin} are the same pin; give each LED its own") from None
        except (GPIOZeroError, ValueError, TypeError, OSError) as e:
            self.close()
            raise HardwareError(f"cannot use GPIO pins right={right_pin!r} left={left_pin!r}: {e}") from None
        self._last = OFF
        self.writes = 0

    def write(self, duties: Duties) -> None:
        """Set both duties (each in [0, 1]), touching only pins that change."""
        if self._right is None:
            return
        last = self._last
        if duties.right != last.right:
            self._right.value = duties.right
            self.writes += 1
        if duties.left != last.left:
            self._left.value = duties.left
            self.writes += 1
        self._last = duties

    def off(self) -> None:
        self.write(OFF)

    @property
    def duties(self) -> Duties:
        """What the pins hold now (read back from the pins, not a cache)."""
        if self._right is None or self._left is None:
            return OFF
        return Duties(float(self._right.value), float(self._left.value))

    def close(self) -> None:
        """Turn both LEDs off and release the pins; safe to call twice."""
        for led in (self._right, self._left):
            if led is not None:
                try:
                    led.off()
                finally:
                    led.close()
        self._right = self._left = None
        self._last = OFF
        if self._factory is not None:
            self._factory.close()
            self._factory = None

    def __enter__(self) -> LedPair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
