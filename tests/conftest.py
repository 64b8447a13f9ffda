"""Shared fixtures: the real daemon process on a free loopback port, mock pins
(the process helpers themselves are in harness.py, shared with the benchmarks)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest
from hypothesis import settings

from tests.support.harness import ROOT, DaemonProcess, clean_env, free_port, scaled, stop_process  # noqa: F401 (re-exported for the tests)

# Property tests check what parse_frame and the readers return, not how fast:
# Hypothesis's default 200 ms per example is a timed assertion, and it failed
# whole runs on a shared 2-core machine at load 10.  Speed is the benchmarks' job.
settings.register_profile("gravity-led", deadline=None)
settings.load_profile("gravity-led")


# ---- the suite leaves the work tree as it found it -------------------------------


def _work_tree() -> str | None:
    """``git status`` of the checkout (changed and untracked files), or None
    outside a git checkout."""
    try:
        r = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_TREE] = _work_tree()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a test changed a tracked file or left an untracked one
    (what tests make belongs in build/ or a temporary folder)."""
    before = session.config.stash.get(_TREE, None)
    after = _work_tree() if before is not None else None
    if after is None or after == before:
        return
    changed = sorted(set(after.splitlines()) - set(before.splitlines()))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"the tests changed the work tree (git status): {changed}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


_TREE = pytest.StashKey[object]()


@pytest.fixture
def start_daemon(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., DaemonProcess]]:
    """Factory: ``start_daemon("--stale-after", "0.3", env={...})``.

    In a module that sets ``NO_TRACEBACKS = True`` (the attack tests), the
    test fails if any daemon it started wrote a traceback, however it ended:
    nothing a peer sends may cause one (issue 21.1)."""
    started: list[DaemonProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, port: int | None = None, scheme: str = "http") -> DaemonProcess:
        d = DaemonProcess(args, tmp_path / f"daemon-{len(started)}.log", env=env, port=port, scheme=scheme)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()
    if getattr(request.module, "NO_TRACEBACKS", False):
        for d in started:
            logs = d.logs()
            assert "Traceback" not in logs, f"the daemon wrote a traceback:\n{logs[max(0, logs.index('Traceback') - 2000):][:6000]}"


@pytest.fixture
def daemon(start_daemon: Callable[..., DaemonProcess]) -> DaemonProcess:
    return start_daemon()
