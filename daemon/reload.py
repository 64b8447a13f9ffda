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
    RELOADING=1 ... READY=1)."""

    def __init__(
        self,
        config: Config,
        *,
        load: Callable[[], Config],
        parts: Iterable[Reconfigurable],
        cycle: Callable[[], ContextManager[None]] = contextlib.nullcontext,
        restart_hint: str = "restart the daemon",
    ) -> None:
        self.config = config
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
        if plan.live:
            self.config = plan.config
            for part in self._parts:
                part.reconfigure(plan.config)
            log.info("reloaded configuration: %s", ", ".join(f"{k}={getattr(plan.config, k)!r}" for k in plan.live))
        elif not plan.refused:
            log.info("reloaded configuration: nothing changed")

    async def close(self) -> None:
        """At shutdown: stop waiting for a reload in progress."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
