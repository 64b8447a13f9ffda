"""The systemd side, tested with the real tools: systemd-analyze verify and
security on the units, the sd_notify protocol seen from a socket we bind
ourselves, socket activation under systemd-socket-activate, SIGHUP reloads,
and the journal handler's fields.

Nothing here mocks systemd: where a tool is missing the test says which and
skips (``.ci/run`` installs them: the ``systemd`` package for the tools,
``libsystemd-dev`` + ``pkg-config`` for systemd-python).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
from websockets.sync.client import connect

from tests.support.harness import ROOT, Process, clean_env, free_port, get_status, scaled, tilt_text, wait_status, wait_until
from tests.support.harness import daemon_cmd as _daemon_cmd
from gravity_led.daemon.systemd import Systemd, SystemdError

pytestmark = pytest.mark.systemd

DEPLOY = ROOT / "deploy"
SERVICE = DEPLOY / "gravity-led.service"
SOCKET_UNIT = DEPLOY / "gravity-led.socket"
EXPOSURE_MAX = 1.5

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate") or next(
    (p for p in ("/lib/systemd/systemd-socket-activate", "/usr/lib/systemd/systemd-socket-activate") if os.access(p, os.X_OK)),
    None,
)
needs_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (Debian: apt install systemd)")
needs_socket_activate = pytest.mark.skipif(
    SOCKET_ACTIVATE is None, reason="systemd-socket-activate is not installed (Debian: apt install systemd)"
)
try:
    import systemd.daemon  # noqa: F401
    import systemd.journal  # noqa: F401

    HAVE_SYSTEMD_PYTHON = True
except ImportError:
    HAVE_SYSTEMD_PYTHON = False
needs_systemd_python = pytest.mark.skipif(
    not HAVE_SYSTEMD_PYTHON,
    reason="systemd-python is not importable (apt install libsystemd-dev pkg-config; pip install systemd-python)",
)

# ------------------------------------------------------------------ units ----


def unit_settings(path: Path) -> dict[str, list[str]]:
    """KEY -> values of a unit file (every assignment; comments dropped)."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;[":
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def runnable_copy(tmp: Path, units: tuple[Path, ...] = (SERVICE, SOCKET_UNIT)) -> list[Path]:
    """Copies of the units in which ExecStart's program (the venv install.sh
    makes under /opt, absent here) is an executable that exists; nothing else
    changes. verify checks that ExecStart= is executable, so the unchanged
    unit can only pass where gravity-led is installed; test_install.py
    verifies the installed units with the real venv instead."""
    out = []
    for unit in units:
        text = unit.read_text()
        if unit.suffix == ".service":
            text, n = re.subn(r"^ExecStart=/opt/gravity-led/venv/bin/gravity-led-daemon\b", f"ExecStart={sys.executable} -m gravity_led.daemon", text, flags=re.M)
            assert n == 1, "ExecStart= should run /opt/gravity-led/venv/bin/gravity-led-daemon"
        dest = tmp / unit.name
        dest.write_text(text)
        out.append(dest)
    return out


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run([SYSTEMD_ANALYZE, *args], capture_output=True, text=True, timeout=60)


@needs_analyze
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    units = runnable_copy(tmp_path)
    r = analyze("verify", *map(str, units))
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


@needs_analyze
def test_verify_really_checks_the_units(tmp_path: Path) -> None:
    """The tool must fail on a broken unit, else the test above proves nothing."""
    (tmp_path / "gravity-led.service").write_text(SERVICE.read_text())  # ExecStart absent here
    r = analyze("verify", str(tmp_path / "gravity-led.service"))
    assert r.returncode != 0 and "gravity-led-daemon" in r.stderr, r.stderr
    bad = runnable_copy(tmp_path)[0]
    bad.write_text(bad.read_text().replace("Type=notify", "Type=notifyy"))
    r = analyze("verify", str(bad))
    assert "notifyy" in r.stderr, r.stderr


def exposure(unit: Path) -> tuple[float, str]:
    r = analyze("security", "--offline=yes", "--no-pager", str(unit))
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", r.stdout)
    assert m, f"no exposure line in systemd-analyze output (rc {r.returncode}):\n{r.stdout}\n{r.stderr}"
    return float(m.group(1)), r.stdout


@needs_analyze
def test_security_exposure_at_most_1_5() -> None:
    score, report = exposure(SERVICE)
    assert score <= EXPOSURE_MAX, f"exposure {score} > {EXPOSURE_MAX}:\n{report}"


@needs_analyze
def test_security_score_reacts_to_weakening(tmp_path: Path) -> None:
    """The parsed score is the real one: dropping the sandbox raises it a lot."""
    score, _ = exposure(SERVICE)
    weak = tmp_path / "gravity-led.service"
    weak.write_text(
        "\n".join(
            line
            for line in SERVICE.read_text().splitlines()
            if not line.startswith(("ProtectSystem", "SystemCallFilter", "CapabilityBoundingSet", "User=", "RestrictAddressFamilies"))
        )
    )
    weak_score, report = exposure(weak)
    assert weak_score >= score + 3, report


def test_service_keeps_gpio_reachable() -> None:
    """The hardening must not hide what gpiozero and lgpio need on a Pi."""
    s = unit_settings(SERVICE)
    assert "char-gpiochip rw" in s["DeviceAllow"]
    assert any(v.startswith("/dev/gpiomem") for v in s["DeviceAllow"])
    assert s.get("PrivateDevices", ["no"])[-1] == "no", "PrivateDevices=yes hides /dev/gpiochip*"
    # /proc/cpuinfo and /proc/device-tree: gpiozero reads the board revision there
    assert s.get("ProcSubset", ["all"])[-1] == "all"
    for key in ("InaccessiblePaths", "TemporaryFileSystem"):
        assert not any("/proc" in v or "/sys" in v for v in s.get(key, []))
    # lgpio writes notification FIFOs into LG_WD, which must be writable
    assert s["RuntimeDirectory"] == ["gravity-led"]
    assert "LG_WD=/run/gravity-led" in s["Environment"]
    assert any(v in ("GRAVITY_LED_PIN_FACTORY=lgpio", "GPIOZERO_PIN_FACTORY=lgpio") for v in s["Environment"]) or any(
        "--pin-factory" in v for v in s["ExecStart"]
    )
    assert "gpio" in " ".join(s.get("SupplementaryGroups", []) + s.get("Group", []))
    assert s["User"] == ["gravity-led"]


def test_service_lifecycle_settings() -> None:
    s = unit_settings(SERVICE)
    assert s["Type"] == ["notify"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["Restart"] == ["on-failure"]
    assert s["WatchdogSec"] and s["WatchdogSec"][-1] not in ("0", "infinity")
    assert s["ExecStart"][-1].startswith("/opt/gravity-led/venv/bin/gravity-led-daemon --config /etc/gravity-led/daemon.toml")
    sock = unit_settings(SOCKET_UNIT)
    assert sock["ListenStream"] == ["5678"]
    assert sock.get("Accept", ["no"]) == ["no"]


def test_every_nonobvious_hardening_line_is_commented() -> None:
    """Each sandbox line whose reason is not its name has a comment above it."""
    lines = SERVICE.read_text().splitlines()
    needs_why = ("DeviceAllow", "DevicePolicy", "ProtectProc", "IPAddressDeny", "RestrictAddressFamilies", "MemoryDenyWriteExecute", "Environment=LG_WD", "WatchdogSec", "ExecReload", "SupplementaryGroups", "User=")
    for i, line in enumerate(lines):
        if line.startswith(needs_why):
            j = i - 1
            while j >= 0 and lines[j].strip() and not lines[j].startswith("#"):
                j -= 1  # a block of settings shares the comment above it
            assert j >= 0 and lines[j].startswith("#"), f"no comment above: {line}"


# ------------------------------------------------------- Systemd() itself ----


def test_everything_is_a_noop_off_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    """No NOTIFY_SOCKET: nothing imported, nothing sent, nothing raised, even
    without systemd-python (simulated by making its import fail)."""
    import gravity_led.daemon.journal as journal
    import gravity_led.daemon.systemd as mod

    def boom() -> None:
        raise ImportError("no systemd here")

    monkeypatch.setattr(mod, "_import_daemon", boom)
    monkeypatch.setattr(journal, "_import_journal", boom)
    sd = Systemd({})
    sd.check()
    assert sd.journal_handler() is None
    assert sd.listen_sockets() == []
    assert sd.watchdog_interval_s is None
    assert sd.notify("READY=1") is False
    sd.ready("idle"), sd.status("x"), sd.watchdog(), sd.reloading(), sd.stopping()
    with sd.reload_cycle():
        pass


def test_check_names_the_package_when_systemd_python_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import gravity_led.daemon.systemd as mod

    def missing() -> None:
        raise ImportError("No module named 'systemd'")

    monkeypatch.setattr(mod, "_import_daemon", missing)
    with pytest.raises(SystemdError) as err:
        Systemd({"NOTIFY_SOCKET": "/run/systemd/notify"}).check()
    msg = str(err.value)
    assert "python3-systemd" in msg and "systemd-python" in msg
    assert msg.count(". ") == 0 and "\n" not in msg  # one sentence


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "10000000"}, 5.0),
        ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}, 5.0),
        ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "0"}, None),
        ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "soon"}, None),
        ({"NOTIFY_SOCKET": "/x"}, None),
        ({"WATCHDOG_USEC": "10000000"}, None),  # nobody to send it to
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(env: dict[str, str], expected: float | None) -> None:
    assert Systemd(env).watchdog_interval_s == expected


def test_journal_detection_follows_journal_stream(tmp_path: Path) -> None:
    st = os.fstat(sys.stderr.fileno())
    mine = f"{st.st_dev}:{st.st_ino}"
    assert Systemd({"JOURNAL_STREAM": mine}).logs_to_journal is True
    other = os.stat(tmp_path)
    # stderr redirected away from the journal (a test capturing it): stderr wins
    assert Systemd({"JOURNAL_STREAM": f"{other.st_dev}:{other.st_ino}", "INVOCATION_ID": "x"}).logs_to_journal is False
    assert Systemd({"JOURNAL_STREAM": "garbage"}).logs_to_journal is False
    assert Systemd({}).logs_to_journal is False


@needs_systemd_python
def test_journal_handler_sends_extra_fields() -> None:
    """What reaches systemd.journal.send: MESSAGE plus upper-case extra fields,
    none of the LogRecord's lower-case attributes, no duplicated MESSAGE."""
    from systemd.journal import JournalHandler

    from gravity_led.daemon.journal import make_journal_handler

    sent: list[tuple[str, dict]] = []
    handler = make_journal_handler(sender=lambda msg, **fields: sent.append((msg, fields)))
    assert isinstance(handler, JournalHandler)
    logger = logging.getLogger("gravity_led.test_journal")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("client %s left", "1.2.3.4:5", extra={"CLIENT_ADDRESS": "1.2.3.4:5", "FRAMES_REJECTED": 3, "MESSAGE": "forged", "lower": 1})
        try:
            raise ValueError("bad")
        except ValueError:
            logger.exception("it failed")
    finally:
        logger.removeHandler(handler)
    (msg, fields), (msg2, fields2) = sent
    assert msg == "client 1.2.3.4:5 left"
    assert fields["CLIENT_ADDRESS"] == "1.2.3.4:5"
    assert fields["FRAMES_REJECTED"] == "3"
    assert fields["SYSLOG_IDENTIFIER"] == "gravity-led"
    assert fields["PRIORITY"] == "6" and fields["LOGGER"] == "gravity_led.test_journal"
    assert "MESSAGE" not in fields and "lower" not in fields and "msg" not in fields and "args" not in fields
    assert all(re.fullmatch(r"[A-Z0-9][A-Z0-9_]*", k) for k in fields), sorted(fields)
    assert fields2["PRIORITY"] == "3" and "ValueError: bad" in msg2 and "ValueError: bad" in fields2["EXCEPTION_TEXT"]


# ------------------------------------------------------ the daemon process ----


class NotifyListener:
    """Binds an AF_UNIX datagram socket, as systemd does for NOTIFY_SOCKET, and
    collects every message the daemon sends, with its arrival time."""

    def __init__(self) -> None:
        # sun_path is at most 107 bytes: pytest's tmp_path can be longer.
        self._dir = tempfile.mkdtemp(prefix="gl-notify-", dir="/tmp")
        self.path = os.path.join(self._dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            with self._cond:
                self.messages.append((time.monotonic(), fields))
                self._cond.notify_all()

    def wait_for(self, pred: Callable[[dict[str, str]], bool], timeout: float = 10.0, after: int = 0) -> int:
        """Index of the first message from ``after`` on for which ``pred`` holds."""
        deadline = time.monotonic() + scaled(timeout)
        with self._cond:
            while True:
                for i in range(after, len(self.messages)):
                    if pred(self.messages[i][1]):
                        return i
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such notification within {timeout} s; got {[m for _, m in self.messages]}")
                self._cond.wait(left)

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)


@pytest.fixture
def notify() -> Iterator[NotifyListener]:
    n = NotifyListener()
    yield n
    n.close()


@pytest.fixture
def procs() -> Iterator[list[Process]]:
    """Daemon processes a test starts itself (its own environment, or under
    systemd-socket-activate), stopped at the end."""
    started: list[Process] = []
    yield started
    for p in started:
        p.stop()


def http_json(port: int) -> dict:
    return get_status(f"http://127.0.0.1:{port}")


def wait_port_status(port: int, pred: Callable[[dict], bool], timeout: float = 5.0) -> dict:
    return wait_status(f"http://127.0.0.1:{port}", pred, timeout=timeout)


def daemon_cmd(port: int, config: Path, *extra: str) -> list[str]:
    return _daemon_cmd(port, "--config", str(config), *extra)


@needs_systemd_python
def test_notify_ready_watchdog_status_stopping(tmp_path: Path, notify: NotifyListener, procs: list[Process]) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text("stale_after_s = 30.0\n")
    port = free_port()
    watchdog_usec = 1_000_000  # pings expected every 0.5 s; systemd would kill after 1 s
    env = clean_env(NOTIFY_SOCKET=notify.path, WATCHDOG_USEC=str(watchdog_usec))
    p = Process(daemon_cmd(port, config), tmp_path / "daemon.log", env=env)
    procs.append(p)

    # READY=1 only once the socket listens: connecting right after must work.
    i_ready = notify.wait_for(lambda m: m.get("READY") == "1", timeout=15)
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    assert "idle" in notify.messages[i_ready][1].get("STATUS", ""), notify.messages[i_ready]

    # WATCHDOG=1, periodically, from the running loop: each gap below the timeout.
    i = i_ready
    for _ in range(4):
        i = notify.wait_for(lambda m: m.get("WATCHDOG") == "1", timeout=2, after=i + 1)
    pings = [t for t, m in notify.messages[i_ready:] if m.get("WATCHDOG") == "1"]
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    assert len(pings) >= 4 and max(gaps) < watchdog_usec / 1e6, gaps

    # STATUS= follows a real client in and out.
    with connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
        ws.send(tilt_text(0.5))
        i_client = notify.wait_for(lambda m: m.get("STATUS", "").startswith("client 127.0.0.1:"), after=i_ready)
        wait_port_status(port, lambda s: abs(s["leds"]["right"] - 0.5) < 1e-6)
        peer = http_json(port)["client"]
        assert peer and notify.messages[i_client][1]["STATUS"].startswith(f"client {peer} at ")
    notify.wait_for(lambda m: "idle" in m.get("STATUS", ""), after=i_client + 1)

    # SIGTERM: STOPPING=1, then a clean exit.
    n = len(notify.messages)
    p.proc.send_signal(signal.SIGTERM)
    notify.wait_for(lambda m: m.get("STOPPING") == "1", after=n)
    assert p.proc.wait(10) == 0, p.logs()


@needs_systemd_python
def test_no_watchdog_pings_without_watchdog_usec(tmp_path: Path, notify: NotifyListener, procs: list[Process]) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text("")
    port = free_port()
    p = Process(daemon_cmd(port, config), tmp_path / "daemon.log", env=clean_env(NOTIFY_SOCKET=notify.path))
    procs.append(p)
    notify.wait_for(lambda m: m.get("READY") == "1", timeout=15)
    # a status round trip proves the loop ran for a while; then stop and look
    with connect(f"ws://127.0.0.1:{port}/") as ws:
        ws.send(tilt_text(0.2))
        notify.wait_for(lambda m: m.get("STATUS", "").startswith("client "))
    assert p.stop() == 0
    assert not any(m.get("WATCHDOG") for _, m in notify.messages), notify.messages


def test_missing_systemd_python_fails_fast_with_one_sentence(tmp_path: Path) -> None:
    """Under systemd without systemd-python: exit 1 at once naming the
    package, instead of never sending READY=1 (systemd would wait 90 s)."""
    shadow = tmp_path / "shadow"
    (shadow / "systemd").mkdir(parents=True)
    # an empty 'systemd' package first on the path: `from systemd import daemon` fails
    (shadow / "systemd" / "__init__.py").write_text("")
    n = NotifyListener()
    try:
        env = clean_env(NOTIFY_SOCKET=n.path)
        env["PYTHONPATH"] = f"{shadow}{os.pathsep}{env['PYTHONPATH']}"
        config = tmp_path / "daemon.toml"
        config.write_text("")
        r = subprocess.run(daemon_cmd(free_port(), config), env=env, cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert r.returncode == 1, r.stderr
        assert "python3-systemd" in r.stderr and "systemd-python" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not any(m.get("READY") for _, m in n.messages)
    finally:
        n.close()


@needs_socket_activate
@pytest.mark.parametrize("library", ["systemd-python", "fallback"])
def test_socket_activation_serves_on_the_passed_socket(tmp_path: Path, procs: list[Process], library: str) -> None:
    """Under systemd-socket-activate, driven by a real client; with
    systemd-python's listen_fds() and with our own parser of LISTEN_FDS
    (systemd-python hidden), which socket activation alone does not need."""
    if library == "systemd-python" and not HAVE_SYSTEMD_PYTHON:
        pytest.skip("systemd-python is not importable (apt install libsystemd-dev pkg-config; pip install systemd-python)")
    config = tmp_path / "daemon.toml"
    config.write_text("stale_after_s = 30.0\n")
    port = free_port()
    ignored = free_port()
    assert SOCKET_ACTIVATE is not None
    env = clean_env()
    if library == "fallback":
        (tmp_path / "shadow" / "systemd").mkdir(parents=True)
        (tmp_path / "shadow" / "systemd" / "__init__.py").write_text("")  # `from systemd import daemon` fails
        env["PYTHONPATH"] = f"{tmp_path / 'shadow'}{os.pathsep}{env['PYTHONPATH']}"
    # systemd-socket-activate passes only the variables named with -E.
    cmd = [SOCKET_ACTIVATE, "-l", f"127.0.0.1:{port}", "-E", f"PYTHONPATH={env['PYTHONPATH']}", "-E", "PATH"]
    cmd += daemon_cmd(ignored, config)
    p = Process(cmd, tmp_path / "daemon.log", env=env)
    procs.append(p)
    # systemd-socket-activate listens first and starts the daemon on the
    # first connection: wait for its socket, then connect as a phone would.
    p.wait_log("Listening on")
    with connect(f"ws://127.0.0.1:{port}/", compression=None, open_timeout=20) as ws:
        ws.send(tilt_text(0.75))
        wait_port_status(port, lambda s: abs(s["leds"]["right"] - 0.75) < 1e-6 and s["leds"]["left"] == 0)
        ws.send(tilt_text(-0.25))
        wait_port_status(port, lambda s: abs(s["leds"]["left"] - 0.25) < 1e-6 and s["leds"]["right"] == 0)
    p.wait_log("--host and --port are ignored")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", ignored), timeout=2).close()
    assert p.stop() == 0, p.logs()


@needs_systemd_python
def test_sighup_reloads_mapping_keeps_client_refuses_pins(tmp_path: Path, notify: NotifyListener, procs: list[Process]) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text("stale_after_s = 30.0\n")
    port = free_port()
    p = Process(daemon_cmd(port, config), tmp_path / "daemon.log", env=clean_env(NOTIFY_SOCKET=notify.path))
    procs.append(p)
    notify.wait_for(lambda m: m.get("READY") == "1", timeout=15)

    with connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
        ws.send(tilt_text(0.5))
        before = wait_port_status(port, lambda s: abs(s["leds"]["right"] - 0.5) < 1e-6)

        # a mapping change applies live, on the same connection
        config.write_text("stale_after_s = 30.0\ninvert = true\n")
        n = len(notify.messages)
        p.proc.send_signal(signal.SIGHUP)
        i_reloading = notify.wait_for(lambda m: m.get("RELOADING") == "1", after=n)
        assert int(notify.messages[i_reloading][1]["MONOTONIC_USEC"]) > 0
        i_done = notify.wait_for(lambda m: m.get("READY") == "1", after=i_reloading + 1)
        ws.send(tilt_text(0.5))
        after = wait_port_status(port, lambda s: abs(s["leds"]["left"] - 0.5) < 1e-6 and s["leds"]["right"] == 0)
        assert after["client"] == before["client"]
        p.wait_log("invert=True")

        # a pin change is refused, with a log line saying so; the mapping stays
        config.write_text('stale_after_s = 30.0\ninvert = true\nright_pin = "GPIO5"\n')
        p.proc.send_signal(signal.SIGHUP)
        i2 = notify.wait_for(lambda m: m.get("RELOADING") == "1", after=i_done + 1)
        notify.wait_for(lambda m: m.get("READY") == "1", after=i2 + 1)
        p.wait_log("right_pin cannot change without a restart")
        ws.send(tilt_text(-0.25))
        after2 = wait_port_status(port, lambda s: abs(s["leds"]["right"] - 0.25) < 1e-6)
        assert after2["client"] == before["client"]
        ws.ping().wait(5)  # the connection survived both reloads
    assert p.stop() == 0, p.logs()


# ------------------------------------------- a real journald, privately ----

JOURNALD = next((p for p in ("/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald") if os.access(p, os.X_OK)), None)


@pytest.fixture
def private_journald(tmp_path: Path) -> Iterator[Callable[..., list[str]]]:
    """A real systemd-journald in a private mount namespace: fresh tmpfs over
    /run and /var/log/journal there, so neither this machine's journal nor its
    journald (if any) is touched. Yields a function that runs a command inside
    that namespace (the daemon, journalctl) and returns its argv prefix."""
    missing = [t for t in ("unshare", "nsenter", "systemd-cat", "journalctl") if shutil.which(t) is None]
    if JOURNALD is None or missing or os.geteuid() != 0:
        pytest.skip(f"needs root, systemd-journald, {', '.join(missing) or 'unshare/nsenter'} for a private journal")
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here: {probe.stderr.decode().strip()}")
    script = (
        "set -e\n"
        "mount -t tmpfs tmpfs /run\n"
        "if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi\n"
        "mkdir -p /run/systemd/journal\n"
        f"exec {JOURNALD}\n"
    )
    ns = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script], stdout=subprocess.DEVNULL, stderr=(tmp_path / "journald.log").open("wb"))
    prefix = ["nsenter", "-t", str(ns.pid), "-m", "--"]
    deadline = time.monotonic() + scaled(15)
    while subprocess.run([*prefix, "test", "-S", "/run/systemd/journal/stdout"]).returncode != 0:
        if ns.poll() is not None or time.monotonic() > deadline:
            ns.kill()
            pytest.skip(f"systemd-journald did not start here: {(tmp_path / 'journald.log').read_text()[-500:]}")
        time.sleep(0.05)
    yield lambda: list(prefix)
    ns.terminate()
    try:
        ns.wait(10)
    except subprocess.TimeoutExpired:
        ns.kill()
        ns.wait()


def journal_entries(prefix: list[str], *matches: str) -> list[dict]:
    import json

    r = subprocess.run([*prefix, "journalctl", "--no-pager", "-o", "json", *matches], capture_output=True, text=True, timeout=30)
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


@needs_systemd_python
def test_journal_fields_end_to_end_without_duplicates(tmp_path: Path, private_journald: Callable[[], list[str]]) -> None:
    """The daemon, with stderr on a journal stream as systemd sets it up
    (JOURNAL_STREAM = that stream's dev:inode), logs through the journal with
    fields: `journalctl CLIENT_ADDRESS=...` finds the client's lines, and no
    line arrives twice (nothing also on the stderr stream)."""
    prefix = private_journald()
    config = tmp_path / "daemon.toml"
    config.write_text("")
    port = free_port()
    env = clean_env()
    inner = " ".join(f"'{a}'" for a in daemon_cmd(port, config))
    cmd = [*prefix, "systemd-cat", "-t", "gravity-led", "sh", "-c", f'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec {inner}']
    daemon = Process(cmd, tmp_path / "systemd-cat.log", env=env)
    try:
        daemon.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=15)
        with connect(f"ws://127.0.0.1:{port}/") as ws:
            ws.send(tilt_text(0.5))
            for bad in ("one two three", "1 2", "nan 0 1"):
                ws.send(bad)
            peer = wait_port_status(port, lambda s: s["frames"]["rejected"] == 3)["client"]
    finally:
        assert daemon.stop() == 0

    found = wait_until(lambda: journal_entries(prefix, f"CLIENT_ADDRESS={peer}", "FRAMES_REJECTED=3"), timeout=10, interval=0.05, what="the client's journal entries")
    assert any("3 rejected" in e["MESSAGE"] for e in found), found
    assert all(e["SYSLOG_IDENTIFIER"] == "gravity-led" and e["_TRANSPORT"] == "journal" for e in found)

    mine = journal_entries(prefix, "SYSLOG_IDENTIFIER=gravity-led")
    on_stream = [e["MESSAGE"] for e in mine if e.get("_TRANSPORT") == "stdout"]
    assert on_stream == [], f"lines also written to stderr (duplicated in the journal): {on_stream}"
    messages = [e["MESSAGE"] for e in mine]
    assert sum("listening on" in m for m in messages) == 1, messages
    assert len(messages) == len(set(messages)), messages
