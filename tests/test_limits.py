"""daemon/limits.py with a fake clock (issue 11, requirements 2 and 6)."""

from __future__ import annotations

import pytest

from daemon.limits import ConnectionLimiter, FailureThrottle, source_key


@pytest.mark.parametrize(
    "host, key",
    [
        ("192.168.1.7", "192.168.1.7"),
        ("127.0.0.2", "127.0.0.2"),
        ("::ffff:192.168.1.7", "192.168.1.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # the same host's privacy address
        ("fe80::1%eth0", "fe80::/64"),
        ("::1", "::1"),
        ("", "unknown"),
        (None, "unknown"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_source_key(host, key):
    assert source_key(host) == key


def test_one_address_cannot_take_every_slot():
    lim = ConnectionLimiter(max_total=32, max_per_source=8)
    for _ in range(8):
        assert lim.admit("127.0.0.2") is None
    for _ in range(100):  # a reconnecting flood from the same address
        assert lim.admit("127.0.0.2") == "per_address"
    assert lim.open == 8 and lim.pending == 8 and lim.open_from("127.0.0.2") == 8
    assert lim.admit("127.0.0.1") is None  # everyone else still gets in
    assert lim.refused == {"per_address": 100}
    lim.handshake_done()
    assert lim.open == 9 and lim.pending == 8


def test_the_total_cap_holds_across_addresses():
    lim = ConnectionLimiter(max_total=4, max_per_source=3)
    assert [lim.admit(a) for a in ("a", "a", "b", "c")] == [None] * 4
    assert lim.admit("d") == "total"
    assert lim.admit("a") == "total"
    assert lim.admit("a") == "total"
    lim.release("b", pending=True)
    assert lim.open == 3 and lim.pending == 3 and lim.open_from("b") == 0 and lim.sources == 2
    assert lim.admit("d") is None
    assert lim.refused == {"total": 3}


def test_release_after_the_handshake_keeps_pending_right():
    lim = ConnectionLimiter(max_total=4, max_per_source=4)
    lim.admit("a")
    lim.admit("a")
    lim.handshake_done()
    lim.release("a", pending=False)
    assert (lim.open, lim.pending, lim.open_from("a")) == (1, 1, 1)
    lim.release("a", pending=True)
    assert (lim.open, lim.pending, lim.sources) == (0, 0, 0)


def test_wrong_tokens_are_free_at_first_then_cost_exponentially_more():
    th = FailureThrottle(free_failures=3, first_delay_s=1.0, max_delay_s=8.0)
    t = 100.0
    for _ in range(3):
        assert th.check("evil", t) == 0
        assert th.failed("evil", t) == 0
    waits = []
    for _ in range(6):
        assert th.check("evil", t) == 0  # allowed to try ...
        waits.append(th.failed("evil", t))  # ... wrong again
        assert th.check("evil", t) == waits[-1] > 0  # blocked until then
        t += waits[-1]
    assert waits == [1, 2, 4, 8, 8, 8]
    assert th.refused == 6


def test_other_addresses_and_the_right_token_are_not_slowed():
    th = FailureThrottle(free_failures=2)
    for i in range(20):
        th.failed("127.0.0.2", float(i) / 100)
    assert th.wait_s("127.0.0.2", 0.2) > 0
    assert th.wait_s("127.0.0.1", 0.2) == 0  # another address: not slowed at all
    th.failed("127.0.0.1", 0.2)
    assert th.wait_s("127.0.0.1", 0.2) == 0  # one typo is free
    th.succeeded("127.0.0.2")  # the right token (once allowed to try) clears the record
    assert th.wait_s("127.0.0.2", 0.2) == 0


def test_failures_are_forgotten_after_a_quiet_period():
    th = FailureThrottle(free_failures=1, first_delay_s=1, forget_after_s=600)
    th.failed("a", 0.0)
    assert th.failed("a", 0.0) == 1.0
    assert th.wait_s("a", 599.0) == 0 and len(th) == 1  # unblocked, still remembered
    assert th.failed("a", 599.0) == 2.0  # so the next mistake costs more
    assert th.wait_s("a", 599.0 + 600.0) == 0 and len(th) == 0  # forgotten
    assert th.failed("a", 1200.0) == 0  # a fresh start


def test_the_table_is_bounded_and_forgets_the_oldest_first():
    th = FailureThrottle(free_failures=0, max_sources=3)
    for i, a in enumerate("abcd"):
        th.failed(a, float(i))
    assert len(th) == 3
    assert th.wait_s("a", 3.0) == 0  # evicted
    assert th.wait_s("d", 3.0) > 0
    th.failed("b", 3.5)  # "b" is now the newest
    th.failed("e", 3.6)
    assert th.wait_s("c", 3.6) == 0 and th.wait_s("b", 3.6) > 0
