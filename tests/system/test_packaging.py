"""The distribution installs one import namespace, ``gravity_led``: nothing
called ``daemon`` or ``client`` at the top level, so it lives beside
python-daemon (whose import name is ``daemon``) in one environment.

The test environment has python-daemon installed (the ``test`` extra).  Every
process here runs outside the checkout with no PYTHONPATH, as a user's shell
runs it: the repository's own ``daemon/`` folder cannot stand in for the
installed package.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.harness import ROOT, clean_env

BIN = Path(sys.executable).parent


def user_env(tmp_path: Path) -> dict[str, str]:
    env = clean_env(HOME=str(tmp_path), TMPDIR=str(tmp_path))
    env.pop("PYTHONPATH", None)
    return env


def run(cmd: list[str], tmp_path: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=tmp_path, env=user_env(tmp_path), capture_output=True, text=True, timeout=timeout)


def test_python_daemon_and_gravity_led_import_side_by_side(tmp_path: Path) -> None:
    code = (
        "import daemon, gravity_led.daemon, gravity_led.client, gravity_led.daemon.cli, gravity_led.client.cli\n"
        "from gravity_led.client import ClientError\n"
        "from gravity_led.daemon.errors import GravityLedError\n"
        "assert hasattr(daemon, 'DaemonContext'), daemon.__file__  # python-daemon's, not ours\n"
        "assert issubclass(ClientError, GravityLedError)\n"
        "print(daemon.__file__)\n"
    )
    r = run([sys.executable, "-c", code], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "site-packages" in r.stdout and not r.stdout.startswith(str(ROOT / "daemon"))


@pytest.mark.parametrize(
    "cmd",
    [
        ["gravity-led-daemon", "--help"],
        ["gravity-led-client", "--help"],
        ["-m", "gravity_led.daemon", "--version"],
        ["-m", "gravity_led.client", "--help"],
    ],
)
def test_console_scripts_and_python_m_work_beside_python_daemon(cmd: list[str], tmp_path: Path) -> None:
    argv = [sys.executable, *cmd] if cmd[0] == "-m" else [str(BIN / cmd[0]), *cmd[1:]]
    r = run(argv, tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "gravity-led" in r.stdout + r.stderr


def test_demo_starts_the_installed_daemon_not_a_folder_named_daemon(tmp_path: Path) -> None:
    """``demo`` runs the daemon as a child process: by its namespaced name,
    which python-daemon cannot shadow."""
    r = run([str(BIN / "gravity-led-client"), "demo", "--duration", "2"], tmp_path, timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr


def test_the_wheel_has_only_the_gravity_led_namespace(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    (wheel,) = tmp_path.glob("gravity_led-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"gravity_led"}, tops
    names = zipfile.ZipFile(wheel).namelist()
    assert "gravity_led/daemon/web/index.html" in names and "gravity_led/client/cli.py" in names
