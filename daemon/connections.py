"""Connection accounting: every TCP connection counted from its accept
(before any TLS or WebSocket handshake) until it closes, per source address
and in total, with the bound on what a peer may leave unread.

Pure bookkeeping: daemon/accept.py reports what happened to each connection
and carries out the decision (drop, evict).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass
from typing import Any, Hashable

__all__ = ["MAX_UNREAD_BYTES", "Admission", "ConnectionLimiter", "peer_name", "source_key", "too_much_unread"]

MAX_UNREAD_BYTES = 256 * 1024
"""Abort a connection whose peer leaves this much of our output unread.
websockets answers every ping with a pong whether or not the peer reads
them: a peer that sends pings and never reads would grow our send buffer
without limit.  Our own optional messages stop at 16 KiB, so this is never
a legitimate client."""


def too_much_unread(write_buffer_bytes: int) -> bool:
    return write_buffer_bytes > MAX_UNREAD_BYTES


def peer_name(addr: Any) -> str:
    """``host:port`` of a socket address, ``[host]:port`` for IPv6."""
    if not addr:
        return "unknown"
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def source_key(host: str | None, *, ipv6_prefix: int = 64) -> str:
    """The address that limits count against: an IPv4 address, or the
    ``ipv6_prefix`` network of an IPv6 address (by default its /64: one host
    can use a whole /64, and privacy addresses change every few hours; 128:
    the address alone).  IPv4-mapped IPv6 counts as the IPv4 address."""
    if not host:
        return "unknown"
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        if addr.is_loopback:
            return str(addr)
        if ipv6_prefix >= 128:
            return str(addr)
        return str(ipaddress.IPv6Network((addr, ipv6_prefix), strict=False))
    return str(addr)


@dataclass(frozen=True, slots=True)
class Admission:
    """The decision on a new connection: stay, or be dropped (``reason``);
    ``evict`` is a connection of a greedier address to drop first (pending,
    or refused and closing: ``reason`` says which)."""

    admitted: bool
    reason: str | None = None
    evict: Hashable | None = None


class ConnectionLimiter:
    """Counts every connection from accept to close, per source and in
    total, and says whether a new one may stay.

    * At most ``max_per_source`` from one address (``source_key``).
    * At most ``max_total`` in all.  When that is full, a newcomer from an
      address holding at least two fewer connections than the greediest one
      takes the place of one of that address's *evictable* connections: a
      refused one waiting for its close (:meth:`closing`: busy, or answered
      over HTTP, such as 401 or 403) first, else its oldest *pending* one
      (still in its handshake).  Addresses are levelled, so a few addresses
      holding every slot cannot keep out a new one.  The LED holder's
      connection (handshake done, not refused) is never evicted.

    Connections are opaque hashable handles.  ``refused`` counts refusals
    (and evictions) by reason, for ``/status``.
    """

    PER_ADDRESS = "per_address"
    TOTAL = "total"
    EVICTED = "evicted"
    EVICTED_CLOSING = "evicted_closing"
    TIMED_OUT = "timed_out"

    def __init__(self, *, max_total: int, max_per_source: int) -> None:
        self.max_total = max_total
        self.max_per_source = max_per_source
        self._count: Counter[str] = Counter()
        self._pending: dict[str, dict[Hashable, None]] = {}  # insertion order: oldest first
        self._closing: dict[str, dict[Hashable, None]] = {}  # refused, waiting for their close
        self._source: dict[Hashable, str] = {}
        self.refused: Counter[str] = Counter()

    @property
    def open(self) -> int:
        return len(self._source)

    @property
    def pending(self) -> int:
        return sum(len(p) for p in self._pending.values())

    @property
    def sources(self) -> int:
        return len(self._count)

    def open_from(self, source: str) -> int:
        return self._count.get(source, 0)

    def admit(self, source: str, conn: Hashable) -> Admission:
        """Decide on ``conn``, just accepted from ``source``.  If admitted it
        is counted as pending (and ``evict``, if any, is no longer counted:
        the caller must drop it)."""
        mine = self._count.get(source, 0)
        if mine >= self.max_per_source:
            self.refused[self.PER_ADDRESS] += 1
            return Admission(False, self.PER_ADDRESS)
        evict = None
        if self.open >= self.max_total:
            greedy = max((*self._pending, *self._closing), key=lambda s: (self._count[s], s), default=None)
            if greedy is None or self._count[greedy] < mine + 2:
                self.refused[self.TOTAL] += 1
                return Admission(False, self.TOTAL)
            closing = self._closing.get(greedy)
            evict = next(iter(closing if closing else self._pending[greedy]))
            why = self.EVICTED_CLOSING if closing else self.EVICTED
            self.refused[why] += 1
            self.release(evict)
        self._count[source] = mine + 1
        self._pending.setdefault(source, {})[conn] = None
        self._source[conn] = source
        return Admission(True, evict=evict) if evict is None else Admission(True, why, evict)

    def timed_out(self, conn: Hashable) -> bool:
        """``conn``'s handshake deadline passed: True (and counted as a
        refusal) if it is still pending, so the caller must drop it."""
        if not self.is_pending(conn):
            return False
        self.refused[self.TIMED_OUT] += 1
        return True

    def handshake_done(self, conn: Hashable) -> None:
        """``conn`` finished its handshake: still counted, never evicted."""
        source = self._source.get(conn)
        if source is not None:
            self._unpend(source, conn)

    def closing(self, conn: Hashable) -> None:
        """``conn`` was refused (busy, or answered over HTTP) and waits for
        its close: evictable from now on, before any pending one."""
        source = self._source.get(conn)
        if source is not None:
            self._unpend(source, conn)
            self._closing.setdefault(source, {})[conn] = None

    def release(self, conn: Hashable) -> bool:
        """``conn`` closed; False if it was not counted (refused, or evicted)."""
        source = self._source.pop(conn, None)
        if source is None:
            return False
        self._unpend(source, conn)
        self._unclose(source, conn)
        n = self._count[source] - 1
        if n > 0:
            self._count[source] = n
        else:
            del self._count[source]
        return True

    def pending_connections(self) -> list[Any]:
        return [c for pend in self._pending.values() for c in pend]

    def all_connections(self) -> list[Any]:
        return list(self._source)

    def is_pending(self, conn: Hashable) -> bool:
        source = self._source.get(conn)
        return source is not None and conn in self._pending.get(source, ())

    def _unpend(self, source: str, conn: Hashable) -> None:
        _discard(self._pending, source, conn)

    def _unclose(self, source: str, conn: Hashable) -> None:
        _discard(self._closing, source, conn)


def _discard(table: dict[str, dict[Hashable, None]], source: str, conn: Hashable) -> None:
    """Forget ``conn`` in ``source``'s entry of ``table``, and the entry once empty
    (the tables stay bounded by the connections alive)."""
    entry = table.get(source)
    if entry is not None and conn in entry:
        del entry[conn]
        if not entry:
            del table[source]
