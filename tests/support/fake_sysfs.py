"""A stand-in for the kernel's PWM sysfs (/sys/class/pwm) on a plain directory.

The backend (daemon/hwpwm.py) reads the tree with ordinary file reads and
writes every attribute through a ``SysfsWriter``; :class:`FakeSysfs` is that
writer, and it enforces the kernel's rules (Documentation/ABI/testing/
sysfs-class-pwm, drivers/pwm/core.c) before it changes the files:

- ``export`` creates ``pwmN`` a moment later (a thread), and its attributes
  belong to root until "udev" gives them to group gpio another moment later
  (or never, without the rule); exporting twice is EBUSY, N >= npwm EINVAL;
- while ``period`` is 0 (as after an export) every other write is EINVAL
  (the PWM core refuses any state with period 0, enabled or not);
- ``period`` below the current ``duty_cycle``, or 0, is EINVAL; ``duty_cycle``
  above ``period`` is EINVAL; ``enable`` is 0 or 1;
- a write to a root-owned attribute by anyone else is EACCES; ``unexport`` of
  a channel not exported is EINVAL.

What it proves: the order of the backend's writes, its wait for export and
udev, its error sentences, release and take-over.  What it does not: that a
real driver accepts the same values (rounding, limits) or that the pin
really toggles; the Pi stand-in's pwm-gpio tier does that.
"""

from __future__ import annotations

import errno
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FakeSysfs"]


def _cells(*values: int) -> bytes:
    return b"".join(v.to_bytes(4, "big") for v in values)


@dataclass
class _Channel:
    exported: bool = False
    owner: str = "root"


@dataclass
class _Chip:
    path: Path
    npwm: int
    channels: dict[int, _Channel] = field(default_factory=dict)


class FakeSysfs:
    """A PWM sysfs tree under ``root`` and the writer that guards it."""

    def __init__(self, root: Path, *, user: str = "gpio", export_delay_s: float = 0.01, udev_delay_s: float = 0.01, udev_rule: bool = True) -> None:
        self.root = root
        self.user = user
        self.export_delay_s = export_delay_s
        self.udev_delay_s = udev_delay_s
        self.udev_rule = udev_rule
        self.writes: list[tuple[str, str]] = []
        """Every accepted write: (path relative to the chip, text)."""
        self._chips: dict[Path, _Chip] = {}
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self._phandle = 0x40
        (root / "sys/class/pwm").mkdir(parents=True, exist_ok=True)

    # ---- building the tree ------------------------------------------------
    def add_chip(self, number: int, device: str, *, npwm: int = 2, compatible: str | None = None, pins: tuple[int, ...] | None = None, board: str | None = None) -> Path:
        """``pwmchip<number>`` of controller ``device``; with ``compatible``,
        a device-tree node (and ``pins``: its pinctrl-0 group's brcm,pins)."""
        dev = self.root / "sys/devices/platform" / device
        chip = dev / "pwm" / f"pwmchip{number}"
        chip.mkdir(parents=True)
        for name, text in (("export", ""), ("unexport", ""), ("npwm", f"{npwm}\n")):
            (chip / name).write_text(text)
        os.symlink(os.path.relpath(dev, chip), chip / "device")
        os.symlink(os.path.relpath(chip, self.root / "sys/class/pwm"), self.root / "sys/class/pwm" / chip.name)
        if compatible is not None:
            base = self.root / "sys/firmware/devicetree/base"
            node = base / "soc" / f"pwm@{device}"
            node.mkdir(parents=True)
            (node / "compatible").write_bytes(compatible.encode() + b"\0")
            if pins is not None:
                self._phandle += 1
                group = base / "soc/gpio" / f"pwm_pins_{device}"
                group.mkdir(parents=True)
                (group / "phandle").write_bytes(_cells(self._phandle))
                (group / "brcm,pins").write_bytes(_cells(*pins))
                (node / "pinctrl-0").write_bytes(_cells(self._phandle))
            os.symlink(os.path.relpath(node, dev), dev / "of_node")
        if board is not None:
            (self.root / "proc/device-tree").mkdir(parents=True, exist_ok=True)
            (self.root / "proc/device-tree/compatible").write_bytes(board.encode() + b"\0")
        self._chips[chip] = _Chip(chip, npwm)
        return self.root / "sys/class/pwm" / chip.name

    def exported(self, chip: Path, n: int) -> None:
        """``pwmN`` there already, writable by anyone: for a daemon process,
        which writes plain files (no rules) through the real writer."""
        d = chip / f"pwm{n}"
        d.mkdir()
        for name in ("period", "duty_cycle", "enable"):
            (d / name).write_text("0\n")

    def channel(self, chip: Path, n: int) -> dict[str, int] | None:
        """What the hardware would do: period, duty_cycle, enable (None: not exported)."""
        d = chip / f"pwm{n}"
        with self._lock:  # not half made: the export's timer creates the files under this lock
            if not d.is_dir():
                return None
            return {a: int((d / a).read_text()) for a in ("period", "duty_cycle", "enable")}

    def close(self) -> None:
        for t in self._timers:
            t.cancel()

    # ---- the writer ---------------------------------------------------------
    def writable(self, path: Path) -> bool:
        path = Path(os.path.realpath(path))
        with self._lock:
            chip = self._chips.get(path.parent.parent)
            n = int(path.parent.name.removeprefix("pwm")) if path.parent.name.startswith("pwm") else -1
            ch = chip.channels.get(n) if chip is not None else None
            return ch is not None and ch.exported and path.exists() and (ch.owner == self.user or self.user == "root")

    def write(self, path: Path, text: str) -> None:
        path = Path(os.path.realpath(path))
        with self._lock:
            chip = self._chips.get(path.parent) or self._chips.get(path.parent.parent)
            if chip is None:
                raise PermissionError(errno.EACCES, "Permission denied (read-only sysfs)", str(path))
            if path.parent == chip.path:
                self._chip_write(chip, path.name, text)
            else:
                self._attr_write(chip, path, text)
            self.writes.append((str(path.relative_to(chip.path)), text))

    def open(self, path: Path) -> Path:
        """An attribute kept open (the kernel checks the permission here, at
        open): its handle is its path, and every rewrite obeys the rules."""
        if not self.writable(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return path

    def rewrite(self, handle: Path, text: str) -> None:
        self.write(handle, text)

    def release(self, handle: Path) -> None:
        pass

    def _chip_write(self, chip: _Chip, name: str, text: str) -> None:
        if name not in ("export", "unexport"):
            raise PermissionError(errno.EACCES, "Permission denied", name)
        try:
            n = int(text)
        except ValueError:
            raise OSError(errno.EINVAL, "Invalid argument", name) from None
        if not 0 <= n < chip.npwm:
            raise OSError(errno.EINVAL, "Invalid argument", name)
        ch = chip.channels.setdefault(n, _Channel())
        if name == "export":
            if ch.exported:
                raise OSError(errno.EBUSY, "Device or resource busy", name)
            ch.exported, ch.owner = True, "root"
            self._later(self.export_delay_s, self._create, chip, n)
        else:
            if not ch.exported:
                raise OSError(errno.EINVAL, "Invalid argument", name)
            ch.exported = False
            d = chip.path / f"pwm{n}"
            for f in d.iterdir() if d.is_dir() else ():
                f.unlink()
            if d.is_dir():
                d.rmdir()

    def _later(self, delay_s: float, fn, *args) -> None:
        t = threading.Timer(delay_s, fn, args)
        t.daemon = True
        self._timers.append(t)
        t.start()

    def _create(self, chip: _Chip, n: int) -> None:
        with self._lock:
            ch = chip.channels[n]
            if not ch.exported:
                return
            d = chip.path / f"pwm{n}"
            d.mkdir()
            for name, text in (("period", "0"), ("duty_cycle", "0"), ("enable", "0"), ("polarity", "normal")):
                (d / name).write_text(text + "\n")
        if self.udev_rule:
            self._later(self.udev_delay_s, self._udev, ch)

    def _udev(self, ch: _Channel) -> None:
        with self._lock:
            if ch.exported:
                ch.owner = "gpio"

    def _attr_write(self, chip: _Chip, path: Path, text: str) -> None:
        n = int(path.parent.name.removeprefix("pwm")) if path.parent.name.startswith("pwm") else -1
        ch = chip.channels.get(n)
        if ch is None or not ch.exported or not path.parent.is_dir():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
        if ch.owner != self.user and self.user != "root":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        cur = {a: int((path.parent / a).read_text()) for a in ("period", "duty_cycle", "enable")}
        try:
            value = int(text)
        except ValueError:
            raise OSError(errno.EINVAL, "Invalid argument", str(path)) from None
        name = path.name
        bad = (
            (name != "period" and cur["period"] == 0)  # the core refuses any state with period 0
            or (name == "period" and (value <= 0 or value < cur["duty_cycle"]))
            or (name == "duty_cycle" and not 0 <= value <= cur["period"])
            or (name == "enable" and (value not in (0, 1) or value == 1 and cur["period"] == 0))
            or name not in cur
        )
        if bad:
            raise OSError(errno.EINVAL, "Invalid argument", str(path))
        path.write_text(f"{value}\n")
