"""Per-source-address limits: open connections and wrong-token attempts.

Pure bookkeeping with an injected clock: the caller says what happened
("a connection from this address", "a wrong token at t") and reads the
decision.  A hostile host on the LAN must not take every slot, nor guess the
token at line rate; a legitimate client from another address must not notice.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass
from typing import Hashable

__all__ = ["Admission", "ConnectionLimiter", "FailureThrottle", "source_key"]


def source_key(host: str | None) -> str:
    """The address that limits count against: an IPv4 address, or the /64 of
    an IPv6 address (one host can use a whole /64; privacy addresses change
    every few hours).  IPv4-mapped IPv6 counts as the IPv4 address."""
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
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


@dataclass(frozen=True, slots=True)
class Admission:
    """The decision on a new connection: stay, or be dropped (``reason``);
    ``evict`` is a pending connection of a greedier address to drop first."""

    admitted: bool
    reason: str | None = None
    evict: Hashable | None = None


class ConnectionLimiter:
    """Counts every connection from accept to close, per source and in
    total, and says whether a new one may stay.

    * At most ``max_per_source`` from one address (``source_key``).
    * At most ``max_total`` in all.  When that is full, a newcomer from an
      address holding at least two fewer connections than the greediest one
      takes the place of that address's oldest *pending* connection (one
      still in its handshake): addresses are levelled, so a few addresses
      holding every slot cannot keep out a new one.  A connection that
      finished its handshake is never evicted.

    Connections are opaque hashable handles.  ``refused`` counts refusals
    (and evictions) by reason, for ``/status``.
    """

    PER_ADDRESS = "per_address"
    TOTAL = "total"
    EVICTED = "evicted"

    def __init__(self, *, max_total: int, max_per_source: int) -> None:
        self.max_total = max_total
        self.max_per_source = max_per_source
        self._count: Counter[str] = Counter()
        self._pending: dict[str, dict[Hashable, None]] = {}  # insertion order: oldest first
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
            greedy = max(self._pending, key=lambda s: (self._count[s], s), default=None)
            if greedy is None or self._count[greedy] < mine + 2:
                self.refused[self.TOTAL] += 1
                return Admission(False, self.TOTAL)
            evict = next(iter(self._pending[greedy]))
            self.release(evict)
            self.refused[self.EVICTED] += 1
        self._count[source] = mine + 1
        self._pending.setdefault(source, {})[conn] = None
        self._source[conn] = source
        return Admission(True, evict=evict)

    def handshake_done(self, conn: Hashable) -> None:
        """``conn`` finished its handshake: still counted, never evicted."""
        source = self._source.get(conn)
        if source is not None:
            self._unpend(source, conn)

    def release(self, conn: Hashable) -> bool:
        """``conn`` closed; False if it was not counted (refused, or evicted)."""
        source = self._source.pop(conn, None)
        if source is None:
            return False
        self._unpend(source, conn)
        n = self._count[source] - 1
        if n > 0:
            self._count[source] = n
        else:
            del self._count[source]
        return True

    def is_pending(self, conn: Hashable) -> bool:
        source = self._source.get(conn)
        return source is not None and conn in self._pending.get(source, ())

    def _unpend(self, source: str, conn: Hashable) -> None:
        pend = self._pending.get(source)
        if pend is not None and conn in pend:
            del pend[conn]
            if not pend:
                del self._pending[source]


@dataclass(slots=True)
class _Failures:
    count: int
    last_t: float
    blocked_until: float


class FailureThrottle:
    """Exponential back-off for wrong tokens, per source address.

    The first ``free_failures`` mistakes cost nothing (a typo, a stale
    bookmark).  After that each failure blocks the address for
    ``first_delay_s``, doubling up to ``max_delay_s``; an address that made
    no mistake for ``forget_after_s`` starts afresh, and the right token
    clears it at once.  Other addresses are never affected.  At most
    ``max_sources`` addresses are remembered (the oldest forgotten first),
    so a host with many addresses cannot grow memory.
    """

    def __init__(
        self,
        *,
        free_failures: int = 5,
        first_delay_s: float = 1.0,
        max_delay_s: float = 60.0,
        forget_after_s: float = 600.0,
        max_sources: int = 4096,
    ) -> None:
        self.free_failures = free_failures
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.forget_after_s = forget_after_s
        self.max_sources = max_sources
        self._table: dict[str, _Failures] = {}  # insertion order = oldest failure first
        self.refused = 0

    def wait_s(self, source: str, now: float) -> float:
        """Seconds before ``source`` may try a token again (0: now)."""
        f = self._table.get(source)
        if f is None:
            return 0.0
        if now - f.last_t >= self.forget_after_s and now >= f.blocked_until:
            del self._table[source]
            return 0.0
        return max(0.0, f.blocked_until - now)

    def check(self, source: str, now: float) -> float:
        """:meth:`wait_s`, counting a refusal when it is not 0."""
        wait = self.wait_s(source, now)
        if wait > 0:
            self.refused += 1
        return wait

    def failed(self, source: str, now: float) -> float:
        """Record a wrong token; return how long ``source`` is now blocked."""
        self.wait_s(source, now)  # forgets a stale entry
        f = self._table.pop(source, None)
        if f is None:
            f = _Failures(0, now, now)
            if len(self._table) >= self.max_sources:
                del self._table[next(iter(self._table))]
        f.count += 1
        f.last_t = now
        over = f.count - self.free_failures
        if over > 0:
            delay = min(self.max_delay_s, self.first_delay_s * 2.0 ** min(over - 1, 64))
            f.blocked_until = max(f.blocked_until, now + delay)
        self._table[source] = f  # re-inserted: now the newest
        return max(0.0, f.blocked_until - now)

    def succeeded(self, source: str) -> None:
        self._table.pop(source, None)

    def __len__(self) -> int:
        return len(self._table)
