"""The wire format, tested without sockets (it is pure)."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import assume, given, strategies as st

from daemon.protocol import (
    FrameError,
    Subscribe,
    Vector,
    decode_server_message,
    encode_binary,
    encode_error,
    encode_state,
    encode_subscribe,
    encode_text,
    parse_frame,
    parse_text,
)


@pytest.mark.parametrize(
    "frame, expected",
    [
        ("1 2 3", (1, 2, 3)),
        ("  -0.5\t9.81   0.1\n", (-0.5, 9.81, 0.1)),
        ("1,2,3", (1, 2, 3)),
        ("1 , 2 ,3", (1, 2, 3)),
        ("1.0E-5 -2.5e+1 .5", (1e-5, -25, 0.5)),
        ("+7. 0 0", (7, 0, 0)),
        # The article's Android app: Float.toString(v / g * 100)
        ("-3.4510713 50.00011 86.60248", (-3.4510713, 50.00011, 86.60248)),
        (b"1 2 3", (1, 2, 3)),
        (bytearray(b"0,9.81,0"), (0, 9.81, 0)),
        (struct.pack("<3f", 0.5, -1.0, 9.75), (0.5, -1.0, 9.75)),
        (struct.pack("<3d", 0.1, -0.2, 9.81), (0.1, -0.2, 9.81)),
    ],
)
def test_valid_frames(frame, expected):
    v = parse_frame(frame)
    assert isinstance(v, Vector)
    assert v == pytest.approx(expected)


@pytest.mark.parametrize(
    "frame, code",
    [
        ("", "wrong_count"),
        ("1 2", "wrong_count"),
        ("1 2 3 4", "wrong_count"),
        ("5", "wrong_count"),  # the article's own test client sent one number
        ("a b c", "not_a_number"),
        ("1 2 x", "not_a_number"),
        ("1_0 2 3", "not_a_number"),
        ("0x1p3 1 1", "not_a_number"),
        ("NaN 1 2", "not_finite"),
        ("1 Infinity 2", "not_finite"),
        ("-inf 0 1", "not_finite"),
        ("1e400 0 1", "not_finite"),
        ("1.7e308 1.7e308 1.7e308", "not_finite"),  # finite parts, infinite length
        ("0 0 0", "zero_vector"),
        ("0.0, -0.0, 0e5", "zero_vector"),
        ("1,,2,3", "bad_separator"),
        ("1 2 3,", "bad_separator"),
        (b"\x00" * 11, "bad_length"),
        (b"\xff" * 13, "bad_length"),
        (b"", "bad_length"),
        (struct.pack("<3f", math.nan, 0, 1), "not_finite"),
        (struct.pack("<3d", 0, 0, 0), "zero_vector"),
        ("{not json", "bad_json"),
        ("{\"type\": \"shout\"}", "unknown_type"),
        ("{\"type\": \"subscribe\", \"rate\": -1}", "bad_rate"),
        ("{\"type\": \"subscribe\", \"rate\": true}", "bad_rate"),
    ],
)
def test_rejected_frames(frame, code):
    with pytest.raises(FrameError) as info:
        parse_frame(frame)
    assert info.value.code == code
    assert str(info.value)  # a sentence for the client


def test_text_in_a_binary_frame_is_text():
    # 12 bytes, but only characters of the text grammar: read as text.
    assert parse_frame(b"1.5 2.5 3.50") == Vector(1.5, 2.5, 3.5)


def test_subscribe():
    assert parse_frame(encode_subscribe(5)) == Subscribe(5.0)
    assert parse_frame('{"type": "subscribe", "rate": 1000}') == Subscribe(20.0)  # capped
    assert parse_frame('{"type": "unsubscribe"}') == Subscribe(0.0)


def test_server_messages_round_trip():
    err = FrameError("not_a_number", "'a' is not a number")
    msg = decode_server_message(encode_error(err, suppressed=3))
    assert msg == {"type": "error", "error": "not_a_number", "message": "'a' is not a number", "suppressed": 3}
    state = decode_server_message(encode_state({"leds": {"right": 0.5, "left": 0.0}}))
    assert state["type"] == "state" and state["leds"]["right"] == 0.5
    with pytest.raises(FrameError):
        decode_server_message("[1, 2]")


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(finite, finite, finite)
def test_text_round_trip_is_exact(x, y, z):
    try:
        v = parse_frame(encode_text((x, y, z)))
    except FrameError as e:
        assert e.code in ("zero_vector", "not_finite")
        return
    assert v == (x, y, z)


@given(st.floats(width=32), st.floats(width=32), st.floats(width=32))
def test_binary_float32_round_trip(x, y, z):
    data = encode_binary((x, y, z))
    # The documented ambiguity: bytes that all look like text are text.
    assume(not set(data) <= set(b"0123456789+-.eE, \t\r\n"))
    try:
        v = parse_frame(data)
    except FrameError:
        assert not all(map(math.isfinite, (x, y, z))) or (x, y, z) == (0, 0, 0)
        return
    assert all(map(math.isfinite, v))


@given(st.binary(max_size=64))
def test_any_bytes_parse_or_raise_frame_error(data):
    try:
        v = parse_frame(data)
    except FrameError:
        return
    assert isinstance(v, Vector)
    assert all(map(math.isfinite, v)) and math.hypot(*v) > 0


@given(st.text(max_size=80))
def test_any_text_parses_or_raises_frame_error(text):
    try:
        v = parse_frame(text)
    except FrameError:
        return
    assert isinstance(v, (Vector, Subscribe))


@given(st.text(alphabet="0123456789+-.eE, \t", max_size=40))
def test_grammar_characters_never_crash_parse_text(text):
    try:
        v = parse_text(text)
    except FrameError:
        return
    assert all(map(math.isfinite, v)) and math.hypot(*v) > 0


def _reference(text: str):
    """The grammar alone (the regex), without parse_frame's fast path."""
    from daemon import protocol

    m = protocol._TEXT_RE.fullmatch(text)
    if m is None:
        return "rejected"
    try:
        return protocol.make_vector(*map(float, m.groups()))
    except FrameError:
        return "rejected"


@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True).map(repr),
            st.text(alphabet="0123456789+-.eE_xnaifINF ", max_size=8),
        ),
        min_size=1,
        max_size=4,
    ).map(" ".join)
)
def test_fast_path_accepts_exactly_the_grammar(text):
    try:
        got = parse_frame(text)
    except FrameError:
        got = "rejected"
    assert got == _reference(text)
