"""End to end: the real daemon process, mock pins, real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gravity_led.daemon.protocol import BUSY_CLOSE_CODE, BUSY_REASON, encode_binary, encode_subscribe, encode_text

from tests.support.harness import ROOT, clean_env
from tests.support.harness import roll, scaled
from tests.support.net import approx_leds as leds_near, leds_of


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def approx_leds(right: float, left: float):
    """A ``wait_for`` probe: the LEDs at (right, left)."""
    return lambda s: leds_near(leds_of(s), (right, left))


def test_text_and_binary_frames_drive_the_leds(daemon):
    assert daemon.leds() == (0.0, 0.0)  # off at start

    async def go():
        async with connect(daemon.url, compression=None) as ws:
            await ws.send(encode_text(roll(30)))
            await asyncio.to_thread(daemon.wait_for, approx_leds(0.5, 0.0))
            await ws.send(encode_binary(roll(-90)))  # float32
            await asyncio.to_thread(daemon.wait_for, approx_leds(0.0, 1.0))
            await ws.send(encode_binary(roll(-30), double=True))
            await asyncio.to_thread(daemon.wait_for, approx_leds(0.0, 0.5))
            # The article's app: percent of g, Java float syntax.
            await ws.send("0.0 70.71068 70.71068")
            s = await asyncio.to_thread(daemon.wait_for, lambda s: s["leds"]["right"] > 0.7)
            assert s["client"].startswith("127.0.0.1:")
            assert s["frames"] == {"accepted": 4, "rejected": 0, "superseded": 0}
        # Disconnect: LEDs off, slot free.
        s = await asyncio.to_thread(daemon.wait_for, lambda s: s["client"] is None)
        assert s["leds"] == {"right": 0.0, "left": 0.0}

    run(go())


def test_any_path_is_accepted(daemon):
    async def go():
        async with connect(daemon.url + "/any/path?x=1") as ws:
            await ws.send("0 1 0")
            await asyncio.to_thread(daemon.wait_for, approx_leds(1.0, 0.0))

    run(go())


def test_second_client_is_refused_with_1013_and_first_is_undisturbed(daemon):
    async def go():
        async with connect(daemon.url) as first:
            await first.send("0 1 1")
            await asyncio.to_thread(daemon.wait_for, lambda s: s["leds"]["right"] > 0.7)
            async with connect(daemon.url) as second:
                with pytest.raises(ConnectionClosed):
                    await second.recv()
                assert second.close_code == BUSY_CLOSE_CODE
                assert second.close_reason == BUSY_REASON
            await first.send("0 -1 0")  # still ours
            await asyncio.to_thread(daemon.wait_for, approx_leds(0.0, 1.0))
        # The next client is accepted as soon as the holder leaves.
        async with connect(daemon.url) as third:
            await third.send("0 1 0")
            s = await asyncio.to_thread(daemon.wait_for, approx_leds(1.0, 0.0))
            assert s["busy_refused"] == 1

    run(go())


def test_a_connection_that_never_handshakes_does_not_hold_the_slot(start_daemon):
    d = start_daemon("--handshake-timeout-s", "0.5")
    raw = socket.create_connection(("127.0.0.1", d.port))
    raw.sendall(b"GET / HTTP/1.1\r\n")  # and never finishes

    async def go():
        async with connect(d.url) as ws:
            await ws.send("0 1 0")
            await asyncio.to_thread(d.wait_for, approx_leds(1.0, 0.0))

    run(go())
    raw.settimeout(5)
    assert raw.recv(100) == b""  # the daemon dropped it after its handshake timeout
    raw.close()


def test_bad_frames_are_answered_counted_and_change_nothing(daemon):
    async def go():
        async with connect(daemon.url) as ws:
            await ws.send("0 1 1")
            await asyncio.to_thread(daemon.wait_for, lambda s: s["frames"]["accepted"] == 1)
            before = daemon.leds()
            for bad in ["1 2", "a b c", "NaN 1 2", "1e400 1 1", "0 0 0", b"\x00" * 5]:
                await ws.send(bad)
            errors = [json.loads(await ws.recv()) for _ in range(5)]  # a burst of 5 is answered
            assert [e["error"] for e in errors] == ["wrong_count", "not_a_number", "not_finite", "not_finite", "zero_vector"]
            assert all(e["type"] == "error" and e["message"] for e in errors)
            s = await asyncio.to_thread(daemon.wait_for, lambda s: s["frames"]["rejected"] == 6)
            assert (s["leds"]["right"], s["leds"]["left"]) == before
            await ws.send("0 -1 0")  # the connection is still open and in charge
            await asyncio.to_thread(daemon.wait_for, approx_leds(0.0, 1.0))

    run(go())


def test_error_replies_are_rate_limited(daemon):
    async def go():
        async with connect(daemon.url) as ws:
            for _ in range(200):
                await ws.send("bad")
            await asyncio.to_thread(daemon.wait_for, lambda s: s["frames"]["rejected"] == 200)
            await ws.send('{"type": "subscribe", "rate": 20}')
            errors = 0
            while True:
                msg = json.loads(await ws.recv())
                if msg["type"] == "state":
                    break
                errors += 1
            assert 1 <= errors <= 10

    run(go())


def test_oversize_frame_closes_with_1009_and_daemon_keeps_serving(daemon):
    async def go():
        async with connect(daemon.url, max_size=None) as ws:
            await ws.send("0 1 0" + " " * 2000)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1009
        async with connect(daemon.url) as ws:
            await ws.send("0 -1 0")
            await asyncio.to_thread(daemon.wait_for, approx_leds(0.0, 1.0))

    run(go())


def test_stale_data_failsafe_turns_the_leds_off(start_daemon):
    d = start_daemon("--stale-after", "0.3")

    async def go():
        async with connect(d.url) as ws:
            await ws.send("0 1 0")
            await asyncio.to_thread(d.wait_for, approx_leds(1.0, 0.0))
            t = time.monotonic()
            s = await asyncio.to_thread(d.wait_for, approx_leds(0.0, 0.0), 3)
            assert time.monotonic() - t < scaled(2.0)
            assert s["client"] is not None  # still connected: only the data went stale
            await ws.send("0 1 0")  # and fresh data lights them again
            await asyncio.to_thread(d.wait_for, approx_leds(1.0, 0.0))

    run(go())


def test_telemetry_is_opt_in(daemon):
    async def go():
        async with connect(daemon.url) as ws:
            await ws.send("0 1 0")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.3)  # nothing unsolicited
            await ws.send(encode_subscribe(20))
            msg = json.loads(await ws.recv())
            assert msg["type"] == "state"
            assert msg["leds"] == {"right": 1.0, "left": 0.0}
            assert msg["frames"]["accepted"] == 1

    run(go())


def test_latest_value_wins_under_a_flood_with_slow_pins(start_daemon):
    d = start_daemon("--mock-write-delay-us", "2000", "--stale-after", "30")
    n = 3000

    async def go():
        async with connect(d.url) as ws:
            for i in range(n):
                await ws.send(encode_text(roll(-80 + 160 * i / (n - 1))))
            # Every frame parsed, or (if the daemon fell behind: a read of over BACKLOG_FRAMES) skipped as superseded.
            s = await asyncio.to_thread(d.wait_for, lambda s: s["frames"]["accepted"] + s["frames"]["superseded"] == n, 10)
            last = math.sin(math.radians(80))
            s = await asyncio.to_thread(d.wait_for, lambda s: abs(s["leds"]["right"] - last) < 1e-9, 1)
            # Coalesced: far fewer pin writes than frames.
            assert s["pin_writes"] < n / 2

    run(go())


def test_fast_path_leaves_pings_fragments_and_bad_frames_to_websockets(daemon):
    """Simple frames skip websockets' parser (daemon/framing.py) and a fast
    sender's reads are held to one per tick; everything else in the same
    stream must still be handled exactly: pings answered, fragmented
    messages assembled, bad frames rejected, all counted, last one shown."""

    async def go():
        async with connect(daemon.url) as ws:
            pongs, good, bad = [], 0, 0
            for i in range(300):
                await ws.send(encode_text(roll(10)))
                good += 1
                if i % 60 == 0:
                    pongs.append(await ws.ping())
                if i % 70 == 0:
                    await ws.send(["0 ", "-1 ", "0"])  # one message in three fragments
                    good += 1
                if i % 45 == 0:
                    await ws.send("not a vector")
                    bad += 1
            await ws.send(encode_binary(roll(-30)))
            good += 1
            for p in pongs:
                await asyncio.wait_for(p, 5)
            s = await asyncio.to_thread(daemon.wait_for, lambda s: s["frames"]["accepted"] == good, 10)
            assert s["frames"]["rejected"] == bad
            s = await asyncio.to_thread(daemon.wait_for, lambda s: s["leds"]["left"] > 0.3 and s["leds"]["right"] == 0, 2)

    run(go())


def test_mapping_options(start_daemon):
    d = start_daemon("--full-scale-deg", "45", "--invert", "--dead-zone-deg", "2")

    async def go():
        async with connect(d.url) as ws:
            await ws.send(encode_text(roll(60)))
            await asyncio.to_thread(d.wait_for, approx_leds(0.0, 1.0))
            await ws.send(encode_text(roll(1)))
            await asyncio.to_thread(d.wait_for, approx_leds(0.0, 0.0))

    run(go())


def test_smoothing_eases_towards_the_target(start_daemon):
    d = start_daemon("--smoothing-s", "0.2", "--stale-after", "10")

    async def go():
        async with connect(d.url) as ws:
            await ws.send("0 1 0")
            seen = await asyncio.to_thread(d.wait_for, lambda s: 0.05 < s["leds"]["right"] < 0.95)
            assert seen["leds"]["left"] == 0.0
            await asyncio.to_thread(d.wait_for, lambda s: s["leds"]["right"] > 0.999)

    run(go())


def test_http_status_and_healthz(daemon):
    code, body = daemon.get("/healthz")
    assert code == 200
    s = daemon.status()
    assert s["leds"] == {"right": 0.0, "left": 0.0} and s["client"] is None
    assert s["frames"] == {"accepted": 0, "rejected": 0, "superseded": 0}
    assert s["pin_factory"] == "mock" and s["uptime_s"] >= 0
    assert daemon.get("/nope")[0] == 404


def test_status_answers_while_a_client_floods(daemon):
    async def go():
        async with connect(daemon.url) as ws:
            stop = asyncio.Event()

            async def flood():
                i = 0
                while not stop.is_set():
                    await ws.send(encode_text(roll(i % 90)))
                    i += 1
                    if i % 50 == 0:
                        await asyncio.sleep(0)

            task = asyncio.create_task(flood())
            t = time.monotonic()
            for _ in range(5):
                await asyncio.to_thread(daemon.status)
            stop.set()
            await task
            assert time.monotonic() - t < scaled(5)

    run(go())


def test_sigterm_turns_off_and_exits_zero_within_a_second(daemon):
    async def go():
        async with connect(daemon.url) as ws:
            await ws.send("0 1 0")
            await asyncio.to_thread(daemon.wait_for, approx_leds(1.0, 0.0))
            t = time.monotonic()
            daemon.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1001  # going away
            rc = await asyncio.to_thread(daemon.proc.wait, 5)
            assert rc == 0, daemon.logs()
            assert time.monotonic() - t < scaled(1.0)

    run(go())
    assert "LEDs off" in daemon.logs()


def _daemon_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gravity_led.daemon", *args],
        cwd=ROOT,
        env=clean_env(GRAVITY_LED_CONFIG="/dev/null", **(env or {})),
        capture_output=True,
        text=True,
        timeout=20,
    )


@pytest.mark.parametrize(
    "args, env, words",
    [
        (["--port", "http"], None, "port"),
        (["--port", "70000"], None, "port"),
        (["--axis", "w"], None, "axis"),
        (["--full-scale-deg", "0"], None, "full_scale_deg"),
        (["--pin-factory", "mock", "--right-pin", "GPIO99"], None, "GPIO99"),
        ([], {"GRAVITY_LED_STALE_AFTER_S": "soon"}, "GRAVITY_LED_STALE_AFTER_S"),
        ([], {"GRAVITY_LED_PIN_FACTORY": "nope"}, "pin_factory"),
        (["--pin-factory", "mock", "--certfile", "/nonexistent.pem", "--keyfile", "/nonexistent.key"], None, "does not exist"),
    ],
)
def test_bad_configuration_is_one_clear_line(args, env, words):
    r = _daemon_cli(*args, env=env)
    assert r.returncode != 0
    out = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr
    assert any(words in line for line in out), r.stderr
    # the last line is the sentence, or (a flag argparse refused) the sentence and then the pointer to --help
    if out[-1] == "Run 'gravity-led-daemon --help' for the options.":
        out = out[:-1]
    assert out[-1].startswith("gravity-led-daemon: "), r.stderr


def test_no_gpio_says_how_to_use_mock_pins():
    r = _daemon_cli()
    if r.returncode == 0:
        pytest.skip("this machine has working GPIO")
    assert "Traceback" not in r.stderr
    assert "--pin-factory mock" in r.stderr


def test_port_in_use_is_one_clear_line(daemon):
    r = _daemon_cli("--pin-factory", "mock", "--host", "127.0.0.1", "--port", str(daemon.port))
    assert r.returncode == 1
    assert "already in use" in r.stderr and "Traceback" not in r.stderr


def test_config_file_and_precedence(tmp_path, start_daemon):
    toml = tmp_path / "daemon.toml"
    toml.write_text('axis = "x"\ninvert = true\nstale_after_s = 9\n')
    # File says invert; the environment overrides the axis; a flag overrides the env.
    d = start_daemon("--config", str(toml), "--no-invert", env={"GRAVITY_LED_AXIS": "z"})
    s = d.status()
    assert s["mapping"]["axis"] == "z" and s["mapping"]["invert"] is False and s["stale_after_s"] == 9
    bad = tmp_path / "bad.toml"
    bad.write_text("colour = 'green'\n")
    r = _daemon_cli("--config", str(bad))
    assert r.returncode == 2 and "unknown option 'colour'" in r.stderr


def test_help_describes_every_option():
    r = _daemon_cli("--help")
    assert r.returncode == 0
    from gravity_led.daemon.config import Config
    import dataclasses

    flat = "".join(r.stdout.split())  # argparse wraps long help lines
    for f in dataclasses.fields(Config):
        assert "--" + f.name.replace("_", "-") in r.stdout
        assert "GRAVITY_LED_" + f.name.upper() in flat


@pytest.mark.parametrize(
    "content, words",
    [
        (None, "is a directory, not a regular file"),
        ("caf\u00e9-au-lait-token".encode(), "must hold one token of at least 8 printable ASCII characters without spaces"),
        (b"two words", "must hold one token of at least 8 printable ASCII characters without spaces"),
        (b"\xff\xfe-not-utf8", "is not UTF-8 text"),
    ],
    ids=["directory", "not-ascii", "space", "not-utf8"],
)
def test_a_bad_token_file_is_a_configuration_error(tmp_path, content, words):
    """Every token file problem is one
    sentence and exit 2, like every other configuration error."""
    path = tmp_path / "token"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    r = _daemon_cli("--pin-factory", "mock", "--port", "0", "--token-file", str(path))
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [f"gravity-led-daemon: token file {path} {words}"]


def test_a_token_file_with_a_bom_is_accepted(tmp_path, start_daemon):
    path = tmp_path / "token"
    path.write_bytes(b"\xef\xbb\xbfnotepad-token\r\n")  # as Windows Notepad saves it
    d = start_daemon("--token-file", str(path))
    assert d.get("/status", headers={"Authorization": "Bearer notepad-token"})[0] == 200
    assert d.get("/status", headers={"Authorization": "Bearer notepad-token-x"})[0] == 401
    # The BOM is not part of the token: sent along, it is not even a well-formed header.
    assert d.get("/status", headers={"Authorization": "Bearer \ufeffnotepad-token".encode().decode("latin-1")})[0] == 400


def test_a_fifo_or_a_huge_config_file_is_refused_at_start(tmp_path):
    fifo = tmp_path / "daemon.toml"
    os.mkfifo(fifo)
    r = _daemon_cli("--config", str(fifo), "--pin-factory", "mock")
    assert r.returncode == 2
    assert r.stderr.strip() == f"gravity-led-daemon: config file {fifo} is a FIFO (named pipe), not a regular file"
    big = tmp_path / "big.toml"
    big.write_bytes(b"# " + b"x" * (1 << 20) + b"\n")
    r = _daemon_cli("--config", str(big), "--pin-factory", "mock")
    assert r.returncode == 2 and "more than the 1,048,576 it may have" in r.stderr
