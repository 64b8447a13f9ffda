"""gravity-led daemon: a phone's gravity vector in, two PWM LEDs out."""

__version__ = "0.1.0"
