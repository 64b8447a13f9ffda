"""A Raspberry Pi 5 on trixie (Debian 13: systemd 257, Python 3.13): the plain
install, the shipped hardened unit, and both pin factories on the Pi 5's
gpiochip4 (requirements 4, h, and c with rpigpio). The guest stands in for
Raspberry Pi OS trixie: it has python3-lgpio and python3-rpi-lgpio installed
as Debian packages (made from the upstream releases, tests/pi_vm/build.sh).

Raspberry Pi OS trixie is what a new Pi user gets today, and a Pi 5 is the
board whose GPIO moved (the RP1 chip, which only lgpio and rpi-lgpio drive).
These steps run in order on a trixie guest of their own, in a thread started
with the tier's first test, beside the bookworm guests (scenario.py); each is
reported as a test. The guest boots bookworm's kernel (gpio-sim is built for
it): what a release changes for the project is its user space.
"""

from __future__ import annotations

import math
import re

import pytest

from .pi import CHECKOUT, FREQUENCY_HZ, LEFT, RIGHT, Client, Pi, check_duties, check_ready_under_the_shipped_unit, expect_leds
from .scenario import Scenario, outcome_as_test

pytestmark = [pytest.mark.pi_vm, pytest.mark.timeout(1800)]


def plain_install_on_a_pi5_with_trixie(pi: Pi) -> None:
    """Requirement 4 on (a stand-in for) Raspberry Pi OS trixie: the OS has
    every package (python3-lgpio, python3-rpi-lgpio, the Pi 5's RPi.GPIO), so
    no note and nothing of them from PyPI (which has no lgpio wheel for
    Python 3.13); gpiozero comes from PyPI, as the OS's (here Debian's 1.6)
    lacks the Pi 5 fix."""
    assert pi.vm.ok("systemctl --version").split()[1] == "257", pi.vm.ok("systemctl --version")
    out = pi.install(expect_pip=True)
    assert not [line for line in out.splitlines() if line.startswith("note:")], out
    assert re.search(r"apt-get install.* python3-lgpio.* python3-rpi-lgpio", out), out
    found = pi.vm.ok("/opt/gravity-led/venv/bin/python -c 'import sys, importlib.metadata as m, importlib.util as u;"
                     " print(*sys.version_info[:2], m.version(\"gpiozero\"), u.find_spec(\"lgpio\").origin, u.find_spec(\"RPi.GPIO\").origin)'").split()
    assert found[:3] == ["3", "13", "2.0.1.post3"], found
    assert all(f.startswith("/usr/lib/python3/dist-packages/") for f in found[3:]), found  # the OS's packages
    assert pi.active("gravity-led.service") == "active"
    assert pi.http("/healthz").strip() == b"ok"


def ready_under_the_shipped_hardened_unit_on_systemd_257(pi: Pi) -> None:
    """a on systemd 257: READY, exposure at most 1.5, no warning in the journal."""
    check_ready_under_the_shipped_unit(pi)


def pi5_lines_driven_with_lgpio(pi: Pi) -> None:
    """h, and c: measured duties on gpiochip4, where a Pi 5's GPIO is; gpiochip0 untouched."""
    pi.vm.ok(f"printf 'frequency_hz = {FREQUENCY_HZ}\\n' >> /etc/gravity-led/daemon.toml")
    pi.restart()
    assert pi.status()["pin_factory"] == "lgpio"
    with Client(pi.port) as client:
        seen = check_duties(pi, client, chip=4)
        client.tilt(45)
        expect_leds(pi, math.sin(math.radians(45)), 0.0)
        m0 = pi.measure(0, 0.3, RIGHT, LEFT)
    assert m0[str(RIGHT)]["duty"] == 0 and m0[str(LEFT)]["duty"] == 0, "drove gpiochip0, not the Pi 5's gpiochip4"
    print("\n".join(seen))


def pi5_lines_driven_with_rpigpio(pi: Pi) -> None:
    """c with the RPi.GPIO API, chosen as docs/troubleshooting.md says (a drop-in): on a
    Pi 5 that is rpi-lgpio, the package the installer named."""
    pi.vm.ok("mkdir -p /etc/systemd/system/gravity-led.service.d && printf '[Service]\\nEnvironment=GRAVITY_LED_PIN_FACTORY=rpigpio\\n'"
             " > /etc/systemd/system/gravity-led.service.d/60-factory.conf && systemctl daemon-reload")
    pi.restart()
    assert pi.status()["pin_factory"] == "rpigpio"
    with Client(pi.port) as client:
        seen = check_duties(pi, client, chip=4)
    print("\n".join(seen))


def without_python3_lgpio_the_installer_says_what_building_it_needs(pi: Pi) -> None:
    """Requirement 4, the other side: Debian (or Ubuntu) trixie without
    Raspberry Pi OS's python3-lgpio, where PyPI has lgpio for Python 3.13
    only as source (the stand-in's wheelhouse has no lgpio at all). One line
    names the missing packages; when pip then cannot install lgpio, one
    sentence says what building it needs; the running install is untouched."""
    pi.vm.ok("dpkg -r python3-rpi-lgpio python3-lgpio >/dev/null")
    pi.vm.progress("install.sh (without python3-lgpio: fails)")
    r = pi.vm.sh(f"cd {CHECKOUT} && deploy/install.sh </dev/null 2>&1", timeout=900)
    assert r.rc == 1, r
    note = [line for line in r.out.splitlines() if line.startswith("note:")]
    assert len(note) == 1 and "python3-lgpio" in note[0] and "python3-rpi-lgpio" in note[0], r.out
    last = r.out.strip().splitlines()[-1]
    assert last.startswith("install.sh: pip could not install lgpio") and "sudo apt-get install swig gcc python3-dev" in last, r.out
    assert "Traceback" not in r.out, r.out
    assert pi.active("gravity-led.service") == "active" and pi.healthz()


STEPS = [
    plain_install_on_a_pi5_with_trixie,
    ready_under_the_shipped_hardened_unit_on_systemd_257,
    pi5_lines_driven_with_lgpio,
    pi5_lines_driven_with_rpigpio,
    without_python3_lgpio_the_installer_says_what_building_it_needs,
]


@pytest.mark.parametrize("step", [s.__name__ for s in STEPS])
def test_trixie_pi5(step: str, trixie_scenario: Scenario[Pi], request: pytest.FixtureRequest) -> None:
    outcome_as_test(trixie_scenario, step, request)
