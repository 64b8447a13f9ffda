"""Who may connect: Origin allow-list and an optional shared token.

Pure functions of the request's headers and path, so they are tested
without sockets; the server calls them before anything else, so a hostile
page learns nothing (not even whether the LEDs are in use).
"""

from __future__ import annotations

import hmac
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .errors import SecurityError
from .files import UnreadableFile, read_small_file

__all__ = ["SecurityError", "check_token", "normalise_origin", "origin_allowed", "read_token", "request_token", "token_matches"]




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
