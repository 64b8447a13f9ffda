"""The daemon process on the hardware PWM backend (``pwm = "hardware"``),
mock pins for everything else, and a sysfs tree of plain files
(``GRAVITY_LED_SYSFS_ROOT``): what the daemon writes there is what a kernel
would get.  The kernel's own rules are the fast tier's (tests/unit/
test_hwpwm.py); a real kernel PWM device is the Pi stand-in's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fake_sysfs import FakeSysfs
from tests.support.harness import ROOT, DaemonProcess, clean_env, wait_until
from tests.support.net import text_frame, want_duty, ws_client


@pytest.fixture
def tree(tmp_path):
    sysfs = FakeSysfs(tmp_path / "root")
    chip = sysfs.add_chip(0, "fe20c000.pwm", compatible="brcm,bcm2835-pwm", pins=(18, 19), board="raspberrypi,4-model-b")
    sysfs.exported(chip, 0)
    sysfs.exported(chip, 1)
    return sysfs.root, chip


def channel(chip: Path, n: int) -> dict[str, int]:
    return {a: int((chip / f"pwm{n}" / a).read_text()) for a in ("period", "duty_cycle", "enable")}


def duties(chip: Path) -> tuple[float, float]:
    out = [channel(chip, n) for n in (0, 1)]
    return tuple(o["duty_cycle"] / o["period"] if o["period"] and o["enable"] else 0.0 for o in out)  # type: ignore[return-value]


def periods(chip: Path) -> list[int] | None:
    try:
        return [channel(chip, n)["period"] for n in (0, 1)]
    except ValueError:  # read between the daemon's truncate and its write
        return None


def wait_duties(chip: Path, want: tuple[float, float]) -> None:
    def there() -> bool:
        try:
            return all(abs(a - b) <= 0.01 for a, b in zip(duties(chip), want))
        except ValueError:  # read between the daemon's truncate and its write
            return False

    wait_until(there, what=f"PWM duties {want}")


def start(tmp_path: Path, root: Path, *args: str) -> DaemonProcess:
    return DaemonProcess(
        ["--pwm", "hardware", "--right-pin", "GPIO18", "--left-pin", "GPIO19", *args], tmp_path / "daemon.log", env={"GRAVITY_LED_SYSFS_ROOT": str(root)}
    )


def test_tilts_reload_stale_and_stop_on_hardware_pwm(tmp_path, tree):
    root, chip = tree
    with start(tmp_path, root, "--stale-after-s", "0.5") as d:
        d.wait_log("GPIO18: hardware PWM (pwmchip0 channel 0, fe20c000.pwm)")
        assert channel(chip, 0) == {"period": 1_000_000, "duty_cycle": 0, "enable": 1}
        with ws_client(d.url) as ws:
            for duty in (0.2, 0.55, 1.0, -0.2, -0.55, -1.0):
                ws.send(text_frame(duty))
                wait_duties(chip, want_duty(duty))
            ws.send(text_frame(0.7))
            wait_duties(chip, want_duty(0.7))
            # SIGHUP: a new hardware frequency, live, the duty kept
            (tmp_path / "daemon.toml").write_text("hardware_frequency_hz = 2500.0\n")
            d.proc.send_signal(signal.SIGHUP)
            d.wait_log("reloaded configuration: hardware_frequency_hz=2500.0")
            wait_until(lambda: periods(chip) == [400_000, 400_000], what="period 400 us")
            wait_duties(chip, want_duty(0.7))
            # no frame for stale_after_s: both dark
            wait_duties(chip, (0.0, 0.0))
        assert d.stop() == 0
    assert channel(chip, 0)["enable"] == 0 and channel(chip, 1)["enable"] == 0
    assert (chip / "unexport").read_text() == "1"  # both released: 0, then 1


def test_after_a_kill_the_failsafe_disables_both_channels(tmp_path, tree):
    root, chip = tree
    d = start(tmp_path, root)
    try:
        with ws_client(d.url) as ws:
            ws.send(text_frame(-0.6))
            wait_duties(chip, want_duty(-0.6))
            d.proc.kill()
            d.proc.wait()
    finally:
        d.stop()
    assert channel(chip, 1)["enable"] == 1  # nobody turned it off
    env = {**clean_env(GRAVITY_LED_SYSFS_ROOT=str(root), SERVICE_RESULT="signal", EXIT_CODE="killed", EXIT_STATUS="KILL")}
    cfg = tmp_path / "daemon.toml"
    cfg.write_text('pwm = "hardware"\npin_factory = "mock"\nright_pin = "GPIO18"\nleft_pin = "GPIO19"\n')
    r = subprocess.run([sys.executable, "-m", "gravity_led.daemon.failsafe", "--config", str(cfg)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert channel(chip, 0) == {"period": 1_000_000, "duty_cycle": 0, "enable": 0}
    assert channel(chip, 1) == {"period": 1_000_000, "duty_cycle": 0, "enable": 0}
    assert (chip / "unexport").read_text() == "1"
