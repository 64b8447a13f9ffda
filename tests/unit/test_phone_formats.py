"""The pure readers of the phone apps' formats (client/formats.py), fed what each app really sends."""

from __future__ import annotations

import json

import pytest

from tests.support.harness import cancel_outcome
from hypothesis import given, settings, strategies as st

from gravity_led.client.badinput import BadInputReport
from gravity_led.client.formats import (
    PhyphoxReader,
    Reading,
    detect_format,
    read_csv,
    read_datagram,
    read_json,
    read_osc,
    read_sensorlogger,
    SensorLoggerReader,
    read_sensorserver,
    read_sensorstream,
    sensor_names,
)
from gravity_led.client.phones import phone_url, phyphox_bases, sensorserver_url
from gravity_led.client.receivers import parse_listen
from gravity_led.client import ClientError
from gravity_led.daemon.protocol import FrameError, Vector, encode_text, parse_frame

from tests.support import phone_apps as apps

G = (0.0, 4.905, 8.496)  # 30 degrees to the right, m/s^2
GYRO = (0.12, -0.03, 0.5)


# ---- CSV: HyperIMU and plain senders ----------------------------------------------------


@pytest.mark.parametrize(
    "datagram, expected",
    [
        (b"0.1,9.7,0.3", [Vector(0.1, 9.7, 0.3)]),
        (b"Pixel7, 0, -4.9, 8.5", [Vector(0, -4.9, 8.5)]),  # a leading device name is ignored
        (b"0;1;2\r\n3,4,5\n", [Vector(0, 1, 2), Vector(3, 4, 5)]),  # one reading per line
        (b"12,9.7,0.3", [Vector(12, 9.7, 0.3)]),  # a short integer is a value, not a timestamp
        (apps.hyperimu_line(G), [Vector(*G)]),
        (apps.hyperimu_line(G, timestamp_ms=1690000000123), [Vector(*G)]),
        (apps.hyperimu_line(G, terminator="#"), [Vector(*G)]),  # '#' ends the line: not part of 8.496
        (apps.hyperimu_line(G, timestamp_ms=1690000000123, mac="a4:50:46:1b:2c:3d"), [Vector(*G)]),  # MAC after it
        (apps.hyperimu_line(G, terminator="#") + apps.hyperimu_line((1.0, 2.0, 3.0), terminator="#"), [Vector(*G), Vector(1, 2, 3)]),
    ],
)
def test_csv_rule(datagram: bytes, expected: list[Vector]) -> None:
    assert read_csv(datagram) == expected
    assert read_datagram(datagram) == expected


def test_hyperimu_with_several_sensors_is_rejected_unless_columns_pick_gravity() -> None:
    # HIMUServer's sample files list the gyroscope first: the old rule read it as gravity.
    line = apps.hyperimu_line(GYRO, G, timestamp_ms=1690000000123, mac="a4:50:46:1b:2c:3d")
    with pytest.raises(FrameError, match="--columns") as e:
        read_datagram(line)
    assert e.value.code == "ambiguous"
    assert read_datagram(line, Reading(columns=(4, 5, 6))) == [Vector(*G)]
    assert read_datagram(line, Reading(format="csv", columns=(4, 5, 6))) == [Vector(*G)]
    with pytest.raises(FrameError, match="has 6 values"):
        read_datagram(line, Reading(columns=(5, 6, 7)))


@pytest.mark.parametrize("datagram", [b"", b"hello", b"1690000000123,1,2", b"0,0,0", b"1,nan,2", b"\xff\xfe", b"####"])
def test_csv_bad_datagrams_raise_frame_error(datagram: bytes) -> None:
    with pytest.raises(FrameError):
        read_csv(datagram)


# ---- Sensorstream IMU+GPS ------------------------------------------------------------


def test_sensorstream_takes_the_gravity_triple_not_the_timestamp_and_id() -> None:
    line = apps.sensorstream_line(1234.56789, [(3, (0.1, 9.7, 0.3)), (4, GYRO), (5, (20.0, -3.0, 41.0)), (83, G)])
    # The old rule built (1234.56789, 3, 0.1) from this line: a wrong vector.
    assert read_datagram(line) == [Vector(*G)]
    assert read_sensorstream(line) == [Vector(*G)]


def test_sensorstream_without_gravity_uses_the_accelerometer() -> None:
    line = apps.sensorstream_line(89.26329, [(3, (0.147, 4.9, 8.5)), (4, GYRO)])
    assert read_datagram(line) == [Vector(0.147, 4.9, 8.5)]
    assert read_datagram(line, Reading(format="sensorstream", sensor="4")) == [Vector(*GYRO)]


def test_sensorstream_with_every_sensor_and_gps_ticked() -> None:
    line = apps.sensorstream_line(
        5021.33187,
        [(3, (0.1, 9.7, 0.3)), (4, GYRO), (5, (20.0, -3.0, 41.0)), (81, (120.0, -3.0, 1.0)), (82, (0.01, 0.02, 0.03)),
         (83, G), (84, (0.1, 0.2, 0.3)), (85, [1, 0, 0, 0, 1, 0, 0, 0, 1]), (86, [1, 0, 0, 0]), (87, [1013.25]), (88, [31])],
        gps=(48.137154, 11.576124, 519.0),
    )  # fmt: skip
    assert read_datagram(line) == [Vector(0.0, 4.905, 8.496)]


def test_sensorstream_cannot_read_past_an_unknown_id() -> None:
    line = b"12.5, 3, 0.1, 9.7, 0.3, 99, 1.0, 2.0, 83, 0.0, 9.8, 0.1"
    with pytest.raises(FrameError, match="99 is unknown"):
        read_sensorstream(line)
    with pytest.raises(FrameError, match="no gravity"):
        read_sensorstream(apps.sensorstream_line(1.0, [(4, GYRO)]))
    with pytest.raises(FrameError, match="layout"):
        read_sensorstream(b"0.1,9.7,0.3")


@pytest.mark.parametrize(
    "datagram",
    [
        b"1 3 0 4 8",  # bare integers: the old rule took id 3 and built (0, 4, 8)
        b"1,3,0,4,8,83,1,2,3",
        b"1234, 3, 0.1, 9.7, 0.3",  # a timestamp without Sensorstream's fractional seconds
        b"1234.5, 3, 0, 4, 8",  # Sensorstream writes every x, y, z with a decimal point (%.3f)
    ],
)
def test_a_line_that_only_resembles_sensorstream_is_rejected_not_read(datagram: bytes) -> None:
    with pytest.raises(FrameError, match="cannot be read unambiguously") as e:
        read_datagram(datagram)
    assert e.value.code == "ambiguous"
    with pytest.raises(FrameError, match="layout"):
        read_datagram(datagram, Reading(format="sensorstream"))


def test_sensorstream_lines_with_whole_number_fields_where_the_app_writes_them() -> None:
    # GPS UTC time (8) and battery temperature (88) are written with %d; a zero-valued sensor still has '.000'.
    line = apps.sensorstream_line(0.5, [(3, (0.0, 0.0, 9.81)), (88, [31])], gps=(0.0, 0.0, 0.0))
    assert b", 8, 1764167400123" in line and b", 88, 31" in line
    assert read_datagram(line) == [Vector(0.0, 0.0, 9.81)]


def test_columns_never_count_a_sensorstream_timestamp_and_ids_as_values() -> None:
    line = apps.sensorstream_line(1234.56789, [(3, (0.1, 9.7, 0.3)), (83, G)])
    # Read as plain CSV, --columns 4,5,6 made (9.7, 0.3, 83) of it: the ids are no values.
    with pytest.raises(FrameError, match="--columns does not apply to Sensorstream") as e:
        read_datagram(line, Reading(columns=(4, 5, 6)))
    assert "--sensor" in e.value.message
    for fmt in ("sensorstream", "json", "osc"):
        with pytest.raises(ValueError, match=f"--columns .* not with --format {fmt}"):
            Reading(format=fmt, columns=(4, 5, 6))
    assert read_datagram(line, Reading(format="sensorstream", sensor="3")) == [Vector(0.1, 9.7, 0.3)]


# ---- JSON: SensaGram, SensorServer, ZIG SIM ----------------------------------------------


def test_sensagram_uses_only_gravity_messages() -> None:
    assert read_datagram(apps.sensagram_datagram("android.sensor.gravity", G)) == [Vector(*G)]
    assert read_datagram(apps.sensagram_datagram("android.sensor.gyroscope", GYRO)) == []
    acc = apps.sensagram_datagram("android.sensor.accelerometer", G)
    assert read_datagram(acc) == []
    assert read_datagram(acc, Reading(sensor="android.sensor.accelerometer")) == [Vector(*G)]
    assert read_json(b'{"type": "android.gps", "latitude": 1.0, "longitude": 2.0}') == []


def test_zigsim_json() -> None:
    assert read_datagram(apps.zigsim_json((0.0, -0.5, -0.866))) == [Vector(0.0, -0.5, -0.866)]
    with pytest.raises(FrameError, match="turn on Gravity"):
        read_datagram(apps.zigsim_json(G, with_gravity=False))
    assert read_datagram(apps.zigsim_json(G, accel=(0.1, 0.2, 0.3)), Reading(sensor="accel")) == [Vector(0.1, 0.2, 0.3)]


@pytest.mark.parametrize(
    "data, code",
    [(b"{", "not_json"), (b"[1,2,3]", "not_json"), (b'{"values": "abc"}', "not_a_number"), (b'{"values": [1, true, 2]}', "not_a_number"),
     (b'{"values": [0, 0, 0]}', "zero_vector"), (b'{"foo": 1}', "no_values"), (b'{"values": [1, 2]}', "not_a_number")],
)  # fmt: skip
def test_bad_json_says_why(data: bytes, code: str) -> None:
    with pytest.raises(FrameError) as e:
        read_json(data)
    assert e.value.code == code


@pytest.mark.parametrize("data", [b"[" * 100_000, b'{"a":' * 50_000, b'{"values": [1e999, 0, 1]}', b'{"values": [1' + b"0" * 400 + b', 0, 1]}'])
def test_hostile_json_is_rejected_not_raised(data: bytes) -> None:
    with pytest.raises(FrameError):
        read_datagram(data, Reading(format="json"))
    with pytest.raises(FrameError):
        read_sensorlogger(data)


def test_sensorserver_messages() -> None:
    assert read_sensorserver(apps.sensorserver_message(G)) == [Vector(*G)]
    assert read_sensorserver(apps.sensorserver_message(GYRO, "android.sensor.gyroscope")) == []
    assert read_sensorserver(apps.sensorserver_message(G, "android.sensor.gravity")) == [Vector(*G)]
    assert read_sensorserver(apps.sensorserver_message(G, "android.sensor.accelerometer"), sensor="android.sensor.accelerometer") == [Vector(*G)]


def test_sensorserver_urls() -> None:
    assert sensorserver_url("10.0.0.2") == "ws://10.0.0.2:8080/sensor/connect?type=android.sensor.gravity"
    multi = 'ws://10.0.0.2:8080/Sensors/Connect?types=["android.sensor.gyroscope","android.sensor.gravity"]'
    assert sensorserver_url(multi) == multi  # the app lower-cases paths: kept as given
    with pytest.raises(ClientError, match="not android.sensor.gravity"):
        sensorserver_url('ws://10.0.0.2:8080/sensors/connect?types=["android.sensor.gyroscope","android.sensor.light"]')
    with pytest.raises(ClientError, match="not android.sensor.gravity"):
        sensorserver_url("ws://10.0.0.2:8080/sensor/connect?type=android.sensor.gyroscope")
    with pytest.raises(ClientError, match="not a SensorServer sensor path"):
        sensorserver_url("ws://10.0.0.2:8080/gps")


# ---- OSC: ZIG SIM, Sensors2OSC, GyrOSC -------------------------------------------------------


def test_osc_apps_default_addresses() -> None:
    assert detect_format(apps.zigsim_osc((0.0, -0.5, -0.866))) == "osc"
    assert read_datagram(apps.zigsim_osc((0.0, -0.5, -0.866))) == [Vector(0.0, -0.5, pytest.approx(-0.866))]
    assert read_datagram(apps.sensors2osc("gravity", G)) == [Vector(0.0, pytest.approx(4.905), pytest.approx(8.496))]
    assert read_datagram(apps.sensors2osc("accelerometer", G)) == []
    assert read_datagram(apps.gyrosc_bundle((0.0, 0.5, -0.866))) == [Vector(0.0, 0.5, pytest.approx(-0.866))]


def test_osc_address_pattern_and_bad_packets() -> None:
    data = apps.sensors2osc("accelerometer", G)
    assert len(read_osc(data, addresses=["/accelerometer"])) == 1
    assert read_datagram(apps.gyrosc_bundle((0.0, 0.5, -0.866)), Reading(osc_addresses=("/GYROSC/ACCEL",))) == [Vector(0.0, 0.0, -1.0)]
    for bad in (b"/gravity", b"#bundle\x00\x00", b"/gravity\x00\x00\x00\x00,s\x00\x00abc\x00"):
        with pytest.raises(FrameError):
            read_datagram(bad)


def test_osc_python_osc_cannot_read_is_rejected_without_a_log_line(caplog) -> None:
    # python-osc skips an argument type it does not know ('c', a char) without reading its bytes, so
    # the floats after it would be read 4 bytes off: a wrong vector. It says so on the root logger.
    grav = apps.sensors2osc("gravity", G)  # '/gravity\0\0\0\0' ',fff\0\0\0\0' then 12 bytes of floats
    char_first = b"/gravity\x00\x00\x00\x00,cfff\x00\x00\x00\x00\x00\x00A" + grav[-12:]
    empty_element = b"#bundle\x00" + b"\x00" * 7 + b"\x01" + b"\x00\x00\x00\x00"  # a bundle holding an empty element
    for data in (char_first, empty_element, empty_element + len(grav).to_bytes(4, "big") + grav):
        with pytest.raises(FrameError, match="python-osc cannot read all of it"):
            read_osc(data)
    assert caplog.records == []  # not one log line per datagram a stranger sends
    assert read_osc(grav) == [Vector(0.0, pytest.approx(4.905), pytest.approx(8.496))]


@given(st.binary(max_size=200))
@settings(max_examples=400)
def test_udp_reader_never_raises_anything_but_frame_error(data: bytes) -> None:
    for fmt in ("auto", "osc", "sensorstream"):
        try:
            vectors = read_datagram(data, Reading(format=fmt))
        except FrameError:
            continue
        for v in vectors:  # whatever it accepts, the daemon accepts too
            assert parse_frame(encode_text(v)) == v


@given(st.binary(max_size=120).map(lambda b: b"/gravity\x00\x00\x00\x00" + b) | st.binary(max_size=120).map(lambda b: b"#bundle\x00" + b))
@settings(max_examples=300)
def test_osc_reader_survives_garbage_after_a_valid_head(data: bytes) -> None:
    try:
        read_osc(data)
    except FrameError:
        pass


# ---- Sensor Logger -------------------------------------------------------------------


def test_sensorlogger_uses_the_newest_gravity_sample() -> None:
    body = apps.sensorlogger_body(
        [("accelerometer", 30, (0.3, 0.1, 0.0)), ("gravity", 20, G), ("gravity", 10, (0.0, -4.905, 8.496)), ("gyroscope", 25, GYRO)]
    )
    assert read_sensorlogger(body) == [Vector(*G)]


def test_sensorlogger_falls_back_to_total_acceleration_never_to_the_accelerometer() -> None:
    body = apps.sensorlogger_body([("accelerometer", 1, (0.3, 0.1, 0.0)), ("totalacceleration", 1, G)])
    assert read_sensorlogger(body) == [Vector(*G)]
    with pytest.raises(FrameError, match="turn on Gravity"):
        read_sensorlogger(apps.sensorlogger_body([("accelerometer", 1, (0.3, 0.1, 0.0))]))
    assert read_sensorlogger(apps.sensorlogger_body([])) == []  # "Tap to Test Pushing"
    for bad in (b"nope", b"[]", json.dumps({"payload": "x"}).encode()):
        with pytest.raises(FrameError):
            read_sensorlogger(bad)


def test_sensorlogger_ignores_a_batch_older_than_the_newest_applied() -> None:
    """Each batch is its own POST, and a late one (by the payload's time) must not move the LEDs back."""
    left = (0.0, -4.905, 8.496)
    r = SensorLoggerReader()
    assert r.read(apps.sensorlogger_body([("gravity", 2_000, G)], message_id=2)) == [Vector(*G)]
    assert r.read(apps.sensorlogger_body([("gravity", 1_000, left), ("gravity", 900, G)], message_id=1)) == []  # late
    assert r.late == 1 and r.newest == 2_000
    assert r.read(apps.sensorlogger_body([("gravity", 2_000, G)], message_id=2)) == [Vector(*G)]  # as new: not older
    assert r.read(apps.sensorlogger_body([("gravity", 3_000, left)], message_id=3)) == [Vector(*left)]
    assert r.read(apps.sensorlogger_body([("gyroscope", 1, GYRO)])) == []  # no motion sample: nothing to order
    # a new recording starts afresh, with times of its own
    assert r.read(apps.sensorlogger_body([("gravity", 10, G)], session="next")) == [Vector(*G)]
    assert r.read(apps.sensorlogger_body([("gravity", 5, left)], session="next")) == [] and r.late == 2
    # a sample without a numeric time cannot be ordered: applied, and the newest time kept
    untimed = json.dumps({"sessionId": "next", "payload": [{"name": "gravity", "time": "soon", "values": dict(zip("xyz", left))}]})
    assert r.read(untimed) == [Vector(*left)] and r.newest == 10


# ---- phyphox -----------------------------------------------------------------------


def _answer(measuring: bool, xs: list, ys: list, zs: list, ts: list | None, session: str = "s1") -> dict:
    buffers = {"accX": {"buffer": xs}, "accY": {"buffer": ys}, "accZ": {"buffer": zs}}
    if ts is not None:
        buffers["acc_time"] = {"buffer": ts}
    return {"buffer": buffers, "status": {"session": session, "measuring": measuring, "timedRun": False, "countDown": 0}}


def test_phyphox_polls_incrementally_by_the_time_buffer() -> None:
    r = PhyphoxReader(("accX", "accY", "accZ"))
    assert r.query() == "/get?accX&accY&accZ&acc_time"
    vectors, note = r.read(_answer(True, [0.1], [9.7], [0.3], [1.25]))
    assert vectors == [Vector(0.1, 9.7, 0.3)] and note is None
    assert r.query() == "/get?accX=1.25|acc_time&accY=1.25|acc_time&accZ=1.25|acc_time&acc_time=1.25"
    vectors, _ = r.read(_answer(True, [1, 2], [3, 4], [5, 6], [1.26, 1.27]))
    assert vectors == [Vector(1, 3, 5), Vector(2, 4, 6)]  # every new sample, once
    vectors, _ = r.read(_answer(True, [], [], [], []))
    assert vectors == [] and "1.27|" in r.query()


def test_phyphox_pause_and_resume_are_said_once() -> None:
    r = PhyphoxReader(("accX", "accY", "accZ"))
    r.read(_answer(True, [0.1], [9.7], [0.3], [1.0]))
    vectors, note = r.read(_answer(False, [0.1], [9.7], [0.3], [1.0]))
    assert vectors == [] and "not measuring" in note
    assert r.read(_answer(False, [0.1], [9.7], [0.3], [1.0])) == ([], None)
    assert r.query() == "/get?accX&accY&accZ&acc_time"  # a restart may have cleared the clock
    vectors, note = r.read(_answer(True, [0.2], [9.6], [0.4], [0.01]))
    assert vectors == [Vector(0.2, 9.6, 0.4)] and "measuring again" in note


def test_phyphox_without_a_time_buffer_reads_the_newest_values() -> None:
    r = PhyphoxReader(("x", "y", "z"), time_buffer="t")
    r.read(_answer(True, [None], [None], [None], None) | {"buffer": {"x": {"buffer": [None]}, "y": {"buffer": [1]}, "z": {"buffer": [2]}}})
    assert r.query() == "/get?x&y&z"
    assert r.read({"buffer": {"x": {"buffer": [1]}, "y": {"buffer": [2]}, "z": {"buffer": [3]}}, "status": {"measuring": True}})[0] == [Vector(1, 2, 3)]
    assert r.missing({"buffer": {"x": {}}}) == ["y", "z"]


def test_phyphox_ports_and_phone_urls() -> None:
    assert phyphox_bases("192.168.1.5") == ["http://192.168.1.5:80", "http://192.168.1.5:8080"]
    assert phyphox_bases("192.168.1.5:8080") == ["http://192.168.1.5:8080"]
    assert phyphox_bases("http://172.20.10.1/") == ["http://172.20.10.1"]
    assert phyphox_bases("fe80::1") == ["http://[fe80::1]:80", "http://[fe80::1]:8080"]
    assert phone_url("192.168.1.5", "ws") == "ws://192.168.1.5:8080"
    assert phone_url("[fe80::1]:9000", "ws") == "ws://[fe80::1]:9000"


def test_a_datagram_flood_waits_in_a_bounded_queue() -> None:
    import asyncio

    from gravity_led.client.receivers import QUEUE_LIMIT, _Datagrams

    queue: asyncio.Queue = asyncio.Queue()
    protocol = _Datagrams(queue)
    for _ in range(QUEUE_LIMIT + 1000):
        protocol.datagram_received(b"x" * 65507, ("127.0.0.1", 1))
    assert queue.qsize() == QUEUE_LIMIT and QUEUE_LIMIT * 65507 <= 16 << 20  # the rest were dropped


@pytest.mark.parametrize("turns", range(6))
def test_reading_can_always_be_stopped_even_as_input_arrives(turns: int) -> None:
    # The client stops a source by cancelling it. On Python 3.11, asyncio.wait_for returned the input
    # that came in the same turn and swallowed the cancellation: under a flood of bad datagrams (a
    # summary due, so a timeout armed) the client then hung at --duration or Ctrl-C.
    import asyncio

    from gravity_led.client.receivers import read_each

    def bad(data: bytes) -> list:
        raise FrameError("not_a_number", "bad")

    async def go() -> str:
        queue: asyncio.Queue = asyncio.Queue()
        reader = asyncio.ensure_future(_drain(read_each(queue.get, bad, BadInputReport(every_s=60.0), lambda msg: None)))
        queue.put_nowait(b"first")
        queue.put_nowait(b"second")  # held back: a summary is due
        for _ in range(5):
            await asyncio.sleep(0)
        queue.put_nowait(b"flood")
        for _ in range(turns):
            await asyncio.sleep(0)
        return await cancel_outcome(reader)

    assert asyncio.run(go()) == "stopped"


async def _drain(vectors) -> None:
    async for _ in vectors:
        pass


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:9000", 5555) == ("127.0.0.1", 9000)
    assert parse_listen(":9000", 5555) == ("0.0.0.0", 9000)
    assert parse_listen("9000", 5555) == ("0.0.0.0", 9000)
    assert parse_listen("[::1]:9000", 5555) == ("::1", 9000)
    assert parse_listen("::1", 5555) == ("::1", 5555) and parse_listen("[::]", 8000) == ("::", 8000)
    with pytest.raises(ClientError):
        parse_listen("host:port", 5555)


# ---- bad input at a bounded rate ---------------------------------------------------------


def test_bad_input_is_said_first_then_summarised_at_most_every_5_s() -> None:
    report = BadInputReport("UDP datagram", every_s=5.0)
    first = report.add(100.0, "not valid JSON", b"{garbage")
    assert first is not None and "{garbage" in first and "not valid JSON" in first
    assert [report.add(100.0 + i / 100, "why", b"x") for i in range(1, 400)] == [None] * 399
    summary = report.add(105.5, "last reason", b"latest")
    assert summary is not None and summary.startswith("400 bad UDP datagrams in the last 6 s (401 in all)") and "last reason" in summary
    assert report.add(106.0, "r", b"") is None


def test_bad_input_held_back_is_summarised_when_the_quiet_period_ends() -> None:
    report = BadInputReport("SensorServer message", every_s=5.0)
    assert report.wait_s(0.0) is None
    assert report.add(10.0, "not valid JSON", "{") is not None
    assert report.wait_s(11.0) is None  # nothing held back yet
    for t in (11.0, 12.0, 13.0):
        assert report.add(t, "not valid JSON", "[oops") is None
    assert report.wait_s(12.0) == 3.0
    assert report.flush(14.9) is None
    assert report.flush(15.0) == "3 bad SensorServer messages in the last 5 s (4 in all), latest '[oops': not valid JSON"
    assert report.wait_s(16.0) is None and report.flush(30.0) is None


def test_input_without_gravity_is_said_once_when_nothing_else_comes_for_5_s() -> None:
    report = BadInputReport(what="UDP datagram", every_s=5.0, advice="turn on Gravity")
    gyro = sensor_names(apps.sensagram_datagram("android.sensor.gyroscope", GYRO))
    acc = sensor_names(apps.sensagram_datagram("android.sensor.accelerometer", G))
    assert [report.ignored(t / 10, gyro if t % 2 else acc) for t in range(50)] == [None] * 50  # 4.9 s: a gap, maybe
    said = report.ignored(5.0, gyro)
    # What the app does send, by sensor: SensaGram's datagrams begin with the timestamp, so the first
    # 60 characters never reached their "type".
    assert said == "51 UDP datagrams in 5 s, none with gravity (saw accelerometer, gyroscope): turn on Gravity"
    assert report.ignored(60.0, gyro) is None  # once
    report.used()  # gravity came: a later stretch without it is said again, with what came since
    assert report.ignored(61.0, gyro) is None
    assert report.ignored(66.0, gyro) == "2 UDP datagrams in 5 s, none with gravity (saw gyroscope): turn on Gravity"
    assert report.total == 0  # none of it was bad input


def test_the_sensors_seen_are_named_as_each_app_names_them() -> None:
    assert sensor_names(apps.sensagram_datagram("android.sensor.gyroscope", GYRO)) == ["gyroscope"]
    assert sensor_names(apps.sensorserver_message(GYRO, "android.sensor.magnetic_field")) == ["magnetic_field"]
    assert sensor_names(apps.sensors2osc("accelerometer", G)) == ["/accelerometer"]  # the address --osc-address takes
    assert sensor_names(apps.gyrosc_bundle(G)) == ["/gyrosc/gyro", "/gyrosc/accel", "/gyrosc/grav"]
    body = apps.sensorlogger_body([("accelerometer", 1, G), ("gyroscope", 2, GYRO), ("accelerometer", 3, G)])
    assert sensor_names(body) == ["accelerometer", "gyroscope"]
    for unnamed in (b"", b"\xff", b"[1]", b"{", b"#bundle\x00oops", apps.sensorserver_message(G)):
        assert sensor_names(unnamed) == []


def test_the_sensors_seen_are_few_short_and_printable_whatever_a_stranger_sends() -> None:
    report = BadInputReport(what="UDP datagram", every_s=5.0, advice="turn on Gravity")
    report.ignored(0.0, ["\x1b[2Jevil" + "x" * 200])
    for i in range(100):
        report.ignored(1.0, [f"sensor{i}"])
    said = report.ignored(5.0, [])
    assert said is not None and "\x1b" not in said and len(said) < 240
    assert "(saw [2Jevil" in said and "sensor0, sensor1, sensor2, sensor3 and others)" in said


def test_bad_input_refused_before_it_was_read_shows_no_empty_sample() -> None:
    report = BadInputReport("Sensor Logger POST", every_s=5.0)
    assert report.add(0.0, "a POST of 9000000 bytes is over the 8 MiB limit") == "bad Sensor Logger POST: a POST of 9000000 bytes is over the 8 MiB limit; skipped"
    assert report.add(1.0, "the POST has no Content-Length") is None
    assert report.flush(5.0) == "1 bad Sensor Logger POST in the last 5 s (2 in all), latest: the POST has no Content-Length"


# ---- command line ------------------------------------------------------------------------


@pytest.mark.parametrize("argv", ["sim", "stdin", "replay rec.csv", "sensorserver 10.0.0.2", "phyphox 10.0.0.2", "udp", "sensorlogger"])
def test_flip_on_every_streaming_subcommand(argv: str) -> None:
    from gravity_led.client.cli import build_parser

    assert build_parser().parse_args([*argv.split(), "--flip"]).flip is True
    assert build_parser().parse_args(argv.split()).flip is False


@pytest.mark.parametrize("argv", [["udp", "--columns", "0,1,2"], ["udp", "--columns", "4,5"], ["udp", "--format", "xml"], ["sensorlogger", "--hold", "-1"]])
def test_bad_phone_options_are_usage_errors(argv: list[str], capsys) -> None:
    from gravity_led.client.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["udp", "--format", "sensorstream", "--columns", "4,5,6"], "--columns picks values of plain CSV lines"),
        (["sensorserver", "10.0.0.2:abc"], "is not a phone address"),
        (["sensorserver", 'ws://10.0.0.2:8080/sensors/connect?types=["android.sensor.gyroscope","android.sensor.light"]'], "but not android.sensor.gravity"),
        (["sensorserver", "ws://10.0.0.2:8080/gravity"], "not a SensorServer sensor path"),
        (["phyphox", "10.0.0.2:abc"], "is not a phone address"),
    ],
)
def test_bad_phone_addresses_are_usage_errors_before_connecting(argv: list[str], words: str, capsys) -> None:
    from gravity_led.client.cli import main

    # Port 9 on loopback: nothing answers there, so "connected" or a retry would show the check came too late.
    assert main([*argv, "--url", "ws://127.0.0.1:9", "--max-retries", "0"]) == 2
    err = capsys.readouterr().err
    assert words in err and "daemon" not in err and "Traceback" not in err
