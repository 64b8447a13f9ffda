"""Hardware PWM on a kernel PWM device in the stand-in (a step of the trixie
scenario, test_pi_vm_trixie.py; and the device for the CPU figures of
test_pi_vm.py, pwm_cpu.py).

Linux 6.12's pwm-gpio driver, backported to the guest's 6.1, drives the two
never-sleeping lines of pwm-standin.ko (the driver refuses gpio-sim's, which
can sleep); both are built on the host (standin/pwm/build.sh) and loaded into
the running guest. The daemon finds the channels through pwm_channels (x86
has no device tree), under the shipped unit: the installer's udev rule hands
the chips to group gpio, the unit's ReadWritePaths= lets the daemon write them.
"""

from __future__ import annotations

import base64
import json
import math
import re
import signal
import subprocess
from pathlib import Path

from . import guest
from .pi import G, TOLERANCE, Client, Pi, expect_leds

HW_HZ = 20.0
"""hardware_frequency_hz for the duty checks: pwm-gpio's hrtimer under
emulation wakes late as lgpio's thread does, if less; at 20 Hz a late
millisecond is 0.02 of a period."""
KEYS = ("pwm", "left_pin", "hardware_frequency_hz", "pwm_channels", "frequency_hz")
CHANNELS = '["GPIO18=pwm-gpio.0:0", "GPIO19=pwm-gpio.1:0"]'
MEASURE_S = 1.2


def options(pi: Pi, **values: str) -> None:
    """Set daemon.toml options (TOML text values), replacing earlier lines of these keys."""
    keys = "|".join(KEYS)
    lines = "".join(f"{k} = {v}\\n" for k, v in values.items())
    pi.vm.ok(f"sed -i -E '/^({keys}) = /d' /etc/gravity-led/daemon.toml && printf '{lines}' >> /etc/gravity-led/daemon.toml")


def hardware(pi: Pi, hz: float) -> None:
    options(pi, pwm='"hardware"', left_pin='"GPIO19"', hardware_frequency_hz=str(hz), frequency_hz="100.0", pwm_channels=CHANNELS)


def load_the_pwm_device(pi: Pi) -> str:
    """pwm-gpio.0 and pwm-gpio.1 on pwm-standin's lines 0 and 1; the lines' gpiochipN."""
    built = subprocess.run(["bash", str(Path(__file__).parent / "standin" / "pwm" / "build.sh"), str(guest.CACHE)],
                           stdout=subprocess.PIPE, text=True, timeout=900, check=True).stdout.strip()
    for ko in ("pwm-gpio.ko", "pwm-standin.ko"):
        pi.vm.sh(f"base64 -d > /run/{ko}", stdin=base64.b64encode((Path(built) / ko).read_bytes()).decode(), check=True)
    pi.vm.ok("insmod /run/pwm-gpio.ko && insmod /run/pwm-standin.ko && udevadm settle")
    chip = pi.vm.ok("sed -n 's/^\\(gpiochip[0-9]*\\): GPIOs .*pwm-standin.*/\\1/p' /sys/kernel/debug/gpio").strip()
    assert re.fullmatch(r"gpiochip\d+", chip), pi.vm.ok("cat /sys/kernel/debug/gpio")
    # the installer's udev rule gave group gpio each new chip's export and unexport
    assert pi.vm.ok("stat -c %G /sys/class/pwm/pwmchip0/export /sys/class/pwm/pwmchip1/unexport").split() == ["gpio", "gpio"]
    return chip


def unload_the_pwm_device(pi: Pi) -> None:
    options(pi)  # the file as before: the next step sets frequency_hz itself
    pi.restart()
    # channels first (each holds pwm-gpio), then pwm-gpio (its devices hold pwm-standin's lines)
    pi.vm.ok("for c in /sys/class/pwm/pwmchip*; do [ ! -d $c/pwm0 ] || echo 0 > $c/unexport; done; rmmod pwm_gpio && rmmod pwm_standin")


def check_duties(pi: Pi, chip: str, client: Client, degrees: tuple[int, ...], hz: float) -> list[str]:
    seen = []
    for deg in degrees:
        client.tilt(deg)
        want = math.sin(math.radians(abs(deg)))
        right, left = (want, 0.0) if deg > 0 else (0.0, want)
        expect_leds(pi, right, left)
        m = pi.measure(chip, MEASURE_S, 0, 1)  # type: ignore[arg-type]
        for line, gpio, duty in ((0, 18, right), (1, 19, left)):
            got = m[str(line)]
            seen.append(f"{deg:+d} deg GPIO{gpio} (pwm-gpio.{line}): duty {got['duty']:.3f} (want {duty:.3f}) at {got['hz']:.1f} Hz ({got['periods']} periods)")
            assert abs(got["duty"] - duty) <= TOLERANCE, seen[-1]
            if duty > 0:
                assert 0.9 * hz <= got["hz"] <= 1.1 * hz and got["periods"] >= 0.8 * hz * MEASURE_S - 1, seen[-1]
            else:
                assert got["hz"] == 0, seen[-1]
    return seen


def failsafe_after(pi: Pi, chip: str, how: str) -> str:
    """After SIGKILL, or a watchdog kill (the daemon SIGSTOPped: its event
    loop stops pinging, and WatchdogSec= later systemd kills it), the killed
    daemon's channel keeps toggling (a lit LED) until the failsafe
    (ExecStopPost=) takes it over, sets duty 0 and disables it: from then on
    the line stays low until the restart."""
    pi.systemctl("reset-failed", "gravity-led.service")
    with Client(pi.port) as client:
        client.tilt(45)
        expect_leds(pi, math.sin(math.radians(45)), 0.0)
        old = pi.main_pid()
        sig = signal.SIGKILL if how == "sigkill" else signal.SIGSTOP
        t_kill = float(pi.vm.ok(f"python3 -c 'import os, time; t = time.monotonic(); os.kill({old}, {sig}); print(t)'"))
        pi.restarted(old)
    t_start = int(pi.show("ExecMainStartTimestampMonotonic")) / 1e6
    trace = pi.lines("trace", chip, "read", t_kill, t_start, 0, 1)
    result = "signal" if how == "sigkill" else "watchdog"
    said = [json.loads(line) for line in pi.vm.journal("-u", "gravity-led.service", "-n", "80", "-o", "json").splitlines() if line.strip()]
    said = [e for e in said if f"failsafe: drove GPIO18 and GPIO19 low (the daemon ended: {result}" in str(e.get("MESSAGE"))]
    assert said, f"no failsafe line in the journal after {how}"
    failsafe = int(said[-1]["_PID"])
    for line, gpio, lit in ((0, 18, True), (1, 19, False)):
        events = trace[str(line)]
        mine = [t for t, pid, _, event in events if pid == failsafe and event == "gpio_value set 0"]
        assert mine, f"after {how}: the failsafe (pid {failsafe}) did not set GPIO{gpio}'s line low; the kernel saw {events[-10:]}"
        if lit:
            assert any(event == "gpio_value set 1" and t < min(mine) for t, _, _, event in events), f"after {how}: the killed daemon's PWM was not running"
        after = [e for e in events if e[0] > max(mine)]
        assert not after, f"after {how}: GPIO{gpio}'s line toggled after the failsafe: {after}"
    pi.wait_until("/healthz after the restart", pi.healthz)
    return f"after {how}: the failsafe drove GPIO18's PWM low {min(mine) - t_kill:.2f} s after the {'kill' if how == 'sigkill' else 'SIGSTOP'}"


def hardware_pwm_on_a_kernel_pwm_device(pi: Pi) -> str:
    """Requirements 2 and 4 on a kernel PWM device, under the shipped unit:
    three tilts each side (duty and frequency), hardware_frequency_hz
    reloaded live, the stale blackout, the failsafe after SIGKILL and after a
    watchdog kill, both channels released on stop. (Requirement 6, the CPU
    figures, runs on the other bookworm guest: tests/pi_vm/pwm_cpu.py.)"""
    chip = load_the_pwm_device(pi)
    try:
        hardware(pi, HW_HZ)
        pi.restart()
        log = pi.vm.journal("-u", "gravity-led.service", "-n", "30", "-o", "cat")
        assert "GPIO18: hardware PWM (pwmchip" in log and "pwm-gpio.0)" in log and "GPIO19: hardware PWM" in log, log
        assert pi.vm.ok("cat /sys/bus/platform/devices/pwm-gpio.0/pwm/pwmchip*/pwm0/period").strip() == str(round(1e9 / HW_HZ))
        pid = pi.main_pid()
        with Client(pi.port) as client:
            seen = check_duties(pi, chip, client, (20, 45, 70, -20, -45, -70), HW_HZ)
            hardware(pi, 2 * HW_HZ)
            pi.vm.ok("systemctl reload gravity-led.service")
            pi.wait_until("the reload", lambda: f"hardware_frequency_hz={2 * HW_HZ}" in pi.vm.journal("-u", "gravity-led.service", "-n", "10", "-o", "cat"))
            seen += check_duties(pi, chip, client, (-70, 45), 2 * HW_HZ)
            assert pi.main_pid() == pid  # live: the same process
        # stale: a client that stays connected but sends nothing more
        import websockets.sync.client as ws

        with ws.connect(f"ws://127.0.0.1:{pi.port}") as conn:
            conn.send(f"0 {G:.3f} 0")
            expect_leds(pi, 1.0, 0.0)
            expect_leds(pi, 0.0, 0.0)  # after stale_after_s
            m = pi.measure(chip, 0.5, 0, 1)  # type: ignore[arg-type]
            assert m["0"]["duty"] == 0 and m["1"]["duty"] == 0 and m["0"]["hz"] == 0, m
        seen.append(failsafe_after(pi, chip, "sigkill"))
        seen.append(failsafe_after(pi, chip, "watchdog"))
        assert "watchdog timeout" in pi.vm.journal("-u", "gravity-led.service", "-n", "80").lower()
        pi.vm.ok("systemctl stop gravity-led.service", timeout=60)
        left = pi.vm.ok("ls /sys/bus/platform/devices/pwm-gpio.0/pwm/pwmchip*/ /sys/bus/platform/devices/pwm-gpio.1/pwm/pwmchip*/")
        assert "pwm0" not in left, left  # released: unexported
        return "\n".join(seen)  # printed by the step's test
    finally:
        unload_the_pwm_device(pi)
