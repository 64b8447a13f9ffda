"""Everything that reaches below websockets' public API, in one place.

websockets (tested: 16.x and 17.x; setup.cfg caps it below 18) gives us a
``ServerConnection`` per client.  Its public API reads messages through a
queue and a task wake-up per message: a third of the daemon's per-frame cost
under a flood.  So the LED holder's connection takes a short cut, and each
use of websockets' internals below says why and what breaks if websockets
changes.  If one of them stops matching, the fast path switches itself off
and every byte takes websockets' own path (``parser_idle`` answers False):
slower, never wrong.  ``tests/unit/test_framing.py`` fails first when that happens.

:class:`LedConnection` reports its accept, handshake and close to
daemon/accept.py (which counts it, does its TLS handshake and times it),
hands the holder's messages to :meth:`Holder.read <gravity_led.daemon.holder.Holder.read>`
one read at a time, whichever path they took, and offers the rest of the
daemon a few plain methods (send if there is room, why it closed) and the
valve on its reads (daemon/driver.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State

from .accept import Intake
from .connections import peer_name, too_much_unread
from .driver import ReadValve
from .framing import FastFramer, HeadGate
from .holder import Holder

__all__ = ["BACKLOG_FRAMES", "KEEP_NEWEST", "LedConnection", "close_words", "parser_idle"]

log = logging.getLogger("gravity_led")

SEND_BUFFER_LIMIT = 16 * 1024
"""Skip optional messages (errors, telemetry) to a client that is not reading."""

OPEN_CLOSE_TIMEOUT_S = 1.0
"""websockets' close timeout for an open connection (the holder's)."""

KEEPALIVE_TIMEOUT_REASON = "keepalive ping timeout"
"""The reason websockets' keepalive closes with (websockets/asyncio/connection.py,
``keepalive()``); if it changes, only a log line's wording suffers."""

TOO_MANY_FRAGMENTS_REASON = "too many fragments"
"""The reason websockets closes with (1009) when a message comes in more
than its 4096 fragments (websockets/asyncio/connection.py, ``recv()``)."""

BACKLOG_FRAMES = 256
"""A read holding more frames than this means the daemon has fallen behind
its sender: a phone at 200 Hz sends one or two frames per read (256 would be
over a second of them), and a read held for one tick of a flood holds a
tick's frames.  Decoding and parsing every one of those costs more than the
sender takes to send it on a Pi Zero's core (2 us a frame at full speed, of
which only the newest is written), so such a read is skimmed (KEEP_NEWEST)."""

KEEP_NEWEST = 64
"""Behind, only the newest this many frames of a read (and every control
message) are decoded and parsed (daemon/framing.py, ``FastFramer``): the LED
writer keeps only the newest vector anyway, and decoding the superseded ones
is what keeps the daemon behind (seconds of stale LEDs on a Pi Zero)."""

REFUSAL_CLOSE_TIMEOUT_S = 0.25
"""How long a refused connection (an HTTP answer such as 401/403/404, or
the busy 1013) waits for its peer to close before it is dropped.  A peer
that never answers must not hold a slot for websockets' usual close timeout."""

MAX_AFTER_HEAD_BYTES = 16 * 1024
"""Bytes a peer may send after its request head before it has our answer
(a pipelined second request, or frames sent before the 101): held, never
parsed while the handshake runs; more than this and it is dropped."""

_TEXT, _BINARY = Opcode.TEXT, Opcode.BINARY


def close_words(sent: Any, rcvd: Any, *, max_frame_bytes: int) -> str:
    """Why a connection ended, in words for the log, from the close frames
    we sent and received (websockets' ``Close`` objects, or None)."""
    if sent is not None:
        code, reason = sent.code, sent.reason
        if code == CloseCode.MESSAGE_TOO_BIG:
            if reason == TOO_MANY_FRAGMENTS_REASON:
                return f"sent a message in too many fragments (closed with {code})"
            return f"sent a message over {max_frame_bytes} bytes (closed with {code})"
        if code == CloseCode.INTERNAL_ERROR and reason == KEEPALIVE_TIMEOUT_REASON:
            return "stopped answering pings"
        if code == CloseCode.INVALID_DATA:
            return f"sent text that is not UTF-8 (closed with {code})"
        if code == CloseCode.PROTOCOL_ERROR:
            return f"broke the WebSocket protocol: {reason or 'no reason given'} (closed with {code})"
        if code == CloseCode.POLICY_VIOLATION or (code == CloseCode.NORMAL_CLOSURE and reason):
            return f"was closed: {reason} ({code})"
    if rcvd is not None:
        return "closed the connection" if rcvd.code == CloseCode.NORMAL_CLOSURE else f"closed the connection ({rcvd.code})"
    if sent is not None:
        return f"was disconnected ({sent.code})"
    return f"was disconnected ({CloseCode.ABNORMAL_CLOSURE}, no close frame)"


def parser_idle(protocol: Any) -> bool:
    """Whether websockets' Sans-I/O protocol is open and has consumed whole
    frames only, outside any fragmented message, so the next byte it would
    read starts a frame.  False when unsure.

    Internals used (websockets 16-17, ``websockets/protocol.py``):
    ``current_size`` (not None inside a fragmented message), ``reader.buffer``
    (bytes it holds), and the ``parser`` generator, which waits in
    ``StreamReader.at_eof`` between frames.  If any is renamed this returns
    False (AttributeError), and the fast path stays off.
    """
    try:
        if protocol.state is not State.OPEN or protocol.reader.buffer or protocol.current_size is not None:
            return False
        gen = protocol.parser
        while gen.gi_yieldfrom is not None:  # the innermost generator it waits in
            gen = gen.gi_yieldfrom
        return gen.gi_code is type(protocol.reader).at_eof.__code__
    except AttributeError:
        return False


class LedConnection(ServerConnection):
    """websockets' server connection, plus: counted and capped from its
    accept, and the LED holder's messages delivered straight to the holder.

    Built by ``serve(create_connection=functools.partial(LedConnection,
    intake=..., max_frame_bytes=...))``: websockets calls
    ``create_connection(protocol, server, ping_interval=..., ...)`` (16-17);
    a new argument there reaches ``ServerConnection`` through ``**kwargs``.
    """

    def __init__(self, *args: Any, intake: Intake, max_frame_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.intake = intake
        self.max_frame_bytes = max_frame_bytes
        self.framer = FastFramer(limit=max_frame_bytes, backlog_frames=BACKLOG_FRAMES, keep_newest=KEEP_NEWEST)
        self.sink: Holder | None = None
        self.reads: ReadValve | None = None  # once websockets has the transport
        self._framed = False  # websockets' parser known to be at a frame boundary
        self._batch: list[str | bytes] | None = None  # whole frames websockets parsed during a read
        self.source = "unknown"  # the address limits count against
        self.raw_transport: asyncio.Transport | None = None  # TCP, under TLS if any
        self._peername: Any = None
        self._started = False  # websockets' own connection_made ran
        self._early: list[bytes] = []  # decrypted bytes that came before it did
        self._head = HeadGate(limit=MAX_AFTER_HEAD_BYTES)  # bytes after the request head wait for its answer
        self.close_timeout = REFUSAL_CLOSE_TIMEOUT_S  # until the handshake succeeds (start_keepalive)

    @property
    def peer(self) -> str:
        return peer_name(self._peername)

    @property
    def superseded(self) -> int:
        """Vectors skipped undecoded in a backlog (daemon/framing.py)."""
        return self.framer.superseded

    # ---- for the holder -------------------------------------------------

    def attach(self, sink: Holder) -> None:
        """From now on, every message goes to ``sink``, none to websockets' queue."""
        self.sink = sink

    def detach(self) -> None:
        self.sink = None

    async def pump(self) -> None:
        """Hand the sink what took websockets' own queue (fragmented messages,
        and any queued before ``attach``) until the connection closes;
        raises ConnectionClosed."""
        async for message in self:
            self.sink.read((message,))

    def has_room(self) -> bool:
        """Whether an optional message may be sent (the peer reads what we send)."""
        transport = self.transport
        return transport is not None and not transport.is_closing() and transport.get_write_buffer_size() < SEND_BUFFER_LIMIT

    async def send_quietly(self, message: str) -> None:
        try:
            await self.send(message)
        except ConnectionClosed:
            pass

    def disconnect_reason(self, exc: ConnectionClosed | None) -> str:
        """Why the connection ended, in words for the log."""
        # What we sent: a vanished peer never echoes our close frame, so
        # close_code is then 1006 whatever the cause.  ``close_sent`` and
        # ``close_rcvd`` are public in websockets' Sans-I/O layer.
        return close_words(self.protocol.close_sent, self.protocol.close_rcvd, max_frame_bytes=self.max_frame_bytes)

    async def refuse(self, code: int, reason: str) -> None:
        """Close as refused (busy): evictable while it waits, and dropped if
        the peer does not answer the close within ``REFUSAL_CLOSE_TIMEOUT_S``."""
        self.intake.refusing(self)
        self.close_timeout = REFUSAL_CLOSE_TIMEOUT_S
        await self.close(code, reason)

    def abort(self) -> None:
        """Drop the connection at once (refused, evicted, timed out, shutdown)."""
        if self.raw_transport is not None:
            self.raw_transport.abort()

    # ---- from accept to handshake: daemon/accept.py ----------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio calls this at the TCP accept (we never pass ssl= to the
        # server: the intake does the TLS handshake, so the count starts here
        # for every connection).
        self.raw_transport = transport
        self._peername = transport.get_extra_info("peername")
        self.source = self.intake.source_of(self._peername[0] if self._peername else None)
        if not self.intake.accepted(self):
            return
        if self.intake.tls is None:
            self._start(transport)
        else:
            transport.pause_reading()  # type: ignore[attr-defined]  # the intake looks at the first bytes first
            self.loop.create_task(self._start_tls(transport))

    async def _start_tls(self, transport: asyncio.BaseTransport) -> None:
        tls_transport = await self.intake.start_tls(self, transport, self)
        if tls_transport is not None:
            self._start(tls_transport)

    def _start(self, transport: asyncio.BaseTransport) -> None:
        # websockets' connection_made starts its handshake handler; calling it
        # after our TLS handshake rather than from asyncio is what its own
        # ssl= support amounts to (websockets 16-17, asyncio/server.py).
        self._started = True
        super().connection_made(transport)
        # ``recv_messages.paused``: websockets' own flow control (its message
        # queue is full and it paused reading).  Resuming then would overrule
        # it.  If the attribute goes, AttributeError in tests, not silence.
        self.reads = ReadValve(self.transport, overruled=lambda: self.recv_messages.paused)
        early, self._early = self._early, []
        for data in early:
            self.data_received(data)

    async def handshake(self, process_request: Any, *args: Any, **kwargs: Any) -> None:
        # websockets' handshake (asyncio/server.py, ``handshake``): a request
        # answered over HTTP (``process_request`` returned a response: a 401,
        # a 403, /healthz) is done; from then on it only waits for its close,
        # so it is evictable and its close timeout is the short one.
        def answered(conn: Any, request: Any) -> Any:
            response = process_request(conn, request)
            if response is not None:
                self.intake.refusing(self)
            return response

        await super().handshake(answered if process_request is not None else None, *args, **kwargs)

    def start_keepalive(self) -> None:
        # websockets calls this once the opening handshake succeeded, just
        # before the handler (asyncio/server.py, ``protocol_handler``): the
        # connection is no longer pending.  If that changes, connections stay
        # "pending" until the deadline drops them: a test fails at once.
        self.intake.handshake_done(self)
        self.close_timeout = OPEN_CLOSE_TIMEOUT_S
        held = self._head.release()
        super().start_keepalive()
        if held:  # frames a client sent before our 101: now they are frames
            self.data_received(bytes(held))

    # ---- asyncio.Protocol callbacks: overriding websockets' --------------

    def connection_lost(self, exc: Exception | None) -> None:
        if self.superseded:
            log.info(
                "%s sent faster than the daemon could parse: %d superseded frames were skipped unparsed",
                self.peer,
                self.superseded,
                extra={"CLIENT_ADDRESS": self.peer},
            )
        self.intake.closed(self)
        if self._started:  # else websockets never knew of it
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._started:  # decrypted before _start_tls resumed
            self._early.append(data)
            return
        sink = self.sink
        if sink is not None:
            # The fast path (daemon/framing.py): simple frames straight to the
            # sink; the rest, whole frames from a boundary, to websockets.
            # ``_websockets_read`` is websockets' asyncio protocol callback
            # (feeds its parser, processes its events).
            idle = self._framed or parser_idle(self.protocol)
            messages, rest = self.framer.receive_data(data, parser_idle=idle)
            self._framed = not rest
            if rest:
                self._batch = messages  # process_event adds what websockets parses
                self._websockets_read(rest)
                self._batch = None
            sink.read(messages)
        elif self.protocol.state is State.CONNECTING:
            self._read_head(data)
        else:
            self._websockets_read(data)
        transport = self.transport
        if too_much_unread(transport.get_write_buffer_size()) and not transport.is_closing():
            self.intake.not_reading(self)
            transport.abort()

    def _read_head(self, data: bytes) -> None:
        """During the opening handshake: websockets gets the request head and
        nothing after it (daemon/framing.py, HeadGate); the rest waits for
        the handshake to succeed, and goes with the connection if it was
        answered over HTTP instead (the first request is answered)."""
        now = self._head.feed(data)
        if now is None:
            self.intake.events.log(logging.WARNING, "dropped connections that sent too much before their answer", "dropped %s: it sent over %d bytes after its request before it was answered", self.peer, MAX_AFTER_HEAD_BYTES)
            self.abort()
        elif now:
            self._websockets_read(now)

    def _websockets_read(self, data: bytes) -> None:
        """Bytes for websockets' own parser: its ``data_received``."""
        ServerConnection.data_received(self, data)

    def eof_received(self) -> bool | None:
        if not self._started:
            return None  # close
        pending = self.framer.take_pending()
        if pending:  # a frame cut short: websockets reports it
            self._websockets_read(pending)
        return super().eof_received()

    def process_event(self, event: Any) -> None:
        # ``process_event`` is websockets' private hook between its parser and
        # its message queue.  A whole text or binary frame for the holder that
        # took websockets' path (over 125 bytes, or after a ping) joins this
        # read's messages, so the holder's messages never wait in the queue.
        # Fragments and everyone else's frames go on to websockets.  If the
        # hook is renamed, those frames take the queue and ``pump``: slower.
        batch = self._batch
        if batch is not None and type(event) is Frame and event.fin:
            op = event.opcode
            if op is _TEXT or op is _BINARY:
                try:
                    data = event.data.decode() if op is _TEXT else bytes(event.data)
                except UnicodeDecodeError:
                    pass  # websockets closes with 1007
                else:
                    batch.append(data)
                    return
        super().process_event(event)
