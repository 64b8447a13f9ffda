"""Everything that reaches below websockets' public API, in one place.

websockets (tested: 16.x and 17.x; setup.cfg caps it below 18) gives us a
``ServerConnection`` per client.  Its public API reads messages through a
queue and a task wake-up per message: a third of the daemon's per-frame cost
under a flood.  So the LED holder's connection takes a short cut, and each
use of websockets' internals below says why and what breaks if websockets
changes.  If one of them stops matching, the fast path switches itself off
and every byte takes websockets' own path (``parser_idle`` answers False):
slower, never wrong.  ``tests/test_framing.py`` fails first when that happens.

:class:`LedConnection` hands the holder's messages to one public sink (any
object with ``message(data)`` and ``read_ended()``, daemon/holder.py), counts
itself in daemon/connections.py, and offers the rest of the daemon a few
plain methods (hold reads, send if there is room, why it closed).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State

from .connections import ConnectionCount, peer_name
from .framing import FastFramer

__all__ = ["LedConnection", "MessageSink", "parser_idle"]

log = logging.getLogger("gravity_led")

SEND_BUFFER_LIMIT = 16 * 1024
"""Skip optional messages (errors, telemetry) to a client that is not reading."""

KEEPALIVE_TIMEOUT_REASON = "keepalive ping timeout"
"""The reason websockets' keepalive closes with (websockets/asyncio/connection.py,
``keepalive()``); if it changes, only a log line's wording suffers."""

_TEXT, _BINARY = Opcode.TEXT, Opcode.BINARY


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
    connections=..., max_frame_bytes=...))``: websockets calls
    ``create_connection(protocol, server, ping_interval=..., ...)`` (16-17);
    a new argument there reaches ``ServerConnection`` through ``**kwargs``.
    """

    def __init__(self, *args: Any, connections: ConnectionCount, max_frame_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections = connections
        self.max_frame_bytes = max_frame_bytes
        self.framer = FastFramer(limit=max_frame_bytes)
        self.sink: MessageSink | None = None
        self.reads_held = False
        self._framed = False  # websockets' parser known to be at a frame boundary

    @property
    def peer(self) -> str:
        return peer_name(self.remote_address)

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
        # close_code is then 1006 whatever the cause.  ``protocol.close_sent``
        # is public in websockets' Sans-I/O layer.
        sent = self.protocol.close_sent
        if sent is not None and sent.code == CloseCode.MESSAGE_TOO_BIG:
            return f"sent a frame over {self.max_frame_bytes} bytes (closed with {sent.code})"
        if sent is not None and sent.code == CloseCode.INTERNAL_ERROR and sent.reason == KEEPALIVE_TIMEOUT_REASON:
            return "stopped answering pings"
        if exc is None:
            return "closed the connection"
        code = exc.rcvd.code if exc.rcvd else exc.sent.code if exc.sent else CloseCode.ABNORMAL_CLOSURE
        return f"was disconnected ({code})"

    # ---- asyncio.Protocol callbacks: overriding websockets' --------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self.connections.opened():
            transport.abort()  # over the cap: dropped at once

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.closed()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is not None:
            # The fast path (daemon/framing.py): simple frames straight to the
            # sink; the rest, whole frames from a boundary, to websockets.
            # ``super().data_received`` is websockets' asyncio protocol
            # callback (feeds its parser, processes its events).
            idle = self._framed or parser_idle(self.protocol)
            messages, rest = self.framer.receive_data(data, parser_idle=idle)
            for message in messages:
                sink.message(message)
            self._framed = not rest
            if rest:
                super().data_received(rest)
            sink.read_ended()
        else:
            super().data_received(data)
        transport = self.transport
        if self.connections.too_much_unread(transport.get_write_buffer_size()) and not transport.is_closing():
            log.warning("dropped %s: it sends but does not read what we answer", self.peer)
            transport.abort()

    def eof_received(self) -> bool | None:
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
