"""The phone page end to end: the daemon on loopback, Debian's Chromium headless.

Playwright drives /usr/bin/chromium (never a downloaded browser).  The page
gets no real sensor, so each test feeds it ``devicemotion`` events with
chosen ``accelerationIncludingGravity`` vectors and reads the LED duties
back from the daemon's ``GET /status``.
"""

from __future__ import annotations

import json
import math
import os
import ssl
import struct
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
G = 9.81
SCREENSHOTS = Path(__file__).parent / "screenshots"
BUSY_TEXT = "LEDs in use by another client"
# Traffic for this made-up name goes to loopback, but the page's origin is not
# "localhost", so Chromium treats it as a plain-http LAN page (not secure).
LAN_NAME = "pi.gravity-led.test"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM), reason=f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    ),
]

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--host-resolver-rules=MAP {LAN_NAME} 127.0.0.1",
            ],
        )
        yield b
        b.close()


PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
def new_page(browser):
    contexts = []

    def make(**options):
        ctx = browser.new_context(**{**PHONE, **options})
        ctx.set_default_timeout(10_000)
        contexts.append(ctx)
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        return page

    errors: list[str] = []
    yield make
    for ctx in contexts:
        ctx.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


# -- helpers -------------------------------------------------------------------

FAKE_SENSOR = """(g) => {
    window.__g = g;
    if (!window.__fake) {
        window.__fake = setInterval(() => window.dispatchEvent(new DeviceMotionEvent('devicemotion', {
            accelerationIncludingGravity: window.__g, interval: 16})), 16);
    }
}"""


def feed(page, x, y, z):
    """Make the page's (fake) sensor report this vector ~60 times a second from now on."""
    page.evaluate(FAKE_SENSOR, {"x": x, "y": y, "z": z})


def roll(deg: float, *, ios: bool = False) -> tuple[float, float, float]:
    """accelerationIncludingGravity for a phone lying flat, rolled right by ``deg`` (left if negative).

    Right edge down: the reaction to gravity leans to -x (W3C/Android signs);
    WebKit reports every axis with the opposite sign.
    """
    r = math.radians(deg)
    v = (-G * math.sin(r), 0.0, G * math.cos(r))
    return tuple(-c for c in v) if ios else v


def https_context(cafile: str | None = None) -> ssl.SSLContext:
    if cafile:
        return ssl.create_default_context(cafile=cafile)
    return ssl._create_unverified_context()


def get_status(http_url: str, cafile: str | None = None, query: str = "") -> dict:
    ctx = https_context(cafile) if http_url.startswith("https:") else None
    with urllib.request.urlopen(http_url + "/status" + query, timeout=5, context=ctx) as r:
        return json.loads(r.read())


def wait_status(http_url: str, pred, *, timeout: float = 5.0, cafile: str | None = None, query: str = "") -> dict:
    end = time.monotonic() + timeout
    while True:
        st = get_status(http_url, cafile, query)
        if pred(st):
            return st
        if time.monotonic() > end:
            raise AssertionError(f"daemon status never matched within {timeout} s; last: {st}")
        time.sleep(0.05)


def leds(st: dict) -> tuple[float, float]:
    return st["leds"]["right"], st["leds"]["left"]


def near(value: float, target: float, tol: float = 0.03) -> bool:
    return abs(value - target) <= tol


def open_page(page, d, path: str = "/"):
    page.goto(d.http_url + path)
    page.wait_for_function("() => window.gravityLed !== undefined")


def start(page):
    page.get_by_role("button", name="Start").click()
    page.get_by_role("button", name="Stop").wait_for()


def wait_text(page, selector: str, text: str, timeout: float = 10_000):
    page.wait_for_function(
        "([sel, text]) => { const e = document.querySelector(sel); return !!e && !e.closest('[hidden]') && e.textContent.includes(text); }",
        arg=[selector, text],
        timeout=timeout,
    )


# -- the tests -----------------------------------------------------------------


def test_tilting_right_and_left_lights_the_matching_led(start_daemon, new_page):
    d = start_daemon()
    page = new_page()
    open_page(page, d)
    assert page.locator("#notice").is_hidden(), "a loopback http page is a secure context: no warning expected"
    assert page.evaluate("() => window.isSecureContext")
    feed(page, *roll(0))
    start(page)
    st = wait_status(d.http_url, lambda s: s["client"] is not None and s["frames"]["accepted"] > 0)
    assert leds(st) == (0.0, 0.0), "a level phone lights nothing"

    feed(page, *roll(30))  # right edge down 30 degrees: sin 30 = 0.5
    st = wait_status(d.http_url, lambda s: near(s["leds"]["right"], 0.5))
    assert st["leds"]["left"] == 0.0
    # The page shows its own tilt and the daemon's telemetry.
    wait_text(page, "#tilt-text", "30° right")
    wait_text(page, "#pct-right", "50%")
    wait_text(page, "#pct-left", "0%")
    wait_text(page, "#conn-text", "Connected")

    feed(page, *roll(-45))  # left edge down
    st = wait_status(d.http_url, lambda s: near(s["leds"]["left"], math.sin(math.radians(45))))
    assert st["leds"]["right"] == 0.0
    wait_text(page, "#tilt-text", "45° left")
    wait_text(page, "#pct-left", "71%")
    assert st["frames"]["rejected"] == 0, "every frame the page sent was valid"

    # Stop releases the LEDs at once.
    page.get_by_role("button", name="Stop").click()
    wait_status(d.http_url, lambda s: s["client"] is None)


@pytest.mark.parametrize(
    ("ios", "landscape"),
    [(True, False), (False, True), (True, True)],
    ids=["ios-portrait", "android-landscape", "ios-landscape"],
)
def test_right_is_right_on_ios_and_in_landscape(start_daemon, new_page, ios, landscape):
    """iOS reports the opposite signs; landscape swaps the device axes: right must stay right."""
    d = start_daemon()
    options = {}
    if ios:
        options["user_agent"] = IPHONE_UA
    if landscape:
        options["viewport"] = {"width": 844, "height": 390}
    page = new_page(**options)
    open_page(page, d)
    angle = page.evaluate("() => window.gravityLed.screenAngle()")
    assert angle == (90 if landscape else 0)
    assert page.evaluate("() => window.gravityLed.isWebKitMotion()") is ios

    def held(deg: float) -> tuple[float, float, float]:
        """Phone held upright in front and turned like a steering wheel, clockwise by ``deg``."""
        r = math.radians(deg)
        if landscape:  # landscape-primary: the device's top points left, its +x up
            v = (G * math.cos(r), G * math.sin(r), 0.0)
        else:
            v = (-G * math.sin(r), G * math.cos(r), 0.0)
        return tuple(-c for c in v) if ios else v

    feed(page, *held(30))
    start(page)
    st = wait_status(d.http_url, lambda s: near(s["leds"]["right"], 0.5))
    assert st["leds"]["left"] == 0.0
    feed(page, *held(-60))
    st = wait_status(d.http_url, lambda s: near(s["leds"]["left"], math.sin(math.radians(60))))
    assert st["leds"]["right"] == 0.0
    wait_text(page, "#tilt-text", "60° left")


def test_busy_message_when_another_client_holds_the_leds(start_daemon, new_page):
    from websockets.sync.client import connect

    d = start_daemon()
    with connect(d.url + "/", open_timeout=5) as other:
        other.send(struct.pack("<3f", 0.0, 5.0, 5.0))
        wait_status(d.http_url, lambda s: s["client"] is not None and s["leds"]["right"] > 0)
        page = new_page()
        open_page(page, d)
        feed(page, *roll(-30))
        start(page)
        wait_text(page, "#notice-title", BUSY_TEXT)
        wait_text(page, "#conn-text", "Busy")
        assert page.locator("#notice").is_visible()
        st = get_status(d.http_url)
        assert st["leds"]["left"] == 0.0, "the busy page must not drive the LEDs"
    # Once the other client lets go, the page takes over by itself.
    wait_status(d.http_url, lambda s: near(s["leds"]["left"], 0.5), timeout=10)
    wait_text(page, "#conn-text", "Connected")
    assert page.locator("#notice").is_hidden()


def test_hidden_page_releases_the_leds_and_comes_back(start_daemon, new_page):
    d = start_daemon()
    page = new_page()
    open_page(page, d)
    feed(page, *roll(30))
    start(page)
    wait_status(d.http_url, lambda s: near(s["leds"]["right"], 0.5))
    set_hidden = """(hidden) => {
        Object.defineProperty(document, 'hidden', {value: hidden, configurable: true});
        Object.defineProperty(document, 'visibilityState', {value: hidden ? 'hidden' : 'visible', configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }"""
    page.evaluate(set_hidden, True)
    wait_status(d.http_url, lambda s: s["client"] is None)
    wait_text(page, "#conn-text", "Paused")
    page.evaluate(set_hidden, False)
    wait_status(d.http_url, lambda s: s["client"] is not None and near(s["leds"]["right"], 0.5))


def test_daemon_gone_then_back_reconnects(start_daemon, new_page):
    d = start_daemon()
    page = new_page()
    open_page(page, d)
    feed(page, *roll(30))
    start(page)
    wait_status(d.http_url, lambda s: near(s["leds"]["right"], 0.5))
    port = d.port
    d.stop()
    wait_text(page, "#notice-title", "Connection to the daemon lost")
    wait_text(page, "#conn-text", "Offline")
    d2 = start_daemon(port=port)
    assert d2.port == port
    wait_status(d2.http_url, lambda s: near(s["leds"]["right"], 0.5), timeout=15)
    wait_text(page, "#conn-text", "Connected")


def test_no_motion_sensor_says_so_and_releases(start_daemon, new_page):
    d = start_daemon()
    page = new_page()
    open_page(page, d)
    start(page)  # no fake sensor: headless Chromium has no accelerometer
    wait_text(page, "#notice-title", "No motion sensor")
    page.get_by_role("button", name="Start").wait_for()
    wait_status(d.http_url, lambda s: s["client"] is None)


def test_plain_http_on_a_lan_name_explains_https(start_daemon, new_page):
    d = start_daemon()
    page = new_page()
    page.goto(f"http://{LAN_NAME}:{d.port}/")
    page.wait_for_function("() => window.gravityLed !== undefined")
    assert page.evaluate("() => window.isSecureContext") is False
    wait_text(page, "#notice-title", "This page needs HTTPS")
    link = page.locator("#notice a", has_text="https://")
    assert link.get_attribute("href") == f"https://{LAN_NAME}:{d.port}/"
    # Start cannot help here: it says the same again and leaves the LEDs alone.
    page.get_by_role("button", name="Start").click()
    wait_text(page, "#notice-title", "This page needs HTTPS")
    page.get_by_role("button", name="Start").wait_for()
    assert get_status(d.http_url)["client"] is None


def test_https_page_and_wss_with_a_generated_certificate(start_daemon, new_page, tmp_path):
    from daemon.tls import make_cert

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_cert(hosts=["localhost", "127.0.0.1"], cert_path=cert, key_path=key)
    d = start_daemon("--certfile", str(cert), "--keyfile", str(key), scheme="https")
    base = f"https://127.0.0.1:{d.port}"
    page = new_page(ignore_https_errors=True)
    page.goto(base + "/")
    page.wait_for_function("() => window.gravityLed !== undefined")
    assert page.evaluate("() => window.gravityLed.wsUrl()") == f"wss://127.0.0.1:{d.port}/"
    feed(page, *roll(-30))
    start(page)
    st = wait_status(base, lambda s: near(s["leds"]["left"], 0.5), cafile=str(cert))
    assert st["leds"]["right"] == 0.0
    wait_text(page, "#pct-left", "50%")


def test_token_in_page_url_is_passed_to_the_websocket(start_daemon, new_page):
    d = start_daemon()
    page = new_page()
    open_page(page, d, "/?token=s3cr%C3%A9t%20x")
    assert page.evaluate("() => window.gravityLed.wsUrl()") == f"ws://127.0.0.1:{d.port}/?token=s3cr%C3%A9t%20x"


def test_axis_transform_is_a_rotation(start_daemon, new_page):
    """The vector sent keeps its length (y/|v| stays the sine of the roll) for every screen angle."""
    d = start_daemon()
    page = new_page()
    open_page(page, d)
    results = page.evaluate(
        """() => [0, 90, 180, 270].map((a) => window.gravityLed.toDaemon({x: 1.5, y: -2.5, z: 9.5}, a, false, false))"""
    )
    n = math.hypot(1.5, -2.5, 9.5)
    for v in results:
        assert math.isclose(math.hypot(*v), n, rel_tol=1e-9)
    assert results[0] == [-2.5, -1.5, 9.5]  # portrait: (y, -x, z)
    # Null readings (no sensor) and all-zero vectors are never sent.
    assert page.evaluate("() => window.gravityLed.toDaemon({x: null, y: null, z: null}, 0, false, false)") is None
    assert page.evaluate("() => window.gravityLed.toDaemon({x: 0, y: 0, z: 0}, 0, false, false)") is None


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_phone_screenshot(start_daemon, new_page, scheme):
    """The picture in the README: a phone rolled 30 degrees right, live telemetry."""
    d = start_daemon()
    page = new_page(color_scheme=scheme)
    open_page(page, d)
    feed(page, *roll(30))
    start(page)
    wait_status(d.http_url, lambda s: near(s["leds"]["right"], 0.5))
    wait_text(page, "#pct-right", "50%")
    wait_text(page, "#foot", "frames/s")
    # The README's picture shows what a phone sees, not this test's port and
    # its fake sensor's rate (and stays the same from run to run).
    page.evaluate(
        """(want) => {
            const f = document.querySelector('#foot');
            const pin = () => { if (f.textContent !== want) f.textContent = want; };
            pin();
            new MutationObserver(pin).observe(f, {childList: true, characterData: true, subtree: true});
        }""",
        "Sending 60 frames/s to wss://pi.local:5678/",
    )
    page.wait_for_timeout(300)  # let the 90 ms bar transitions finish
    SCREENSHOTS.mkdir(exist_ok=True)
    out = SCREENSHOTS / ("phone.png" if scheme == "light" else "phone-dark.png")
    page.screenshot(path=str(out))
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (390 * 2, 844 * 2)


def test_permission_denied_says_so_and_never_connects(start_daemon, new_page):
    """iOS asks from the Start tap; a refusal is said plainly and the LEDs stay free."""
    d = start_daemon()
    page = new_page(user_agent=IPHONE_UA)
    page.add_init_script("DeviceMotionEvent.requestPermission = () => Promise.resolve('denied');")
    open_page(page, d)
    page.get_by_role("button", name="Start").click()
    wait_text(page, "#notice-title", "Motion access was denied")
    wait_text(page, "#notice-text", "Settings")
    page.get_by_role("button", name="Start").wait_for()
    assert get_status(d.http_url)["client"] is None


def test_token_missing_says_so_and_token_in_url_works(start_daemon, new_page, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("correct-horse-battery\n")
    token_file.chmod(0o600)
    d = start_daemon("--token-file", str(token_file))
    page = new_page()
    open_page(page, d)  # the page itself needs no token
    feed(page, *roll(30))
    page.get_by_role("button", name="Start").click()  # it may turn back into Start at once
    wait_text(page, "#notice-title", "The daemon needs a token")
    page.get_by_role("button", name="Start").wait_for()  # gave up: retrying cannot help

    page.goto(f"{d.http_url}/?token=correct-horse-battery")
    page.wait_for_function("() => window.gravityLed !== undefined")
    feed(page, *roll(30))
    start(page)
    # /status wants the token too.
    wait_status(d.http_url, lambda s: near(s["leds"]["right"], 0.5), query="?token=correct-horse-battery")
    wait_text(page, "#conn-text", "Connected")


def test_browser_without_motion_api_says_so(start_daemon, new_page):
    d = start_daemon()
    page = new_page()
    page.add_init_script("delete window.DeviceMotionEvent;")
    open_page(page, d)
    page.get_by_role("button", name="Start").click()
    wait_text(page, "#notice-title", "No motion sensor")
    wait_text(page, "#notice-text", "DeviceMotionEvent")
    assert get_status(d.http_url)["client"] is None
