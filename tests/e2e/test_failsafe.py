"""``python -m gravity_led.daemon.failsafe``: the service's ExecStopPost (deploy/gravity-led.service).

It runs after every stop. After a clean one it must cost next to nothing (a
Pi Zero restarts the service through it); after a kill it drives both pins
low. The proof on a real kernel is in tests/pi_vm; here, the process itself.
"""

from __future__ import annotations

import subprocess
import sys

from tests.support.harness import ROOT, clean_env


def failsafe(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gravity_led.daemon.failsafe", *args],
        cwd=ROOT, env={**clean_env(), **env}, capture_output=True, text=True, timeout=60,
    )


def imported(stderr: str) -> set[str]:
    return {line.split("|")[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_after_a_clean_stop_it_does_nothing_and_imports_neither_websockets_nor_gpiozero() -> None:
    r = failsafe(SERVICE_RESULT="success", GRAVITY_LED_PIN_FACTORY="mock")
    assert r.returncode == 0
    assert r.stdout == "" and "failsafe:" not in r.stderr
    mods = imported(r.stderr)
    assert "argparse" in mods  # the import log is what it claims to be
    assert not mods & {"websockets", "gpiozero", "gravity_led.daemon.config", "gravity_led.daemon.leds"}, sorted(mods & {"websockets", "gpiozero"})


def test_after_a_kill_it_drives_both_pins_low_and_says_how_the_daemon_ended() -> None:
    r = failsafe(SERVICE_RESULT="signal", EXIT_CODE="killed", EXIT_STATUS="KILL", GRAVITY_LED_PIN_FACTORY="mock")
    assert r.returncode == 0, r.stderr
    said = [line for line in r.stderr.splitlines() if line.startswith("failsafe:")]
    assert said == ["failsafe: drove GPIO18 and GPIO22 low (the daemon ended: signal, killed KILL)"]
    assert "gpiozero" in imported(r.stderr)


def test_a_bad_config_is_one_sentence_and_a_non_zero_exit(tmp_path) -> None:
    bad = tmp_path / "daemon.toml"
    bad.write_text("right_pin = 99\n")
    r = failsafe("--config", str(bad), SERVICE_RESULT="watchdog", GRAVITY_LED_PIN_FACTORY="mock")
    assert r.returncode != 0
    said = [line for line in r.stderr.splitlines() if not line.startswith("import time:")]
    assert len(said) == 1 and said[0].startswith("failsafe: could not turn the LEDs off:") and "99" in said[0], said
    assert "Traceback" not in r.stderr
