"""daemon/http_rules.py: requests are checked before any route runs."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from hypothesis import given, strategies as st

from gravity_led.daemon.http_rules import Checked, Refusal, check_request, static_name

UPGRADE = [("Host", "pi.local:5678"), ("Upgrade", "websocket"), ("Connection", "Upgrade")]


def test_a_handshake_passes_with_its_parts():
    c = check_request("GET", "/ws?token=abc", [*UPGRADE, ("Origin", "https://pi.local:5678"), ("authorization", "Bearer abc12345")])
    assert c == Checked("GET", "/ws", "/ws?token=abc", "pi.local:5678", "https://pi.local:5678", "Bearer abc12345", True)
    assert not c.head


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE", "get", "BREW"])
def test_only_get_and_head(method):
    r = check_request(method, "/status", [("Host", "pi")])
    assert isinstance(r, Refusal) and r.status == HTTPStatus.METHOD_NOT_ALLOWED
    assert r.headers == (("Allow", "GET, HEAD"),)


def test_head_is_allowed_and_never_an_upgrade():
    c = check_request("HEAD", "/", UPGRADE)
    assert isinstance(c, Checked) and c.head and not c.upgrade


@pytest.mark.parametrize("name", ["Host", "Origin", "Authorization", "origin", "HOST"])
def test_a_repeated_header_is_400(name):
    value = {"host": "pi:5678", "origin": "http://pi:5678", "authorization": "Bearer abcdefgh"}[name.lower()]
    headers = [("Host", "pi:5678"), (name, value), (name, value)] if name.lower() != "host" else [(name, value), (name, value)]
    r = check_request("GET", "/", headers)
    assert isinstance(r, Refusal) and r.status == HTTPStatus.BAD_REQUEST
    assert r.reason.lower() == f"repeated {name.lower()} header"


@pytest.mark.parametrize(
    "host, ok",
    [
        ("pi.local:5678", True),
        ("192.168.1.7", True),
        ("[::1]:5678", True),
        ("[fe80::1]", True),
        ("pi.local.", True),
        ("[::1", False),
        ("::1]", False),
        ("[]", False),
        ("pi:99999", False),
        ("pi:", False),
        ("", False),
        ("pi local", False),
        ("pi/evil", False),
        ("pi\x00", False),
        ("p\u00ee", False),
        ("pi:5678:1", False),
    ],
)
def test_host_syntax(host, ok):
    r = check_request("GET", "/", [("Host", host)])
    assert isinstance(r, Checked) is ok, r
    if not ok:
        assert r == Refusal(HTTPStatus.BAD_REQUEST, "malformed Host header")


@pytest.mark.parametrize(
    "origin, ok",
    [
        ("http://pi.local:5678", True),
        ("https://[::1]:5678", True),
        ("null", True),  # well formed; the policy (403) refuses it
        ("chrome-extension://abcdef", True),
        ("http://[::1", False),
        ("http://", False),
        ("pi.local", False),
        ("http://pi.local:5678/path", False),
        ("http://pi:70000", False),
        ("", False),
        ("http://pi\r\n", False),
    ],
)
def test_origin_syntax(origin, ok):
    r = check_request("GET", "/", [("Host", "pi"), ("Origin", origin)])
    assert isinstance(r, Checked) is ok, r
    if not ok:
        assert r == Refusal(HTTPStatus.BAD_REQUEST, "malformed Origin header")


@pytest.mark.parametrize("auth, ok", [("Bearer abc", True), ("Basic dXNlcjpwYXNz", True), ("", False), ("Bearer \u00e9t\u00e9", False), ("Bearer a\tb", False), (" Bearer x", False)])
def test_authorization_syntax(auth, ok):
    assert isinstance(check_request("GET", "/", [("Authorization", auth)]), Checked) is ok


@pytest.mark.parametrize(
    "path, name",
    [
        ("/", "index.html"),
        ("/app.js", "app.js"),
        ("/style.css", "style.css"),
        ("/icon.svg", "icon.svg"),
        ("/../server.py", None),
        ("/web/app.js", None),
        ("/.hidden", None),
        ("/app.js\x00.png", None),
        ("/" + "a" * 64, "a" * 64),
        ("/" + "a" * 65, None),
        ("/" + "a" * 300, None),
        ("", None),
        ("*", None),
        ("http://evil/app.js", None),
        ("/%2e%2e%2fserver.py", None),
        ("/app.js/", None),
    ],
)
def test_static_name(path, name):
    assert static_name(path) == name


@given(st.text(max_size=300), st.lists(st.tuples(st.sampled_from(["Host", "Origin", "Authorization", "Upgrade", "X"]), st.text(max_size=40)), max_size=6), st.sampled_from(["GET", "HEAD", "POST", ""]))
def test_any_request_is_checked_or_refused_never_raises(target, headers, method):
    r = check_request(method, target, headers)
    assert isinstance(r, (Checked, Refusal))
    static_name(target)


def test_plain_http_to_the_tls_port_is_told_the_https_url():
    # Issue 22.5: curl and browsers try http:// first.
    from gravity_led.daemon.http_rules import looks_like_tls, plain_http_refusal

    assert looks_like_tls(b"\x16\x03\x01\x02\x00") and not looks_like_tls(b"GET / HTTP/1.1\r\n")
    answer = plain_http_refusal(b"GET /status HTTP/1.1\r\nHost: gravity.local:80\r\n\r\n", port=5678, local_host="10.0.0.5")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"Connection: close" in head
    assert body == b"This port speaks HTTPS only: open https://gravity.local:5678/ instead.\n"
    assert f"Content-Length: {len(body)}".encode() in head
    # A Host that is not a host name is not repeated: the address it reached is used.
    for host in (b"evil<script>", b"a b", b"x\x00y"):
        body = plain_http_refusal(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n", port=1, local_host="::1").partition(b"\r\n\r\n")[2]
        assert body == b"This port speaks HTTPS only: open https://[::1]:1/ instead.\n"
    assert plain_http_refusal(b"HEAD / HTTP/1.0\r\n\r\n", port=1, local_host="10.0.0.5").endswith(b"https://10.0.0.5:1/ instead.\n")
    assert plain_http_refusal(b"\x00\x01garbage", port=1, local_host="h") is None
