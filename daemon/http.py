"""The daemon's HTTP side: the token and origin checks on the WebSocket
upgrade, ``/healthz``, ``/status`` (built here, declared in
daemon/protocol.py) and the phone page's static files (daemon/web/)."""

from __future__ import annotations

import logging
import mimetypes
from dataclasses import asdict
from http import HTTPStatus
from importlib import resources
from typing import Callable

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from . import __version__
from .config import Config
from .connections import ConnectionCount, peer_name
from .leds import LedPair
from .protocol import ConnectionCounts, MappingDoc, PinsDoc, StateMessage, Status
from .security import origin_allowed, request_token, token_matches

__all__ = ["Routes", "build_status"]

log = logging.getLogger("gravity_led")


def build_status(*, cfg: Config, state: StateMessage, leds: LedPair, connections: ConnectionCount, busy_refused: int, uptime_s: float) -> Status:
    """The /status document."""
    return Status(
        state=state,
        version=__version__,
        uptime_s=round(uptime_s, 3),
        busy_refused=busy_refused,
        connections=ConnectionCounts(connections.open, cfg.max_connections),
        pin_factory=leds.factory_name,
        pins=PinsDoc(cfg.right_pin, cfg.left_pin, cfg.frequency_hz),
        mapping=MappingDoc(**asdict(cfg.mapping()), smoothing_s=cfg.smoothing_s),
        stale_after_s=cfg.stale_after_s,
        pin_writes=leds.writes,
    )


def _response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),  # the page must match the running daemon
            ("X-Content-Type-Options", "nosniff"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def _text(status: HTTPStatus, text: str) -> Response:
    return _response(status, (text + "\n").encode(), "text/plain; charset=utf-8")


def static_file(path: str) -> Response:
    """A file of daemon/web/, or 404; never outside it."""
    name = "index.html" if path == "/" else path.lstrip("/")
    if "/" in name or name.startswith(".") or not name:
        return _text(HTTPStatus.NOT_FOUND, "not found")
    try:
        body = resources.files(__package__).joinpath("web", name).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return _text(HTTPStatus.NOT_FOUND, "not found")
    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype in ("application/javascript", "image/svg+xml"):
        ctype += "; charset=utf-8"
    return _response(HTTPStatus.OK, body, ctype)


class Routes:
    """websockets' ``process_request`` hook: answer plain HTTP requests, and
    let a WebSocket upgrade through (None) only if its origin and token pass."""

    def __init__(self, *, config: Callable[[], Config], token: str | None, status: Callable[[], Status]) -> None:
        self.config = config
        self.token = token
        self.status = status

    def token_ok(self, request: Request) -> bool:
        return self.token is None or token_matches(request_token(request.headers.get("Authorization"), request.path), self.token)

    def __call__(self, ws: ServerConnection, request: Request) -> Response | None:
        headers = request.headers
        path = request.path.partition("?")[0]
        if "websocket" in headers.get("Upgrade", "").lower():
            cfg = self.config()
            # Security first, so a refused page learns nothing else.
            if not origin_allowed(headers.get("Origin"), headers.get("Host"), tls=cfg.tls, allowed=cfg.allowed_origins):
                log.warning("refused a WebSocket from %s: origin %r is not allowed", peer_name(ws.remote_address), headers.get("Origin"))
                return _text(HTTPStatus.FORBIDDEN, "origin not allowed")
            if not self.token_ok(request):
                log.warning("refused a WebSocket from %s: missing or wrong token", peer_name(ws.remote_address))
                return _text(HTTPStatus.UNAUTHORIZED, "missing or wrong token")
            return None
        if path == "/healthz":
            return _text(HTTPStatus.OK, "ok")
        if path == "/status":
            if not self.token_ok(request):
                return _text(HTTPStatus.UNAUTHORIZED, "missing or wrong token")
            return _response(HTTPStatus.OK, self.status().encode().encode(), "application/json")
        return static_file(path)
