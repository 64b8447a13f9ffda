"""From TCP accept to a finished handshake: every connection counted
(daemon/connections.py decides), its TLS handshake done per connection, one
deadline for the TLS and HTTP handshakes together, and the log lines of
what was refused or dropped.

The connection (daemon/wsadapter.py) tells :class:`Intake` what happened
from its protocol callbacks; the intake carries out the limiter's decision
(drop, evict) through each connection's ``abort()``.  TLS per connection
rather than by asyncio's server, so that a stalled TLS handshake is counted
like any other.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Hashable, Protocol

from .connections import ConnectionLimiter
from .errors import StartupError
from .ratelog import RateLimitedLog

__all__ = ["REFUSAL_LOG", "Counted", "Intake", "server_tls_context"]

REFUSAL_LOG = {
    ConnectionLimiter.PER_ADDRESS: ("refused connections: too many from one address", "refused a connection from %s: that address already has %d open (max_connections_per_address)"),
    ConnectionLimiter.TOTAL: ("refused connections: every slot taken", "refused a connection from %s: all %d connection slots are taken (max_connections)"),
}
"""The log line of each refusal at accept: (kind, for the rate limit; text)."""


class Counted(Hashable, Protocol):
    """A connection as the intake sees it."""

    @property
    def peer(self) -> str: ...
    @property
    def source(self) -> str: ...
    def abort(self) -> None: ...


def server_tls_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """The server's TLS context; a problem with the files is one sentence."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(certfile, keyfile)
    except FileNotFoundError as e:
        raise StartupError(f"TLS file {e.filename or certfile} does not exist") from None
    except PermissionError as e:
        raise StartupError(f"TLS file {e.filename} is not readable by this user") from None
    except ssl.SSLError:
        raise StartupError(f"{certfile} and {keyfile} are not a matching PEM certificate and key") from None
    return ctx


class Intake:
    """What every new connection is checked against, from its TCP accept on:
    the limits, the handshake deadline and the TLS context."""

    def __init__(
        self,
        limiter: ConnectionLimiter,
        *,
        handshake_timeout_s: float,
        tls: ssl.SSLContext | None,
        events: RateLimitedLog,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.limiter = limiter
        self.handshake_timeout_s = handshake_timeout_s
        self.tls = tls
        self.events = events
        self._loop = loop
        self._deadlines: dict[Counted, asyncio.TimerHandle] = {}

    def accepted(self, conn: Counted) -> bool:
        """``conn`` was just accepted: False if it must go (it is aborted);
        else it is counted as pending and its handshake deadline runs."""
        decision = self.limiter.admit(conn.source, conn)
        if decision.evict is not None:
            evicted: Counted = decision.evict  # type: ignore[assignment]
            self._cancel_deadline(evicted)
            evicted.abort()
            self.events.log(
                logging.INFO, "dropped pending connections to make room",
                "dropped a pending connection from %s to make room for %s (its address holds more)", evicted.peer, conn.peer,
            )  # fmt: skip
        if not decision.admitted:
            key, words = REFUSAL_LOG[decision.reason]
            n = self.limiter.open_from(conn.source) if decision.reason == ConnectionLimiter.PER_ADDRESS else self.limiter.max_total
            self.events.log(logging.WARNING, key, words, conn.peer, n, extra={"CLIENT_ADDRESS": conn.peer})
            conn.abort()  # websockets never hears of it
            return False
        self._deadlines[conn] = self._loop.call_later(self.handshake_timeout_s, self._timed_out, conn)
        return True

    async def start_tls(self, conn: Counted, transport: asyncio.BaseTransport, protocol: asyncio.BaseProtocol) -> asyncio.BaseTransport | None:
        """``conn``'s TLS handshake: its transport, or None if it failed, timed
        out or was evicted meanwhile (then it is dropped and no longer counted)."""
        # ``loop.start_tls`` is asyncio's public API; asyncio's server would do
        # the same, but before telling anyone the connection exists.  Its
        # memory (about 300 KiB per handshake) is bounded by the limits above.
        try:
            tls_transport = await self._loop.start_tls(transport, protocol, self.tls, server_side=True, ssl_handshake_timeout=self.handshake_timeout_s)
        except Exception:  # a failed or abandoned TLS handshake: common, not news
            transport.abort()
            self.closed(conn)
            return None
        if tls_transport is None or transport.is_closing():
            # Timed out or evicted meanwhile (asyncio then returns None
            # rather than raising, when the abort came without an error).
            if tls_transport is not None:
                tls_transport.abort()
            self.closed(conn)
            return None
        return tls_transport

    def handshake_done(self, conn: Counted) -> None:
        """``conn`` finished its handshake: still counted, never evicted."""
        self._cancel_deadline(conn)
        self.limiter.handshake_done(conn)

    def closed(self, conn: Counted) -> None:
        """``conn`` closed (or was dropped): no longer counted; idempotent."""
        self._cancel_deadline(conn)
        self.limiter.release(conn)

    def not_reading(self, conn: Counted) -> None:
        """``conn`` sends but leaves our answers unread (the caller drops it)."""
        self.events.log(logging.WARNING, "dropped connections that do not read", "dropped %s: it sends but does not read what we answer", conn.peer)

    def _timed_out(self, conn: Counted) -> None:
        self._deadlines.pop(conn, None)
        if self.limiter.timed_out(conn):
            self.events.log(
                logging.INFO, "dropped connections that did not finish their handshake",
                "dropped %s: no handshake within %.1f s (handshake_timeout_s)", conn.peer, self.handshake_timeout_s,
            )  # fmt: skip
            conn.abort()

    def _cancel_deadline(self, conn: Counted) -> None:
        handle = self._deadlines.pop(conn, None)
        if handle is not None:
            handle.cancel()

