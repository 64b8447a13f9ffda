"""The first hour: what a new user trips over, each against the real processes.

(The terminal itself, in tmux, is tests/e2e/test_terminal.py; the commands of the
README and docs/*.md are tests/system/test_docs.py.)
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.support.client_fixtures import ClientProcess, client_env, run_client, run_client_to_end  # noqa: F401 (fixture)
from tests.support.harness import ROOT, Process, clean_env, free_port, get_status, wait_until

URLS_PHONES = "phones give their motion sensors only to an https:// page"


def _daemon_cli(*args: str, env: dict[str, str] | None = None, python: tuple[str, ...] = (sys.executable,)) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*python, "-m", "gravity_led.daemon", *args],
        cwd=ROOT, env=clean_env(GRAVITY_LED_CONFIG="/dev/null", **(env or {})), capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def _log_line(d, text: str) -> str:
    """The first log line holding ``text``, once the daemon has logged it."""
    d.wait_log(text)
    return next(line for line in d.logs().splitlines() if text in line)


# ---- a daemon without TLS does not send phones to an http:// page ------------------------


def test_without_tls_the_daemon_says_phones_need_https_and_how(start_daemon) -> None:
    d = start_daemon()
    line = _log_line(d, URLS_PHONES)
    assert "make-cert" in line and "certfile" in line
    assert "on a phone" not in d.logs()  # no http:// URL offered to a phone


def test_with_tls_the_daemon_offers_the_https_url(start_daemon, tmp_path: Path) -> None:
    made = _daemon_cli("make-cert", "--host", "127.0.0.1", "--out-dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    d = start_daemon("--certfile", str(tmp_path / "cert.pem"), "--keyfile", str(tmp_path / "key.pem"), scheme="https")
    d.wait_log(f"open https://127.0.0.1:{d.port}/ in a browser on this machine")  # loopback: not a phone's
    assert URLS_PHONES not in d.logs()


# ---- counts -------------------------------------------------------------------------------


def test_disconnect_log_counts_frames_unambiguously(daemon) -> None:
    async def go(frames: list[str]) -> None:
        async with connect(daemon.url) as ws:
            for f in frames:
                await ws.send(f)
            await ws.send('{"type": "subscribe", "rate": 20}')
            await ws.recv()  # the daemon has read everything before it (errors or telemetry)

    asyncio.run(go(["0 1 0"]))
    daemon.wait_log("closed the connection after 1 frame: LEDs off")
    asyncio.run(go(["0 1 0", "abc"]))
    daemon.wait_log("closed the connection after 2 frames (1 accepted, 1 rejected): LEDs off")


def test_at_shutdown_the_log_says_the_daemon_closed_the_connection(daemon) -> None:
    async def go() -> None:
        async with connect(daemon.url) as ws:
            await ws.send("0 1 0")
            await asyncio.to_thread(daemon.wait_for, lambda s: s["frames"]["accepted"] == 1)
            daemon.proc.send_signal(signal.SIGTERM)
            await ws.wait_closed()

    asyncio.run(go())
    assert daemon.proc.wait(5) == 0
    assert "was disconnected (the daemon is stopping) after 1 frame" in daemon.logs()
    assert "closed the connection" not in daemon.logs()


def test_client_counts_in_the_singular(start_daemon) -> None:
    d = start_daemon()
    r = run_client_to_end("sim", "--url", d.url, "--count", "1")
    assert r.returncode == 0 and "sent 1 frame in" in r.stdout, r.stdout + r.stderr


# ---- --max-retries N = N retries, attempts counted right -----------------------------------


@pytest.mark.parametrize("retries, said", [("0", "not retrying (--max-retries 0)"), ("1", "gave up after 2 attempts")])
def test_max_retries_counts_attempts(retries: str, said: str) -> None:
    port = free_port()
    r = run_client_to_end("sim", "--url", f"127.0.0.1:{port}", "--max-retries", retries)
    assert r.returncode == 1 and said in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1


def test_help_says_what_max_retries_does() -> None:
    r = run_client_to_end("sim", "--help")
    flat = " ".join(r.stdout.split())
    assert "retry up to N times" in flat and "N+1 attempts" in flat


# ---- options before the subcommand, URL hint ------------------------------------------------


def test_options_before_the_subcommand_work_against_the_daemon(start_daemon) -> None:
    d = start_daemon()
    r = run_client_to_end("--url", d.url, "-q", "send", "0", "4.9", "8.5")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stderr
    assert d.status()["frames"]["accepted"] == 1
    r = run_client_to_end("--url", d.url, "sim", "--count", "3")
    assert r.returncode == 0 and "sent 3 frames" in r.stdout, r.stderr


def test_url_as_an_argument_gets_a_hint() -> None:
    r = run_client_to_end("sim", "ws://127.0.0.1:9")
    assert r.returncode == 2 and "--url ws://127.0.0.1:9" in r.stderr and "Traceback" not in r.stderr


# ---- send's line as docs/client.md shows it, even in $(...) ------------------------------


def test_send_prints_the_readme_line_when_piped(start_daemon) -> None:
    d = start_daemon()
    r = run_client_to_end("send", "0", "4.9", "8.5", "--url", d.url)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "sent 0.0 4.9 8.5: right LED 50%, left LED 0%\n"


# ---- demo cleans up after Ctrl-C, SIGTERM and SIGHUP ---------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_demo_leaves_no_daemon_and_no_folder(sig: int, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    c = ClientProcess(("demo",), env={"TMPDIR": str(tmp)})
    try:
        port = int(re.search(r"ws://127\.0\.0\.1:(\d+)", c.wait_output(r"daemon on mock pins at"))[1])
        c.wait_output(r"connected left=\d+%")  # streaming: the daemon and its folder exist
        assert any(p.name.startswith("gravity-led-demo-") for p in tmp.iterdir())
        c.proc.send_signal(sig)
        assert c.wait(15) == 0, c.stderr
    finally:
        c.kill()
    assert list(tmp.iterdir()) == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_demo_banner_says_how_it_ends() -> None:
    r = run_client_to_end("demo", "--count", "5", timeout=40)
    assert r.returncode == 0, r.stderr
    assert "for 5 frames" in r.stdout and "Ctrl-C" not in r.stdout
    assert "sent 5 frames" in r.stdout


# ---- the smaller things ---------------------------------------------------------------------


def test_choices_are_case_insensitive(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(GRAVITY_LED_CONFIG="/dev/null", GRAVITY_LED_PIN_FACTORY="MOCK")
    cmd = [sys.executable, "-m", "gravity_led.daemon", "--host", "127.0.0.1", "--port", str(port), "--log-level", "DEBUG", "--axis", "Y"]
    with Process(cmd, tmp_path / "daemon.log", env=env, ready_url=f"http://127.0.0.1:{port}/healthz"):
        status = get_status(f"http://127.0.0.1:{port}")
    assert status["pin_factory"] == "mock" and status["mapping"]["axis"] == "y"


@pytest.mark.parametrize("origin", ["not a url", "https://app.example/path", "ftp://app.example", "https://"])
def test_allowed_origins_must_be_origins(origin: str) -> None:
    r = _daemon_cli("--pin-factory", "mock", "--allowed-origins", f"https://ok.example,{origin}")
    assert r.returncode == 2 and "allowed_origins" in r.stderr and repr(origin) in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1


def test_the_same_pin_twice_is_named_not_a_repr() -> None:
    r = _daemon_cli("--pin-factory", "mock", "--host", "127.0.0.1", "--port", "0", "--right-pin", "GPIO18", "--left-pin", "BOARD12")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == (
        "gravity-led-daemon: right_pin GPIO18 and left_pin BOARD12 are the same pin; give each LED its own"
    )
    assert "<gpiozero" not in r.stderr


def test_help_shows_one_default_each() -> None:
    r = _daemon_cli("--help")
    flat = " ".join(r.stdout.split())
    assert "default: None" not in flat
    assert flat.count("gpiozero's own choice") == 1
    assert "(default: none; env GRAVITY_LED_CERTFILE)" in flat


def test_reload_by_hand_does_not_name_systemctl(start_daemon, tmp_path: Path) -> None:
    toml = tmp_path / "d.toml"
    toml.write_text('right_pin = "GPIO18"\n')
    d = start_daemon("--config", str(toml))
    toml.write_text('right_pin = "GPIO5"\n')
    d.proc.send_signal(signal.SIGHUP)
    line = _log_line(d, "cannot change without a restart")
    assert "stop the daemon and start it again" in line and "systemctl" not in line


def test_python_without_the_dependencies_gets_one_sentence(tmp_path: Path) -> None:
    # -S: no site-packages, as a system python3 without websockets; the package
    # itself is found (as gravity_led.*, through PYTHONPATH), its dependencies are not.
    (tmp_path / "gravity_led").mkdir()
    for name in ("daemon", "client"):
        (tmp_path / "gravity_led" / name).symlink_to(ROOT / name)
    for module, prog in (("gravity_led.daemon", "gravity-led-daemon"), ("gravity_led.client", "gravity-led-client")):
        r = subprocess.run(
            [sys.executable, "-S", "-m", module, "--help"],
            cwd=tmp_path, env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(tmp_path)},
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith(f"{prog}: ") and ".venv/bin/" in r.stderr and r.stderr.count("\n") == 1


def test_ws_url_against_a_tls_daemon_suggests_wss(start_daemon, tmp_path: Path) -> None:
    made = _daemon_cli("make-cert", "--host", "127.0.0.1", "--out-dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    d = start_daemon("--certfile", str(tmp_path / "cert.pem"), "--keyfile", str(tmp_path / "key.pem"), scheme="https")
    r = run_client_to_end("send", "0", "4.9", "8.5", "--url", f"ws://127.0.0.1:{d.port}")
    assert r.returncode == 1 and "wss://" in r.stderr, r.stderr
    # A bare HOST:PORT with --cafile (or --insecure) means wss://: the user said it is TLS.
    r = run_client_to_end("send", "0", "4.9", "8.5", "--url", f"127.0.0.1:{d.port}", "--cafile", str(tmp_path / "cert.pem"))
    assert r.returncode == 0 and r.stdout == "sent 0.0 4.9 8.5: right LED 50%, left LED 0%\n", r.stdout + r.stderr


def test_qr_without_tls_explains_instead_of_drawing(start_daemon) -> None:
    d = start_daemon("--qr")
    d.wait_log("--qr: no QR code, as a phone cannot use the http:// page")
    assert "▀" not in d.logs() and "█" not in d.logs()


# ---- --duration is a hard limit, and a run that sent nothing fails ------------------------


def _timed(*args: str, timeout: float = 30.0, input: str | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    r = run_client_to_end(*args, timeout=timeout, input=input)
    return r, time.monotonic() - started


# Python's start (about 0.3 s), closing (capped at 2 s) and a loaded machine's slack: well under the 10 min a user waited.
SLACK_S = 4.0


@pytest.mark.parametrize(
    "args",
    [("sim",), ("stdin",), ("send", "0", "4.9", "8.5"), ("udp", "--listen", "127.0.0.1:0"), ("sensorlogger", "--listen", "127.0.0.1:0")],
    ids=["sim", "stdin", "send", "udp", "sensorlogger"],
)
def test_duration_ends_a_run_whose_daemon_is_down_and_it_fails(args: tuple[str, ...]) -> None:
    # --max-retries: send would otherwise give up at once (its default is one attempt), before --duration is the limit
    r, took = _timed(*args, "--url", f"127.0.0.1:{free_port()}", "--duration", "2", "--max-retries", "1000")
    assert r.returncode == 1, r.stdout + r.stderr
    assert took < 2 + SLACK_S, took
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("gravity-led-client: sent nothing within --duration 2 s: the daemon at ws://127.0.0.1:"), r.stderr
    assert "connection refused" in last and "Traceback" not in r.stderr


def test_duration_ends_a_run_whose_daemon_stopped_answering(start_daemon) -> None:
    """A daemon frozen (SIGSTOP) accepts TCP in the kernel but never answers the handshake."""
    d = start_daemon()
    d.proc.send_signal(signal.SIGSTOP)
    try:
        r, took = _timed("sim", "--url", d.url, "--duration", "2")
    finally:
        d.proc.send_signal(signal.SIGCONT)
    assert r.returncode == 1 and took < 2 + SLACK_S, (took, r.stderr)
    assert "sent nothing within --duration 2 s" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_duration_ends_a_run_whose_daemon_froze_mid_stream(start_daemon) -> None:
    d = start_daemon()
    c = ClientProcess(("sim", "--url", d.url, "--duration", "3"))
    try:
        c.wait_output(r"connected left=")
        d.proc.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        assert c.wait(15) == 0, c.stderr
        assert time.monotonic() - started < 3 + SLACK_S
    finally:
        d.proc.send_signal(signal.SIGCONT)
        c.kill()
    assert re.search(r"sent \d+ frames in", c.stdout), c.stdout


def test_a_silent_phone_app_is_named_when_nothing_was_sent(daemon) -> None:
    r, took = _timed("udp", "--listen", "127.0.0.1:0", "--url", daemon.url, "--duration", "1.5")
    assert r.returncode == 1 and took < 1.5 + SLACK_S
    assert r.stderr.strip().splitlines()[-1] == "gravity-led-client: sent nothing within --duration 1.5 s: the phone app gave no vector"


# ---- summaries that add up ----------------------------------------------------------------


def test_the_summary_rate_is_frames_over_the_printed_time(daemon) -> None:
    r = run_client_to_end("sim", "--url", daemon.url, "--rate", "20", "--count", "15")
    m = re.search(r"sent 15 frames in ([\d.]+) s \(([\d.]+) per second\)", r.stdout)
    assert r.returncode == 0 and m, r.stdout + r.stderr
    assert abs(15 / float(m[1]) - float(m[2])) <= 0.05


def test_stdin_with_one_line_ends_as_send_does(daemon) -> None:
    r = run_client_to_end("stdin", "--url", daemon.url, input="0 4.9 8.5\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1].endswith("sent 0.0 4.9 8.5: right LED 50%, left LED 0%"), r.stdout


def test_record_never_replaces_a_file(daemon, tmp_path: Path) -> None:
    kept = tmp_path / "tilt.csv"
    kept.write_text("t,x,y,z\n0,0,1,0\n")
    r = run_client_to_end("sim", "--url", daemon.url, "--count", "3", "--record", str(kept))
    assert r.returncode == 2 and r.stderr.splitlines()[0] == (
        f"gravity-led-client sim: error: --record {kept}: the file exists already; give a new name, or remove it first"
    )
    assert kept.read_text() == "t,x,y,z\n0,0,1,0\n" and daemon.status()["frames"]["accepted"] == 0


# ---- nothing outlives demo ----------------------------------------------------------------


def test_demo_killed_with_sigkill_takes_its_daemon_and_the_next_demo_removes_its_folder(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    alive = tmp / "gravity-led-demo-alive"  # another demo's, still running (this test): kept
    alive.mkdir()
    (alive / "owner.pid").write_text(f"{os.getpid()}\n")
    c = ClientProcess(("demo",), env={"TMPDIR": str(tmp)})
    try:
        port = int(re.search(r"ws://127\.0\.0\.1:(\d+)", c.wait_output(r"daemon on mock pins at"))[1])
        c.wait_output(r"connected left=\d+%")
        c.proc.kill()  # SIGKILL: no handler of the demo's runs
        c.wait(15)
    finally:
        c.kill()

    def daemon_gone() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return True
        return False

    wait_until(daemon_gone, timeout=10, what="the killed demo's daemon to stop")
    assert len(list(tmp.glob("gravity-led-demo-*"))) == 2  # the killed demo's folder is still there ...
    r = subprocess.run([sys.executable, "-m", "gravity_led.client", "demo", "--count", "3"], cwd=ROOT,
                       env=client_env(TMPDIR=str(tmp)), capture_output=True, text=True, timeout=40)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert list(tmp.iterdir()) == [alive]  # ... until the next demo, which keeps a live owner's


# ---- errors: one sentence, the subcommand's name, a guess ---------------------------------


@pytest.mark.parametrize(
    "args, first",
    [
        (("demo", "--url", "localhost"), "gravity-led-client demo: error: demo starts its own daemon on this machine, so it takes no --url"),
        (("--pattern", "sweep", "send", "0", "1", "2"), "gravity-led-client send: error: --pattern is an option of sim and demo, not of send"),
        (("smi",), "gravity-led-client: error: unknown subcommand 'smi'; did you mean sim?"),
        (("sim", "--pattren", "sweep"), "gravity-led-client sim: error: unknown option --pattren; did you mean --pattern?"),
        (("sensorserver",), "gravity-led-client sensorserver: error: the following arguments are required: PHONE"),
    ],
)
def test_client_usage_errors_are_one_sentence_and_a_pointer_to_help(args: tuple[str, ...], first: str) -> None:
    r = run_client_to_end(*args)
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and len(lines) == 2, r.stderr
    assert lines[0].startswith(first), lines[0]
    assert lines[1] == f"Run '{first.split(': error')[0]} --help' for the options."


@pytest.mark.parametrize(
    "args, line",
    [
        (("--pin-factory", "mock", "--axis", "w"), "gravity-led-daemon: error: --axis must be one of x, y, z, not 'w'"),
        (("make-crt",), "gravity-led-daemon: error: unknown subcommand 'make-crt' (the only one is make-cert); did you mean make-cert?"),
        (("--prot", "5"), "gravity-led-daemon: error: unknown option --prot; did you mean --port?"),
        (("make-cert", "--hots", "x"), "gravity-led-daemon make-cert: error: unknown option --hots; did you mean --host?"),
    ],
)
def test_daemon_usage_errors_are_one_sentence_and_a_pointer_to_help(args: tuple[str, ...], line: str) -> None:
    r = _daemon_cli(*args)
    assert r.returncode == 2 and r.stderr.splitlines() == [line, f"Run '{line.split(': error')[0]} --help' for the options."], r.stderr


def test_an_unknown_environment_variable_is_a_warning_with_a_guess(start_daemon) -> None:
    d = start_daemon(env={"GRAVITY_LED_PROT": "9"})
    d.wait_log("the environment variable GRAVITY_LED_PROT is not an option, so it is ignored; did you mean GRAVITY_LED_PORT?")
    r = subprocess.run([sys.executable, "-m", "gravity_led.client", "send", "0", "4.9", "8.5", "--url", d.url], cwd=ROOT,
                       env=client_env(GRAVITY_LED_URLL="x"), capture_output=True, text=True, timeout=30)  # fmt: skip
    assert r.returncode == 0 and "GRAVITY_LED_URLL is not an option, so it is ignored; did you mean GRAVITY_LED_URL?" in r.stderr


def test_client_version() -> None:
    from gravity_led.daemon import __version__

    r = run_client_to_end("--version")
    assert r.returncode == 0 and r.stdout == f"gravity-led-client {__version__}\n"


def test_qr_on_a_loopback_address_explains_instead_of_drawing(start_daemon, tmp_path: Path) -> None:
    made = _daemon_cli("make-cert", "--host", "127.0.0.1", "--out-dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    d = start_daemon("--qr", "--certfile", str(tmp_path / "cert.pem"), "--keyfile", str(tmp_path / "key.pem"), scheme="https")
    d.wait_log("--qr: no QR code, as a phone cannot reach 127.0.0.1; listen on the network (--host 0.0.0.0) for one")
    assert "\u2580" not in d.logs() and "\u2584" not in d.logs()
