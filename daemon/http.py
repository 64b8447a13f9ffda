"""The daemon's HTTP side: the request rules (daemon/http_rules.py), the
token and origin checks on the WebSocket upgrade (with the wrong-token
back-off), ``/healthz``, ``/status`` (built here, declared in
daemon/protocol.py) and the phone page's static files (daemon/web/)."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from http import HTTPStatus
from importlib import resources
from typing import Callable, Protocol

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from . import __version__
from .config import Config
from .connections import ConnectionLimiter
from .http_rules import Checked, Refusal, check_request, static_name
from .leds import LedPair
from .mobileconfig import CA_PATH, CA_TYPE, PROFILE_PATH, PROFILE_TYPE, CaDownloads
from .protocol import ConnectionCounts, MappingDoc, PinsDoc, StateMessage, Status
from .ratelog import RateLimitedLog
from .security import FailureThrottle, origin_allowed, request_token, token_matches

__all__ = ["CONNECTION_REFUSALS", "Requester", "Routes", "build_status"]

log = logging.getLogger("gravity_led")

CONNECTION_REFUSALS = ("per_address", "total", "evicted", "evicted_closing", "timed_out", "token_backoff")
"""The kinds of refusal /status counts: over the per-address cap, over the
total cap, evicted to make room (in its handshake), a refused connection
(busy, or answered over HTTP: 401, 403, ...) dropped while it waited for its
close to make room, handshake not finished in time, and token attempts
refused during the wrong-token back-off."""


class Requester(Protocol):
    """The connection a request came on (daemon/wsadapter.py)."""

    @property
    def peer(self) -> str: ...
    @property
    def source(self) -> str: ...


def build_status(
    *, cfg: Config, state: StateMessage, leds: LedPair, connections: ConnectionLimiter, throttle: FailureThrottle, busy_refused: int, uptime_s: float
) -> Status:
    """The /status document."""
    refused = dict(connections.refused)
    refused["token_backoff"] = throttle.refused
    return Status(
        state=state,
        version=__version__,
        uptime_s=round(uptime_s, 3),
        busy_refused=busy_refused,
        connections=ConnectionCounts(
            connections.open,
            cfg.max_connections,
            pending=connections.pending,
            max_per_address=cfg.max_connections_per_address,
            refused={k: refused.get(k, 0) for k in CONNECTION_REFUSALS},
        ),
        pin_factory=leds.factory_name,
        pins=PinsDoc(cfg.right_pin, cfg.left_pin, cfg.frequency_hz),
        mapping=MappingDoc(**asdict(cfg.mapping()), smoothing_s=cfg.smoothing_s),
        stale_after_s=cfg.stale_after_s,
        pin_writes=leds.writes,
    )


def _response(status: HTTPStatus, body: bytes, content_type: str, extra: tuple[tuple[str, str], ...] = ()) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),  # the page must match the running daemon
            ("X-Content-Type-Options", "nosniff"),
            *extra,
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def _text(status: HTTPStatus, text: str, extra: tuple[tuple[str, str], ...] = ()) -> Response:
    return _response(status, (text + "\n").encode(), "text/plain; charset=utf-8", extra)


def static_file(name: str) -> Response:
    """A file of daemon/web/ (``name`` from :func:`static_name`), or 404."""
    import mimetypes  # on the first page request, not at start-up (a Pi Zero)

    try:
        body = resources.files(__package__).joinpath("web", name).read_bytes()
    except OSError:  # missing, a directory, ...: nothing a peer should hear about
        return _text(HTTPStatus.NOT_FOUND, "not found")
    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype in ("application/javascript", "image/svg+xml"):
        ctype += "; charset=utf-8"
    return _response(HTTPStatus.OK, body, ctype)


class Routes:
    """websockets' ``process_request`` hook: answer plain HTTP requests, and
    let a WebSocket upgrade through (None) only if its origin and token pass.

    Nothing a peer sends raises here: the request rules answer 400/404/405
    first, and every line a peer can cause goes through the rate-limited log.
    """

    def __init__(
        self,
        cfg: Config,
        *,
        token: str | None,
        status: Callable[[], Status],
        throttle: FailureThrottle,
        clock: Callable[[], float],
        events: RateLimitedLog,
        downloads: Callable[[], CaDownloads | None] = lambda: None,
    ) -> None:
        self.cfg = cfg
        self.token = token
        self.status = status
        self.throttle = throttle
        self.clock = clock
        self.events = events
        self.downloads = downloads
        """This Pi's CA for phones to trust (daemon/mobileconfig.py), if its
        certificate has one: built when first asked for."""

    def reconfigure(self, cfg: Config) -> None:
        self.cfg = cfg  # the origin allow-list can change live

    def _token_refusal(self, ws: Requester, req: Checked) -> Response | None:
        """None if the request may go on; else 401, or 429 during a back-off."""
        if self.token is None:
            return None
        source = ws.source
        now = self.clock()
        wait = self.throttle.check(source, now)
        if wait > 0:
            self.events.log(logging.WARNING, "refused token attempts during a back-off", "refused %s: too many wrong tokens from its address; next try in %.0f s", ws.peer, math.ceil(wait))
            return _text(HTTPStatus.TOO_MANY_REQUESTS, "too many wrong tokens; try again later", (("Retry-After", str(math.ceil(wait))),))
        if token_matches(request_token(req.authorization, req.target), self.token):
            self.throttle.succeeded(source, now)
            return None
        blocked = self.throttle.failed(source, now)
        more = f"; its address must wait {blocked:.0f} s" if blocked else ""
        self.events.log(logging.WARNING, "refused: missing or wrong token", "refused %s: missing or wrong token%s", ws.peer, more)
        return _text(HTTPStatus.UNAUTHORIZED, "missing or wrong token")

    def _ca_file(self, path: str) -> Response:
        """The CA certificate (DER) or the iOS profile holding it: public, no token."""
        d = self.downloads()
        if d is None:
            return _text(HTTPStatus.NOT_FOUND, "no CA here: this daemon's certificate is self-signed or it has none; run make-cert to make one")
        if path == CA_PATH:
            body, ctype, name = d.der, CA_TYPE, "gravity-led-ca.crt"
        else:
            body, ctype, name = d.profile, PROFILE_TYPE, "gravity-led-ca.mobileconfig"
        return _response(HTTPStatus.OK, body, ctype, (("Content-Disposition", f'attachment; filename="{name}"'),))

    def __call__(self, ws: Requester, request: Request) -> Response | None:
        try:
            response = self._route(ws, request)
        except Exception as e:  # a bug of ours: one line, and no traceback from a peer's request
            self.events.log(logging.ERROR, "failed to answer requests", "failed to answer a request from %s: %s: %s", ws.peer, type(e).__name__, e)
            return _text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
        if response is not None and request.method == "HEAD":
            response.body = b""  # the headers of a GET, Content-Length included
        return response

    def _route(self, ws: Requester, request: Request) -> Response | None:
        req = check_request(request.method, request.path, request.headers.raw_items())
        if isinstance(req, Refusal):
            self.events.log(logging.INFO, f"refused bad requests ({req.status.value})", "refused a request from %s: %s (%d)", ws.peer, req.reason, req.status.value)
            return _text(req.status, req.reason, req.headers)
        if req.upgrade:
            cfg = self.cfg
            # Security first, so a refused page learns nothing else.
            if not origin_allowed(req.origin, req.host, tls=cfg.tls, allowed=cfg.allowed_origins):
                self.events.log(logging.WARNING, "refused: origin not allowed", "refused a WebSocket from %s: origin %r is not allowed", ws.peer, req.origin)
                return _text(HTTPStatus.FORBIDDEN, "origin not allowed")
            return self._token_refusal(ws, req)
        if req.path == "/healthz":
            return _text(HTTPStatus.OK, "ok")
        if req.path == "/status":
            return self._token_refusal(ws, req) or _response(HTTPStatus.OK, self.status().encode().encode(), "application/json")
        if req.path in (CA_PATH, PROFILE_PATH):
            return self._ca_file(req.path)
        name = static_name(req.path)
        if name is None:
            return _text(HTTPStatus.NOT_FOUND, "not found")
        return static_file(name)
