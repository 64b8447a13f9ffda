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


def test_the_client_finds_the_daemon_that_avahi_advertises(pi: Pi) -> None:
    """python-zeroconf (gravity-led-client discover) reads what avahi-daemon
    advertises from the installer's service file (here on the Pi itself)."""
    listed = pi.vm.ok("/usr/local/bin/gravity-led-client discover", timeout=120)
    assert re.match(r"gravity-led on (raspberrypi(-\d+)?): ws://10\.0\.2\.15:5678/ \(\1\.local, ", listed), listed  # the name avahi holds


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
