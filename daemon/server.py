"""The asyncio layer: moves bytes between the network, the pure protocol and
mapping functions, and the LEDs.  Nothing here parses or maps by itself.

Design (what the article's server got wrong, fixed):
* a bad frame is answered and counted, never raised: the slot is always freed;
* receiving and writing are decoupled: the receiver keeps only the newest
  vector and wakes the writer, which applies it at most once per tick, so a
  flood or a slow pin backend never queues stale frames;
* the LED holder's frames take a short cut (daemon/framing.py, then straight
  to the daemon), and a sender faster than the tick is read once per tick,
  so a flood costs a third of the article's CPU per frame;
* LEDs go dark on disconnect, after ``stale_after_s`` without a frame, and at
  shutdown; WebSocket pings find phones that vanished.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import math
import mimetypes
import signal
import socket
import ssl
import time
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from typing import Any, Callable

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

from . import __version__
from .config import RELOADABLE, Config, ConfigError, changed_options, replace
from .framing import FastFramer
from .leds import LedPair
from .mapping import OFF, Smoother, duties_for
from .protocol import BUSY_CLOSE_CODE, BUSY_REASON, FrameError, Vector, encode_error, encode_state, parse_frame
from .security import origin_allowed, request_token, token_matches
from .systemd import Systemd
from .wording import frame_counts

__all__ = ["Daemon", "StartupError"]

log = logging.getLogger("gravity_led")

ERRORS_PER_S = 5.0
"""Error replies per second to one client (a burst of the same size allowed)."""
LOG_REJECTS_EVERY_S = 5.0
SEND_BUFFER_LIMIT = 16 * 1024
"""Skip optional messages (errors, telemetry) to a client that is not reading."""
MAX_UNREAD_BYTES = 256 * 1024
"""Abort a connection whose peer leaves this much of our output unread (pong floods)."""
STATUS_EVERY_S = 2.0
HOLD_AFTER_FRAMES = 3
"""Frames within one update tick after which the holder's reads are held
(read holding pays off from about three frames per tick)."""
OP_TEXT, OP_BINARY, OP_CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
RECEIVE_BUFFER_BYTES = 256 * 1024
"""Kernel receive buffer per connection (Linux doubles it; it would otherwise
autotune up to 6 MiB): a bound on what a connection can park in the kernel,
yet large enough that a fast sender's TCP window seldom closes (reopening it
costs tens of milliseconds of stall, measured as flood lag)."""


class StartupError(RuntimeError):
    """The daemon cannot start; ``str(err)`` is one sentence for the user."""


def _peer(ws: ServerConnection) -> str:
    addr = ws.remote_address
    if not addr:
        return "unknown"
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class RateMeter:
    """Frames per second over the last whole second; O(1) per frame."""

    __slots__ = ("_sec", "_count", "_last")

    def __init__(self) -> None:
        self._sec = 0
        self._count = 0
        self._last = 0

    def tick(self, now: float) -> None:
        s = int(now)
        if s != self._sec:
            self._last = self._count if s == self._sec + 1 else 0
            self._sec = s
            self._count = 0
        self._count += 1

    def rate(self, now: float) -> int:
        s = int(now)
        if s == self._sec:
            return self._last
        return self._count if s == self._sec + 1 else 0


@dataclass(slots=True)
class Session:
    """What the daemon knows about the client holding the LEDs."""

    ws: ServerConnection
    peer: str
    accepted: int = 0
    rejected: int = 0
    error_tokens: float = ERRORS_PER_S
    error_refill_t: float = 0.0
    errors_suppressed: int = 0
    rejects_unlogged: int = 0
    last_reject_log_t: float = -math.inf
    telemetry: asyncio.Task | None = None
    reads_held: bool = False


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


class Daemon:
    """One phone at a time drives two LEDs."""

    def __init__(
        self,
        cfg: Config,
        *,
        leds: LedPair,
        systemd: Systemd | None = None,
        token: str | None = None,
        reload_config: Callable[[], Config] | None = None,
    ) -> None:
        self.cfg = cfg
        self.leds = leds
        self.sd = systemd or Systemd()
        self.token = token
        self._reload_config = reload_config
        self.mapping = cfg.mapping()
        self.smoother = Smoother(tau_s=cfg.smoothing_s)
        self.session: Session | None = None
        self.latest: Vector | None = None
        self.last_frame_t = 0.0
        self.accepted = 0
        self.rejected = 0
        self.busy_refused = 0
        self.rate = RateMeter()
        self.started_t = time.monotonic()
        self.server: Server | None = None
        self.stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._apply_handle: asyncio.Handle | None = None
        self._accepted_at_tick = 0
        self._held_until = -math.inf
        self._accepted_at_apply = 0
        self._trailing_handle: asyncio.TimerHandle | None = None
        self._unapplied = False
        self._stale_handle: asyncio.TimerHandle | None = None
        self._last_apply_t = -math.inf
        self._tick_s = 1.0 / cfg.update_hz  # update_hz needs a restart to change
        self.failed: BaseException | None = None
        self._stop = asyncio.Event()
        self.open_connections = 0

    # ---- frames -----------------------------------------------------------

    def _on_message(self, s: Session, message: str | bytes) -> None:
        try:
            msg = parse_frame(message)
        except FrameError as err:
            self._reject(s, err)
            return
        if type(msg) is Vector:
            self._accept(s, msg)
        else:
            self._set_telemetry(s, msg.rate_hz)

    def _accept(self, s: Session, v: Vector) -> None:
        now = time.monotonic()
        self.latest = v
        self._unapplied = True
        self.last_frame_t = now
        self.accepted += 1
        s.accepted += 1
        self.rate.tick(now)
        if self._stale_handle is None:
            self._stale_handle = self._loop.call_at(now + self.cfg.stale_after_s, self._check_stale)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("frame %r from %s", v, s.peer)

    def _frames_read(self, s: Session) -> None:
        """After each read from the holder: write the newest vector if a tick
        has passed since the last write, else at the tick.  One decision per
        read, not per frame, so a burst costs one write, of the newest."""
        if not self._unapplied or self._apply_handle is not None or self.stopping:
            return  # nothing new, or a write is already due and will read ``latest``
        now = time.monotonic()
        due = self._last_apply_t + self._tick_s
        if now >= due:
            self._apply()  # fresh and due: no waiting, no timer
        elif self.accepted - self._accepted_at_apply >= HOLD_AFTER_FRAMES:
            self._hold_reads(s, due)
        elif self._trailing_handle is None:
            # Too soon after the last write: this frame waits, replaced by any
            # newer one.  A frame that comes after the tick writes itself (and
            # cancels this); the timer only matters if none does.
            self._trailing_handle = self._loop.call_at(due + self._tick_s, self._apply)

    # Read holding.  A sender much faster than the tick would wake us for
    # every frame, yet only the newest is written, once per tick.  So once
    # HOLD_AFTER_FRAMES frames come within one tick, we stop reading its
    # socket until the tick: frames wait in the kernel and arrive as one read,
    # one wake-up per tick instead of one per frame (a flood is read in big
    # batches, like a server that has fallen behind, but never more than a
    # tick behind).  A steady slower sender is never held: for it a timer
    # wake-up would cost more than the frames' own.

    def _hold_reads(self, s: Session, due: float) -> None:
        if self._trailing_handle is not None:  # the tick writes instead
            self._trailing_handle.cancel()
            self._trailing_handle = None
        transport = s.ws.transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()
            s.reads_held = True
        self._held_until = due
        self._apply_handle = self._loop.call_at(due, self._tick_due, s)

    def _tick_due(self, s: Session) -> None:
        self._apply_handle = None
        transport = s.ws.transport
        if s.reads_held and self.session is s and not transport.is_closing():
            s.reads_held = False
            if not s.ws.recv_messages.paused:  # websockets' own flow control
                transport.resume_reading()
            # A timer due now runs after the next loop pass's I/O callbacks:
            # after the read of whatever waited, so it writes the newest.
            self._accepted_at_tick = self.accepted
            self._apply_handle = self._loop.call_at(self._loop.time(), self._tick_read, s)
            return
        self._apply()

    def _tick_read(self, s: Session) -> None:
        self._apply_handle = None
        read = self.accepted - self._accepted_at_tick
        self._apply()
        # Still fast (two or more frames in the tick): hold again straight
        # away, until one tick after the last hold ended (not after this
        # write: the time spent reading a batch is not idle time, so a sender
        # as fast as our parser cannot get ahead).  Otherwise it has slowed
        # down: read frames as they come.
        due = self._held_until + self._tick_s
        if read >= 2 and self.session is s and self._apply_handle is None and not self.stopping and due > time.monotonic():
            self._hold_reads(s, due)

    def _reject(self, s: Session, err: FrameError) -> None:
        now = time.monotonic()
        self.rejected += 1
        s.rejected += 1
        s.rejects_unlogged += 1
        if now - s.last_reject_log_t >= LOG_REJECTS_EVERY_S:
            more = f" (and {s.rejects_unlogged - 1} more since the last report)" if s.rejects_unlogged > 1 else ""
            log.info(
                "rejected a frame from %s: %s%s",
                s.peer,
                err.message,
                more,
                extra={"CLIENT_ADDRESS": s.peer, "FRAMES_REJECTED": s.rejected},
            )
            s.last_reject_log_t = now
            s.rejects_unlogged = 0
        # Token bucket: a client that floods bad frames gets a few answers per
        # second, and none at all if it is not reading them.
        s.error_tokens = min(ERRORS_PER_S, s.error_tokens + (now - s.error_refill_t) * ERRORS_PER_S)
        s.error_refill_t = now
        if s.error_tokens >= 1.0 and self._can_send(s.ws):
            s.error_tokens -= 1.0
            msg = encode_error(err, suppressed=s.errors_suppressed)
            s.errors_suppressed = 0
            asyncio.ensure_future(self._send_quietly(s.ws, msg))
        else:
            s.errors_suppressed += 1

    @staticmethod
    def _can_send(ws: ServerConnection) -> bool:
        transport = ws.transport
        return transport is not None and not transport.is_closing() and transport.get_write_buffer_size() < SEND_BUFFER_LIMIT

    @staticmethod
    async def _send_quietly(ws: ServerConnection, msg: str) -> None:
        try:
            await ws.send(msg)
        except ConnectionClosed:
            pass

    # ---- the LED writer ---------------------------------------------------
    # Loop callbacks rather than a task: a frame costs no task switch, and in
    # a steady stream no timer either.  At most one write per tick; a pending
    # write reads the newest vector when it runs, so frames that arrive within
    # a tick replace each other.  The stale timer is armed once per stale
    # period, not per frame.

    def _schedule(self, tick_s: float | None = None) -> None:
        """Apply the newest vector now if a tick has passed, else at the next tick.

        Applying at once (not with call_soon) saves an event-loop pass per
        frame; frames that arrive within the tick only replace ``latest``.
        """
        if self._apply_handle is not None or self.stopping:
            return
        due = self._last_apply_t + (tick_s if tick_s is not None else self._tick_s)
        if time.monotonic() >= due:
            self._apply()
        else:
            self._apply_handle = self._loop.call_at(due, self._apply)

    def _apply(self) -> None:
        if self._apply_handle is not None:  # called early: the pending write is this one
            self._apply_handle.cancel()
            self._apply_handle = None
        if self._trailing_handle is not None:
            self._trailing_handle.cancel()
            self._trailing_handle = None
        now = time.monotonic()
        v = self.latest
        self._unapplied = False
        self._accepted_at_apply = self.accepted
        target = OFF if v is None else duties_for(v, self.mapping)
        duties = self.smoother.step(target, now)
        try:
            self.leds.write(duties)
        except Exception as e:  # a pin library failed: stop loudly, not silently
            self.failed = e
            log.error("writing to the LEDs failed: %s", e)
            self.request_stop()
            return
        self._last_apply_t = now
        if not self.smoother.settled(target):
            # Easing: no point updating faster than the PWM period.
            self._schedule(1.0 / min(self.cfg.update_hz, self.cfg.frequency_hz))
        elif self.smoother.tau_s:
            # Settled: snap to the exact target and restart the clock, so the
            # next change eases from here instead of jumping.
            self.smoother.reset(target)
            if duties != target:
                self._schedule()

    def _check_stale(self) -> None:
        self._stale_handle = None
        if self.latest is None:
            return
        due = self.last_frame_t + self.cfg.stale_after_s
        if self._loop.time() < due:  # frames came since the timer was armed
            self._stale_handle = self._loop.call_at(due, self._check_stale)
            return
        self.latest = None
        log.info(
            "no valid frame for %.1f s: LEDs off (stale-data failsafe)",
            self.cfg.stale_after_s,
            extra={"CLIENT_ADDRESS": self.session.peer if self.session else ""},
        )
        self._schedule()

    # ---- connections ------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        if self.session is not None:
            self.busy_refused += 1
            log.info("refused %s: the LEDs are in use by %s", _peer(ws), self.session.peer, extra={"CLIENT_ADDRESS": _peer(ws)})
            await ws.close(BUSY_CLOSE_CODE, BUSY_REASON)
            return
        s = self.session = Session(ws, _peer(ws))
        log.info("client %s connected", s.peer, extra={"CLIENT_ADDRESS": s.peer})
        # systemd's STATUS= line shows the live rate; nothing to do off systemd.
        status_task = asyncio.ensure_future(self._status_loop()) if self.sd.notify_enabled else None
        reason = "closed the connection"
        try:
            # Most messages take the fast path in _connection_class; these
            # are the rest (fragmented, or queued before we held the LEDs).
            async for message in ws:
                self._on_message(s, message)
                self._frames_read(s)
        except ConnectionClosed as e:
            reason = f"was disconnected ({e.rcvd.code if e.rcvd else e.sent.code if e.sent else 1006})"
        finally:
            if status_task is not None:
                status_task.cancel()
            if s.telemetry is not None:
                s.telemetry.cancel()
            # Off now, not on the writer's next tick, and without easing.
            self.latest = None
            self.smoother.reset()
            self.leds.off()
            self.session = None
            # What we sent: a vanished peer never echoes our close frame, so
            # ws.close_code is then 1006 whatever the cause.
            sent = ws.protocol.close_sent
            if sent is not None and sent.code == 1009:
                reason = f"sent a frame over {self.cfg.max_frame_bytes} bytes (closed with 1009)"
            elif sent is not None and sent.code == 1011 and sent.reason == "keepalive ping timeout":
                reason = "stopped answering pings"
            if self.stopping and reason == "closed the connection":
                reason = "was disconnected (the daemon is stopping)"
            log.info(
                "client %s %s after %s: LEDs off",
                s.peer,
                reason,
                frame_counts(s.accepted, s.rejected),
                extra={"CLIENT_ADDRESS": s.peer, "FRAMES_ACCEPTED": s.accepted, "FRAMES_REJECTED": s.rejected},
            )
            self.sd.status(self._status_line())

    def _set_telemetry(self, s: Session, rate_hz: float) -> None:
        if s.telemetry is not None:
            s.telemetry.cancel()
            s.telemetry = None
        if rate_hz > 0:
            s.telemetry = asyncio.ensure_future(self._telemetry(s, 1.0 / rate_hz))

    async def _telemetry(self, s: Session, interval_s: float) -> None:
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        try:
            while True:
                if self._can_send(s.ws):
                    await s.ws.send(encode_state(self.state()))
                next_t = max(next_t + interval_s, loop.time())
                await asyncio.sleep(next_t - loop.time())
        except ConnectionClosed:
            pass

    async def _status_loop(self) -> None:
        while True:
            self.sd.status(self._status_line())
            await asyncio.sleep(STATUS_EVERY_S)

    def _status_line(self) -> str:
        if self.stopping:
            return "stopping"
        s = self.session
        if s is None:
            return f"idle, listening on port {self.port}"
        return f"client {s.peer} at {self.rate.rate(time.monotonic())} Hz"

    # ---- HTTP -------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What /status and telemetry report."""
        d = self.leds.duties
        now = time.monotonic()
        return {
            "leds": {"right": d.right, "left": d.left},
            "client": self.session.peer if self.session else None,
            "frames": {"accepted": self.accepted, "rejected": self.rejected},
            "rate_hz": self.rate.rate(now) if self.session else 0,
        }

    def status(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            **self.state(),
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.started_t, 3),
            "busy_refused": self.busy_refused,
            "connections": {"open": self.open_connections, "max": cfg.max_connections},
            "pin_factory": self.leds.factory_name,
            "pins": {"right": cfg.right_pin, "left": cfg.left_pin, "frequency_hz": cfg.frequency_hz},
            "mapping": {
                "axis": cfg.axis,
                "invert": cfg.invert,
                "dead_zone_deg": cfg.dead_zone_deg,
                "full_scale_deg": cfg.full_scale_deg,
                "curve": cfg.curve,
                "gamma": cfg.gamma,
                "smoothing_s": cfg.smoothing_s,
            },
            "stale_after_s": cfg.stale_after_s,
            "pin_writes": self.leds.writes,
        }

    def _token_ok(self, request: Request) -> bool:
        return self.token is None or token_matches(request_token(request.headers.get("Authorization"), request.path), self.token)

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        headers = request.headers
        path = request.path.partition("?")[0]
        upgrade = "websocket" in headers.get("Upgrade", "").lower()
        if upgrade:
            # Security first, so a refused page learns nothing else.
            if not origin_allowed(headers.get("Origin"), headers.get("Host"), tls=self.cfg.tls, allowed=self.cfg.allowed_origins):
                log.warning("refused a WebSocket from %s: origin %r is not allowed", _peer(ws), headers.get("Origin"))
                return _text(HTTPStatus.FORBIDDEN, "origin not allowed")
            if not self._token_ok(request):
                log.warning("refused a WebSocket from %s: missing or wrong token", _peer(ws))
                return _text(HTTPStatus.UNAUTHORIZED, "missing or wrong token")
            return None
        if path == "/healthz":
            return _text(HTTPStatus.OK, "ok")
        if path == "/status":
            if not self._token_ok(request):
                return _text(HTTPStatus.UNAUTHORIZED, "missing or wrong token")
            return _response(HTTPStatus.OK, json.dumps(self.status()).encode(), "application/json")
        return self._static(path)

    @staticmethod
    def _static(path: str) -> Response:
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

    # ---- life cycle -------------------------------------------------------

    @property
    def port(self) -> int:
        if self.server is None:
            return self.cfg.port
        return self.server.sockets[0].getsockname()[1]

    def _connection_class(self) -> type[ServerConnection]:
        daemon = self

        class CappedConnection(ServerConnection):
            """Counts open TCP connections; drops those over the cap at once."""

            fragmented = False

            def process_event(self, event: Any) -> None:
                # Fast path: a complete data frame from the client holding the
                # LEDs goes straight to the daemon, skipping websockets'
                # message queue and a handler-task wake-up (a third of the
                # per-frame cost under a flood).  Fragmented messages, invalid
                # UTF-8 and everyone else take websockets' own path.
                if type(event) is Frame:
                    op = event.opcode
                    if op is OP_TEXT or op is OP_BINARY:
                        s = daemon.session
                        if event.fin and not self.fragmented and s is not None and s.ws is self:
                            try:
                                data = event.data.decode() if op is OP_TEXT else bytes(event.data)
                            except UnicodeDecodeError:
                                pass  # websockets closes with 1007
                            else:
                                daemon._on_message(s, data)
                                return
                        self.fragmented = not event.fin
                    elif op is OP_CONT and event.fin:
                        self.fragmented = False
                super().process_event(event)

            def _receive_holder(self, s: Session, data: bytes) -> None:
                # Simple frames straight to the daemon (daemon/framing.py).
                self.framer.feed(self.protocol, data, daemon.cfg.max_frame_bytes, lambda m: daemon._on_message(s, m), super().data_received)

            def eof_received(self) -> bool | None:
                pending = self.framer.take_pending()
                if pending:  # a frame cut short: websockets reports it
                    super().data_received(pending)
                return super().eof_received()

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.framer = FastFramer()
                daemon.open_connections += 1
                super().connection_made(transport)
                if daemon.open_connections > daemon.cfg.max_connections:
                    transport.abort()

            def data_received(self, data: bytes) -> None:
                s = daemon.session
                if s is not None and s.ws is self:
                    self._receive_holder(s, data)
                    daemon._frames_read(s)
                else:
                    super().data_received(data)
                # websockets answers every ping with a pong whether or not the
                # peer reads them: a peer that sends pings and never reads
                # would grow this buffer without limit.  Our own optional
                # messages stop at SEND_BUFFER_LIMIT, so this is never legit.
                transport = self.transport
                if transport.get_write_buffer_size() > MAX_UNREAD_BYTES and not transport.is_closing():
                    log.warning("dropped %s: it sends but does not read what we answer", _peer(self))
                    transport.abort()

            def connection_lost(self, exc: Exception | None) -> None:
                daemon.open_connections -= 1
                super().connection_lost(exc)

        return CappedConnection

    def _ssl_context(self) -> ssl.SSLContext | None:
        cfg = self.cfg
        if cfg.certfile is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ctx.load_cert_chain(cfg.certfile, cfg.keyfile)
        except FileNotFoundError as e:
            raise StartupError(f"TLS file {e.filename or cfg.certfile} does not exist") from None
        except PermissionError as e:
            raise StartupError(f"TLS file {e.filename} is not readable by this user") from None
        except ssl.SSLError:
            raise StartupError(f"{cfg.certfile} and {cfg.keyfile} are not a matching PEM certificate and key") from None
        return ctx

    async def start(self) -> None:
        """Listen (or take systemd's socket), then tell systemd we are ready."""
        cfg = self.cfg
        self.leds.off()
        kwargs: dict[str, Any] = dict(
            process_request=self._process_request,
            compression=None,  # tiny frames gain nothing; and no decompression bombs
            max_size=cfg.max_frame_bytes,
            max_queue=16,
            open_timeout=cfg.handshake_timeout_s,
            ping_interval=cfg.ping_interval_s,
            ping_timeout=cfg.ping_timeout_s,
            close_timeout=1.0,
            server_header="gravity-led",
            create_connection=self._connection_class(),
            ssl=self._ssl_context(),
            logger=logging.getLogger("gravity_led.websockets"),
        )
        sockets = self.sd.listen_sockets()
        try:
            if sockets:
                log.info("using the socket passed by systemd; --host and --port are ignored")
                self.server = await serve(self._handle, sock=sockets[0], **kwargs)
            else:
                self.server = await serve(self._handle, cfg.host, cfg.port, **kwargs)
        except OSError as e:
            where = f"{cfg.host}:{cfg.port}"
            if e.errno == errno.EADDRINUSE:
                raise StartupError(f"port {cfg.port} is already in use on {cfg.host} (is another gravity-led running? pick another with --port)") from None
            if e.errno == errno.EACCES:
                raise StartupError(f"permission denied to listen on {where} (ports below 1024 need privileges)") from None
            if e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                raise StartupError(f"cannot listen on {where}: that address is not on this machine") from None
            raise StartupError(f"cannot listen on {where}: {e.strerror or e}") from None
        for sock in self.server.sockets:
            # Bound what the kernel queues for us (accepted sockets inherit it).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        scheme = "wss" if cfg.tls else "ws"
        for sock in self.server.sockets:
            name = sock.getsockname()
            log.info("listening on %s://%s:%d (pins: right %s, left %s, %s)", scheme, name[0], name[1], cfg.right_pin, cfg.left_pin, self.leds.factory_name)
        self.sd.ready(self._status_line())

    def request_stop(self) -> None:
        self._stop.set()

    def reload(self) -> None:
        """SIGHUP: re-read the configuration; apply what can change live."""
        if self._reload_config is None:
            log.warning("reload requested, but no configuration source to re-read")
            return
        # RELOADING=1 now, READY=1 whatever happens, so the unit never sticks.
        with self.sd.reload_cycle(self._status_line()):
            try:
                new = self._reload_config()
            except ConfigError as e:
                log.error("reload failed, keeping the running configuration: %s", e)
                return
            changed = changed_options(self.cfg, new)
            refused = sorted(changed - RELOADABLE)
            if refused:
                log.warning(
                    "reload: %s cannot change without a restart (%s); keeping the running values",
                    ", ".join(refused),
                    "systemctl restart gravity-led" if self.sd.notify_enabled else "stop the daemon and start it again",
                )
            live = sorted(changed & RELOADABLE)
            if live:
                self.cfg = replace(self.cfg, **{k: getattr(new, k) for k in live})
                self.mapping = self.cfg.mapping()
                self.smoother.tau_s = self.cfg.smoothing_s
                logging.getLogger().setLevel(self.cfg.log_level.upper())
                if self._stale_handle is not None:  # the stale timeout may have changed
                    self._stale_handle.cancel()
                    self._stale_handle = None
                    self._check_stale()
                self._schedule()
                log.info("reloaded configuration: %s", ", ".join(f"{k}={getattr(self.cfg, k)!r}" for k in live))
            elif not refused:
                log.info("reloaded configuration: nothing changed")

    async def _watchdog(self, interval_s: float) -> None:
        # From the event loop itself: if the loop stalls, systemd restarts us.
        while True:
            self.sd.watchdog()
            await asyncio.sleep(interval_s)

    async def run(self, *, on_listening: Callable[[], None] | None = None) -> None:
        """Serve until SIGTERM/SIGINT; LEDs off and pins released at the end.

        ``on_listening`` runs once the socket listens, before any client is served.
        """
        loop = self._loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        await self.start()
        if on_listening is not None:
            on_listening()
        tasks = []
        if self.sd.watchdog_interval_s:
            tasks.append(asyncio.ensure_future(self._watchdog(self.sd.watchdog_interval_s)))
        try:
            await self._stop.wait()
        finally:
            self.stopping = True
            log.info("stopping: LEDs off, closing connections")
            self.sd.stopping()
            for handle in (self._apply_handle, self._trailing_handle, self._stale_handle):
                if handle is not None:
                    handle.cancel()
            self.leds.off()
            if self.server is not None:
                self.server.close()
                try:
                    await asyncio.wait_for(self.server.wait_closed(), timeout=0.8)
                except TimeoutError:
                    pass
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.leds.off()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
