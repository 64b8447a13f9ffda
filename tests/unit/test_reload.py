"""daemon/reload.py in-process: the read runs off the loop, failures are one
line, SIGHUPs during a reload coalesce."""

from __future__ import annotations

import asyncio
import logging
import os
import threading

import pytest

from gravity_led.daemon.config import Config, ConfigError, load_config
from gravity_led.daemon.reload import Reloader, plan_reload


def test_plan_takes_reloadable_changes_and_names_the_rest():
    running = Config(invert=False, right_pin="GPIO18", port=5678)
    plan = plan_reload(running, Config(invert=True, right_pin="GPIO5", port=5678, stale_after_s=3.0))
    assert plan.live == ("invert", "stale_after_s")
    assert plan.refused == ("right_pin",)
    assert plan.config.invert is True and plan.config.stale_after_s == 3.0 and plan.config.right_pin == "GPIO18"
    same = plan_reload(running, Config(invert=False, right_pin="GPIO18", port=5678))
    assert same.live == () and same.refused == () and same.config is running


def make(load, running=None):
    cfg = {"now": running or Config()}
    applied = []

    class Part:
        def reconfigure(self, new):
            cfg["now"] = new
            applied.append(new)

    return Reloader(cfg["now"], load=load, parts=[Part()]), applied, cfg


def test_the_loop_keeps_running_while_the_file_is_read(caplog):
    gate = threading.Event()

    def slow_load():
        gate.wait(10)  # a read that blocks, as a FIFO or a slow disk would
        return Config(invert=True)

    async def go():
        r, applied, cfg = make(slow_load)
        r.request()
        ticks = 0
        for _ in range(20):  # the loop turns while the read blocks
            await asyncio.sleep(0.001)
            ticks += 1
        assert ticks == 20 and not applied
        gate.set()
        while r.done < 1:
            await asyncio.sleep(0.001)
        assert cfg["now"].invert is True

    caplog.set_level(logging.INFO, "gravity_led")
    asyncio.run(go())
    assert "reloaded configuration: invert=True" in caplog.text


@pytest.mark.parametrize(
    "make_path, words",
    [
        (lambda p: os.mkfifo(p), "is a FIFO (named pipe), not a regular file"),
        (lambda p: p.write_bytes(b"#" * (2 << 20)), "more than the 1,048,576 it may have"),
        (lambda p: p.symlink_to(p), "cannot be read (Too many levels of symbolic links)"),
        (lambda p: p.write_text("invert = maybe\n"), "is not valid TOML"),
        (lambda p: p.write_text("colour = 1\n"), "unknown option 'colour'"),
        (lambda p: None, "does not exist"),
    ],
    ids=["fifo", "huge", "symlink-loop", "bad-toml", "unknown-key", "missing"],
)
def test_a_failed_reload_is_one_line_and_keeps_the_configuration(tmp_path, caplog, make_path, words):
    path = tmp_path / "daemon.toml"
    make_path(path)

    def load():
        return load_config(None, {"GRAVITY_LED_CONFIG": str(path)})[0]

    async def go():
        r, applied, cfg = make(load, Config(invert=True))
        r.request()
        while r.done < 1:
            await asyncio.sleep(0.001)
        assert not applied and cfg["now"].invert is True

    caplog.set_level(logging.INFO, "gravity_led")
    asyncio.run(asyncio.wait_for(go(), 10))
    lines = [r for r in caplog.records if r.name == "gravity_led"]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert lines[0].getMessage().startswith("reload failed, keeping the running configuration: ")
    assert words in lines[0].getMessage() and str(path) in lines[0].getMessage()


def test_an_oserror_from_load_is_a_failure_not_a_traceback(caplog):
    def load():
        raise PermissionError(13, "Permission denied")

    async def go():
        r, applied, _ = make(load)
        r.request()
        while r.done < 1:
            await asyncio.sleep(0.001)
        assert not applied

    caplog.set_level(logging.INFO, "gravity_led")
    asyncio.run(go())
    assert [r.getMessage() for r in caplog.records] == ["reload failed, keeping the running configuration: Permission denied"]


def test_sighups_during_a_reload_make_one_more_not_a_pile():
    calls = []
    gate = threading.Event()

    def load():
        calls.append(1)
        if len(calls) == 1:
            gate.wait(10)
        return Config()

    async def go():
        r, _, _ = make(load)
        r.request()
        await asyncio.sleep(0.01)
        for _ in range(10):
            r.request()
        gate.set()
        while r.done < 2:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.05)
        assert r.done == 2 and len(calls) == 2

    asyncio.run(go())


def test_close_stops_waiting_for_a_stuck_read():
    gate = threading.Event()

    async def go():
        r, applied, _ = make(lambda: gate.wait(10) and Config())
        r.request()
        await asyncio.sleep(0.01)
        await asyncio.wait_for(r.close(), 1)
        gate.set()  # let the thread end so the loop can shut down

    asyncio.run(go())


def test_load_config_refuses_the_same_files_at_start(tmp_path):
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is a FIFO"):
        load_config(None, {"GRAVITY_LED_CONFIG": str(fifo)})
