"""The Avahi service file the installer writes, as Avahi reads it (avahi.service(5))."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from gravity_led.daemon.dnssd import SERVICE_TYPE, avahi_service_file, main, txt_record
from gravity_led.daemon.protocol import PROTOCOL_VERSION


def services(text: str) -> dict[str, tuple[int, list[str]]]:
    group = ET.fromstring(text.split("\n", 2)[2])  # after the XML declaration and the DOCTYPE
    assert group.tag == "service-group"
    assert group.find("name").get("replace-wildcards") == "yes" and "%h" in group.find("name").text
    return {s.findtext("type"): (int(s.findtext("port")), [t.text for t in s.findall("txt-record")]) for s in group.findall("service")}


def test_plain_daemon_is_advertised_as_gravity_led_and_http_on_its_port() -> None:
    assert services(avahi_service_file(port=5678, tls=False)) == {
        "_gravity-led._tcp": (5678, ["path=/", "tls=0", f"protocol={PROTOCOL_VERSION}"]),
        "_http._tcp": (5678, ["path=/"]),
    }


def test_tls_daemon_says_tls_1_and_offers_its_page_as_https() -> None:
    found = services(avahi_service_file(port=8443, tls=True))
    assert found[SERVICE_TYPE] == (8443, ["path=/", "tls=1", f"protocol={PROTOCOL_VERSION}"])
    assert found["_https._tcp"] == (8443, ["path=/"]) and "_http._tcp" not in found
    assert txt_record(tls=True) == {"path": "/", "tls": "1", "protocol": str(PROTOCOL_VERSION)}


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_a_port_that_cannot_be_advertised_is_refused(port: int) -> None:
    with pytest.raises(ValueError, match="cannot be advertised"):
        avahi_service_file(port=port, tls=False)


def test_the_installers_command_reads_the_config(tmp_path, capsys) -> None:
    conf = tmp_path / "daemon.toml"
    conf.write_text("port = 6001\n")
    assert main(["--config", str(conf)]) == 0
    assert services(capsys.readouterr().out)[SERVICE_TYPE][0] == 6001
    assert main(["--config", str(conf), "--port", "5678"]) == 0  # a systemd socket's port wins
    assert services(capsys.readouterr().out)[SERVICE_TYPE][0] == 5678
    conf.write_text("port = 0\n")  # any free port: nothing to advertise
    assert main(["--config", str(conf)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "port 0 cannot be advertised" in err
