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
