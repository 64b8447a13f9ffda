"""The phone page in Debian's Chromium, headless.

Playwright drives /usr/bin/chromium (never a downloaded browser).

- The page's pure modules (daemon/web/motion.js, link.js) on a blank page,
  without a daemon: the axes against the table in docs/phones.md, the frame cap and
  the connection state machine with a fake clock.
- The page end to end with the daemon on loopback: the page gets no real
  sensor, so each test feeds it ``devicemotion`` events with chosen
  ``accelerationIncludingGravity`` vectors and reads the LED duties back from
  the daemon's ``GET /status``.

The docs' pictures are taken here too, into build/screenshots/ (the work
tree stays clean); docs/screenshots/ holds the copies docs/phones.md shows.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import struct
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.harness import G, ROOT, clean_env, get_status, roll, scaled, wait_status

CHROMIUM = "/usr/bin/chromium"
WEB = ROOT / "daemon" / "web"
SCREENSHOTS = ROOT / "build" / "screenshots"
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
def playwright():
    """One Playwright for the module: its sync API runs one at a time."""
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    b = playwright.chromium.launch(
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
ANDROID_UA = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36"
IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
def new_page(browser):
    contexts = []

    def make(**options):
        ctx = browser.new_context(**{**PHONE, **options})
        ctx.set_default_timeout(scaled(10_000))
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

# This machine has no accelerometer, and Chromium says so with one event of
# nulls (isTrusted) soon after a page listens.  A fake sensor stands in for a
# real one, so that event must not reach the page: a phone with a sensor never
# sends it.  (Listeners on the target run capturing ones first.)
HIDE_CHROMIUMS_EVENT = """() => {
    if (!window.__hidden) {
        window.__hidden = true;
        window.addEventListener('devicemotion', (e) => { if (e.isTrusted) e.stopImmediatePropagation(); }, true);
    }
}"""

FAKE_SENSOR = """(g) => {
    window.__g = g;
    if (!window.__fake) {
        window.__fake = setInterval(() => window.dispatchEvent(new DeviceMotionEvent('devicemotion', {
            accelerationIncludingGravity: window.__g, interval: 16})), 16);
    }
}"""


def feed(page, x, y, z):
    """Make the page's (fake) sensor report this vector ~60 times a second from now on."""
    page.evaluate(HIDE_CHROMIUMS_EVENT)
    page.evaluate(FAKE_SENSOR, {"x": x, "y": y, "z": z})


def stop_sensor(page):
    """The fake sensor stops reporting (as a phone's may while the page stays open)."""
    page.evaluate("() => { clearInterval(window.__fake); window.__fake = 0; }")


def reading(deg: float, *, ios: bool = False) -> tuple[float, float, float]:
    """accelerationIncludingGravity for a phone lying flat, rolled right by ``deg`` (left if negative).

    The page sends (screen_y, -screen_x, z) (docs/phones.md, "Axes"), so the browser's
    reading of the daemon's vector for that roll is (-y, x, z): right edge down,
    the reaction to gravity leans to -x (W3C/Android signs).  WebKit reports
    every axis with the opposite sign.
    """
    x, y, z = roll(deg)
    v = (-y, x, z)
    return tuple(-c for c in v) if ios else v


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


def driving_page(start_daemon, new_page, deg: float = 30, **page_options):
    """A daemon, and the page on it driving the LEDs with a phone rolled ``deg`` right."""
    d = start_daemon()
    page = new_page(**page_options)
    open_page(page, d)
    feed(page, *reading(deg))
    start(page)
    wait_status(d.http_url, lambda s: near(s["leds"]["right"], math.sin(math.radians(deg))))
    return d, page


def wait_text(page, selector: str, text: str, timeout: float = 10_000):
    page.wait_for_function(
        "([sel, text]) => { const e = document.querySelector(sel); return !!e && !e.closest('[hidden]') && e.textContent.includes(text); }",
        arg=[selector, text],
        timeout=scaled(timeout),
    )


# -- the page's pure modules on a blank page, no daemon --------------------------

BLANK = "http://page.test/"


@pytest.fixture
def blank(new_page):
    """A blank page on an origin that serves daemon/web's files (Playwright
    answers the requests; no daemon, no network), with motion.js and link.js
    imported as the page imports them: ``window.motion``, ``window.link``."""
    page = new_page()

    def serve(route):
        name = route.request.url[len(BLANK):].partition("?")[0]
        if name == "":
            route.fulfill(body="<!doctype html><title>blank</title>", content_type="text/html")
        elif "/" not in name and (WEB / name).is_file():
            route.fulfill(path=str(WEB / name), content_type="text/javascript" if name.endswith(".js") else None)
        else:
            route.fulfill(status=404, body="not found")

    page.route(BLANK + "**", serve)
    page.goto(BLANK)
    page.evaluate("async () => { window.motion = await import('/motion.js'); window.link = await import('/link.js'); }")
    return page


def readme_axes_table() -> list[dict]:
    """The rows of the table in docs/phones.md, "Axes: what the page sends, and why"."""
    text = (ROOT / "docs" / "phones.md").read_text()
    section = text.split("## Axes: what the page sends, and why", 1)[1].split("\n## ", 1)[0]

    def vec(cell: str) -> list[float]:
        return [float(c.replace("\u2212", "-")) for c in cell.strip("() ").split(",")]

    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].startswith("("):
            phone, got, sent, led = cells
            side, pct = re.fullmatch(r"(right|left) (\d+) %", led).groups()
            rows.append({"phone": phone, "reading": vec(got), "sent": vec(sent), "side": side, "pct": int(pct),
                         "webkit": "iPhone" in phone or "iPad" in phone, "angle": 90 if "landscape" in phone else 0})
    return rows


def test_motion_matches_the_readme_axes_table(blank):
    rows = readme_axes_table()
    assert len(rows) >= 4, rows
    for row in rows:
        g = dict(zip("xyz", row["reading"]))
        sent = blank.evaluate("([g, a, w]) => window.motion.toDaemon(g, a, w, false)", [g, row["angle"], row["webkit"]])
        assert sent == pytest.approx(row["sent"], abs=1e-9), row
        duty = sent[1] / math.hypot(*sent)  # what the daemon's default mapping lights
        assert ("right" if duty > 0 else "left") == row["side"] and round(abs(duty) * 100) == row["pct"], row
        tilt = blank.evaluate("(d) => window.motion.tiltDeg(d)", sent)
        assert math.sin(math.radians(tilt)) == pytest.approx(duty), row


def test_motion_turns_to_the_screen_keeps_length_and_signs(blank):
    v = {"x": 1.5, "y": -2.5, "z": 9.5}
    out = blank.evaluate(
        "(v) => [0, 90, 180, 270, 45, 330].map((a) => window.motion.toDaemon(v, a, false, false))", v
    )
    n = math.hypot(1.5, -2.5, 9.5)
    for d in out:
        assert math.hypot(*d) == pytest.approx(n, rel=1e-12)  # a rotation: y/|v| is the sine of the roll
    # (screen_y, -screen_x, z) for each quarter turn of the screen
    assert out[:4] == [[-2.5, -1.5, 9.5], [1.5, -2.5, 9.5], [2.5, 1.5, 9.5], [-1.5, 2.5, 9.5]]
    webkit, swapped = blank.evaluate(
        "(v) => [window.motion.toDaemon(v, 0, true, false), window.motion.toDaemon(v, 0, false, true)]", v
    )
    assert webkit == [2.5, 1.5, -9.5]  # every axis negated first
    assert swapped == [-2.5, 1.5, 9.5]  # "swap left and right" flips the daemon's y only


def test_motion_sends_nothing_unusable_and_nothing_that_reads_as_text(blank):
    cases = blank.evaluate("""() => {
        const t = (g) => window.motion.toDaemon(g, 0, false, false);
        return {
            nulls: t({x: null, y: null, z: null}), none: t(null), zero: t({x: 0, y: 0, z: 0}),
            nan: t({x: NaN, y: 1, z: 1}), inf: t({x: Infinity, y: 1, z: 1}), str: t({x: '1', y: 1, z: 1}),
            tiny: t({x: 5e-4, y: -5e-4, z: 9.8}), huge: t({x: 0, y: 5000, z: -5000}),
        };
    }""")
    assert cases["nulls"] is None and cases["none"] is None and cases["zero"] is None
    assert cases["nan"] is None and cases["inf"] is None and cases["str"] is None
    assert cases["tiny"] == [0, 0, 9.8]  # below 0.001 m/s^2: 0
    assert cases["huge"] == [1000, 0, -1000]  # clamped to +-1000 m/s^2
    # Chromium's "no accelerometer" event carries no number at all; a reading that is unusable does.
    none = blank.evaluate("""() => [null, {x: null, y: null, z: null}, {}, {x: 0, y: 0, z: 0}, {x: null, y: 1, z: 9.8}]
        .map(window.motion.noAccelerometer)""")
    assert none == [True, True, True, False, False]


def test_motion_screen_angle_and_webkit_detection(blank):
    angles = blank.evaluate("() => [-90, 450, 359.6, 180, undefined, NaN, '90'].map(window.motion.normalAngle)")
    assert angles == [270, 90, 0, 180, 0, 0, 0]
    android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36"
    ipad_desktop = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"
    got = blank.evaluate(
        "(cases) => cases.map(([ua, touch]) => window.motion.isWebKitMotion(ua, touch))",
        [[IPHONE_UA, 5], [ipad_desktop, 5], [ipad_desktop, 0], [android, 5], ["", 0]],
    )
    assert got == [True, True, False, False, False]  # a Mac without touch is a Mac, and Chrome on Android is not WebKit


def test_link_trust_steps_are_the_phones_own_and_link_the_daemons_downloads(blank):
    from gravity_led.daemon.mobileconfig import CA_PATH, PROFILE_PATH

    kinds = blank.evaluate(
        "(uas) => uas.map(([ua, touch]) => window.link.phoneKind(ua, touch))",
        [[IPHONE_UA, 5], ["Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Safari/605.1.15", 5], [ANDROID_UA, 5], ["Mozilla/5.0 (X11; Linux x86_64)", 0]],
    )
    assert kinds == ["ios", "ios", "android", "other"]
    assert blank.evaluate("() => [window.link.PROFILE_PATH, window.link.CA_PATH]") == [PROFILE_PATH, CA_PATH]
    steps = blank.evaluate("(k) => ['ios', 'android', 'other'].map((k) => window.link.trustSteps(k))", None)
    assert list(steps[0]) == ["ios"] and list(steps[1]) == ["android"] and list(steps[2]) == ["ios", "android"]

    def text(kind: str) -> str:
        return " ".join(p if isinstance(p, str) else p["link"] for step in steps[2][kind] for p in step)

    def links(kind: str) -> list[str]:
        return [p["href"] for step in steps[2][kind] for p in step if isinstance(p, dict)]

    assert links("ios") == [PROFILE_PATH] and links("android") == [CA_PATH]
    assert "Settings \u203a General \u203a VPN & Device Management" in text("ios")
    assert "Settings \u203a General \u203a About \u203a Certificate Trust Settings" in text("ios") and "full trust" in text("ios")
    assert "Settings \u203a Security \u203a Encryption & credentials \u203a Install a certificate \u203a CA certificate" in text("android")


def test_link_frame_and_messages_match_the_daemons_protocol(blank):
    from gravity_led.daemon.protocol import FrameCounts, FrameError, LedLevels, StateMessage, encode_binary, encode_error

    data = blank.evaluate("(d) => Array.from(new Uint8Array(window.link.frame(d)))", [1.5, -2.5, 9.5])
    assert bytes(data) == encode_binary((1.5, -2.5, 9.5))
    state = StateMessage(leds=LedLevels(0.25, 0.0), client="x", frames=FrameCounts(1, 0), rate_hz=60).encode()
    error = encode_error(FrameError("not-a-number", "'x' is not a number"), suppressed=3)
    got = blank.evaluate("(m) => m.map(window.link.readMessage)", [state, error, "{", "[]", '{"type": "other"}'])
    assert got[0] == {"type": "state", "leds": {"right": 0.25, "left": 0.0}}
    assert got[1] == {"type": "error", "message": "'x' is not a number", "suppressed": 3}
    assert got[2:] == [None, None, None]
    assert blank.evaluate("() => window.link.SUBSCRIBE") == '{"type":"subscribe","rate":10}'
    urls = blank.evaluate("""() => [
        window.link.wsUrl({protocol: 'http:', host: '127.0.0.1:5678', search: ''}),
        window.link.wsUrl({protocol: 'https:', host: 'pi.local:5678', search: '?token=s3cr%C3%A9t%20x'}),
    ]""")
    assert urls == ["ws://127.0.0.1:5678/", "wss://pi.local:5678/?token=s3cr%C3%A9t%20x"]


PACE = """([hz, n]) => {
    // A sensor at hz (fake clock, ms) feeding the Pacer; a timer fires at dueAt.
    const p = new window.link.Pacer();
    const sent = [];  // [t, i]
    let timer = null;
    const fire = (t) => { const v = p.fire(t); if (v !== null) sent.push([t, v[0]]); timer = null; };
    for (let i = 0; i < n; i++) {
        const t = i * 1000 / hz;
        if (timer !== null && timer <= t) fire(timer);
        const v = p.offer([i], t);
        if (v !== null) sent.push([t, v[0]]);
        else if (timer === null) timer = p.dueAt;
    }
    if (timer !== null) fire(timer);
    return sent;
}"""


@pytest.mark.parametrize("hz", [200, 1000, 60])
def test_link_pacer_caps_at_100_hz_and_sends_the_newest_vector(blank, hz):
    n = hz  # one second of readings
    period = 1000 / hz
    sent = blank.evaluate(PACE, [hz, n])
    times = [t for t, _ in sent]
    assert all(b - a >= 10 - 1e-9 for a, b in zip(times, times[1:])), "at most one frame per 10 ms"
    assert len(sent) <= (n - 1) * period / 10 + 2
    if hz <= 100:
        assert [i for _, i in sent] == list(range(n)), "below the cap every reading goes, at once"
        assert times == pytest.approx([i * period for i in range(n)])
    else:
        assert len(sent) >= (n - 1) * period / 10, "the cap is reached, not undercut"
    assert sent[-1][1] == n - 1, "the last reading is never left behind"
    for t, i in sent:  # what goes is the newest reading at that time, at most 10 ms old
        at, next_at = i * 1000 / hz, (i + 1) * 1000 / hz  # as the JavaScript computes them
        assert at <= t < at + 10 + 1e-9 and (i == n - 1 or next_at >= t)


LINK = """(steps) => {
    const l = new window.link.Link({random: () => 0.5});  // no jitter
    return steps.map(([name, ...args]) => ({cmds: l[name](...args), view: l.view}));
}"""


def run_link(page, *steps) -> list[dict]:
    return page.evaluate(LINK, [list(s) for s in steps])


def test_link_connects_backs_off_and_resets_when_stable(blank):
    r = run_link(
        blank,
        ("start",), ("opened", 1, 0), ("closed", 1, 100, 1006, ""),  # lost after 0.1 s: back off 0.5 s
        ("due",), ("closed", 2, 700, 1006, ""), ("checked", "gone"),  # handshake failed: ask why, then 1 s
        ("due",), ("closed", 3, 1800, 1006, ""), ("checked", "refused"),  # 2 s
        ("due",), ("closed", 4, 3900, 1006, ""), ("checked", "gone"),  # 4 s
        ("due",), ("closed", 5, 8000, 1006, ""), ("checked", "gone"),  # 8 s
        ("due",), ("closed", 6, 16100, 1006, ""), ("checked", "gone"),  # stays at 8 s
        ("due",), ("opened", 7, 24200), ("closed", 7, 27300, 1001, "going away"),  # open 3.1 s: stable, back to 0.5 s
    )
    assert r[0]["cmds"] == [{"do": "cancel"}, {"do": "connect", "id": 1}] and r[0]["view"] == {"state": "connecting", "again": False}
    assert r[1]["cmds"] == [{"do": "send", "data": '{"type":"subscribe","rate":10}'}] and r[1]["view"]["state"] == "open"
    assert r[2]["cmds"] == [{"do": "wait", "ms": 500}]
    assert r[2]["view"] == {"state": "lost", "why": "closed", "code": 1006, "reason": "", "retryMs": 500, "everOpen": True}
    assert r[3]["cmds"] == [{"do": "cancel"}, {"do": "connect", "id": 2}] and r[3]["view"]["again"] is True
    assert r[4]["cmds"] == [{"do": "check"}] and r[4]["view"] == {"state": "checking"}
    assert r[5]["view"] == {"state": "lost", "why": "gone", "retryMs": 1000, "everOpen": True}
    waits = [s["cmds"][0]["ms"] for s in r if s["cmds"] and s["cmds"][0]["do"] == "wait"]
    assert waits == [500, 1000, 2000, 4000, 8000, 8000, 500]
    assert r[8]["view"]["why"] == "refused"
    assert r[-1]["view"] == {"state": "lost", "why": "closed", "code": 1001, "reason": "going away", "retryMs": 500, "everOpen": True}


def test_link_busy_token_pause_stop_and_stale_reports(blank):
    r = run_link(
        blank,
        ("start",), ("opened", 1, 0), ("closed", 1, 10, 1013, ""),  # busy: ask again in 5 s
        ("closed", 1, 20, 1006, ""), ("opened", 1, 30),  # reports about that socket again: ignored
        ("due",), ("opened", 2, 5000), ("pause",),  # hidden: close, and ignore that socket from now on
        ("closed", 2, 5010, 1000, "page hidden"), ("due",), ("resume",),
        ("closed", 4, 5100, 1006, ""), ("checked", "token"),  # the daemon wants a token: give up
        ("due",), ("resume",), ("stop",),
    )
    assert r[2]["cmds"] == [{"do": "wait", "ms": 5000}]
    assert r[2]["view"] == {"state": "busy", "reason": "LEDs in use by another client", "retryMs": 5000}
    assert r[3]["cmds"] == [] and r[4]["cmds"] == [] and r[4]["view"]["state"] == "busy"
    assert r[5]["cmds"][-1] == {"do": "connect", "id": 2}
    assert r[7]["cmds"] == [{"do": "cancel"}, {"do": "close", "reason": "page hidden"}] and r[7]["view"] == {"state": "paused"}
    assert r[8]["cmds"] == [] and r[9]["cmds"] == [] and r[9]["view"] == {"state": "paused"}
    assert r[10]["cmds"] == [{"do": "cancel"}, {"do": "connect", "id": 4}]  # a new id: 3 went with the pause
    assert r[11]["cmds"] == [{"do": "check"}]
    assert r[12]["cmds"] == [] and r[12]["view"] == {"state": "token"}
    assert r[13]["cmds"] == [] and r[14]["cmds"] == [], "after a token refusal nothing retries"
    assert r[15]["cmds"] == [{"do": "cancel"}] and r[15]["view"] == {"state": "idle"}  # nothing open to close
    stop_open = run_link(blank, ("start",), ("stop",), ("opened", 1, 5))
    assert stop_open[1]["cmds"] == [{"do": "cancel"}, {"do": "close", "reason": "stopped"}]
    assert stop_open[2]["cmds"] == [] and stop_open[2]["view"] == {"state": "idle"}


# -- the page end to end, with the daemon -----------------------------------------------


def test_page_modules_are_served_as_javascript(daemon):
    """Module scripts need a JavaScript MIME type (the daemon also sends nosniff)."""
    assert re.search(r'<script type="module" src="app.js">', daemon.get("/")[1].decode())
    for name in ("app.js", "motion.js", "link.js"):
        with urllib.request.urlopen(f"{daemon.http_url}/{name}", timeout=5) as r:
            assert r.headers.get_content_type() in ("text/javascript", "application/javascript"), (name, r.headers["Content-Type"])
            assert r.headers["X-Content-Type-Options"] == "nosniff"


SENSOR_BURST = """async ([hz, n, g, last]) => {
    clearInterval(window.__fake);  // the 60 Hz fake sensor stops
    window.__fake = 0;
    // A sensor clocked at hz: each timer tick dispatches every reading due by
    // then, as a busy main thread gets queued devicemotion events.
    const fire = (v) => window.dispatchEvent(new DeviceMotionEvent('devicemotion', {accelerationIncludingGravity: v, interval: 1000 / hz}));
    const sent0 = window.gravityLed.state.sent;
    return await new Promise((resolve) => {
        const t0 = performance.now();
        let k = 0;
        const id = setInterval(() => {
            const due = Math.min(n, Math.floor((performance.now() - t0) * hz / 1000) + 1);
            while (k < due) { fire(k === n - 1 ? last : g); k += 1; }
            if (k === n) {
                clearInterval(id);
                resolve({span: performance.now() - t0, sent0});
            }
        }, 1000 / hz);
    });
}"""


def test_page_caps_a_200_hz_sensor_at_100_frames_a_second(start_daemon, new_page):
    """A 200 Hz phone: the daemon receives at most one frame per 10 ms of the
    burst (plus the first), and the burst's last reading arrives."""
    d, page = driving_page(start_daemon, new_page, 10)
    burst = page.evaluate(SENSOR_BURST, [200, 200, dict(zip("xyz", reading(10))), dict(zip("xyz", reading(30)))])
    before = burst["sent0"]
    # Quiet again: the daemon has every frame the page sent (the last one included).
    page.wait_for_function("() => window.gravityLed.state.sendTimer === 0")
    sent = page.evaluate("() => window.gravityLed.state.sent")
    st = wait_status(d.http_url, lambda s: s["frames"]["accepted"] == sent)
    assert near(st["leds"]["right"], 0.5), "the last reading of the burst was sent"
    assert st["frames"]["rejected"] == 0
    frames = sent - before
    cap = burst["span"] / 10 + 2  # one per 10 ms, the first at once and the last held back
    assert 0 < frames <= cap, f"{frames} frames in {burst['span']:.0f} ms from 200 readings"
    assert frames < 200 * 0.75, "200 readings were not all sent"


def test_tilting_right_and_left_lights_the_matching_led(start_daemon, new_page):
    d = start_daemon()
    page = new_page()
    open_page(page, d)
    assert page.locator("#notice").is_hidden(), "a loopback http page is a secure context: no warning expected"
    assert page.evaluate("() => window.isSecureContext")
    feed(page, *reading(0))
    start(page)
    st = wait_status(d.http_url, lambda s: s["client"] is not None and s["frames"]["accepted"] > 0)
    assert leds(st) == (0.0, 0.0), "a level phone lights nothing"

    feed(page, *reading(30))  # right edge down 30 degrees: sin 30 = 0.5
    st = wait_status(d.http_url, lambda s: near(s["leds"]["right"], 0.5))
    assert st["leds"]["left"] == 0.0
    # The page shows its own tilt and the daemon's telemetry.
    wait_text(page, "#tilt-text", "30° right")
    wait_text(page, "#pct-right", "50%")
    wait_text(page, "#pct-left", "0%")
    wait_text(page, "#conn-text", "Connected")

    feed(page, *reading(-45))  # left edge down
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
        feed(page, *reading(-30))
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
    d, page = driving_page(start_daemon, new_page)
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
    d, page = driving_page(start_daemon, new_page)
    port = d.port
    d.stop()
    wait_text(page, "#notice-title", "Connection to the daemon lost")
    wait_text(page, "#conn-text", "Offline")
    d2 = start_daemon(port=port)
    assert d2.port == port
    wait_status(d2.http_url, lambda s: near(s["leds"]["right"], 0.5), timeout=15)
    wait_text(page, "#conn-text", "Connected")


def websockets_of(page) -> list[str]:
    """The URLs of the WebSockets the page opens from now on."""
    urls: list[str] = []
    page.on("websocket", lambda ws: urls.append(ws.url))
    return urls


def test_chromium_without_a_sensor_is_told_at_once_and_never_takes_the_leds(start_daemon, new_page):
    """Chromium says it has no sensor with one event of nulls: the page says
    "No motion sensor" on it, with its own clock stopped (so not after a
    wait), and it never opened a WebSocket, so the LEDs stayed free."""
    d = start_daemon()
    page = new_page()
    sockets = websockets_of(page)
    page.clock.install()
    open_page(page, d)
    page.clock.pause_at(page.evaluate("() => Date.now()") + 1000)  # the page's timers stand still
    page.get_by_role("button", name="Start").click()
    wait_text(page, "#notice-title", "No motion sensor")
    page.get_by_role("button", name="Start").wait_for()
    assert sockets == [], "the page connected before it knew there is a sensor"
    assert get_status(d.http_url)["client"] is None


def test_a_browser_that_says_nothing_waits_without_the_leds_and_a_late_sensor_still_drives(start_daemon, new_page):
    """Safari or Firefox on a computer fires no event at all, and some phones
    fire their first one late: the page waits 3 s for a reading holding
    nothing, then says "No motion sensor"; a reading within those 3 s connects."""
    d = start_daemon()
    page = new_page()
    sockets = websockets_of(page)
    page.clock.install()
    open_page(page, d)
    page.evaluate(HIDE_CHROMIUMS_EVENT)  # no event at all, as those browsers
    page.clock.pause_at(page.evaluate("() => Date.now()") + 1000)
    start(page)
    page.clock.run_for(3000)
    wait_text(page, "#notice-title", "No motion sensor")
    page.get_by_role("button", name="Start").wait_for()
    assert sockets == [], "the page connected before it knew there is a sensor"

    start(page)
    page.clock.run_for(2900)  # no reading yet: still waiting, holding nothing
    assert sockets == []
    wait_text(page, "#conn-text", "Waiting for the sensor")
    assert page.locator("#notice").is_hidden()
    assert page.get_by_role("button", name="Stop").is_visible()
    assert sockets == [] and get_status(d.http_url)["client"] is None
    page.clock.resume()
    feed(page, *reading(30))  # the first reading, late
    wait_status(d.http_url, lambda s: near(s["leds"]["right"], 0.5))
    wait_text(page, "#conn-text", "Connected")
    assert len(sockets) == 1


def test_when_readings_stop_the_page_shows_no_tilt_and_the_dark_leds(start_daemon, new_page):
    """The daemon turns the LEDs off when no frame came for its stale_after_s;
    the page sends a frame per reading, so after as long without one it
    shows no tilt (not the last one) beside the LEDs at 0 %, and both come
    back with the next reading."""
    d = start_daemon("--stale-after-s", "2")
    page = new_page()
    open_page(page, d)
    feed(page, *reading(30))
    start(page)
    wait_status(d.http_url, lambda s: near(s["leds"]["right"], 0.5))
    wait_text(page, "#tilt-text", "30° right")
    wait_text(page, "#pct-right", "50%")
    page.wait_for_function("() => window.gravityLed.state.staleMs === 2000")  # the daemon's, from /status
    stop_sensor(page)
    wait_status(d.http_url, lambda s: leds(s) == (0.0, 0.0))  # the daemon's stale blackout
    wait_text(page, "#pct-right", "0%")
    wait_text(page, "#tilt-text", "no reading")
    feed(page, *reading(-30))
    wait_status(d.http_url, lambda s: near(s["leds"]["left"], 0.5))
    wait_text(page, "#tilt-text", "30° left")
    wait_text(page, "#pct-left", "50%")


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
    from gravity_led.daemon.tls import make_cert

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_cert(hosts=["localhost", "127.0.0.1"], cert_path=cert, key_path=key)
    d = start_daemon("--certfile", str(cert), "--keyfile", str(key), scheme="https")
    base = f"https://127.0.0.1:{d.port}"
    page = new_page(ignore_https_errors=True)
    page.goto(base + "/")
    page.wait_for_function("() => window.gravityLed !== undefined")
    assert page.evaluate("() => window.gravityLed.wsUrl()") == f"wss://127.0.0.1:{d.port}/"
    feed(page, *reading(-30))
    start(page)
    st = wait_status(base, lambda s: near(s["leds"]["left"], 0.5), cafile=str(cert))
    assert st["leds"]["right"] == 0.0
    wait_text(page, "#pct-left", "50%")


def test_token_in_page_url_is_passed_to_the_websocket(start_daemon, new_page):
    d = start_daemon()
    page = new_page()
    open_page(page, d, "/?token=s3cr%C3%A9t%20x")
    assert page.evaluate("() => window.gravityLed.wsUrl()") == f"ws://127.0.0.1:{d.port}/?token=s3cr%C3%A9t%20x"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_phone_screenshot(start_daemon, new_page, scheme):
    """The picture in docs/phones.md: a phone rolled 30 degrees right, live telemetry."""
    d, page = driving_page(start_daemon, new_page, color_scheme=scheme)
    wait_text(page, "#pct-right", "50%")
    wait_text(page, "#foot", "frames/s")
    # The docs' picture shows what a phone sees, not this test's port and
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
    # Let the bars' transitions finish.
    page.evaluate("() => Promise.all(document.getAnimations().map((a) => a.finished))")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
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
    feed(page, *reading(30))
    page.get_by_role("button", name="Start").click()  # it may turn back into Start at once
    wait_text(page, "#notice-title", "The daemon needs a token")
    page.get_by_role("button", name="Start").wait_for()  # gave up: retrying cannot help

    page.goto(f"{d.http_url}/?token=correct-horse-battery")
    page.wait_for_function("() => window.gravityLed !== undefined")
    feed(page, *reading(30))
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


# -- this Pi's CA, trusted the way a phone trusts it -----------------------------
#
# Chromium on Linux takes the certificate authorities a user trusts from the
# NSS database in $HOME/.pki/nssdb: each browser here gets its own HOME, one
# with this Pi's CA imported by certutil (as a phone imports the profile), one
# without.  Neither gets an ignore-certificate flag, so Chromium checks the
# chain, the host name and the CA's Name Constraints as a strict client does.

CERTUTIL = shutil.which("certutil")
OUTSIDE = "bank.example"  # a name this Pi's CA may not sign for
PI = "pi.local"


def _make_cert_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gravity_led.daemon", "make-cert", *args], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def pi_ca(tmp_path_factory) -> Path:
    """A folder with this Pi's CA and a server certificate, made by ``make-cert --host pi``."""
    out = tmp_path_factory.mktemp("pi-ca")
    r = _make_cert_cli("--host", "pi", "--out-dir", str(out), cwd=out)
    assert r.returncode == 0, r.stderr
    return out


def _browser_home(root: Path, ca: Path | None) -> Path:
    home = root / "home"
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    subprocess.run([CERTUTIL, "-N", "--empty-password", "-d", f"sql:{db}"], check=True, capture_output=True)
    if ca is not None:
        subprocess.run([CERTUTIL, "-A", "-n", "gravity-led CA", "-t", "C,,", "-i", str(ca), "-d", f"sql:{db}"], check=True, capture_output=True)
    return home


def _launch(p, home: Path):
    args = [
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", f"--host-resolver-rules=MAP {PI} 127.0.0.1, MAP {OUTSIDE} 127.0.0.1",
    ]
    assert not [a for a in args if "ignore-certificate" in a]
    return p.chromium.launch(executable_path=CHROMIUM, args=args, env={**os.environ, "HOME": str(home)})


@pytest.fixture(scope="module")
def nss_browsers(playwright, pi_ca, tmp_path_factory):
    """(trusting, not trusting): two Chromiums, this Pi's CA in the first one's NSS database only."""
    if CERTUTIL is None:
        pytest.skip("certutil is not installed (apt-get install libnss3-tools)")
    trusting_home = _browser_home(tmp_path_factory.mktemp("trusting"), pi_ca / "ca.pem")
    plain_home = _browser_home(tmp_path_factory.mktemp("plain"), None)
    trusting, plain = _launch(playwright, trusting_home), _launch(playwright, plain_home)
    yield trusting, plain
    trusting.close()
    plain.close()


def _ca_page(browser, **options):
    ctx = browser.new_context(**{**PHONE, **options})  # never ignore_https_errors
    ctx.set_default_timeout(scaled(10_000))
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return ctx, page, errors


def _issued_by_pi_ca(pi_ca: Path, host: str, out: Path) -> tuple[Path, Path]:
    """A server certificate for ``host`` signed with the CA's key directly
    (make-cert refuses names outside the CA's constraints)."""
    from gravity_led.daemon.certfiles import load_ca
    from gravity_led.daemon.tls import cert_pem, key_pem, server_certificate

    ca_key, ca_cert = load_ca(pi_ca)
    key, cert = server_certificate(hosts=[host], issuer=(ca_cert, ca_key))
    out.mkdir()
    (out / "key.pem").write_bytes(key_pem(key))
    (out / "cert.pem").write_bytes(cert_pem(cert, ca_cert))
    return out / "cert.pem", out / "key.pem"


def test_a_trusted_ca_opens_the_page_and_its_wss_socket_without_any_exception(start_daemon, nss_browsers, pi_ca):
    trusting, plain = nss_browsers
    d = start_daemon("--certfile", str(pi_ca / "cert.pem"), "--keyfile", str(pi_ca / "key.pem"), scheme="https")
    url = f"https://{PI}:{d.port}/"
    ctx, page, errors = _ca_page(trusting)
    try:
        assert page.goto(url).ok
        page.wait_for_function("() => window.gravityLed !== undefined")
        assert page.evaluate("() => window.isSecureContext")
        feed(page, *reading(30))
        start(page)
        wait_text(page, "#conn-text", "Connected")
        st = wait_status(d.http_url, lambda s: near(s["leds"]["right"], 0.5), cafile=str(pi_ca / "ca.pem"))
        assert st["client"] is not None and st["leds"]["left"] == 0.0
        assert errors == []
    finally:
        ctx.close()
    # The same page in a Chromium that does not trust the CA: refused, so the
    # trust above came from the CA in the NSS database, not from a lax browser.
    ctx, page, _ = _ca_page(plain)
    try:
        with pytest.raises(sync_api.Error, match="ERR_CERT_AUTHORITY_INVALID"):
            page.goto(url)
    finally:
        ctx.close()


def test_a_certificate_outside_the_name_constraints_is_refused(start_daemon, nss_browsers, pi_ca, tmp_path):
    """The same CA key signs two certificates the same way; Chromium takes the
    one for this Pi and refuses the one for another site: the constraint is enforced."""
    trusting, _ = nss_browsers
    inside = start_daemon(*_tls_args(*_issued_by_pi_ca(pi_ca, PI, tmp_path / "inside")), scheme="https")
    outside = start_daemon(*_tls_args(*_issued_by_pi_ca(pi_ca, OUTSIDE, tmp_path / "outside")), scheme="https")
    ctx, page, _ = _ca_page(trusting)
    try:
        assert page.goto(f"https://{PI}:{inside.port}/").ok
        with pytest.raises(sync_api.Error, match="ERR_CERT_INVALID"):
            page.goto(f"https://{OUTSIDE}:{outside.port}/")
    finally:
        ctx.close()
    # openssl says why: the name is outside the CA's permitted subtrees.
    r = subprocess.run(["openssl", "verify", "-CAfile", str(pi_ca / "ca.pem"), str(tmp_path / "outside" / "cert.pem")], capture_output=True, text=True)
    assert r.returncode != 0 and "permitted subtree violation" in r.stdout + r.stderr


def _tls_args(cert: Path, key: Path) -> tuple[str, ...]:
    return ("--certfile", str(cert), "--keyfile", str(key))


@pytest.mark.parametrize(("ua", "shown", "hidden"), [(IPHONE_UA, "ios", "android"), (ANDROID_UA, "android", "ios")])
def test_a_socket_that_fails_after_an_https_page_loaded_shows_how_to_trust_the_pi(start_daemon, nss_browsers, pi_ca, ua, shown, hidden):
    """iOS loads an https page whose certificate it was told to accept, then
    refuses the wss:// socket before it opens.  Here the page loads over
    https with this Pi's CA trusted, and every WebSocket it then opens is
    closed before opening (Playwright's WebSocket routing): the page says
    what happened in one sentence and shows the steps for the phone it runs on."""
    trusting, _ = nss_browsers
    d = start_daemon(*_tls_args(pi_ca / "cert.pem", pi_ca / "key.pem"), scheme="https")
    ctx, page, errors = _ca_page(trusting, user_agent=ua)
    try:
        if shown == "ios":
            page.add_init_script("DeviceMotionEvent.requestPermission = () => Promise.resolve('granted');")
        page.route_web_socket("**", lambda ws: ws.close(code=4000))
        assert page.goto(f"https://{PI}:{d.port}/").ok
        page.wait_for_function("() => window.gravityLed !== undefined")
        feed(page, *reading(30))
        page.get_by_role("button", name="Start").click()
        wait_text(page, "#notice-title", "This phone does not trust the Pi yet")
        text = page.locator("#notice-text").text_content()
        assert text.startswith("The page loaded over https, but its connection to the LEDs failed before opening")
        assert text.split(": trust")[0].count(".") == 0, "one sentence, then the retry"
        steps = page.locator(f"#notice-extra ol[data-phone={shown}]").inner_text()
        assert page.locator(f"#notice-extra ol[data-phone={hidden}]").count() == 0
        if shown == "ios":
            assert "Settings \u203a General \u203a VPN & Device Management" in steps
            assert "Settings \u203a General \u203a About \u203a Certificate Trust Settings" in steps and "full trust" in steps
            href = "/ca.mobileconfig"
        else:
            assert "Settings \u203a Security \u203a Encryption & credentials \u203a Install a certificate \u203a CA certificate" in steps
            href = "/ca.crt"
        link = page.locator(f"#notice-extra a[href='{href}']")
        assert link.count() == 1
        # The link downloads what the phone needs, from the page's own origin.
        got = page.evaluate("(h) => fetch(h).then(async (r) => [r.status, r.headers.get('content-type'), (await r.arrayBuffer()).byteLength])", href)
        assert got[0] == 200 and got[1] in ("application/x-apple-aspen-config", "application/x-x509-ca-cert") and got[2] > 100
        assert get_status(d.http_url)["client"] is None
        assert errors == []
    finally:
        ctx.close()
