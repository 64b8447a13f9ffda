"""The kernel's PWM hardware through sysfs (/sys/class/pwm): find the
channel that serves a GPIO, and drive it (export, period, duty_cycle,
enable; unexport on close).  No gpiozero here: daemon/pwmpins.py fits this
under gpiozero's pin seam.

Channels are found by their device, not the chip number (which differs
between boards, kernels and boot orders, and a Pi 5 has several PWM
controllers): each ``pwmchipN``'s ``device`` link names the controller, its
device-tree node says which controller it is (``compatible``) and which pins
the overlay handed it (``pinctrl-0``).  Where there is no device tree (the
stand-in's pwm-gpio), ``pwm_channels`` names them.

Every write goes through a :class:`SysfsWriter`: the kernel refuses some
writes (a duty above the period is EINVAL, so the order of writes matters),
and the fast tests replace the writer with one that enforces the kernel's
rules on a plain directory (tests/unit/fake_sysfs.py).
"""

from __future__ import annotations

import errno
import os
import re
import time
from typing import Any
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, HardwareError
from .mockpins import SYSFS_ROOT_ENV

__all__ = ["ChannelSpec", "PwmChannel", "SysfsWriter", "find_channels", "overlay_advice", "parse_overrides"]

EXPORT_WAIT_S = 5.0
"""How long ``pwmN`` may take to appear and udev to hand it to group gpio
(milliseconds on a Pi; seconds on a loaded emulated one)."""

# PWM controllers by device-tree ``compatible``: GPIO -> channel, fixed by the
# silicon (BCM2835 family: PWM0 on GPIO12/18, PWM1 on 13/19; RP1: channels 0-3
# on GPIO12, 13, 18, 19).
_CONTROLLERS: dict[str, dict[int, int]] = {
    "brcm,bcm2835-pwm": {12: 0, 18: 0, 13: 1, 19: 1},
    "raspberrypi,rp1-pwm": {12: 0, 13: 1, 18: 2, 19: 3},
}
_HEADER_PWM_PINS = (12, 13, 18, 19)


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """Where one GPIO's PWM lives: ``chip`` is the pwmchipN directory."""

    gpio: int
    chip: Path
    channel: int
    device: str  # the controller's device name, for messages


class SysfsWriter:
    """The one place that writes sysfs attributes (the tests' seam)."""

    def writable(self, path: Path) -> bool:
        """Whether we may write ``path`` (it exists, and udev gave it to us)."""
        return os.access(path, os.W_OK)

    def write(self, path: Path, text: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)  # as the shell's ">": sysfs ignores O_TRUNC, plain files (tests) need it
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def open(self, path: Path) -> int:
        """``path`` kept open for :meth:`rewrite`: ``duty_cycle`` changes with
        every LED write, and looking it up, opening and closing it cost ten
        times the write itself (130 against 10 µs in the Pi stand-in)."""
        return os.open(path, os.O_WRONLY | os.O_CLOEXEC)

    def rewrite(self, fd: int, text: str) -> None:
        os.ftruncate(fd, 0)  # sysfs ignores it; plain files (tests) need it
        os.pwrite(fd, text.encode(), 0)  # sysfs takes each write whole, at offset 0

    def release(self, fd: int) -> None:
        os.close(fd)


def sysfs_root(root: str | os.PathLike[str] | None = None) -> Path:
    return Path(root if root is not None else os.environ.get(SYSFS_ROOT_ENV) or "/")


def _device_name(chip: Path) -> str:
    try:
        os.readlink(chip / "device")  # the kernel's link: "../../../fe20c000.pwm"
        return os.path.basename(os.path.realpath(chip / "device"))
    except OSError:
        return chip.name


def _dt_cells(path: Path) -> list[int]:
    data = path.read_bytes()
    return [int.from_bytes(data[i : i + 4], "big") for i in range(0, len(data) - 3, 4)]


def _dt_strings(path: Path) -> list[str]:
    return [s for s in path.read_bytes().decode(errors="replace").split("\0") if s]


def _muxed_pins(root: Path, of_node: Path) -> set[int] | None:
    """GPIOs the overlay gave this controller (its ``pinctrl-0`` groups), or
    None when the node says nothing (then every pin of the table counts)."""
    try:
        phandles = set(_dt_cells(of_node / "pinctrl-0"))
    except OSError:
        return None
    pins: set[int] = set()
    base = root / "sys/firmware/devicetree/base"
    for dirpath, _dirs, files in os.walk(base):
        if "phandle" not in files or _dt_cells(Path(dirpath) / "phandle")[0] not in phandles:
            continue
        d = Path(dirpath)
        if "brcm,pins" in files:  # BCM2835 style (RP1 accepts it as well)
            pins.update(_dt_cells(d / "brcm,pins"))
        if "pins" in files:  # generic style: "gpio18"
            pins.update(int(m.group(1)) for s in _dt_strings(d / "pins") if (m := re.fullmatch(r"gpio(\d+)", s)))
    return pins


def find_channels(root: Path, overrides: dict[int, tuple[str, int]] | None = None) -> dict[int, ChannelSpec]:
    """GPIO -> PWM channel on this machine: the ``overrides`` (GPIO ->
    (device name or pwmchipN, channel)) first, then what the device tree says."""
    found: dict[int, ChannelSpec] = {}
    chips = sorted((root / "sys/class/pwm").glob("pwmchip*"))
    for chip in chips:
        try:
            compatible = _dt_strings(chip / "device/of_node/compatible")
        except OSError:
            continue
        table = next((_CONTROLLERS[c] for c in compatible if c in _CONTROLLERS), None)
        if table is None:
            continue
        muxed = _muxed_pins(root, chip / "device/of_node")
        for gpio, channel in table.items():
            if muxed is None or gpio in muxed:
                found[gpio] = ChannelSpec(gpio, chip, channel, _device_name(chip))
    for gpio, (device, channel) in (overrides or {}).items():
        chip = next((c for c in chips if device in (c.name, _device_name(c))), None)
        if chip is None:
            names = ", ".join(f"{c.name} ({_device_name(c)})" for c in chips) or "none"
            raise HardwareError(f"pwm_channels: no PWM chip {device!r} for GPIO{gpio}; the chips here: {names}")
        found[gpio] = ChannelSpec(gpio, chip, channel, _device_name(chip))
    return found


def parse_overrides(items: tuple[str, ...]) -> dict[int, tuple[str, int]]:
    """``("GPIO18=pwm-gpio.0:0", ...)`` -> {18: ("pwm-gpio.0", 0)}."""
    out: dict[int, tuple[str, int]] = {}
    for item in items:
        m = re.fullmatch(r"(?:GPIO|BCM)?(\d+)=([^:=\s]+):(\d+)", item.strip(), re.IGNORECASE)
        if m is None:
            raise ConfigError(f"pwm_channels: {item!r} is not GPIO=DEVICE:CHANNEL, e.g. GPIO18=pwmchip0:0 or GPIO18=1f00098000.pwm:2")
        out[int(m.group(1))] = (m.group(2), int(m.group(3)))
    return out


def overlay_advice(root: Path) -> str:
    """Which pins can have hardware PWM on this board, and the config.txt line."""
    try:
        model = " ".join(_dt_strings(root / "proc/device-tree/compatible"))
    except OSError:
        model = ""
    if "bcm2712" in model or "raspberrypi,5" in model:
        pins = "GPIO12, GPIO13, GPIO18 and GPIO19 (the RP1's PWM0, channels 0 to 3)"
    else:
        pins = "GPIO12 or GPIO18 (PWM0) and GPIO13 or GPIO19 (PWM1)"
    return f"{pins} have one, once /boot/firmware/config.txt has the line dtoverlay=pwm-2chan,pin=18,func=2,pin2=19,func2=2 (or pin=12,func=4,pin2=13,func2=4) and the Pi rebooted"


class PwmChannel:
    """One exported channel.  Opening exports it (a channel left exported
    by a killed daemon is taken over) and holds it enabled at duty 0;
    :meth:`close` drives it to 0, disables and unexports it."""

    def __init__(self, spec: ChannelSpec, *, frequency_hz: float, writer: SysfsWriter | None = None, wait_s: float = EXPORT_WAIT_S) -> None:
        self.spec = spec
        self._w = writer or SysfsWriter()
        self.path = spec.chip / f"pwm{spec.channel}"
        self.period_ns = 0
        self.duty_ns = 0
        self._open = False
        self._duty_file: Any = None  # duty_cycle, kept open while exported (SysfsWriter.open)
        try:
            self._write(spec.chip / "export", str(spec.channel))
        except OSError as e:
            if e.errno != errno.EBUSY:  # EBUSY: exported already (a killed daemon's)
                raise self._error("export", e) from None
        self._open = True
        try:
            self._await_writable(time.monotonic() + wait_s)
            self.period_ns = int(self._read("period") or 0)
            self.duty_ns = int(self._read("duty_cycle") or 0)
            self._duty_file = self._w.open(self.path / "duty_cycle")
            self.set(frequency_hz=frequency_hz, duty=0.0)
            self._write(self.path / "enable", "1")
        except BaseException:
            try:
                self.close()
            except HardwareError:
                pass  # the first error is the one to tell
            raise

    def _await_writable(self, deadline: float) -> None:
        """Export makes ``pwmN`` appear, and udev then gives it to group gpio:
        both happen a moment later, and there is no event to wait for.  (No
        trial write: the kernel refuses every attribute but ``period`` while
        the period is 0, as it is after an export.)"""
        attrs = [self.path / a for a in ("period", "duty_cycle", "enable")]
        while not all(self._w.writable(a) for a in attrs):
            if time.monotonic() >= deadline:
                gone = not self.path.is_dir()
                raise self._error("open", OSError(errno.ENOENT if gone else errno.EACCES, "No such file or directory" if gone else "Permission denied"))
            time.sleep(0.005)

    def _read(self, name: str) -> str:
        return (self.path / name).read_text().strip()

    def _write(self, path: Path, text: str) -> None:
        self._w.write(path, text)

    def _error(self, what: str, e: OSError) -> HardwareError:
        where = f"{self.spec.chip.name} channel {self.spec.channel} ({self.spec.device}) for GPIO{self.spec.gpio}"
        if e.errno in (errno.EACCES, errno.EPERM):
            why = "permission denied: the udev rule 99-gravity-led-pwm.rules (deploy/install.sh) gives group gpio these files"
        else:
            why = e.strerror or type(e).__name__
        return HardwareError(f"hardware PWM: cannot {what} {where}: {why}")

    def set(self, *, frequency_hz: float | None = None, duty: float) -> None:
        """New duty (0..1) and maybe a new period, in the order the kernel
        accepts: it refuses any moment with duty_cycle above period."""
        period = self.period_ns if frequency_hz is None else max(1, round(1e9 / frequency_hz))
        duty_ns = round(min(max(duty, 0.0), 1.0) * period)
        try:
            if period < self.period_ns:  # shrinking: the duty first
                self._set_duty(duty_ns)
                self._write(self.path / "period", str(period))
                self.period_ns = period
            elif period > self.period_ns:  # growing: the period first
                self._write(self.path / "period", str(period))
                self.period_ns = period
            self._set_duty(duty_ns)
        except OSError as e:
            raise self._error("set", e) from None

    def _set_duty(self, duty_ns: int) -> None:
        if duty_ns != self.duty_ns:
            if self._duty_file is not None:
                self._w.rewrite(self._duty_file, str(duty_ns))
            else:  # closed: fails as the channel is gone
                self._write(self.path / "duty_cycle", str(duty_ns))
            self.duty_ns = duty_ns

    @property
    def duty(self) -> float:
        return self.duty_ns / self.period_ns if self.period_ns else 0.0

    @property
    def frequency_hz(self) -> float:
        return 1e9 / self.period_ns if self.period_ns else 0.0

    def close(self) -> None:
        """Output low, channel disabled and unexported; safe to call twice."""
        if not self._open:
            return
        self._open = False
        errors = []
        steps = [(self.path / "duty_cycle", "0"), (self.path / "enable", "0"), (self.spec.chip / "unexport", str(self.spec.channel))]
        for path, text in steps:
            if path.name == "unexport" and self._duty_file is not None:
                self._w.release(self._duty_file)  # before the file goes away with pwmN
                self._duty_file = None
            try:
                self._write(path, text)
            except OSError as e:
                errors.append(e)
        # ENOENT/EINVAL: released already (by the failsafe, say); anything else is news.
        real = [e for e in errors if e.errno not in (errno.ENOENT, errno.EINVAL)]
        if real:
            raise self._error("release", real[0])

