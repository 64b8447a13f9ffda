"""The holder slot and per-client state (daemon/holder.py), in-process: the
frame rate with a fake clock, the message sink with a fake connection, and the
whole daemon in this process on a loopback port, with websockets' own path
forced (the fallback when its internals look different)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal

import pytest
from websockets.asyncio.client import connect

from gravity_led.daemon import wsadapter
from gravity_led.daemon.config import Config
from gravity_led.daemon.budgets import ERRORS_PER_S
from gravity_led.daemon.holder import ClientState, FrameRate, Holder
from gravity_led.daemon.telemetry import Telemetry
from gravity_led.daemon.leds import LedPair
from gravity_led.daemon.mapping import Duties
from gravity_led.daemon.protocol import Vector, decode_server_message, encode_subscribe
from gravity_led.daemon.ratelog import RateLimitedLog
from gravity_led.daemon.server import Daemon


def test_frame_rate_counts_the_last_whole_second():
    r = FrameRate()
    for i in range(50):
        r.tick(10.0 + i / 50)
    assert r.rate(10.5) == 0
    assert r.rate(11.2) == 50
    assert r.rate(12.5) == 0, "a silent second is a rate of 0"


class FakeConn:
    peer = "127.0.0.1:9"
    superseded = 0  # vectors skipped unparsed in a backlog (wsadapter)

    def __init__(self, room: bool = True) -> None:
        self.room = room
        self.sent: list[str] = []

    def has_room(self) -> bool:
        return self.room

    async def send_quietly(self, message: str) -> None:
        self.sent.append(message)


class FakeDriver:
    def __init__(self) -> None:
        self.reads: list[tuple[Vector | None, int, float]] = []
        self.duties = Duties(0.0, 0.0)

    def after_read(self, newest: Vector | None, vectors: int, now: float) -> None:
        self.reads.append((newest, vectors, now))


def test_sink_passes_vectors_and_budgets_error_replies(caplog):
    caplog.set_level(logging.INFO, "gravity_led")

    async def main() -> None:
        clock = [100.0]
        driver = FakeDriver()
        events = RateLimitedLog(logging.getLogger("test_holder"), clock=lambda: clock[0], call_at=asyncio.get_running_loop().call_at)
        holder = Holder(driver, clock=lambda: clock[0], events=events)
        conn = FakeConn()
        holder.client = c = ClientState(conn, conn.peer, Telemetry(conn, state=holder.state, clock=lambda: clock[0]))
        holder.read(["0 1 0", b"bad", *["1 2"] * 50])
        await asyncio.sleep(0)
        assert driver.reads == [(Vector(0.0, 1.0, 0.0), 1, 100.0)], "one decision per read, with the newest vector"
        assert (c.accepted, c.rejected) == (1, 51)
        assert len(conn.sent) == ERRORS_PER_S, "a flood of bad frames gets a few answers"
        assert caplog.text.count("rejected a frame from") == 1, "and one log line"
        clock[0] += 1.0
        holder.read(["nan 1 2"])
        await asyncio.sleep(0)
        last = decode_server_message(conn.sent[-1])
        assert last.error == "not_finite" and last.suppressed == 51 - ERRORS_PER_S
        assert holder.frames.accepted == 1 and holder.state().client == conn.peer
        assert driver.reads[-1] == (None, 0, 101.0), "a read without a vector still ends"

    asyncio.run(main())


@pytest.fixture
def websockets_path_only(monkeypatch):
    """As if websockets' parser looked different: no fast path at all."""
    monkeypatch.setattr(wsadapter, "parser_idle", lambda protocol: False)


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "websockets path"])
def test_in_process_daemon_takes_every_frame(fast, request):
    if not fast:
        request.getfixturevalue("websockets_path_only")

    async def main() -> None:
        cfg = Config(host="127.0.0.1", port=0, pin_factory="mock")
        with LedPair(right_pin=cfg.right_pin, left_pin=cfg.left_pin, pin_factory="mock") as leds:
            daemon = Daemon(cfg, leds=leds)
            listening = asyncio.Event()
            run = asyncio.ensure_future(daemon.run(on_listening=listening.set))
            await listening.wait()
            async with connect(f"ws://127.0.0.1:{daemon.port}", compression=None) as ws:
                await ws.send(encode_subscribe(20))
                for i in range(200):
                    await ws.send(f"0 {i + 1} 10")
                await ws.send("0 " + "0" * 200 + "1 1")  # over 125 bytes: websockets' parser either way
                async with asyncio.timeout(20):
                    while daemon.holder.frames.accepted < 201:
                        msg = json.loads(await ws.recv())
                assert msg["type"] == "state"
                assert daemon.holder.frames.accepted == 201
                assert leds.duties.right == pytest.approx(2**-0.5)
            daemon.request_stop()
            await run
            assert leds.duties == Duties(0.0, 0.0)

    asyncio.run(main())
    # Run in-process, the daemon leaves this process's signals as it found
    # them (processes started later inherit the mask).
    assert not signal.pthread_sigmask(signal.SIG_BLOCK, [])
