"""The machine's floor for bench_latency: a bare asyncio TCP server on loopback
that does nothing but stamp each 8-byte send time it receives.

    python -m tests.benchmarks.floor_server PORT

Prints ``listening`` once bound, then, when the sender closes, one JSON list:
the latency of each stamp in microseconds.  No WebSocket, no parsing, no
PWM: what is left is the wake-up of a sleeping process by a loopback packet,
which no server can beat.  On a virtual machine whose idle vCPUs are woken by
the host this alone can exceed a millisecond at p99."""

from __future__ import annotations

import asyncio
import json
import struct
import sys
import time


async def serve(port: int) -> None:
    done = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lat_us: list[float] = []
        while True:
            try:
                data = await reader.readexactly(8)
            except asyncio.IncompleteReadError:
                break
            now = time.monotonic_ns()
            lat_us.append((now - struct.unpack("<q", data)[0]) / 1e3)
        writer.close()
        done.set_result(lat_us)

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("listening", flush=True)
    async with server:
        lat_us = await done
    print(json.dumps(lat_us), flush=True)


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
