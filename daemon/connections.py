"""Connection accounting: how many TCP connections are open, the cap on
them, and the bound on what a peer may leave unread.  Pure counters; the
connection (daemon/wsadapter.py) calls them from its protocol callbacks."""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_UNREAD_BYTES", "ConnectionCount", "peer_name"]

MAX_UNREAD_BYTES = 256 * 1024
"""Abort a connection whose peer leaves this much of our output unread.
websockets answers every ping with a pong whether or not the peer reads
them: a peer that sends pings and never reads would grow our send buffer
without limit.  Our own optional messages stop at 16 KiB, so this is never
a legitimate client."""


class ConnectionCount:
    """Open connections, counted from the TCP accept (before the WebSocket
    handshake), so a crowd of half-open sockets is refused cheaply."""

    __slots__ = ("open", "max", "dropped")

    def __init__(self, *, max_connections: int) -> None:
        self.open = 0
        self.max = max_connections
        self.dropped = 0

    def opened(self) -> bool:
        """Count a new connection; False if it is over the cap (drop it)."""
        self.open += 1
        if self.open > self.max:
            self.dropped += 1
            return False
        return True

    def closed(self) -> None:
        self.open -= 1

    @staticmethod
    def too_much_unread(write_buffer_bytes: int) -> bool:
        return write_buffer_bytes > MAX_UNREAD_BYTES


def peer_name(addr: Any) -> str:
    """``host:port`` of a socket address, ``[host]:port`` for IPv6."""
    if not addr:
        return "unknown"
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
