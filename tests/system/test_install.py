"""deploy/install.sh, run for real into a temporary root.

``--root DIR --no-apt --no-systemctl --offline`` is the test mode: the
script creates the real venv (python -m venv --system-site-packages), builds
and pip-installs this checkout into it without the network, writes the
config and the units, and skips only what would change this machine (apt,
systemctl, the system user). ``--offline`` builds the wheel with the test's
interpreter, which therefore needs setuptools and wheel.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.support.harness import ROOT

INSTALL = ROOT / "deploy" / "install.sh"
DEPLOY = ROOT / "deploy"
VENV = Path("opt/gravity-led/venv")
CONF = Path("etc/gravity-led/daemon.toml")
PWM_RULE = Path("etc/udev/rules.d/99-gravity-led-pwm.rules")
UNITS = Path("etc/systemd/system")
LINKS = (Path("usr/local/bin/gravity-led-daemon"), Path("usr/local/bin/gravity-led-client"))


def run(*args: str, check: bool = True, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))}
    env.update(extra_env)
    r = subprocess.run(["sh", str(INSTALL), *args], capture_output=True, text=True, timeout=300, env=env)
    if check:
        assert r.returncode == 0, f"install.sh {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r


def flags(root: Path, *more: str) -> tuple[str, ...]:
    return ("--root", str(root), "--no-apt", "--no-systemctl", "--python", sys.executable, *more)




def snapshot(root: Path) -> dict[str, str]:
    """Every file under root: path -> content hash (venv bytecode by name only)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            volatile = p.suffix == ".pyc" or rel.endswith(("RECORD", "direct_url.json"))
            out[rel] = "" if volatile else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("root")
    before = sorted(p.name for p in ROOT.iterdir())
    r = run(*flags(root, "--offline"))
    # the checkout is left as it was (the build happens in a copy: no build/, no *.egg-info)
    assert sorted(p.name for p in ROOT.iterdir()) == before
    return root, r


def test_install_writes_the_expected_files(installed: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, r = installed
    venv = root / VENV
    # a real venv that sees the system's site-packages (apt's lgpio, systemd)
    cfg = (venv / "pyvenv.cfg").read_text()
    assert re.search(r"^include-system-site-packages = true$", cfg, re.M), cfg
    script = venv / "bin" / "gravity-led-daemon"
    assert os.access(script, os.X_OK)
    assert script.read_text().splitlines()[0] == f"#!{venv}/bin/python"
    # the installed console script runs the installed package (deps borrowed
    # from the test's environment, as apt would provide them on the Pi)
    env = dict(os.environ, PYTHONPATH=sysconfig.get_paths()["purelib"])
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, env=env, timeout=60, cwd=root)
    # its version names the source it was built from: pip reinstalls after a git pull that kept __version__
    assert out.returncode == 0 and re.search(r"0\.1\.0\+src\.[0-9a-f]{12}\b", out.stdout + out.stderr), out
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import gravity_led.daemon as d; print(d.__file__)"], capture_output=True, text=True, env=env, cwd=root)
    assert where.stdout.strip().startswith(str(venv)), where
    # the config, byte for byte, and the units
    assert (root / CONF).read_bytes() == (DEPLOY / "daemon.toml").read_bytes()
    for unit in ("gravity-led.service", "gravity-led.socket"):
        assert (root / UNITS / unit).read_bytes() == (DEPLOY / unit).read_bytes()
    # nothing else outside the venv
    outside = {p for p in snapshot(root) if not p.startswith(str(VENV))}
    assert outside == {str(CONF), str(UNITS / "gravity-led.service"), str(UNITS / "gravity-led.socket"), str(PWM_RULE), *map(str, LINKS)}
    # group gpio gets the PWM hardware's sysfs files (hardware PWM)
    assert (root / PWM_RULE).read_bytes() == (DEPLOY / "99-gravity-led-pwm.rules").read_bytes()
    # the programs on sudo's PATH (secure_path has /usr/local/bin): links into the venv
    for link in LINKS:
        assert os.readlink(root / link) == f"/{VENV}/bin/{link.name}"
    # what the user is told: phones need HTTPS, how to get it; a browser works without
    assert "Phones need HTTPS" in r.stdout and "sudo gravity-led-daemon make-cert" in r.stdout
    assert "http://" in r.stdout and ":5678/" in r.stdout
    assert "journalctl -u gravity-led" in r.stdout


@pytest.mark.systemd
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (Debian: apt install systemd)")
def test_installed_units_verify_against_the_installed_venv(installed: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path) -> None:
    """ExecStart= names the console script install.sh made: seen from the
    temporary root (prefixing it), systemd-analyze verify finds it executable."""
    root, _ = installed
    for unit in ("gravity-led.service", "gravity-led.socket"):
        text = (root / UNITS / unit).read_text()
        text = re.sub(r"^ExecStart=(/\S+)", lambda m: f"ExecStart={root}{m.group(1)}", text, flags=re.M)
        (tmp_path / unit).write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "gravity-led.service"), str(tmp_path / "gravity-led.socket")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr


def test_prefix_moves_the_venv_and_the_units_follow(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    run(*flags(root, "--no-pip", "--prefix", "/srv/gl"))
    assert (root / "srv/gl/venv/bin/python").exists()
    assert not (root / "opt").exists()
    service = (root / UNITS / "gravity-led.service").read_text()
    assert "\nExecStart=/srv/gl/venv/bin/gravity-led-daemon --config /etc/gravity-led/daemon.toml" in service
    assert "/opt/gravity-led" not in service
    # an unedited config goes with the rest
    r = run(*flags(root, "--no-pip", "--prefix", "/srv/gl", "--uninstall"))
    assert snapshot(root) == {}, snapshot(root)
    assert not list(root.rglob("*gravity-led*"))
    assert "kept" not in r.stdout


def _is_a_pi() -> bool:
    for f in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        try:
            return "Raspberry Pi" in Path(f).read_text(errors="replace")
        except OSError:
            continue
    return False


@pytest.mark.skipif(_is_a_pi(), reason="this is a Raspberry Pi: a real install would go ahead")
def test_refuses_on_a_machine_that_is_not_a_pi() -> None:
    before = [Path(p).exists() for p in ("/opt/gravity-led", "/etc/gravity-led", "/etc/systemd/system/gravity-led.service")]
    r = run("--no-apt", "--no-systemctl", "--python", sys.executable, check=False)
    assert r.returncode == 1
    assert "not a Raspberry Pi" in r.stderr and "--pin-factory mock" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert r.stdout == ""  # refused before doing anything
    after = [Path(p).exists() for p in ("/opt/gravity-led", "/etc/gravity-led", "/etc/systemd/system/gravity-led.service")]
    assert after == before


def test_bad_usage_exits_2() -> None:
    r = run("--frobnicate", check=False)
    assert r.returncode == 2 and "unknown option --frobnicate" in r.stderr
    r = run("--root", check=False)
    assert r.returncode == 2


def test_without_avahi_the_installer_says_the_client_needs_url(installed: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, r = installed
    assert "mDNS: no avahi-daemon here" in r.stdout and "--url" in r.stdout
    assert not (root / "etc/avahi").exists()


HOST_COMMANDS = ("apt-get", "apt-cache", "dpkg-query", "systemctl", "useradd", "groupadd", "usermod", "userdel", "chown", "chgrp")


@pytest.fixture
def host_stubs(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """Stand-ins for every command that changes this machine, first on the PATH: each logs its call."""
    bin_dir, log = tmp_path / "stubs", tmp_path / "calls.log"
    bin_dir.mkdir()
    for name in HOST_COMMANDS:
        stub = bin_dir / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n')
        stub.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, log


def test_root_never_touches_the_host(tmp_path: Path, host_stubs: tuple[dict[str, str], Path]) -> None:
    """--root alone (no --no-apt, --no-systemctl): no apt, no systemctl, no user; it says where it installed."""
    env, log = host_stubs
    root = tmp_path / "root"
    root.mkdir()
    r = run("--root", str(root), "--no-pip", "--python", sys.executable, **env)
    assert not log.exists(), log.read_text()
    assert f"gravity-led is installed into {root}" in r.stdout
    assert f"{root}/etc/gravity-led/daemon.toml" in r.stdout and f"{root}/opt/gravity-led/venv" in r.stdout
    assert (root / CONF).exists()
    r = run("--root", str(root), "--no-pip", "--uninstall", "--python", sys.executable, **env)
    assert not log.exists(), log.read_text()
    assert snapshot(root) == {} and f"uninstalled from {root}" in r.stdout


def test_dry_run_prints_each_step_and_changes_nothing(tmp_path: Path, host_stubs: tuple[dict[str, str], Path]) -> None:
    env, log = host_stubs
    root = tmp_path / "root"
    root.mkdir()
    r = run("--root", str(root), "--dry-run", "--python", sys.executable, **env)
    assert list(root.iterdir()) == [] and not log.exists()
    steps = [line for line in r.stdout.splitlines() if line.startswith(("would run: ", "would write: "))]
    assert f"would run: {sys.executable} -m venv --system-site-packages --without-pip {root}/{VENV}" in steps
    assert any(s.startswith("would run: build this checkout's wheel") for s in steps)
    assert f"would run: install -m 0644 {DEPLOY}/daemon.toml {root}/{CONF}" in steps
    assert f"would write: {root}/{UNITS}/gravity-led.service" in steps
    assert r.stdout.splitlines()[-1] == "dry run: nothing was changed."
    assert "installed" not in r.stdout.splitlines()[-1]


@pytest.mark.skipif(_is_a_pi(), reason="this is a Raspberry Pi: the dry run would list the real steps")
def test_dry_run_on_a_machine_that_is_not_a_pi_says_it_would_refuse(host_stubs: tuple[dict[str, str], Path]) -> None:
    env, log = host_stubs
    r = run("--dry-run", "--python", sys.executable, check=False, **env)
    assert r.returncode == 1 and "not a Raspberry Pi" in r.stderr and "gravity-led-client demo" in r.stderr
    assert not log.exists() and r.stdout == ""


def test_dry_run_uninstall_keeps_everything(installed: tuple[Path, subprocess.CompletedProcess[str]], host_stubs: tuple[dict[str, str], Path]) -> None:
    root, _ = installed
    env, log = host_stubs
    before = snapshot(root)
    r = run(*flags(root, "--uninstall", "--dry-run"), **env)
    assert snapshot(root) == before and not log.exists()
    assert f"would run: rm -rf {root}/{VENV}" in r.stdout and "nothing was changed" in r.stdout


def test_reinstall_is_idempotent_then_uninstall_leaves_nothing(installed: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    """On the module's install (so last in this file: it ends by removing it)."""
    root, _ = installed
    first = snapshot(root)
    r = run(*flags(root, "--offline"))
    assert snapshot(root) == first
    assert "already runs this source (pip skipped)" in r.stdout
    assert f"keeping existing {root}/etc/gravity-led/daemon.toml" in r.stdout
    assert "installed /etc/systemd/system" not in r.stdout  # units unchanged: not rewritten

    # never overwrites the user's config
    mine = 'right_pin = "GPIO5"\ninvert = true\n'
    (root / CONF).write_text(mine)
    r = run(*flags(root, "--no-pip"))
    assert (root / CONF).read_text() == mine and "keeping existing" in r.stdout

    # a program of the same name that is not ours stays (and is not replaced)
    mine_bin = root / LINKS[1]
    mine_bin.unlink()
    mine_bin.write_text("#!/bin/sh\n")
    r = run(*flags(root, "--offline"))
    assert "gravity-led-client exists and is not ours" in r.stdout and mine_bin.read_text() == "#!/bin/sh\n"

    # uninstall keeps an edited config (and says so), removes all the rest ...
    r = run(*flags(root, "--uninstall"))
    assert (root / CONF).read_text() == mine
    assert f"kept {root}/etc/gravity-led/daemon.toml" in r.stdout
    assert set(snapshot(root)) == {str(CONF), str(LINKS[1])}
    assert mine_bin.read_text() == "#!/bin/sh\n"
    mine_bin.unlink()
    # ... and --purge removes that too
    r = run(*flags(root, "--uninstall", "--purge"))
    assert snapshot(root) == {}, snapshot(root)
    assert not list(root.rglob("*gravity-led*"))
    assert "uninstalled" in r.stdout
    run(*flags(root, "--uninstall"))  # twice is fine


def test_example_config_shows_every_option_commented_with_its_default() -> None:
    """deploy/daemon.toml is the installed default: it sets nothing, and each
    option appears once as `# key = default` (an example for those whose
    default is "unset"), so a new option in daemon/config.py must be added."""
    import tomllib
    from dataclasses import fields

    from gravity_led.daemon.config import Config, load_config

    text = (DEPLOY / "daemon.toml").read_text()
    assert tomllib.loads(text) == {}
    shown = [line[2:] for line in text.splitlines() if re.match(r"# [a-z][a-z0-9_]* = ", line)]
    values = tomllib.loads("\n".join(shown))  # also: no key shown twice
    assert set(values) == {f.name for f in fields(Config)}
    for f in fields(Config):
        if f.default is None:
            continue
        default = list(f.default) if isinstance(f.default, tuple) else f.default
        assert values[f.name] == default, f"{f.name}: shown {values[f.name]!r}, default {default!r}"
    # uncommented, the shown values form a valid configuration
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".toml") as fh:
        fh.write("\n".join(line for line in shown if not line.startswith(("certfile", "keyfile", "token_file"))))
        fh.flush()
        cfg, _ = load_config(None, {"GRAVITY_LED_CONFIG": fh.name})
    assert cfg.pin_factory == "lgpio" and cfg.right_pin == "GPIO18" and cfg.left_pin == "GPIO22"


def test_with_a_certificate_it_prints_the_https_address_and_its_qr_code(tmp_path: Path) -> None:
    """The phone's page needs HTTPS: once daemon.toml names a certificate,
    the installer's last words are the https:// URL and a QR code of it."""
    root = tmp_path / "root"
    root.mkdir()
    certs = tmp_path / "certs"
    made = subprocess.run([sys.executable, "-m", "gravity_led.daemon", "make-cert", "--out-dir", str(certs), "--host", "pi.example"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert made.returncode == 0, made.stderr
    (root / CONF).parent.mkdir(parents=True)
    (root / CONF).write_text(f'certfile = "{certs}/cert.pem"\nkeyfile = "{certs}/key.pem"\nhost = "pi.example"\n')
    # --offline installs no dependencies: borrow the test's (apt's, on a Pi)
    r = run(*flags(root, "--offline"), PYTHONPATH=sysconfig.get_paths()["purelib"])
    assert "On each phone, trust this Pi's certificate authority once" in r.stdout
    assert "    iPhone, iPad: https://pi.example:5678/ca.mobileconfig" in r.stdout
    assert "    Android:      https://pi.example:5678/ca.crt" in r.stdout
    assert "Then open on the phone:" in r.stdout
    assert "    https://pi.example:5678/" in r.stdout
    assert "Phones need HTTPS" not in r.stdout
    assert "\u2580" in r.stdout or "\u2584" in r.stdout or "\u2588" in r.stdout  # the QR code's half blocks


def test_where_avahi_runs_the_daemon_is_advertised_on_its_port_and_uninstall_withdraws_it(tmp_path: Path) -> None:
    """A root with avahi-daemon's folder gets the service file that
    gravity_led.daemon.dnssd makes from the config (the stand-in checks that
    avahi-browse finds it: tests/pi_vm); --socket advertises the socket's port."""
    from gravity_led.daemon.dnssd import avahi_service_file

    root = tmp_path / "root"
    services = root / "etc/avahi/services"
    services.mkdir(parents=True)
    service = services / "gravity-led.service"
    r = run(*flags(root, "--offline", "--dry-run"))
    assert f"would write: {service}" in r.stdout and not service.exists()
    r = run(*flags(root, "--offline"))
    assert service.read_text() == avahi_service_file(port=5678, tls=False)
    assert "==> advertised over mDNS: /etc/avahi/services/gravity-led.service" in r.stdout
    assert oct(service.stat().st_mode & 0o777) == "0o644"
    # the user's port, after running the installer again (as the file's comment says)
    (root / CONF).write_text("port = 6001\n")
    run(*flags(root, "--offline"))
    assert service.read_text() == avahi_service_file(port=6001, tls=False)
    r = run(*flags(root, "--offline", "--socket"))  # systemd listens on the socket unit's port
    assert service.read_text() == avahi_service_file(port=5678, tls=False)
    r = run(*flags(root, "--offline", "--socket"))
    assert "advertised over mDNS" not in r.stdout  # unchanged: not rewritten
    r = run(*flags(root, "--uninstall", "--dry-run"))
    assert f"would run: rm -f {service}" in r.stdout and service.exists()
    run(*flags(root, "--uninstall", "--purge"))
    assert not service.exists() and services.is_dir()  # Avahi's folder stays



def test_when_the_phone_advice_fails_it_says_why_in_one_line(tmp_path: Path) -> None:
    """The installer's phone advice comes from the daemon's own code; when
    that fails (here: a dependency that cannot be imported, as after a broken
    upgrade), it says why in one line, with no traceback, instead of advice
    meant for a Pi without a certificate."""
    root = tmp_path / "root"
    certs = tmp_path / "certs"
    made = subprocess.run([sys.executable, "-m", "gravity_led.daemon", "make-cert", "--out-dir", str(certs), "--host", "pi.example"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)  # fmt: skip
    assert made.returncode == 0, made.stderr
    (root / CONF).parent.mkdir(parents=True)
    (root / CONF).write_text(f'certfile = "{certs}/cert.pem"\nkeyfile = "{certs}/key.pem"\n')
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "segno.py").write_text("raise ImportError('segno is broken')\n")
    r = run(*flags(root, "--offline"), PYTHONPATH=f"{broken}:{sysconfig.get_paths()['purelib']}")
    assert r.stderr.splitlines().count("install.sh: cannot work out the phone's address: segno is broken") == 1, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert "Make a certificate" not in r.stdout, "no advice for a Pi without one"


def test_a_certificate_the_config_names_but_that_is_missing_gets_no_address(tmp_path: Path) -> None:
    """The daemon does not start without its certificate: the installer says
    which file is missing and how to make it, and offers no URL or QR code."""
    root = tmp_path / "root"
    (root / CONF).parent.mkdir(parents=True)
    (root / CONF).write_text('certfile = "/etc/gravity-led/cert.pem"\nkeyfile = "/etc/gravity-led/key.pem"\n')
    r = run(*flags(root, "--offline"), PYTHONPATH=sysconfig.get_paths()["purelib"])
    said = [line for line in r.stderr.splitlines() if line.startswith("install.sh: cannot work out the phone's address")]
    assert said == [
        "install.sh: cannot work out the phone's address: certfile /etc/gravity-led/cert.pem and keyfile /etc/gravity-led/key.pem, "
        f"named in {root / CONF}, do not exist ('sudo gravity-led-daemon make-cert' makes them)"
    ], r.stderr
    assert "https://" not in r.stdout and "Traceback" not in r.stderr + r.stdout
    # the same files under --root: found there, and the address is given
    made = subprocess.run([sys.executable, "-m", "gravity_led.daemon", "make-cert", "--out-dir", str(root / "etc/gravity-led")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)  # fmt: skip
    assert made.returncode == 0, made.stderr
    r = run(*flags(root, "--offline"), PYTHONPATH=sysconfig.get_paths()["purelib"])
    assert "cannot work out" not in r.stderr, r.stderr
    assert "trust this Pi's certificate authority once" in r.stdout and ":5678/ca.mobileconfig" in r.stdout


def test_with_a_certificate_the_phone_gets_an_address_the_local_name_beside_it_and_tls_1(tmp_path: Path) -> None:
    """The QR code carries an IP address (every phone can use it; Android before 12
    cannot resolve .local), the .local name is printed beside it; mDNS says tls=1."""
    import socket

    from gravity_led.daemon.certnames import phone_urls, served_names
    from gravity_led.daemon.dnssd import avahi_service_file
    from gravity_led.daemon.urls import local_name_url, qr_text, urls_to_open

    root = tmp_path / "root"
    (root / "etc/avahi/services").mkdir(parents=True)
    certs = tmp_path / "certs"
    made = subprocess.run([sys.executable, "-m", "gravity_led.daemon", "make-cert", "--out-dir", str(certs)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)  # fmt: skip
    assert made.returncode == 0, made.stderr
    (root / CONF).parent.mkdir(parents=True)
    (root / CONF).write_text(f'certfile = "{certs}/cert.pem"\nkeyfile = "{certs}/key.pem"\n')
    r = run(*flags(root, "--offline"), PYTHONPATH=sysconfig.get_paths()["purelib"])
    # what the daemon announces too: the first address the certificate names
    # (make-cert leaves out public ones), the .local name beside it; or, when
    # it names no address a phone can reach (this VM's is public), the .local name
    name = socket.gethostname().split(".")[0]
    urls, local, _ = phone_urls(urls_to_open("0.0.0.0", 5678, tls=True), local_name_url("0.0.0.0", 5678, tls=True), served_names(certs / "cert.pem"))
    first = urls[0]
    if local is not None:
        assert re.fullmatch(r"https://\d+\.\d+\.\d+\.\d+:5678/", first), first  # an address, not a name
        assert f"\n    {first} (or https://{name}.local:5678/ where .local names resolve)\n" in r.stdout, r.stdout
    else:
        assert first == f"https://{name}.local:5678/" and f"\n    {first}\n" in r.stdout, r.stdout
    assert f"    iPhone, iPad: {first}ca.mobileconfig\n" in r.stdout  # the CA's downloads at the address alone
    qr = "\n".join("    " + line for line in qr_text(first).splitlines())
    assert qr in r.stdout
    assert (root / "etc/avahi/services/gravity-led.service").read_text() == avahi_service_file(port=5678, tls=True)
