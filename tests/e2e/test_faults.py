"""Faults.  After each, GET /status answers and a new client
drives the LEDs.

Timing bounds are the daemon's own settings plus generous slack: the tests
wait for conditions, they do not measure.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosed

from gravity_led.daemon.protocol import BUSY_CLOSE_CODE, encode_subscribe

from tests.support.harness import ROOT, clean_env
from tests.support.net import (
    PING,
    TEXT,
    approx_leds,
    client_frame,
    drive_and_check,
    leds_of,
    raw_ws,
    rss,
    tcp_closed_by_peer,
    text_frame,
    want_duty,
)

OFF = {"right": 0.0, "left": 0.0}
CLOSE_TIMEOUT_S = 1.0  # fixed in daemon/server.py
SLACK_S = 3.0


def spawn_client(*args: str) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fault_client", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=clean_env(),
        cwd=ROOT,
        text=True,
    )
    line = p.stdout.readline()
    assert line.strip() == "ready", f"fault client did not start: {line!r}"
    return p


def reap(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGCONT)
        p.kill()
    p.wait(10)
    if p.stdout:
        p.stdout.close()


def after_fault(d, duty: float = 0.55) -> None:
    """The slot is free, /status answers, a new client drives the LEDs."""
    s = d.wait_for(lambda s: s["client"] is None)
    assert s["leds"] == OFF
    drive_and_check(d, duty)
    drive_and_check(d, -duty)
    assert d.proc.poll() is None


# ---- a client that stops reading and keeps sending -------------------------------


def test_client_that_never_reads_but_keeps_sending_and_is_subscribed(start_daemon):
    d = start_daemon("--stale-after", "60")
    rss0 = rss(d.proc.pid)
    sock = raw_ws(d.port, rcvbuf=4096)  # tiny receive window; never read from below
    try:
        sock.sendall(client_frame(TEXT, encode_subscribe(20).encode()))
        n = 0
        for batch in range(40):
            duty = (batch % 9 - 4) / 5  # -0.8 .. 0.8
            burst = b"".join(client_frame(TEXT, text_frame(duty).encode()) for _ in range(200))
            bad = client_frame(TEXT, b"not a vector") * 5  # error replies too (rate-limited)
            sock.sendall(burst + bad + client_frame(TEXT, text_frame(duty).encode()))
            n += 201
            # The daemon keeps reading and following this client: never stalled.
            d.wait_for(lambda s: s["frames"]["accepted"] == n and approx_leds(leds_of(s), want_duty(duty)), timeout=10)
        s = d.status()
        assert s["frames"]["rejected"] == 40 * 5
        assert s["client"] is not None  # not dropped: it only ignores optional messages
    finally:
        sock.close()
    assert rss(d.proc.pid) - rss0 < 8 * 2**20
    after_fault(d)


def test_ping_flood_from_a_client_that_never_reads_is_dropped_with_bounded_memory(start_daemon):
    """websockets answers every ping; a peer that never reads its pongs would
    make the daemon buffer them without limit (defect found and fixed here)."""
    d = start_daemon("--stale-after", "60", "--ping-interval-s", "60")
    rss0 = rss(d.proc.pid)
    sock = raw_ws(d.port, rcvbuf=4096)
    sock.sendall(client_frame(TEXT, text_frame(0.5).encode()))
    d.wait_for(lambda s: approx_leds(leds_of(s), want_duty(0.5)))
    pings = client_frame(PING, b"p" * 125) * 100
    sent = 0
    deadline = time.monotonic() + 30
    try:
        with pytest.raises(OSError):  # reset by the daemon
            while time.monotonic() < deadline and sent < 2**30:
                sock.sendall(pings)
                sent += len(pings)
    finally:
        sock.close()
    assert sent < 2**30
    s = d.wait_for(lambda s: s["client"] is None)
    assert s["leds"] == OFF
    assert rss(d.proc.pid) - rss0 < 16 * 2**20
    assert "does not read" in d.logs()
    after_fault(d)


# ---- a client that stops responding entirely ---------------------------------------


def test_frozen_client_sigstop_leds_off_within_stale_and_slot_free_after_ping_timeout(start_daemon):
    stale, interval, timeout = 0.5, 0.5, 0.5
    d = start_daemon("--stale-after", str(stale), "--ping-interval-s", str(interval), "--ping-timeout-s", str(timeout))
    p = spawn_client("stream", str(d.port), "0.7", "100")
    try:
        d.wait_for(lambda s: approx_leds(leds_of(s), want_duty(0.7)))
        os.kill(p.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        d.wait_for(lambda s: s["leds"] == OFF, timeout=stale + SLACK_S)
        t_off = time.monotonic() - t0
        s = d.wait_for(lambda s: s["client"] is None, timeout=interval + timeout + CLOSE_TIMEOUT_S + SLACK_S)
        t_free = time.monotonic() - t0
        assert p.poll() is None  # still frozen, never closed anything itself
        assert s["leds"] == OFF
        drive_and_check(d, -0.45)  # while the frozen one is still there
        print(f"LEDs off after {t_off:.2f} s (stale {stale} s); slot free after {t_free:.2f} s")
    finally:
        reap(p)
    assert "stopped answering pings" in d.logs()
    after_fault(d)


# ---- a client killed mid-frame ----------------------------------------------------------


def test_client_process_killed_mid_frame(start_daemon):
    d = start_daemon("--stale-after", "60")
    p = spawn_client("partial", str(d.port), "0.8")
    try:
        d.wait_for(lambda s: approx_leds(leds_of(s), want_duty(0.8)))
        p.kill()  # SIGKILL with half a frame on the wire
        p.wait(10)
    finally:
        reap(p)
    s = d.wait_for(lambda s: s["client"] is None)
    assert s["frames"]["accepted"] == 1 and s["frames"]["rejected"] == 0  # the half frame was never applied
    after_fault(d)


@pytest.mark.parametrize("cut", [1, 2, 6, 10])
@pytest.mark.parametrize("how", ["fin", "rst"])
def test_raw_socket_sends_half_a_frame_and_closes(start_daemon, cut, how):
    d = start_daemon("--stale-after", "60")
    sock = raw_ws(d.port)
    sock.sendall(client_frame(TEXT, text_frame(0.3).encode()))
    d.wait_for(lambda s: approx_leds(leds_of(s), want_duty(0.3)))
    sock.sendall(client_frame(TEXT, text_frame(-0.9).encode())[:cut])  # inside header, mask, payload
    if how == "rst":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    after_fault(d)


# ---- a TCP connection that never sends its handshake -------------------------------------


@pytest.mark.parametrize("sent", [b"", b"GET / HTTP/1.1\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"])
def test_connection_that_never_handshakes_is_closed_and_frees_its_slot(start_daemon, sent):
    d = start_daemon("--handshake-timeout-s", "0.5", "--max-connections", "4")
    idle = socket.create_connection(("127.0.0.1", d.port))
    try:
        idle.sendall(sent)
        drive_and_check(d, 0.25)  # does not hold the LEDs meanwhile
        assert tcp_closed_by_peer(idle, 0.5 + SLACK_S)
    finally:
        idle.close()
    s = d.wait_for(lambda s: s["connections"]["open"] == 1)  # only this request
    assert s["client"] is None
    after_fault(d)


# ---- 200 WebSocket connections at once -----------------------------------------------------


def test_200_websocket_connections_at_once(start_daemon):
    d = start_daemon("--stale-after", "60", "--handshake-timeout-s", "3")

    async def attempt() -> str:
        try:
            async with aconnect(d.url, compression=None, open_timeout=15, close_timeout=2) as ws:
                try:
                    await asyncio.wait_for(ws.recv(), 15)
                except ConnectionClosed:
                    pass
                return "busy" if ws.close_code == BUSY_CLOSE_CODE else f"closed {ws.close_code}"
        except (OSError, EOFError, asyncio.TimeoutError):
            return "dropped"
        except Exception as e:  # websockets' InvalidMessage etc.: dropped during the handshake
            return "dropped" if "handshake" in type(e).__name__.lower() or "invalid" in type(e).__name__.lower() else repr(e)

    async def go() -> list[str]:
        async with aconnect(d.url, compression=None) as holder:
            await holder.send(text_frame(0.15))
            await asyncio.to_thread(d.wait_for, lambda s: approx_leds(leds_of(s), want_duty(0.15)))
            outcomes = await asyncio.gather(*(attempt() for _ in range(200)))
            await holder.send(text_frame(-0.15))  # still in charge
            await asyncio.to_thread(d.wait_for, lambda s: approx_leds(leds_of(s), want_duty(-0.15)))
            return outcomes

    outcomes = asyncio.run(asyncio.wait_for(go(), 60))
    kinds = {k: outcomes.count(k) for k in set(outcomes)}
    assert set(kinds) <= {"busy", "dropped"}, kinds
    assert kinds.get("busy", 0) >= 1  # the cap let some through, and they were told "busy"
    s = d.wait_for(lambda s: s["client"] is None and s["connections"]["open"] == 1)
    assert s["busy_refused"] == kinds.get("busy", 0)
    after_fault(d)


# ---- the daemon killed with SIGKILL and restarted ---------------------------------------------


def test_daemon_sigkill_and_restart_the_python_client_reconnects_by_itself(start_daemon):
    d1 = start_daemon("--stale-after", "60")
    port = d1.port
    client = subprocess.Popen(
        [sys.executable, "-m", "gravity_led.client", "sim", "--url", d1.url, "--pattern", "steps", "--steps", "30", "--rate", "50", "--duration", "60", "-q"],
        env=clean_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        d1.wait_for(lambda s: approx_leds(leds_of(s), want_duty(0.5)), timeout=15)
        d1.stop(signal.SIGKILL)
        assert d1.proc.returncode == -signal.SIGKILL
        d2 = start_daemon("--stale-after", "60", port=port)  # same port at once
        s = d2.wait_for(lambda s: s["client"] is not None and approx_leds(leds_of(s), want_duty(0.5)), timeout=20)
        assert s["frames"]["accepted"] >= 1
        assert client.poll() is None  # it reconnected; it did not give up
    finally:
        client.send_signal(signal.SIGINT)
        try:
            _, err = client.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            client.kill()
            _, err = client.communicate()
    after_fault(d2)
