"""One exception tree (daemon/errors.py): every error a user can act on is a
GravityLedError, with the built-in base it also is, and the CLI turns any of
them into one sentence and an exit status."""

from __future__ import annotations

import pytest

from gravity_led.daemon import cli, errors
from gravity_led.daemon.config import ConfigError
from gravity_led.daemon.leds import HardwareError
from gravity_led.daemon.protocol import FrameError


@pytest.mark.parametrize("name", errors.__all__)
def test_every_error_is_a_gravity_led_error(name):
    assert issubclass(getattr(errors, name), errors.GravityLedError)


def test_built_in_bases_still_catch_them():
    assert issubclass(ConfigError, ValueError) and issubclass(errors.MappingError, ConfigError)
    assert issubclass(FrameError, ValueError) and issubclass(HardwareError, RuntimeError)
    assert errors.StartupError is cli.Daemon.__init__.__globals__["StartupError"]


@pytest.mark.parametrize("err, code", [(HardwareError("no pins here"), 1), (ConfigError("bad port"), 2)])
def test_cli_catches_the_root_type(monkeypatch, capsys, err, code):
    def fail(args):
        raise err

    monkeypatch.setattr(cli, "_run", fail)
    assert cli.main(["--pin-factory", "mock"]) == code
    assert capsys.readouterr().err == f"gravity-led-daemon: {err}\n"
