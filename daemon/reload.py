"""SIGHUP: re-read the configuration off the event loop, then apply it.

Reading a file can block (a slow SD card, a network file system) and used
to run inside the loop, so a FIFO at the config path froze the daemon until
the watchdog killed it.  Here the read runs in a thread (and
``daemon/files.py`` refuses FIFOs, devices and files over 1 MiB), the loop
keeps serving ``/healthz`` and the LED holder meanwhile, and every failure
is one line: "reload failed, keeping the running configuration: ...".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Callable, ContextManager, Iterable, Protocol

from .config import RELOADABLE, Config, ConfigError, changed_options, replace
from .errors import SecurityError

__all__ = ["Reconfigurable", "ReloadPlan", "Reloader", "plan_reload"]

log = logging.getLogger("gravity_led")


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """What a reload changes: ``config`` to run with from now on, the
    options applied live, and those refused until a restart."""

    config: Config
    live: tuple[str, ...]
    refused: tuple[str, ...]


def plan_reload(running: Config, new: Config) -> ReloadPlan:
    """Take the reloadable changes of ``new``; keep the rest as running."""
    changed = changed_options(running, new)
    live = tuple(sorted(changed & RELOADABLE))
    refused = tuple(sorted(changed - RELOADABLE))
    config = replace(running, **{k: getattr(new, k) for k in live}) if live else running
    return ReloadPlan(config, live, refused)


class Reconfigurable(Protocol):
    """A part whose live options a reload can change."""

    def reconfigure(self, cfg: Config) -> None: ...


class Reloader:
    """Runs one reload at a time: ``request()`` from the SIGHUP handler;
    a SIGHUP during a reload makes one more afterwards (the file may have
    changed again), never a pile of them.

    ``config`` is the running configuration (the reloader keeps it from then
    on); ``load`` reads and validates the configuration (it runs in a
    thread); each of ``parts`` gets ``reconfigure(cfg)`` on the loop when
    live options changed; ``cycle`` wraps each reload (systemd's
    RELOADING=1 ... READY=1).

    The token file is read again on every reload (``read_token``, in the
    thread too, with the running ``token_file``), whether or not the
    configuration changed: rotating a leaked token is a reload.  A new token
    goes to ``on_token`` (the daemon: the old one stops working at once)."""

    def __init__(
        self,
        config: Config,
        *,
        load: Callable[[], Config],
        parts: Iterable[Reconfigurable],
        cycle: Callable[[], ContextManager[None]] = contextlib.nullcontext,
        restart_hint: str = "restart the daemon",
        token: str | None = None,
        read_token: Callable[[Config], str | None] = lambda cfg: None,
        on_token: Callable[[str | None], None] = lambda token: None,
    ) -> None:
        self.config = config
        self.token = token
        self._read_token = read_token
        self._on_token = on_token
        self._load = load
        self._parts = tuple(parts)
        self._cycle = cycle
        self._restart_hint = restart_hint
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self.done = 0
        """Reloads finished, successful or not (for tests)."""

    def request(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            self._again = False
            with self._cycle():
                await self._once()
            self.done += 1
            if not self._again:
                return

    async def _once(self) -> None:
        try:
            new = await asyncio.to_thread(self._load)
        except ConfigError as e:
            log.error("reload failed, keeping the running configuration: %s", e)
            return
        except OSError as e:  # load() should have said it in a ConfigError; never a traceback
            log.error("reload failed, keeping the running configuration: %s", e.strerror or e.__class__.__name__)
            return
        try:
            plan = plan_reload(self.config, new)
        except ConfigError as e:
            log.error("reload failed, keeping the running configuration: %s", e)
            return
        if plan.refused:
            log.warning(
                "reload: %s cannot change without a restart (%s); keeping the running values",
                ", ".join(plan.refused),
                self._restart_hint,
            )
        token_changed = await self._reread_token(plan.config)
        if plan.live:
            self.config = plan.config
            for part in self._parts:
                part.reconfigure(plan.config)
            log.info("reloaded configuration: %s", ", ".join(f"{k}={getattr(plan.config, k)!r}" for k in plan.live))
        elif not plan.refused and token_changed is False:
            log.info("reloaded configuration: nothing changed")

    async def _reread_token(self, cfg: Config) -> bool | None:
        """Read the token file again: True if the token changed (and was
        applied), None if it could not be read (the running one stays)."""
        try:
            token = await asyncio.to_thread(self._read_token, cfg)
        except (SecurityError, OSError) as e:
            log.error("reload: keeping the running token: %s", e)
            return None
        if token == self.token:
            return False
        self.token = token
        self._on_token(token)
        return True

    async def close(self) -> None:
        """At shutdown: stop waiting for a reload in progress."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
