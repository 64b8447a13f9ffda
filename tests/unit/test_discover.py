"""Choosing among the daemons that answered mDNS, and the URL each one's TXT record makes (client/discover.py)."""

from __future__ import annotations

import pytest

from gravity_led.client import EXIT_ERROR, EXIT_USAGE, ClientError
from gravity_led.client.cli import build_parser, parse_args
from gravity_led.client.discover import Found, choose, found_from
from gravity_led.daemon.dnssd import txt_record
from gravity_led.daemon.protocol import PROTOCOL_VERSION

PLAIN = txt_record(tls=False)


def pi(name: str = "gravity-led on pi", *addresses: str, port: int = 5678, txt: dict | None = None) -> Found:
    return Found(name=name, host="pi.local", addresses=addresses or ("192.168.1.20",), port=port, txt=PLAIN if txt is None else txt)


def test_an_answer_as_python_zeroconf_resolves_it() -> None:
    f = found_from("gravity-led on raspberrypi._gravity-led._tcp.local.", "raspberrypi.local.", ["192.168.1.20", "fe80::1"], 5678,
                   {b"path": b"/", b"TLS": b"1", b"protocol": str(PROTOCOL_VERSION).encode(), b"flag": None})  # fmt: skip
    assert f == Found(name="gravity-led on raspberrypi", host="raspberrypi.local", addresses=("192.168.1.20", "fe80::1"), port=5678,
                      txt={"path": "/", "tls": "1", "protocol": str(PROTOCOL_VERSION), "flag": ""})  # fmt: skip
    assert f.url == "wss://192.168.1.20:5678/"
    assert found_from("x._gravity-led._tcp.local.", None, [], 0, {}) is None  # no port: nothing to connect to


@pytest.mark.parametrize(
    ("addresses", "best"),
    [
        (("fe80::1", "fd00::7", "192.168.1.20"), "192.168.1.20"),  # IPv4 first: no .local lookup, no zone
        (("fe80::1", "fd00::7"), "fd00::7"),
        (("169.254.3.4", "127.0.0.1"), "169.254.3.4"),
        (("fe80::1",), "pi.local"),  # a link-local IPv6 address needs a zone a URL cannot carry: the name
        (("127.0.0.1",), "127.0.0.1"),
    ],
)
def test_the_address_a_url_can_use_best_first(addresses: tuple[str, ...], best: str) -> None:
    assert pi("p", *addresses).address == best


def test_url_from_the_txt_record() -> None:
    assert pi().url == "ws://192.168.1.20:5678/"
    assert pi(txt=txt_record(tls=True), port=8443).url == "wss://192.168.1.20:8443/"
    assert pi("p", "fd00::7", txt={"path": "ws", "tls": "0"}).url == "ws://[fd00::7]:5678/ws"
    assert pi(txt={}).url == "ws://192.168.1.20:5678/"  # no TXT: the daemon's defaults


def test_one_daemon_is_chosen() -> None:
    one = pi()
    assert choose([one]) is one
    other = pi("gravity-led on future", txt={**PLAIN, "protocol": str(PROTOCOL_VERSION + 1)})
    assert choose([other, one]) is one  # one speaks this client's protocol


def test_several_daemons_name_each_and_ask_for_url() -> None:
    with pytest.raises(ClientError) as e:
        choose([pi("gravity-led on pi-b", "10.0.0.3", port=6000), pi("gravity-led on pi-a", "10.0.0.2")])
    assert e.value.exit_code == EXIT_USAGE
    assert str(e.value) == ("2 gravity-led daemons answered (gravity-led on pi-a at 10.0.0.2 port 5678; gravity-led on pi-b at "
                            "10.0.0.3 port 6000): say which with --url, for example --url ws://10.0.0.2:5678/")  # fmt: skip


def test_none_says_how_to_give_url() -> None:
    with pytest.raises(ClientError) as e:
        choose([], seconds=2.0)
    assert e.value.exit_code == EXIT_ERROR and "\n" not in str(e.value)
    assert str(e.value) == ("no gravity-led daemon answered on this network within 2 s (mDNS): give its address with "
                            "--url HOST[:PORT] (or set GRAVITY_LED_URL)")  # fmt: skip


def test_only_another_protocol_version_is_not_used() -> None:
    future = pi(txt={**PLAIN, "protocol": "99"})
    with pytest.raises(ClientError, match=r"only daemons of another gravity-led version answered \(gravity-led on pi at 192.168.1.20 port 5678 \(protocol 99\)"):
        choose([future])
    assert future.line() == f"gravity-led on pi: ws://192.168.1.20:5678/ (pi.local, 192.168.1.20; speaks protocol 99, this client {PROTOCOL_VERSION})"


def test_discover_is_a_subcommand_with_its_listening_time() -> None:
    parser = build_parser()
    assert parse_args(parser, ["discover"]).wait == 2.0
    assert parse_args(parser, ["discover", "--wait", "5"]).wait == 5.0
    with pytest.raises(SystemExit):
        parse_args(parser, ["discover", "--wait", "0"])
