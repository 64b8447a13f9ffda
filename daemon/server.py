"""The daemon, composed: a websockets server whose HTTP side is
daemon/http.py, whose connections (daemon/wsadapter.py) are counted from
their accept by daemon/accept.py and hand the LED holder's messages to
daemon/holder.py, which feeds the LED writer (daemon/writer.py, run by
daemon/driver.py).  Lines a peer can cause go through daemon/ratelog.py.
This module only wires them up, once the event loop runs (each part gets
the loop's clock and timers at construction), and runs the life cycle:
listen (or take systemd's socket), reload on SIGHUP (daemon/reload.py:
each part's ``reconfigure(cfg)``), the watchdog, and shutdown.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import signal
import socket
from typing import Any, Callable

from websockets.asyncio.server import Server, serve

from .accept import Intake, server_tls_context
from .config import Config
from .connections import ConnectionLimiter
from .driver import LedDriver
from .errors import StartupError
from .holder import Holder
from .http import Routes, build_status
from .leds import LedPair
from .mobileconfig import deferred_ca_downloads
from .protocol import Status
from .ratelog import LibraryLog, LogBudget, RateLimitedLog
from .reload import Reloader
from .security import FailureThrottle
from .systemd import Systemd
from .writer import Writer
from .wsadapter import OPEN_CLOSE_TIMEOUT_S, LedConnection

__all__ = ["Daemon", "StartupError", "run_daemon"]

log = logging.getLogger("gravity_led")

STATUS_EVERY_S = 2.0
"""systemd STATUS= line refresh while a client holds the LEDs."""
RECEIVE_BUFFER_BYTES = 256 * 1024
"""Kernel receive buffer per connection (Linux doubles it; it would otherwise
autotune up to 6 MiB): a bound on what a connection can park in the kernel,
yet large enough that a fast sender's TCP window seldom closes (reopening it
costs tens of milliseconds of stall, measured as flood lag)."""
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
CLOSE_WAIT_S = 0.25
"""At shutdown, how long connections get to answer our close frame before
they are dropped (SIGTERM must end the process within a second)."""
TOKEN_CHANGED_CLOSE_CODE = 1008
"""Policy violation: the LED holder's token is no longer the daemon's."""
TOKEN_CHANGED_REASON = "the token changed; reconnect with the new one"
LOG_BURST = 3
LOG_WINDOW_S = 10.0
"""Lines of one kind a peer can cause: 3 per 10 s, then one summary line."""


def run_daemon(daemon: Daemon, *, on_listening: Callable[[], None] | None = None) -> None:
    """Run ``daemon`` in this process's main thread until it stops; from its
    shutdown on, SIGTERM, SIGINT and SIGHUP change nothing.

    While the loop runs, :meth:`Daemon.run` ignores them once stopping; but
    closing the loop restores their default actions, and SIGHUP's kills.  So
    they are blocked before the loop closes and ignored after, and a signal
    that came in between is dropped.
    """
    try:
        with asyncio.Runner() as runner:
            runner.run(daemon.run(on_listening=on_listening))
            signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    finally:
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)


def serve_options(cfg: Config, *, process_request: Callable[..., Any], intake: Intake, events: RateLimitedLog) -> dict[str, Any]:
    """websockets' ``serve()`` options (but the handler and where to listen)."""
    return dict(
        process_request=process_request,
        compression=None,  # tiny frames gain nothing; and no decompression bombs
        max_size=cfg.max_frame_bytes,
        max_queue=16,
        open_timeout=cfg.handshake_timeout_s,
        ping_interval=cfg.ping_interval_s,
        ping_timeout=cfg.ping_timeout_s,
        close_timeout=OPEN_CLOSE_TIMEOUT_S,
        server_header="gravity-led",
        # No ssl= here: each connection does its own TLS handshake
        # (daemon/accept.py), so that it is counted from the accept.
        create_connection=functools.partial(LedConnection, intake=intake, max_frame_bytes=cfg.max_frame_bytes),
        # Every line websockets logs is one a peer can cause: rate-limited
        # like ours, its tracebacks only at DEBUG.
        logger=LibraryLog(logging.getLogger("gravity_led.websockets"), events),
    )


def listen_error(e: OSError, host: str, port: int) -> StartupError:
    """Why the daemon cannot listen, in one sentence."""
    where = f"{host}:{port}"
    if e.errno == errno.EADDRINUSE:
        return StartupError(f"port {port} is already in use on {host} (is another gravity-led running? pick another with --port)")
    if e.errno == errno.EACCES:
        return StartupError(f"permission denied to listen on {where} (ports below 1024 need privileges)")
    if e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return StartupError(f"cannot listen on {where}: that address is not on this machine")
    return StartupError(f"cannot listen on {where}: {e.strerror or e}")


def dual_stack_socket(port: int) -> socket.socket:
    """A socket listening on every IPv6 and IPv4 address (``--host ::``), as
    the systemd socket unit does: asyncio would set IPV6_V6ONLY and serve
    IPv6 alone, while the URLs announced for ``::`` include IPv4 ones."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _quiet_wakeup_fd() -> None:
    """asyncio wakes its loop for a signal through a socket; a flood of
    signals while the loop is busy fills it, and Python then prints a
    traceback per signal ("Exception ignored when trying to write to the
    signal wakeup fd"), though the loop is woken all the same.  Keep the fd,
    drop the warning.  (``add_signal_handler`` sets it afresh: call after.)"""
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd, warn_on_full_buffer=False)


def _no_reload_source() -> Config:
    raise OSError(0, "no configuration source to re-read")


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
        reload_token: Callable[[Config], str | None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.leds = leds
        self.sd = systemd or Systemd()
        self._token = token
        self._reload_config = reload_config
        self._reload_token = reload_token
        self._downloads = deferred_ca_downloads(cfg.certfile) if cfg.certfile else (lambda: None)  # this Pi's CA, for phones
        self.server: Server | None = None
        self.failed: BaseException | None = None
        self.stopping = False
        self.started_t = 0.0
        self._stop = asyncio.Event()
        self._status_task: asyncio.Task | None = None

    def _build(self, loop: asyncio.AbstractEventLoop) -> None:
        """The parts, each given the loop's clock and timers once."""
        cfg = self.cfg
        writer = Writer(
            mapping=cfg.mapping(),
            update_hz=cfg.update_hz,  # needs a restart to change
            frequency_hz=cfg.frequency_hz,
            smoothing_s=cfg.smoothing_s,
            stale_after_s=cfg.stale_after_s,
        )
        self.events = RateLimitedLog(log, clock=loop.time, call_at=loop.call_at, budget=LogBudget(burst=LOG_BURST, window_s=LOG_WINDOW_S))
        self.driver = LedDriver(writer, self.leds, clock=loop.time, call_at=loop.call_at, events=self.events, on_failure=self._failed)
        self.connections = ConnectionLimiter(max_total=cfg.max_connections, max_per_source=cfg.max_connections_per_address)
        self.throttle = FailureThrottle()
        self.holder = Holder(self.driver, clock=loop.time, events=self.events, idle_release_s=cfg.idle_release_s, on_change=self._client_changed)
        self.routes = Routes(cfg, token=self._token, status=self.status, throttle=self.throttle, clock=loop.time, events=self.events, downloads=self._downloads)
        self.reloader = Reloader(
            cfg,
            load=self._reload_config or _no_reload_source,
            parts=(self, self.driver, self.holder, self.routes),
            cycle=lambda: self.sd.reload_cycle(self._status_line()),
            restart_hint="systemctl restart gravity-led" if self.sd.notify_enabled else "stop the daemon and start it again",
            token=self._token,
            read_token=self._reload_token or (lambda cfg: self._token),
            on_token=self._token_changed,
        )

    def _token_changed(self, token: str | None) -> None:
        """Reloaded with a new token: the old one opens nothing from now on,
        and the client holding the LEDs (it presented the old one) is told
        why and closed, so that a leaked token stops driving the LEDs."""
        self._token = self.routes.token = token
        holder = self.holder.close_client(TOKEN_CHANGED_CLOSE_CODE, TOKEN_CHANGED_REASON)
        log.warning("token changed: the old token no longer works%s", f"; closed {holder}, which connected with it" if holder else "")

    def reconfigure(self, cfg: Config) -> None:
        """Reloaded (SIGHUP): what /status reports, and the log level."""
        self.cfg = cfg
        logging.getLogger().setLevel(cfg.log_level.upper())

    @property
    def port(self) -> int:
        if self.server is None:
            return self.cfg.port
        return self.server.sockets[0].getsockname()[1]

    def status(self) -> Status:
        return build_status(
            cfg=self.cfg,
            state=self.holder.state(),
            leds=self.leds,
            connections=self.connections,
            throttle=self.throttle,
            busy_refused=self.holder.busy_refused,
            uptime_s=self._loop.time() - self.started_t,
        )

    def _status_line(self) -> str:
        if self.stopping:
            return "stopping"
        peer = self.holder.peer
        if peer is None:
            return f"idle, listening on port {self.port}"
        return f"client {peer} at {self.holder.rate_hz} Hz"

    def _client_changed(self) -> None:
        """A client took or left the LEDs: systemd's STATUS= line follows."""
        if not self.sd.notify_enabled:
            return
        if self.holder.peer is not None and self._status_task is None:
            self._status_task = asyncio.ensure_future(self._status_loop())
        elif self.holder.peer is None and self._status_task is not None:
            self._status_task.cancel()
            self._status_task = None
            self.sd.status(self._status_line())

    async def _status_loop(self) -> None:
        while True:
            self.sd.status(self._status_line())
            await asyncio.sleep(STATUS_EVERY_S)

    def _failed(self, err: BaseException) -> None:
        self.failed = err
        self.request_stop()

    async def start(self) -> None:
        """Listen (or take systemd's socket), then tell systemd we are ready."""
        cfg = self.cfg
        self.leds.off()
        tls = server_tls_context(cfg.certfile, cfg.keyfile) if cfg.certfile is not None else None
        intake = Intake(self.connections, handshake_timeout_s=cfg.handshake_timeout_s, tls=tls, events=self.events, loop=self._loop, ipv6_group_prefix=cfg.ipv6_group_prefix)
        kwargs = serve_options(cfg, process_request=self.routes, intake=intake, events=self.events)
        sockets = self.sd.listen_sockets()
        try:
            if sockets:
                log.info("using the socket passed by systemd; --host and --port are ignored")
                self.server = await serve(self.holder.serve, sock=sockets[0], **kwargs)
            elif cfg.host.strip() in ("::", "[::]"):
                self.server = await serve(self.holder.serve, sock=dual_stack_socket(cfg.port), **kwargs)
            else:
                self.server = await serve(self.holder.serve, cfg.host, cfg.port, **kwargs)
        except OSError as e:
            raise listen_error(e, cfg.host, cfg.port) from None
        for sock in self.server.sockets:
            # Bound what the kernel queues for us (accepted sockets inherit it).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        scheme = "wss" if cfg.tls else "ws"
        for sock in self.server.sockets:
            name = sock.getsockname()
            dual = sock.family == socket.AF_INET6 and not sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
            where = f"[{name[0]}]" if ":" in name[0] else name[0]
            log.info("listening on %s://%s:%d%s (pins: right %s, left %s, %s)", scheme, where, name[1], " (IPv6 and IPv4)" if dual else "", cfg.right_pin, cfg.left_pin, self.leds.factory_name)
        self.sd.ready(self._status_line())

    def request_stop(self) -> None:
        self._stop.set()

    def reload(self) -> None:
        """SIGHUP: re-read the configuration off the loop; apply what can change live."""
        self.reloader.request()

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # asyncio's default handler logs a traceback for each, and some a peer
        # can cause at will ("socket.accept() out of system resource"): one
        # rate-limited line instead, the traceback only at DEBUG.
        exc = context.get("exception")
        what = f"{type(exc).__name__}: {exc}" if exc is not None else "no exception"
        self.events.log(logging.ERROR, "event loop errors", "%s (%s)", context.get("message", "error in the event loop"), what)
        if exc is not None and log.isEnabledFor(logging.DEBUG):
            log.debug("event loop error details", exc_info=exc)

    def _signal_while_stopping(self, sig: signal.Signals) -> None:
        self.events.log(logging.INFO, "signals while stopping", "already stopping: %s ignored", sig.name)

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
        self._build(loop)
        loop.set_exception_handler(self._loop_error)
        self.started_t = loop.time()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        _quiet_wakeup_fd()
        await self.start()
        if on_listening is not None:
            on_listening()
        tasks = []
        if self.sd.watchdog_interval_s:
            tasks.append(asyncio.ensure_future(self._watchdog(self.sd.watchdog_interval_s)))
        try:
            await self._stop.wait()
        finally:
            # From here on a signal changes nothing (a SIGHUP used to kill us).
            for sig in SIGNALS:
                loop.add_signal_handler(sig, self._signal_while_stopping, sig)
            _quiet_wakeup_fd()
            self.stopping = self.holder.stopping = True
            log.info("stopping: LEDs off, closing connections")
            self.sd.stopping()
            self.driver.close()
            for conn in self.connections.pending_connections():
                conn.abort()  # handshakes in progress: nothing to close politely
            if self.server is not None:
                self.server.close()
                try:
                    await asyncio.wait_for(self.server.wait_closed(), timeout=CLOSE_WAIT_S)
                except TimeoutError:
                    for conn in self.connections.all_connections():
                        conn.abort()
            if self._status_task is not None:
                tasks.append(self._status_task)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, self.reloader.close(), return_exceptions=True)
            self.events.close()
            self.leds.off()
