"""The wire format, tested without sockets (it is pure)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import struct
from pathlib import Path

import pytest
from hypothesis import assume, given, strategies as st

from gravity_led.daemon.protocol import (
    BUSY_CLOSE_CODE,
    SERVER_MESSAGES,
    ConnectionCounts,
    ErrorMessage,
    FrameCounts,
    FrameError,
    LedLevels,
    MappingDoc,
    PinsDoc,
    StateMessage,
    Status,
    Subscribe,
    Vector,
    decode_server_message,
    encode_binary,
    encode_error,
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


STATE = StateMessage(leds=LedLevels(0.5, 0.0), client="127.0.0.1:5000", frames=FrameCounts(7, 1, 2), rate_hz=50)


def test_server_messages_round_trip():
    err = FrameError("not_a_number", "'a' is not a number")
    text = encode_error(err, suppressed=3)
    assert json.loads(text) == {"type": "error", "error": "not_a_number", "message": "'a' is not a number", "suppressed": 3}
    assert decode_server_message(text) == ErrorMessage(error="not_a_number", message="'a' is not a number", suppressed=3)
    assert json.loads(STATE.encode()) == {
        "type": "state",
        "leds": {"right": 0.5, "left": 0.0},
        "client": "127.0.0.1:5000",
        "frames": {"accepted": 7, "rejected": 1, "superseded": 2},
        "rate_hz": 50,
    }
    assert decode_server_message(STATE.encode()) == STATE
    for bad in ("[1, 2]", '{"type": "nonsense"}', '{"type": "state", "leds": 1}', "not json"):
        with pytest.raises(FrameError):
            decode_server_message(bad)


def test_status_document_round_trips():
    status = Status(
        state=STATE,
        version="1.0",
        uptime_s=1.5,
        busy_refused=2,
        connections=ConnectionCounts(1, 64, pending=1, max_per_address=8, refused={"per_address": 3}),
        pin_factory="mock",
        pins=PinsDoc(18, "GPIO23", 100.0),
        mapping=MappingDoc(axis="y", invert=False, dead_zone_deg=0.0, full_scale_deg=90.0, curve="linear", gamma=2.2, smoothing_s=0.0),
        stale_after_s=1.0,
        pin_writes=3,
    )
    d = json.loads(status.encode())
    assert d["leds"] == {"right": 0.5, "left": 0.0} and d["connections"] == {"open": 1, "max": 64, "pending": 1, "max_per_address": 8, "refused": {"per_address": 3}} and "type" not in d
    assert Status.from_dict(d) == status


# ---- the phone page reads only what the daemon sends --------------------------

WEB = Path(__file__).resolve().parents[2] / "daemon" / "web"


def _page_js() -> str:
    """Every script of the phone page, however it is split into modules."""
    files = sorted(WEB.glob("*.js"))
    assert files, "no .js file in daemon/web"
    return "\n".join(f.read_text() for f in files)


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_page_expects_the_declared_messages():
    """Fails when daemon/web/*.js checks a message type, reads a message field
    or an LED level, or names a close code that daemon/protocol.py does not
    declare (or stops handling one that it does)."""
    js = _page_js()
    types = set(re.findall(r"\bmsg\.type\s*===?\s*['\"](\w+)['\"]", js))
    assert types == set(SERVER_MESSAGES), f"the page handles {sorted(types)}, the daemon sends {sorted(SERVER_MESSAGES)}"
    message_fields = {"type"}.union(*(_fields(m) for m in SERVER_MESSAGES.values()))
    read = set(re.findall(r"\bmsg\.(\w+)", js))
    assert read and read <= message_fields, f"the page reads {sorted(read - message_fields)}, which no daemon message has"
    levels = set(re.findall(r"\bleds\.(\w+)", js))
    assert levels and levels <= _fields(LedLevels), f"the page reads LED levels {sorted(levels - _fields(LedLevels))}"
    busy = re.findall(r"BUSY_CODE\s*=\s*(\d+)", js)
    assert busy and {int(b) for b in busy} == {BUSY_CLOSE_CODE}


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
    from gravity_led.daemon import protocol

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


@given(
    st.lists(
        st.tuples(
            st.one_of(st.floats().map(repr), st.sampled_from(["1", ".5", "+7.", "1e5", "nan", "x", ""])),
            st.sampled_from([" ", "  ", ",", " , ", "\t", ", ,"]),
        ),
        min_size=1,
        max_size=5,
    ).map(lambda parts: "".join(a + b for a, b in parts))
)
def test_fast_path_agrees_with_the_grammar_whatever_the_separators(text):
    for t in (text, text.strip(), " " + text):
        try:
            got = parse_frame(t)
        except FrameError:
            got = "rejected"
        assert got == _reference(t), t


def test_a_rejected_text_frame_is_explained_only_when_asked(monkeypatch):
    # Issue 21.3: explaining (a regex per token) cost five times a good
    # frame's parse; the holder asks only for the replies and log lines
    # within their budgets.
    from gravity_led.daemon import protocol

    calls = []
    explain = protocol._explain_text
    monkeypatch.setattr(protocol, "_explain_text", lambda text: calls.append(text) or explain(text))
    class CountingRegex:  # the grammar's regex, counting its uses
        def __init__(self, regex) -> None:
            self.regex, self.uses = regex, 0

        def fullmatch(self, text):
            self.uses += 1
            return self.regex.fullmatch(text)

    grammar = CountingRegex(protocol._TEXT_RE)
    monkeypatch.setattr(protocol, "_TEXT_RE", grammar)
    bad = " ".join(["1"] * 63)
    errors = []
    for _ in range(1000):
        try:
            protocol.parse_frame(bad)
        except FrameError as e:
            errors.append(e)
    assert len(errors) == 1000 and calls == []
    assert grammar.uses == 0, "a frame of plain spaces is judged by split() and float() alone"
    assert errors[0].code == "wrong_count" and errors[0].message == "expected 3 numbers 'x y z', got 63"
    assert str(errors[0]) == errors[0].message and len(calls) == 1, "worked out once, when asked"
    assert protocol.encode_error(errors[1]) == protocol.encode_error(explain(bad))
