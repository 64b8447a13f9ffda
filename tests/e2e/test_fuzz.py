"""Fuzz the parser (hypothesis) and the running daemon.

The contract of ``daemon.protocol.parse_frame``/``parse_text``: whatever the
input, the result is a :class:`Vector` with finite components and non-zero
length, a :class:`Subscribe`, or a :class:`FrameError` -- nothing else.  The
daemon end: thousands of random and mutated frames never crash it, never move
the LEDs when they are bad, and the next good frame is followed.
"""

from __future__ import annotations

import json
import math
import random
import struct

import pytest
from hypothesis import HealthCheck, assume, example, given, settings, strategies as st

from gravity_led.daemon.protocol import (
    FrameError,
    Subscribe,
    Vector,
    encode_binary,
    encode_text,
    parse_frame,
    parse_text,
)

from tests.support.net import (
    BINARY,
    TEXT,
    approx_leds,
    client_frame,
    leds_of,
    raw_ws,
    tcp_closed_by_peer,
    text_frame,
    want_duty,
    ws_client,
)

GRAMMAR = "0123456789+-.eE, \t\r\n"
TEXT_BYTES = frozenset(GRAMMAR.encode())


def check_contract(result_or_exc) -> str:
    """Assert the parser's contract; return the kind of outcome."""
    if isinstance(result_or_exc, FrameError):
        assert result_or_exc.code and result_or_exc.message
        return "error"
    if isinstance(result_or_exc, Subscribe):
        assert 0 <= result_or_exc.rate_hz <= 20 and math.isfinite(result_or_exc.rate_hz)
        return "subscribe"
    v = result_or_exc
    assert type(v) is Vector, type(v)
    assert all(type(c) is float for c in v)
    assert all(math.isfinite(c) for c in v)
    assert math.hypot(*v) > 0 and math.isfinite(math.hypot(*v))
    return "vector"


def outcome(fn, data):
    try:
        return fn(data)
    except FrameError as e:  # the only exception allowed; anything else fails the test
        return e


# ---- property tests on the parser --------------------------------------------

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["1e400", "-1e400", "1e-400", "nan", "NaN", "inf", "-Infinity", "1.", ".5", "+.5e-3", "1e", "1e+", ".", "-", "+", "0x10", "1_000", "١", "１"]),
)


@st.composite
def number_frames(draw) -> str:
    """Three-ish number tokens with random separators: near-valid text."""
    tokens = [str(t) for t in draw(st.lists(numbers, min_size=0, max_size=5))]
    seps = draw(st.lists(st.sampled_from([" ", ",", " , ", "\t", ",,", "  ", "\n", "", ";", "\x00"]), min_size=len(tokens), max_size=len(tokens)))
    out = draw(st.sampled_from(["", " ", "\t"]))
    for t, s in zip(tokens, seps):
        out += t + s
    return out


def mutate(data: bytes, rnd: random.Random) -> bytes:
    """One random edit: truncate, flip a bit, insert, delete or duplicate."""
    b = bytearray(data)
    op = rnd.randrange(5)
    if op == 0 or not b:
        return bytes(b[: rnd.randrange(len(b) + 1)])
    i = rnd.randrange(len(b))
    if op == 1:
        b[i] ^= 1 << rnd.randrange(8)
    elif op == 2:
        b.insert(i, rnd.randrange(256))
    elif op == 3:
        del b[i]
    else:
        b[i:i] = b[i : i + rnd.randrange(1, 8)]
    return bytes(b)


@given(st.binary(max_size=1100))
@example(b"")
@example(b"\x00" * 12)
@example(struct.pack("<3f", float("nan"), 1, 1))
@example(struct.pack("<3d", 1e308, 1e308, 1e308))
@example(b"1e400 1 1")
def test_any_bytes_give_vector_or_frame_error(data):
    kind = check_contract(outcome(parse_frame, data))
    assert kind != "subscribe"  # control messages are text frames only
    if kind == "vector" and len(data) not in (12, 24):
        assert TEXT_BYTES.issuperset(data)


@given(st.text(max_size=300))
@example("{" * 5000)
@example('{"type": "subscribe", "rate": 1e999}')
@example('{"type": "subscribe", "rate": NaN}')
@example('{"type": "subscribe", "rate": true}')
@example("[" * 100000)
def test_any_text_gives_vector_subscribe_or_frame_error(text):
    check_contract(outcome(parse_frame, text))
    kind = check_contract(outcome(parse_text, text))
    assert kind != "subscribe"


@given(number_frames())
@example("1e400 0 1")
@example("nan 1 1")
@example("0 0 0")
@example("1 2 3 ")
@example("1,2,,3")
@example("1e308 1e308 1e308")
def test_near_valid_text_gives_vector_or_frame_error(text):
    check_contract(outcome(parse_text, text))
    check_contract(outcome(parse_frame, text))
    check_contract(outcome(parse_frame, text.encode("utf-8")))


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.sampled_from(["type", "rate", "x"]), json_values | st.sampled_from(["subscribe", "unsubscribe"]), max_size=3))
def test_any_json_object_gives_subscribe_or_frame_error(obj):
    try:
        text = json.dumps(obj)
    except ValueError:
        return
    kind = check_contract(outcome(parse_frame, text))
    assert kind in ("subscribe", "error")


# JSON control messages written as text, so that they can hold what
# json.dumps never writes: repeated keys, numbers of any size or form,
# nesting deeper than any recursion limit.
json_numbers = st.one_of(
    st.integers().map(str),
    st.integers(min_value=300, max_value=6000).map(lambda n: "1" + "0" * n),  # beyond float, beyond int's str limit
    st.integers(min_value=300, max_value=6000).map(lambda n: "-" + "9" * n),
    st.floats().map(lambda f: json.dumps(f)),  # NaN, Infinity, -Infinity too
    st.sampled_from(["1e400", "-1e400", "1e-400", "0", "-0", "0.0", "1.5", "20.000001", "1E2", "5e-324", "1.7976931348623157e308"]),
)
json_scalars = json_numbers | st.sampled_from(['"subscribe"', '"unsubscribe"', '"fast"', '""', "true", "false", "null", '"\\u0000"'])


@st.composite
def json_texts(draw, depth_limit: int = 3) -> str:
    """A JSON value written by hand: nested arrays and objects, possibly deep."""
    kind = draw(st.integers(0, 4 if depth_limit > 0 else 0))
    if kind == 0:
        return draw(json_scalars)
    if kind == 1:
        n = draw(st.integers(1, 100_000))
        return "[" * n + draw(json_scalars) + "]" * n
    if kind == 2:
        return "[" + ",".join(draw(st.lists(json_texts(depth_limit - 1), max_size=3))) + "]"
    if kind == 3:
        n = draw(st.integers(1, 5000))
        return '{"a":' * n + draw(json_scalars) + "}" * n
    return control_object(draw, depth_limit - 1)


def control_object(draw, depth_limit: int) -> str:
    keys = draw(st.lists(st.sampled_from(['"type"', '"rate"', '"x"', '"Type"', '"rate "']), max_size=4))
    values = [draw(json_texts(depth_limit)) if draw(st.booleans()) else draw(json_scalars) for _ in keys]
    return "{" + ",".join(f"{k}:{v}" for k, v in zip(keys, values)) + "}"


@st.composite
def control_messages(draw) -> str:
    """Control messages near the valid ones: subscribe with a rate of any
    form, repeated keys, values of the wrong type, deep nesting, cut short."""
    pairs = [("type", draw(st.sampled_from(['"subscribe"', '"unsubscribe"', '"state"', "1", "null", '["subscribe"]'])))]
    if draw(st.booleans()):
        pairs.append(("rate", draw(json_numbers | json_texts(2))))
    for _ in range(draw(st.integers(0, 2))):  # repeated keys
        pairs.append((draw(st.sampled_from(["type", "rate"])), draw(json_scalars)))
    pairs = draw(st.permutations(pairs))
    text = "{" + ", ".join(f'"{k}": {v}' for k, v in pairs) + "}"
    if draw(st.integers(0, 9)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text


@given(control_messages())
@example('{"type": "subscribe", "rate": 1' + "0" * 309 + "}")  # once an OverflowError
@example('{"type": "subscribe", "rate": ' + "9" * 5000 + "}")
@example('{"type": "subscribe", "rate": 1e400}')
@example('{"type": "subscribe", "rate": -Infinity}')
@example('{"type": "subscribe", "rate": 5, "rate": 500}')
@example('{"type": "unsubscribe", "type": "subscribe"}')
@example('{"type": "subscribe", "rate": ' + "[" * 100000 + "]" * 100000 + "}")
def test_control_messages_give_subscribe_or_frame_error(text):
    kind = check_contract(outcome(parse_frame, text))
    assert kind in ("subscribe", "error")
    if len(text.encode()) not in (12, 24):  # those are float vectors whatever they hold
        assert check_contract(outcome(parse_frame, text.encode())) == "error"  # JSON only in text frames


@given(json_texts(4))
def test_any_json_value_gives_subscribe_or_frame_error(text):
    assert check_contract(outcome(parse_frame, text)) in ("subscribe", "error")


@pytest.mark.parametrize(
    "text, code",
    [
        ('{"type": "subscribe", "rate": 1' + "0" * 309 + "}", "bad_rate"),
        ('{"type": "subscribe", "rate": ' + "9" * 5000 + "}", "bad_rate"),
        ('{"type": "subscribe", "rate": 1e400}', "bad_rate"),
        ('{"type": "subscribe", "rate": NaN}', "bad_rate"),
        ('{"type": "subscribe", "rate": "5"}', "bad_rate"),
        ('{"type": "subscribe", "rate": [5]}', "bad_rate"),
        ('{"type": "subscribe", "rate": true}', "bad_rate"),
        ('{"type": "subscribe", "rate": 0}', "bad_rate"),
        ('{"type": "subscribe", "rate": 5, "rate": 500}', "bad_json"),
        ('{"type": "subscribe", "rate": ' + "[" * 100000 + "]" * 100000 + "}", "bad_json"),
        ('{"type": ["subscribe"]}', "unknown_type"),
    ],
)
def test_control_message_errors_say_what_is_wrong(text, code):
    with pytest.raises(FrameError) as e:
        parse_frame(text)
    assert e.value.code == code


@pytest.mark.parametrize("text, rate", [('{"type": "subscribe", "rate": 2.5}', 2.5), ('{"type": "subscribe", "rate": 1' + "0" * 300 + "}", 20.0), ('{"type": "subscribe"}', 20.0), ('{"type": "unsubscribe", "rate": "x"}', 0.0)])
def test_valid_control_messages(text, rate):
    assert parse_frame(text) == Subscribe(rate)


finite = st.floats(allow_nan=False, allow_infinity=False)


@given(finite, finite, finite)
def test_encode_text_round_trips_exactly(x, y, z):
    result = outcome(parse_frame, encode_text((x, y, z)))
    if isinstance(result, FrameError):
        assert (x, y, z) == (0, 0, 0) or not math.isfinite(math.hypot(x, y, z))
    else:
        assert result == (x, y, z)
        assert parse_frame(encode_text(result)) == result  # a fixed point


@given(finite, finite, finite)
def test_encode_binary_float64_round_trips_exactly(x, y, z):
    data = encode_binary((x, y, z), double=True)
    assume(not TEXT_BYTES.issuperset(data))
    result = outcome(parse_frame, data)
    if isinstance(result, FrameError):
        assert (x, y, z) == (0, 0, 0) or not math.isfinite(math.hypot(x, y, z))
    else:
        assert result == (x, y, z)


@given(st.floats(width=32, allow_nan=False, allow_infinity=False), st.floats(width=32, allow_nan=False, allow_infinity=False), st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_encode_binary_float32_round_trips_exactly(x, y, z):
    data = encode_binary((x, y, z))
    assume(not TEXT_BYTES.issuperset(data))
    result = outcome(parse_frame, data)
    if isinstance(result, FrameError):
        assert (x, y, z) == (0, 0, 0)
    else:
        assert result == (x, y, z)  # float32 values survive float32 exactly


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(finite, finite, finite, st.randoms(use_true_random=False), st.integers(1, 4))
def test_mutated_valid_frames_give_vector_or_frame_error(x, y, z, rnd, edits):
    frames = [encode_text((x, y, z)).encode(), encode_binary((x, y, z), double=True)]
    if max(abs(x), abs(y), abs(z)) < 3.4e38:  # float32 range (encode_binary raises OverflowError beyond)
        frames.append(encode_binary((x, y, z)))
    for frame in frames:
        for _ in range(edits):
            frame = mutate(frame, rnd)
        check_contract(outcome(parse_frame, frame))
        try:
            text = frame.decode("utf-8")
        except UnicodeDecodeError:
            continue
        check_contract(outcome(parse_frame, text))


# ---- end to end: the running daemon --------------------------------------------


def bad_frames(rnd: random.Random) -> list[str | bytes]:
    """Thousands of candidate frames; the caller keeps those the parser rejects."""
    frames: list[str | bytes] = []
    alphabet = GRAMMAR + "abcxyzNnaIinf{}[]\":;\x00\x01\x07\x1b\x7f\u00e9\u2003\u202e\U0001f600\ufffd"
    for n in range(65):  # every length 0-64, text and binary, a few of each
        for _ in range(6):
            frames.append(bytes(rnd.randrange(256) for _ in range(n)))
            frames.append("".join(rnd.choice(alphabet) for _ in range(n)))
            frames.append(bytes(rnd.choice(b"0123456789+-.eE, ") for _ in range(n)))
    valid_text = [text_frame(rnd.uniform(-1, 1)) for _ in range(40)] + ["-3.4510713 50.00011 86.60248", "1.0E-5 -2.5e+1 .5"]
    for t in valid_text:
        for i in range(len(t)):  # truncated numbers
            frames.append(t[:i])
        for _ in range(20):
            frames.append(mutate(t.encode(), rnd))
            frames.append(mutate(mutate(t.encode(), rnd), rnd).decode("latin-1"))
    for _ in range(300):  # mutated binary frames (many stay valid: filtered later)
        frames.append(mutate(encode_binary((rnd.uniform(-9, 9), rnd.uniform(-9, 9), rnd.uniform(-9, 9))), rnd))
        frames.append(mutate(encode_binary((rnd.uniform(-9, 9),) * 3, double=True), rnd))
    nan, inf = float("nan"), float("inf")
    for v in [(nan, 1, 1), (1, nan, 1), (inf, 0, 1), (1, -inf, 1), (0, 0, 0), (-0.0, 0.0, -0.0), (1e308, 1e308, 1e308)]:
        frames += [encode_binary(v, double=True), encode_text(v)]
        if all(abs(c) < 3e38 or not math.isfinite(c) for c in v):
            frames.append(encode_binary(v))
    for e in (309, 400, 4000, 10**6):  # huge exponents
        frames += [f"1e{e} 0 1", f"0 -1e{e} 1", f"0 1 1E+{e}", f"{'9' * 400} 1 1"]
    frames += ["NaN 1 2", "nan nan nan", "Infinity 0 1", "-inf 1 1", "1 2", "1 2 3 4", "1,,2,3", "1;2;3", "0x1 2 3", "1_0 2 3"]
    frames += ["", " ", "\x00", "\x00 1 2", "1\x002 3", "1 2 3\x00", "\x1b[2J", "\u202e1 2 3", "1 2 \U0001f600"]
    frames += ["{", "{}", "[]", '{"type": "subscribe", "rate": "fast"}', '{"type": "subscribe", "rate": -1}', '{"type": 7}', "{" + "[" * 500, '{"a":' * 150]
    return frames


def test_thousands_of_bad_frames_change_nothing_and_the_next_good_frame_is_followed(start_daemon):
    d = start_daemon("--stale-after", "120")
    rnd = random.Random(6)
    bad: list[str | bytes] = []
    for f in bad_frames(rnd):
        if isinstance(f, str) and len(f.encode("utf-8", "surrogatepass")) > 1024:
            continue
        if isinstance(outcome(parse_frame, f), FrameError):
            bad.append(f)
    assert len(bad) >= 3000
    assert {type(f) for f in bad} == {str, bytes}
    assert {len(f) for f in bad} >= set(range(65))  # every length 0-64

    with ws_client(d.url) as ws:
        ws.send(text_frame(0.3))
        before = d.wait_for(lambda s: approx_leds(leds_of(s), want_duty(0.3)))
        for f in bad:
            ws.send(f)
        # Each bad frame rejected, or skimmed unparsed as superseded if a read held over BACKLOG_FRAMES.
        after = d.wait_for(lambda s: s["frames"]["rejected"] + s["frames"]["superseded"] == before["frames"]["rejected"] + len(bad), timeout=30)
        assert after["frames"]["accepted"] == before["frames"]["accepted"]
        assert after["frames"]["rejected"] > before["frames"]["rejected"]
        assert leds_of(after) == leds_of(before)  # unchanged, exactly
        assert d.proc.poll() is None
        ws.send(encode_binary((0.0, -0.6, 0.8)))  # still open, still in charge
        d.wait_for(lambda s: approx_leds(leds_of(s), (0.0, 0.6), 1e-6))
        ws.send(text_frame(0.9))
        d.wait_for(lambda s: approx_leds(leds_of(s), want_duty(0.9)))
    assert "Traceback" not in d.logs()


def test_random_mixed_stream_counts_match_the_parser_and_the_leds_show_the_last_good_frame(start_daemon):
    """Good and bad frames interleaved: the daemon accepts exactly what the pure
    parser accepts, rejects the rest, and ends on the last good vector."""
    d = start_daemon("--stale-after", "120")
    rnd = random.Random(66)
    stream: list[str | bytes] = []
    for _ in range(3000):
        r = rnd.random()
        if r < 0.3:
            duty = rnd.uniform(-1, 1)
            stream.append(text_frame(duty) if rnd.random() < 0.5 else encode_binary((0.0, duty, math.sqrt(1 - duty * duty)), double=True))
        elif r < 0.6:
            stream.append(mutate(text_frame(rnd.uniform(-1, 1)).encode(), rnd))
        elif r < 0.8:
            stream.append(mutate(encode_binary((rnd.uniform(-2, 2), rnd.uniform(-2, 2), rnd.uniform(-2, 2))), rnd))
        else:
            stream.append("".join(chr(rnd.randrange(32, 0x3000)) for _ in range(rnd.randrange(40))))
    last_good = Vector(0.0, 0.25, math.sqrt(1 - 0.0625))
    stream.append(encode_text(last_good))
    results = [outcome(parse_frame, f) for f in stream]
    assert not any(isinstance(r, Subscribe) for r in results)
    n_ok = sum(isinstance(r, Vector) for r in results)
    n_bad = len(results) - n_ok
    assert n_ok > 500 and n_bad > 500

    with ws_client(d.url) as ws:
        for f in stream:
            ws.send(f)
        s = d.wait_for(lambda s: sum(s["frames"].values()) == len(stream), timeout=30)
        if s["frames"]["superseded"] == 0:  # the daemon kept up (a read of over BACKLOG_FRAMES frames skips the older ones)
            assert s["frames"]["accepted"] == n_ok and s["frames"]["rejected"] == n_bad
        else:
            assert s["frames"]["accepted"] <= n_ok and s["frames"]["rejected"] <= n_bad
        # The writer applies the newest vector within one update tick.
        d.wait_for(lambda s: approx_leds(leds_of(s), want_duty(0.25)))


def test_invalid_utf8_text_frame_closes_with_1007_and_the_daemon_keeps_serving(start_daemon):
    d = start_daemon("--stale-after", "120")
    sock = raw_ws(d.port)
    try:
        sock.sendall(client_frame(TEXT, text_frame(0.5).encode()))
        d.wait_for(lambda s: approx_leds(leds_of(s), want_duty(0.5)))
        sock.sendall(client_frame(TEXT, b"0 1 \xff\xfe"))
        assert tcp_closed_by_peer(sock, 5)
    finally:
        sock.close()
    d.wait_for(lambda s: s["client"] is None and s["leds"] == {"right": 0.0, "left": 0.0})
    from tests.support.net import drive_and_check

    drive_and_check(d, -0.4)


def test_reserved_opcodes_and_bad_masking_close_the_connection_and_the_daemon_keeps_serving(start_daemon):
    d = start_daemon()
    for payload in (
        client_frame(0x3, b"1 2 3"),  # reserved data opcode
        client_frame(0xB, b""),  # reserved control opcode
        client_frame(TEXT, b"1 2 3")[:1] + bytes([5]) + b"1 2 3",  # unmasked client frame
        client_frame(0x9, b"x" * 126),  # control frame over 125 bytes
        client_frame(BINARY, b"\x00" * 12, fin=False) + client_frame(TEXT, b"1 2 3"),  # new message inside a fragmented one
        bytes([0xF2]) + client_frame(BINARY, b"x")[1:],  # RSV bits set
    ):
        sock = raw_ws(d.port)
        try:
            sock.sendall(payload)
            assert tcp_closed_by_peer(sock, 5)
        finally:
            sock.close()
        d.wait_for(lambda s: s["client"] is None)
    from tests.support.net import drive_and_check

    drive_and_check(d, 0.7)
    assert d.proc.poll() is None
