"""On a failure in the Pi stand-in tier: the guest's journal and serial log."""

from __future__ import annotations

import pytest

from . import guest as guest_mod


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    vm = guest_mod.Guest.current
    if not rep.failed or vm is None or not str(item.fspath).startswith(str(guest_mod.HERE)):
        return
    try:
        # without the guest agent's own lines (one per call of the test's hands)
        journal = vm.sh("journalctl --no-pager -b -o short-monotonic | grep -v -F ' qemu-ga[' | tail -n 300", timeout=60).out
    except Exception as e:  # the guest may be what failed
        journal = f"(no journal: {e})"
    try:
        serial = "\n".join(vm.serial_log.read_text(errors="replace").splitlines()[-150:])
    except OSError as e:
        serial = f"(no serial log: {e})"
    rep.sections.append(("guest journal (last 300 lines)", journal))
    rep.sections.append(("guest serial console (last 150 lines)", serial))
