"""The Pi stand-in tier: three guests at once, and their journals on a failure.

The installer's paths run as a scenario on a bookworm guest of their own, in
a thread started with the tier's first test (tests/pi_vm/scenario.py), and
so do the trixie Pi 5's steps on a trixie guest; their tests, which only
wait for each step's outcome, run last. Once the installer's guest has the
plain install on a fresh Pi, a copy of it (memory and disk) serves
test_pi_vm.py, whose checks then run beside the other two.
"""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from . import pi as pi_mod
from .scenario import Scenario

INSTALLER = "test_pi_vm_installer.py"
TRIXIE = "test_pi_vm_trixie.py"
COPY = "test_pi_vm.py"
WAITING = {INSTALLER, TRIXIE}
"""Modules whose tests only wait for the steps of a scenario running in a thread."""
_selected = pytest.StashKey[set[str]]()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    # the scenarios' tests wait for steps that run beside test_pi_vm.py's:
    # right after those (not at the end of the session, where the other
    # tests would share the host with a guest still at work)
    waiting = [i for i in items if i.fspath.basename in WAITING]
    if waiting:
        rest = [i for i in items if i.fspath.basename not in WAITING]
        copies = [n for n, i in enumerate(rest) if i.fspath.basename == COPY]
        at = copies[-1] + 1 if copies else items.index(waiting[0])
        items[:] = rest[:at] + waiting + rest[at:]
    # which guests the selected tests need (see the fixtures below)
    config.stash[_selected] = {i.fspath.basename for i in items}


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
    selected = request.config.stash.get(_selected, {INSTALLER, COPY})
    installer, copy = INSTALLER in selected, COPY in selected
    steps = STEPS if installer else STEPS[:1]

    def fork(p: pi_mod.Pi) -> pi_mod.Pi:
        return pi_mod.Pi(p.vm.fork(tmp_path_factory.mktemp("pi_vm"), port=pi_mod.free_port(), name="pi"))

    scenario = Scenario("installer", lambda: pi_mod.booted("installer", tmp_path_factory.mktemp("pi_vm_installer")), steps,
                        diagnose=lambda p: p.vm.diagnostics(), fork_after=FIRST if copy else None, fork=fork,
                        meter=lambda p: p.vm.cpu_seconds())
    yield from _running(scenario)


@pytest.fixture(scope="session")
def trixie_scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario[pi_mod.Pi]]:
    """A Pi 5 on trixie, on a guest of its own (test_pi_vm_trixie.py)."""
    from .test_pi_vm_trixie import STEPS

    require_the_standin()
    scenario = Scenario("trixie", lambda: pi_mod.booted("trixie", tmp_path_factory.mktemp("pi_vm_trixie"), board="pi5", suite="trixie"),
                        STEPS, diagnose=lambda p: p.vm.diagnostics(), meter=lambda p: p.vm.cpu_seconds())
    yield from _running(scenario)


def _running(scenario: Scenario[pi_mod.Pi]) -> Iterator[Scenario[pi_mod.Pi]]:
    scenario.begin()
    yield scenario
    scenario.cancel()
    for vm in list(pi_mod.g.Guest.running):  # a step still stuck in its guest, or a copy nobody used
        vm.close()


@pytest.fixture(scope="session", autouse=True)
def _scenarios_alongside(request: pytest.FixtureRequest) -> None:
    """Start the scenarios the selected tests need with the tier's first test,
    so that their guests work side by side from the start."""
    selected = request.config.stash.get(_selected, set())
    if selected & {INSTALLER, COPY}:
        request.getfixturevalue("installer_scenario")
    if TRIXIE in selected:
        request.getfixturevalue("trixie_scenario")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    pi = getattr(item, "funcargs", {}).get("pi")
    if rep.failed and isinstance(pi, pi_mod.Pi):
        rep.sections.extend(pi.vm.diagnostics())
