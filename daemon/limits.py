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

__all__ = ["ConnectionLimiter", "FailureThrottle", "source_key"]


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


class ConnectionLimiter:
    """Counts every connection from accept to close, per source and in
    total, and says whether a new one may stay.

    ``pending`` are connections still in their (TLS or HTTP) handshake;
    ``refused`` counts refusals by reason, for ``/status``.
    """

    PER_ADDRESS = "per_address"
    TOTAL = "total"

    def __init__(self, *, max_total: int, max_per_source: int) -> None:
        self.max_total = max_total
        self.max_per_source = max_per_source
        self._by_source: Counter[str] = Counter()
        self.open = 0
        self.pending = 0
        self.refused: Counter[str] = Counter()

    def admit(self, source: str) -> str | None:
        """Count a new connection from ``source`` as pending; or, if it must
        be dropped, count the refusal and return its reason."""
        if self._by_source[source] >= self.max_per_source:
            reason = self.PER_ADDRESS
        elif self.open >= self.max_total:
            reason = self.TOTAL
        else:
            self._by_source[source] += 1
            self.open += 1
            self.pending += 1
            return None
        self.refused[reason] += 1
        return reason

    def handshake_done(self) -> None:
        """An admitted connection finished its handshake (it stays counted)."""
        self.pending -= 1

    def release(self, source: str, *, pending: bool) -> None:
        """An admitted connection closed (``pending``: before its handshake ended)."""
        self.open -= 1
        if pending:
            self.pending -= 1
        n = self._by_source[source] - 1
        if n > 0:
            self._by_source[source] = n
        else:
            del self._by_source[source]

    def open_from(self, source: str) -> int:
        return self._by_source.get(source, 0)

    @property
    def sources(self) -> int:
        return len(self._by_source)


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
