"""The client CLI against the real daemon process (mock pins, loopback), as a user runs it."""

from __future__ import annotations

import math
import re
import socket

import pytest

from gravity_led.client.sources import KEEPALIVE_S
from tests.support.client_fixtures import run_client, run_client_to_end  # noqa: F401 (fixtures)

SIN30 = 0.5
RIGHT_53 = 5 / math.sqrt(89)  # send 0 5 8


def near(value: float, target: float, tol: float = 0.01) -> bool:
    return abs(value - target) <= tol


def right(target: float, tol: float = 0.01):
    return lambda s: near(s["leds"]["right"], target, tol) and s["leds"]["left"] == 0


def left(target: float, tol: float = 0.01):
    return lambda s: near(s["leds"]["left"], target, tol) and s["leds"]["right"] == 0


def no_client(s: dict) -> bool:
    return s["client"] is None


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_sim_drives_the_leds_and_ctrl_c_closes_cleanly(start_daemon, run_client, binary: bool) -> None:
    d = start_daemon()
    extra = ["--binary"] if binary else []
    c = run_client("sim", "--url", d.url, "--pattern", "steps", "--steps", "30", "--rate", "100", *extra)
    d.wait_for(right(SIN30, 1e-3 if binary else 1e-9))
    c.wait_output(r"connected .*right=50%")
    status = d.status()
    assert status["frames"]["rejected"] == 0
    assert c.interrupt() == 0
    d.wait_for(no_client)
    assert "Traceback" not in c.stderr and c.stderr == ""
    assert re.search(r"sent \d+ frames", c.stdout)


def test_sim_rock_breathes_both_ways(start_daemon, run_client) -> None:
    d = start_daemon()
    c = run_client("--url", d.url, "--period", "1", "--rate", "100")  # no subcommand = sim, default pattern rock
    d.wait_for(lambda s: s["leds"]["right"] > 0.9, timeout=5)
    d.wait_for(lambda s: s["leds"]["left"] > 0.9, timeout=5)
    assert c.interrupt() == 0


def test_percent_mode_is_the_articles_format(start_daemon) -> None:
    d = start_daemon()
    r = run_client_to_end("sim", "--url", d.url, "--pattern", "steps", "--steps", "-30", "--percent", "--count", "20", "--record", "/dev/null")
    assert r.returncode == 0, r.stderr
    s = d.status()
    assert s["frames"]["accepted"] >= 20 and s["frames"]["rejected"] == 0


def test_count_and_record_then_replay_round_trip(start_daemon, run_client, tmp_path) -> None:
    d = start_daemon()
    rec = tmp_path / "session.csv"
    r = run_client_to_end("sim", "--url", d.url, "--pattern", "sweep", "--period", "0.5", "--rate", "200", "--count", "150", "--record", str(rec))
    assert r.returncode == 0, r.stderr
    assert "sent 150 frames" in r.stdout
    lines = rec.read_text().splitlines()
    assert lines[0] == "t,x,y,z" and len(lines) == 151
    t_last = float(lines[-1].split(",")[0])
    assert t_last == pytest.approx(149 / 200, abs=0.05)
    d.wait_for(no_client)
    before = d.status()["frames"]["accepted"]
    r = run_client_to_end("replay", str(rec), "--url", d.url, "--speed", "2")
    assert r.returncode == 0, r.stderr
    s = d.wait_for(lambda s: s["frames"]["accepted"] >= before + 150)
    assert s["frames"]["rejected"] == 0


def test_replay_plays_a_recording_in_order(start_daemon, run_client, tmp_path) -> None:
    d = start_daemon()
    rec = tmp_path / "tilt.csv"
    # Right for 0.6 s, then left for 0.6 s, then right again (sparse: the client keeps it alive).
    rec.write_text("t,x,y,z\n0,0,4.905,8.496\n0.6,0,-4.905,8.496\n1.2,0,9.81,0\n1.3,0,9.81,0\n")
    c = run_client("replay", str(rec), "--url", d.url)
    d.wait_for(right(SIN30))
    d.wait_for(left(SIN30))
    d.wait_for(right(1.0))
    assert c.wait() == 0
    d.wait_for(no_client)


def assert_held_through_repeats(d, lit: dict, *, stale_after_s: float, left_duty: float) -> None:
    """The client's keep-alive repeats (every KEEPALIVE_S, under the daemon's
    stale timeout) arrive for over two stale timeouts, and the LEDs never
    blank in between: no pin write since ``lit`` (a blackout and relight
    would be two), and the left LED still at ``left_duty``."""
    repeats = math.ceil(2 * stale_after_s / KEEPALIVE_S) + 1
    n = lit["frames"]["accepted"]
    st = d.wait_for(lambda s: s["frames"]["accepted"] >= n + repeats, timeout=10)
    assert near(st["leds"]["left"], left_duty), st
    assert st["pin_writes"] == lit["pin_writes"], f"the LEDs blanked in between: {st}"


def test_stdin_lines_bad_lines_and_keepalive(start_daemon, run_client) -> None:
    d = start_daemon("--stale-after", "0.5")
    c = run_client("stdin", "--url", d.url, stdin=True)
    c.wait_output("connected to")
    c.write("0 5 8\n")
    d.wait_for(right(RIGHT_53))
    c.write("not a vector\n")
    c.wait_output(r"stdin line 2: 'not' is not a number; skipped", stream="err")
    c.write("0,-5,8\n")
    lit = d.wait_for(left(RIGHT_53))
    # Longer than the daemon's stale timeout without a new line: keep-alive holds the LEDs on.
    assert_held_through_repeats(d, lit, stale_after_s=0.5, left_duty=RIGHT_53)
    c.close_stdin()
    assert c.wait() == 0
    d.wait_for(no_client)


def test_send_reports_the_daemons_verdict(start_daemon) -> None:
    d = start_daemon()
    r = run_client_to_end("send", "0", "5", "8", "--url", d.url)
    assert r.returncode == 0, r.stderr
    assert "right LED 53%, left LED 0%" in r.stdout
    assert d.status()["frames"]["accepted"] == 1
    r = run_client_to_end("send", "0", "-5", "8", "--url", d.url, "--binary")
    assert r.returncode == 0 and "right LED 0%, left LED 53%" in r.stdout


def test_send_with_duration_holds_the_vector(start_daemon, run_client) -> None:
    d = start_daemon("--stale-after", "0.3")
    c = run_client("send", "0", "-5", "8", "--url", d.url, "--duration", "30")
    lit = d.wait_for(left(RIGHT_53))
    assert_held_through_repeats(d, lit, stale_after_s=0.3, left_duty=RIGHT_53)  # the repeats keep it lit
    assert c.interrupt() == 0


def test_reconnects_after_the_daemon_restarts(start_daemon, run_client) -> None:
    d = start_daemon()
    c = run_client("sim", "--url", d.url, "--pattern", "steps", "--steps", "30")
    d.wait_for(right(SIN30))
    port = d.port
    d.stop()
    c.wait_output(r"shutting down|lost|not answering")
    d2 = start_daemon(port=port)
    d2.wait_for(right(SIN30), timeout=10)
    c.wait_output(r"reconnected to")
    assert c.proc.poll() is None
    assert c.interrupt() == 0
    # Said once, not once per retry.
    assert len(re.findall(r"not answering", c.stdout)) <= 1


def test_busy_gives_up_with_exit_3_after_max_retries(start_daemon, run_client) -> None:
    d = start_daemon()
    holder = run_client("sim", "--url", d.url, "--pattern", "steps", "--steps", "30")
    d.wait_for(right(SIN30))
    r = run_client_to_end("sim", "--url", d.url, "--max-retries", "1")
    assert r.returncode == 3
    assert r.stderr.strip().count("\n") == 0 and "in use by another client" in r.stderr
    assert holder.interrupt() == 0


def test_busy_waits_and_takes_over_when_the_leds_are_free(start_daemon, run_client) -> None:
    d = start_daemon()
    holder = run_client("sim", "--url", d.url, "--pattern", "steps", "--steps", "30")
    d.wait_for(right(SIN30))
    waiter = run_client("sim", "--url", d.url, "--pattern", "steps", "--steps", "-30")
    waiter.wait_output("in use by another client")
    assert holder.interrupt() == 0
    d.wait_for(left(SIN30), timeout=10)
    waiter.wait_output("connected to")
    assert waiter.interrupt() == 0
    assert waiter.stdout.count("in use by another client") == 1


def test_phone_app_not_answering_is_one_sentence() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for cmd in ("sensorserver", "phyphox"):
        # Needs a daemon to get as far as the phone: use one that is not there but fails fast.
        r = run_client_to_end(cmd, f"127.0.0.1:{port}", "--url", f"127.0.0.1:{port}", "--max-retries", "0")
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_phone_not_answering_with_daemon_up(start_daemon) -> None:
    d = start_daemon()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for cmd, app in (("sensorserver", "SensorServer"), ("phyphox", "phyphox")):
        # --max-retries 0: one attempt (by default it waits for the app, as for the daemon: test_phone_e2e.py)
        r = run_client_to_end(cmd, f"127.0.0.1:{port}", "--url", d.url, "--max-retries", "0")
        assert r.returncode == 1, r.stderr
        assert f"{app} at" in r.stderr and "not answering" in r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["sim", "--url", "ws://[oops"], 2, "not a valid ws://"),
        (["replay", "/no/such/file.csv"], 1, "does not exist"),
        (["send", "0", "0", "0"], 2, "zero length"),
        (["sim", "--url", "no-such-host.invalid", "--count", "1"], 1, "cannot find the host"),
    ],
)
def test_errors_are_one_sentence_and_nonzero(argv: list[str], code: int, message: str) -> None:
    r = run_client_to_end(*argv)
    assert r.returncode == code
    assert message in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_unreachable_daemon_gives_up_after_max_retries() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run_client_to_end("sim", "--url", f"127.0.0.1:{port}", "--max-retries", "2")
    assert r.returncode == 1
    assert "not answering (connection refused); gave up after 3 attempts" in r.stderr
    assert r.stdout.count("not answering") == 1  # said once, not per retry


def test_quiet_prints_nothing_on_success(start_daemon) -> None:
    d = start_daemon()
    r = run_client_to_end("sim", "--url", d.url, "--count", "5", "--quiet")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""


def test_url_from_environment(start_daemon) -> None:
    d = start_daemon()
    import subprocess
    import sys

    from tests.support.client_fixtures import ROOT, client_env

    r = subprocess.run(
        [sys.executable, "-m", "gravity_led.client", "send", "0", "5", "8"],
        cwd=ROOT, env=client_env(GRAVITY_LED_URL=d.url), capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert r.returncode == 0 and "right LED 53%" in r.stdout


def test_demo_runs_the_whole_system_and_stops_the_daemon() -> None:
    r = run_client_to_end("demo", "--duration", "2", timeout=40)
    assert r.returncode == 0, r.stderr
    m = re.search(r"ws://127\.0\.0\.1:(\d+)", r.stdout)
    assert m, r.stdout
    # The daemon's telemetry reached the live view: the right LED is lit in the first second of "rock".
    assert re.search(r"connected left=0% right=([1-9]\d?|100)%", r.stdout), r.stdout
    assert re.search(r"sent \d+ frames in [12]\.\d+ s", r.stdout), r.stdout
    # The daemon is gone: its port refuses connections.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(m[1])), timeout=1).close()


def test_token_is_sent_and_a_wrong_one_is_explained(start_daemon, tmp_path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret-token-value\n")
    d = start_daemon("--token-file", str(secret))
    r = run_client_to_end("send", "0", "5", "8", "--url", d.url, "--token-file", str(secret))
    assert r.returncode == 0, r.stderr
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token\n")
    r = run_client_to_end("send", "0", "5", "8", "--url", d.url, "--token-file", str(wrong))
    assert r.returncode == 1 and "refused the token" in r.stderr and "--token-file" in r.stderr and r.stderr.count("\n") == 1
    assert "not-the-token" not in r.stdout + r.stderr
    # No token at all: says that one is needed, not that it was wrong.
    r = run_client_to_end("send", "0", "5", "8", "--url", d.url)
    assert r.returncode == 1 and "needs a token" in r.stderr and "--token-file" in r.stderr, r.stderr


@pytest.mark.parametrize("secret", ["caf\u00e9-secret-value", "\u20ac\u20ac-secret-value", "two secret-value"])
def test_a_token_the_client_cannot_send_is_one_sentence_without_the_secret(tmp_path, secret) -> None:
    """The client checks the token as the daemon does, and
    never prints it (it used to, for a token outside Latin-1)."""
    import subprocess
    import sys

    from tests.support.client_fixtures import ROOT, client_env

    path = tmp_path / "token"
    path.write_text(secret, encoding="utf-8")
    for extra_args, env in (
        (["--token-file", str(path)], {}),
        ([], {"GRAVITY_LED_TOKEN_FILE": str(path)}),
        ([], {"GRAVITY_LED_TOKEN": secret}),
    ):
        r = subprocess.run(
            [sys.executable, "-m", "gravity_led.client", "send", "0", "5", "8", "--url", "ws://127.0.0.1:9", *extra_args],
            cwd=ROOT, env=client_env(**env), capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        assert r.returncode == 2, r.stderr
        assert "must hold one token of at least 8 printable ASCII characters without spaces" in r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
        assert "secret-value" not in r.stdout + r.stderr


def test_wss_with_cafile_or_insecure(start_daemon, tmp_path) -> None:
    import subprocess
    import sys

    from tests.support.client_fixtures import ROOT, client_env

    made = subprocess.run(
        [sys.executable, "-m", "gravity_led.daemon", "make-cert", "--host", "127.0.0.1", "--out-dir", str(tmp_path)],
        cwd=ROOT, env=client_env(), capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    d = start_daemon("--certfile", str(cert), "--keyfile", str(key), scheme="https")
    assert d.url.startswith("wss://")
    r = run_client_to_end("send", "0", "5", "8", "--url", d.url)
    assert r.returncode == 1 and "not trusted" in r.stderr and "--cafile" in r.stderr
    r = run_client_to_end("send", "0", "5", "8", "--url", d.url, "--cafile", str(cert))
    assert r.returncode == 0 and "right LED 53%" in r.stdout, r.stderr
    r = run_client_to_end("send", "0", "-5", "8", "--url", d.url, "--insecure")
    assert r.returncode == 0 and "left LED 53%" in r.stdout, r.stderr
