"""daemon/accept.py with a fake loop: what the intake does with the
limiter's decisions (drop, evict), and the handshake deadline."""

from __future__ import annotations

import logging

from gravity_led.daemon.accept import Intake
from gravity_led.daemon.connections import ConnectionLimiter
from gravity_led.daemon.ratelog import RateLimitedLog


class Timer:
    def __init__(self, delay: float, fn, args) -> None:
        self.delay, self.fn, self.args, self.cancelled = delay, fn, args, False

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        assert not self.cancelled
        self.fn(*self.args)


class FakeLoop:
    def __init__(self) -> None:
        self.timers: list[Timer] = []

    def call_later(self, delay: float, fn, *args) -> Timer:
        self.timers.append(Timer(delay, fn, args))
        return self.timers[-1]


class Conn:
    def __init__(self, source: str, port: int) -> None:
        self.source, self.peer, self.aborted = source, f"{source}:{port}", False

    def abort(self) -> None:
        self.aborted = True


def make(max_total: int = 2, max_per_source: int = 2):
    loop = FakeLoop()
    limiter = ConnectionLimiter(max_total=max_total, max_per_source=max_per_source)
    events = RateLimitedLog(logging.getLogger("test_accept"), clock=lambda: 0.0, call_at=lambda t, fn: Timer(t, fn, ()))
    return Intake(limiter, handshake_timeout_s=5.0, tls=None, events=events, loop=loop), limiter, loop


def test_a_newcomer_takes_the_place_of_a_greedy_address_pending_connection(caplog):
    caplog.set_level(logging.INFO, "test_accept")
    intake, limiter, loop = make()
    a1, a2, b = Conn("10.0.0.1", 1), Conn("10.0.0.1", 2), Conn("10.0.0.2", 3)
    assert intake.accepted(a1) and intake.accepted(a2)
    assert [t.delay for t in loop.timers] == [5.0, 5.0], "each gets the handshake deadline"
    assert intake.accepted(b)
    assert a1.aborted and not a2.aborted and not b.aborted
    assert loop.timers[0].cancelled, "the evicted one's deadline goes with it"
    assert limiter.refused == {"evicted": 1} and limiter.open == 2
    assert "dropped a pending connection from 10.0.0.1:1 to make room for 10.0.0.2:3" in caplog.text


def test_over_the_per_address_cap_a_connection_is_dropped_at_once(caplog):
    caplog.set_level(logging.INFO, "test_accept")
    intake, limiter, loop = make(max_total=10, max_per_source=1)
    first, second = Conn("10.0.0.1", 1), Conn("10.0.0.1", 2)
    assert intake.accepted(first)
    assert not intake.accepted(second) and second.aborted
    assert limiter.refused == {"per_address": 1} and len(loop.timers) == 1
    assert "that address already has 1 open (max_connections_per_address)" in caplog.text


def test_the_deadline_drops_only_a_connection_still_in_its_handshake(caplog):
    caplog.set_level(logging.INFO, "test_accept")
    intake, limiter, loop = make()
    slow, done = Conn("10.0.0.1", 1), Conn("10.0.0.2", 2)
    intake.accepted(slow)
    intake.accepted(done)
    intake.handshake_done(done)
    assert loop.timers[1].cancelled and limiter.pending == 1
    loop.timers[0].fire()
    assert slow.aborted and limiter.refused == {"timed_out": 1}
    assert "dropped 10.0.0.1:1: no handshake within 5.0 s (handshake_timeout_s)" in caplog.text
    intake.closed(slow)
    intake.closed(slow)  # idempotent: connection_lost after a failed TLS handshake
    assert limiter.open == 1
