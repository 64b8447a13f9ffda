"""Which HTTP requests the daemon answers, decided before any route runs.

Pure functions of the method, the request target and the header list, so
that nothing a peer sends can reach a route in a shape the route did not
expect (a repeated ``Origin``, a ``Host`` with an unbalanced ``[``, a path
with a NUL byte): those used to end in a traceback and an HTTP 500.

* a method other than GET or HEAD: 405, with ``Allow``;
* a repeated or malformed ``Host``, ``Origin`` or ``Authorization``: 400;
* a path that names no route: 404 (:func:`static_name` for static files).

The Origin *policy* (which origins may connect: 403) stays in
``daemon/security.py``; this module only says whether the header is well formed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Iterable

from .protocol import TLS_ONLY_ANSWER

__all__ = ["ALLOWED_METHODS", "Checked", "Refusal", "check_request", "looks_like_tls", "plain_http_refusal", "static_name"]

ALLOWED_METHODS = ("GET", "HEAD")
SINGLE_HEADERS = ("Host", "Origin", "Authorization")
"""Headers the checks read: one value each, or the request is ambiguous."""
MAX_STATIC_NAME = 64

_PORT = r"(?::(?P<port>\d{1,5}))?"
_HOST = r"(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?)"
_HOST_RE = re.compile(_HOST + _PORT, re.ASCII)
_ORIGIN_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://" + _HOST + _PORT, re.ASCII)
_AUTH_RE = re.compile(r"[\x21-\x7e]+(?: +[\x21-\x7e]+)*", re.ASCII)
_STATIC_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,%d}" % (MAX_STATIC_NAME - 1), re.ASCII)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Answer ``status`` with ``reason`` (one line, also the log kind)."""

    status: HTTPStatus
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Checked:
    """A request that passed: what the routes need, each header at most once."""

    method: str
    path: str
    """The target's path, without the query."""
    target: str
    """The whole target, query included (where ``?token=`` is)."""
    host: str | None
    origin: str | None
    authorization: str | None
    upgrade: bool
    """A WebSocket handshake (GET with ``Upgrade: websocket``)."""

    @property
    def head(self) -> bool:
        return self.method == "HEAD"


def _valid_port(m: re.Match[str]) -> bool:
    port = m.group("port")
    return port is None or int(port) <= 65535


def check_request(method: str, target: str, headers: Iterable[tuple[str, str]]) -> Checked | Refusal:
    """Decide 405 / 400 before routing; otherwise the parts routes need."""
    if method not in ALLOWED_METHODS:
        return Refusal(HTTPStatus.METHOD_NOT_ALLOWED, f"method {method[:16]!r} not allowed", (("Allow", ", ".join(ALLOWED_METHODS)),))
    values: dict[str, list[str]] = {name.lower(): [] for name in (*SINGLE_HEADERS, "Upgrade")}
    for name, value in headers:
        bucket = values.get(name.lower())
        if bucket is not None:
            bucket.append(value)
    for name in SINGLE_HEADERS:
        if len(values[name.lower()]) > 1:
            return Refusal(HTTPStatus.BAD_REQUEST, f"repeated {name} header")
    host = next(iter(values["host"]), None)
    origin = next(iter(values["origin"]), None)
    authorization = next(iter(values["authorization"]), None)
    if host is not None:
        m = _HOST_RE.fullmatch(host)
        if m is None or not _valid_port(m):
            return Refusal(HTTPStatus.BAD_REQUEST, "malformed Host header")
    if origin is not None and origin != "null":
        m = _ORIGIN_RE.fullmatch(origin)
        if m is None or not _valid_port(m):
            return Refusal(HTTPStatus.BAD_REQUEST, "malformed Origin header")
    if authorization is not None and _AUTH_RE.fullmatch(authorization) is None:
        return Refusal(HTTPStatus.BAD_REQUEST, "malformed Authorization header")
    path = target.partition("?")[0]
    upgrade = method == "GET" and any("websocket" in v.lower() for v in values["upgrade"])
    return Checked(method, path, target, host, origin, authorization, upgrade)


def static_name(path: str) -> str | None:
    """The file of ``daemon/web/`` that ``path`` asks for, or None (404).

    Only plain names (letters, digits, ``. _ -``, at most 64 characters, not
    starting with a dot) in the top directory: no traversal, no NUL, no name
    the file system would refuse as too long.
    """
    if path == "/":
        return "index.html"
    if not path.startswith("/"):
        return None
    name = path[1:]
    if _STATIC_RE.fullmatch(name) is None:
        return None
    return name


TLS_HANDSHAKE_RECORD = 0x16
"""The first byte of every TLS connection (a handshake record: ClientHello)."""
_REQUEST_LINE_RE = re.compile(rb"[A-Z]{3,10} \S")
_HOST_HEADER_RE = re.compile(rb"\r\nHost:[ \t]*([^\r\n]*)", re.IGNORECASE)


def looks_like_tls(first: bytes) -> bool:
    """Whether the first bytes a peer sent can start a TLS connection."""
    return first[:1] == bytes((TLS_HANDSHAKE_RECORD,))


def plain_http_refusal(first: bytes, *, port: int, local_host: str) -> bytes | None:
    """The whole answer (400 and where to go instead) to a plain HTTP request
    that came to the TLS port, or None if ``first`` is not a request line.

    The URL's host is the request's own ``Host`` (if well formed: nothing
    else of the peer's is repeated) or the address it reached (``local_host``)."""
    if not _REQUEST_LINE_RE.match(first):
        return None
    m = _HOST_HEADER_RE.search(first)
    host = None
    if m is not None:
        value = m[1].strip().decode("ascii", "replace")
        hm = _HOST_RE.fullmatch(value)
        if hm is not None:
            host = value[: hm.start("port") - 1] if hm["port"] else value
    if host is None:
        host = f"[{local_host}]" if ":" in local_host else local_host
    body = f"{TLS_ONLY_ANSWER}: open https://{host}:{port}/ instead.\n".encode()
    head = (
        "HTTP/1.1 400 Bad Request\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body
