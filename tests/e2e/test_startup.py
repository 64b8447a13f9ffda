"""What the daemon loads before its first connection (issue 23: a lighter
start on a Pi Zero, where socket activation makes a phone wait for it).

The real daemon runs with ``python -X importtime``, answers ``/status`` and
drives the LEDs for one client; the modules it imported by then must not
include what that needed none of. Start-up time itself is a benchmark
(``python -m tests.benchmarks --only memory``), not an assertion here.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from websockets.asyncio.client import connect

from gravity_led.daemon.protocol import encode_text
from tests.support.harness import Process, clean_env, free_port, roll, wait_status

NOT_BEFORE_USE = {
    # certificates: only with TLS, and the CA downloads when first asked for
    "cryptography", "gravity_led.daemon.ca", "gravity_led.daemon.tls", "gravity_led.daemon.certfiles",
    "gravity_led.daemon.certpair", "gravity_led.daemon.cli_cert", "plistlib",
    # the kernel's PWM: not for mock pins
    "gravity_led.daemon.hwpwm", "gravity_led.daemon.pwmpins",
    # a config file's parser when there is none; usage errors' suggestions; static files' types
    "tomllib", "difflib", "mimetypes",
}


def imported(log: str) -> set[str]:
    return {line.split("|")[-1].strip() for line in log.splitlines() if line.startswith("import time:")}


async def one_client(port: int) -> None:
    """Tilt 30 degrees, and stay connected until the LED shows it."""
    async with connect(f"ws://127.0.0.1:{port}") as ws:
        await ws.send(encode_text(roll(30)))
        await asyncio.to_thread(wait_status, f"http://127.0.0.1:{port}", lambda s: s["leds"]["right"] > 0.4)


def test_the_first_connection_loads_nothing_it_does_not_need(tmp_path: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-X", "importtime", "-m", "gravity_led.daemon", "--pin-factory", "mock", "--host", "127.0.0.1", "--port", str(port)]
    http = f"http://127.0.0.1:{port}"
    with Process(cmd, tmp_path / "daemon.log", env=clean_env(), ready_url=http + "/status") as daemon:
        asyncio.run(one_client(port))
        mods = imported(daemon.logs())
    assert {"gravity_led.daemon.server", "gpiozero", "websockets"} <= mods  # the log is what it claims to be
    assert not mods & NOT_BEFORE_USE, sorted(mods & NOT_BEFORE_USE)
