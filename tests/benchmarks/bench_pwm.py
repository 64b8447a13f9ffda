"""(11) The PWM backends on mock pins: the daemon's CPU while a 60 Hz client
drives both LEDs, with hardware PWM (``--pwm hardware``: every duty is a
sysfs write, here to a tree of plain files, GRAVITY_LED_SYSFS_ROOT) in the
daemon column and software PWM (gpiozero's mock pins) in the naive column,
side by side in one run and taking turns.

Mock pins make no edges: this measures what the daemon itself spends per
duty on each backend.  What software PWM really costs, a pin library's
thread that wakes at every edge, needs a real pin library: the Pi
stand-in's tier measures it on lgpio and gpio-sim against the kernel's
pwm-gpio (docs: performance)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from websockets.asyncio.client import connect

from tests.support.fake_sysfs import FakeSysfs

from .common import CYCLE, Result, Row, Server, frame_for, handled, median

PINS = ("--right-pin", "GPIO18", "--left-pin", "GPIO19")


async def _drive(server: Server, seconds: float, rate_hz: float) -> tuple[float, float]:
    """(CPU %, LED writes per second) while a client sends at rate_hz."""
    n = max(2, int(seconds * rate_hz))
    async with connect(server.url, compression=None) as ws:
        await ws.send(frame_for(0.5))
        await asyncio.to_thread(server.wait_frames, 1)
        base = handled(server.status()["frames"])
        writes0 = server.status()["pin_writes"]
        cpu0 = server.cpu_s()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i in range(n):
            delay = t0 + i / rate_hz - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            # both LEDs: the cycle swings through both sides
            await ws.send(frame_for(CYCLE[i % len(CYCLE)]))
        await asyncio.to_thread(server.wait_frames, base + n, 60.0)
        dt = loop.time() - t0
        cpu = server.cpu_s() - cpu0
        writes = server.status()["pin_writes"] - writes0
    return 100 * cpu / dt, writes / dt


def run(seconds: float = 5.0, rate_hz: float = 60.0, repeats: int = 3) -> Result:
    with tempfile.TemporaryDirectory(prefix="gl-bench-sysfs-") as tmp:
        sysfs = FakeSysfs(Path(tmp))
        chip = sysfs.add_chip(0, "fe20c000.pwm", compatible="brcm,bcm2835-pwm", pins=(18, 19), board="raspberrypi,4-model-b")
        sysfs.exported(chip, 0)
        sysfs.exported(chip, 1)
        cpu: dict[str, list[float]] = {"hw": [], "sw": []}
        rate: dict[str, list[float]] = {"hw": [], "sw": []}
        with (
            Server("daemon", trace=False, extra=(*PINS, "--pwm", "hardware"), env={"GRAVITY_LED_SYSFS_ROOT": tmp}) as hw,
            Server("daemon", trace=False, extra=(*PINS, "--pwm", "software")) as sw,
        ):
            servers = {"hw": hw, "sw": sw}
            for i in range(repeats):
                for kind in ("hw", "sw") if i % 2 == 0 else ("sw", "hw"):
                    c, w = asyncio.run(_drive(servers[kind], seconds, rate_hz))
                    cpu[kind].append(c)
                    rate[kind].append(w)
            ok = int((chip / "pwm0/enable").read_text()) == 1 and int((chip / "pwm0/period").read_text()) == 1_000_000
    hw_cpu, sw_cpu = median(cpu["hw"]), median(cpu["sw"])
    hw_w, sw_w = median(rate["hw"]), median(rate["sw"])
    return Result(
        11,
        f"PWM backends on mock pins, {rate_hz:g} Hz client on both LEDs for {seconds:g} s (median of {repeats} turns): daemon = hardware PWM (sysfs writes), naive = software PWM (gpiozero mock pins)",
        [
            Row(f"{rate_hz:g} Hz: CPU load", "% of a core", hw_cpu, sw_cpu),
            Row("LED writes", "per s", hw_w, sw_w),
            Row("CPU per LED write", "us", 1e4 * hw_cpu / hw_w if hw_w else 0.0, 1e4 * sw_cpu / sw_w if sw_w else 0.0),
        ],
        [
            f"Hardware channels enabled at 1 kHz in the sysfs tree: {'yes' if ok else 'NO'}.",
            "Mock pins make no edges: a real pin library's software PWM adds its thread (200-400 wake-ups a second per LED at 100 Hz); see the Pi stand-in's figures.",
        ],
    )
