"""The booted stand-in as the tests use it: a Pi user's steps, the project's
client from the host, and the simulator's side of the GPIO lines."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from tests.support.harness import G, free_port, wait_until

from . import guest as g

T = TypeVar("T")

CHECKOUT = "/home/pi/gravity-led"
LINES = "python3 /mnt/share/standin/lines.py"
RIGHT, LEFT = 18, 22  # GPIO18, GPIO22: daemon.toml's defaults
TOLERANCE = 0.05
FREQUENCY_HZ = 10.0
"""The tests set frequency_hz to this in daemon.toml (as a user would): lgpio's
software PWM is a thread timed by sleeps, and under emulation, with the other
guest at work, a wake-up a millisecond or two late is common. At the default
100 Hz that is 0.1 to 0.2 of a period; at 10 Hz, 0.01 to 0.02."""
MEASURE_S = 1.2
"""How long a duty is measured: 12 periods at 10 Hz, of which the median counts."""


def missing() -> str | None:
    """Why the stand-in cannot run here, or None."""
    if os.geteuid() != 0:
        return "the Pi stand-in needs root (mmdebstrap, mkfs.ext4 -d)"
    for tool in ("qemu-system-x86_64", "qemu-img", "mmdebstrap", "mkfs.ext4"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs what the Pi stand-in needs)"
    return None


class Pi:
    """The booted stand-in, with the steps a Pi user (and the tests) take."""

    def __init__(self, vm: g.Guest) -> None:
        self.vm = vm
        self.port = vm.port

    def install(self, *flags: str, expect_pip: bool | None = None) -> str:
        self.vm.progress(f"install.sh {' '.join(flags)}".rstrip())
        r = self.vm.sh(f"cd {CHECKOUT} && deploy/install.sh {' '.join(flags)} </dev/null 2>&1", timeout=900)
        assert r.rc == 0, f"install.sh {' '.join(flags)}: {r}"
        if expect_pip is not None:
            assert ("pip skipped" not in r.out) == expect_pip, r.out
        return r.out

    def uninstall(self, *flags: str) -> str:
        self.vm.progress(f"install.sh --uninstall {' '.join(flags)}".rstrip())
        return self.vm.ok(f"cd {CHECKOUT} && deploy/install.sh --uninstall {' '.join(flags)} 2>&1", timeout=300)

    def mdns(self, service_type: str) -> dict[str, tuple[int, set[str]]]:
        """What the guest's avahi-daemon resolves for ``service_type``: instance name -> (port, TXT strings)."""
        found = {}
        for line in self.vm.ok(f"avahi-browse -rpt {service_type}", timeout=60).splitlines():
            f = line.split(";")
            if f[0] == "=" and len(f) >= 10:  # resolved: =;iface;proto;name;type;domain;host;address;port;"txt" "txt"
                found[f[3].replace("\\032", " ")] = (int(f[8]), set(re.findall(r'"([^"]*)"', f[9])))
        return found

    def systemctl(self, *args: str) -> str:
        return self.vm.sh("systemctl " + " ".join(args)).out.strip()

    def active(self, unit: str) -> str:
        return self.systemctl("is-active", unit)

    def show(self, prop: str, unit: str = "gravity-led.service") -> str:
        return self.systemctl("show", "-p", prop, "--value", unit)

    def main_pid(self) -> int:
        return int(self.show("MainPID") or 0)

    def lines(self, *args: object, timeout: float = 60) -> dict:
        out = self.vm.ok(f"{LINES} " + " ".join(map(str, args)), timeout=timeout)
        return json.loads(out)

    def measure(self, chip: int, seconds: float, *offsets: int) -> dict:
        """Each line's duty and frequency over ``seconds``: medians over whole
        periods of the kernel's record of its edges (standin/lines.py)."""
        return self.lines("measure", chip, seconds, *offsets)

    def http(self, path: str, timeout: float = 60) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as r:
            return r.read()

    def status(self) -> dict:
        return json.loads(self.http("/status"))

    def wait_until(self, what: str, check: Callable[[], T], timeout: float = 60.0, every: float = 0.2) -> T:
        """Poll ``check()`` until it is truthy (the guest offers no event to await)."""
        return wait_until(check, timeout=timeout, interval=every, what=what)

    def restart(self) -> None:
        """A restart, clear of the unit's start limit (the tests restart often)."""
        self.systemctl("reset-failed", "gravity-led.service")
        r = self.vm.sh("systemctl restart gravity-led.service", timeout=120)
        assert r.rc == 0, r
        self.wait_until("/healthz", self.healthz)

    def healthz(self) -> bool:
        try:
            return self.http("/healthz", timeout=10).strip() == b"ok"
        except OSError:
            return False

    def restarted(self, old_pid: int, timeout: float = 120) -> int:
        """Wait until systemd runs the daemon as a process other than ``old_pid``; its pid."""
        return self.wait_until("the restarted daemon", lambda: (lambda p: p if p not in (0, old_pid) else None)(self.main_pid()), timeout=timeout, every=0.5)


@contextlib.contextmanager
def booted(name: str, workdir: Path, board: str = "pi4", suite: str = "bookworm") -> Iterator[Pi]:
    """A guest of ``suite`` restored from its cached snapshot, made a ``board``
    stand-in, with a clone of this checkout in /home/pi (as a Pi user has one)."""
    t0 = time.monotonic()
    images = g.build(suite)
    with g.Guest(images, workdir, port=free_port(), name=name) as vm:
        vm.boot()
        vm.progress(f"guest up ({time.monotonic() - t0:.0f} s); making it a {board} stand-in on {suite}")
        vm.ok("mkdir -p /mnt/share /home/pi && mount -o ro /dev/vdb /mnt/share"
              f" && sh /mnt/share/standin/setup.sh {board} && cp -a /mnt/share/gravity-led {CHECKOUT}")
        yield Pi(vm)
        vm.progress(f"powering off ({time.monotonic() - t0:.0f} s)")


class Client:
    """``gravity-led-client stdin`` from the host, through the forwarded port."""

    def __init__(self, port: int) -> None:
        from tests.support.harness import clean_env

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gravity_led.client", "stdin", "--url", f"ws://127.0.0.1:{port}", "-q"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(),
        )

    def tilt(self, degrees: float) -> None:
        """Tilt the simulated phone: right for positive degrees (the right LED shows sin)."""
        th = math.radians(degrees)
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"0 {G * math.sin(th):.4f} {G * math.cos(th):.4f}\n")
        self.proc.stdin.flush()

    def leave(self) -> tuple[int, str]:
        out, err = self.proc.communicate(timeout=60)  # closes stdin: end of input
        return self.proc.returncode, err

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def expect_leds(pi: Pi, right: float, left: float) -> None:
    """Wait until /status reports these levels (read back from the pins:
    gpiozero's lgpio pin keeps a whole percent, so within 0.011)."""
    last: list[dict] = []

    def matches() -> bool:
        last[:] = [pi.status()["leds"]]
        return abs(last[0]["right"] - right) <= 0.011 and abs(last[0]["left"] - left) <= 0.011

    try:
        pi.wait_until(f"the daemon to report right={right:.3f} left={left:.3f}", matches)
    except AssertionError as e:
        raise AssertionError(f"{e}; it reports {last}") from None


def check_duties(pi: Pi, client: Client, *, chip: int = 0) -> list[str]:
    """Three tilts each side: the simulator measures each line's duty and frequency."""
    seen = []
    for degrees in (20, 45, 70, -20, -45, -70):
        client.tilt(degrees)
        want = math.sin(math.radians(abs(degrees)))
        right, left = (want, 0.0) if degrees > 0 else (0.0, want)
        expect_leds(pi, right, left)
        m = pi.measure(chip, MEASURE_S, RIGHT, LEFT)
        for offset, duty in ((RIGHT, right), (LEFT, left)):
            got = m[str(offset)]
            seen.append(f"{degrees:+d} deg GPIO{offset}: duty {got['duty']:.3f} (want {duty:.3f}) at {got['hz']:.1f} Hz ({got['periods']} periods)")
            assert abs(got["duty"] - duty) <= TOLERANCE, seen[-1]
            if duty > 0:
                assert got["periods"] >= 0.8 * FREQUENCY_HZ * MEASURE_S - 1, seen[-1]
                assert 0.9 * FREQUENCY_HZ <= got["hz"] <= 1.1 * FREQUENCY_HZ, seen[-1]
            else:
                assert got["hz"] == 0, seen[-1]
    return seen


def check_ready_under_the_shipped_unit(pi: Pi) -> None:
    """a: the daemon as the install started it, under the shipped units."""
    # the shipped units, unchanged; only the stand-in's drop-in beside them
    pi.vm.ok(f"cmp /etc/systemd/system/gravity-led.service {CHECKOUT}/deploy/gravity-led.service"
             f" && cmp /etc/systemd/system/gravity-led.socket {CHECKOUT}/deploy/gravity-led.socket")
    dropins = pi.vm.ok("ls /etc/systemd/system/gravity-led.service.d/").split()
    assert dropins == ["50-pi-standin.conf"]
    # Type=notify: active (running) only after READY=1
    assert pi.show("ActiveState") == "active" and pi.show("SubState") == "running"
    assert pi.show("StatusText").startswith("idle"), pi.show("StatusText")
    out = pi.vm.ok("systemd-analyze security --no-pager gravity-led.service", timeout=120)
    score = float(re.search(r"Overall exposure level for gravity-led\.service: (\d+\.\d+)", out).group(1))
    assert score <= 1.5, out
    invocation = pi.show("InvocationID")
    warnings = pi.vm.ok(f"journalctl --no-pager -q -p warning _SYSTEMD_INVOCATION_ID={invocation}")
    assert warnings.strip() == "", warnings
    log = pi.vm.ok(f"journalctl --no-pager -q -o cat _SYSTEMD_INVOCATION_ID={invocation}")
    assert "pin factory" not in log.lower() or "lgpio" in log.lower(), log
    # the programs are on the PATH sudo uses
    assert re.search(r"\d+\.\d+", pi.vm.ok("sudo -n gravity-led-daemon --version 2>&1; sudo -n gravity-led-client --help >/dev/null"))
