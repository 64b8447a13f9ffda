"""A fast path through WebSocket framing (RFC 6455, section 5.2) for the one
shape of frame a phone sends: whole, small, masked, text or binary.

websockets parses every frame with a chain of generators; under a flood that
is the largest part of the daemon's per-frame cost.  :func:`split_frames`
unmasks runs of such frames in one loop and stops at anything else (pings,
close, fragments, large or malformed frames), which the caller hands, whole,
to websockets' own parser with everything after it.  So websockets still
decides everything but the common case; the fast path starts again once
websockets' parser is back at a frame boundary.

No I/O: :func:`split_frames` is pure, and :class:`FastFramer` keeps only a
connection's partial frame; it returns what it found (messages, and the
bytes websockets must parse) instead of calling anyone.  Whether websockets'
parser sits at a frame boundary is the caller's to say (daemon/wsadapter.py).
``tests/unit/test_framing.py`` checks them against websockets' Sans-I/O parser on
random streams cut at random points.
"""

from __future__ import annotations

from websockets.frames import apply_mask  # the C speedup when built

__all__ = ["FastFramer", "HeadGate", "skim_frames", "split_frames"]

_FIN_TEXT = 0x81
_FIN_BINARY = 0x82
_SMALL = 125  # the longest payload a 2-byte header can declare
_OPCODES = frozenset({0x0, 0x1, 0x2, 0x8, 0x9, 0xA})


def split_frames(buf: bytes, start: int, limit: int) -> tuple[list[str | bytes], int, int]:
    """Decode the simple frames in ``buf`` from ``start``.

    Returns ``(messages, end, other)``: the messages (``str`` for text,
    ``bytes`` for binary), the offset after them, and what follows:
    ``other == 0`` means ``buf[end:]`` is the start of an incomplete frame
    (wait for more bytes); otherwise ``buf[end:end + other]`` is one whole
    frame for the full parser (or all the rest, when that frame is one the
    parser refuses from its header alone: bad opcode, unmasked, or longer
    than ``limit``).
    Text that is not UTF-8 goes to the full parser, which closes with 1007.
    """
    small = min(limit, _SMALL)
    out: list[str | bytes] = []
    n = len(buf)
    pos = start
    while pos + 2 <= n:
        b0 = buf[pos]
        b1 = buf[pos + 1]
        length = b1 & 0x7F
        if (b0 == _FIN_TEXT or b0 == _FIN_BINARY) and b1 & 0x80 and length <= small:
            end = pos + 6 + length
            if end > n:
                return out, pos, 0
            payload = apply_mask(buf[pos + 6 : end], buf[pos + 2 : pos + 6])
            if b0 == _FIN_TEXT:
                try:
                    out.append(payload.decode())
                except UnicodeDecodeError:
                    return out, pos, end - pos
            else:
                out.append(payload)
            pos = end
            continue
        return out, pos, _whole_frame(buf, pos, limit)
    return out, pos, 0


def skim_frames(buf: bytes, start: int, limit: int) -> tuple[list[int], list[int]]:
    """Where each whole simple frame of ``buf`` from ``start`` begins (the
    frames :func:`split_frames` would decode), and which of them are control
    messages (text that starts with ``{``: subscribe, unsubscribe): by their
    headers and first payload byte alone, with no unmasking or UTF-8 check,
    several times faster."""
    small = min(limit, _SMALL)
    starts: list[int] = []
    controls: list[int] = []
    n = len(buf)
    pos = start
    while pos + 2 <= n:
        b0 = buf[pos]
        length = buf[pos + 1] ^ 0x80  # masked: the top bit set, so this is the length
        if length > small or (b0 != _FIN_TEXT and b0 != _FIN_BINARY):
            break
        end = pos + 6 + length
        if end > n:
            break
        if b0 == _FIN_TEXT and length and buf[pos + 6] ^ buf[pos + 2] == 0x7B:  # "{", unmasked
            controls.append(len(starts))
        starts.append(pos)
        pos = end
    return starts, controls


def _whole_frame(buf: bytes, pos: int, limit: int) -> int:
    """Length of the frame at ``pos`` if all of it is in ``buf``, else 0;
    all the rest if the parser will refuse it from its header."""
    n = len(buf)
    b1 = buf[pos + 1]
    if buf[pos] & 0x0F not in _OPCODES or not b1 & 0x80:
        return n - pos  # refused on its first two bytes
    length = b1 & 0x7F
    head = 2
    if length == 126:
        head = 4
        if pos + head > n:
            return 0
        length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
    elif length == 127:
        head = 10
        if pos + head > n:
            return 0
        length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
    if length > limit:
        return n - pos
    total = head + 4 + length
    return total if pos + total <= n else 0


class FastFramer:
    """One connection's fast path, Sans-I/O like websockets' own
    ``receive_data()``: bytes in, what was found out.  A partial frame waits
    in ``pending`` (at most ``limit`` + 14 bytes).

    A backlog (``backlog_frames`` given, and one read holding more simple
    frames than that: the daemon fell behind its sender) is skimmed: only
    its newest ``keep_newest`` frames and every control message (text that
    starts with ``{``) are decoded, in order; the rest are counted in
    ``superseded`` and never unmasked or decoded (the LED writer keeps only
    the newest vector anyway, and decoding them is what keeps a Pi Zero
    behind).  A superseded frame's text is therefore not checked for UTF-8.
    """

    __slots__ = ("pending", "limit", "backlog_frames", "keep_newest", "superseded")

    def __init__(self, *, limit: int, backlog_frames: int | None = None, keep_newest: int = 1) -> None:
        self.pending = b""
        self.limit = limit
        self.backlog_frames = backlog_frames
        self.keep_newest = keep_newest
        self.superseded = 0

    def receive_data(self, data: bytes, *, parser_idle: bool) -> tuple[list[str | bytes], bytes]:
        """Split ``data`` into ``(messages, rest)``: the simple frames' messages,
        in order, then the bytes websockets' parser must take, whole frames
        from a frame boundary (all of it if ``parser_idle`` is false: the
        parser is inside a frame or a fragmented message, or the connection
        is closing)."""
        if self.pending:
            data = self.pending + data
            self.pending = b""
        if not parser_idle:
            return [], data
        messages, pos, other = self._split(data)
        if other == 0:
            if pos < len(data):
                self.pending = data[pos:]
            return messages, b""
        # Everything from the first frame it must see goes to websockets, so
        # its messages never overtake ours (and ours never overtake its).
        return messages, data[pos:]

    def _split(self, data: bytes) -> tuple[list[str | bytes], int, int]:
        """:func:`split_frames` of ``data``, a backlog skimmed."""
        backlog = self.backlog_frames
        if backlog is None or len(data) <= 6 * backlog:  # 6 bytes: the smallest frame
            return split_frames(data, 0, self.limit)
        starts, controls = skim_frames(data, 0, self.limit)
        if len(starts) <= max(backlog, self.keep_newest):
            return split_frames(data, 0, self.limit)
        old = len(starts) - self.keep_newest
        kept: list[str | bytes] = []
        for i in controls:
            if i >= old:
                break
            found, _, other = split_frames(data[starts[i] : starts[i + 1]], 0, self.limit)
            if other:  # not UTF-8: websockets must see it, so no skimming
                return split_frames(data, 0, self.limit)
            kept.extend(found)
        messages, pos, other = split_frames(data, starts[old], self.limit)
        self.superseded += old - len(kept)
        return kept + messages, pos, other

    def take_pending(self) -> bytes:
        """At end of stream: the bytes of a frame cut short, for websockets to report."""
        pending, self.pending = self.pending, b""
        return pending


_HEAD_END = b"\r\n\r\n"


class HeadGate:
    """During the opening handshake, the request head passes and whatever
    follows it (a pipelined second request, frames sent before the 101) is
    held: websockets' Sans-I/O parser would read those bytes as frames while
    the handshake is still open (a pipelined GET then broke its state, and
    ``send_response`` asserted).  At most ``limit`` bytes are held."""

    __slots__ = ("limit", "_tail", "_held")

    def __init__(self, *, limit: int) -> None:
        self.limit = limit
        self._tail = b""  # the last bytes of the head so far (its end may straddle reads)
        self._held: bytearray | None = None  # after the head's end

    def feed(self, data: bytes) -> bytes | None:
        """The part of ``data`` to hand to websockets now (maybe ``b""``);
        None once more than ``limit`` bytes are held (drop the connection)."""
        held = self._held
        if held is not None:
            held += data
            return None if len(held) > self.limit else b""
        seen = self._tail + data
        end = seen.find(_HEAD_END)
        if end < 0:
            self._tail = seen[-3:]
            return data
        cut = end + len(_HEAD_END) - len(self._tail)
        self._tail = b""
        self._held = bytearray(data[cut:])
        return None if len(self._held) > self.limit else data[:cut]

    def release(self) -> bytes:
        """The handshake succeeded: what was held (frames, now)."""
        held, self._held = self._held, None
        return bytes(held or b"")
