"""The project on a Raspberry Pi stand-in: a real kernel, systemd as PID 1, gpio-sim.

A QEMU guest (Debian bookworm, Debian's kernel, the kernel's GPIO simulator
behind /dev/gpiochip*) serves this module: a copy of the installer's guest
(test_pi_vm_installer.py) made right after its first step, the plain install
on a fresh Pi, as the README tells a Pi user (``sudo deploy/install.sh``
from a clone). Two test-only differences: pip's package source is a local
wheelhouse (/etc/pip.conf) and a drop-in gives the service a Pi's board
revision (``standin/setup.sh``); the shipped units are used unchanged.
Checks go through the forwarded port, with the project's own client, and
through the simulator's side of the GPIO lines, while the installer's other
paths run on the original guest. The tests run in file order: each leaves
the install as the next expects.
"""

from __future__ import annotations

import json
import math
import re
import signal
import time
from typing import Iterator

import pytest

from .pi import FREQUENCY_HZ, G, LEFT, LINES, RIGHT, TOLERANCE, Client, Pi, check_duties, check_ready_under_the_shipped_unit, expect_leds
from .scenario import Scenario

pytestmark = [pytest.mark.pi_vm, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def pi(installer_scenario: Scenario[Pi]) -> Iterator[Pi]:
    """A copy of the installer's guest right after its plain install on a fresh Pi."""
    copy = installer_scenario.forked.result(timeout=1500)
    try:
        yield copy
    finally:
        copy.vm.close()


@pytest.fixture(autouse=True)
def _cost(pi: Pi) -> Iterator[None]:
    """Each check's time and the host CPU its guest used (shown with -s, and with a failure)."""
    t0, cpu0 = time.monotonic(), pi.vm.cpu_seconds()
    yield
    print(f"{time.monotonic() - t0:.0f} s on the pi guest ({pi.vm.cpu_seconds() - cpu0:.0f} CPU-s)")


# -------------------------------------------------------------- install ----


def test_service_is_ready_under_the_shipped_hardened_unit_without_warnings(pi: Pi) -> None:
    """a."""
    check_ready_under_the_shipped_unit(pi)


# ---------------------------------------------------------------- LEDs -----


def test_frames_set_measured_duties_with_lgpio(pi: Pi) -> None:
    """c, with the unit's GRAVITY_LED_PIN_FACTORY=lgpio."""
    pi.vm.ok(f"printf 'frequency_hz = {FREQUENCY_HZ}\\n' >> /etc/gravity-led/daemon.toml")
    pi.restart()
    assert pi.status()["pins"]["frequency_hz"] == FREQUENCY_HZ
    assert pi.status()["pin_factory"] == "lgpio"
    with Client(pi.port) as client:
        seen = check_duties(pi, client)
    print("\n".join(seen))


def test_stale_data_a_client_that_leaves_and_stop_turn_both_lines_low(pi: Pi) -> None:
    """d."""
    import websockets.sync.client as ws

    stale_s = pi.status()["stale_after_s"]
    # stale: a client that stays connected but sends nothing more
    with ws.connect(f"ws://127.0.0.1:{pi.port}") as conn:
        conn.send(f"0 {G:.3f} 0")
        expect_leds(pi, 1.0, 0.0)
        t_sent = time.monotonic()
        low = pi.lines("wait-low", 0, 30, RIGHT, LEFT)
        assert time.monotonic() - t_sent >= stale_s * 0.5, "went low long before the stale timeout"
        assert "low_after_s" in low
    # a client that leaves
    with Client(pi.port) as client:
        client.tilt(-60)
        expect_leds(pi, 0.0, math.sin(math.radians(60)))
        assert pi.lines("measure", 0, 0.5, RIGHT, LEFT)[str(LEFT)]["duty"] > 0.5
        rc, err = client.leave()
        assert rc == 0, err
        assert "low_after_s" in pi.lines("wait-low", 0, 30, RIGHT, LEFT)
    # systemctl stop while a client drives the lines
    with Client(pi.port) as client:
        client.tilt(60)
        expect_leds(pi, math.sin(math.radians(60)), 0.0)
        pi.vm.ok("systemctl stop gravity-led.service", timeout=60)
        assert "low_after_s" in pi.lines("wait-low", 0, 30, RIGHT, LEFT)
    pi.restart()


def test_reload_changes_the_mapping_live(pi: Pi) -> None:
    """e: invert=true swaps the LEDs, live, without dropping the client."""
    pid = pi.main_pid()
    with Client(pi.port) as client:
        client.tilt(45)
        want = math.sin(math.radians(45))
        expect_leds(pi, want, 0.0)
        pi.vm.ok("printf 'invert = true\\n' >> /etc/gravity-led/daemon.toml && systemctl reload gravity-led.service")
        expect_leds(pi, 0.0, want)
        m = pi.measure(0, 1.0, RIGHT, LEFT)
        assert abs(m[str(LEFT)]["duty"] - want) <= TOLERANCE and m[str(RIGHT)]["duty"] == 0, m
        assert pi.main_pid() == pid  # the same process
    assert "reloaded configuration: invert=True" in pi.vm.journal("-u", "gravity-led.service", "-n", "40")
    pi.vm.ok("sed -i '/^invert = true$/d' /etc/gravity-led/daemon.toml && systemctl reload gravity-led.service")


def _failsafe_after(pi: Pi, how: str) -> None:
    """Kill the daemon ``how`` and prove that ExecStopPost's failsafe drove both
    lines low before systemd started the daemon again.

    The kernel's own record is the proof: gpiolib's tracepoints log every
    direction change and value a consumer sets, with its pid, on
    CLOCK_MONOTONIC; the journal's _PID names the failsafe's process. (A
    sampled gpio-sim level can miss the failsafe's few milliseconds of output
    under emulation.) The simulator's side shows the rest: with a pull-up,
    standing in for a Pi's pin that keeps its lit level, each line reads high
    once the killed daemon released it."""
    pi.systemctl("reset-failed", "gravity-led.service")
    old = pi.main_pid()
    pi.vm.ok(f"{LINES} pull 0 up {RIGHT} {LEFT}")
    try:
        pi.vm.ok("rm -f /run/stop-watch; STOP_FILE=/run/stop-watch setsid -w python3 /mnt/share/standin/lines.py"
                 f" watch 0 120 {RIGHT} {LEFT} > /run/watch.json 2>&1 & echo $! > /run/watch.pid")
        t_kill = float(pi.vm.ok(f"python3 -c 'import os, time; t = time.monotonic(); os.kill({old}, {signal.SIGKILL if how == 'sigkill' else signal.SIGSTOP}); print(t)'"))
        pi.restarted(old)
        t_start = int(pi.show("ExecMainStartTimestampMonotonic")) / 1e6
        pi.vm.ok("touch /run/stop-watch; while kill -0 $(cat /run/watch.pid) 2>/dev/null; do sleep 0.1; done")
        levels = json.loads(pi.vm.ok("cat /run/watch.json"))
        trace = pi.lines("trace", 0, "read", t_kill, t_start, RIGHT, LEFT)
    finally:
        pi.vm.ok(f"{LINES} pull 0 down {RIGHT} {LEFT}")
    result = "signal" if how == "sigkill" else "watchdog"
    said = [json.loads(line) for line in pi.vm.journal("-u", "gravity-led.service", "-n", "80", "-o", "json").splitlines() if line.strip()]
    said = [e for e in said if re.search(rf"failsafe: drove GPIO18 and GPIO22 low \(the daemon ended: {result}", str(e.get("MESSAGE")))]
    assert said, f"no failsafe line in the journal after {how}"
    failsafe = int(said[-1]["_PID"])
    for offset in (RIGHT, LEFT):
        mine = [(t, event) for t, pid, _, event in trace[str(offset)] if pid == failsafe]
        # claimed as an output at 0 (gpiolib sets the value, then the direction)
        assert any(e == "gpio_direction out (0)" for _, e in mine) and any(e == "gpio_value set 0" for _, e in mine), \
            f"GPIO{offset} after {how}: the failsafe (pid {failsafe}) did not drive it low; the kernel saw {trace[str(offset)]}"
        assert not any(e == "gpio_value set 1" for _, e in mine), f"GPIO{offset} after {how}: {mine}"
        assert all(t_kill <= t < t_start for t, _ in mine), (t_kill, t_start, mine)
        # the killed daemon let go of the line: it read high (the stuck LED) before the failsafe ran
        first = min(t for t, _ in mine)
        print(f"after {how}: the failsafe drove GPIO{offset} low {first - t_kill:.2f} s after the kill")
        assert any(v == 1 and t_kill <= t < first for t, v in levels[str(offset)]), f"GPIO{offset}: {levels[str(offset)]}"
    pi.wait_until("/healthz after the restart", pi.healthz)


def test_failsafe_drives_both_pins_low_after_sigkill(pi: Pi) -> None:
    """Requirement 2, SIGKILL."""
    _failsafe_after(pi, "sigkill")


def test_watchdog_restarts_a_frozen_daemon_and_the_failsafe_drives_both_pins_low(pi: Pi) -> None:
    """e, and requirement 2 after a watchdog kill: a SIGSTOPped daemon stops
    pinging, systemd kills it, the failsafe drives the pins low, systemd restarts it."""
    _failsafe_after(pi, "watchdog")
    assert "watchdog timeout" in pi.vm.journal("-u", "gravity-led.service", "-n", "80").lower()


def test_journal_carries_the_documented_fields(pi: Pi) -> None:
    """f: CLIENT_ADDRESS, FRAMES_ACCEPTED, FRAMES_REJECTED (docs/pi.md, "Check that it runs")."""
    with Client(pi.port) as client:
        client.tilt(30)
        expect_leds(pi, math.sin(math.radians(30)), 0.0)
        client.leave()
    pi.wait_until("a disconnect line", lambda: pi.vm.ok("journalctl -u gravity-led -F FRAMES_ACCEPTED").strip())
    addresses = pi.vm.ok("journalctl -u gravity-led -F CLIENT_ADDRESS").split()
    assert any(a.startswith("10.0.2.2:") for a in addresses), addresses  # the host, through QEMU's NAT
    assert pi.vm.ok("journalctl -u gravity-led -F FRAMES_REJECTED").strip()
    one = addresses[0]
    assert one in pi.vm.ok(f"journalctl -u gravity-led CLIENT_ADDRESS={one} -o cat")


# ------------------------------------------------------------ hardware PWM ----
# A kernel PWM device in the stand-in: Linux 6.12's pwm-gpio driver, backported
# to the guest's 6.1, on the two never-sleeping lines of pwm-standin.ko (the
# driver refuses gpio-sim's, which can sleep), both built on the host
# (standin/pwm/build.sh) and loaded here; the daemon finds them through
# pwm_channels (x86 has no device tree), under the shipped unit.

HW_HZ = 20.0
"""hardware_frequency_hz in these tests: pwm-gpio's hrtimer under emulation
wakes late as lgpio's thread does, if less; 20 Hz keeps a late millisecond
at 0.02 of a period."""
PWM_OPTIONS = ("pwm", "left_pin", "hardware_frequency_hz", "pwm_channels", "frequency_hz")


def _options(pi: Pi, **values: str) -> None:
    """Set daemon.toml options (TOML text values), replacing earlier lines of the same keys."""
    keys = "|".join(PWM_OPTIONS)
    lines = "".join(f"{k} = {v}\\n" for k, v in values.items())
    pi.vm.ok(f"sed -i -E '/^({keys}) = /d' /etc/gravity-led/daemon.toml && printf '{lines}' >> /etc/gravity-led/daemon.toml")


@pytest.fixture(scope="module")
def pwm_chip(pi: Pi) -> Iterator[str]:
    """pwm-gpio.0 and pwm-gpio.1 on pwm-standin's lines 0 and 1; the lines' gpiochipN."""
    import base64
    import subprocess
    from pathlib import Path

    from . import guest

    built = subprocess.run(["bash", str(Path(__file__).parent / "standin" / "pwm" / "build.sh"), str(guest.CACHE)],
                           stdout=subprocess.PIPE, text=True, timeout=900, check=True).stdout.strip()
    for ko in ("pwm-gpio.ko", "pwm-standin.ko"):
        pi.vm.sh(f"base64 -d > /run/{ko}", stdin=base64.b64encode((Path(built) / ko).read_bytes()).decode(), check=True)
    pi.vm.ok("insmod /run/pwm-gpio.ko && insmod /run/pwm-standin.ko && udevadm settle")
    chip = pi.vm.ok("sed -n 's/^\\(gpiochip[0-9]*\\): GPIOs .*pwm-standin.*/\\1/p' /sys/kernel/debug/gpio").strip()
    assert re.fullmatch(r"gpiochip\d+", chip), pi.vm.ok("cat /sys/kernel/debug/gpio")
    # the installer's udev rule gave group gpio each new chip's export and unexport
    assert pi.vm.ok("stat -c %G /sys/class/pwm/pwmchip0/export /sys/class/pwm/pwmchip1/unexport").split() == ["gpio", "gpio"]
    yield chip
    _options(pi, frequency_hz=str(FREQUENCY_HZ))
    pi.restart()
    # channels first (each holds pwm-gpio), then pwm-gpio (its devices hold pwm-standin's lines)
    pi.vm.ok("for c in /sys/class/pwm/pwmchip*; do [ ! -d $c/pwm0 ] || echo 0 > $c/unexport; done; rmmod pwm_gpio && rmmod pwm_standin")


def _hardware(pi: Pi, hz: float = HW_HZ) -> None:
    _options(pi, pwm='"hardware"', left_pin='"GPIO19"', hardware_frequency_hz=str(hz), frequency_hz=str(FREQUENCY_HZ),
             pwm_channels='["GPIO18=pwm-gpio.0:0", "GPIO19=pwm-gpio.1:0"]')
    pi.restart()


def _check_hw_duties(pi: Pi, chip: str, client: Client, degrees: tuple[int, ...], hz: float) -> list[str]:
    seen = []
    for deg in degrees:
        client.tilt(deg)
        want = math.sin(math.radians(abs(deg)))
        right, left = (want, 0.0) if deg > 0 else (0.0, want)
        expect_leds(pi, right, left)
        m = pi.measure(chip, 1.2, 0, 1)
        for line, gpio, duty in ((0, 18, right), (1, 19, left)):
            got = m[str(line)]
            seen.append(f"{deg:+d} deg GPIO{gpio} (pwm-gpio.{line}): duty {got['duty']:.3f} (want {duty:.3f}) at {got['hz']:.1f} Hz ({got['periods']} periods)")
            assert abs(got["duty"] - duty) <= TOLERANCE, seen[-1]
            if duty > 0:
                assert 0.9 * hz <= got["hz"] <= 1.1 * hz and got["periods"] >= 0.8 * hz * 1.2 - 1, seen[-1]
            else:
                assert got["hz"] == 0, seen[-1]
    return seen


def test_hardware_pwm_duties_frequency_reload_and_stale_on_a_kernel_pwm_device(pi: Pi, pwm_chip: str) -> None:
    """Requirement 4: three tilts each side through the hardware backend under
    the shipped unit (its ReadWritePaths= lets it write the chips, nothing
    else), a live reload of hardware_frequency_hz, the stale blackout."""
    _hardware(pi)
    log = pi.vm.journal("-u", "gravity-led.service", "-n", "30", "-o", "cat")
    assert "GPIO18: hardware PWM (pwmchip" in log and "pwm-gpio.0)" in log and "GPIO19: hardware PWM" in log, log
    assert pi.vm.ok("cat /sys/bus/platform/devices/pwm-gpio.0/pwm/pwmchip*/pwm0/period").strip() == str(round(1e9 / HW_HZ))
    pid = pi.main_pid()
    with Client(pi.port) as client:
        seen = _check_hw_duties(pi, pwm_chip, client, (20, 45, 70, -20, -45, -70), HW_HZ)
        _options(pi, pwm='"hardware"', left_pin='"GPIO19"', hardware_frequency_hz=str(2 * HW_HZ), frequency_hz=str(FREQUENCY_HZ),
                 pwm_channels='["GPIO18=pwm-gpio.0:0", "GPIO19=pwm-gpio.1:0"]')
        pi.vm.ok("systemctl reload gravity-led.service")
        pi.wait_until("the reload", lambda: f"hardware_frequency_hz={2 * HW_HZ}" in pi.vm.journal("-u", "gravity-led.service", "-n", "10", "-o", "cat"))
        seen += _check_hw_duties(pi, pwm_chip, client, (-70, 45), 2 * HW_HZ)
        assert pi.main_pid() == pid
    print("\n".join(seen))
    # stale: a client that stays connected but sends nothing more
    import websockets.sync.client as ws

    with ws.connect(f"ws://127.0.0.1:{pi.port}") as conn:
        conn.send(f"0 {G:.3f} 0")
        expect_leds(pi, 1.0, 0.0)
        expect_leds(pi, 0.0, 0.0)  # after stale_after_s
        m = pi.measure(pwm_chip, 0.5, 0, 1)
        assert m["0"]["duty"] == 0 and m["1"]["duty"] == 0 and m["0"]["hz"] == 0, m


def test_hardware_pwm_failsafe_after_sigkill_and_release_on_stop(pi: Pi, pwm_chip: str) -> None:
    """Requirement 2 on the kernel device: after SIGKILL the killed daemon's
    channel keeps toggling (a lit LED) until the failsafe (ExecStopPost=)
    takes it over, sets duty 0 and disables it: from then on the line stays
    low until systemd starts the daemon again. A stop leaves both channels
    disabled and unexported."""
    _hardware(pi)
    pi.systemctl("reset-failed", "gravity-led.service")
    with Client(pi.port) as client:
        client.tilt(45)
        expect_leds(pi, math.sin(math.radians(45)), 0.0)
        old = pi.main_pid()
        t_kill = float(pi.vm.ok(f"python3 -c 'import os, time; t = time.monotonic(); os.kill({old}, {signal.SIGKILL}); print(t)'"))
        pi.restarted(old)
    t_start = int(pi.show("ExecMainStartTimestampMonotonic")) / 1e6
    trace = pi.lines("trace", pwm_chip, "read", t_kill, t_start, 0, 1)
    said = [json.loads(line) for line in pi.vm.journal("-u", "gravity-led.service", "-n", "80", "-o", "json").splitlines() if line.strip()]
    said = [e for e in said if "failsafe: drove GPIO18 and GPIO19 low (the daemon ended: signal" in str(e.get("MESSAGE"))]
    assert said, "no failsafe line in the journal after SIGKILL"
    failsafe = int(said[-1]["_PID"])
    right = trace["0"]
    mine = [t for t, pid, _, event in right if pid == failsafe and event == "gpio_value set 0"]
    assert mine, f"the failsafe (pid {failsafe}) did not set GPIO18's line low; the kernel saw {right[-10:]}"
    assert any(event == "gpio_value set 1" and t < min(mine) for t, _, _, event in right), "the killed daemon's PWM was not running"
    assert not [e for e in right if e[0] > max(mine)], f"the line toggled after the failsafe: {[e for e in right if e[0] > max(mine)]}"
    print(f"after SIGKILL: the failsafe drove GPIO18's PWM low {min(mine) - t_kill:.2f} s after the kill")
    pi.wait_until("/healthz after the restart", pi.healthz)
    pi.vm.ok("systemctl stop gravity-led.service", timeout=60)
    assert pi.vm.ok("ls /sys/bus/platform/devices/pwm-gpio.0/pwm/pwmchip*/ /sys/bus/platform/devices/pwm-gpio.1/pwm/pwmchip*/").count("pwm0") == 0
    pi.restart()


def _cpu_at_60_hz(pi: Pi, seconds: float = 4.0) -> tuple[float, float, float]:
    """While a 60 Hz client drives both LEDs: the daemon's user and system
    CPU (all its threads, /proc/PID/stat) and the whole guest's (QEMU's
    threads on the host, the kernel's PWM included), each as % of a core."""
    pid = pi.main_pid()
    ticks = lambda: list(map(int, pi.vm.ok(f"cut -d' ' -f14,15 /proc/{pid}/stat").split()))  # noqa: E731
    hz = int(pi.vm.ok("getconf CLK_TCK"))
    with Client(pi.port) as client:
        client.tilt(30)
        expect_leds(pi, 0.5, 0.0)
        t0, (u0, s0), g0 = time.monotonic(), ticks(), pi.vm.cpu_seconds()
        n = 0
        while time.monotonic() - t0 < seconds:  # a phone's pace, not a wait for anything
            client.tilt((20, 40, -20, -40)[n % 4])
            n += 1
            time.sleep(max(0.0, t0 + n / 60 - time.monotonic()))
        (u1, s1), g1, t1 = ticks(), pi.vm.cpu_seconds(), time.monotonic()
    dt = t1 - t0
    return 100 * (u1 - u0) / hz / dt, 100 * (s1 - s0) / hz / dt, 100 * (g1 - g0) / dt


def test_cpu_software_against_hardware_pwm_at_60_hz(pi: Pi, pwm_chip: str) -> None:
    """Requirement 6 in the stand-in: CPU while a 60 Hz client drives both
    LEDs, software PWM (lgpio's thread) against hardware PWM (the kernel's
    pwm-gpio), both at 100 Hz, one after the other in one run. pwm-gpio is
    itself a PWM made by a CPU (an hrtimer in the kernel) where a Pi's PWM
    block costs none: so the daemon's own figures are the comparison, the
    guest's total shows what the kernel's timer costs. Figures only (-s)."""
    _options(pi, pwm='"software"', frequency_hz="100.0")
    pi.restart()
    software = _cpu_at_60_hz(pi)
    _options(pi, pwm='"hardware"', left_pin='"GPIO19"', hardware_frequency_hz="100.0", frequency_hz="100.0",
             pwm_channels='["GPIO18=pwm-gpio.0:0", "GPIO19=pwm-gpio.1:0"]')
    pi.restart()
    hardware = _cpu_at_60_hz(pi)
    for name, (user, system, guest_total) in (("software PWM (lgpio)", software), ("hardware PWM (pwm-gpio)", hardware)):
        print(f"60 Hz client, both LEDs, 100 Hz PWM, {name}: daemon {user:.1f} % user + {system:.1f} % system of a core; whole guest {guest_total:.0f} %")
    assert software[0] + software[1] > 0 and hardware[0] + hardware[1] > 0
