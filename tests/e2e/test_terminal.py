"""The live view in a real terminal (tmux, Debian's package): it fits, never scrolls, follows resizes,
and does not erase what is typed into ``stdin``.

Each test runs the real client (and daemon) in a detached tmux session on a
private server socket and reads the screen with ``capture-pane``. ``-J`` joins
rows that the terminal wrapped, so a line wider than the terminal shows up as
one long line: that is how "it wrapped" is seen.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from typing import Callable, Iterator

import pytest

from tests.support.harness import ROOT, get_status, wait_status, wait_until

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (Debian: apt-get install tmux)")

STATUS = re.compile(r"^(connecting|connected|busy|down) +L ▕.*▏ *(\d+|\?)%  R ▕.*▏ *(\d+|\?)%")


class Tmux:
    """One detached tmux session on its own server socket, running one command."""

    def __init__(self, command: list[str], *, width: int, height: int = 24, env: dict[str, str] | None = None) -> None:
        self.socket = f"gravity-led-test-{uuid.uuid4().hex[:8]}"
        env_args = [f"{k}={v}" for k, v in {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env or {})}.items()]
        shell = shlex.join(["env", "-u", "GRAVITY_LED_URL", *env_args, *command])
        self.tmux("new-session", "-d", "-s", "main", "-x", str(width), "-y", str(height), "-c", str(ROOT), shell)
        # Keep the screen readable after the command exits (a failure's last words).
        self.tmux("set-option", "-t", "main", "remain-on-exit", "on")

    def tmux(self, *args: str) -> str:
        r = subprocess.run(["tmux", "-u", "-L", self.socket, "-f", "/dev/null", *args], capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {r.stderr}")
        return r.stdout

    def rows(self) -> list[str]:
        """The screen, wrapped rows joined, trailing blank rows dropped."""
        lines = self.tmux("capture-pane", "-p", "-J", "-t", "main").rstrip("\n").split("\n")
        while lines and not lines[-1].strip():
            lines.pop()
        return [line.rstrip() for line in lines]

    def history(self) -> int:
        """Rows scrolled off the top so far."""
        return int(self.tmux("display-message", "-p", "-t", "main", "#{history_size}").strip())

    def width(self) -> int:
        return int(self.tmux("display-message", "-p", "-t", "main", "#{window_width}").strip())

    def resize(self, width: int) -> None:
        self.tmux("resize-window", "-t", "main", "-x", str(width))

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "main", *keys)

    def wait_screen(self, predicate: Callable[[list[str]], bool], what: str, timeout: float = 15.0) -> list[str]:
        """Poll the screen until ``predicate(rows)`` holds (the screen is the event)."""
        last: list[list[str]] = [[]]

        def probe() -> list[str] | None:
            last[0] = self.rows()
            return last[0] if predicate(last[0]) else None

        try:
            return wait_until(probe, timeout=timeout, interval=0.05, what=what)
        except AssertionError:
            raise AssertionError(f"screen never showed {what}:\n" + "\n".join(last[0])) from None

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def tmux() -> Iterator[Callable[..., Tmux]]:
    opened: list[Tmux] = []

    def open_(*command: str, width: int, env: dict[str, str] | None = None) -> Tmux:
        t = Tmux([sys.executable, "-m", "gravity_led.client", *command], width=width, env=env)
        opened.append(t)
        return t

    yield open_
    for t in opened:
        t.close()


def _status_row(rows: list[str]) -> str | None:
    return rows[-1] if rows and STATUS.match(rows[-1]) else None


def _wait_frames(http_url: str, more: int, timeout: float = 15.0) -> None:
    """Until the daemon accepted ``more`` further frames: at 50 Hz, 50 frames is a second, ten redraws."""
    start = get_status(http_url)["frames"]["accepted"]
    wait_status(http_url, lambda s: s["frames"]["accepted"] >= start + more, timeout=timeout)


def _demo_status_url(rows: list[str]) -> str:
    m = re.search(r"status: (http://127\.0\.0\.1:\d+)/status", "\n".join(rows))
    assert m, "\n".join(rows)
    return m[1]


@pytest.mark.parametrize("width", [80, 50])
def test_demo_fits_the_terminal_and_never_scrolls(tmux, width: int) -> None:
    t = tmux("demo", width=width)
    assert t.width() == width
    rows = t.wait_screen(lambda r: _status_row(r) is not None and "connected to" in "\n".join(r), "the live view")
    http_url = _demo_status_url(rows)
    history, count = t.history(), len(rows)
    _wait_frames(http_url, 50)  # ten redraws or more
    rows = t.rows()
    assert t.history() == history == 0, "the screen scrolled"
    assert len(rows) == count, "the live view added rows:\n" + "\n".join(rows)
    assert all(len(row) <= width - 1 for row in rows), "a line wrapped:\n" + "\n".join(rows)
    status = _status_row(rows)
    assert status is not None, "\n".join(rows)
    if width >= 80:
        assert re.search(r"\d+ frames +\d+\.\d/s$", status), status  # room for everything at 80
    # The banner: where the daemon is, and how the demo ends.
    assert rows[0].startswith("demo: daemon on mock pins at ws://127.0.0.1:")
    assert any("until Ctrl-C" in row for row in rows)


def test_the_live_view_follows_a_resize(tmux) -> None:
    t = tmux("demo", width=80)
    rows = t.wait_screen(lambda r: _status_row(r) is not None and "frames" in r[-1], "the live view at 80 columns")
    http_url = _demo_status_url(rows)
    for width in (50, 40):
        t.resize(width)
        rows = t.wait_screen(lambda r: _status_row(r) is not None and len(r[-1]) <= width - 1, f"a status line within {width} columns")
        # Nothing left over from the wider line: exactly one status row.
        assert sum(1 for row in rows if "L ▕" in row) == 1, "\n".join(rows)
        history = t.history()
        _wait_frames(http_url, 50)
        rows = t.rows()
        assert t.history() == history, f"the screen scrolled at {width} columns"
        assert all(len(row) <= width - 1 for row in rows[-1:]) and _status_row(rows), "\n".join(rows)


def test_typing_into_stdin_is_not_erased(tmux, start_daemon) -> None:
    d = start_daemon()
    t = tmux("stdin", "--url", d.url, width=80)
    t.wait_screen(lambda r: any(row.startswith("connected to ") for row in r), "the connection")
    t.keys("0 4.9 8.5", "Enter")
    rows = t.wait_screen(lambda r: _status_row(r) is not None and " 50%" in r[-1], "a status line after the line entered")
    assert rows[-2] == "0 4.9 8.5", "\n".join(rows)  # the typed line stays, the status comes under it
    t.keys("0 -4.9")  # half-typed: no Enter yet
    t.wait_screen(lambda r: r[-1].endswith("0 -4.9"), "the typing")
    _wait_frames(d.http_url, 4)  # the keep-alive repeats: a second of refreshes
    rows = t.rows()
    assert rows[-1].endswith("0 -4.9"), "the live view erased the typing:\n" + "\n".join(rows)
    assert not any(STATUS.match(row) for row in rows[-1:])
    t.keys(" 8.5", "Enter")
    d.wait_for(lambda s: s["leds"]["left"] > 0.45)


def test_closing_the_terminal_stops_the_demo_and_its_daemon(tmux, tmp_path) -> None:
    import socket

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    t = tmux("demo", width=80, env={"TMPDIR": str(scratch)})
    rows = t.wait_screen(lambda r: _status_row(r) is not None and "connected to" in "\n".join(r), "the live view")
    port = int(re.search(r":(\d+)$", _demo_status_url(rows))[1])
    assert [p.name[:17] for p in scratch.iterdir()] == ["gravity-led-demo-"]
    t.close()  # the terminal goes away: SIGHUP to the demo
    wait_until(lambda: not any(scratch.iterdir()), timeout=15, what="the demo's folder removed")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_a_background_job_does_not_draw_over_the_shell(start_daemon) -> None:
    """``send --duration 10 ... &`` (docs/protocol.md, *Try it by hand*): its redraws would land on the prompt."""
    d = start_daemon()
    t = Tmux(["bash", "--norc", "--noprofile", "-i"], width=80, env={"PS1": "prompt$ "})
    try:
        t.wait_screen(lambda r: bool(r) and r[-1].startswith("prompt$"), "the prompt")
        client = shlex.join([sys.executable, "-m", "gravity_led.client", "send", "--url", d.url, "--duration", "3", "0", "-4.9", "8.5"])
        t.keys(f"{client} &", "Enter")
        d.wait_for(lambda s: s["leds"]["left"] > 0.45)
        _wait_frames(d.http_url, 4)  # a second of keep-alive repeats: a tty view would have redrawn by now
        t.keys("echo typed", "Enter")
        rows = t.wait_screen(lambda r: "typed" in r, "the shell's answer")
        assert not any("L ▕" in row or "connected" in row for row in rows), "\n".join(rows)
        t.keys("wait; echo exit=$?", "Enter")
        t.wait_screen(lambda r: "exit=0" in r, "the job's end", timeout=15)
    finally:
        t.close()


def test_duration_ends_a_run_on_a_terminal_whose_daemon_is_down() -> None:
    """On a terminal (the redrawn status line), with the daemon down: the run ends on time, and the
    reason is one line of its own, not mixed into the status line."""
    from tests.support.harness import free_port

    t = Tmux(["bash", "--norc", "--noprofile", "-i"], width=100, env={"PS1": "prompt$ "})
    try:
        t.wait_screen(lambda r: bool(r) and r[-1].startswith("prompt$"), "the prompt")
        client = shlex.join([sys.executable, "-m", "gravity_led.client", "sim", "--url", f"127.0.0.1:{free_port()}", "--duration", "2"])
        t.keys(f"{client}; echo exit=$?", "Enter")
        rows = t.wait_screen(lambda r: any(row.startswith("exit=") for row in r), "the run's end", timeout=10)
        assert "exit=1" in rows, "\n".join(rows)
        errors = [row for row in rows if "sent nothing" in row]
        assert len(errors) == 1 and errors[0].startswith("gravity-led-client: sent nothing within --duration 2 s: the daemon at ws://127.0.0.1:"), "\n".join(rows)
    finally:
        t.close()
