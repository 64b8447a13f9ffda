"""What deploy/install.sh leaves on a machine, and how hints name our
commands there: ``sudo gravity-led-daemon ...`` on an installed Pi, the
program as it runs elsewhere (a venv is not on sudo's PATH).

Light on purpose: the daemon's start-up names make-cert in its hints, and
need not load the certificate code (daemon/certfiles.py) to do so.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

__all__ = ["DEFAULT_DIR", "SERVICE_USER", "make_cert_command", "service_installed"]

DEFAULT_DIR = Path("/etc/gravity-led")
SERVICE_USER = "gravity-led"


def service_installed() -> bool:
    """deploy/install.sh ran here (it writes the service's configuration)."""
    return (DEFAULT_DIR / "daemon.toml").exists()


def make_cert_command() -> str:
    """The make-cert command that works on this machine, for hints."""
    if service_installed():
        return "sudo gravity-led-daemon make-cert"
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("gravity-led-daemon")
    if argv0.name == "__main__.py" or argv0.suffix == ".py":
        return f"{shlex.quote(sys.executable)} -m gravity_led.daemon make-cert"
    found = shutil.which(argv0.name)
    if found and os.path.realpath(found) == os.path.realpath(argv0):
        return f"{argv0.name} make-cert"
    return f"{shlex.quote(str(argv0.resolve()) if argv0.parent != Path('.') else str(argv0))} make-cert"
