"""Every phone app, end to end: a faithful fake of the app -> the client CLI process -> the real daemon.

The fakes' formats follow each app's source or documentation (tests/support/phone_apps.py).
The LED levels are read from the daemon's /status.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import socket
import time
from typing import Callable

import pytest

from tests.support import phone_apps as apps
from tests.support.client_fixtures import fake_phyphox, fake_sensorserver, run_client, run_client_to_end  # noqa: F401 (fixtures)
from tests.support.harness import free_port

SIN30 = 0.5
G30 = (0.0, 4.905, 8.496)  # Android, m/s^2: tilted 30 degrees to the right
G30_LEFT = (0.0, -4.905, 8.496)
IOS30 = (0.0, -0.5, -0.866)  # iOS, in g, gravity the other way round: the same right tilt once flipped
GYRO = (1.5, 2.5, -0.5)  # a gyroscope reading: would light the right LED at ~0.83 if read as gravity


def right(target: float, tol: float = 2e-3) -> Callable[[dict], bool]:
    return lambda s: abs(s["leds"]["right"] - target) <= tol and s["leds"]["left"] == 0


def left(target: float, tol: float = 2e-3) -> Callable[[dict], bool]:
    return lambda s: abs(s["leds"]["left"] - target) <= tol and s["leds"]["right"] == 0


def dark(s: dict) -> bool:
    return s["leds"]["right"] == 0 and s["leds"]["left"] == 0


class Phone:
    """A phone app pushing UDP datagrams to the client."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(self, *datagrams: bytes) -> None:
        for d in datagrams:
            self.sock.sendto(d, ("127.0.0.1", self.port))


@pytest.fixture
def udp_client(start_daemon, run_client):
    """Start the daemon and ``client udp --listen`` with extra args; yield (daemon, client, phone)."""
    phones: list[Phone] = []

    def start(*extra: str):
        d = start_daemon()
        port = free_port(socket.SOCK_DGRAM)
        c = run_client("udp", "--listen", f"127.0.0.1:{port}", "--url", d.url, *extra)
        c.wait_output("listening for UDP")
        phone = Phone(port)
        phones.append(phone)
        return d, c, phone

    yield start
    for p in phones:
        p.sock.close()


def keep_sending(d, phone: Phone, datagrams: list[bytes], until: Callable[[dict], bool], timeout: float = 5.0) -> dict:
    """Send like an app does (again and again) until the daemon's state matches."""
    phone.send(*datagrams)
    return d.wait_for(lambda s: (phone.send(*datagrams), until(s))[1], timeout=timeout)


# ---- UDP: HyperIMU ------------------------------------------------------------------------


def test_hyperimu_with_timestamp_mac_and_hash_line_end(udp_client) -> None:
    d, c, phone = udp_client()
    line = apps.hyperimu_line(G30, timestamp_ms=1764167400123, mac="a4:50:46:1b:2c:3d", terminator="#")
    keep_sending(d, phone, [line], right(SIN30))
    assert d.status()["frames"]["rejected"] == 0
    assert c.interrupt() == 0


def test_hyperimu_gyroscope_first_is_rejected_then_read_right_with_columns(udp_client) -> None:
    line = apps.hyperimu_line(GYRO, G30_LEFT, timestamp_ms=1764167400123)
    d, c, phone = udp_client()
    phone.send(line)
    c.wait_output("bad UDP datagram .*--columns", stream="err")
    phone.send(apps.hyperimu_line(G30))  # a good one after: the bad one never moved the LEDs
    d.wait_for(right(SIN30))
    assert c.interrupt() == 0

    d, c, phone = udp_client("--columns", "4,5,6")
    keep_sending(d, phone, [line], left(SIN30))
    assert c.interrupt() == 0


# ---- UDP: Sensorstream IMU+GPS --------------------------------------------------------------


def test_sensorstream_reads_the_gravity_triple_not_the_timestamp(udp_client) -> None:
    d, c, phone = udp_client()
    # The old rule made (1234.56789, 3, 0.147) of this: nearly all x, so both LEDs about dark.
    line = apps.sensorstream_line(1234.56789, [(3, (0.147, 9.1, 3.2)), (4, GYRO), (5, (20.0, -3.0, 41.0)), (83, G30_LEFT)])
    keep_sending(d, phone, [line], left(SIN30))
    # Without gravity ticked, the accelerometer's triple.
    keep_sending(d, phone, [apps.sensorstream_line(1235.0, [(3, G30), (4, GYRO)])], right(SIN30))
    assert c.interrupt() == 0


def test_lines_that_only_resemble_sensorstream_never_move_the_leds(udp_client) -> None:
    d, c, phone = udp_client()
    phone.send(b"1 3 0 4 8")  # the old rule read the accelerometer (0, 4, 8) of it: right LED at ~0.45
    c.wait_output("bad UDP datagram '1 3 0 4 8': .*cannot be read unambiguously", stream="err")
    assert dark(d.status())
    keep_sending(d, phone, [apps.sensorstream_line(1235.0, [(3, G30)])], right(SIN30))  # a real line after it
    assert d.status()["frames"]["rejected"] == 0
    assert c.interrupt() == 0


def test_sensorstream_with_columns_is_rejected_not_read_as_csv(udp_client) -> None:
    d, c, phone = udp_client("--columns", "4,5,6")
    # As plain CSV, positions 4,5,6 of this line are 9.7, 0.3 and the id 83: the right LED nearly full.
    phone.send(apps.sensorstream_line(1234.56789, [(3, (0.1, 9.7, 0.3)), (83, G30_LEFT)]))
    c.wait_output("bad UDP datagram .*--columns does not apply to Sensorstream", stream="err")
    assert dark(d.status())
    keep_sending(d, phone, [apps.hyperimu_line(GYRO, G30_LEFT)], left(SIN30))  # CSV still read by --columns
    assert d.status()["frames"]["accepted"] > 0 and c.interrupt() == 0


# ---- UDP: SensaGram (JSON) ---------------------------------------------------------------


def test_sensagram_gyroscope_never_drives_the_leds(udp_client) -> None:
    d, c, phone = udp_client()
    gyro = apps.sensagram_datagram("android.sensor.gyroscope", GYRO)
    grav = apps.sensagram_datagram("android.sensor.gravity", G30)
    keep_sending(d, phone, [gyro, grav, gyro], right(SIN30))
    for _ in range(20):
        phone.send(gyro)
    phone.send(grav)
    d.wait_for(right(SIN30))  # still the gravity reading: gyroscope messages were ignored
    assert "bad" not in c.stderr  # other sensors are not bad input
    assert c.interrupt() == 0


# ---- UDP: ZIG SIM (JSON and OSC), Sensors2OSC, GyrOSC -----------------------------------------


def test_an_app_that_sends_no_gravity_is_told_to_turn_it_on(udp_client) -> None:
    d, c, phone = udp_client()
    no_gravity = [apps.sensagram_datagram("android.sensor.gyroscope", GYRO), apps.sensors2osc("accelerometer", G30)]
    # Datagrams keep coming for 5 s and more, none of them gravity: one line says what to do.
    deadline = time.monotonic() + 15
    while True:
        phone.send(*no_gravity)
        try:
            c.wait_output("none with gravity", stream="err", timeout=0.1)
            break
        except AssertionError:
            assert time.monotonic() < deadline, c.stderr
    phone.send(*no_gravity)
    assert "turn on Gravity in the app" in c.stderr and c.stderr.count("none with gravity") == 1
    assert "none with gravity (saw gyroscope, /accelerometer)" in c.stderr  # each sensor that did come
    assert dark(d.status()) and d.status()["frames"]["accepted"] == 0
    assert c.interrupt() == 1  # a run that sent nothing fails, saying why
    assert c.stderr.strip().endswith("sent nothing before it was stopped: the phone app gave no vector"), c.stderr


def test_zigsim_json_from_an_iphone_with_flip(udp_client) -> None:
    d, c, phone = udp_client("--flip")
    keep_sending(d, phone, [apps.zigsim_json(IOS30, accel=(0.3, 0.3, 0.3))], right(SIN30))
    assert c.interrupt() == 0


def test_zigsim_osc_bundle_with_flip(udp_client) -> None:
    d, c, phone = udp_client("--flip")
    keep_sending(d, phone, [apps.zigsim_osc(IOS30, accel=(0.3, 0.3, 0.3))], right(SIN30))
    assert c.interrupt() == 0


def test_sensors2osc_gravity_message(udp_client) -> None:
    d, c, phone = udp_client()
    keep_sending(d, phone, [apps.sensors2osc("accelerometer", GYRO), apps.sensors2osc("gravity", G30_LEFT)], left(SIN30))
    assert c.interrupt() == 0


def test_gyrosc_bundle_uses_grav_with_flip(udp_client) -> None:
    d, c, phone = udp_client("--flip")
    keep_sending(d, phone, [apps.gyrosc_bundle(IOS30, gyro=GYRO)], right(SIN30))
    assert c.interrupt() == 0


def test_forced_format_and_osc_address(udp_client) -> None:
    d, c, phone = udp_client("--format", "osc", "--osc-address", "/accelerometer")
    keep_sending(d, phone, [apps.sensors2osc("gravity", GYRO), apps.sensors2osc("accelerometer", G30)], right(SIN30))
    phone.send(apps.hyperimu_line(G30_LEFT))  # CSV is not OSC: reported, never read
    c.wait_output("bad UDP datagram .*not a valid OSC", stream="err")
    assert c.interrupt() == 0


# ---- UDP: bad input, the hold --------------------------------------------------------------


def test_bad_datagrams_are_counted_not_printed_one_by_one_and_never_move_the_leds(udp_client) -> None:
    d, c, phone = udp_client()
    keep_sending(d, phone, [apps.hyperimu_line(G30)], right(SIN30))
    empty_osc_element = b"#bundle\x00" + b"\x00" * 7 + b"\x01" + b"\x00" * 4  # python-osc would log a warning for it
    junk = [b"garbage", b"{not json", b"/gravity", b"1.5,2", b"\xff\xfe\x00", b"0,0,0", b'{"values":[1,2,"x"]}', empty_osc_element]
    for _ in range(30):
        phone.send(*junk)
    phone.send(apps.hyperimu_line(G30))  # the LEDs still show the last good reading
    d.wait_for(right(SIN30))
    c.wait_output("bad UDP datagram 'garbage'", stream="err")
    # The rest are held back, then counted in one line when the 5 s quiet period ends.
    c.wait_output(r"\d+ bad UDP datagrams in the last 5 s \(\d+ in all\)", stream="err", timeout=10)
    assert c.proc.poll() is None
    assert c.stderr.count("bad UDP datagram") == 2  # the first and one summary: not 210 lines
    assert "Traceback" not in c.stderr and "WARNING" not in c.stderr
    assert d.status()["frames"]["rejected"] == 0  # nothing bad reached the daemon
    assert c.interrupt() == 0


def test_a_phone_that_stops_sending_lets_the_leds_go_dark(udp_client) -> None:
    d, c, phone = udp_client("--hold", "1")
    keep_sending(d, phone, [apps.hyperimu_line(G30)], right(SIN30))
    phone.send(apps.hyperimu_line(G30))
    d.wait_for(dark, timeout=5)  # hold 1 s + the daemon's 1 s stale timeout
    assert c.proc.poll() is None and d.status()["client"] is not None  # still connected, just silent
    keep_sending(d, phone, [apps.hyperimu_line(G30_LEFT)], left(SIN30))
    assert c.interrupt() == 0


# ---- Sensor Logger (HTTP push) ----------------------------------------------------------------


def post(port: int, body: bytes, path: str = "/data") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@pytest.fixture
def sensorlogger_client(start_daemon, run_client):
    def start(*extra: str):
        d = start_daemon()
        port = free_port(socket.SOCK_STREAM)
        c = run_client("sensorlogger", "--listen", f"127.0.0.1:{port}", "--url", d.url, *extra)
        c.wait_output("listening for Sensor Logger")
        return d, c, port

    return start


def _ipv6_loopback_port() -> int | None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
            return s.getsockname()[1]
    except OSError:
        return None


def test_sensorlogger_on_ipv6_loopback_names_a_url_that_works(start_daemon, run_client) -> None:
    port = _ipv6_loopback_port()
    if port is None:
        pytest.skip("no IPv6 loopback here")
    d = start_daemon()
    c = run_client("sensorlogger", "--listen", f"[::1]:{port}", "--url", d.url)
    c.wait_output(rf"listening for Sensor Logger's HTTP push on \[::1\]:{port}: push URL http://\[::1\]:{port}/$")
    conn = http.client.HTTPConnection("::1", port, timeout=5)
    conn.request("POST", "/", body=apps.sensorlogger_body([("gravity", 1, G30)]))
    assert conn.getresponse().status == 200
    conn.close()
    d.wait_for(right(SIN30))
    assert c.interrupt() == 0


def test_sensorlogger_push_uses_the_newest_gravity_sample(sensorlogger_client) -> None:
    d, c, port = sensorlogger_client()
    batch = apps.sensorlogger_body(
        [("accelerometer", 30, (2.0, 2.0, 2.0)), ("gravity", 10, G30_LEFT), ("gravity", 20, G30), ("gyroscope", 25, GYRO)]
    )
    d.wait_for(lambda s: post(port, batch, "/any/path") == 200 and right(SIN30)(s))
    assert post(port, apps.sensorlogger_body([])) == 200  # "Tap to Test Pushing"
    assert post(port, b"this is not json") == 200  # answered at once, reported, skipped
    c.wait_output("bad Sensor Logger POST 'this is not json'", stream="err")
    d.wait_for(lambda s: post(port, batch) == 200 and right(SIN30)(s))
    assert d.status()["frames"]["rejected"] == 0
    assert c.interrupt() == 0


def test_sensorlogger_batch_arriving_late_is_ignored(sensorlogger_client, tmp_path) -> None:
    """A batch older (by its readings' time) than the one applied never reaches the daemon:
    the recording of every vector sent has none of it."""
    record = tmp_path / "sent.csv"
    d, c, port = sensorlogger_client("--record", str(record))
    assert post(port, apps.sensorlogger_body([("gravity", 2_000_000_000, G30)], message_id=2)) == 200
    d.wait_for(right(SIN30))
    assert post(port, apps.sensorlogger_body([("gravity", 1_000_000_000, G30_LEFT)], message_id=1)) == 200  # late
    newer = (0.0, 8.496, 4.905)  # 60 degrees right
    assert post(port, apps.sensorlogger_body([("gravity", 3_000_000_000, newer)], message_id=3)) == 200
    d.wait_for(right(0.866))  # the batches are read in turn: the late one has been read by now
    assert c.interrupt() == 0
    rows = [line.split(",") for line in record.read_text().splitlines() if line[:1].isdigit()]
    assert rows and all(float(y) > 0 for _, _, y, _ in rows), rows  # never the late batch's left tilt


def test_sensorlogger_on_an_iphone_without_standardise_needs_flip(sensorlogger_client) -> None:
    d, c, port = sensorlogger_client("--flip")
    ios = tuple(9.81 * v for v in IOS30)
    batch = apps.sensorlogger_body([("gravity", 1, ios)])
    d.wait_for(lambda s: post(port, batch) == 200 and right(SIN30)(s))
    assert c.interrupt() == 0


def test_sensorlogger_accelerometer_alone_is_not_gravity(sensorlogger_client) -> None:
    d, c, port = sensorlogger_client()
    assert post(port, apps.sensorlogger_body([("accelerometer", 1, G30)])) == 200
    c.wait_output("turn on Gravity", stream="err")
    assert dark(d.status())
    assert c.interrupt() == 1  # nothing was sent: a failure, with its reason
    assert "sent nothing before it was stopped" in c.stderr


# ---- SensorServer ----------------------------------------------------------------------------


def test_sensorserver_source(start_daemon, run_client, fake_sensorserver) -> None:
    d = start_daemon()
    phone = fake_sensorserver(values=[0.0, -4.905, 8.496, 0.1])
    c = run_client("sensorserver", f"127.0.0.1:{phone.port}", "--url", d.url)
    d.wait_for(left(SIN30, 1e-3))
    assert phone.paths == ["/sensor/connect?type=android.sensor.gravity"]
    assert c.interrupt() == 0
    assert phone.left.wait(5) and phone.closed_with == [1000]  # a normal close on Ctrl-C, not 1011 (internal error)


def test_sensorserver_is_closed_normally_when_the_client_is_done(start_daemon, fake_sensorserver) -> None:
    d = start_daemon()
    phone = fake_sensorserver()
    r = run_client_to_end("sensorserver", f"127.0.0.1:{phone.port}", "--url", d.url, "--count", "5")
    assert r.returncode == 0, r.stderr
    assert phone.left.wait(5) and phone.closed_with == [1000]


def test_sensorserver_several_sensors_on_one_socket(start_daemon, run_client, fake_sensorserver) -> None:
    d = start_daemon()
    messages = [
        apps.sensorserver_message(GYRO, "android.sensor.gyroscope"),
        apps.sensorserver_message(G30, "android.sensor.gravity"),
        apps.sensorserver_message((9.0, 0.1, 0.1), "android.sensor.accelerometer"),
    ]
    phone = fake_sensorserver(messages=messages)
    url = f'ws://127.0.0.1:{phone.port}/Sensors/Connect?types=["android.sensor.gyroscope","android.sensor.gravity","android.sensor.accelerometer"]'
    c = run_client("sensorserver", url, "--url", d.url)
    d.wait_for(right(SIN30, 1e-3))
    seen = d.status()["frames"]["accepted"]
    # 30 more frames later, still gravity: the other sensors' messages never reached the LEDs.
    assert right(SIN30, 1e-3)(d.wait_for(lambda s: s["frames"]["accepted"] > seen + 30))
    assert c.interrupt() == 0


def test_sensorserver_bad_messages_are_reported_once_and_never_move_the_leds(start_daemon, run_client, fake_sensorserver) -> None:
    d = start_daemon()
    messages = ["{not json", apps.sensorserver_message(G30), '{"values": [1.0, 2.0], "timestamp": 1, "accuracy": 3}', '{"values": [0, "x", 1]}']
    phone = fake_sensorserver(messages=messages)
    c = run_client("sensorserver", f"127.0.0.1:{phone.port}", "--url", d.url)
    d.wait_for(right(SIN30, 1e-3))
    c.wait_output("bad SensorServer message", stream="err")
    seen = d.status()["frames"]["accepted"]
    assert right(SIN30, 1e-3)(d.wait_for(lambda s: s["frames"]["accepted"] > seen + 30))  # ~45 bad ones later
    assert c.stderr.count("bad SensorServer message") == 1  # the rest wait for the 5 s summary
    assert d.status()["frames"]["rejected"] == 0 and "Traceback" not in c.stderr
    assert c.interrupt() == 0


@pytest.mark.parametrize("code, words", [(4001, "no such sensor"), (4006, "not a valid JSON array"), (4007, "at least two"), (4009, "permission")])
def test_sensorserver_close_codes_are_explained(start_daemon, fake_sensorserver, code: int, words: str) -> None:
    d = start_daemon()
    phone = fake_sensorserver(close_code=code)
    r = run_client_to_end("sensorserver", f"127.0.0.1:{phone.port}", "--url", d.url)
    assert r.returncode == 1
    assert words in r.stderr and str(code) in r.stderr and "Traceback" not in r.stderr


# ---- phyphox ---------------------------------------------------------------------------------


def test_phyphox_starts_the_experiment_and_skips_nulls(start_daemon, run_client, fake_phyphox) -> None:
    d = start_daemon()
    c = run_client("phyphox", f"127.0.0.1:{fake_phyphox.port}", "--url", d.url, "--rate", "50")
    d.wait_for(right(SIN30, 1e-2))
    assert "/control?cmd=start" in fake_phyphox.requests
    assert fake_phyphox.requests[0] == "/get?accX&accY&accZ&acc_time"
    d.wait_for(lambda s: any("|acc_time" in r for r in fake_phyphox.requests))  # incremental from then on
    assert d.status()["frames"]["rejected"] == 0  # nulls never reached the daemon
    assert c.interrupt() == 0


def test_phyphox_pause_lets_the_leds_go_dark_and_resume_lights_them(start_daemon, run_client, fake_phyphox) -> None:
    d = start_daemon()
    # A long --hold: a pause phyphox reports is no silence to bridge, so the LEDs go dark at the daemon's 1 s.
    c = run_client("phyphox", f"127.0.0.1:{fake_phyphox.port}", "--url", d.url, "--rate", "50", "--hold", "30")
    d.wait_for(right(SIN30, 1e-2))
    fake_phyphox.measuring = False  # the user pauses; /get keeps answering the last values
    c.wait_output("phyphox is not measuring")
    d.wait_for(dark, timeout=4)
    fake_phyphox.measuring = True
    c.wait_output("measuring again")
    d.wait_for(right(SIN30, 1e-2))
    assert c.stdout.count("phyphox is not measuring") == 1
    assert c.interrupt() == 0


def test_phyphox_that_stops_answering_is_waited_for(start_daemon, run_client, fake_phyphox) -> None:
    d = start_daemon()
    c = run_client("phyphox", f"127.0.0.1:{fake_phyphox.port}", "--url", d.url, "--rate", "50")
    d.wait_for(right(SIN30, 1e-2))
    fake_phyphox.failing = True
    c.wait_output("HTTP 503; trying again")
    d.wait_for(dark, timeout=6)
    fake_phyphox.failing = False
    c.wait_output("phyphox answers again")
    d.wait_for(right(SIN30, 1e-2))
    assert c.interrupt() == 0


def test_phyphox_reads_every_sample_once_and_tries_port_80_first(fake_phyphox, monkeypatch) -> None:
    from gravity_led.client import phones

    closed = free_port(socket.SOCK_STREAM)
    monkeypatch.setattr(phones, "PHYPHOX_PORTS", (closed, fake_phyphox.port))  # stand-ins for 80 and 8080
    fake_phyphox.measuring = True
    fake_phyphox.nulls_first = 0

    async def collect() -> list:
        got = []
        async with contextlib.aclosing(phones.phyphox_source("127.0.0.1", rate_hz=100, notify=lambda m: None)) as src:
            async for v in src:
                got.append(v)
                if len(got) >= 40:
                    return got
        return got

    got = asyncio.run(asyncio.wait_for(collect(), 20))
    served = [(x, y, z) for _, x, y, z in fake_phyphox.samples]
    first = served.index(tuple(got[0]))
    assert [tuple(v) for v in got] == served[first : first + 40]  # none repeated, none skipped
    assert fake_phyphox.requests[0] == "/get?accX&accY&accZ&acc_time"


def test_phyphox_no_answer_on_either_port_is_one_sentence(monkeypatch) -> None:
    from gravity_led.client import ClientError, phones

    a, b = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    monkeypatch.setattr(phones, "PHYPHOX_PORTS", (a, b))

    async def first() -> None:
        async for _ in phones.phyphox_source("127.0.0.1", timeout_s=1):
            break

    with pytest.raises(ClientError, match=rf"phyphox at http://127.0.0.1:{a} or http://127.0.0.1:{b} is not answering"):
        asyncio.run(first())


def test_a_phone_app_that_does_not_answer_yet_is_retried_like_the_daemon(start_daemon, fake_sensorserver) -> None:
    """The app's server started after the client (or the phone woke up late): the client waits for it,
    says so once, and streams when it answers; --max-retries N gives up after N+1 attempts."""
    from tests.support.client_fixtures import ClientProcess, run_client_to_end
    from tests.support.harness import free_port

    d = start_daemon()
    port = free_port()
    c = ClientProcess(("sensorserver", f"127.0.0.1:{port}", "--url", d.url))
    try:
        c.wait_output(r"is not answering .*; retrying \(Ctrl-C to stop\)")
        fake_sensorserver(port=port)
        d.wait_for(lambda s: s["frames"]["accepted"] >= 5)
        assert c.interrupt() == 0, c.stderr
    finally:
        c.kill()
    assert c.stdout.count("retrying") == 1, c.stdout  # said once, not on every attempt
    r = run_client_to_end("phyphox", f"127.0.0.1:{free_port()}", "--url", d.url, "--max-retries", "1")
    assert r.returncode == 1 and r.stderr.strip().endswith("; gave up after 2 attempts"), r.stderr
    assert "phyphox at http://127.0.0.1:" in r.stderr and r.stderr.count("\n") == 1
