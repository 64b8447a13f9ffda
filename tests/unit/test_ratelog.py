"""daemon/ratelog.py with a fake clock."""

from __future__ import annotations

import logging

from gravity_led.daemon.ratelog import LibraryLog, LogBudget, RateLimitedLog, Summary


def test_a_burst_then_counts_then_one_summary_per_window():
    b = LogBudget(burst=3, window_s=10)
    allowed = [b.allow("refused", 100 + i * 0.001) for i in range(2000)]
    assert allowed[:3] == [True] * 3 and not any(allowed[3:])
    assert b.next_due() == 110
    assert b.due(109.9) == []
    assert b.due(110) == [Summary("refused", 1997, 10)]
    assert b.due(111) == [] and b.next_due() is None
    assert b.allow("refused", 111)  # a new window


def test_kinds_are_counted_apart():
    b = LogBudget(burst=1, window_s=10)
    assert b.allow("a", 0) and b.allow("b", 0)
    assert not b.allow("a", 1) and not b.allow("a", 2) and not b.allow("b", 5)
    assert b.next_due() == 10
    assert sorted(b.due(10), key=lambda s: s.key) == [Summary("a", 2, 10), Summary("b", 1, 10)]


def test_a_quiet_window_reports_nothing_and_the_next_line_is_written():
    b = LogBudget(burst=2, window_s=10)
    assert b.allow("k", 0) and b.allow("k", 1)
    assert b.next_due() is None  # nothing left out
    assert b.allow("k", 10.5)  # the window ended: a new one
    assert b.due(100) == []


def test_due_all_at_shutdown_reports_partial_windows():
    b = LogBudget(burst=1, window_s=10)
    b.allow("k", 0)
    b.allow("k", 1)
    assert b.due(4, all=True) == [Summary("k", 1, 4)]


def test_summary_text():
    assert Summary("refused a WebSocket: origin not allowed", 1532, 10).text() == (
        "refused a WebSocket: origin not allowed ... and 1,532 more in the last 10 s"
    )


class FakeLoop:
    def __init__(self):
        self.t = 0.0
        self.timers: list[list] = []

    def time(self):
        return self.t

    def call_at(self, when, fn):
        timer = FakeTimer(when, fn)
        self.timers.append(timer)
        return timer

    def advance(self, to):
        self.t = to
        for timer in sorted(self.timers, key=lambda x: x.when):
            if timer.when <= to and not timer.cancelled and not timer.ran:
                timer.ran = True
                timer.fn()


class FakeTimer:
    def __init__(self, when, fn):
        self.when, self.fn, self.cancelled, self.ran = when, fn, False, False

    def cancel(self):
        self.cancelled = True


def test_rate_limited_log_writes_the_summary_on_its_timer(caplog):
    loop = FakeLoop()
    log = RateLimitedLog(logging.getLogger("t.ratelog"), clock=loop.time, call_at=loop.call_at, budget=LogBudget(burst=2, window_s=10))
    caplog.set_level(logging.INFO, "t.ratelog")
    for i in range(3000):
        loop.t = i / 1000
        log.log(logging.WARNING, "refused a WebSocket: bad origin", "refused a WebSocket from %s: bad origin", f"127.0.0.2:{i}")
    assert [r.getMessage() for r in caplog.records] == [
        "refused a WebSocket from 127.0.0.2:0: bad origin",
        "refused a WebSocket from 127.0.0.2:1: bad origin",
    ]
    assert len([t for t in loop.timers if not t.cancelled]) == 1  # one timer, not one per line
    loop.advance(10.0)  # the flood stopped long ago: the summary still comes
    assert caplog.records[-1].getMessage() == "refused a WebSocket: bad origin ... and 2,998 more in the last 10 s"
    assert caplog.records[-1].levelno == logging.WARNING
    assert len(caplog.records) == 3


def test_rate_limited_log_close_flushes_and_respects_the_level(caplog):
    loop = FakeLoop()
    log = RateLimitedLog(logging.getLogger("t.ratelog2"), clock=loop.time, call_at=loop.call_at, budget=LogBudget(burst=1, window_s=10))
    caplog.set_level(logging.INFO, "t.ratelog2")
    log.log(logging.DEBUG, "dbg", "not shown")  # below the level: not even counted
    log.log(logging.INFO, "busy", "refused %s: busy", "a")
    log.log(logging.INFO, "busy", "refused %s: busy", "b")
    loop.t = 3
    log.close()
    assert [r.getMessage() for r in caplog.records] == ["refused a: busy", "busy ... and 1 more in the last 3 s"]
    assert all(t.cancelled for t in loop.timers)


def test_3000_refusals_make_little_log():
    """The budget's own arithmetic for the issue's figure (the daemon test checks the real log)."""
    b = LogBudget()
    kinds = ["refused a WebSocket: origin not allowed", "refused a WebSocket: missing or wrong token", "refused: LEDs busy"]
    lines = 0
    for i in range(3000):
        lines += b.allow(kinds[i % 3], i / 1000)
    lines += len(b.due(1000))
    assert lines <= 3 * 6


def test_websockets_lines_go_through_the_rate_limit_without_tracebacks(caplog):
    # Issue 21.1: websockets logs "unexpected internal error" with a traceback
    # per connection; a peer could fill the journal with them.  Its logger is
    # wrapped as websockets itself wraps it (a LoggerAdapter per connection).
    loop = FakeLoop()
    events = RateLimitedLog(logging.getLogger("t.ws"), clock=loop.time, call_at=loop.call_at, budget=LogBudget(burst=2, window_s=10))
    lib = LibraryLog(logging.getLogger("t.ws.lib"), events)
    caplog.set_level(logging.INFO, "t.ws")
    for i in range(600):
        per_connection = logging.LoggerAdapter(lib, {"websocket": i})
        try:
            raise AssertionError(f"state {i}")
        except AssertionError:
            per_connection.error("unexpected internal error", exc_info=True)
    assert [r.getMessage() for r in caplog.records] == [
        "websockets: unexpected internal error (AssertionError: state 0)",
        "websockets: unexpected internal error (AssertionError: state 1)",
    ]
    assert all(r.exc_info is None for r in caplog.records), "no traceback below DEBUG"
    loop.advance(10.0)
    assert caplog.records[-1].getMessage() == "websockets: unexpected internal error ... and 598 more in the last 10 s"
    lib.info("server listening on %s", "[::]:1")
    assert caplog.records[-1].getMessage() == "websockets: server listening on [::]:1"


def test_websockets_debug_lines_and_tracebacks_at_debug(caplog):
    loop = FakeLoop()
    events = RateLimitedLog(logging.getLogger("t.ws2"), clock=loop.time, call_at=loop.call_at)
    lib = LibraryLog(logging.getLogger("t.ws2.lib"), events)
    caplog.set_level(logging.DEBUG, "t.ws2")
    lib.debug("< TEXT %r", "1 2 3")
    try:
        raise ValueError()
    except ValueError:
        lib.error("opening handshake failed", exc_info=True)
    msgs = [(r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert msgs == [("< TEXT '1 2 3'", False), ("websockets: opening handshake failed (ValueError)", False), ("websockets: opening handshake failed (details)", True)]
