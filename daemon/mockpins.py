"""What stands in for the hardware: the daemon's mock pins (``--pin-factory
mock``): gpiozero's, with a bounded history, and for the benchmarks
(tests/benchmarks) slow writes and a write trace, each only when asked for,
so the normal path has no such code; and the sysfs tree that tests hand the
hardware PWM backend in place of the kernel's.

* ``mock_write_delay_us`` (``--mock-write-delay-us``): each PWM write costs
  this much CPU, like pigpio's socket or a Pi Zero.
* ``GRAVITY_LED_MOCK_WRITE_TRACE=FILE``: append ``monotonic_ns pin value``
  per PWM write to FILE (CLOCK_MONOTONIC is system-wide, so another process
  can compare them with its own send times).

The naive baseline (tests/benchmarks/naive_server.py) drives the same pins;
this module imports nothing of the daemon's, so the baseline pays for no
daemon code.
"""

from __future__ import annotations

import os
import time
from typing import Any

__all__ = ["MOCK_HISTORY", "SYSFS_ROOT_ENV", "WRITE_TRACE_ENV", "bench_pin_class", "mock_factory"]

MOCK_HISTORY = 256
"""Pin states a mock pin remembers (gpiozero's own keeps them all)."""

SYSFS_ROOT_ENV = "GRAVITY_LED_SYSFS_ROOT"
"""Tests and benchmarks only: a directory standing in for ``/`` (its
``sys/class/pwm``) for the hardware PWM backend (daemon/hwpwm.py); with mock
pins, the only place ``pwm = auto`` looks for PWM channels."""
WRITE_TRACE_ENV = "GRAVITY_LED_MOCK_WRITE_TRACE"
"""Benchmarks only: with mock pins, append ``monotonic_ns pin value`` per PWM write to this file."""


def _slow(base: type, write_delay_s: float) -> type:
    class SlowMockPWMPin(base):
        """A mock pin whose writes cost CPU, like pigpio's socket or a Pi Zero."""

        def _set_state(self, value: float) -> None:
            end = time.perf_counter() + write_delay_s
            while time.perf_counter() < end:
                pass
            super()._set_state(value)

    return SlowMockPWMPin


def _traced(base: type, path: str) -> type:
    """``base`` whose writes are timestamped."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    class TracedMockPWMPin(base):
        def _set_state(self, value: float) -> None:
            super()._set_state(value)
            os.write(fd, f"{time.monotonic_ns()} {self.info.name} {float(value)!r}\n".encode())

    return TracedMockPWMPin


def bench_pin_class(base: type, *, write_delay_s: float) -> type:
    """``base`` (a mock PWM pin class), made slow and/or traced as the
    benchmark options ask; ``base`` itself when they ask for nothing."""
    pin_class = base
    if write_delay_s > 0:
        pin_class = _slow(pin_class, write_delay_s)
    trace = os.environ.get(WRITE_TRACE_ENV)
    if trace:
        pin_class = _traced(pin_class, trace)
    return pin_class


def mock_factory(*, write_delay_s: float = 0.0) -> Any:
    """gpiozero's MockFactory on our pins (gpiozero is imported here, on first use)."""
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

    return MockFactory(pin_class=bench_pin_class(BoundedMockPWMPin, write_delay_s=write_delay_s))
