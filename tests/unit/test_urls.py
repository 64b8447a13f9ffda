"""The URLs the daemon logs at start, and the terminal QR code."""

from __future__ import annotations

import segno

from gravity_led.daemon.urls import announcement, local_name_url, qr_text, url_for, urls_to_open

ADDRS = ["192.168.1.7", "10.0.0.2", "fd00::7"]


def test_wildcard_ipv4_lists_every_ipv4_address_then_loopback():
    assert urls_to_open("0.0.0.0", 5678, tls=True, addresses=ADDRS) == [
        "https://192.168.1.7:5678/",
        "https://10.0.0.2:5678/",
        "https://127.0.0.1:5678/",
    ]


def test_wildcard_ipv6_adds_ipv6_in_brackets():
    assert urls_to_open("::", 80, tls=False, addresses=ADDRS) == [
        "http://192.168.1.7:80/",
        "http://10.0.0.2:80/",
        "http://[fd00::7]:80/",
        "http://127.0.0.1:80/",
    ]


def test_loopback_alone_when_nothing_else():
    assert urls_to_open("0.0.0.0", 5678, tls=False, addresses=[]) == ["http://127.0.0.1:5678/"]


def test_loopback_and_link_local_never_come_first():
    urls = urls_to_open("::", 1, tls=False, addresses=["127.0.0.1", "::1", "fe80::1", "192.168.1.7"])
    assert urls == ["http://192.168.1.7:1/", "http://127.0.0.1:1/"]


def test_given_host_alone():
    assert urls_to_open("pi.local", 5678, tls=True) == ["https://pi.local:5678/"]
    assert urls_to_open("127.0.0.1", 5678, tls=False) == ["http://127.0.0.1:5678/"]
    assert urls_to_open("fd00::7", 5678, tls=True) == ["https://[fd00::7]:5678/"]
    assert url_for("[fd00::7]", 1, tls=False) == "http://[fd00::7]:1/"


def test_machine_addresses_by_default():
    urls = urls_to_open("0.0.0.0", 5678, tls=False)
    assert urls[-1] == "http://127.0.0.1:5678/"
    assert all(u.startswith("http://") and u.endswith(":5678/") for u in urls)


def test_qr_text_encodes_the_url():
    url = "https://192.168.1.7:5678/"
    text = qr_text(url)
    lines = text.splitlines()
    qr = segno.make(url, error="m", micro=False)
    width = qr.symbol_size(border=2)[0]
    # Half blocks: one character per module across, two modules per line down.
    assert all(len(line) == width for line in lines)
    assert len(lines) == (width + 1) // 2
    assert set("".join(lines)) <= set(" ▀▄█")
    assert qr_text("https://other:5678/") != text


def test_the_local_name_comes_beside_the_first_address_never_instead():
    """The QR code and the first URL carry an address (Android before 12, or with Private DNS
    on, cannot resolve .local); the .local name is printed beside it."""
    local = local_name_url("0.0.0.0", 5678, tls=True, hostname="raspberrypi")
    assert local == "https://raspberrypi.local:5678/"
    urls = urls_to_open("0.0.0.0", 5678, tls=True, addresses=ADDRS)
    assert announcement(urls, tls=True, local_url=local) == [
        "open https://192.168.1.7:5678/ on a phone, or https://raspberrypi.local:5678/ where .local names resolve",
        "open https://10.0.0.2:5678/ on a phone",
        "open https://127.0.0.1:5678/ in a browser on this machine",
    ]
    plain = announcement(["http://192.168.1.7:5678/"], tls=False, local_url="http://raspberrypi.local:5678/")
    assert plain[0] == "page at http://192.168.1.7:5678/ (a computer's browser; not a phone's), or http://raspberrypi.local:5678/ where .local names resolve"


def test_no_local_name_for_a_daemon_on_one_address():
    assert local_name_url("192.168.1.7", 5678, tls=True, hostname="raspberrypi") is None  # .local may name another address
    assert local_name_url("::", 80, tls=False, hostname="pi.example.org") == "http://pi.local:80/"
    assert local_name_url("0.0.0.0", 1, tls=False, hostname="localhost") is None
