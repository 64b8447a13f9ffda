"""Helpers for the client tests: the client CLI as a child process, and fake phone apps.

The daemon itself comes from the shared ``start_daemon`` fixture in conftest.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest

from tests.support.harness import ROOT, clean_env, scaled


def client_env(**extra: str) -> dict[str, str]:
    return clean_env(PYTHONUNBUFFERED="1", **extra)


class ClientProcess:
    """``python -m gravity_led.client ARGS`` with stdout/stderr collected line by line in the background."""

    def __init__(self, args: tuple[str, ...], *, stdin: bool = False, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gravity_led.client", *args],
            cwd=ROOT,
            env=client_env(**(env or {})),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._cond = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _read(self, stream: Any, sink: list[str]) -> None:
        for line in stream:
            with self._cond:
                sink.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def wait_output(self, pattern: str, timeout: float = 10.0, *, stream: str = "out") -> str:
        """Block until a line of stdout (or stderr) matches ``pattern``; return the line."""
        rx = re.compile(pattern)
        sink = self.out if stream == "out" else self.err
        deadline = time.monotonic() + scaled(timeout)
        with self._cond:
            seen = 0
            while True:
                for line in sink[seen:]:
                    if rx.search(line):
                        return line
                seen = len(sink)
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not any(t.is_alive() for t in self._readers)):
                    raise AssertionError(
                        f"no {stream} line matching {pattern!r} within {timeout} s\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
                    )
                self._cond.wait(min(left, 0.1))

    def write(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def wait(self, timeout: float = 15.0) -> int:
        rc = self.proc.wait(timeout)
        for t in self._readers:
            t.join(5)
        return rc

    def interrupt(self, timeout: float = 10.0) -> int:
        """Ctrl-C, as a user would press it; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def run_client() -> Iterator[Callable[..., ClientProcess]]:
    """Factory for :class:`ClientProcess`; every child still running at the end is killed."""
    started: list[ClientProcess] = []

    def start(*args: str, stdin: bool = False, env: dict[str, str] | None = None) -> ClientProcess:
        c = ClientProcess(tuple(args), stdin=stdin, env=env)
        started.append(c)
        return c

    yield start
    for c in started:
        c.kill()


def run_client_to_end(*args: str, timeout: float = 20.0, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gravity_led.client", *args],
        cwd=ROOT,
        env=client_env(),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ---- fake phone apps --------------------------------------------------------


class _LoopThread:
    """An asyncio loop in a daemon thread, for servers the tests run next to the client."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@dataclass
class FakeSensorServer:
    """Speaks SensorServer's protocol (umer0586/SensorServer, websocketserver/SensorWebSocketServer.kt):
    JSON messages at ~50 Hz, or a close code.

    ``messages`` (built with phone_apps.sensorserver_message) are sent in turn, again and again.
    """

    values: list[float] = field(default_factory=lambda: [0.0, 4.905, 8.496])
    close_code: int | None = None
    """If set, close every connection with this code right after the handshake (4001 = sensor not found)."""
    messages: list[str] | None = None
    port: int = 0
    paths: list[str] = field(default_factory=list)
    closed_with: list[int | None] = field(default_factory=list)
    """The close code each client sent when it left (None: it just dropped the connection)."""
    left: threading.Event = field(default_factory=threading.Event)
    """Set when a client has left (its close code is in ``closed_with``)."""

    async def handler(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        self.paths.append(ws.request.path)
        if self.close_code is not None:
            await ws.close(self.close_code, "closing as asked by the test")
            return
        n = 0
        try:
            while True:
                n += 1
                if self.messages:
                    await ws.send(self.messages[n % len(self.messages)])
                else:
                    await ws.send(json.dumps({"values": self.values, "timestamp": 1_000_000 * n, "accuracy": 3}))
                await asyncio.sleep(0.02)
        except ConnectionClosed as e:
            self.closed_with.append(e.rcvd.code if e.rcvd is not None else None)
            self.left.set()


@pytest.fixture
def fake_sensorserver() -> Iterator[Callable[..., FakeSensorServer]]:
    from websockets.asyncio.server import serve

    lt = _LoopThread()
    servers: list[Any] = []

    def start(**kwargs: Any) -> FakeSensorServer:
        fake = FakeSensorServer(**kwargs)

        async def go() -> Any:
            return await serve(fake.handler, "127.0.0.1", fake.port)  # port=0 (the default): any free one

        server = lt.run(go())
        servers.append(server)
        fake.port = server.sockets[0].getsockname()[1]
        return fake

    yield start

    async def shutdown() -> None:
        for s in servers:
            s.close()
            await s.wait_closed()

    lt.run(shutdown())
    lt.close()


@dataclass
class FakePhyphox:
    """phyphox's remote access as its wiki documents it (phyphox.org/wiki, "Remote-interface communication"):
    ``/get?accX&accY&accZ&acc_time`` answers the newest value of each buffer, ``/get?accX=T|acc_time&...``
    every value whose acc_time is above T; ``/control?cmd=start``; ``status.measuring`` stays false
    (and the buffers keep their last values) while paused.  While measuring, each /get finds
    ``per_get`` new samples, sample i being (i * 1e-4 + x, y, z) at t = i / 100.
    """

    values: tuple[float, float, float] = (0.0, 4.905, 8.496)
    nulls_first: int = 3
    """The first /get answers after start hold null, like phyphox before the first sample."""
    measuring: bool = False
    per_get: int = 2
    failing: bool = False
    """Answer 503, like a phone whose app went to the background."""
    port: int = 0
    requests: list[str] = field(default_factory=list)
    samples: list[tuple[float, float, float, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str) -> dict[str, Any]:
        with self.lock:
            self.requests.append(path)
            if path.startswith("/control"):
                if "cmd=start" in path:
                    self.measuring = True
                return {"result": True}
            if not path.startswith("/get"):
                raise KeyError(path)
            if self.failing:
                raise LookupError(path)
            gets = sum(1 for r in self.requests if r.startswith("/get"))
            if self.measuring and gets > self.nulls_first:
                for _ in range(self.per_get):
                    i = len(self.samples)
                    self.samples.append((i / 100, self.values[0] + i * 1e-4, self.values[1], self.values[2]))
            columns = {"acc_time": 0, "accX": 1, "accY": 2, "accZ": 3}
            buffers = {}
            for q in path.partition("?")[2].split("&"):
                name, eq, arg = q.partition("=")
                if name not in columns:
                    continue
                if not eq:  # the newest value only; null before the first sample
                    values = [self.samples[-1][columns[name]]] if self.samples else [None]
                    buffers[name] = {"size": 0, "updateMode": "single", "buffer": values}
                else:
                    threshold, _, ref = arg.partition("|")
                    ref_col = columns[ref or name]
                    chosen = [s[columns[name]] for s in self.samples if s[ref_col] > float(threshold)]
                    buffers[name] = {"size": 0, "updateMode": "partial", "buffer": chosen}
            return {"buffer": buffers, "status": {"session": "abc", "measuring": self.measuring, "timedRun": False, "countDown": 0}}


@pytest.fixture
def fake_phyphox() -> Iterator[FakePhyphox]:
    fake = FakePhyphox()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            try:
                body = json.dumps(fake.answer(self.path)).encode()
                self.send_response(200)
            except KeyError:
                body = b"not found"
                self.send_response(404)
            except LookupError:
                body = b"unavailable"
                self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
