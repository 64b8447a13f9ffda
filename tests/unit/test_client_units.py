"""Unit tests of the client's pure parts: no daemon, no network (but the UDP rule and stdin reader)."""

from __future__ import annotations

import asyncio
import io
import math
import random

import pytest
from hypothesis import given, strategies as st

from gravity_led.client import EXIT_USAGE, ClientError
from gravity_led.client.cli import build_parser, main, normalize_argv
from gravity_led.client.link import BACKOFF_CAP_S, Link, LinkOptions, backoff_delay, normalize_url
from gravity_led.client.live import View, bar, Snapshot
from gravity_led.client.pacing import Pacer, SendRate
from gravity_led.client.recording import Recorder, Sample, read_recording
from gravity_led.client.sim import SimConfig, Simulator, vector_for_tilt
from gravity_led.client.sources import flipped, keepalive, parse_line, replay_source, stdin_source
from gravity_led.daemon.protocol import STANDARD_GRAVITY, FrameError, Vector, parse_frame, encode_binary
from tests.support.harness import scaled, cancel_outcome

# ---- simulator --------------------------------------------------------------


@given(st.floats(-360, 360))
def test_tilt_vector_has_length_g_and_sine_of_tilt_on_y(deg: float) -> None:
    v = vector_for_tilt(deg)
    assert math.hypot(*v) == pytest.approx(STANDARD_GRAVITY, rel=1e-12)
    assert v.y / STANDARD_GRAVITY == pytest.approx(math.sin(math.radians(deg)), abs=1e-12)
    assert v.x == 0.0


@pytest.mark.parametrize("pattern", ["rock", "sweep", "walk", "steps"])
def test_every_pattern_stays_within_amplitude_with_length_g(pattern: str) -> None:
    sim = Simulator(SimConfig(pattern=pattern, amplitude_deg=40, period_s=2, seed=1))
    tilts = [sim.tilt(i / 100) for i in range(1000)]
    assert max(abs(t) for t in tilts) <= 40 + 1e-9
    assert max(tilts) - min(tilts) > 20, "the pattern should actually move"
    for i in range(0, 1000, 37):
        assert math.hypot(*sim.vector(i / 100)) == pytest.approx(STANDARD_GRAVITY)


def test_rock_peaks_at_quarter_period_and_sweep_runs_left_to_right() -> None:
    rock = Simulator(SimConfig(pattern="rock", amplitude_deg=60, period_s=4))
    assert rock.tilt(1.0) == pytest.approx(60)
    assert rock.tilt(3.0) == pytest.approx(-60)
    sweep = Simulator(SimConfig(pattern="sweep", amplitude_deg=90, period_s=2))
    assert sweep.tilt(0.0) == pytest.approx(-90)
    assert sweep.tilt(1.0) == pytest.approx(0)
    assert sweep.tilt(1.999) == pytest.approx(90, abs=0.2)


def test_steps_hold_each_level_for_an_equal_share_of_the_period() -> None:
    sim = Simulator(SimConfig(pattern="steps", steps_deg=(10, -20), period_s=2))
    assert [sim.tilt(t) for t in (0.0, 0.9, 1.0, 1.9, 2.0)] == [10, 10, -20, -20, 10]


def test_noise_is_seeded_and_percent_mode_scales_to_100() -> None:
    a = Simulator(SimConfig(noise_deg=2, seed=7))
    b = Simulator(SimConfig(noise_deg=2, seed=7))
    assert [a.tilt(0.1 * i) for i in range(10)] == [b.tilt(0.1 * i) for i in range(10)]
    p = Simulator(SimConfig(pattern="steps", steps_deg=(30,), percent=True)).vector(0)
    assert math.hypot(*p) == pytest.approx(100)
    assert p.y == pytest.approx(50)


def test_sim_config_rejects_nonsense() -> None:
    for bad in (dict(pattern="spin"), dict(rate_hz=0), dict(period_s=-1), dict(amplitude_deg=200), dict(noise_deg=-1)):
        with pytest.raises(ValueError):
            SimConfig(**bad)


# ---- pacing -----------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pacer_deadlines_are_absolute_so_late_wakeups_do_not_drift() -> None:
    clock = FakeClock()
    pacer = Pacer(1000.0, clock=clock)
    rng = random.Random(3)
    # Each wake-up overshoots its deadline by up to 0.9 ms (like epoll's rounding).
    for _ in range(60_000):
        due = pacer.due(clock.now)
        clock.now = max(clock.now, due) + rng.uniform(0, 0.0009)
        pacer.n += 1
    # After "a minute" at 1000 Hz the schedule is exactly 60000 periods long: no drift.
    assert pacer.due(clock.now) == pytest.approx(100.0 + 60.0, abs=1e-9)
    assert pacer.skipped == 0


def test_pacer_skips_frames_instead_of_bursting_after_a_long_stall() -> None:
    clock = FakeClock()
    pacer = Pacer(100.0, clock=clock)
    assert pacer.due(clock.now) == 100.0
    pacer.n += 1
    clock.now += 2.0  # the laptop slept
    due = pacer.due(clock.now)
    assert clock.now - due < 0.011
    assert pacer.skipped == 199


def test_pacer_tick_achieves_the_rate_on_the_real_clock() -> None:
    async def go() -> float:
        pacer = Pacer(500.0)
        for _ in range(250):
            t = await pacer.tick()
        return t

    # The scheduled time of frame 249 is 249/500 s: tick() waits for it (never
    # early) and does not oversleep by much (a bound stretched by the suite's
    # time factor; the client's rate benchmark measures the real figure).
    import time

    t0 = time.monotonic()
    last = asyncio.run(go())
    elapsed = time.monotonic() - t0
    assert last == pytest.approx(249 / 500)
    assert 249 / 500 <= elapsed < 249 / 500 + scaled(0.25)


def test_rate_meter_reports_recent_rate() -> None:
    m = SendRate(window_s=1.0)
    rate = 0.0
    for i in range(31):
        rate = m.update(i * 0.1, i * 5)  # 50 per second
    assert rate == pytest.approx(50)
    for i in range(31, 51):
        rate = m.update(i * 0.1, 150 + (i - 30) * 10)  # then 100 per second
    assert rate == pytest.approx(100)


# ---- recordings ---------------------------------------------------------------


def test_recording_round_trips_exactly(tmp_path) -> None:
    path = tmp_path / "rec.csv"
    vectors = [Vector(0.1 * i, -9.81 + i, 1 / 3) for i in range(1, 20)]
    with Recorder(path) as rec:
        for i, v in enumerate(vectors):
            rec.write(50.0 + i * 0.02, v)
    samples = read_recording(path)
    assert [s.vector for s in samples] == vectors
    assert [s.t for s in samples] == pytest.approx([i * 0.02 for i in range(len(vectors))])
    assert path.read_text().splitlines()[0] == "t,x,y,z"


@pytest.mark.parametrize(
    "body, message",
    [
        ("t,x,y,z\n0,0,1,0\n0.1,0,abc,0\n", "line 3: 'abc' is not a number"),
        ("t,x,y,z\n0,0,1,0\n0.1,0,0,0\n", "line 3: the vector has zero length"),
        ("0,0,1,0\n0.2,0,1\n", "line 2: expected 4 columns"),
        ("0,0,1,0\n-1,0,1,0\n", "line 2: times must be finite and never go backwards"),
        ("t,x,y,z\n", "holds no samples"),
    ],
)
def test_bad_recordings_name_the_line(tmp_path, body: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(ClientError, match=message):
        read_recording(path)


def test_missing_recording_is_one_sentence(tmp_path) -> None:
    with pytest.raises(ClientError, match="does not exist"):
        read_recording(tmp_path / "nope.csv")
    with pytest.raises(ClientError, match="folder does not exist"):
        Recorder(tmp_path / "no" / "such" / "dir.csv")


def test_replay_follows_recorded_timing_scaled_by_speed() -> None:
    samples = [Sample(10.0 + 0.1 * i, Vector(0, i + 1, 1)) for i in range(5)]

    async def go() -> list[tuple[float, Vector]]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        return [(loop.time() - t0, v) async for v in replay_source(samples, speed=2.0)]

    got = asyncio.run(go())
    assert [v for _, v in got] == [s.vector for s in samples]
    # 0.4 s of recording at 2x = 0.2 s, each frame on its own deadline: never
    # early (asyncio may wake up to a clock tick early), late only by the
    # machine's scheduling (bounded loosely: a busy machine wakes timers late;
    # at 1x the last frame would come 0.2 s later than at 2x, which still fails).
    for i, (t, _) in enumerate(got):
        assert i * 0.05 - 0.002 <= t < i * 0.05 + scaled(0.15)


# ---- stdin and keep-alive -----------------------------------------------------------


def test_parse_line_accepts_whitespace_or_commas_and_skips_comments() -> None:
    assert parse_line("0 9.81 0\n") == Vector(0, 9.81, 0)
    assert parse_line(" 1,2,3 ") == Vector(1, 2, 3)
    assert parse_line("1, -2, 3e0") == Vector(1, -2, 3)
    assert parse_line("   \n") is None
    assert parse_line("# a comment") is None
    with pytest.raises(FrameError):
        parse_line("1 2")


def test_stdin_source_reports_bad_lines_with_numbers_and_goes_on() -> None:
    warnings: list[str] = []
    text = io.StringIO("0 1 0\nbogus\n\n1 2\n0,-1,0\n")

    async def go() -> list[Vector]:
        return [v async for v in stdin_source(text, warn=warnings.append)]

    assert asyncio.run(go()) == [Vector(0, 1, 0), Vector(0, -1, 0)]
    assert len(warnings) == 2
    assert warnings[0].startswith("stdin line 2:") and "'bogus' is not a number" in warnings[0]
    assert warnings[1].startswith("stdin line 4:") and "expected 3 numbers" in warnings[1]


def test_keepalive_repeats_the_last_vector_while_the_source_is_silent() -> None:
    async def go() -> list[Vector]:
        enough = asyncio.Event()  # the source stays silent until 4 repeats came

        async def sparse():
            yield Vector(0, 1, 0)
            await enough.wait()
            yield Vector(0, -1, 0)

        got = []
        async for v in keepalive(sparse(), every_s=0.05):
            got.append(v)
            if len(got) == 5:
                enough.set()
        return got

    got = asyncio.run(asyncio.wait_for(go(), 10))
    assert got[0] == Vector(0, 1, 0) and got[-1] == Vector(0, -1, 0)
    repeats = got[1:-1]
    assert len(repeats) >= 4 and set(repeats) == {Vector(0, 1, 0)}


def test_keepalive_hold_stops_repeating_a_silent_phone_and_resumes_with_it() -> None:
    async def go() -> tuple[list[tuple[float, Vector]], float]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Vector] = asyncio.Queue()
        got: list[tuple[float, Vector]] = []
        second = asyncio.Event()

        async def phone():
            while True:
                yield await queue.get()

        async def consume() -> None:
            async for v in keepalive(phone(), every_s=0.02, hold_s=0.1):
                got.append((loop.time(), v))
                if v == Vector(3, 4, 5):
                    second.set()

        task = asyncio.ensure_future(consume())
        start = loop.time()
        queue.put_nowait(Vector(0, 1, 2))
        await asyncio.sleep(scaled(0.6))  # the silence under test (no event marks it): repeats must stop after hold_s
        queue.put_nowait(Vector(3, 4, 5))
        await asyncio.wait_for(second.wait(), 2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return got, start

    got, start = asyncio.run(go())
    held = [t - start for t, v in got if v == Vector(0, 1, 2)]
    assert 2 <= len(held) <= 7  # the first, then repeats every 0.02 s for 0.1 s
    assert held[-1] < 0.1 + scaled(0.25), "repeats went on after the hold"
    assert got[-1][1] == Vector(3, 4, 5)


def test_keepalive_stops_repeating_at_once_when_the_source_yields_none() -> None:
    async def paused_phone():
        yield Vector(0, 1, 0)
        yield None  # phyphox: "not measuring"
        await asyncio.sleep(0.3)
        yield Vector(0, -1, 0)

    async def go() -> list[Vector]:
        return [v async for v in keepalive(paused_phone(), every_s=0.02, hold_s=10.0)]

    assert asyncio.run(go()) == [Vector(0, 1, 0), Vector(0, -1, 0)]  # no repeats, and None is not passed on


def test_flipped_negates_every_axis() -> None:
    async def go() -> list[Vector]:
        async def src():
            yield Vector(0.5, -4.9, 8.5)

        return [v async for v in flipped(src())]

    assert asyncio.run(go()) == [Vector(-0.5, 4.9, -8.5)]


def test_keepalive_propagates_source_errors() -> None:
    async def failing():
        yield Vector(0, 1, 0)
        raise ClientError("the phone went away")

    async def go() -> None:
        async for _ in keepalive(failing(), every_s=0.05):
            pass

    with pytest.raises(ClientError, match="phone went away"):
        asyncio.run(go())


# ---- link and CLI ---------------------------------------------------------------------


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(1)
    assert 0.125 <= backoff_delay(1, rng) <= 0.25
    assert 0.5 <= backoff_delay(3, rng) <= 1.0
    delays = [backoff_delay(n, rng) for n in range(1, 40)]
    assert max(delays) <= BACKOFF_CAP_S
    assert len({round(d, 6) for d in delays[10:]}) > 5, "jitter: retries are not in lockstep"


class _AnswersOnce:
    """A connection, as far as ``Link._serve`` goes, whose first answer the test releases."""

    close_code = None
    close_reason = None

    def __init__(self) -> None:
        self.answer: asyncio.Future = asyncio.get_running_loop().create_future()
        self.forever = asyncio.Event()  # never set: later messages never come

    async def send(self, message: str) -> None:
        pass

    async def recv(self) -> str:
        return await self.answer

    def __aiter__(self):
        return self

    async def __anext__(self) -> str:
        await self.forever.wait()
        raise StopAsyncIteration


@pytest.mark.parametrize("turns", range(4))
def test_the_link_stops_when_asked_even_as_the_first_answer_arrives(turns: int) -> None:
    # The client stops the link by cancelling it (--duration, Ctrl-C). On Python 3.11 asyncio.wait_for
    # returned an answer that came in the same turn and swallowed the cancellation: the link then went
    # on to read the connection and the client hung. (The same fix as client/receivers.py's read_each.)
    async def go() -> str:
        ws = _AnswersOnce()
        link = Link(LinkOptions(url="ws://127.0.0.1:1"))
        serving = asyncio.ensure_future(link._serve(ws))
        for _ in range(3):
            await asyncio.sleep(0)  # it now waits for the daemon's first answer
        ws.answer.set_result('{"type": "state"}')
        for _ in range(turns):
            await asyncio.sleep(0)
        return await cancel_outcome(serving)

    assert asyncio.run(go()) == "stopped"


def test_normalize_url() -> None:
    assert normalize_url("raspberrypi.local") == "ws://raspberrypi.local:5678"
    assert normalize_url("10.0.0.2:9000") == "ws://10.0.0.2:9000"
    assert normalize_url("ws://h:1/x") == "ws://h:1/x"
    assert normalize_url("wss://h") == "wss://h:5678"  # the daemon serves TLS on its own port, not 443
    assert normalize_url("wss://h:443/x") == "wss://h:443/x"
    assert normalize_url("h", tls=True) == "wss://h:5678"  # --cafile or --insecure
    assert normalize_url("ws://h", tls=True) == "ws://h:5678"  # a scheme given is kept
    for bad in ("http://h", "ws://[bad", "ws://:5678", "ftp://h"):
        with pytest.raises(ClientError) as e:
            normalize_url(bad)
        assert e.value.exit_code == EXIT_USAGE


def test_sim_is_the_default_subcommand() -> None:
    p = build_parser()
    assert normalize_argv(p, []) == ["sim"]
    assert normalize_argv(p, ["--rate", "100"]) == ["sim", "--rate", "100"]
    args = p.parse_args(normalize_argv(p, ["--rate", "100"]))
    assert args.command == "sim" and args.rate == 100


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--url", "ws://pi:5678", "sim"], ["sim", "--url", "ws://pi:5678"]),
        (["-q", "send", "0", "4.9", "8.5"], ["send", "-q", "0", "4.9", "8.5"]),
        (["--url", "x", "send", "1", "2", "3"], ["send", "--url", "x", "1", "2", "3"]),
        (["--url", "sim", "demo"], ["demo", "--url", "sim"]),  # an option's value is never taken for the subcommand
        (["sim", "--pattern", "steps", "--steps", "-60,0,60"], ["sim", "--pattern", "steps", "--steps=-60,0,60"]),
        (["send", "0", "-4.9", "8.5"], ["send", "0", "-4.9", "8.5"]),
        (["-h"], ["-h"]),
        (["replay", "sim"], ["replay", "sim"]),
    ],
)
def test_options_before_or_after_the_subcommand(argv: list[str], expected: list[str]) -> None:
    assert normalize_argv(build_parser(), argv) == expected


def test_global_options_parse_the_same_before_and_after() -> None:
    from gravity_led.client.cli import parse_args

    p = build_parser()
    before = parse_args(p, ["--url", "ws://pi:5678", "--max-retries", "2", "sim", "--rate", "10"])
    after = parse_args(p, ["sim", "--rate", "10", "--url", "ws://pi:5678", "--max-retries", "2"])
    assert vars(before) == vars(after)
    demo = parse_args(p, ["demo", "--count", "5"])
    assert demo.count == 5
    assert parse_args(p, ["sim", "--pattern", "steps", "--steps", "-60,0,60"]).steps == (-60, 0, 60)


@pytest.mark.parametrize("argv", [["sim", "ws://pi:5678"], ["ws://pi:5678"], ["sim", "pi.local:5678"], ["send", "ws://pi", "0", "4.9", "8.5"]])
def test_a_url_given_as_an_argument_gets_a_hint(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--url" in err.splitlines()[0] and "Traceback" not in err, err


def test_send_takes_negative_numbers() -> None:
    args = build_parser().parse_args(["send", "0", "-5", "8"])
    assert (args.x, args.y, args.z) == (0, -5, 8)


@pytest.mark.parametrize("argv", [["sim", "--rate", "0"], ["sim", "--amplitude", "nan"], ["bogus-option"], ["send", "1", "2"]])
def test_bad_command_lines_exit_2(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_bad_url_exits_2_with_one_sentence(capsys) -> None:
    assert main(["sim", "--url", "http://example.com"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gravity-led-client sim: error: ") and "ws://" in err


def test_bar_rendering() -> None:
    assert bar(0.0, 8) == " " * 8
    assert bar(1.0, 8) == "█" * 8
    assert bar(0.5, 8) == "████    "
    assert bar(0.5, 8, unicode=False) == "####...."
    assert len(bar(0.37, 16)) == 16
    assert bar(None, 4, unicode=False) == "????"


def test_live_view_modes() -> None:
    out, err = io.StringIO(), io.StringIO()
    snap = Snapshot("connected", 0.5, 0.0, 10, 50.0)
    tty = View("tty", out=out, err=err)
    tty.update(snap)
    tty.event("reconnected")
    assert out.getvalue().startswith("\r") and "reconnected\n" in out.getvalue() and "\n" not in out.getvalue().split("reconnected\n")[1]
    out2 = io.StringIO()
    log = View("log", out=out2, err=err)
    log.update(snap)
    assert "right=50%" in out2.getvalue() and "\r" not in out2.getvalue()
    out3 = io.StringIO()
    quiet = View("quiet", out=out3, err=err)
    quiet.update(snap)
    quiet.event("connected")
    quiet.error("the daemon went away")
    assert out3.getvalue() == "" and "the daemon went away" in err.getvalue()


@pytest.mark.parametrize("say", ["event", "warn"])
def test_a_message_after_the_terminal_narrowed_clears_every_row_of_the_reflowed_status(say: str) -> None:
    """The status line drawn at 80 columns takes two rows at 50: a message must clear both, not leave half a line."""
    out = io.StringIO()
    columns = [80]

    class Terminal(View):
        def columns(self) -> int:
            return columns[0]

    view = Terminal("tty", out=out, err=out)
    view.update(Snapshot("connecting", None, None, 0, 0.0))
    drawn = out.getvalue()
    assert 50 < len(drawn.strip("\r").split("\x1b")[0]) < 80
    columns[0] = 50
    getattr(view, say)("connected to ws://127.0.0.1:5678")
    after = out.getvalue()[len(drawn):]
    assert after.startswith("\x1b[1A\r\x1b[J"), repr(after)  # up to the first row, then clear to the end
    assert "connected to ws://127.0.0.1:5678\n" in after
    # The status comes back under the message, drawn for 50 columns: the next redraw stays on its row.
    mark = len(out.getvalue())
    view.update(Snapshot("connected", 0.5, 0.0, 10, 50.0))
    redraw = out.getvalue()[mark:]
    assert redraw.startswith("\rconnected") and "\x1b[J" not in redraw and len(redraw.split("\x1b[K")[1]) < 50, repr(redraw)


def test_binary_frame_is_what_the_daemon_parses() -> None:
    v = vector_for_tilt(30)
    got = parse_frame(encode_binary(v))
    assert got.y / math.hypot(*got) == pytest.approx(0.5, abs=1e-6)
