"""systemd integration (notify, watchdog, socket activation, journal).

STUB: the interface the server calls; a no-op off systemd.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Mapping

__all__ = ["Systemd", "SystemdError"]


class SystemdError(RuntimeError):
    """Running under systemd without what it needs; one sentence."""


class Systemd:
    """Talks to the service manager when there is one; otherwise does nothing."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if env is None else env

    def check(self) -> None:
        """Raise :class:`SystemdError` if under systemd but unable to notify it."""

    def journal_handler(self) -> logging.Handler | None:
        """A journal log handler when stderr goes to the journal, else None."""
        return None

    def listen_sockets(self) -> list[socket.socket]:
        """Listening sockets passed by socket activation (may be empty)."""
        return []

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to send WATCHDOG=1 (half of WatchdogSec), or None."""
        return None

    def ready(self, status: str) -> None: ...
    def status(self, text: str) -> None: ...
    def watchdog(self) -> None: ...
    def reloading(self) -> None: ...
    def stopping(self) -> None: ...
