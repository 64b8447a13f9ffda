"""The token bucket (daemon/budgets.py) and what is built from it, with a
fake clock: the writer's pace is in test_writer.py."""

from __future__ import annotations

from gravity_led.daemon.budgets import ERRORS_PER_S, ErrorBudget, RejectLog, TokenBucket


def test_a_new_bucket_allows_its_burst_then_one_per_interval():
    b = TokenBucket(interval_s=0.25, burst=4)
    assert [b.try_take(10.0) for _ in range(5)] == [True] * 4 + [False]
    assert b.ready_at == 10.25
    assert not b.try_take(10.2) and b.try_take(10.25)
    assert b.ready_at == 10.5


def test_take_spends_even_when_early_and_an_idle_bucket_fills_up_to_its_burst():
    b = TokenBucket(interval_s=1.0, burst=2)
    b.take(0.0)
    b.take(0.0)
    b.take(0.0)  # the caller chose to go anyway: the debt is remembered
    assert b.ready_at == 2.0
    assert [b.try_take(100.0) for _ in range(3)] == [True, True, False], "no more than the burst after a long pause"


def test_error_budget_answers_a_burst_then_counts_what_it_suppressed():
    b = ErrorBudget()
    answers = [b.take(0.0) for _ in range(20)]
    assert answers[: int(ERRORS_PER_S)] == [0] * int(ERRORS_PER_S)
    assert answers[int(ERRORS_PER_S) :] == [None] * (20 - int(ERRORS_PER_S))
    assert b.take(1.0 / ERRORS_PER_S) == 20 - int(ERRORS_PER_S), "the next answer reports the silent ones"
    assert b.take(0.2) is None


def test_error_budget_says_nothing_to_a_client_that_does_not_read():
    b = ErrorBudget()
    assert b.take(0.0, can_send=False) is None
    assert b.take(0.0, can_send=True) == 1


def test_reject_log_one_line_per_period_with_the_count():
    log = RejectLog(every_s=5.0)
    assert log.add(0.0) == 1
    assert [log.add(t) for t in (1.0, 2.0, 4.9)] == [None, None, None]
    assert log.add(5.0) == 4




def test_a_burst_at_one_instant_is_the_whole_burst_whatever_the_clock_reads():
    for t0 in (0.0, 100.0, 12345.678, 9.87e6):
        b = ErrorBudget()
        assert sum(b.take(t0) is not None for _ in range(20)) == int(ERRORS_PER_S), t0
