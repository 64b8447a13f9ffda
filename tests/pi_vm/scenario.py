"""Steps that run in order on a guest of their own, in a thread, while the
other tests run on theirs.

The stand-in's time goes to Python under emulation, and a TCG guest keeps
about one host core busy: the installer's paths (two pip runs among six
installer runs, after the first install) run on one guest while a copy of it
serves the other checks, so a 2-core machine uses both cores. Each step
becomes a test that waits for the step's outcome; the first failure skips
the steps after it (each leaves the install as the next expects), like a
module of tests in file order.
"""

from __future__ import annotations

import threading
import time
import traceback
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar

import pytest

T = TypeVar("T")


@dataclass
class Outcome:
    error: BaseException | None = None
    skipped: str | None = None
    seconds: float = 0.0
    cpu_s: float = 0.0
    """The host CPU time the target used meanwhile (``meter``)."""
    printed: str = ""
    """What the step returned to print (its figures), shown with its test's output."""
    sections: list[tuple[str, str]] = field(default_factory=list)
    """What to print with a failure (the guest's journal and serial log, taken
    in the thread, before the guest is gone)."""


class Scenario(Generic[T]):
    """``steps`` run on what ``start()`` yields, in a thread, from ``begin()``;
    what a step returns (figures) is printed by its test.

    ``diagnose(target)`` gives the report sections of a failed step;
    ``cancel()`` stops after the running step (the caller then tears the
    guest down, which ends a step stuck in it)."""

    def __init__(self, name: str, start: Callable[[], AbstractContextManager[T]], steps: list[Callable[[T], str | None]],
                 diagnose: Callable[[T], list[tuple[str, str]]],
                 fork_after: str | None = None, fork: Callable[[T], T] | None = None,
                 meter: Callable[[T], float] = lambda target: 0.0) -> None:
        self.name = name
        self._meter = meter
        self._fork_after, self._fork = fork_after, fork
        self.forked: Future[T] = Future()
        """A copy of the target made by ``fork`` right after step ``fork_after``, for other tests."""
        self._start = start
        self.steps = steps
        self._diagnose = diagnose
        self._done = {step.__name__: threading.Event() for step in steps}
        self._outcomes: dict[str, Outcome] = {}
        self._cancelled = threading.Event()
        self._thread: threading.Thread | None = None

    def begin(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"scenario-{self.name}", daemon=True)
            self._thread.start()

    def cancel(self, timeout: float = 120) -> None:
        self._cancelled.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def outcome(self, step: str, timeout: float) -> Outcome:
        self.begin()
        if not self._done[step].wait(timeout):
            return Outcome(error=TimeoutError(f"{self.name}: {step} did not end within {timeout:.0f} s"))
        return self._outcomes[step]

    def _finish(self, step: str, outcome: Outcome) -> None:
        self._outcomes[step] = outcome
        self._done[step].set()

    def _skip_rest(self, why: str) -> None:
        for step in self.steps:
            if step.__name__ not in self._outcomes:
                self._finish(step.__name__, Outcome(skipped=why))

    def _run(self) -> None:
        try:
            with self._start() as target:
                for step in self.steps:
                    if self._cancelled.is_set():
                        break
                    t0, cpu0 = time.monotonic(), self._meter(target)
                    try:
                        printed = step(target)
                    except BaseException as e:  # noqa: BLE001 (reported by the step's test)
                        try:
                            sections = self._diagnose(target)
                        except Exception as d:  # the guest may be what failed
                            sections = [("diagnostics", f"(none: {d})")]
                        self._finish(step.__name__, Outcome(error=e, seconds=time.monotonic() - t0, cpu_s=max(0.0, self._meter(target) - cpu0), sections=sections))
                        self._skip_rest(f"{self.name}: an earlier step ({step.__name__}) failed")
                        return
                    self._finish(step.__name__, Outcome(printed=printed or "", seconds=time.monotonic() - t0, cpu_s=self._meter(target) - cpu0))
                    if step.__name__ == self._fork_after and self._fork is not None:
                        try:
                            self.forked.set_result(self._fork(target))
                        except BaseException as e:  # noqa: BLE001 (reported by the tests waiting for the copy)
                            self.forked.set_exception(e)
        except BaseException as e:  # noqa: BLE001 (the guest did not start: every step reports it)
            for step in self.steps:
                if step.__name__ not in self._outcomes:
                    self._finish(step.__name__, Outcome(error=RuntimeError(f"{self.name}: the guest did not start:\n{''.join(traceback.format_exception(e))}")))
        finally:
            self._skip_rest(f"{self.name}: cancelled (the session ended first)")
            if not self.forked.done():
                failed = next((o for o in self._outcomes.values() if o.error is not None), None)
                self.forked.set_exception(RuntimeError(
                    f"{self.name}: no copy of the guest: {failed.error if failed else 'the scenario ended before ' + str(self._fork_after)}"))


def outcome_as_test(scenario: Scenario, step: str, request: pytest.FixtureRequest, timeout: float = 1500) -> None:
    """The body of a test that reports one step of ``scenario``: its outcome,
    its time and CPU, and on a failure the guest's journal and serial log."""
    out = scenario.outcome(step, timeout=timeout)
    for title, text in out.sections:
        request.node.add_report_section("call", title, text)
    print(f"{step}: {out.seconds:.0f} s on the {scenario.name} guest ({out.cpu_s:.0f} CPU-s)")
    if out.printed:
        print(out.printed)
    if out.skipped:
        pytest.skip(out.skipped)
    if out.error is not None:
        raise out.error
