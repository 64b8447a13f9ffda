"""Who may connect: Origin allow-list and an optional shared token, with a
back-off for wrong tokens per source address.

Pure functions of the request's headers and path (and a fake-clock-tested
throttle), so they are tested without sockets; the server calls them before
anything else, so a hostile page learns nothing (not even whether the LEDs
are in use).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .errors import SecurityError
from .files import UnreadableFile, read_small_file

__all__ = ["FailureThrottle", "SecurityError", "check_token", "normalise_origin", "origin_allowed", "read_token", "request_token", "token_matches"]


def normalise_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, default ports dropped.

    Never raises: what cannot be parsed is returned lower-cased, equal to no
    well-formed origin."""
    try:
        parts = urlsplit(origin.strip())
    except ValueError:  # e.g. an unbalanced "[" (Invalid IPv6 URL)
        return origin.strip().lower()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def origin_allowed(origin: str | None, host: str | None, *, tls: bool, allowed: tuple[str, ...] = ()) -> bool:
    """Accept no Origin (native clients), the daemon's own page, or the allow-list.

    Browsers always send Origin on WebSocket handshakes and cannot forge it
    or Host, so comparing the two is the same-origin check that stops
    Cross-Site WebSocket Hijacking.
    """
    if origin is None:
        return True
    if origin == "null":
        return False
    want = normalise_origin(origin)
    if host and want == normalise_origin(f"{'https' if tls else 'http'}://{host}"):
        return True
    return any(want == normalise_origin(a) for a in allowed)


TOKEN_MIN_CHARS = 8
TOKEN_MAX_BYTES = 4096
"""A token must fit in one HTTP header line with room to spare."""
_TOKEN_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F))


def check_token(token: str, where: str) -> str:
    """``token`` if a client can send it as-is in an HTTP header: printable
    ASCII without spaces, at least 8 characters.  The error names ``where``
    (the file or variable), never the token."""
    if len(token) < TOKEN_MIN_CHARS or not _TOKEN_CHARS.issuperset(token):
        raise SecurityError(
            f"{where} must hold one token of at least {TOKEN_MIN_CHARS} printable ASCII characters without spaces"
        )
    return token


def read_token(path: str | Path) -> str:
    """The token in ``path``: UTF-8, a byte-order mark (as Notepad writes)
    and surrounding whitespace ignored."""
    try:
        data = read_small_file(path, what="token file", max_bytes=TOKEN_MAX_BYTES)
    except UnreadableFile as e:
        raise SecurityError(str(e)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SecurityError(f"token file {path} is not UTF-8 text") from None
    return check_token(text.strip(), f"token file {path}")


def request_token(authorization: str | None, path: str) -> str | None:
    """The token a client presented: ``Authorization: Bearer T`` or ``?token=T``."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    query = urlsplit(path).query
    if query:
        values = parse_qs(query).get("token")
        if values:
            return values[0]
    return None


def token_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison, so timing reveals nothing of the token."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


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
    no mistake for ``forget_after_s`` (and is not blocked) starts afresh, and
    the right token clears it at once.  Other addresses are never affected.

    Memory is bounded: at most ``max_sources`` addresses are remembered, and
    an address is never forgotten before its ``forget_after_s`` (so neither
    during a block nor between failures: many other addresses failing cannot
    flush its record).  While the table is full of such addresses, every
    address not in it shares one record (:attr:`OVERFLOW`): new guessers are
    slowed together, the one case where one address's failures can delay
    another's right token (an attack from more than ``max_sources``
    addresses within ``forget_after_s``).  Addresses that presented the
    right token within ``forget_after_s`` (the last ``max_good`` of them)
    keep their own record even then: the phone that used the LEDs before
    the attack is not slowed by it.
    """

    OVERFLOW = "*"
    """The record that addresses not in a full table share."""

    def __init__(
        self,
        *,
        free_failures: int = 5,
        first_delay_s: float = 1.0,
        max_delay_s: float = 60.0,
        forget_after_s: float = 600.0,
        max_sources: int = 4096,
        max_good: int = 256,
    ) -> None:
        self.free_failures = free_failures
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.forget_after_s = forget_after_s
        self.max_sources = max_sources
        self._table: dict[str, _Failures] = {}  # insertion order = least recently failed first
        self._overflow: _Failures | None = None
        self.max_good = max_good
        self._good: dict[str, float] = {}  # sources that presented the right token: when (oldest first)
        self.refused = 0

    def _stale(self, f: _Failures, now: float) -> bool:
        return now - f.last_t >= self.forget_after_s and now >= f.blocked_until

    def _key(self, source: str, now: float) -> str:
        """``source``, or :attr:`OVERFLOW` if it is not remembered and the
        table is full of addresses that may not be forgotten yet."""
        table = self._table
        if source in table or len(table) < self.max_sources:
            return source
        good_t = self._good.get(source)
        if good_t is not None and now - good_t < self.forget_after_s:
            return source  # beyond max_sources, by at most max_good
        # Forget the stale ones: the least recently failed come first, so
        # this stops at the first that must stay (amortised O(1)).
        while table:
            oldest = next(iter(table))
            if not self._stale(table[oldest], now):
                break
            del table[oldest]
        return source if len(table) < self.max_sources else self.OVERFLOW

    def _get(self, key: str) -> _Failures | None:
        return self._overflow if key == self.OVERFLOW else self._table.get(key)

    def wait_s(self, source: str, now: float) -> float:
        """Seconds before ``source`` may try a token again (0: now)."""
        key = self._key(source, now)
        f = self._get(key)
        if f is None:
            return 0.0
        if self._stale(f, now):
            if key == self.OVERFLOW:
                self._overflow = None
            else:
                del self._table[key]
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
        key = self._key(source, now)
        if key == self.OVERFLOW:
            f = self._overflow = self._overflow or _Failures(0, now, now)
        else:
            f = self._table.pop(key, None) or _Failures(0, now, now)
            self._table[key] = f  # (re-)inserted: now the most recently failed
        f.count += 1
        f.last_t = now
        over = f.count - self.free_failures
        if over > 0:
            delay = min(self.max_delay_s, self.first_delay_s * 2.0 ** min(over - 1, 64))
            f.blocked_until = max(f.blocked_until, now + delay)
        return max(0.0, f.blocked_until - now)

    def succeeded(self, source: str, now: float) -> None:
        """The right token: ``source``'s record goes (the shared overflow
        record stays: it is others' failures), and ``source`` is known good."""
        self._table.pop(source, None)
        good = self._good
        good.pop(source, None)
        good[source] = now
        if len(good) > self.max_good:
            del good[next(iter(good))]

    def __len__(self) -> int:
        return len(self._table) + (self._overflow is not None)
