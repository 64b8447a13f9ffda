"""Why a connection ended, in words."""

from __future__ import annotations

import pytest
from websockets.frames import Close

from gravity_led.daemon.wsadapter import close_words


@pytest.mark.parametrize(
    "sent, rcvd, words",
    [
        (Close(1009, "too many fragments"), None, "sent a message in too many fragments (closed with 1009)"),
        (Close(1009, "frame with 2000 bytes exceeds limit of 1024 bytes"), None, "sent a message over 1024 bytes (closed with 1009)"),
        (Close(1011, "keepalive ping timeout"), None, "stopped answering pings"),
        (Close(1007, "invalid start byte at position 4"), None, "sent text that is not UTF-8 (closed with 1007)"),
        (Close(1002, "reserved bits must be 0"), None, "broke the WebSocket protocol: reserved bits must be 0 (closed with 1002)"),
        (Close(1000, "no valid frame for 30 s: LEDs released"), None, "was closed: no valid frame for 30 s: LEDs released (1000)"),
        (Close(1000, ""), Close(1000, ""), "closed the connection"),
        (Close(1001, ""), None, "was disconnected (1001)"),
        (None, Close(1001, "bye"), "closed the connection (1001)"),
        (None, None, "was disconnected (1006, no close frame)"),
    ],
)
def test_close_words(sent, rcvd, words):
    assert close_words(sent, rcvd, max_frame_bytes=1024) == words
