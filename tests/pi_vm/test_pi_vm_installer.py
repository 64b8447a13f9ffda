"""Every path through deploy/install.sh a Pi user can take (requirement g, and b),
on a Raspberry Pi stand-in.

These steps run in order on their own guest, in a thread started with the
tier's first test (see scenario.py): the plain install on a fresh Pi (a copy
of the guest then serves test_pi_vm.py, which runs meanwhile), the daemon's
CPU with software and hardware PWM (pwm_cpu.py: figures), --socket over
it while it runs, an upgrade in place back to the plain install, uninstall,
--socket where only the kept config is left, and --purge. Each step is
reported as a test of its own.
"""

from __future__ import annotations

import re

import pytest

from gravity_led.daemon.dnssd import SERVICE_TYPE, txt_record

from .pi import CHECKOUT, Pi
from .pwm_cpu import daemon_cpu_with_software_and_hardware_pwm
from .scenario import Scenario, outcome_as_test

pytestmark = [pytest.mark.pi_vm, pytest.mark.timeout(1800)]


def plain_install_on_a_fresh_pi(pi: Pi) -> None:
    """g (the plain install), and the installer on an OS lacking Raspberry Pi OS's packages .
    A copy of the guest as this leaves it serves test_pi_vm.py."""
    out = pi.install(expect_pip=True)
    # Debian has no python3-lgpio nor python3-rpi.gpio: named in one line, taken from PyPI
    note = [line for line in out.splitlines() if line.startswith("note:")]
    assert len(note) == 1 and "python3-lgpio" in note[0] and "python3-rpi.gpio" in note[0], out
    assert "lgpio rpi-lgpio from PyPI" in note[0], note
    # the installed gpiozero carries the Pi 5 fix (Debian's own is 1.6)
    version = pi.vm.ok("/opt/gravity-led/venv/bin/python -c 'import importlib.metadata as m; print(m.version(\"gpiozero\"))'").strip()
    assert version == "2.0.1.post3", version
    assert pi.systemctl("is-enabled", "gravity-led.service") == "enabled"
    assert pi.systemctl("is-enabled", "gravity-led.socket") == "disabled"
    assert pi.active("gravity-led.service") == "active" and pi.active("gravity-led.socket") == "inactive"
    assert pi.http("/healthz").strip() == b"ok"
    # the installer told how to get the phone's page working
    assert "sudo gravity-led-daemon make-cert" in out
    assert "==> advertised over mDNS: /etc/avahi/services/gravity-led.service" in out
    check_advertised_over_mdns(pi)


def check_advertised_over_mdns(pi: Pi) -> None:
    """The installer's Avahi service file: avahi-daemon advertises the daemon's
    port and TXT record (the project's client finds it: test_pi_vm.py, on the copy)."""
    pi.vm.progress("mDNS: avahi-browse")
    want = {f"{k}={v}" for k, v in txt_record(tls=False).items()}
    found = pi.wait_until("avahi-daemon to advertise _gravity-led._tcp", lambda: pi.mdns(SERVICE_TYPE), timeout=60, every=1)
    # one service, named after the host as avahi-daemon holds it ("raspberrypi-2" after a name clash,
    # which the stand-in's avahi sometimes sees with its own packets while QEMU's IPv6 address settles)
    [(name, (port, txt))] = found.items()
    assert re.fullmatch(r"gravity-led on raspberrypi(-\d+)?", name) and port == 5678 and txt == want, found
    assert pi.mdns("_http._tcp") == {name: (5678, {"path=/"})}


def socket_over_a_running_plain_install(pi: Pi) -> None:
    """g: --socket over the plain install while it runs (this failed once: the
    socket refused to start beside the running service); the first connection
    then reaches the daemon through the socket."""
    pi.install("--socket", expect_pip=False)
    assert pi.systemctl("is-enabled", "gravity-led.socket") == "enabled"
    assert pi.systemctl("is-enabled", "gravity-led.service") == "disabled"
    assert pi.active("gravity-led.socket") == "active"
    assert pi.http("/healthz").strip() == b"ok"
    assert pi.active("gravity-led.service") == "active"


def upgrade_in_place_and_back_to_plain_keeping_the_config(pi: Pi) -> None:
    """g: ``git pull`` then the plain install, over --socket: the new code runs
    (a pull that changes code but not __version__), the service listens by
    itself again, and the user's edited config is kept."""
    before = pi.status()["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+\+src\.[0-9a-f]{12}", before), before  # the installed source's hash
    pi.vm.ok("printf 'stale_after_s = 0.7\\n' >> /etc/gravity-led/daemon.toml")
    pi.vm.ok(f"printf '\\nPULLED = True\\n' >> {CHECKOUT}/daemon/__init__.py")
    out = pi.install(expect_pip=True)
    assert "keeping existing /etc/gravity-led/daemon.toml" in out
    after = pi.status()["version"]
    assert after != before and after.split("+")[0] == before.split("+")[0], (before, after)
    pi.vm.ok("/opt/gravity-led/venv/bin/python -c 'import gravity_led.daemon as d; assert d.PULLED'")
    assert pi.status()["stale_after_s"] == 0.7
    assert pi.active("gravity-led.socket") == "inactive" and pi.systemctl("is-enabled", "gravity-led.socket") == "disabled"
    assert pi.systemctl("is-enabled", "gravity-led.service") == "enabled"


def uninstall_keeps_only_the_edited_config(pi: Pi) -> None:
    """g: only what docs/pi.md says it keeps (the edited config), and the stand-in's drop-in."""
    out = pi.uninstall()
    assert "kept /etc/gravity-led/daemon.toml" in out
    left = pi.vm.ok("ls -d /opt/gravity-led /etc/gravity-led/* /etc/systemd/system/gravity-led* /usr/local/bin/gravity-led* 2>/dev/null; true").split()
    assert left == ["/etc/gravity-led/daemon.toml", "/etc/systemd/system/gravity-led.service.d"], left
    assert pi.vm.sh("getent passwd gravity-led").rc != 0 and pi.vm.sh("getent group gravity-led").rc != 0
    assert pi.active("gravity-led.service") in ("inactive", "unknown")
    assert pi.active("gravity-led.socket") in ("inactive", "unknown")
    # no longer advertised over mDNS (the service file went with the rest)
    assert pi.vm.sh("test -e /etc/avahi/services/gravity-led.service").rc != 0
    pi.wait_until("avahi-daemon to withdraw _gravity-led._tcp", lambda: pi.mdns(SERVICE_TYPE) == {}, timeout=60, every=1)


def socket_on_a_pi_without_gravity_led(pi: Pi) -> None:
    """b, g: --socket where gravity-led is not installed (no venv, user, group
    or units: only the config the uninstall kept); the first connection starts
    the service. The group gets another number this time, and the kept config
    must follow it (a reinstall once left it unreadable by the service)."""
    old_gid = pi.vm.ok("stat -c %g /etc/gravity-led/daemon.toml").strip()
    pi.vm.ok("groupadd --system --gid " + old_gid + " taken-gid")
    try:
        pi.install("--socket", expect_pip=True)
    finally:
        pi.vm.ok("groupdel taken-gid")
    assert pi.vm.ok("stat -c %G /etc/gravity-led/daemon.toml").strip() == "gravity-led"
    assert pi.systemctl("is-enabled", "gravity-led.socket") == "enabled"
    assert pi.active("gravity-led.socket") == "active"
    assert pi.active("gravity-led.service") == "inactive"
    # the first connection (from the host, through the forwarded port) starts it
    assert pi.status()["stale_after_s"] == 0.7
    assert pi.active("gravity-led.service") == "active"


def purge_leaves_nothing(pi: Pi) -> None:
    """g: --purge: nothing left but the stand-in's drop-in."""
    pi.uninstall("--purge")
    left = pi.vm.ok("ls -d /opt/gravity-led /etc/gravity-led /etc/systemd/system/gravity-led* /usr/local/bin/gravity-led* 2>/dev/null; true").split()
    assert left == ["/etc/systemd/system/gravity-led.service.d"], left
    assert pi.vm.sh("getent passwd gravity-led").rc != 0
    assert pi.active("gravity-led.socket") in ("inactive", "unknown")


STEPS = [
    plain_install_on_a_fresh_pi,
    daemon_cpu_with_software_and_hardware_pwm,  # pwm_cpu.py
    socket_over_a_running_plain_install,
    upgrade_in_place_and_back_to_plain_keeping_the_config,
    uninstall_keeps_only_the_edited_config,
    socket_on_a_pi_without_gravity_led,
    purge_leaves_nothing,
]
FIRST = plain_install_on_a_fresh_pi.__name__
"""The step after which a copy of the guest serves test_pi_vm.py."""


@pytest.mark.parametrize("step", [s.__name__ for s in STEPS])
def test_installer_path(step: str, installer_scenario: Scenario[Pi], request: pytest.FixtureRequest) -> None:
    outcome_as_test(installer_scenario, step, request)
