"""A misbehaving client in its own process, for tests/e2e/test_faults.py (which
freezes it with SIGSTOP or kills it with SIGKILL).

    python -m tests.support.fault_client stream PORT DUTY RATE_HZ
        a real websockets client that sends DUTY's tilt at RATE_HZ forever
    python -m tests.support.fault_client partial PORT DUTY
        a raw socket: handshake, one good frame, then half of a frame, then waits

Prints one line "ready" on stdout once its good frame is sent.
"""

from __future__ import annotations

import sys
import time

from tests.support.net import TEXT, client_frame, raw_ws, text_frame


def stream(port: int, duty: float, rate_hz: float) -> None:
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{port}", compression=None, open_timeout=5) as ws:
        frame = text_frame(duty)
        ws.send(frame)
        print("ready", flush=True)
        while True:
            time.sleep(1.0 / rate_hz)
            ws.send(frame)


def partial(port: int, duty: float) -> None:
    sock = raw_ws(port)
    sock.sendall(client_frame(TEXT, text_frame(duty).encode()))
    frame = client_frame(TEXT, text_frame(-duty).encode())
    sock.sendall(frame[: len(frame) // 2])  # header and half the payload
    print("ready", flush=True)
    while True:
        time.sleep(60)


if __name__ == "__main__":
    mode, port, duty = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    if mode == "stream":
        stream(port, duty, float(sys.argv[4]))
    elif mode == "partial":
        partial(port, duty)
    else:
        sys.exit(f"unknown mode {mode!r}")
