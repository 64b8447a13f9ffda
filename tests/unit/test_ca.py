"""This Pi's CA in-process: what its Name Constraints allow, the iOS profile,
finding the CA in a chain, safe writing, and the secret-file check."""

from __future__ import annotations

import os
import plistlib
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gravity_led.daemon import ca, tls
from gravity_led.daemon.errors import CertError
from gravity_led.daemon.files import secret_fix
from gravity_led.daemon.mobileconfig import profile
from gravity_led.daemon.safewrite import check_directory, discard_staged, folder_lock, staged, write_atomic


@pytest.fixture(scope="module")
def pi():
    return ca.create_ca(names=["pi", "pi.local", "localhost", "pi.home.arpa", "203.0.113.9"], label="pi")


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("pi", True), ("pi.local", True), ("PI.local", True), ("www.pi.local", True), ("localhost", True), ("pi.home.arpa", True),
        ("10.1.2.3", True), ("172.31.255.1", True), ("192.168.1.7", True), ("169.254.3.4", True), ("127.0.0.1", True),
        ("fd00::7", True), ("fe80::1", True), ("::1", True), ("203.0.113.9", True),
        ("bank.example", False), ("pi.local.evil.example", False), ("notpi.local", False), ("local", False),
        ("172.32.0.1", False), ("8.8.8.8", False), ("203.0.113.10", False), ("2001:db8::1", False),
    ],
)
def test_the_ca_permits_this_pi_and_private_addresses_only(pi, host, allowed):
    assert ca.permits(pi[1], host) is allowed


def test_issue_refuses_names_outside_and_signs_those_inside(pi):
    key, cert = pi
    with pytest.raises(CertError, match="may not sign for 'bank.example'"):
        ca.issue(key, cert, hosts=["pi.local", "bank.example"], days=30)
    _, leaf = ca.issue(key, cert, hosts=["pi.local", "192.168.1.7"], days=30)
    leaf.verify_directly_issued_by(cert)
    assert leaf.issuer == cert.subject
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_the_ca_is_found_in_a_chain_and_not_in_a_self_signed_certificate(pi):
    key, cert = pi
    _, leaf = ca.issue(key, cert, hosts=["pi.local"], days=30)
    assert ca.ca_of_chain(tls.cert_pem(leaf, cert)) == cert
    other_key, other = ca.create_ca(names=["x"], label="x")
    assert ca.ca_of_chain(tls.cert_pem(leaf, other)) is None, "a CA that did not sign it"
    _, self_signed = tls.server_certificate(hosts=["pi.local"])
    assert ca.ca_of_chain(tls.cert_pem(self_signed)) is None
    assert ca.ca_of_chain(b"not a certificate") is None


def test_the_profile_is_a_plist_holding_the_cas_der(pi):
    der = pi[1].public_bytes(Encoding.DER)
    doc = plistlib.loads(profile(der, name="gravity-led CA for pi"))
    assert doc["PayloadType"] == "Configuration"
    (payload,) = doc["PayloadContent"]
    assert payload["PayloadType"] == "com.apple.security.root" and payload["PayloadContent"] == der
    assert profile(der, name="gravity-led CA for pi") == profile(der, name="gravity-led CA for pi")


@pytest.mark.parametrize(
    ("mode", "uid", "gid", "want"),
    [
        (0o600, 1000, 1000, None),
        (0o640, 0, 999, None),  # the service's group may read it (installer's layout)
        (0o644, 1000, 1000, ("others", "chmod 600 /k")),
        (0o640, 1000, 50, ("its group", "chmod 600 /k")),
        (0o644, 0, 999, ("others", "chmod 640 /k")),
        (0o604, 0, 50, ("others", "chown svc /k && chmod 600 /k")),
    ],
)
def test_secret_files_others_may_read_and_the_fix(mode, uid, gid, want):
    assert secret_fix("/k", mode=mode, uid=uid, gid=gid, my_uid=1000, my_user="svc", service_gids={1000, 999}) == want


def test_a_folder_everyone_may_write_is_refused_unless_sticky(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    d.chmod(0o777)
    with pytest.raises(CertError, match="every user may write to it"):
        check_directory(d)
    d.chmod(0o1777)
    check_directory(d)


def test_write_atomic_replaces_a_link_instead_of_following_it(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "key.pem").symlink_to(victim)
    old = os.umask(0)
    try:
        write_atomic(tmp_path / "key.pem", b"secret", mode=0o600)
    finally:
        os.umask(old)
    assert victim.read_text() == "precious"
    st = (tmp_path / "key.pem").lstat()
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem", "victim"], "no temporary file left"


def test_staged_files_a_kill_left_are_discarded_and_nothing_else(tmp_path):
    key = tmp_path / "key.pem"
    left = Path(staged(key, b"secret", mode=0o600))  # as a kill before its rename leaves it
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / ".key.pem.abcd1234.tmp").symlink_to(victim)  # a link by that name: not followed, kept
    keep = [".key.pem.new", ".key.pem.toolong12.tmp", ".cert.pem.abcd1234.tmp", "key.pem.abcd1234.tmp"]
    for name in keep:
        (tmp_path / name).write_text("not ours")
    assert discard_staged(key) == [left]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*keep, ".key.pem.abcd1234.tmp", "victim"])
    assert victim.read_text() == "precious"


def test_one_writer_at_a_time_holds_a_folder(tmp_path):
    with folder_lock(tmp_path, what="make-cert"):
        with pytest.raises(CertError, match=f"^another make-cert is writing into {tmp_path}; try again when it has finished$"):
            with folder_lock(tmp_path, what="make-cert"):
                pass
    with folder_lock(tmp_path, what="make-cert"):  # released when the holder ended
        pass
