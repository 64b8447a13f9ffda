"""One exception tree for the daemon, as gpiozero has: every error the user
can act on is a :class:`GravityLedError`, combined with the built-in base it
is (a bad value is also a ``ValueError``), so ``daemon/cli.py`` catches one
type and callers that expect the built-in one still work.

``str(err)`` is always one sentence for the user; ``exit_code`` is the
process status ``gravity-led-daemon`` exits with.
"""

from __future__ import annotations

__all__ = [
    "CertError",
    "ConfigError",
    "FrameError",
    "GravityLedError",
    "HardwareError",
    "MappingError",
    "SecurityError",
    "StartupError",
    "SystemdError",
    "UnreadableFile",
]


class GravityLedError(Exception):
    """Root of every gravity-led error; ``str(err)`` is one sentence."""

    exit_code = 1


class ConfigError(GravityLedError, ValueError):
    """Bad configuration; ``str(err)`` is one sentence naming the problem."""

    exit_code = 2  # as argparse exits for bad flags


class MappingError(ConfigError):
    """A mapping option is out of range."""


class SecurityError(GravityLedError, ValueError):
    """The token file (or ``$GRAVITY_LED_TOKEN``) is unusable."""

    exit_code = 2  # the token file is configuration: exit as a ConfigError does


class UnreadableFile(GravityLedError, ValueError):
    """A settings file cannot be used (missing, a FIFO, too big, ...)."""

    exit_code = 2


class HardwareError(GravityLedError, RuntimeError):
    """GPIO could not be set up."""


class StartupError(GravityLedError, RuntimeError):
    """The daemon cannot start (port in use, TLS files unreadable, ...)."""


class SystemdError(GravityLedError, RuntimeError):
    """Running under systemd without what it needs."""


class CertError(GravityLedError):
    """The TLS certificate could not be made."""


class FrameError(GravityLedError, ValueError):
    """A frame that is not a valid message: answered and counted, never raised
    past the connection.

    ``code`` is a short machine-readable reason (sent to the client in the
    ``error`` field); ``str(err)`` is one human sentence.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
