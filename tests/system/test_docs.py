"""The docs match the code: the README and docs/*.md, their reference tables, and every command they show works as written."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest

from tests.support.client_fixtures import fake_sensorserver  # noqa: F401 (fixture)
from tests.support.harness import clean_env, free_port, scaled, wait_until
from gravity_led.daemon.config import ENV_PREFIX, Config, default_text

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CONFIGURATION = ROOT / "docs" / "configuration.md"


def doc_pages() -> list[Path]:
    """The pages whose commands are run: the README, then docs/*.md by name."""
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def config_table() -> str:
    rows = ["| TOML key / flag | environment variable | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(Config):
        d = default_text(f.name)
        d = d if f.default is None or f.default == () else f"`{d}`"  # no value: words, not a value to type
        flag = f"`--{f.name.replace('_', '-')}`" + (" (`--stale-after`)" if f.name == "stale_after_s" else "")
        rows.append(f"| `{f.name}` / {flag} | `{ENV_PREFIX}{f.name.upper()}` | {d} | {f.metadata['help']} |")
    return "\n".join(rows)


def test_config_table_matches_the_code():
    """The table in docs/configuration.md is the one generated from daemon/config.py (and only that page has one)."""
    text = CONFIGURATION.read_text()
    m = re.search(r"<!-- config-table -->\n(.*?)\n<!-- /config-table -->", text, re.S)
    assert m, "docs/configuration.md lost its config table markers"
    assert m[1] == config_table(), "docs/configuration.md config table is stale; replace it with:\n" + config_table()
    elsewhere = [_rel(p) for p in doc_pages() if p != CONFIGURATION and "<!-- config-table -->" in p.read_text()]
    assert not elsewhere, f"a second config table in {elsewhere}: link to docs/configuration.md instead"


QUICK_START = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/gravity-led-client demo"


def test_readme_quick_start_commands_are_the_real_ones():
    """The README's first two commands are the quick start's, and CI runs the second."""
    first_two = [c for block in doc_blocks(README) for c, _ in block][:2]
    assert first_two == [QUICK_START, "bash tests/run"], first_two
    assert "bash tests/run" in (ROOT / ".ci" / "run").read_text()


def test_readme_module_map_names_every_module():
    """The README's map (under "How it works") names each module of daemon/ and client/ once, and no other."""
    section = README.read_text().split("## How it works", 1)[1].split("\n## ", 1)[0]
    block = section.split("```\n", 2)[1]
    named: dict[str, list[str]] = {"daemon": [], "client": []}
    folder = "daemon"
    for line in block.splitlines():
        if line.startswith("client/"):
            folder = "client"
        elif line.startswith(("deploy/", "tests/", "docs/")):
            folder = ""
        m = re.match(r"^  (\w+\.py) ", line)
        if m and folder:
            named[folder].append(m[1])
    for folder, names in named.items():
        have = sorted(f.name for f in (ROOT / folder).glob("*.py") if not f.name.startswith("__"))
        assert sorted(names) == have, f"README map of {folder}/: names {sorted(names)}, the folder has {have}"


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.*)$", text, re.M)}


def test_doc_links_lead_somewhere():
    """Every relative link of the README and docs/*.md names a file or folder of the repository, and its #anchor a heading there."""
    broken = []
    for page in doc_pages():
        for groups in re.findall(r"\]\(([^)\s]+)\)|src=\"([^\"]+)\"", page.read_text()):
            target, _, anchor = next(x for x in groups if x).partition("#")
            if re.match(r"[a-z]+:", target):
                continue
            path = (page.parent / target) if target else page
            if not path.exists() or (anchor and path.suffix == ".md" and anchor not in _anchors(path)):
                broken.append(f"{_rel(page)}: {target}#{anchor}")
    assert not broken, broken


# ---- every command the docs show, run as written --------------------------------------------------
#
# Each command in a ```sh block of the README or of a docs/*.md page is run
# as the page writes it, with two
# substitutions a test needs: the daemon is a test daemon on a free loopback
# port (through the variables the README documents: GRAVITY_LED_PORT,
# GRAVITY_LED_HOST, GRAVITY_LED_URL; and the port in a literal
# "localhost:5678"), and a phone's address is a fake phone's. Commands that
# need a Raspberry Pi, systemd running the service, root or a phone cannot run
# here: each is checked as far as it can be without them, and its entry says
# how (DRY). A command without an entry fails test_every_doc_command_is_checked
# (which names the page it is on). A command shown on several pages has one
# entry.

VENV_BIN = Path(sys.executable).parent


def doc_blocks(page: Path) -> list[list[tuple[str, str]]]:
    """A page's ```sh blocks: each a list of (command, its comment); with a '$ ' prompt, only those lines."""
    blocks = []
    for m in re.finditer(r"^( *)```sh\n(.*?)^\1```", page.read_text(), re.S | re.M):
        lines = textwrap.dedent(m[2]).splitlines()
        prompted = any(line.startswith("$ ") for line in lines)
        block = []
        for line in lines:
            if prompted:
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            command, _, comment = line.partition(" #") if re.search(r"\s#\s", line) else (line, "", "")
            if command.strip():
                block.append((command.strip(), comment.strip()))
        blocks.append(block)
    return blocks


def doc_commands() -> dict[str, list[Path]]:
    """Every command of every page, in order, with the pages that show it."""
    pages: dict[str, list[Path]] = {}
    for page in doc_pages():
        for block in doc_blocks(page):
            for command, _ in block:
                pages.setdefault(command, [])
                if page not in pages[command]:
                    pages[command].append(page)
    return pages


def _page_of(command: str) -> Path:
    """The (first) page that shows the command in a ```sh block."""
    return doc_commands()[command][0]


def _command(prefix: str) -> str:
    """The one command the docs show that starts with PREFIX, as they write it."""
    (command,) = {c for c in doc_commands() if c.startswith(prefix)}
    return command


def _block_of(first: str) -> list[tuple[str, str]]:
    return next(b for b in doc_blocks(_page_of(first)) if b and b[0][0] == first)


def _shell(command: str, *, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """``bash -c COMMAND`` in its own process group, as a terminal would run it (Ctrl-C goes to the group)."""
    return subprocess.Popen(
        ["bash", "-c", command], cwd=cwd, env=env, start_new_session=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _ctrl_c(proc: subprocess.Popen[str], timeout: float = 15.0) -> tuple[int, str, str]:
    """Ctrl-C to the command's process group; its status and output."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, out, err


def _user_env(**extra: str) -> dict[str, str]:
    """The environment after '. .venv/bin/activate': the venv's programs on PATH."""
    env = clean_env(**extra)
    env.pop("PYTHONPATH", None)  # the installed package, as a user has it
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait(predicate: Callable[[], bool], what: str, proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    """:func:`wait_until`, failing at once (with its output) if the command ends first."""

    def probe() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the command ended ({proc.returncode}) before {what}: {proc.communicate()}")
        return predicate()

    wait_until(probe, timeout=timeout, interval=0.05, what=what)


@pytest.fixture
def user(start_daemon, tmp_path: Path):
    """A test daemon and a user's shell pointed at it (GRAVITY_LED_URL), working in an empty folder."""
    d = start_daemon()
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(VENV_BIN.parent)
    return d, work, _user_env(GRAVITY_LED_URL=d.url)


def _streams(command: str, user, *, until: Callable[[dict], bool] | None = None) -> str:
    """Run a command that streams until Ctrl-C: it drives the daemon, then Ctrl-C ends it with 0."""
    d, work, env = user
    before = d.status()["frames"]["accepted"]
    proc = _shell(command, cwd=work, env=env)
    _wait(lambda: d.status()["frames"]["accepted"] >= before + 5 and (until is None or until(d.status())), f"{command!r} to drive the LEDs", proc)
    rc, out, err = _ctrl_c(proc)
    assert rc == 0, err
    assert "Traceback" not in err
    return out


# -- the checks, one per command (or per block run as one script) --


def check_quick_start(request, tmp_path: Path) -> None:
    """Run for real in a copy of the tree: a fresh venv, pip install (from PyPI), demo until Ctrl-C."""
    copy = tmp_path / "clone"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", "build", ".pytest_cache"))
    env = clean_env()
    env.pop("PYTHONPATH", None)
    proc = _shell(QUICK_START, cwd=copy, env=env)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:  # pip's and the demo's output, as it comes
        lines.append(line)
        if re.search(r"connected left=\d+% right=\d+%", line):
            break
    rc, out, err = _ctrl_c(proc, timeout=30)
    assert rc == 0, "".join(lines) + out + err
    assert re.search(r"sent \d+ frames in", out), out


def check_tests_run(request, tmp_path: Path) -> None:
    """DRY (it is this very test suite): the script parses, and CI runs exactly it."""
    assert subprocess.run(["bash", "-n", str(ROOT / "tests" / "run")]).returncode == 0
    assert "bash tests/run" in (ROOT / ".ci" / "run").read_text()


def check_apt_line(request, tmp_path: Path) -> None:
    """DRY (installs system packages as root): the same packages that .ci/run installs."""
    readme = _command("sudo apt-get install")
    ci = re.search(r"apt-get install -y -qq --no-install-recommends ([^>\n]+)", (ROOT / ".ci" / "run").read_text())
    assert ci, ".ci/run lost its apt-get line"
    assert set(readme.split()[3:]) == set(ci[1].split())


def check_try_it_by_hand(request, tmp_path: Path) -> None:
    """The block as one script, as pasted into a shell; on a free port, given by GRAVITY_LED_PORT."""
    port = free_port()
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(VENV_BIN.parent)
    first = ".venv/bin/gravity-led-daemon --pin-factory mock &"
    script = _page_of(first).read_text().split(first, 1)[1]
    script = ".venv/bin/gravity-led-daemon --pin-factory mock &" + script.split("```", 1)[0]
    env = _user_env(
        GRAVITY_LED_PORT=str(port), GRAVITY_LED_HOST="127.0.0.1", GRAVITY_LED_URL=f"ws://localhost:{port}",
        GRAVITY_LED_CONFIG="/dev/null",
    )  # fmt: skip
    proc = _shell(script.replace("localhost:5678", f"localhost:{port}"), cwd=work, env=env)
    try:
        out, err = proc.communicate(timeout=scaled(60))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the background 'send --duration 10'
    assert proc.returncode == 0, err
    expected = dict(_block_of(".venv/bin/gravity-led-daemon --pin-factory mock &"))
    assert expected[".venv/bin/gravity-led-client send 0 4.9 8.5"] + "\n" in out
    # (curl prints no newline: a line of the background send may follow the JSON on its line)
    status = json.JSONDecoder().raw_decode(next(line for line in out.splitlines() if line.startswith("{")))[0]
    assert status["leds"]["right"] == 0.0 and abs(status["leds"]["left"] - 0.499) < 0.01, status
    assert "stopped" in err  # kill %1 stopped the daemon, which logged it
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def check_activate(request, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(VENV_BIN.parent)
    r = subprocess.run(["bash", "-c", ". .venv/bin/activate && command -v gravity-led-client gravity-led-daemon"], cwd=work, capture_output=True, text=True, env=clean_env())
    assert r.returncode == 0 and r.stdout.count(".venv/bin/gravity-led-") == 2, r.stdout + r.stderr


def _stream_check(command: str, until: Callable[[dict], bool] | None = None) -> Callable[..., None]:
    def check(request, tmp_path: Path) -> None:
        _streams(command, request.getfixturevalue("user"), until=until)

    check.__doc__ = f"Run against the test daemon until it drives the LEDs, then Ctrl-C: {command}"
    return check


def check_stdin(request, tmp_path: Path) -> None:
    d, work, env = request.getfixturevalue("user")
    r = subprocess.run(["bash", "-c", 'echo "0 4.9 8.5" | gravity-led-client stdin'], cwd=work, env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.rstrip().endswith("sent 0.0 4.9 8.5: right LED 50%, left LED 0%"), r.stdout + r.stderr
    assert d.status()["frames"]["accepted"] == 1


def check_record_then_replay(request, tmp_path: Path) -> None:
    """The phone is a fake SensorServer on loopback (its address replaces 192.168.1.20); then the replay."""
    d, work, env = user = request.getfixturevalue("user")
    phone = request.getfixturevalue("fake_sensorserver")(values=[0.0, 4.905, 8.496])
    record = _command("gravity-led-client sensorserver")
    _streams(record.replace("192.168.1.20", f"127.0.0.1:{phone.port}"), user)
    assert len((work / "tilt.csv").read_text().splitlines()) > 2
    _streams("gravity-led-client replay tilt.csv --loop", user, until=lambda s: s["leds"]["right"] > 0.45)


def check_send(request, tmp_path: Path) -> None:
    d, work, env = request.getfixturevalue("user")
    r = subprocess.run(["bash", "-c", "gravity-led-client send 0 4.9 8.5"], cwd=work, env=env, capture_output=True, text=True, timeout=30)
    block = _page_of("gravity-led-client send 0 4.9 8.5").read_text().split("$ gravity-led-client send 0 4.9 8.5\n", 1)[1]
    assert r.returncode == 0 and r.stdout == block.split("\n", 1)[0] + "\n", r.stdout + r.stderr


def check_discover(request, tmp_path: Path) -> None:
    """In a private network namespace (root), where a DNS-SD responder advertises a daemon as avahi-daemon does on a Pi."""
    from gravity_led.daemon.dnssd import txt_record
    from tests.support.lan import advertised, private_lan, why_no_lan

    if why_no_lan():
        pytest.skip(why_no_lan())
    command, comment = next((c, m) for page in doc_pages() for b in doc_blocks(page) for c, m in b if c.startswith("gravity-led-client discover"))
    work = tmp_path / "work"
    work.mkdir()
    with private_lan(), advertised(("gravity-led on raspberrypi", 5678, txt_record(tls=False)), host="raspberrypi"):
        r = subprocess.run(["bash", "-c", command], cwd=work, env=_user_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # the README's line, with the address this namespace has
    assert r.stdout == comment.replace("192.168.1.20", "127.0.0.1") + "\n", (r.stdout, comment)


def check_make_cert(request, tmp_path: Path) -> None:
    """DRY (sudo on the Pi writes /etc/gravity-led): the same command with --out-dir, as a user."""
    r = subprocess.run([str(VENV_BIN / "gravity-led-daemon"), "make-cert", "--out-dir", str(tmp_path)], capture_output=True, text=True, timeout=60, env=_user_env())
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "cert.pem").exists() and (tmp_path / "key.pem").exists() and "certfile" in r.stdout + r.stderr


def check_make_cert_force(request, tmp_path: Path) -> None:
    """DRY (sudo on the Pi writes /etc/gravity-led): as a user with --out-dir; --force keeps this Pi's CA."""
    program = [str(VENV_BIN / "gravity-led-daemon"), "make-cert", "--out-dir", str(tmp_path)]
    assert subprocess.run(program, capture_output=True, text=True, timeout=60, env=_user_env()).returncode == 0
    ca = (tmp_path / "ca.pem").read_bytes(), (tmp_path / "ca-key.pem").read_bytes()
    cert = (tmp_path / "cert.pem").read_bytes()
    r = subprocess.run([*program, "--force"], capture_output=True, text=True, timeout=60, env=_user_env())
    assert r.returncode == 0, r.stderr
    assert ((tmp_path / "ca.pem").read_bytes(), (tmp_path / "ca-key.pem").read_bytes()) == ca
    assert (tmp_path / "cert.pem").read_bytes() != cert and "kept ca.pem" in r.stdout


LAPTOP_CA = ".venv/bin/gravity-led-daemon make-cert --out-dir tls"


def check_laptop_ca(request, tmp_path: Path) -> None:
    """The block as one script in an empty folder, with HOME an empty home whose
    NSS database Chromium made on its first start; then Debian's Chromium, with
    no ignore-certificate flag, opens the page over https:// and its wss:// socket."""
    if shutil.which("certutil") is None or not Path("/usr/bin/chromium").exists():
        pytest.skip("needs certutil (libnss3-tools) and Debian's Chromium (.ci/run installs them)")
    sync_api = pytest.importorskip("playwright.sync_api")
    port = free_port()
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    (work / ".venv").symlink_to(VENV_BIN.parent)
    (home / ".pki" / "nssdb").mkdir(parents=True)
    subprocess.run(["certutil", "-d", f"sql:{home}/.pki/nssdb", "-N", "--empty-password"], check=True, capture_output=True)
    script = "\n".join(c for c, _ in _block_of(LAPTOP_CA))
    env = _user_env(HOME=str(home), GRAVITY_LED_PORT=str(port), GRAVITY_LED_HOST="127.0.0.1", GRAVITY_LED_CONFIG="/dev/null")
    log = (tmp_path / "out.log").open("w")
    proc = subprocess.Popen(["bash", "-c", script], cwd=work, env=env, start_new_session=True, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        assert proc.wait(timeout=scaled(60)) == 0, (tmp_path / "out.log").read_text()
        wait_until(lambda: b"listening" in (tmp_path / "out.log").read_bytes(), timeout=20, what="the daemon listening")
        with sync_api.sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"], env={**os.environ, "HOME": str(home)})
            try:
                page = b.new_page()
                assert page.goto(f"https://localhost:{port}/").ok
                opened = page.evaluate("(u) => new Promise((ok) => { const w = new WebSocket(u); w.onopen = () => ok(true); w.onclose = () => ok(false); })", f"wss://localhost:{port}/")
                assert opened is True
            finally:
                b.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the daemon left running by '&'
        log.close()


def check_systemd_unit(request, tmp_path: Path) -> None:
    """DRY (needs the service installed on a Pi; tests/system/test_systemd.py and test_install.py run it under
    real systemd tools): the unit these commands name ships, and it can reload."""
    unit = (ROOT / "deploy" / "gravity-led.service").read_text()
    assert "ExecReload=" in unit and "Type=notify" in unit


def check_journal_fields(request, tmp_path: Path) -> None:
    """DRY (needs the service's journal): the fields these commands filter on are the ones the daemon logs."""
    code = "".join(p.read_text() for p in (ROOT / "daemon").glob("*.py"))
    assert '"CLIENT_ADDRESS"' in code


def check_curl_status(request, tmp_path: Path) -> None:
    d, work, env = request.getfixturevalue("user")
    r = subprocess.run(["bash", "-c", f"curl -s http://localhost:{d.port}/status"], capture_output=True, text=True, timeout=30)
    if r.returncode == 127:
        pytest.skip("curl is not installed (.ci/run installs it)")
    assert r.returncode == 0 and "leds" in json.loads(r.stdout)


def check_install(request, tmp_path: Path) -> None:
    """DRY (needs a Raspberry Pi and root; tests/system/test_install.py runs it in a scratch root): the script parses."""
    assert subprocess.run(["bash", "-n", str(ROOT / "deploy" / "install.sh")]).returncode == 0


def check_benchmarks(request, tmp_path: Path) -> None:
    """DRY (two and a half minutes; tests/benchmarks/test_benchmarks_smoke.py runs each benchmark small): it starts and parses."""
    r = subprocess.run([".venv/bin/python", "-m", "tests.benchmarks", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--quick" in r.stdout


def check_benchmarks_pi_zero(request, tmp_path: Path) -> None:
    """DRY (needs root and a cgroup; tests/benchmarks/test_benchmarks_smoke.py runs it small where it can): the option exists."""
    r = subprocess.run([".venv/bin/python", "-m", "tests.benchmarks", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--pi-zero" in r.stdout and "10%" in r.stdout


def _shown_after(command: str) -> str:
    """The lines the docs show under ``$ command``, up to the next prompt or the end of its block."""
    block = _page_of(command).read_text().split(f"$ {command}\n", 1)[1].split("```", 1)[0]
    return block.split("\n$ ", 1)[0].rstrip("\n") + "\n"


def check_shown_errors(request, tmp_path: Path) -> None:
    """Each command of the block, as a user types it: exit 2 and exactly the two lines shown (on stderr)."""
    d, work, env = request.getfixturevalue("user")
    for command, _ in _block_of("gravity-led-client sned 0 4.9 8.5"):
        r = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and r.stdout == "", (command, r.stdout, r.stderr)
        assert r.stderr == _shown_after(command), command
    assert d.status()["frames"]["accepted"] == 0  # nothing reached the daemon


def check_install_root(request, tmp_path: Path) -> None:
    """The block as one script, in a copy of the installer's folder, with a scratch folder for /tmp/gl-root;
    every command that changes this machine is a stub on the PATH that logs its call."""
    stubs, log = tmp_path / "stubs", tmp_path / "calls.log"
    stubs.mkdir()
    for name in ("apt-get", "systemctl", "useradd", "groupadd", "usermod", "chown", "chgrp"):
        (stubs / name).write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n')
        (stubs / name).chmod(0o755)
    target = tmp_path / "gl-root"
    script = "\n".join(c for c, _ in _block_of("mkdir -p /tmp/gl-root && deploy/install.sh --root /tmp/gl-root --no-pip"))
    env = _user_env()
    env["PATH"] = f"{stubs}{os.pathsep}{env['PATH']}"
    r = subprocess.run(["bash", "-ec", script.replace("/tmp/gl-root", str(target))], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not log.exists(), log.read_text()
    assert f"gravity-led is installed into {target}" in r.stdout
    assert (target / "etc/gravity-led/daemon.toml").exists() and (target / "etc/systemd/system/gravity-led.service").exists()
    assert r.stdout.rstrip().endswith("dry run: nothing was changed.")


def _tier_check(folder: str) -> Callable[..., None]:
    def check(request, tmp_path: Path) -> None:
        r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", folder], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert re.search(rf"^{re.escape(folder)}/test_\w+\.py::", r.stdout, re.M), r.stdout
        assert subprocess.run(["bash", "-n", str(ROOT / "tests" / "run")]).returncode == 0

    check.__doc__ = f"DRY (it is this very test suite; each tier runs on its own in bash tests/run): {folder} is a tier pytest collects."
    return check


SIN60 = 0.866
CHECKS: dict[str, Callable[..., None]] = {
    "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/gravity-led-client demo": check_quick_start,
    "bash tests/run": check_tests_run,
    "sudo apt-get install chromium fonts-dejavu-core libnss3-tools openssl systemd libsystemd-dev pkg-config gcc tmux curl": check_apt_line,
    ".venv/bin/gravity-led-daemon --pin-factory mock &": check_try_it_by_hand,
    "sleep 1": check_try_it_by_hand,
    ".venv/bin/gravity-led-client send 0 4.9 8.5": check_try_it_by_hand,
    ".venv/bin/gravity-led-client send --duration 10 0 -4.9 8.5 &": check_try_it_by_hand,
    "curl -s localhost:5678/status": check_try_it_by_hand,
    "kill %1": check_try_it_by_hand,
    ". .venv/bin/activate": check_activate,
    "gravity-led-client sim": _stream_check("gravity-led-client sim"),
    "gravity-led-client sim --pattern sweep --period 2": _stream_check("gravity-led-client sim --pattern sweep --period 2"),
    "gravity-led-client sim --pattern walk --seed 1 --noise 2": _stream_check("gravity-led-client sim --pattern walk --seed 1 --noise 2"),
    "gravity-led-client sim --pattern steps --steps -60,0,60": _stream_check(
        "gravity-led-client sim --pattern steps --steps -60,0,60", until=lambda s: s["leds"]["left"] > SIN60 - 0.01
    ),
    "gravity-led-client sim --rate 1000": _stream_check("gravity-led-client sim --rate 1000"),
    "gravity-led-client sim --percent": _stream_check("gravity-led-client sim --percent"),
    'echo "0 4.9 8.5" | gravity-led-client stdin': check_stdin,
    "gravity-led-client sensorserver 192.168.1.20 --record tilt.csv": check_record_then_replay,
    "gravity-led-client replay tilt.csv --loop": check_record_then_replay,
    "gravity-led-client send 0 4.9 8.5": check_send,
    "gravity-led-client discover": check_discover,
    "sudo gravity-led-daemon make-cert": check_make_cert,
    "sudo gravity-led-daemon make-cert --force": check_make_cert_force,
    LAPTOP_CA: check_laptop_ca,
    ".venv/bin/gravity-led-daemon --pin-factory mock --certfile tls/cert.pem --keyfile tls/key.pem &": check_laptop_ca,
    "certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n gravity-led -i tls/ca.pem": check_laptop_ca,
    "sudo systemctl restart gravity-led": check_systemd_unit,
    "journalctl -u gravity-led -n 5": check_systemd_unit,
    "sudo deploy/install.sh": check_install,
    "systemctl status gravity-led": check_systemd_unit,
    "curl -s http://localhost:5678/status": check_curl_status,
    "journalctl -u gravity-led -f": check_systemd_unit,
    "journalctl -u gravity-led -F CLIENT_ADDRESS": check_journal_fields,
    "journalctl -u gravity-led CLIENT_ADDRESS=192.168.1.7:40312": check_journal_fields,
    "journalctl -u gravity-led -o verbose -n 1": check_journal_fields,
    "sudo systemctl reload gravity-led": check_systemd_unit,
    ".venv/bin/python -m pytest tests/unit -q": _tier_check("tests/unit"),
    ".venv/bin/python -m pytest tests/e2e -q": _tier_check("tests/e2e"),
    ".venv/bin/python -m pytest tests/system -q": _tier_check("tests/system"),
    ".venv/bin/python -m pytest tests/benchmarks -q": _tier_check("tests/benchmarks"),
    "bash tests/run tests/pi_vm": _tier_check("tests/pi_vm"),
    ".venv/bin/python -m tests.benchmarks": check_benchmarks,
    ".venv/bin/python -m tests.benchmarks --pi-zero": check_benchmarks_pi_zero,
    "gravity-led-client sned 0 4.9 8.5": check_shown_errors,
    "gravity-led-client sim --pattern swep": check_shown_errors,
    "gravity-led-client --pattern sweep send 0 1 2": check_shown_errors,
    "mkdir -p /tmp/gl-root && deploy/install.sh --root /tmp/gl-root --no-pip": check_install_root,
    "deploy/install.sh --root /tmp/gl-root --dry-run": check_install_root,
}


def test_every_doc_command_is_checked() -> None:
    commands = doc_commands()
    missing = [f"{_rel(pages[0])}: {c}" for c, pages in commands.items() if c not in CHECKS]
    assert not missing, "commands without a check in tests/system/test_docs.py CHECKS: " + repr(missing)
    stale = [c for c in CHECKS if c not in commands]
    assert not stale, "CHECKS entries that neither the README nor docs/*.md shows: " + repr(stale)


_UNIQUE = list({id(f): (name, f) for name, f in CHECKS.items()}.values())


@pytest.mark.parametrize("check", [f for _, f in _UNIQUE], ids=[name for name, _ in _UNIQUE])
def test_doc_command_works_as_written(check: Callable[..., None], request, tmp_path: Path) -> None:
    check(request, tmp_path)
