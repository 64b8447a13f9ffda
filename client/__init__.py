"""gravity-led client: stream a phone's (or a simulated) gravity vector to the daemon.

The wire format lives in :mod:`gravity_led.daemon.protocol`; this package only produces
vectors (``sources``, ``sim``; phone apps: ``formats`` reads their formats,
``phones`` and ``receivers`` move their bytes, ``phone_cli`` is their command
line), paces them (``pacing``), finds the daemon when no address is
given (``discover``), keeps a connection alive (``link``), shows what happens (``live``) and wires it all
together (``session``, ``cli``, ``demo``).
"""

from __future__ import annotations

from gravity_led.daemon.errors import GravityLedError

__all__ = ["ClientError", "EXIT_OK", "EXIT_ERROR", "EXIT_USAGE", "EXIT_BUSY"]

EXIT_OK = 0
EXIT_ERROR = 1
"""Runtime failure: daemon unreachable after --max-retries, file not found, phone app not answering."""
EXIT_USAGE = 2
"""Bad command line (argparse's own code), including a malformed URL."""
EXIT_BUSY = 3
"""The LEDs stayed held by another client until --max-retries ran out."""


class ClientError(GravityLedError):
    """A failure the user can act on: ``str(err)`` is one sentence, ``exit_code`` the process status.

    It joins the daemon's tree (:class:`gravity_led.daemon.errors.GravityLedError`), so one
    ``except GravityLedError`` catches what either program raises.
    """

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code
