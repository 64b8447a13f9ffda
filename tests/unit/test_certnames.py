"""Which announced URLs the served certificate covers, read from real
certificates (self-signed and from this Pi's CA) written to disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from gravity_led.daemon import ca, tls
from gravity_led.daemon.certnames import left_out_line, phone_urls, served_names, split_covered
from gravity_led.daemon.urls import announcement

URLS = ["https://192.168.1.7:5678/", "https://192.0.2.2:5678/", "https://[fd00::7]:5678/", "https://127.0.0.1:5678/", "https://pi.local:5678/"]


@pytest.fixture(scope="module")
def pi_ca():
    return ca.create_ca(names=["pi", "pi.local", "localhost"], label="pi")


def chain(tmp_path: Path, hosts: list[str], issuer=None) -> Path:
    key, cert = tls.server_certificate(hosts=hosts, issuer=(issuer[1], issuer[0]) if issuer else None)
    path = tmp_path / "cert.pem"
    path.write_bytes(tls.cert_pem(cert, issuer[1]) if issuer else tls.cert_pem(cert))
    return path


def test_only_the_hosts_the_certificate_names_are_kept_in_order(tmp_path, pi_ca):
    names = served_names(chain(tmp_path, ["pi.local", "192.168.1.7", "127.0.0.1", "localhost"], pi_ca))
    assert split_covered(URLS, names) == (
        ["https://192.168.1.7:5678/", "https://127.0.0.1:5678/", "https://pi.local:5678/"],
        ["192.0.2.2", "fd00::7"],
    )
    assert names.ca is not None


@pytest.mark.parametrize(
    ("host", "covered"),
    [("PI.LOCAL", True), ("pi.local.", True), ("a.pi.home.arpa", True), ("pi.home.arpa", False), ("a.b.pi.home.arpa", False),
     ("::ffff:10.0.0.2", True), ("[fd00::7]", True), ("10.0.0.3", False), ("other.local", False)],
)
def test_names_match_as_a_browser_matches_them(tmp_path, host, covered):
    names = served_names(chain(tmp_path, ["pi.local", "*.pi.home.arpa", "10.0.0.2", "fd00::7"]))
    assert names.covers(host) is covered


def test_an_unreadable_certificate_filters_nothing(tmp_path):
    (tmp_path / "cert.pem").write_text("not a certificate\n")
    assert served_names(tmp_path / "cert.pem") is None and served_names(tmp_path / "none.pem") is None
    assert split_covered(URLS, None) == (URLS, [])


def test_the_line_says_which_hosts_a_renewal_adds_and_which_need_a_new_ca(tmp_path, pi_ca):
    names = served_names(chain(tmp_path, ["localhost", "127.0.0.1"], pi_ca))
    line = left_out_line(["192.168.1.7", "192.0.2.2"], names, make_cert="sudo gravity-led-daemon make-cert")
    assert line.startswith("not announced: 192.168.1.7, 192.0.2.2, as the TLS certificate does not name them")
    assert "'sudo gravity-led-daemon make-cert --force --host 192.168.1.7' adds it" in line
    assert "this Pi's CA may not sign for 192.0.2.2" in line and "make-cert --force --host 192.0.2.2'" in line
    assert "\n" not in line


def test_with_a_self_signed_certificate_make_cert_adds_any_host(tmp_path):
    names = served_names(chain(tmp_path, ["localhost"]))
    line = left_out_line(["192.0.2.2"], names, make_cert="make-cert")
    assert "'make-cert --force --host 192.0.2.2' adds it" in line and "new CA" not in line


def test_the_local_name_is_kept_beside_only_if_named(tmp_path, pi_ca):
    names = served_names(chain(tmp_path, ["pi.local", "192.168.1.7"], pi_ca))
    assert phone_urls(URLS[:2], "https://pi.local:5678/", names) == (["https://192.168.1.7:5678/"], "https://pi.local:5678/", ["192.0.2.2"])
    assert phone_urls(URLS[:1], "https://other.local:5678/", names) == (["https://192.168.1.7:5678/"], None, ["other.local"])
    assert phone_urls(URLS[:1], None, None) == (URLS[:1], None, [])


def test_with_only_loopback_covered_the_local_name_is_the_phones_way_in(tmp_path, pi_ca):
    # make-cert leaves out a public address (this VM's 192.0.2.2): no address
    # a phone can reach is in the certificate, so the .local name leads, and
    # loopback is offered to this machine's browser, never to a phone.
    names = served_names(chain(tmp_path, ["pi.local", "127.0.0.1", "localhost"], pi_ca))
    urls = ["https://192.0.2.2:5678/", "https://127.0.0.1:5678/"]
    phone, local, left_out = phone_urls(urls, "https://pi.local:5678/", names)
    assert (phone, local, left_out) == (["https://pi.local:5678/", "https://127.0.0.1:5678/"], None, ["192.0.2.2"])
    assert announcement(phone, tls=True, local_url=local) == [
        "open https://pi.local:5678/ on a phone",
        "open https://127.0.0.1:5678/ in a browser on this machine",
    ]
