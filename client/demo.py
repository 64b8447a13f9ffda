"""``gravity-led-client demo``: the whole system on this machine in one command.

Starts the daemon on mock pins on a free loopback port, waits for its
``/healthz``, streams the simulator to it with the live view until Ctrl-C or
``--duration``, then stops the daemon with SIGTERM.  The daemon's log goes to
a temporary file, shown only if the daemon fails, so it never garbles the
live view.

Nothing outlives the demo.  The daemon runs with ``--stop-with-stdin`` and
its standard input is a pipe whose only writer is this process: when the
demo dies, by any signal (SIGKILL too, which no handler sees), the kernel
closes that end, the daemon reads end-of-file and stops itself cleanly.  We
chose the pipe over ``PR_SET_PDEATHSIG``: it works on every OS, and it
cannot miss a parent that died before the child set it up (the end of file
waits to be read).  The demo's temporary folder records its owner's process
id, so the next demo removes the folders of demos that are gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Iterator

from gravity_led.daemon.wording import count

from . import EXIT_OK, ClientError
from .link import LinkOptions
from .live import View
from .session import StreamOptions, run_stream
from .sim import SimConfig, sim_source

__all__ = ["LocalDaemon", "free_port", "remove_leftovers", "run_demo"]

READY_TIMEOUT_S = 15.0
FOLDER_PREFIX = "gravity-led-demo-"
OWNER_FILE = "owner.pid"


def free_port() -> int:
    """A loopback port nobody listens on right now (the daemon binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_leftovers(tmp: str | None = None) -> list[Path]:
    """Remove this user's demo folders whose owner process is gone; return them.

    A folder without a readable owner file is left alone (it may be a demo
    starting right now), as are other users' folders.
    """
    removed = []
    for folder in Path(tmp or tempfile.gettempdir()).glob(FOLDER_PREFIX + "*"):
        try:
            if folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
                continue
            pid = int((folder / OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            continue
        if not _alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class LocalDaemon:
    """``python -m gravity_led.daemon --pin-factory mock`` as a child process; a context manager that always stops it."""

    def __init__(self, *extra_args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.http_url = f"http://127.0.0.1:{self.port}"
        remove_leftovers()
        self._logdir = tempfile.TemporaryDirectory(prefix=FOLDER_PREFIX)
        (Path(self._logdir.name) / OWNER_FILE).write_text(f"{os.getpid()}\n")
        self.log_path = Path(self._logdir.name) / "daemon.log"
        self.cmd = [
            sys.executable, "-m", "gravity_led.daemon",
            "--pin-factory", "mock", "--host", "127.0.0.1", "--port", str(self.port), "--stop-with-stdin",
            *extra_args,
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "LocalDaemon":
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRAVITY_LED_")}
        # An empty config file, so a system-wide /etc/gravity-led/daemon.toml cannot change the demo.
        empty = self.log_path.with_name("daemon.toml")
        empty.write_text("")
        env["GRAVITY_LED_CONFIG"] = str(empty)
        with self.log_path.open("wb") as log:
            try:
                # stdin: the pipe whose end (our death) stops the daemon (--stop-with-stdin)
                self.proc = subprocess.Popen(
                    self.cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=env,
                    start_new_session=True,  # Ctrl-C goes to us; we stop the daemon ourselves, in order
                )  # fmt: skip
            except OSError as e:
                raise ClientError(f"cannot start the daemon ({e.strerror or e})") from None
        try:
            self._wait_ready()
        except BaseException:  # Ctrl-C or a signal while it starts, too: __exit__ will not run
            self.close()
            raise
        return self

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ClientError(
                    f"the daemon exited with status {self.proc.returncode} while starting; its log:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.http_url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        self.stop()
        raise ClientError(f"the daemon did not answer {self.http_url}/healthz within {READY_TIMEOUT_S:.0f} s")

    def stop(self, timeout_s: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in ``timeout_s``; returns the exit status."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
        return proc.returncode

    def close(self) -> None:
        self.stop()
        self._logdir.cleanup()

    def __enter__(self) -> "LocalDaemon":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


@contextlib.contextmanager
def _signals_stop_us() -> Iterator[None]:
    """SIGHUP (the terminal closed) and SIGTERM end the demo as Ctrl-C does, so the daemon is stopped
    and the temporary folder removed; inside the stream the session's own handlers take over."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGHUP, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_demo(sim: SimConfig, *, binary: bool, max_retries: int | None, stream: StreamOptions, view: View) -> int:
    """Start the daemon, stream ``sim`` to it until the end of ``stream`` or a signal, stop the daemon."""
    until = (
        f"for {stream.duration_s:g} s" if stream.duration_s is not None
        else f"for {count(stream.count, 'frame')}" if stream.count is not None
        else "until Ctrl-C"
    )  # fmt: skip
    # --duration counts from the daemon's answer: its start (at most READY_TIMEOUT_S) is not the user's to pay for.
    with _signals_stop_us(), LocalDaemon() as daemon:
        view.event(f"demo: daemon on mock pins at {daemon.url}")
        view.event(f"  status: {daemon.http_url}/status")
        view.event(f"  simulated phone: {sim.pattern} at {sim.rate_hz:g} Hz, {until}")
        try:
            run_stream(
                lambda: sim_source(sim),
                LinkOptions(url=daemon.url, binary=binary, max_retries=max_retries, telemetry_hz=10.0),
                stream,
                view,
            )
        finally:
            status = daemon.stop()
        if status not in (0, None, -signal.SIGTERM):
            raise ClientError(f"the daemon exited with status {status}; its log:\n{daemon.log_tail()}")
    return EXIT_OK
