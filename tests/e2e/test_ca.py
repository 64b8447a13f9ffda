"""This Pi's CA as ``make-cert`` makes it and the daemon serves it: the chain a
strict TLS client sees (openssl), the downloads a phone installs, files written
safely as root, where make-cert writes on a laptop, and the warnings about
secret files others may read.  The CA in a real browser: tests/system/test_browser.py."""

from __future__ import annotations

import os
import plistlib
import pwd
import signal
import socket
import ssl
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key

from gravity_led.daemon import tls
from gravity_led.daemon.ca import PRIVATE_NETWORKS

from tests.support.harness import clean_env, wait_until

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="writing as root into other users' folders needs root")
needs_openssl = pytest.mark.skipif(not Path("/usr/bin/openssl").exists(), reason="openssl is not installed")


def make_cert(*args: str, cwd: Path, env: dict[str, str] | None = None, code: str = "") -> subprocess.CompletedProcess:
    """The real ``make-cert`` (``code`` runs first in the same process, to kill it at a chosen point)."""
    run = f"{code}\nimport sys\nfrom gravity_led.daemon.cli import main\nsys.exit(main(['make-cert', *sys.argv[1:]]))"
    return subprocess.run([sys.executable, "-c", run, *args], cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=60)


def one_sentence(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r.stderr


@pytest.fixture
def pi_ca(tmp_path) -> Path:
    out = tmp_path / "tls"
    r = make_cert("--host", "pi", "--out-dir", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return out


def cert_of(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_the_ca_is_limited_to_this_pi_by_critical_name_constraints(pi_ca):
    import socket

    ca = cert_of(pi_ca / "ca.pem")
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    nc = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert nc.critical
    dns = {n.value for n in nc.value.permitted_subtrees if isinstance(n, x509.DNSName)}
    nets = {n.value for n in nc.value.permitted_subtrees if isinstance(n, x509.IPAddress)}
    name = socket.gethostname().split(".")[0]
    assert {"pi", "pi.local", "localhost", name, f"{name}.local"} <= dns
    assert all(d in {"pi", "pi.local", "localhost", name, f"{name}.local", socket.getfqdn()} for d in dns), dns
    assert nets == set(PRIVATE_NETWORKS)
    assert {str(n) for n in nets} == {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8", "fc00::/7", "fe80::/10", "::1/128"}
    assert nc.value.excluded_subtrees is None
    # The key: this user's alone, 0600; the server certificate chains to the CA.
    key = pi_ca / "ca-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.stat().st_uid in (0, os.geteuid())
    leaf = cert_of(pi_ca / "cert.pem")
    leaf.verify_directly_issued_by(ca)


@needs_openssl
def test_openssl_verifies_the_chain_the_daemon_serves(start_daemon, pi_ca, tmp_path):
    d = start_daemon("--certfile", str(pi_ca / "cert.pem"), "--keyfile", str(pi_ca / "key.pem"), scheme="https")
    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{d.port}", "-servername", "pi.local", "-showcerts"],
        input="", capture_output=True, text=True, timeout=30,
    )
    served = [b.split("-----END CERTIFICATE-----")[0] for b in r.stdout.split("-----BEGIN CERTIFICATE-----")[1:]]
    assert len(served) == 2, r.stdout  # the server certificate, then the CA's
    chain = tmp_path / "served.pem"
    chain.write_text("".join(f"-----BEGIN CERTIFICATE-----{b}-----END CERTIFICATE-----\n" for b in served))
    for host_check in (["-verify_hostname", "pi.local"], ["-verify_ip", "127.0.0.1"]):
        v = subprocess.run(["openssl", "verify", "-CAfile", str(pi_ca / "ca.pem"), "-untrusted", str(chain), *host_check, str(chain)], capture_output=True, text=True)
        assert v.returncode == 0 and v.stdout.strip().endswith(": OK"), v.stdout + v.stderr
    # A certificate for another site, signed with the same key, fails the constraints.
    from gravity_led.daemon.certfiles import load_ca

    ca_key, ca_cert = load_ca(pi_ca)
    _, bad = tls.server_certificate(hosts=["bank.example"], issuer=(ca_cert, ca_key))
    (tmp_path / "bad.pem").write_bytes(tls.cert_pem(bad))
    v = subprocess.run(["openssl", "verify", "-CAfile", str(pi_ca / "ca.pem"), str(tmp_path / "bad.pem")], capture_output=True, text=True)
    assert v.returncode != 0 and "permitted subtree violation" in v.stdout + v.stderr


def get(url: str, cafile: Path) -> tuple[int, dict[str, str], bytes]:
    ctx = ssl.create_default_context(cafile=str(cafile))
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_the_daemon_serves_the_ca_and_an_ios_profile_and_never_its_key(start_daemon, pi_ca):
    d = start_daemon("--certfile", str(pi_ca / "cert.pem"), "--keyfile", str(pi_ca / "key.pem"), scheme="https")
    ca = pi_ca / "ca.pem"
    der = cert_of(ca).public_bytes(Encoding.DER)
    code, headers, body = get(f"https://127.0.0.1:{d.port}/ca.crt", ca)
    assert code == 200 and headers["Content-Type"] == "application/x-x509-ca-cert" and body == der
    assert "attachment" in headers["Content-Disposition"]
    code, headers, body = get(f"https://127.0.0.1:{d.port}/ca.mobileconfig", ca)
    assert code == 200 and headers["Content-Type"] == "application/x-apple-aspen-config"
    profile = plistlib.loads(body)
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    (payload,) = profile["PayloadContent"]
    assert payload["PayloadType"] == "com.apple.security.root" and payload["PayloadContent"] == der
    assert profile["PayloadUUID"] != payload["PayloadUUID"] and payload["PayloadIdentifier"].startswith(profile["PayloadIdentifier"])
    # The same CA gives the same profile (a phone replaces it, never adds a second).
    assert get(f"https://127.0.0.1:{d.port}/ca.mobileconfig", ca)[2] == body
    # Nothing serves a key.
    keys = [(pi_ca / n).read_bytes() for n in ("ca-key.pem", "key.pem")]
    for path in ("/ca-key.pem", "/key.pem", "/ca.pem", "/cert.pem", "/ca.crt/", "/ca.crt%00"):
        code, _, body = get(f"https://127.0.0.1:{d.port}{path}", ca)
        assert code in (400, 404) and not any(k in body for k in keys)
    # The start-up lines point phones to both downloads.
    d.wait_log("/ca.mobileconfig (iPhone, iPad)")
    assert "/ca.crt (Android)" in d.logs()


def test_a_self_signed_daemon_has_no_ca_to_give_and_says_how_to_get_one(start_daemon, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    tls.make_cert(hosts=["localhost", "127.0.0.1"], cert_path=cert, key_path=key)
    d = start_daemon("--certfile", str(cert), "--keyfile", str(key), scheme="https")
    code, _, body = get(f"https://127.0.0.1:{d.port}/ca.crt", cert)
    assert code == 404 and b"run make-cert" in body
    d.wait_log("this certificate is self-signed: iPhones load the page but not its WebSocket")
    # make-cert --force in that folder makes the CA; the daemon then serves it.
    r = make_cert("--out-dir", str(tmp_path), "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "new certificate authority" in r.stdout
    d2 = start_daemon("--certfile", str(cert), "--keyfile", str(key), scheme="https")
    assert get(f"https://127.0.0.1:{d2.port}/ca.crt", tmp_path / "ca.pem")[0] == 200


def test_make_cert_refuses_a_name_the_ca_may_not_sign_for(pi_ca, tmp_path):
    r = make_cert("--host", "bank.example", "--out-dir", str(pi_ca), "--force", cwd=tmp_path)
    assert "may not sign for 'bank.example'" in one_sentence(r)


def test_a_ca_key_others_may_read_is_not_used(pi_ca, tmp_path):
    (pi_ca / "ca-key.pem").chmod(0o644)
    r = make_cert("--out-dir", str(pi_ca), "--force", cwd=tmp_path)
    assert "chmod 600" in one_sentence(r)


# ---- written safely as root ----------------------------------------------------


def test_a_folder_everyone_may_write_to_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    r = make_cert("--out-dir", str(shared), cwd=tmp_path)
    assert "every user may write to it" in one_sentence(r)
    assert list(shared.iterdir()) == []


@needs_root
def test_planted_links_and_files_in_a_sticky_folder_are_replaced_not_followed(tmp_path):
    nobody = pwd.getpwnam("nobody")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (shared / "key.pem").symlink_to(victim)
    planted = shared / "cert.pem"
    planted.write_text("planted\n")
    os.chown(planted, nobody.pw_uid, nobody.pw_gid)
    r = make_cert("--out-dir", str(shared), "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert victim.read_text() == "precious\n"
    for name in ("key.pem", "cert.pem", "ca-key.pem", "ca.pem"):
        st = (shared / name).lstat()
        assert stat.S_ISREG(st.st_mode) and st.st_uid == 0, name
    assert stat.S_IMODE((shared / "key.pem").lstat().st_mode) == 0o600


@pytest.mark.parametrize("where", ["os.fsync", "os.replace"])
def test_a_kill_while_writing_leaves_the_old_files_whole(pi_ca, tmp_path, where):
    """Killed (SIGKILL) at the first fsync of a new file, or at the first rename."""
    before = {p.name: p.read_bytes() for p in pi_ca.iterdir()}
    code = f"import os, signal\n{where} = lambda *a: os.kill(os.getpid(), signal.SIGKILL)"
    r = make_cert("--out-dir", str(pi_ca), "--force", cwd=tmp_path, code=code)
    assert r.returncode == -signal.SIGKILL
    assert {n: (pi_ca / n).read_bytes() for n in before} == before
    # The next run works (leftover temporary files are hidden and harmless).
    assert make_cert("--out-dir", str(pi_ca), "--force", cwd=tmp_path).returncode == 0


KILL_AT_RENAME = """
import os, signal
_replace, _renames = os.replace, [0]
def _replace_or_die(*a, **k):
    _renames[0] += 1
    if _renames[0] == {n}:
        os.kill(os.getpid(), signal.SIGKILL)
    return _replace(*a, **k)
os.replace = _replace_or_die
"""
"""Code for :func:`make_cert` that SIGKILLs it just before its ``n``-th rename."""


def served_leaf(port: int) -> bytes:
    """The certificate the daemon served in a full TLS handshake (which the
    server completes only by signing with that certificate's key)."""
    ctx = ssl._create_unverified_context()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(raw) as s:
        return s.getpeercert(binary_form=True)


def leaf_der(path: Path) -> bytes:
    return cert_of(path).public_bytes(Encoding.DER)


@pytest.mark.parametrize("renames", range(1, 7))
def test_a_kill_at_any_step_leaves_a_pair_the_daemon_serves(start_daemon, tmp_path, renames):
    """make-cert over a self-signed pair makes the CA (renames 1-3: CA key to
    ca-key.pem.new, ca.pem, ca-key.pem) and then the server pair (4-6);
    killed (SIGKILL) before each rename, the real daemon then starts with the
    old pair or the new one and completes a TLS handshake with it, and the
    next make-cert finishes the job (a whole CA it made is kept)."""
    out = tmp_path / "tls"
    out.mkdir()
    cert, key = out / "cert.pem", out / "key.pem"
    tls.make_cert(hosts=["localhost", "127.0.0.1"], cert_path=cert, key_path=key)
    old = leaf_der(cert)
    r = make_cert("--host", "127.0.0.1", "--out-dir", str(out), "--force", cwd=tmp_path, code=KILL_AT_RENAME.format(n=renames))
    assert r.returncode == -signal.SIGKILL, r.stderr
    new_cert_in_place = renames == 6
    assert (leaf_der(cert) != old) is new_cert_in_place
    d = start_daemon("--certfile", str(cert), "--keyfile", str(key), scheme="https")
    assert served_leaf(d.port) == leaf_der(cert)
    if new_cert_in_place:
        d.wait_log(f"{key} is not the key of {cert}: make-cert was stopped while replacing them; using the new key {key}.new")
    d.stop()
    again = make_cert("--host", "127.0.0.1", "--out-dir", str(out), "--force", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert ("kept ca.pem" in again.stdout) is (renames >= 3), again.stdout
    assert sorted(p.name for p in out.iterdir()) == ["ca-key.pem", "ca.pem", "cert.pem", "key.pem"], "no pending key, no staged file left"
    assert served_leaf(start_daemon("--certfile", str(cert), "--keyfile", str(key), scheme="https").port) == leaf_der(cert)


def test_the_next_make_cert_puts_a_pending_key_in_place(pi_ca, tmp_path):
    """Killed between the new certificate and its key's last rename: a plain
    make-cert (no --force) ends the swap, then refuses to replace the pair."""
    cert, key = pi_ca / "cert.pem", pi_ca / "key.pem"
    r = make_cert("--out-dir", str(pi_ca), "--force", cwd=tmp_path, code=KILL_AT_RENAME.format(n=3))
    assert r.returncode == -signal.SIGKILL
    pending = (pi_ca / "key.pem.new").read_bytes()
    assert make_cert("--out-dir", str(pi_ca), cwd=tmp_path).returncode == 1
    assert key.read_bytes() == pending and not (pi_ca / "key.pem.new").exists()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert cert_of(cert).public_key() == load_pem_private_key(pending, None).public_key()


# ---- where make-cert writes on a laptop -----------------------------------------


@pytest.fixture
def laptop():
    if Path("/etc/gravity-led/daemon.toml").exists():
        pytest.skip("this machine has the service installed (/etc/gravity-led/daemon.toml)")


@needs_root
def test_on_a_laptop_make_cert_as_root_writes_here_for_the_sudo_user(laptop, tmp_path):
    nobody = pwd.getpwnam("nobody")
    here = tmp_path / "here"
    here.mkdir()
    os.chown(here, nobody.pw_uid, nobody.pw_gid)
    env = clean_env(SUDO_UID=str(nobody.pw_uid), SUDO_GID=str(nobody.pw_gid), SUDO_USER="nobody")
    r = make_cert(cwd=here, env=env)
    assert r.returncode == 0, r.stderr
    assert f"Wrote into {here}" in r.stdout
    for name in ("key.pem", "cert.pem", "ca-key.pem", "ca.pem"):
        assert (here / name).stat().st_uid == nobody.pw_uid, name
    assert not Path("/etc/gravity-led/key.pem").exists()
    # The next sudo run renews with the same CA (its key is that user's).
    ca = (here / "ca-key.pem").read_bytes()
    r = make_cert("--force", cwd=here, env=env)
    assert r.returncode == 0, r.stderr
    assert (here / "ca-key.pem").read_bytes() == ca and "kept ca.pem" in r.stdout


def test_the_daemons_hint_on_a_laptop_is_a_command_that_works_there(laptop, start_daemon, tmp_path):
    d = start_daemon()
    d.wait_log("phones give their motion sensors only to an https:// page")
    line = next(l for l in d.logs().splitlines() if "phones give their motion sensors" in l)
    command = line.split("run '", 1)[1].split("'", 1)[0]
    assert not command.startswith("sudo ")
    r = subprocess.run(f"{command} --out-dir {tmp_path / 'tls'}", shell=True, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "tls" / "cert.pem").exists()


# ---- secret files others may read ---------------------------------------------------


def test_secret_files_others_may_read_are_named_at_start_and_on_reload(start_daemon, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret-token-123\n")
    token.chmod(0o644)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    tls.make_cert(hosts=["localhost", "127.0.0.1"], cert_path=cert, key_path=key)
    key.chmod(0o644)
    d = start_daemon("--token-file", str(token), "--certfile", str(cert), "--keyfile", str(key), scheme="https")
    d.wait_log(f"token file {token} may be read by others (mode 0644); fix it with: chmod 600 {token}")
    d.wait_log(f"TLS key {key} may be read by others (mode 0644); fix it with: chmod 600 {key}")
    token.chmod(0o600)
    os.kill(d.pid, signal.SIGHUP)
    wait_until(lambda: d.logs().count("reload") >= 1 and d.logs().count("may be read by") == 3, what="the key's warning again on reload")
    assert d.logs().count(f"token file {token} may be read") == 1, "fixed: not named again"


def test_make_cert_never_leaves_a_secret_others_may_read(tmp_path):
    old = os.umask(0)  # the child inherits it: make-cert must not rely on it
    try:
        r = make_cert("--out-dir", str(tmp_path / "tls"), cwd=tmp_path)
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    for name in ("ca-key.pem", "key.pem"):
        assert stat.S_IMODE((tmp_path / "tls" / name).stat().st_mode) == 0o600
    for name in ("ca.pem", "cert.pem"):
        assert stat.S_IMODE((tmp_path / "tls" / name).stat().st_mode) == 0o644
