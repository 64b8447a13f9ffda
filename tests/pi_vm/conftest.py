"""The Pi stand-in tier: two guests at once, and their journals on a failure.

The installer's paths run as a scenario on a guest of their own, in a thread
started with the tier's first test (tests/pi_vm/scenario.py); their tests,
which only wait for each step's outcome, run last. Once that guest has the
plain install on a fresh Pi, a copy of it (memory and disk) serves
test_pi_vm.py, whose checks then run beside the installer's other paths.
"""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from . import pi as pi_mod
from .scenario import Scenario

INSTALLER = "test_pi_vm_installer.py"
COPY = "test_pi_vm.py"
_selected = pytest.StashKey[tuple[bool, bool]]()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    # the installer's tests wait for steps that run beside test_pi_vm.py's:
    # right after those (not at the end of the session, where the other
    # tests would share the host with a guest still at work)
    waiting = [i for i in items if i.fspath.basename == INSTALLER]
    if waiting:
        rest = [i for i in items if i.fspath.basename != INSTALLER]
        copies = [n for n, i in enumerate(rest) if i.fspath.basename == COPY]
        at = copies[-1] + 1 if copies else items.index(waiting[0])
        items[:] = rest[:at] + waiting + rest[at:]
    # what the scenario need do: all its steps, or only the first (for a copy)
    config.stash[_selected] = (bool(waiting), any(i.fspath.basename == COPY for i in items))


def require_the_standin() -> None:
    why = pi_mod.missing()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="session")
def installer_scenario(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario[pi_mod.Pi]]:
    """The installer's paths on their own guest; after the first, a plain
    install on a fresh Pi, a copy of that guest serves test_pi_vm.py (only
    what the selected tests need: all the steps, and the copy)."""
    from .test_pi_vm_installer import FIRST, STEPS

    require_the_standin()
    installer, copy = request.config.stash.get(_selected, (True, True))
    steps = STEPS if installer else STEPS[:1]

    def fork(p: pi_mod.Pi) -> pi_mod.Pi:
        return pi_mod.Pi(p.vm.fork(tmp_path_factory.mktemp("pi_vm"), port=pi_mod.free_port(), name="pi"))

    scenario = Scenario("installer", lambda: pi_mod.booted("installer", tmp_path_factory.mktemp("pi_vm_installer")), steps,
                        diagnose=lambda p: p.vm.diagnostics(), fork_after=FIRST if copy else None, fork=fork,
                        meter=lambda p: p.vm.cpu_seconds())
    scenario.begin()
    yield scenario
    scenario.cancel()
    for vm in list(pi_mod.g.Guest.running):  # a step still stuck in its guest, or a copy nobody used
        vm.close()


@pytest.fixture(scope="session", autouse=True)
def _installer_paths_alongside(request: pytest.FixtureRequest) -> None:
    """Start the installer's scenario with the tier's first test: every test here needs it."""
    request.getfixturevalue("installer_scenario")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    pi = getattr(item, "funcargs", {}).get("pi")
    if rep.failed and isinstance(pi, pi_mod.Pi):
        rep.sections.extend(pi.vm.diagnostics())
