"""The client finds the daemon over mDNS / DNS-SD when it is given no address.

Each test runs in a private network namespace with multicast on its loopback
(tests/support/lan.py): the real daemon, a DNS-SD responder advertising it
as avahi-daemon does on a Pi (python-zeroconf's own service registration),
and the real client process, which browses for ``_gravity-led._tcp``.
"""

from __future__ import annotations

import re
import time
from typing import Iterator

import pytest

from gravity_led.daemon import tls
from gravity_led.daemon.dnssd import txt_record
from tests.support.client_fixtures import run_client  # noqa: F401 (fixture)
from tests.support.harness import free_port
from tests.support.lan import advertised, private_lan, why_no_lan


@pytest.fixture
def lan() -> Iterator[None]:
    why = why_no_lan()
    if why:
        pytest.skip(why)
    with private_lan():
        yield


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def test_one_daemon_found_is_used_and_named(lan, start_daemon, run_client) -> None:
    d = start_daemon()
    with advertised(("gravity-led on testpi", d.port, txt_record(tls=False))):
        c = run_client("sim", "--count", "25")
        assert c.wait(30) == 0, c.stderr
    assert f"found gravity-led on testpi (testpi.local, 127.0.0.1 port {d.port}): using ws://127.0.0.1:{d.port}/" in c.stdout
    assert d.status()["frames"]["accepted"] == 25


def test_tls_1_in_the_txt_record_means_wss(lan, start_daemon, run_client, tmp_path) -> None:
    """The URL is wss:// and the connection verifies the daemon's certificate (--cafile)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    tls.make_cert(hosts=["localhost", "127.0.0.1"], cert_path=cert, key_path=key)
    d = start_daemon("--certfile", str(cert), "--keyfile", str(key), scheme="https")
    with advertised(("gravity-led on testpi", d.port, txt_record(tls=True))):
        c = run_client("send", "0", "4.9", "8.5", "--cafile", str(cert))
        assert c.wait(30) == 0, c.stderr
    assert f"using wss://127.0.0.1:{d.port}/" in c.stdout
    assert "sent 0.0 4.9 8.5: right LED 50%, left LED 0%" in c.stdout


def test_several_daemons_are_listed_and_the_user_asked_for_url(lan, run_client) -> None:
    a, b = free_port(), free_port()
    with advertised(("gravity-led on pi-a", a, txt_record(tls=False)), ("gravity-led on pi-b", b, txt_record(tls=True))):
        c = run_client("sim")
        assert c.wait(30) == 2
        listing = run_client("discover")
        assert listing.wait(30) == 0, listing.stderr
    err = one_line(c.stderr)
    assert f"gravity-led on pi-a at 127.0.0.1 port {a}; gravity-led on pi-b at 127.0.0.1 port {b}" in err
    assert f"say which with --url, for example --url ws://127.0.0.1:{a}/" in err
    assert listing.stdout.splitlines() == [
        f"gravity-led on pi-a: ws://127.0.0.1:{a}/ (testpi.local, 127.0.0.1)",
        f"gravity-led on pi-b: wss://127.0.0.1:{b}/ (testpi.local, 127.0.0.1)",
    ]


def test_no_daemon_is_one_sentence_saying_how_to_give_url(lan, run_client) -> None:
    for args in (("send", "0", "4.9", "8.5"), ("discover",)):
        t0 = time.monotonic()
        c = run_client(*args)
        assert c.wait(30) == 1
        took = time.monotonic() - t0
        err = one_line(c.stderr)
        assert re.fullmatch(r"gravity-led-client: no gravity-led daemon answered on this network within 2 s \(mDNS\): "
                            r"give its address with --url HOST\[:PORT\] \(or set GRAVITY_LED_URL\)", err), err  # fmt: skip
        print(f"{' '.join(args)}: {took:.1f} s")


def test_an_address_given_is_used_without_browsing(lan, start_daemon, run_client) -> None:
    """--url and $GRAVITY_LED_URL win over what answers on the network."""
    d = start_daemon()
    with advertised(("gravity-led on elsewhere", free_port(), txt_record(tls=False))):
        c = run_client("send", "0", "4.9", "8.5", env={"GRAVITY_LED_URL": d.url})
        assert c.wait(30) == 0, c.stderr
    assert "found" not in c.stdout and c.stdout.startswith("sent 0.0 4.9 8.5: right LED 50%"), c.stdout


def test_a_daemon_on_this_machines_port_is_used_as_before(lan, start_daemon, run_client) -> None:
    """Nothing to browse for when the daemon listens here on 5678 (on the Pi itself, or started by hand)."""
    d = start_daemon(port=5678)
    with advertised(("gravity-led on elsewhere", free_port(), txt_record(tls=False))):
        c = run_client("send", "0", "4.9", "8.5")
        assert c.wait(30) == 0, c.stderr
    assert c.stdout == "sent 0.0 4.9 8.5: right LED 50%, left LED 0%\n"
    assert d.status()["frames"]["accepted"] == 1
