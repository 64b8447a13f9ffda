"""``make-cert`` and the daemon over https:// and wss:// with the certificate it makes
(this Pi's CA itself: tests/e2e/test_ca.py), and the self-signed certificates of older set-ups."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import socket
import ssl
import stat
import struct
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID

from gravity_led.daemon import tls

from tests.support.harness import ROOT


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def sans(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName)), {str(a) for a in ext.get_values_for_type(x509.IPAddress)}


def test_make_cert_names_key_and_extensions(tmp_path):
    """The self-signed certificate older set-ups have (tls.make_cert): still made right."""
    cert_path, key_path = tmp_path / "c.pem", tmp_path / "k.pem"
    old = os.umask(0)  # the key must be 0600 whatever the umask
    try:
        names = tls.make_cert(
            hosts=["pi", "pi.local", "192.168.1.7", "fd00::7", "localhost", "127.0.0.1", "PI.local"],
            cert_path=cert_path,
            key_path=key_path,
        )
    finally:
        os.umask(old)
    assert names == ["pi", "pi.local", "192.168.1.7", "fd00::7", "localhost", "127.0.0.1"]  # duplicates dropped
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert_path.stat().st_mode) == 0o644
    cert = load(cert_path)
    dns, ips = sans(cert)
    assert dns == {"pi", "pi.local", "localhost"}
    assert ips == {"192.168.1.7", "fd00::7", "127.0.0.1"}
    assert cert.subject == cert.issuer, "self-signed"
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "pi"
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=825) <= lifetime <= dt.timedelta(days=825, minutes=10)
    assert cert.not_valid_before_utc <= dt.datetime.now(dt.timezone.utc)
    key = load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert key.public_key() == cert.public_key()
    cert.verify_directly_issued_by(cert)  # the signature checks out


@pytest.mark.parametrize("bad", ["not a host!", "", "-pi", "a..b", "пи.local"])
def test_make_cert_rejects_what_is_not_a_host(tmp_path, bad):
    with pytest.raises(tls.CertError):
        tls.make_cert(hosts=[bad] if bad else [], cert_path=tmp_path / "c.pem", key_path=tmp_path / "k.pem")
    assert not (tmp_path / "k.pem").exists()


def run_make_cert(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "gravity_led.daemon", "make-cert", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_cli_writes_files_and_says_how_to_use_them(tmp_path):
    out = tmp_path / "tls"
    r = run_make_cert("--host", "pi", "--host", "10.1.2.3", "--out-dir", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cert_path, key_path = out / "cert.pem", out / "key.pem"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    dns, ips = sans(load(cert_path))
    assert {"pi", "pi.local", "localhost"} <= dns, "a bare host name also gets NAME.local"
    assert {"10.1.2.3", "127.0.0.1"} <= ips
    # Every non-loopback address of this machine is in by default, if this
    # Pi's CA may sign for it (a private one); the others are named as left out.
    from gravity_led.daemon.ca import permits
    from gravity_led.daemon.urls import local_addresses

    ca = load(out / "ca.pem")
    assert {a for a in local_addresses() if permits(ca, a)} <= ips
    for a in local_addresses():
        assert permits(ca, a) or (a in r.stdout.split("Left out", 1)[1].splitlines()[0])
    # The exact flags and TOML keys, with absolute paths.
    assert f"--certfile {cert_path.resolve()} --keyfile {key_path.resolve()}" in r.stdout
    assert f'certfile = "{cert_path.resolve()}"' in r.stdout
    assert f'keyfile = "{key_path.resolve()}"' in r.stdout
    assert "https://pi.local:5678/" in r.stdout


def test_cli_refuses_to_overwrite_without_force(tmp_path):
    assert run_make_cert("--out-dir", str(tmp_path), cwd=tmp_path).returncode == 0
    before = (tmp_path / "cert.pem").read_bytes(), (tmp_path / "key.pem").read_bytes()
    r = run_make_cert("--out-dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode != 0
    assert "already exists" in r.stderr and "--force" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert ((tmp_path / "cert.pem").read_bytes(), (tmp_path / "key.pem").read_bytes()) == before
    ca_before = (tmp_path / "ca.pem").read_bytes(), (tmp_path / "ca-key.pem").read_bytes()
    r = run_make_cert("--out-dir", str(tmp_path), "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "cert.pem").read_bytes() != before[0]
    assert (tmp_path / "key.pem").read_bytes() != before[1]
    # This Pi's CA is kept, so a phone that trusts it trusts the new certificate.
    assert ((tmp_path / "ca.pem").read_bytes(), (tmp_path / "ca-key.pem").read_bytes()) == ca_before
    assert "kept ca.pem" in r.stdout
    v = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.pem"), str(tmp_path / "cert.pem")], capture_output=True, text=True)
    assert v.returncode == 0 and v.stdout.strip().endswith("OK"), v.stdout + v.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--host", "bad host"], "neither a host name nor an IP address"), (["--days", "900"], "825")],
)
def test_cli_errors_are_one_sentence(tmp_path, args, message):
    r = run_make_cert("--out-dir", str(tmp_path), *args, cwd=tmp_path)
    assert r.returncode != 0
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_unwritable_directory_is_one_sentence(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = run_make_cert("--out-dir", str(blocker / "sub"), cwd=tmp_path)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.fixture
def cert_pair(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    tls.make_cert(hosts=["localhost", "127.0.0.1"], cert_path=cert, key_path=key)
    return cert, key


def test_daemon_serves_https_and_wss_with_the_certificate(start_daemon, cert_pair):
    """A self-signed set-up from before this Pi had a CA keeps working as it did."""
    from websockets.sync.client import connect

    cert, key = cert_pair
    d = start_daemon("--certfile", str(cert), "--keyfile", str(key), scheme="https")
    trusting = ssl.create_default_context(cafile=str(cert))  # verifies chain and host name

    with urllib.request.urlopen(f"https://127.0.0.1:{d.port}/", context=trusting, timeout=5) as r:
        assert r.status == 200
        assert "gravity-led" in r.read().decode()

    with connect(f"wss://127.0.0.1:{d.port}/", ssl=trusting, open_timeout=5) as ws:
        ws.send(struct.pack("<3f", 0.0, 5.0, 5.0))
        st = d.wait_for(lambda s: s["leds"]["right"] > 0.5)
        assert st["leds"]["left"] == 0.0
    with connect(f"wss://localhost:{d.port}/", ssl=trusting, open_timeout=5) as ws:
        ws.send(struct.pack("<3f", 0.0, -5.0, 5.0))
        d.wait_for(lambda s: s["leds"]["left"] > 0.5)

    # A client that does not trust the certificate is refused...
    with pytest.raises(ssl.SSLCertVerificationError):
        with connect(f"wss://127.0.0.1:{d.port}/", ssl=ssl.create_default_context(), open_timeout=5):
            pass
    # ...and so is plain http on the TLS port.
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"http://127.0.0.1:{d.port}/status", timeout=5).read()


def test_a_fast_sender_over_wss_is_followed_to_its_last_frame(start_daemon, cert_pair):
    """Read holding pauses the TLS transport, not the socket: frames that
    wait in the TLS layer must still arrive, and the newest be written."""
    from websockets.sync.client import connect

    cert, key = cert_pair
    d = start_daemon("--certfile", str(cert), "--keyfile", str(key), "--stale-after", "30", scheme="https")
    trusting = ssl.create_default_context(cafile=str(cert))
    n = 3000
    with connect(f"wss://127.0.0.1:{d.port}/", ssl=trusting, open_timeout=5) as ws:
        for i in range(n - 1):
            ws.send(struct.pack("<3f", 0.0, (i % 10) - 5.0, 5.0))
        ws.send(struct.pack("<3f", 0.0, -5.0, 5.0))  # the last: left, 45 degrees
        ws.ping().wait(5)  # answered while reads are held
        # Every frame arrived: parsed, or skimmed as superseded (a read of over BACKLOG_FRAMES).
        st = d.wait_for(lambda s: s["frames"]["accepted"] + s["frames"]["superseded"] == n)
        st = d.wait_for(lambda s: s["leds"]["left"] > 0.45 and s["leds"]["right"] == 0.0)
        assert st["pin_writes"] < n / 2  # coalesced


def test_certificate_for_other_names_fails_host_check(start_daemon, tmp_path):
    """The SANs matter: a certificate made for another host does not verify for 127.0.0.1."""
    from websockets.sync.client import connect

    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    tls.make_cert(hosts=["pi.local"], cert_path=cert, key_path=key)
    d = start_daemon("--certfile", str(cert), "--keyfile", str(key), scheme="https")
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch|doesn't match|mismatch"):
        with connect(f"wss://127.0.0.1:{d.port}/", ssl=ssl.create_default_context(cafile=str(cert)), open_timeout=5):
            pass


def test_local_addresses_are_real_ips():
    from gravity_led.daemon.urls import local_addresses

    for a in local_addresses():
        ip = ipaddress.ip_address(a)
        assert not ip.is_loopback and not ip.is_link_local


def test_cli_owner_gets_the_files(tmp_path):
    import pwd

    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    user = next((p for p in pwd.getpwall() if p.pw_uid != 0 and p.pw_name == "nobody"), None)
    if user is None:
        pytest.skip("no user 'nobody' here")
    r = run_make_cert("--out-dir", str(tmp_path), "--owner", "nobody", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for name in ("key.pem", "cert.pem"):
        assert (tmp_path / name).stat().st_uid == user.pw_uid
    assert stat.S_IMODE((tmp_path / "key.pem").stat().st_mode) == 0o600
    r = run_make_cert("--out-dir", str(tmp_path / "x"), "--owner", "no-such-user-here", cwd=tmp_path)
    assert r.returncode != 0 and "no user named" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


# ---- announced URLs: only those the certificate names ----------------------------------


def announced(logs: str) -> list[str]:
    return re.findall(r"open (https://\S+) (?:on a phone|in a browser on this machine)", logs)


def verified_healthz(url: str, cafile: Path) -> int:
    """``GET /healthz`` at ``url`` as a phone's browser checks it: the chain and the host name."""
    with urllib.request.urlopen(url + "healthz", context=ssl.create_default_context(cafile=str(cafile)), timeout=10) as r:
        return r.status


def test_a_certificate_for_loopback_announces_loopback(start_daemon, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    tls.make_cert(hosts=["127.0.0.1", "localhost"], cert_path=cert, key_path=key)
    d = start_daemon("--certfile", str(cert), "--keyfile", str(key), scheme="https")
    d.wait_log("open https://")
    assert announced(d.logs()) == [f"https://127.0.0.1:{d.port}/"]
    assert "not announced" not in d.logs()
    assert verified_healthz(f"https://127.0.0.1:{d.port}/", cert) == 200


ADDRESSES = (
    "ip link add gl0 type veth peer name gl1 && ip addr add 192.0.2.2/24 dev gl0 && ip addr add 10.9.8.7/24 dev gl1"
    " && ip -6 addr add 2001:db8::2/64 dev gl0 nodad && ip link set gl0 up && ip link set gl1 up"
)
"""A network of the test's own: a public address (192.0.2.2, 2001:db8::2) and a private one (10.9.8.7)."""


def test_with_tls_only_the_urls_the_certificate_names_are_announced(start_daemon, tmp_path):
    """The daemon on every address (``--host ::``) of a private network
    namespace, with a certificate for 127.0.0.1, localhost and 10.9.8.7 only:
    those URLs are announced, and each passes a browser's host check; one line
    names the others (which would fail it) and how to add them."""
    from tests.support.lan import private_lan, why_no_lan

    if why := why_no_lan():
        pytest.skip(why)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    tls.make_cert(hosts=["127.0.0.1", "localhost", "10.9.8.7"], cert_path=cert, key_path=key)
    with private_lan():
        subprocess.run(["sh", "-c", ADDRESSES], check=True, capture_output=True, timeout=30)
        d = start_daemon("--host", "::", "--certfile", str(cert), "--keyfile", str(key), "--qr", scheme="https")
        d.wait_log("not announced:")
        logs = d.logs()
        urls = announced(logs)
        assert urls == [f"https://10.9.8.7:{d.port}/", f"https://127.0.0.1:{d.port}/"], logs
        for url in urls:
            assert verified_healthz(url, cert) == 200
        line = next(l for l in logs.splitlines() if "not announced:" in l)
        assert "192.0.2.2, 2001:db8::2" in line and "make-cert --force --host 192.0.2.2 --host 2001:db8::2" in line, line
        with pytest.raises(urllib.error.URLError, match="match|mismatch"):
            verified_healthz(f"https://192.0.2.2:{d.port}/", cert)
        name = socket.gethostname().split(".")[0]
        if name and name != "localhost":
            assert f"{name}.local" in line and f"{name}.local" not in "".join(urls)
        assert "▀" in logs or "█" in logs, "the QR code of the first URL (10.9.8.7)"
