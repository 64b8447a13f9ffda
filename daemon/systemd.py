"""systemd integration: readiness and status notification, watchdog, socket
activation and the journal.

Everything here is a no-op off systemd (no ``NOTIFY_SOCKET`` in the
environment), and then does not even import ``systemd-python``: that library
is C-built against libsystemd, so it is an optional extra (``pip install
.[systemd]``, or the Debian package ``python3-systemd`` on the Pi) and laptops
run the daemon without it.

How the server uses it::

    sd = Systemd()
    sd.check()                          # SystemdError: one sentence, exit 1
    handler = sd.journal_handler()      # use it *instead of* the stderr handler
    socks = sd.listen_sockets()         # serve on these if any, else bind
    ...                                 # socket listens
    sd.ready("idle")
    every sd.watchdog_interval_s: sd.watchdog()   (from the event loop)
    on connect/disconnect: sd.status("client 192.168.1.7 at 58 Hz")
    on SIGHUP: with sd.reload_cycle(): re-read the config   # RELOADING=1 ... READY=1
    on SIGTERM: sd.stopping()

The notification messages go through ``systemd.daemon.notify`` (sd_notify(3)),
which reads ``NOTIFY_SOCKET`` from the process environment; the ``env``
mapping given to :class:`Systemd` decides only *whether* to talk to systemd
and how (watchdog interval, journal), so pass ``os.environ`` (the default) in
production.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import sys
import time
from typing import Any, Iterator, Mapping

from .errors import SystemdError

__all__ = ["JOURNAL_SOCKET", "Systemd", "SystemdError"]

log = logging.getLogger(__name__)

JOURNAL_SOCKET = "/run/systemd/journal/socket"
"""Where journald listens for native-protocol messages (sd_journal_send(3))."""

_MISSING = (
    "running under systemd (NOTIFY_SOCKET is set) but the Python module 'systemd' is not installed:"
    " install the Debian package python3-systemd (sudo apt install python3-systemd, then a venv made with"
    " --system-site-packages) or the pip package systemd-python (pip install 'gravity-led[systemd]')"
)


def _import_daemon() -> Any:
    from systemd import daemon  # type: ignore[import-not-found]  # optional extra

    return daemon


def _positive_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        n = int(value.strip())
    except ValueError:
        return None
    return n if n > 0 else None


class Systemd:
    """Talks to the service manager when there is one; otherwise does nothing.

    Nothing here raises once :meth:`check` passed: a failed notification
    (systemd gone, socket full) is logged once and otherwise ignored, so a
    hiccup on the notify socket can never take the LEDs down.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if env is None else env
        self._daemon: Any = None
        self._sockets: list[socket.socket] | None = None
        self._notify_failed = False

    # -- where are we -------------------------------------------------------

    @property
    def notify_enabled(self) -> bool:
        """True when a service manager listens for notifications (Type=notify)."""
        return bool(self._env.get("NOTIFY_SOCKET"))

    def _stderr_is_journal(self) -> bool:
        """JOURNAL_STREAM names stderr's device and inode when systemd connected
        it to the journal (systemd.exec(5)); a mismatch means someone redirected
        stderr (a test capturing it, ``2>file``), and then stderr wins."""
        stream = self._env.get("JOURNAL_STREAM")
        if not stream:
            return False
        try:
            dev, ino = (int(part) for part in stream.split(":"))
            st = os.fstat(sys.stderr.fileno())
        except (ValueError, OSError, AttributeError):
            return False
        return (st.st_dev, st.st_ino) == (dev, ino)

    @property
    def logs_to_journal(self) -> bool:
        """True when this process runs as a systemd service whose log belongs in
        the journal: stderr is the journal stream (JOURNAL_STREAM matches), or,
        with no JOURNAL_STREAM at all (StandardError=null/file/tty), the service
        manager started us (INVOCATION_ID) and journald is there to receive."""
        if self._env.get("JOURNAL_STREAM"):
            return self._stderr_is_journal()
        return bool(self._env.get("INVOCATION_ID")) and _is_socket(JOURNAL_SOCKET)

    # -- start-up ------------------------------------------------------------

    def check(self) -> None:
        """Raise :class:`SystemdError` if under systemd but unable to notify it.

        Without this, a Type=notify service missing systemd-python would never
        send READY=1 and hang until systemd's start timeout (90 s) killed it.
        """
        if not self.notify_enabled:
            return
        self._load_daemon()

    def _load_daemon(self) -> Any:
        if self._daemon is None:
            try:
                self._daemon = _import_daemon()
            except ImportError:
                raise SystemdError(_MISSING) from None
        return self._daemon

    def journal_handler(self) -> logging.Handler | None:
        """A journal log handler when running as a systemd service, else None.

        Use it *instead of* the stderr handler, never beside it: under systemd
        stderr goes to the journal too, and each line would show up twice.
        Fields passed as ``extra={"CLIENT_ADDRESS": "1.2.3.4:5"}`` (upper-case
        names) become journal fields: ``journalctl -u gravity-led
        CLIENT_ADDRESS=1.2.3.4:5``. Without systemd-python this returns None
        (stderr still reaches the journal, as plain lines without fields).
        """
        if not self.logs_to_journal:
            return None
        from .journal import make_journal_handler  # only under journald: not at every start (a Pi Zero)

        try:
            return make_journal_handler()
        except ImportError:
            return None

    def listen_sockets(self) -> list[socket.socket]:
        """Listening sockets passed by socket activation (may be empty).

        Reads LISTEN_FDS/LISTEN_PID through sd_listen_fds(3) (which checks that
        LISTEN_PID is us, and unsets both so no child inherits them). The answer
        is computed once and cached: a second call returns the same sockets.
        Each socket is set non-blocking, ready for asyncio's ``sock=``.
        """
        if self._sockets is not None:
            return list(self._sockets)
        self._sockets = []
        if not self._env.get("LISTEN_FDS"):
            return []
        try:
            daemon = _import_daemon()
        except ImportError:
            # socket activation without systemd-python: parse it ourselves, as
            # sd_listen_fds(3) does, rather than ignore sockets we were given.
            fds = _listen_fds_fallback(self._env)
        else:
            fds = daemon.listen_fds(unset_environment=True)
        for fd in fds:
            sock = socket.socket(fileno=fd)  # family and type are read from the fd
            sock.setblocking(False)
            self._sockets.append(sock)
        return list(self._sockets)

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to send WATCHDOG=1 (half of WatchdogSec), or None.

        None when there is no watchdog (no WATCHDOG_USEC), when systemd meant
        it for another process (WATCHDOG_PID is not us), or off systemd.
        """
        if not self.notify_enabled:
            return None
        usec = _positive_int(self._env.get("WATCHDOG_USEC"))
        if usec is None:
            return None
        pid = self._env.get("WATCHDOG_PID")
        if pid is not None and pid.strip() and _positive_int(pid) != os.getpid():
            return None
        return usec / 2 / 1_000_000

    # -- notifications -------------------------------------------------------

    def notify(self, *lines: str) -> bool:
        """Send raw ``KEY=VALUE`` lines in one datagram; True if sent."""
        if not self.notify_enabled:
            return False
        try:
            daemon = self._load_daemon()
        except SystemdError:
            if not self._notify_failed:
                self._notify_failed = True
                log.warning("%s", _MISSING)
            return False
        message = "\n".join(_one_line(line) for line in lines)
        try:
            return bool(daemon.notify(message))
        except OSError as e:
            if not self._notify_failed:
                self._notify_failed = True
                log.warning("cannot notify systemd (%s); carrying on without it", e)
            return False

    def ready(self, status: str | None = None) -> None:
        """READY=1: start-up (or a reload) finished; the socket listens."""
        lines = ["READY=1"]
        if status is not None:
            lines.append(f"STATUS={status}")
        self.notify(*lines)

    def status(self, text: str) -> None:
        """STATUS=: one line shown by ``systemctl status gravity-led``."""
        self.notify(f"STATUS={text}")

    def watchdog(self) -> None:
        """WATCHDOG=1: the event loop is alive. Send it from the loop itself."""
        self.notify("WATCHDOG=1")

    def reloading(self, status: str = "reloading configuration") -> None:
        """RELOADING=1: a reload began. **Always follow with** :meth:`ready`.

        MONOTONIC_USEC (CLOCK_MONOTONIC now) is what systemd >= 253 requires
        with Type=notify-reload to tell this reload from an older one; our unit
        uses Type=notify + ExecReload=kill -HUP (Bookworm has systemd 252), where
        it is ignored, so sending it costs nothing and keeps both working. Under
        either type systemd then holds the unit in "reloading" until READY=1
        arrives, so a reload that fails or is refused must still send READY=1:
        use :meth:`reload_cycle`, which does.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", f"STATUS={status}")

    @contextlib.contextmanager
    def reload_cycle(self, status: str | None = None) -> Iterator[None]:
        """``with sd.reload_cycle(): ...``: RELOADING=1 on entry, READY=1 on exit
        (even when the body raises), so the unit never sticks in "reloading"."""
        self.reloading()
        try:
            yield
        finally:
            self.ready(status)

    def stopping(self, status: str = "stopping") -> None:
        """STOPPING=1: shutdown began (SIGTERM); systemd stops expecting watchdog pings."""
        self.notify("STOPPING=1", f"STATUS={status}")


def _one_line(line: str) -> str:
    # A newline would start a new KEY=VALUE assignment: never let a status
    # text (which may hold a client-chosen string) forge READY=1 or the like.
    return line.replace("\r", " ").replace("\n", " ")


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _listen_fds_fallback(env: Mapping[str, str]) -> list[int]:
    """sd_listen_fds(3) in Python, for socket activation without systemd-python."""
    n = _positive_int(env.get("LISTEN_FDS"))
    if n is None or _positive_int(env.get("LISTEN_PID")) != os.getpid():
        return []
    for var in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)
    fds = list(range(3, 3 + n))
    for fd in fds:
        os.set_inheritable(fd, False)
    return fds
