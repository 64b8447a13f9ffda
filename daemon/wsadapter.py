"""Everything that reaches below websockets' public API, in one place.

websockets (tested: 16.x and 17.x; setup.cfg caps it below 18) gives us a
``ServerConnection`` per client.  Its public API reads messages through a
queue and a task wake-up per message: a third of the daemon's per-frame cost
under a flood.  So the LED holder's connection takes a short cut, and each
use of websockets' internals below says why and what breaks if websockets
changes.  If one of them stops matching, the fast path switches itself off
and every byte takes websockets' own path (``parser_idle`` answers False):
slower, never wrong.  ``tests/unit/test_framing.py`` fails first when that happens.

:class:`LedConnection` counts itself in daemon/connections.py from its TCP
accept (it does its own TLS handshake for that, and drops itself when its
handshake deadline passes), hands the holder's messages to one public sink
(any object with ``message(data)`` and ``read_ended()``, daemon/holder.py),
and offers the rest of the daemon a few plain methods (hold reads, send if
there is room, why it closed).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State

from .connections import REFUSAL_LOG, ConnectionLimiter, Intake, peer_name, source_key, too_much_unread
from .framing import FastFramer

__all__ = ["BACKLOG_FRAMES", "KEEP_NEWEST", "LedConnection", "MessageSink", "close_words", "newest", "parser_idle"]

log = logging.getLogger("gravity_led")

SEND_BUFFER_LIMIT = 16 * 1024
"""Skip optional messages (errors, telemetry) to a client that is not reading."""

KEEPALIVE_TIMEOUT_REASON = "keepalive ping timeout"
"""The reason websockets' keepalive closes with (websockets/asyncio/connection.py,
``keepalive()``); if it changes, only a log line's wording suffers."""

TOO_MANY_FRAGMENTS_REASON = "too many fragments"
"""The reason websockets closes with (1009) when a message comes in more
than its 4096 fragments (websockets/asyncio/connection.py, ``recv()``)."""

BACKLOG_FRAMES = 2048
"""A read holding more messages than this means the daemon has fallen behind
its sender (a Pi Zero's core under a flood: parsing every frame costs more
than the sender takes to send it).  At normal speed a flood's read holds one
tick's frames, about 200 (the writer holds reads until the next write)."""

KEEP_NEWEST = 64
"""Behind, only the newest this many vectors of a read are parsed: the LED
writer keeps only the newest vector anyway, and parsing the superseded ones
is what keeps the daemon behind (seconds of stale LEDs on a Pi Zero)."""

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


def newest(messages: list[str | bytes]) -> tuple[list[str | bytes], int]:
    """A backlog's messages worth parsing, in order: every control message
    (``{...}``: subscribe, unsubscribe) and the newest ``KEEP_NEWEST``; and
    how many were skipped.  The skipped ones have been through the framing
    (header, unmasking, UTF-8) and are superseded by a newer frame."""
    cut = len(messages) - KEEP_NEWEST
    kept = [m for m in messages[:cut] if m[:1] == "{"]
    skipped = cut - len(kept)
    kept.extend(messages[cut:])
    return kept, skipped


class MessageSink(Protocol):
    def message(self, data: str | bytes) -> None: ...
    def read_ended(self) -> None: ...


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
    """websockets' server connection, plus: counted and capped, and the LED
    holder's messages delivered straight to its sink.

    Built by ``serve(create_connection=functools.partial(LedConnection,
    intake=..., max_frame_bytes=...))``: websockets calls
    ``create_connection(protocol, server, ping_interval=..., ...)`` (16-17);
    a new argument there reaches ``ServerConnection`` through ``**kwargs``.
    """

    def __init__(self, *args: Any, intake: Intake, max_frame_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.intake = intake
        self.max_frame_bytes = max_frame_bytes
        self.framer = FastFramer(limit=max_frame_bytes)
        self.sink: MessageSink | None = None
        self.reads_held = False
        self.superseded = 0  # vectors skipped unparsed in a backlog (see newest())
        self._framed = False  # websockets' parser known to be at a frame boundary
        self.source = "unknown"  # the address limits count against
        self.raw_transport: asyncio.Transport | None = None  # TCP, under TLS if any
        self._peername: Any = None
        self._started = False  # websockets' own connection_made ran
        self._early: list[bytes] = []  # decrypted bytes that came before it did
        self._deadline: asyncio.TimerHandle | None = None
        self._tls_task: asyncio.Task[None] | None = None

    @property
    def peer(self) -> str:
        return peer_name(self._peername)

    # ---- for the holder -------------------------------------------------

    def attach(self, sink: MessageSink) -> None:
        """From now on, every message goes to ``sink``, none to websockets' queue."""
        self.sink = sink

    def detach(self) -> None:
        self.sink = None

    async def pump(self) -> None:
        """Hand the sink what took websockets' own path (fragmented messages,
        and any queued before ``attach``) until the connection closes;
        raises ConnectionClosed."""
        sink = self.sink
        async for message in self:
            sink.message(message)
            sink.read_ended()

    def hold_reads(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing() and not self.reads_held:
            transport.pause_reading()
            self.reads_held = True

    def resume_reads(self) -> None:
        if not self.reads_held:
            return
        self.reads_held = False
        transport = self.transport
        # ``recv_messages.paused``: websockets' own flow control (its message
        # queue is full and it paused reading).  Resuming then would overrule
        # it.  If the attribute goes, AttributeError in tests, not silence.
        if transport is not None and not transport.is_closing() and not self.recv_messages.paused:
            transport.resume_reading()

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

    # ---- from accept to handshake: counted, limited, timed ---------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio calls this at the TCP accept (we never pass ssl= to the
        # server: see _start_tls).  The count starts here, for every connection.
        intake = self.intake
        self.raw_transport = transport
        self._peername = transport.get_extra_info("peername")
        self.source = source_key(self._peername[0] if self._peername else None)
        decision = intake.limiter.admit(self.source, self)
        if decision.evict is not None:
            decision.evict.raw_transport.abort()
            intake.events.log(
                logging.INFO, "dropped pending connections to make room",
                "dropped a pending connection from %s to make room for %s (its address holds more)", decision.evict.peer, self.peer,
            )  # fmt: skip
        if not decision.admitted:
            key, words = REFUSAL_LOG[decision.reason]
            n = intake.limiter.open_from(self.source) if decision.reason == ConnectionLimiter.PER_ADDRESS else intake.limiter.max_total
            intake.events.log(logging.WARNING, key, words, self.peer, n, extra={"CLIENT_ADDRESS": self.peer})
            transport.abort()  # websockets never hears of it
            return
        self._deadline = self.loop.call_later(intake.handshake_timeout_s, self._handshake_timed_out)
        if intake.tls is None:
            self._start(transport)
        else:
            self._tls_task = self.loop.create_task(self._start_tls(transport, intake.tls))

    async def _start_tls(self, transport: asyncio.BaseTransport, tls: ssl.SSLContext) -> None:
        # ``loop.start_tls`` is asyncio's public API; asyncio's server would do
        # the same, but before telling anyone the connection exists.  Its
        # memory (about 300 KiB per handshake) is bounded by the limits above.
        try:
            tls_transport = await self.loop.start_tls(transport, self, tls, server_side=True, ssl_handshake_timeout=self.intake.handshake_timeout_s)
        except Exception:  # a failed or abandoned TLS handshake: common, not news
            transport.abort()
            self._release()
            return
        if tls_transport is None or transport.is_closing():
            # Timed out or evicted meanwhile (asyncio then returns None
            # rather than raising, when the abort came without an error).
            if tls_transport is not None:
                tls_transport.abort()
            self._release()
            return
        self._start(tls_transport)

    def _start(self, transport: asyncio.BaseTransport) -> None:
        # websockets' connection_made starts its handshake handler; calling it
        # after our TLS handshake rather than from asyncio is what its own
        # ssl= support amounts to (websockets 16-17, asyncio/server.py).
        self._started = True
        super().connection_made(transport)
        early, self._early = self._early, []
        for data in early:
            self.data_received(data)

    def start_keepalive(self) -> None:
        # websockets calls this once the opening handshake succeeded, just
        # before the handler (asyncio/server.py, ``protocol_handler``): the
        # connection is no longer pending.  If that changes, connections stay
        # "pending" until the deadline drops them: a test fails at once.
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.intake.limiter.handshake_done(self)
        super().start_keepalive()

    def _handshake_timed_out(self) -> None:
        self._deadline = None
        if self.intake.limiter.is_pending(self):
            self.intake.limiter.refused["timed_out"] += 1
            self.intake.events.log(
                logging.INFO, "dropped connections that did not finish their handshake",
                "dropped %s: no handshake within %.1f s (handshake_timeout_s)", self.peer, self.intake.handshake_timeout_s,
            )  # fmt: skip
            self.raw_transport.abort()

    def _release(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.intake.limiter.release(self)

    def abort(self) -> None:
        """Drop the connection at once (shutdown)."""
        if self.raw_transport is not None:
            self.raw_transport.abort()

    # ---- asyncio.Protocol callbacks: overriding websockets' --------------

    def connection_lost(self, exc: Exception | None) -> None:
        if self.superseded:
            log.info(
                "%s sent faster than the daemon could parse: %d superseded frames were skipped unparsed",
                self.peer,
                self.superseded,
                extra={"CLIENT_ADDRESS": self.peer},
            )
        self._release()
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
            # ``super().data_received`` is websockets' asyncio protocol
            # callback (feeds its parser, processes its events).
            idle = self._framed or parser_idle(self.protocol)
            messages, rest = self.framer.receive_data(data, parser_idle=idle)
            if len(messages) > BACKLOG_FRAMES:
                messages, skipped = newest(messages)
                self.superseded += skipped
            for message in messages:
                sink.message(message)
            self._framed = not rest
            if rest:
                super().data_received(rest)
            sink.read_ended()
        else:
            super().data_received(data)
        transport = self.transport
        if too_much_unread(transport.get_write_buffer_size()) and not transport.is_closing():
            self.intake.events.log(logging.WARNING, "dropped connections that do not read", "dropped %s: it sends but does not read what we answer", self.peer)
            transport.abort()

    def eof_received(self) -> bool | None:
        if not self._started:
            return None  # close
        pending = self.framer.take_pending()
        if pending:  # a frame cut short: websockets reports it
            super().data_received(pending)
        return super().eof_received()

    def process_event(self, event: Any) -> None:
        # ``process_event`` is websockets' private hook between its parser and
        # its message queue.  A whole text or binary frame for the holder that
        # took websockets' path (over 125 bytes, or after a ping) goes to the
        # sink too, so the holder's messages never wait in the queue.
        # Fragments and everyone else's frames go on to websockets.  If the
        # hook is renamed, those frames take the queue and ``pump``: slower.
        sink = self.sink
        if sink is not None and type(event) is Frame and event.fin:
            op = event.opcode
            if op is _TEXT or op is _BINARY:
                try:
                    data = event.data.decode() if op is _TEXT else bytes(event.data)
                except UnicodeDecodeError:
                    pass  # websockets closes with 1007
                else:
                    sink.message(data)
                    return
        super().process_event(event)
