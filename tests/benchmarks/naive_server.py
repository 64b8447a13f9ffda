"""The naive baseline: the article's algorithm on the same libraries.

Every frame is parsed with ``split()``/``float()`` and both PWM values are
written in turn, on the one connection, with no coalescing, no validation and
no failsafe -- the article's ``GyroListener.handler`` ported from RPi.GPIO to
gpiozero PWMLEDs on the same mock pins as the daemon (websockets' current
asyncio API, default settings).  Two departures, both in the baseline's
favour or neutral: duties are floats (the article truncated to whole
percent), and a ``/status`` endpoint answers the benchmark harness (it counts
frames, so CPU runs know when the last one was applied).

    python tests/benchmarks/naive_server.py --port P [--write-delay-us US]

With ``GRAVITY_LED_MOCK_WRITE_TRACE=PATH`` every PWM write is timestamped,
exactly as for the daemon (the same mock pin classes, daemon/mockpins.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from gpiozero import PWMLED  # noqa: E402
from websockets.asyncio.server import serve  # noqa: E402
from websockets.datastructures import Headers  # noqa: E402
from websockets.http11 import Response  # noqa: E402

from gravity_led.daemon.mockpins import mock_factory  # noqa: E402  (the daemon's mock pins, for equal pin costs; no other daemon code)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--write-delay-us", type=float, default=0.0)
    args = ap.parse_args()

    factory = mock_factory(write_delay_s=args.write_delay_us / 1e6)
    right = PWMLED(18, pin_factory=factory)  # CHR
    left = PWMLED(22, pin_factory=factory)  # CHL
    frames = 0

    async def handler(websocket):
        nonlocal frames
        while True:
            try:
                gyro_data = await websocket.recv()
            except Exception:  # the article: ConnectionClosed ends the handler
                break
            g = gyro_data.split()
            val = float(g[1]) / 100  # the app sends percent of g
            frames += 1
            if val > 0:
                right.value = min(val, 1.0)
                left.value = 0
            else:
                right.value = 0
                left.value = min(-val, 1.0)

    def process_request(connection, request):
        if request.path == "/status":
            body = json.dumps({"frames": {"accepted": frames}, "leds": {"right": right.value, "left": left.value}}).encode()
            return Response(200, "OK", Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))]), body)
        return None

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        async with serve(handler, "127.0.0.1", args.port, process_request=process_request):
            await stop.wait()

    asyncio.run(run())
    right.close()
    left.close()


if __name__ == "__main__":
    main()
