"""Per-address limits with a fake clock:
connection accounting (daemon/connections.py) and the wrong-token back-off
(daemon/security.py)."""

from __future__ import annotations

import pytest

from gravity_led.daemon.connections import Admission, ConnectionLimiter, source_key
from gravity_led.daemon.security import FailureThrottle


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


def test_source_key_with_the_configured_ipv6_group_prefix():
    assert source_key("2001:db8:1:2:aaaa::1", ipv6_prefix=128) == "2001:db8:1:2:aaaa::1"
    assert source_key("2001:db8:1:2:aaaa::1", ipv6_prefix=48) == "2001:db8:1::/48"
    assert source_key("::ffff:10.0.0.1", ipv6_prefix=128) == "10.0.0.1"


class Conn:
    """An opaque connection handle."""

    n = 0

    def __init__(self, source):
        Conn.n += 1
        self.source, self.id = source, Conn.n

    def __repr__(self):
        return f"<{self.source} #{self.id}>"


def test_one_address_cannot_take_every_slot():
    lim = ConnectionLimiter(max_total=32, max_per_source=8)
    for _ in range(8):
        assert lim.admit("127.0.0.2", Conn("a")).admitted
    for _ in range(100):  # a reconnecting flood from the same address
        assert lim.admit("127.0.0.2", Conn("a")) == Admission(False, "per_address")
    assert lim.open == 8 and lim.pending == 8 and lim.open_from("127.0.0.2") == 8
    legit = Conn("legit")
    assert lim.admit("127.0.0.1", legit) == Admission(True)  # everyone else still gets in
    assert lim.refused == {"per_address": 100}
    assert lim.is_pending(legit)
    lim.handshake_done(legit)
    assert lim.open == 9 and lim.pending == 8 and not lim.is_pending(legit)


def test_the_total_cap_holds_and_levels_addresses():
    lim = ConnectionLimiter(max_total=4, max_per_source=3)
    a1, a2, a3, b1 = Conn("a"), Conn("a"), Conn("a"), Conn("b")
    for c, src in ((a1, "a"), (a2, "a"), (a3, "a"), (b1, "b")):
        assert lim.admit(src, c).admitted
    # Full.  "c" holds nothing, "a" holds 3: the oldest pending of "a" makes room.
    c1 = Conn("c")
    assert lim.admit("c", c1) == Admission(True, "evicted", a1)
    assert lim.open == 4 and lim.open_from("a") == 2 and not lim.release(a1)  # already gone
    # Now a:2, b:1, c:1.  "d" (0) may still take one of "a"'s (2 >= 0 + 2) ...
    assert lim.admit("d", Conn("d")) == Admission(True, "evicted", a2)
    # ... but then every address holds 1: nobody is evicted, the newcomer is refused.
    assert lim.admit("e", Conn("e")) == Admission(False, "total")
    assert lim.admit("a", Conn("a")) == Admission(False, "total")
    assert lim.refused == {"evicted": 2, "total": 2}


def test_a_connection_past_its_handshake_is_never_evicted():
    lim = ConnectionLimiter(max_total=3, max_per_source=3)
    held = [Conn("a") for _ in range(3)]
    for c in held:
        lim.admit("a", c)
        lim.handshake_done(c)
    assert lim.admit("b", Conn("b")) == Admission(False, "total")
    lim.release(held[0])
    assert lim.admit("b", Conn("b")).admitted


def test_release_counts_each_connection_once():
    lim = ConnectionLimiter(max_total=4, max_per_source=4)
    x, y = Conn("a"), Conn("a")
    lim.admit("a", x)
    lim.admit("a", y)
    lim.handshake_done(x)
    assert lim.release(x)
    assert (lim.open, lim.pending, lim.open_from("a")) == (1, 1, 1)
    assert lim.release(y) and not lim.release(y)
    assert (lim.open, lim.pending, lim.sources) == (0, 0, 0)
    refused = Conn("a")
    lim2 = ConnectionLimiter(max_total=1, max_per_source=1)
    lim2.admit("a", Conn("a"))
    assert not lim2.admit("a", refused).admitted
    assert not lim2.release(refused)  # a refused connection was never counted
    assert lim2.open == 1


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
    th.succeeded("127.0.0.2", 0.2)  # the right token (once allowed to try) clears the record
    assert th.wait_s("127.0.0.2", 0.2) == 0


def test_failures_are_forgotten_after_a_quiet_period():
    th = FailureThrottle(free_failures=1, first_delay_s=1, forget_after_s=600)
    th.failed("a", 0.0)
    assert th.failed("a", 0.0) == 1.0
    assert th.wait_s("a", 599.0) == 0 and len(th) == 1  # unblocked, still remembered
    assert th.failed("a", 599.0) == 2.0  # so the next mistake costs more
    assert th.wait_s("a", 599.0 + 600.0) == 0 and len(th) == 0  # forgotten
    assert th.failed("a", 1200.0) == 0  # a fresh start


def test_the_table_is_bounded_and_a_failing_address_is_never_flushed():
    # Issue 21.4: one address makes 5 wrong guesses, then 4,300 others one
    # each: the first address's next guesses are still slowed (it used to be
    # evicted as the oldest at 4,096 and start afresh).
    th = FailureThrottle(free_failures=5, first_delay_s=1.0, max_sources=4096)
    t = 0.0
    for _ in range(5):
        th.failed("2001:db8:0:1::/64", t)
    for i in range(4300):
        t += 0.0004
        th.failed(f"2001:db8:1:{i:x}::/64", t)
    assert len(th) <= 4096 + 1, "bounded: the table and the one shared record"
    assert th.failed("2001:db8:0:1::/64", t) == 1.0  # its sixth: blocked, not a fresh start
    assert th.check("2001:db8:0:1::/64", t) > 0


def test_a_full_table_makes_new_guessers_share_one_back_off_until_entries_go_stale():
    th = FailureThrottle(free_failures=1, first_delay_s=1.0, max_delay_s=8.0, forget_after_s=600, max_sources=3)
    for i, a in enumerate("abc"):
        th.failed(a, float(i))
    # Full of addresses that failed within forget_after_s: none is evicted.
    assert th.failed("d", 3.0) == 0  # the shared record's free failure
    assert th.failed("e", 3.0) == 1.0  # new guessers are slowed together
    assert th.check("f", 3.5) == 0.5
    assert th.wait_s("a", 3.5) == 0 and th.failed("a", 3.5) == 1.0, "a's record was kept"
    # Once the least recently failed went quiet for forget_after_s, its place is free again.
    assert th.wait_s("g", 601.0) == 0 and th.failed("g", 601.0) == 0
    assert th.failed("b", 601.1) == 2.0, "b was forgotten; c (quiet 599 s) not: the table is full, b shares the overflow record"
    assert th.failed("h", 602.5) == 0, "c went stale: a place for h"


def test_the_right_token_is_not_slowed_by_other_addresses_below_the_table_size():
    th = FailureThrottle(free_failures=0, max_sources=100)
    for i in range(99):
        th.failed(f"10.0.{i}.1", 0.0)
    assert th.check("10.9.9.9", 0.0) == 0  # a new address may try at once
    th.succeeded("10.9.9.9", 0.0)


def test_an_address_that_had_the_right_token_keeps_its_own_record_in_a_full_table():
    th = FailureThrottle(free_failures=0, first_delay_s=1.0, max_sources=2)
    th.succeeded("phone", 0.0)  # the phone connected before the attack
    for a in ("x", "y", "z", "w"):
        th.failed(a, 1.0)  # x and y fill the table; z and w share the overflow
    assert th.check("new", 1.5) > 0, "a new address waits with the other new ones"
    assert th.check("phone", 1.5) == 0, "the phone is not slowed by the attack"
    th.failed("phone", 1.5)  # its own typo costs only its own record
    assert th.wait_s("phone", 1.5) == 1.0 and len(th) <= 2 + 1 + 1


from hypothesis import given, strategies as st  # noqa: E402


@given(st.lists(st.tuples(st.sampled_from(["admit", "done", "close"]), st.integers(0, 5), st.integers(0, 40)), max_size=300))
def test_limiter_invariants_under_any_sequence(ops):
    lim = ConnectionLimiter(max_total=6, max_per_source=3)
    live: list[Conn] = []
    established: set = set()
    for op, src, pick in ops:
        if op == "admit":
            c = Conn(str(src))
            a = lim.admit(c.source, c)
            if a.evict is not None:
                assert a.evict not in established  # never a connection past its handshake
                live.remove(a.evict)
            if a.admitted:
                live.append(c)
        elif live:
            c = live[pick % len(live)]
            if op == "done":
                lim.handshake_done(c)
                established.add(c)
            else:
                assert lim.release(c)
                live.remove(c)
                established.discard(c)
        assert lim.open == len(live) <= 6
        assert all(lim.open_from(str(s)) == sum(c.source == str(s) for c in live) <= 3 for s in range(6))
        assert lim.pending == len([c for c in live if c not in established])


def test_refused_connections_waiting_for_their_close_are_evicted_first_and_counted_apart():
    # Issue 21.2: a busy (1013) or HTTP-refused connection whose peer never
    # answers the close must not hold a slot that a newcomer needs.
    lim = ConnectionLimiter(max_total=4, max_per_source=4)
    a = [Conn("a") for _ in range(3)]
    b1 = Conn("b")
    for c in (*a, b1):
        assert lim.admit(c.source, c).admitted
        lim.handshake_done(c)  # upgraded: not pending any more
    # Full of finished handshakes: nothing to evict, a newcomer is refused.
    assert lim.admit("c", Conn("c")) == Admission(False, "total")
    lim.closing(a[1])  # refused as busy: waits for its close
    c1 = Conn("c")
    assert lim.admit("c", c1) == Admission(True, "evicted_closing", a[1])
    assert lim.refused["evicted_closing"] == 1 and lim.refused["evicted"] == 0
    assert lim.open == 4 and lim.open_from("a") == 2 and lim.pending == 1
    assert not lim.release(a[1]), "the evicted one is no longer counted"


def test_a_closing_connection_goes_before_a_pending_one_of_the_same_address():
    lim = ConnectionLimiter(max_total=3, max_per_source=3)
    old_pending, closing, b = Conn("a"), Conn("a"), Conn("b")
    for c in (old_pending, closing, b):
        lim.admit(c.source, c)
    lim.closing(closing)
    assert lim.admit("c", Conn("c")).evict is closing
    assert lim.is_pending(old_pending)
