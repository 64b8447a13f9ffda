"""What the tests and the benchmarks share: run a daemon process and wait for
it, read its ``/status``, wait for a condition, and the one tilt helper.

One place, so a change in how the daemon starts (an option, the ready
signal) is made once.  ``client/demo.py`` keeps its own (it ships).

Timing: nothing here sleeps in place of an event; every wait polls for a
condition up to a timeout, and every timeout in the suite goes through
:func:`scaled`, so a slow machine sets ``GRAVITY_LED_TEST_TIME_FACTOR=3``
once instead of editing tests.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

from gravity_led.daemon.protocol import STANDARD_GRAVITY

ROOT = Path(__file__).resolve().parents[2]
G = STANDARD_GRAVITY  # the one gravity constant: the simulator's
TIME_FACTOR = float(os.environ.get("GRAVITY_LED_TEST_TIME_FACTOR", "1") or 1)

T = TypeVar("T")


def scaled(seconds: float) -> float:
    """A timeout or an upper time bound, stretched by the suite's time factor."""
    return seconds * TIME_FACTOR


# ---- tilt -----------------------------------------------------------------------


def tilt(duty: float, *, g: float = G) -> tuple[float, float, float]:
    """The gravity vector (length ``g``) for which the daemon's default
    mapping lights the right LED at ``duty`` (negative: the left LED at
    ``-duty``): a phone rolled ``asin(duty)`` to the right."""
    return (0.0, duty * g, math.sqrt(max(0.0, 1.0 - duty * duty)) * g)


def roll(deg: float, *, g: float = G) -> tuple[float, float, float]:
    """:func:`tilt` in degrees: a phone rolled ``deg`` to the right (left if negative)."""
    return tilt(math.sin(math.radians(deg)), g=g)


def tilt_text(duty: float, *, g: float = G) -> str:
    """:func:`tilt` as a text frame ``"x y z"``."""
    x, y, z = tilt(duty, g=g)
    return f"{x!r} {y!r} {z!r}"


# ---- waiting -----------------------------------------------------------------------


def wait_until(probe: Callable[[], T], *, timeout: float = 5.0, interval: float = 0.005, what: str = "condition") -> T:
    """Call ``probe`` until it returns something true; return that.  Fails
    after ``scaled(timeout)`` seconds naming ``what`` and the last value."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {scaled(timeout):g} s; last: {value!r}")
        time.sleep(interval)


# ---- processes -------------------------------------------------------------------


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 free for ``kind`` (TCP by default, or SOCK_DGRAM)."""
    with socket.socket(socket.AF_INET, kind) as s:
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
            proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def daemon_cmd(port: int, *args: str) -> list[str]:
    """``python -m gravity_led.daemon`` on 127.0.0.1:``port`` with mock pins."""
    return [sys.executable, "-m", "gravity_led.daemon", "--pin-factory", "mock", "--host", "127.0.0.1", "--port", str(port), *args]


def get_status(http_url: str, *, query: str = "", headers: Mapping[str, str] | None = None, cafile: str | None = None) -> dict[str, Any]:
    """``GET /status`` as a dict (https: verified against ``cafile``, else unverified)."""
    ctx = None
    if http_url.startswith("https:"):
        ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
    req = urllib.request.Request(http_url + "/status" + query, headers=dict(headers or {}))
    with urllib.request.urlopen(req, timeout=scaled(5), context=ctx) as r:
        return json.loads(r.read())


def wait_status(http_url: str, pred: Callable[[dict[str, Any]], bool], *, timeout: float = 5.0, **how: Any) -> dict[str, Any]:
    """Poll ``/status`` until ``pred`` holds; that status.  ``how``: as :func:`get_status`."""
    last: list[dict[str, Any]] = []

    def probe() -> dict[str, Any] | None:
        last[:] = [get_status(http_url, **how)]
        return last[0] if pred(last[0]) else None

    try:
        return wait_until(probe, timeout=timeout, what="/status condition")
    except AssertionError:
        raise AssertionError(f"/status never matched within {scaled(timeout):g} s; last: {last[0] if last else None}") from None


class Process:
    """A program started for a test, its output in a file; ``stop()`` (or the
    ``with`` block) ends it.  ``ready_url``: wait until that URL answers."""

    def __init__(
        self,
        cmd: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        ready_url: str | None = None,
        ready_timeout: float = 15.0,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.cmd = list(cmd)
        self.log_path = log_path
        self._log = log_path.open("ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            self.cmd,
            env=dict(env) if env is not None else clean_env(),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,  # e.g. the benchmarks' Pi Zero stand-in: into a cgroup before exec
        )
        if ready_url is not None:
            self.wait_http(ready_url, timeout=ready_timeout)
        self.startup_s = time.monotonic() - t0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.cmd[:3]} exited with {self.proc.returncode}:\n{self.logs()}")

    def wait_http(self, url: str, *, timeout: float = 15.0) -> None:
        """Until ``url`` answers at all (any HTTP status): the program listens."""
        ctx = ssl._create_unverified_context() if url.startswith("https:") else None

        def answers() -> bool:
            self._alive()
            try:
                with urllib.request.urlopen(url, timeout=scaled(5), context=ctx):
                    return True
            except urllib.error.HTTPError:
                return True
            except (OSError, urllib.error.URLError):
                return False

        wait_until(answers, timeout=timeout, interval=0.002, what=f"{url} answering")

    def wait_log(self, text: str, *, timeout: float = 10.0) -> None:
        """Until the program's output contains ``text``."""

        def logged() -> bool:
            if text in self.logs():
                return True
            self._alive()
            return False

        try:
            wait_until(logged, timeout=timeout, interval=0.01, what=repr(text))
        except AssertionError:
            raise AssertionError(f"{text!r} not logged within {scaled(timeout):g} s:\n{self.logs()}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        rc = stop_process(self.proc, sig, timeout)
        self._log.close()
        return rc

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DaemonProcess(Process):
    """``python -m gravity_led.daemon`` on 127.0.0.1 with mock pins and an empty config
    file, ready when ``/healthz`` answers."""

    def __init__(self, args: Sequence[str], log_path: Path, *, env: Mapping[str, str] | None = None, port: int | None = None, scheme: str = "http", ready_timeout: float = 15.0) -> None:
        self.port = port or free_port()
        self.scheme = scheme
        empty = log_path.with_suffix(".toml")
        empty.write_text("")
        full_env = clean_env(GRAVITY_LED_CONFIG=str(empty))
        full_env.update(env or {})
        super().__init__(daemon_cmd(self.port, *args), log_path, env=full_env, ready_url=self.http_url + "/healthz", ready_timeout=ready_timeout)

    @property
    def url(self) -> str:
        return f"{'wss' if self.scheme == 'https' else 'ws'}://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
        ctx = ssl._create_unverified_context() if self.scheme == "https" else None
        req = urllib.request.Request(self.http_url + path, headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(req, timeout=scaled(5), context=ctx) as r:
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
        last: list[dict[str, Any]] = []

        def probe() -> dict[str, Any] | None:
            last[:] = [self.status()]
            return last[0] if predicate(last[0]) else None

        try:
            return wait_until(probe, timeout=timeout, what="/status condition")
        except AssertionError:
            raise AssertionError(f"condition not met within {scaled(timeout):g} s; last status: {last[0] if last else None}") from None


async def cancel_outcome(task: "asyncio.Future[object]", *, timeout_s: float = 2.0) -> str:
    """Cancel ``task`` and say what it did: "stopped" (the cancellation went
    through), "hung" (still running after ``timeout_s``) or "ended" (it
    swallowed the cancellation and returned)."""
    task.cancel()
    try:
        await asyncio.wait_for(task, timeout_s)
    except asyncio.CancelledError:
        return "stopped"
    except TimeoutError:
        return "hung"
    return "ended"
