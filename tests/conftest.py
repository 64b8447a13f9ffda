"""Shared fixtures: the real daemon process on a free loopback port, mock pins."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any GRAVITY_LED_* or systemd variables."""
    drop = ("GRAVITY_LED_", "NOTIFY_SOCKET", "WATCHDOG_", "LISTEN_", "JOURNAL_STREAM", "INVOCATION_ID")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int:
    """Signal ``proc`` (if still running), kill it after ``timeout``; its exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class DaemonProcess:
    """``python -m daemon`` on 127.0.0.1 with mock pins, ready when /healthz answers."""

    def __init__(self, args: tuple[str, ...], env: dict[str, str] | None, log_path: Path, *, port: int | None = None, scheme: str = "http") -> None:
        self.port = port or free_port()
        self.scheme = scheme
        self.log_path = log_path
        empty = log_path.with_suffix(".toml")
        empty.write_text("")
        base = clean_env(GRAVITY_LED_CONFIG=str(empty))
        base.update(env or {})
        self.cmd = [sys.executable, "-m", "daemon", "--pin-factory", "mock", "--host", "127.0.0.1", "--port", str(self.port), *args]
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(self.cmd, env=base, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready()

    @property
    def url(self) -> str:
        return f"{'wss' if self.scheme == 'https' else 'ws'}://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                self.get("/healthz")
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.02)
        raise AssertionError(f"daemon did not answer /healthz within {timeout} s:\n{self.logs()}")

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        import ssl

        ctx = ssl._create_unverified_context() if self.scheme == "https" else None
        req = urllib.request.Request(self.http_url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def status(self) -> dict[str, Any]:
        code, body = self.get("/status")
        assert code == 200, body
        return json.loads(body)

    def leds(self) -> tuple[float, float]:
        s = self.status()["leds"]
        return s["right"], s["left"]

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
        """Poll /status until ``predicate`` holds (an event, not a sleep)."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.status()
            if predicate(s):
                return s
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s; last status: {s}")
            time.sleep(0.005)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int:
        self._log.close()
        return stop_process(self.proc, sig, timeout)


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Factory: ``start_daemon("--stale-after", "0.3", env={...})``."""
    started: list[DaemonProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, port: int | None = None, scheme: str = "http") -> DaemonProcess:
        d = DaemonProcess(args, env, tmp_path / f"daemon-{len(started)}.log", port=port, scheme=scheme)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


@pytest.fixture
def daemon(start_daemon: Callable[..., DaemonProcess]) -> DaemonProcess:
    return start_daemon()
