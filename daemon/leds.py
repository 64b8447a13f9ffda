"""The only module that touches GPIO: two gpiozero PWMLEDs behind a small API.

Keeping gpiozero here (as gpiozero keeps pin factories behind devices) lets
the rest of the daemon run unchanged on lgpio, RPi.GPIO, pigpio or mock pins.
The one other module that imports gpiozero is daemon/pwmpins.py, the pin
factory that puts pins with a kernel PWM channel on the PWM hardware
(``pwm = "auto"`` or ``"hardware"``).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from .errors import HardwareError
from .mapping import OFF, Duties

__all__ = ["FACTORY_NAMES", "HardwareError", "LedPair", "PWM_MODES"]

FACTORY_NAMES = ("lgpio", "rpigpio", "pigpio", "native", "mock")
"""Accepted ``pin_factory`` names; ``None`` means gpiozero's own choice."""
PWM_MODES = ("auto", "hardware", "software")
"""``pwm``: the kernel's PWM channel where a pin has one, always, or never."""


def _make_factory(name: str | None, write_delay_s: float) -> Any:
    from gpiozero import Device
    from gpiozero.exc import BadPinFactory

    if name is None and os.environ.get("GPIOZERO_PIN_FACTORY"):
        # gpiozero's own variable names a factory: load it the same careful way.
        name = os.environ["GPIOZERO_PIN_FACTORY"].strip().lower()
    if name == "mock":
        from .mockpins import mock_factory

        return mock_factory(write_delay_s=write_delay_s)

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


def _with_hardware_pwm(base: Any, *, pwm: str, pins: tuple[int | str, ...], channels: tuple[str, ...], root: Any, writer: Any) -> tuple[Any, dict]:
    """``base``, or a factory that serves the pins with a PWM channel from
    the kernel (daemon/pwmpins.py); and those pins' channels."""
    if pwm == "software":
        return base, {}
    from .hwpwm import find_channels, overlay_advice, parse_overrides, sysfs_root
    from .pwmpins import HardwarePWMFactory, gpio_number

    root = sysfs_root(root)
    found = find_channels(root, parse_overrides(channels))
    if not found and pwm == "auto":  # no PWM hardware enabled here: software, as before
        return base, {}
    gpios = {}
    for pin in pins:
        try:
            gpios[pin] = gpio_number(base, pin)
        except Exception:  # a factory that cannot tell its board: no hardware PWM
            gpios[pin] = None
    missing = [str(p) for p, g in gpios.items() if g not in found]
    if pwm == "hardware" and missing:
        verb = "has" if len(missing) == 1 else "have"
        raise HardwareError(f"pwm = hardware, but {' and '.join(missing)} {verb} no hardware PWM channel here: {overlay_advice(root)}")
    served = {p: found[g] for p, g in gpios.items() if g in found}
    if not served:
        return base, {}
    return HardwarePWMFactory(base, {found[g].gpio: found[g] for g in gpios.values() if g in found}, writer=writer), served


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
        pwm: str = "software",
        pwm_channels: tuple[str, ...] = (),
        hardware_frequency_hz: float = 1000.0,
        sysfs_root: Any = None,
        sysfs_writer: Any = None,
    ) -> None:
        from gpiozero import PWMLED
        from gpiozero.exc import GPIOPinInUse, GPIOZeroError

        self._factory = base = _make_factory(pin_factory, write_delay_s)
        self.factory_name = pin_factory or type(self._factory).__name__.removesuffix("Factory").lower()
        if pwm == "auto" and self.factory_name == "mock" and sysfs_root is None:
            from .mockpins import SYSFS_ROOT_ENV

            if not os.environ.get(SYSFS_ROOT_ENV):
                # Mock pins are no hardware: a dry run on a Pi must not drive
                # its real PWM outputs (and a laptop need not look for them).
                # Tests hand mock pins a fake sysfs tree; "auto" looks there.
                pwm = "software"
        self._right = self._left = None
        try:
            self._factory, self.hardware = _with_hardware_pwm(
                base, pwm=pwm, pins=(right_pin, left_pin), channels=pwm_channels, root=sysfs_root, writer=sysfs_writer
            )
        except HardwareError:
            base.close()
            raise
        self._on_hardware = (right_pin in self.hardware, left_pin in self.hardware)
        freq = {p: hardware_frequency_hz if p in self.hardware else frequency_hz for p in (right_pin, left_pin)}
        try:
            self._right = PWMLED(right_pin, frequency=freq[right_pin], pin_factory=self._factory)
            self._left = PWMLED(left_pin, frequency=freq[left_pin], pin_factory=self._factory)
        except GPIOPinInUse:
            self.close()
            raise HardwareError(f"right_pin {right_pin} and left_pin {left_pin} are the same pin; give each LED its own") from None
        except HardwareError:  # a PWM channel refused: its sentence says why
            self.close()
            raise
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

    def set_frequency(self, *, frequency_hz: float, hardware_frequency_hz: float) -> None:
        """A new PWM frequency (SIGHUP), the duties kept: both backends take
        it live (gpiozero's software PWM restarts its thread's timing; a
        kernel channel gets a new period, written in an order it accepts)."""
        for led, hardware in zip((self._right, self._left), self._on_hardware):
            hz = hardware_frequency_hz if hardware else frequency_hz
            if led is not None and led.frequency != hz:
                led.frequency = hz

    @property
    def frequencies_hz(self) -> tuple[float, float]:
        """The PWM frequency each pin runs at now (right, left)."""
        return tuple(float(led.frequency) if led is not None else 0.0 for led in (self._right, self._left))  # type: ignore[return-value]

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
