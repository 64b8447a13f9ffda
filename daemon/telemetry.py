"""Telemetry: state messages to the client that subscribed, at the rate it
asked for, paced from the last message sent (a client that re-subscribes a
thousand times a second gets the rate it asked for, never more than 20
messages a second)."""

from __future__ import annotations

import asyncio
import math
from typing import Callable, Protocol

from websockets.exceptions import ConnectionClosed

__all__ = ["Telemetry", "TelemetryPeer"]


class Message(Protocol):
    """A state message (daemon/protocol.py's ``StateMessage``)."""

    def encode(self) -> str: ...


class TelemetryPeer(Protocol):
    """The subscriber's connection, as far as telemetry goes."""

    def has_room(self) -> bool: ...
    async def send(self, message: str) -> None: ...


class Telemetry:
    """One client's subscription: ``subscribe(rate_hz)`` starts, changes or
    (with 0) stops it; ``close()`` when the client goes."""

    def __init__(self, peer: TelemetryPeer, *, state: Callable[[], Message], clock: Callable[[], float]) -> None:
        self._peer = peer
        self._state = state
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._interval_s = 1.0
        self._changed = asyncio.Event()
        self._last_t = -math.inf
        """When the last state message went (or was skipped): the cap counts
        from it, whatever the client re-subscribes."""

    def subscribe(self, rate_hz: float) -> None:
        if rate_hz <= 0:
            self.close()
            return
        self._interval_s = 1.0 / rate_hz
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        else:
            self._changed.set()  # the running task takes the new rate

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        peer, changed = self._peer, self._changed
        try:
            while True:
                wait = self._last_t + self._interval_s - self._clock()
                if wait > 0:
                    changed.clear()
                    try:
                        await asyncio.wait_for(changed.wait(), wait)
                    except TimeoutError:
                        pass
                    continue
                self._last_t = self._clock()  # a skipped message uses its slot too
                if peer.has_room():
                    await peer.send(self._state().encode())
        except ConnectionClosed:
            pass
