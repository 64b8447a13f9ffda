"""Hardware PWM under gpiozero's pin seam: a pin factory that hands out
kernel PWM channels (daemon/hwpwm.py) for the pins that have one and the
underlying factory's pins (lgpio, mock, ...) for everything else, so
``PWMLED`` and the rest of the daemon do not change.

With daemon/leds.py, the only modules that import gpiozero.

A hardware PWM pin never touches the GPIO line itself: claiming it through
the GPIO character device would switch the pin's function from PWM back to
GPIO and end the hardware PWM.
"""

from __future__ import annotations

from typing import Any

from gpiozero.exc import PinInvalidFunction, PinInvalidPin, PinPWMUnsupported
from gpiozero.pins import Factory, Pin

from .hwpwm import ChannelSpec, PwmChannel, SysfsWriter

__all__ = ["HardwarePWMFactory", "HardwarePWMPin", "gpio_number"]


def gpio_number(factory: Any, name: int | str) -> int | None:
    """The BCM number of a pin name (18, "GPIO18", "BOARD12", "J8:12") on
    ``factory``'s board, or None if it is not a GPIO there."""
    for _header, info in factory.board_info.find_pin(str(name).upper() if isinstance(name, str) else name):
        if info.name.startswith("GPIO") and info.name[4:].isdigit():
            return int(info.name[4:])
    return None


class HardwarePWMPin(Pin):
    """One PWM channel as a gpiozero pin: output only, the state is the duty.
    The channel is exported when gpiozero sets a frequency (``PWMLED`` does
    first) and released when it clears it or closes the pin."""

    def __init__(self, factory: HardwarePWMFactory, info: Any, spec: ChannelSpec, writer: SysfsWriter | None) -> None:
        super().__init__()
        self._factory = factory
        self._info = info
        self.spec = spec
        self._writer = writer
        self.channel: PwmChannel | None = None

    def __repr__(self) -> str:
        return f"<HardwarePWMPin {self._info.name} on {self.spec.chip.name}/pwm{self.spec.channel}>"

    def close(self) -> None:
        if self.channel is not None:
            channel, self.channel = self.channel, None
            channel.close()

    def _get_info(self) -> Any:
        return self._info

    def _get_function(self) -> str:
        return "output"

    def _set_function(self, value: str) -> None:
        if value != "output":
            raise PinInvalidFunction(f"{self._info.name} is a hardware PWM channel: output only")

    def _get_state(self) -> float:
        return self.channel.duty if self.channel is not None else 0.0

    def _set_state(self, value: float) -> None:
        if self.channel is None:
            raise PinPWMUnsupported(f"{self._info.name}: set a frequency before a duty")
        self.channel.set(duty=float(value))

    def _get_frequency(self) -> float | None:
        return self.channel.frequency_hz if self.channel is not None else None

    def _set_frequency(self, value: float | None) -> None:
        if value is None:
            self.close()
        elif self.channel is None:
            self.channel = PwmChannel(self.spec, frequency_hz=value, writer=self._writer)
        else:
            self.channel.set(frequency_hz=value, duty=self.channel.duty)


class HardwarePWMFactory(Factory):
    """``base``'s pins, except those in ``channels`` (GPIO -> channel)."""

    def __init__(self, base: Factory, channels: dict[int, ChannelSpec], *, writer: SysfsWriter | None = None) -> None:
        super().__init__()
        self.base = base
        self.channels = channels
        self._writer = writer
        self.pins: dict[int, HardwarePWMPin] = {}

    def pin(self, name: int | str) -> Any:
        gpio = gpio_number(self.base, name)
        if gpio not in self.channels:
            return self.base.pin(name)
        if gpio not in self.pins:
            info = next((info for _h, info in self.base.board_info.find_pin(f"GPIO{gpio}")), None)
            if info is None:
                raise PinInvalidPin(f"{name} is not a valid pin name")
            self.pins[gpio] = HardwarePWMPin(self, info, self.channels[gpio], self._writer)
        return self.pins[gpio]

    def close(self) -> None:
        try:
            for pin in self.pins.values():
                pin.close()
        finally:
            self.base.close()

    def ticks(self) -> Any:
        return self.base.ticks()

    def ticks_diff(self, later: Any, earlier: Any) -> Any:
        return self.base.ticks_diff(later, earlier)

    def _get_board_info(self) -> Any:
        return self.base.board_info
