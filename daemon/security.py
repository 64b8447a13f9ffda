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

__all__ = ["SecurityError", "normalise_origin", "origin_allowed", "read_token", "request_token", "token_matches"]


def normalise_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, default ports dropped."""
    parts = urlsplit(origin.strip())
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


def read_token(path: str | Path) -> str:
    """The token in ``path`` (surrounding whitespace ignored)."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise SecurityError(f"token file {path} does not exist") from None
    except PermissionError:
        raise SecurityError(f"token file {path} is not readable by this user") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SecurityError(f"token file {path} cannot be read ({e.__class__.__name__})") from None
    if len(token) < 8 or any(c.isspace() for c in token):
        raise SecurityError(f"token file {path} must hold one token of at least 8 characters without spaces")
    return token


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
