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
import os
import socket
import ssl
from typing import Hashable, Protocol

from .connections import ConnectionLimiter, source_key
from .errors import StartupError
from .http_rules import looks_like_tls, plain_http_refusal
from .ratelog import RateLimitedLog

__all__ = ["REFUSAL_LOG", "Counted", "Intake", "server_tls_context"]

REFUSAL_LOG = {
    ConnectionLimiter.PER_ADDRESS: ("refused connections: too many from one address", "refused a connection from %s: that address already has %d open (max_connections_per_address)"),
    ConnectionLimiter.TOTAL: ("refused connections: every slot taken", "refused a connection from %s: all %d connection slots are taken (max_connections)"),
}
"""The log line of each refusal at accept: (kind, for the rate limit; text)."""


PEEK_BYTES = 4096
"""How much of a connection's first bytes is looked at before TLS (a plain
HTTP request's head, for its Host)."""
MAX_DISCARD_BYTES = 64 * 1024


def _discard_waiting(sock: socket.socket) -> None:
    """Read and drop what ``sock`` holds now (a bounded amount)."""
    got = 0
    while got < MAX_DISCARD_BYTES:
        try:
            chunk = sock.recv(16384, socket.MSG_DONTWAIT)
        except OSError:
            return
        if not chunk:
            return
        got += len(chunk)


class Counted(Hashable, Protocol):
    """A connection as the intake sees it."""

    @property
    def peer(self) -> str: ...
    @property
    def source(self) -> str: ...
    def abort(self) -> None: ...


def server_tls_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """The server's TLS context; a problem with the files is one sentence.

    A ``make-cert`` killed while it replaced the pair may have left the new
    certificate with its key still at ``KEY.new`` (daemon/certpair.py): that
    key is tried second, and the TLS stack decides which one matches."""
    from .certpair import key_candidates  # here: a start without TLS need not load it

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    first: OSError | None = None  # ssl.SSLError is one too
    for key in key_candidates(keyfile):
        try:
            ctx.load_cert_chain(certfile, key)
        except (OSError, ssl.SSLError) as e:
            first = first or e
            continue
        if key != keyfile:
            logging.getLogger("gravity_led").warning(
                "%s is not the key of %s: make-cert was stopped while replacing them; using the new key %s (the next make-cert run puts it in place)",
                keyfile, certfile, key,
            )
        return ctx
    if isinstance(first, FileNotFoundError):
        raise StartupError(f"TLS file {first.filename or certfile} does not exist") from None
    if isinstance(first, PermissionError):
        raise StartupError(f"TLS file {first.filename} is not readable by this user") from None
    if isinstance(first, OSError) and not isinstance(first, ssl.SSLError):
        raise StartupError(f"cannot read TLS file {first.filename or certfile}: {first.strerror}") from None
    raise StartupError(f"{certfile} and {keyfile} are not a matching PEM certificate and key") from None


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
        ipv6_group_prefix: int = 64,
    ) -> None:
        self.limiter = limiter
        self.ipv6_group_prefix = ipv6_group_prefix
        self.handshake_timeout_s = handshake_timeout_s
        self.tls = tls
        self.events = events
        self._loop = loop
        self._deadlines: dict[Counted, asyncio.TimerHandle] = {}
        self._peeks: dict[Counted, asyncio.Future[bool]] = {}

    def source_of(self, host: str | None) -> str:
        """The source a peer's address counts as (``ipv6_group_prefix``)."""
        return source_key(host, ipv6_prefix=self.ipv6_group_prefix)

    def accepted(self, conn: Counted) -> bool:
        """``conn`` was just accepted: False if it must go (it is aborted);
        else it is counted as pending and its handshake deadline runs."""
        decision = self.limiter.admit(conn.source, conn)
        if decision.evict is not None:
            evicted: Counted = decision.evict  # type: ignore[assignment]
            self._cancel_deadline(evicted)
            evicted.abort()
            what = "refused connection waiting for its close" if decision.reason == ConnectionLimiter.EVICTED_CLOSING else "pending connection"
            self.events.log(
                logging.INFO, "dropped pending or refused connections to make room",
                "dropped a %s from %s to make room for %s (its address holds more)", what, evicted.peer, conn.peer,
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
        # The caller paused the transport's reads at accept: the first bytes
        # are looked at (not read) before the TLS layer gets them.
        first = await self._peek(conn, transport)
        if first is None:  # closed, evicted or timed out meanwhile
            transport.abort()
            self.closed(conn)
            return None
        if not looks_like_tls(first):
            self._not_tls(conn, transport, first)
            return None
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

    async def _peek(self, conn: Counted, transport: asyncio.BaseTransport) -> bytes | None:
        """The first bytes ``conn``'s peer sent, left in the socket for the
        TLS layer; None if it closed (or was dropped) first.

        The transport owns its socket's descriptor in the event loop, so the
        wait is on a duplicate of it (the same socket): asyncio offers no
        public way to look at a connection's first byte before TLS reads it.
        """
        try:
            peek = socket.socket(fileno=os.dup(transport.get_extra_info("socket").fileno()))
        except (OSError, AttributeError):
            return bytes((0x16,))  # cannot look: TLS as before
        readable: asyncio.Future[bool] = self._loop.create_future()
        self._peeks[conn] = readable
        fd = peek.fileno()
        self._loop.add_reader(fd, lambda: readable.done() or readable.set_result(True))
        try:
            if not await readable:
                return None
            first = peek.recv(PEEK_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            if first and not looks_like_tls(first):
                _discard_waiting(peek)  # so that our close is a FIN, not a reset
            return first or None
        except OSError:
            return None
        finally:
            self._peeks.pop(conn, None)
            self._loop.remove_reader(fd)
            peek.close()

    def _not_tls(self, conn: Counted, transport: asyncio.BaseTransport, first: bytes) -> None:
        """``conn`` spoke something other than TLS: a plain HTTP request gets
        a 400 naming the https:// URL (browsers and curl try http:// first);
        anything else is dropped."""
        local = transport.get_extra_info("sockname") or ("localhost", 0)
        answer = plain_http_refusal(first, port=local[1], local_host=str(local[0]))
        if answer is None:
            transport.abort()
        else:
            self.events.log(
                logging.INFO, "refused plain HTTP on the TLS port",
                "refused %s: it sent plain HTTP to the TLS port (answered 400: use https://)", conn.peer,
            )  # fmt: skip
            transport.write(answer)  # type: ignore[attr-defined]
            transport.close()
        self.closed(conn)

    def handshake_done(self, conn: Counted) -> None:
        """``conn`` finished its handshake: still counted, never evicted."""
        self._cancel_deadline(conn)
        self.limiter.handshake_done(conn)

    def refusing(self, conn: Counted) -> None:
        """``conn`` was refused (busy, or answered over HTTP) and waits for
        its close: evictable, and no longer on its handshake deadline (its
        close timeout bounds it)."""
        self._cancel_deadline(conn)
        self.limiter.closing(conn)

    def closed(self, conn: Counted) -> None:
        """``conn`` closed (or was dropped): no longer counted; idempotent."""
        peek = self._peeks.pop(conn, None)
        if peek is not None and not peek.done():
            peek.set_result(False)
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

