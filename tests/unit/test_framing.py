"""daemon/framing.py against websockets' own Sans-I/O parser: on any stream of
frames, cut anywhere, the fast path plus websockets (for what it hands over)
must yield exactly what websockets alone yields."""

from __future__ import annotations

import os
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from gravity_led.daemon.framing import FastFramer, split_frames
from gravity_led.daemon.wsadapter import BACKLOG_FRAMES, KEEP_NEWEST, parser_idle

LIMIT = 1024


def masked(opcode: Opcode, payload: bytes, *, fin: bool = True) -> bytes:
    # websockets' own serializer, with a fixed mask so examples replay.
    with mock.patch("websockets.frames.secrets.token_bytes", return_value=b"\x9a\x0f\x33\xc4"):
        return Frame(opcode, payload, fin=fin).serialize(mask=True, extensions=[])


def open_protocol(limit: int = LIMIT) -> ServerProtocol:
    """A websockets server protocol after a real opening handshake."""
    p = ServerProtocol(max_size=limit)
    p.receive_data(
        b"GET / HTTP/1.1\r\nHost: pi\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    [request] = p.events_received()
    p.send_response(p.accept(request))
    assert p.state is State.OPEN
    return p


def messages_of(events: list) -> list:
    """What websockets hands to the application: data frames and the rest."""
    out = []
    for e in events:
        if e.opcode is Opcode.TEXT and e.fin:
            try:
                out.append(("msg", e.data.decode()))
            except UnicodeDecodeError:  # websockets' asyncio layer then closes with 1007
                out.append(("not UTF-8", bytes(e.data)))
        elif e.opcode is Opcode.BINARY and e.fin:
            out.append(("msg", bytes(e.data)))
        else:
            out.append((e.opcode.name, bytes(e.data), e.fin))
    return out


def websockets_alone(chunks: list[bytes], limit: int = LIMIT):
    p = open_protocol(limit)
    out = []
    for c in chunks:
        p.receive_data(c)
        out += messages_of(p.events_received())
    return out, p.state, p.close_sent and p.close_sent.code


def fast_path(chunks: list[bytes], limit: int = LIMIT):
    """What daemon/wsadapter.py does for the LED holder, minus the sockets."""
    p = open_protocol(limit)
    framer = FastFramer(limit=limit)
    out = []
    framed = False
    for c in chunks:
        messages, rest = framer.receive_data(c, parser_idle=framed or parser_idle(p))
        out.extend(("msg", m) for m in messages)
        framed = not rest
        if rest:
            p.receive_data(rest)
            out.extend(messages_of(p.events_received()))
    return out, p.state, p.close_sent and p.close_sent.code


def cut(stream: bytes, points: list[int]) -> list[bytes]:
    points = sorted({min(x, len(stream)) for x in points})
    chunks, last = [], 0
    for x in points + [len(stream)]:
        if x > last:
            chunks.append(stream[last:x])
            last = x
    return chunks


def test_simple_frames_decode():
    buf = masked(Opcode.TEXT, b"0.1 9.7 0.3") + masked(Opcode.BINARY, b"\x00\x01\x02")
    assert split_frames(buf, 0, LIMIT) == (["0.1 9.7 0.3", b"\x00\x01\x02"], len(buf), 0)


def test_partial_frame_waits():
    f = masked(Opcode.TEXT, b"1 2 3")
    for k in range(len(f)):
        assert split_frames(f[:k], 0, LIMIT) == ([], 0, 0)


def test_other_frames_are_handed_over_whole():
    ping = masked(Opcode.PING, b"hi")
    text = masked(Opcode.TEXT, b"1 2 3")
    msgs, end, other = split_frames(text + ping + text, 0, LIMIT)
    assert (msgs, end, other) == (["1 2 3"], len(text), len(ping))


def test_frames_the_parser_refuses_take_the_rest():
    big = masked(Opcode.TEXT, b"x" * 2000)
    assert split_frames(big + b"more", 0, LIMIT) == ([], 0, len(big) + 4)
    unmasked = Frame(Opcode.TEXT, b"1 2 3").serialize(mask=False, extensions=[])
    assert split_frames(unmasked, 0, LIMIT) == ([], 0, len(unmasked))


def test_invalid_utf8_goes_to_the_parser():
    bad = masked(Opcode.TEXT, b"\xff\xfe")
    assert split_frames(bad, 0, LIMIT) == ([], 0, len(bad))


def test_limit_below_125_is_respected():
    f = masked(Opcode.TEXT, b"x" * 100)
    assert split_frames(f, 0, 64) == ([], 0, len(f))


def test_parser_idle_tracks_websockets():
    p = open_protocol()
    assert parser_idle(p)  # fails if websockets' parser changes shape
    f = masked(Opcode.TEXT, b"1 2 3")
    p.receive_data(f[:3])  # header consumed, payload awaited
    assert not parser_idle(p)
    p.receive_data(f[3:])
    assert parser_idle(p)
    p.receive_data(masked(Opcode.TEXT, b"1 2", fin=False))  # inside a fragmented message
    assert not parser_idle(p)


def test_parser_idle_is_false_when_unsure():
    """A websockets whose protocol looks different: the fast path stays off."""

    class Unknown:
        state = State.OPEN

    assert not parser_idle(Unknown())


def test_framer_hands_everything_after_an_other_frame_to_websockets():
    text, ping = masked(Opcode.TEXT, b"1 2 3"), masked(Opcode.PING, b"hi")
    framer = FastFramer(limit=LIMIT)
    assert framer.receive_data(text + ping + text, parser_idle=True) == (["1 2 3"], ping + text)
    assert framer.receive_data(text[:4], parser_idle=True) == ([], b"")
    assert framer.receive_data(text[4:], parser_idle=True) == (["1 2 3"], b"")
    assert framer.receive_data(text[:4], parser_idle=True) == ([], b"")
    assert framer.receive_data(text[4:], parser_idle=False) == ([], text)  # the parser is busy: all of it


frame_st = st.one_of(
    st.builds(lambda b: masked(Opcode.TEXT, b), st.text(max_size=40).map(str.encode)),
    st.builds(lambda b: masked(Opcode.BINARY, b), st.binary(max_size=40)),
    st.builds(lambda b: masked(Opcode.TEXT, b), st.binary(max_size=8)),  # often not UTF-8
    st.builds(lambda b: masked(Opcode.PING, b), st.binary(max_size=20)),
    st.builds(lambda b: masked(Opcode.PONG, b), st.binary(max_size=20)),
    st.builds(lambda b: masked(Opcode.BINARY, b), st.binary(min_size=120, max_size=300)),
    st.builds(lambda b: masked(Opcode.TEXT, b, fin=False), st.text(max_size=10).map(str.encode)),
    st.builds(lambda b, fin: masked(Opcode.CONT, b, fin=fin), st.text(max_size=10).map(str.encode), st.booleans()),
    st.builds(lambda n: masked(Opcode.BINARY, bytes(n)), st.integers(1025, 70000)),
    st.builds(lambda b: Frame(Opcode.TEXT, b).serialize(mask=False, extensions=[]), st.binary(max_size=10)),
    st.binary(min_size=1, max_size=12),  # junk
    st.just(masked(Opcode.CLOSE, b"\x03\xe8bye")),
)


@settings(max_examples=int(os.environ.get("GRAVITY_LED_FUZZ_EXAMPLES", "400")), deadline=None)
@given(st.lists(frame_st, max_size=12), st.lists(st.integers(0, 3000), max_size=8), st.sampled_from([LIMIT, 64, 200]))
def test_same_as_websockets_on_any_stream(frames, points, limit):
    chunks = cut(b"".join(frames), points)
    assert fast_path(chunks, limit) == websockets_alone(chunks, limit)


def frame_of(message: str | bytes) -> bytes:
    """A phone's frame: whole, masked with a random mask (as a browser does)."""
    if isinstance(message, str):
        return Frame(Opcode.TEXT, message.encode()).serialize(mask=True, extensions=[])
    return Frame(Opcode.BINARY, message).serialize(mask=True, extensions=[])


def backlog_framer() -> FastFramer:
    return FastFramer(limit=LIMIT, backlog_frames=BACKLOG_FRAMES, keep_newest=KEEP_NEWEST)


def test_a_backlog_decodes_the_newest_vectors_and_every_control_message():
    # A daemon that fell behind (a read of more than BACKLOG_FRAMES frames) decodes the newest
    # KEEP_NEWEST and every subscribe/unsubscribe, in order; the rest are superseded vectors.
    vectors = [f"0 {i} 1" for i in range(BACKLOG_FRAMES + 500)]
    controls = ['{"type": "subscribe", "rate": 10}', '{"type": "unsubscribe"}']
    messages: list[str | bytes] = vectors[:10] + [controls[0]] + vectors[10:20] + [b"{binary"] + [controls[1]] + [""] + vectors[20:]
    framer = backlog_framer()
    kept, rest = framer.receive_data(b"".join(map(frame_of, messages)), parser_idle=True)
    assert kept == controls + messages[-KEEP_NEWEST:] and rest == b""
    assert framer.superseded == len(messages) - len(kept)
    assert kept[-1] == vectors[-1]  # the newest always
    assert KEEP_NEWEST < BACKLOG_FRAMES


def test_a_backlog_keeps_a_control_message_among_the_newest_once():
    messages: list[str | bytes] = [f"0 {i} 1" for i in range(BACKLOG_FRAMES)] + ['{"type": "unsubscribe"}'] + ["0 1 1"] * 3
    framer = backlog_framer()
    kept, _ = framer.receive_data(b"".join(map(frame_of, messages)), parser_idle=True)
    assert kept == messages[-KEEP_NEWEST:] and kept.count('{"type": "unsubscribe"}') == 1
    assert framer.superseded == len(messages) - KEEP_NEWEST


def test_a_backlog_hands_websockets_the_same_rest_as_without_skimming():
    # What follows the simple frames (a ping, a frame cut short) goes on exactly as split_frames says.
    vectors = [f"0 {i} 1" for i in range(BACKLOG_FRAMES + 10)]
    data = b"".join(map(frame_of, vectors))
    after = masked(Opcode.PING, b"p") + frame_of("0 9 1")
    framer = backlog_framer()
    assert framer.receive_data(data + after, parser_idle=True) == (vectors[-KEEP_NEWEST:], after)
    cut = frame_of("0 1 2")[:5]
    assert framer.receive_data(data + cut, parser_idle=True) == (vectors[-KEEP_NEWEST:], b"")
    assert framer.pending == cut


def test_no_backlog_below_the_threshold_and_a_bad_control_message_stops_the_skimming():
    few = [f"0 {i} 1" for i in range(BACKLOG_FRAMES)]
    framer = backlog_framer()
    assert framer.receive_data(b"".join(map(frame_of, few)), parser_idle=True) == (few, b"")
    assert framer.superseded == 0
    # A "{" frame that is not UTF-8 among the old ones: websockets must see it (1007), so this
    # read is decoded as split_frames does, up to that frame.
    bad = Frame(Opcode.TEXT, b"{\xff").serialize(mask=True, extensions=[])
    after = bad + b"".join(map(frame_of, few))
    assert framer.receive_data(frame_of("0 0 1") + after, parser_idle=True) == (["0 0 1"], after)
    assert framer.superseded == 0



def test_head_gate_passes_the_request_head_and_holds_what_follows():
    # Issue 21.1: a pipelined request must never reach websockets' parser
    # while the handshake runs.
    from gravity_led.daemon.framing import HeadGate

    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    for cut in range(1, len(head) + 1):  # the head's end straddling any two reads
        g = HeadGate(limit=100)
        data = head + head
        assert g.feed(data[:cut]) + g.feed(data[cut:]) == head
        assert g.feed(b"more") == b"" and g.release() == head + b"more"
    g = HeadGate(limit=10)
    assert g.feed(head + b"x" * 10) == head
    assert g.feed(b"y") is None, "over the limit: drop"
    assert HeadGate(limit=10).feed(head + b"x" * 11) is None


simple_st = st.one_of(
    st.builds(lambda i: f"0 {i} 1", st.integers(0, 10**6)),
    st.sampled_from(['{"type": "unsubscribe"}', '{"type": "subscribe", "rate": 5}', "", "{", b"{x", b"\x00\x01"]),
    st.binary(max_size=20),
)


@settings(max_examples=int(os.environ.get("GRAVITY_LED_FUZZ_EXAMPLES", "400")), deadline=None)
@given(st.lists(simple_st, max_size=40), st.lists(st.integers(0, 1500), max_size=6), st.integers(1, 8), st.integers(1, 8))
def test_a_skimmed_read_keeps_its_controls_and_its_newest_frames(messages, points, backlog, keep):
    # Per read: what the plain fast path finds, with the older frames of a read of over
    # ``backlog`` frames left out unless they are control messages; the same rest and pending.
    chunks = cut(b"".join(map(frame_of, messages)), points)
    plain, skim = FastFramer(limit=LIMIT), FastFramer(limit=LIMIT, backlog_frames=backlog, keep_newest=keep)
    total = 0
    for c in chunks:
        want, want_rest = plain.receive_data(c, parser_idle=True)
        got, rest = skim.receive_data(c, parser_idle=True)
        if len(want) > max(backlog, keep):
            old = want[: len(want) - keep]
            want = [m for m in old if isinstance(m, str) and m[:1] == "{"] + want[len(want) - keep :]
        assert (got, rest, skim.pending) == (want, want_rest, plain.pending)
        total += len(got)
    assert total + skim.superseded == len(messages)
