"""Origin check, optional token, limits.

Unit tests of the pure functions in ``daemon/security.py``, then end-to-end
tests against the real daemon process.
"""

from __future__ import annotations

import hmac
import http.client
import json
import socket
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect

from gravity_led.daemon.protocol import BUSY_CLOSE_CODE
from gravity_led.daemon.security import (
    SecurityError,
    check_token,
    normalise_origin,
    origin_allowed,
    read_token,
    request_token,
    token_matches,
)

from tests.support.net import (
    approx_leds,
    drive_and_check,
    handshake_request,
    leds_of,
    read_http_head,
    tcp_closed_by_peer,
    text_frame,
    want_duty,
    open_idle_connections,
    ws_client,
)

# ---- unit: origins --------------------------------------------------------------


@pytest.mark.parametrize(
    "origin, expected",
    [
        ("http://Example.COM", "http://example.com"),
        ("http://example.com:80", "http://example.com"),
        ("https://example.com:443", "https://example.com"),
        ("https://example.com:8443", "https://example.com:8443"),
        ("http://example.com:443", "http://example.com:443"),
        ("HTTP://[::1]:5678", "http://[::1]:5678"),
        (" http://pi.local:5678 ", "http://pi.local:5678"),
        ("http://pi.local:99999", "http://pi.local"),  # bad port: ignored, never raises
        ("http://[::1", "http://[::1"),  # unbalanced bracket: returned as is, never raises
    ],
)
def test_normalise_origin(origin, expected):
    assert normalise_origin(origin) == expected


@pytest.mark.parametrize(
    "origin, host, tls, allowed, ok",
    [
        (None, "pi:5678", False, (), True),  # native clients send no Origin
        ("http://pi:5678", "pi:5678", False, (), True),  # the daemon's own page
        ("http://PI:5678", "pi:5678", False, (), True),
        ("http://pi", "pi:80", False, (), True),
        ("https://pi:5678", "pi:5678", True, (), True),
        ("http://pi:5678", "pi:5678", True, (), False),  # scheme must match
        ("https://pi:5678", "pi:5678", False, (), False),
        ("http://pi:5679", "pi:5678", False, (), False),  # port must match
        ("http://evil.example", "pi:5678", False, (), False),
        ("http://evil.example", "evil.example", False, (), True),  # DNS rebinding needs the token (documented)
        ("null", "pi:5678", False, (), False),  # sandboxed iframes, file:// pages
        ("http://pi:5678", None, False, (), False),
        ("", "pi:5678", False, (), False),
        ("https://app.example", "pi:5678", False, ("https://app.example",), True),
        ("https://APP.example:443", "pi:5678", False, ("https://app.example",), True),
        ("http://app.example", "pi:5678", False, ("https://app.example",), False),
        ("https://app.example.evil", "pi:5678", False, ("https://app.example",), False),
        ("https://evil.example/https://app.example", "pi:5678", False, ("https://app.example",), False),
    ],
)
def test_origin_allowed(origin, host, tls, allowed, ok):
    assert origin_allowed(origin, host, tls=tls, allowed=allowed) is ok


# ---- unit: token ----------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization, path, expected",
    [
        ("Bearer s3cret-token", "/", "s3cret-token"),
        ("bearer   s3cret-token  ", "/", "s3cret-token"),
        ("Basic dXNlcjpwYXNz", "/", None),
        ("Bearer ", "/", None),
        (None, "/?token=abc12345", "abc12345"),
        (None, "/ws?x=1&token=abc%2B12345", "abc+12345"),
        (None, "/?token=", None),
        (None, "/", None),
        ("Bearer from-header", "/?token=from-query", "from-header"),
    ],
)
def test_request_token(authorization, path, expected):
    assert request_token(authorization, path) == expected


def test_token_matches_is_exact_and_constant_time(monkeypatch):
    assert token_matches("s3cret-token", "s3cret-token")
    assert not token_matches("s3cret-toke", "s3cret-token")
    assert not token_matches("s3cret-token!", "s3cret-token")
    assert not token_matches(None, "s3cret-token")
    assert not token_matches("", "s3cret-token")
    assert not token_matches("\udcff\u00e9", "s3cret-token")  # odd input never raises
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert token_matches("s3cret-token", "s3cret-token")
    assert calls, "the comparison must go through hmac.compare_digest"


def test_read_token(tmp_path):
    p = tmp_path / "token"
    p.write_text("  s3cret-token\n")
    assert read_token(p) == "s3cret-token"
    p.write_bytes(b"\xef\xbb\xbfs3cret-token\r\n")  # UTF-8 with a BOM, as Notepad saves it
    assert read_token(p) == "s3cret-token"
    for bad in ("short", "two words here", "", "caf\u00e9-au-lait", "\u20ac-price-tag", "tab\there-x", "bell\x07-ringer", "s3cret-\ufefftoken"):
        p.write_text(bad, encoding="utf-8")
        with pytest.raises(SecurityError, match="must hold one token of at least 8 printable ASCII characters without spaces"):
            read_token(p)
    p.write_bytes(b"\xff\xfe\xfa-not-utf8")
    with pytest.raises(SecurityError, match="is not UTF-8 text"):
        read_token(p)
    with pytest.raises(SecurityError, match="does not exist"):
        read_token(tmp_path / "missing")
    with pytest.raises(SecurityError, match="is a directory"):
        read_token(tmp_path)
    # The token itself never appears in an error message.
    for bad in ("abc def-secret-part", "def-secret-part-\u00e9"):
        p.write_text(bad)
        with pytest.raises(SecurityError) as e:
            read_token(p)
        assert "secret-part" not in str(e.value)


def test_check_token_names_the_source_not_the_token():
    assert check_token("A-Za-z0-9._~!#$%&'()*+,/:;<=>?@[]^`{|}", "x") == "A-Za-z0-9._~!#$%&'()*+,/:;<=>?@[]^`{|}"
    with pytest.raises(SecurityError) as e:
        check_token("secret value", "$GRAVITY_LED_TOKEN")
    assert str(e.value).startswith("$GRAVITY_LED_TOKEN must hold one token")
    assert "secret" not in str(e.value)


# ---- end to end: origin -----------------------------------------------------------


def refused_status(url: str, **kwargs) -> int:
    with pytest.raises(InvalidStatus) as e:
        with connect(url, open_timeout=5, **kwargs):
            pass
    return e.value.response.status_code


def test_foreign_origin_gets_403_before_the_busy_check(start_daemon):
    d = start_daemon("--stale-after", "60")
    own = f"http://127.0.0.1:{d.port}"
    assert refused_status(d.url, origin="http://evil.example") == 403
    with ws_client(d.url, origin=own) as holder:  # the daemon's own page
        holder.send(text_frame(0.5))
        d.wait_for(lambda s: approx_leds(leds_of(s), want_duty(0.5)))
        # While the LEDs are busy: a hostile page still gets a plain 403, not 1013.
        for origin in ("http://evil.example", "null", f"http://localhost:{d.port}", f"http://127.0.0.1:{d.port + 1}", f"https://127.0.0.1:{d.port}"):
            assert refused_status(d.url, origin=origin) == 403, origin
        # ... whereas an allowed client learns that the LEDs are busy.
        with ws_client(d.url, origin=own) as second:
            with pytest.raises(ConnectionClosed):
                second.recv(timeout=5)
            assert second.close_code == BUSY_CLOSE_CODE
        holder.send(text_frame(-0.25))  # the holder is undisturbed
        s = d.wait_for(lambda s: approx_leds(leds_of(s), want_duty(-0.25)))
    assert s["busy_refused"] == 1  # the refused origins never reached the busy check


def test_no_origin_and_own_origin_are_accepted(daemon):
    drive_and_check(daemon, 0.4)  # a native client: no Origin header
    with ws_client(daemon.url, origin=f"http://127.0.0.1:{daemon.port}") as ws:
        ws.send(text_frame(-0.4))
        daemon.wait_for(lambda s: approx_leds(leds_of(s), want_duty(-0.4)))


def test_allow_list(start_daemon):
    d = start_daemon("--allowed-origins", "https://app.example, http://lan-tool.local:8080")
    for origin in ("https://app.example", "https://APP.example:443", "http://lan-tool.local:8080"):
        with ws_client(d.url, origin=origin) as ws:
            ws.send(text_frame(0.2))
            d.wait_for(lambda s: approx_leds(leds_of(s), want_duty(0.2)))
        d.wait_for(lambda s: s["client"] is None)
    for origin in ("http://app.example", "https://app.example:8443", "http://lan-tool.local", "https://evil.example"):
        assert refused_status(d.url, origin=origin) == 403, origin


def test_plain_http_requests_are_not_origin_checked_but_upgrades_are(daemon):
    code, _ = daemon.get("/healthz", headers={"Origin": "http://evil.example"})
    assert code == 200  # no state change through plain HTTP; CORS keeps the body from the page
    sock = socket.create_connection(("127.0.0.1", daemon.port))
    try:
        sock.sendall(handshake_request(daemon.port, headers={"Origin": "http://evil.example"}))
        head = read_http_head(sock)
    finally:
        sock.close()
    assert head.startswith(b"HTTP/1.1 403")
    assert b"\r\nServer: gravity-led\r\n" in head


# ---- end to end: token ------------------------------------------------------------

SECRET = "tok-Zq8vW3xKp7Lm2Ny5"
NO_TRACEBACKS = True  # tests/conftest.py: any traceback in the daemon's output fails the test


@pytest.fixture
def token_daemon(start_daemon, tmp_path):
    path = tmp_path / "token"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return start_daemon("--token-file", str(path), "--log-level", "debug", "--stale-after", "60")


def authed_status(d) -> dict:
    code, body = d.get("/status", headers={"Authorization": f"Bearer {SECRET}"})
    assert code == 200, body
    return json.loads(body)


def wait_authed(d, pred, timeout=5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        s = authed_status(d)
        if pred(s):
            return s
        assert time.monotonic() < deadline, s
        time.sleep(0.005)


def test_token_via_header_or_query_and_401_otherwise(token_daemon):
    d = token_daemon
    assert refused_status(d.url) == 401
    assert refused_status(d.url, additional_headers={"Authorization": "Bearer wrong-token-1"}) == 401
    assert refused_status(d.url + f"/?token={SECRET[:-1]}") == 401
    assert refused_status(d.url + f"/?token={SECRET}x") == 401
    assert refused_status(d.url, additional_headers={"Authorization": f"Basic {SECRET}"}) == 401
    # The origin check still comes first.
    assert refused_status(d.url + f"/?token={SECRET}", origin="http://evil.example") == 403
    with ws_client(d.url, additional_headers={"Authorization": f"Bearer {SECRET}"}) as ws:
        ws.send(text_frame(0.6))
        wait_authed(d, lambda s: approx_leds(leds_of(s), want_duty(0.6)))
    wait_authed(d, lambda s: s["client"] is None)
    with ws_client(d.url + f"/?token={SECRET}", origin=f"http://127.0.0.1:{d.port}") as ws:  # what a browser does
        ws.send(text_frame(-0.6))
        wait_authed(d, lambda s: approx_leds(leds_of(s), want_duty(-0.6)))
    # /status is protected too; /healthz is not (it reveals nothing).
    assert d.get("/status")[0] == 401
    assert d.get("/status?token=nope-nope-nope")[0] == 401
    assert d.get(f"/status?token={SECRET}")[0] == 200
    assert d.get("/healthz")[0] == 200


def test_the_token_never_appears_in_the_logs(token_daemon):
    d = token_daemon
    with ws_client(d.url + f"/some/path?token={SECRET}") as ws:
        ws.send("not a frame")
        ws.send(text_frame(0.3))
        wait_authed(d, lambda s: s["frames"]["accepted"] == 1 and s["frames"]["rejected"] == 1)
    for wrong in (SECRET + "0", SECRET[:8]):
        refused_status(d.url + f"/?token={wrong}")
        refused_status(d.url, additional_headers={"Authorization": f"Bearer {wrong}"})
    d.get(f"/status?token={SECRET}")
    d.get(f"/nothing-here?token={SECRET}")
    wait_authed(d, lambda s: s["client"] is None)
    assert d.stop() == 0
    logs = d.logs()
    assert "connected" in logs and "missing or wrong token" in logs  # the log is there, at DEBUG
    assert SECRET not in logs and SECRET[:8] not in logs
    assert d.cmd and SECRET not in " ".join(d.cmd)  # nor on the command line (ps)


# ---- end to end: limits ------------------------------------------------------------


def test_max_size_1009_at_the_boundary_and_the_daemon_keeps_serving(start_daemon):
    d = start_daemon("--stale-after", "60")
    frame = text_frame(0.5)
    with ws_client(d.url, max_size=None) as ws:
        ws.send(frame + " " * (1024 - len(frame)))  # exactly 1 KiB: accepted
        d.wait_for(lambda s: approx_leds(leds_of(s), want_duty(0.5)))
        ws.send(frame + " " * (1025 - len(frame)))  # one byte more: 1009
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 1009
    with ws_client(d.url, max_size=None) as ws:
        ws.send(b"\x00" * 1_000_000)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 1009
    d.wait_for(lambda s: s["client"] is None and s["leds"] == {"right": 0.0, "left": 0.0})
    drive_and_check(d, -0.8)


def test_permessage_deflate_is_never_negotiated(daemon):
    with connect(daemon.url, compression="deflate", open_timeout=5) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        assert ws.protocol.extensions == []
    sock = socket.create_connection(("127.0.0.1", daemon.port))
    try:
        sock.sendall(handshake_request(daemon.port, headers={"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits, x-webkit-deflate-frame"}))
        head = read_http_head(sock)
    finally:
        sock.close()
    assert head.startswith(b"HTTP/1.1 101")
    assert b"sec-websocket-extensions" not in head.lower()


def test_server_header_reveals_no_version(daemon):
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=5)
    try:
        for path in ("/status", "/healthz", "/nope"):
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            assert r.getheader("Server") == "gravity-led", path
            conn.close()
    finally:
        conn.close()
    with connect(daemon.url, open_timeout=5) as ws:
        assert ws.response.headers["Server"] == "gravity-led"
    assert refused_status(daemon.url, origin="http://evil.example") == 403


def test_a_connection_flood_is_capped_and_the_holder_keeps_driving(start_daemon):
    d = start_daemon("--stale-after", "60", "--handshake-timeout-s", "2")
    cap = d.status()["connections"]["max"]
    assert cap == 32  # the documented default
    with ws_client(d.url) as holder:
        holder.send(text_frame(0.1))
        d.wait_for(lambda s: approx_leds(leds_of(s), want_duty(0.1)))
        socks = open_idle_connections(d.port, 200)  # 200 idle TCP connections at once
        try:
            # Those over the cap were dropped at once (the holder has one slot):
            # waited for as resets arriving, up to well before the 2 s handshake
            # timeout would close the admitted ones too (a loaded machine is slow
            # to accept 200, so no fixed wait per socket).
            dropped = count_closed_by_peer(socks, at_least=200 - (cap - 1), within_s=1.5)
            assert dropped >= 200 - (cap - 1)
            # The holder is undisturbed during the flood.
            for duty in (0.2, -0.3, 0.4):
                holder.send(text_frame(duty))
                deadline = time.monotonic() + 10
                while not approx_leds(d_leds_quiet(d), want_duty(duty)):
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
        finally:
            for s in socks:
                s.close()
        st = d.wait_for(lambda s: s["connections"]["open"] <= 2)  # the holder and this request
        assert approx_leds(leds_of(st), want_duty(0.4))
    d.wait_for(lambda s: s["client"] is None)
    drive_and_check(d, 0.9)


def count_closed_by_peer(socks: list, *, at_least: int, within_s: float) -> int:
    """How many of ``socks`` the peer closed, waiting until ``at_least`` did or ``within_s`` passed."""
    import selectors

    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    closed, deadline = 0, time.monotonic() + within_s
    while closed < at_least and sel.get_map() and (left := deadline - time.monotonic()) > 0:
        for key, _ in sel.select(left):
            if tcp_closed_by_peer(key.fileobj, 0.01):
                closed += 1
                sel.unregister(key.fileobj)
    sel.close()
    return closed


def d_leds_quiet(d) -> tuple[float, float]:
    """LEDs from /status, or (-1, -1) while the flood leaves no free slot for the request."""
    try:
        return leds_of(d.status())
    except (OSError, http.client.HTTPException, AssertionError):
        return (-1.0, -1.0)


def test_handshake_timeout_frees_the_slot(start_daemon):
    d = start_daemon("--max-connections", "3", "--handshake-timeout-s", "0.5")
    idle = [socket.create_connection(("127.0.0.1", d.port)) for _ in range(3)]  # never send a handshake
    try:
        # Every slot is held: a real client is dropped at once (reset before
        # or during its handshake, depending on who is quicker).
        with pytest.raises((InvalidHandshake, ConnectionClosed, OSError, TimeoutError)):
            with connect(d.url, open_timeout=2):
                pass
        # The daemon closes the idle connections after its handshake timeout...
        assert all(tcp_closed_by_peer(s, 5) for s in idle)
    finally:
        for s in idle:
            s.close()
    # ... and the slots are free again.
    s = d.wait_for(lambda s: s["connections"]["open"] == 1)  # just this request
    assert s["connections"]["max"] == 3
    drive_and_check(d, 0.35)
