"""Shared fixtures: the real daemon process on a free loopback port, mock pins
(the process helpers themselves are in harness.py, shared with the benchmarks)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from harness import ROOT, DaemonProcess, clean_env, free_port, scaled, stop_process  # noqa: F401 (re-exported for the tests)


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Factory: ``start_daemon("--stale-after", "0.3", env={...})``."""
    started: list[DaemonProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, port: int | None = None, scheme: str = "http") -> DaemonProcess:
        d = DaemonProcess(args, tmp_path / f"daemon-{len(started)}.log", env=env, port=port, scheme=scheme)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


@pytest.fixture
def daemon(start_daemon: Callable[..., DaemonProcess]) -> DaemonProcess:
    return start_daemon()
