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
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.support.client_fixtures import ClientProcess, client_env, run_client, run_client_to_end  # noqa: F401 (fixture)
from tests.support.harness import ROOT, Process, clean_env, free_port, get_status

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
    d.wait_log(f"open https://127.0.0.1:{d.port}/ on a phone")
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
