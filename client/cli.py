"""``gravity-led-client``: stream a gravity vector to the gravity-led daemon.

Run ``gravity-led-client --help`` (or ``SUBCOMMAND --help``) for the options.
Exit codes: 0 done or Ctrl-C, 1 runtime error, 2 bad command line, 3 the LEDs
stayed busy.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import math
import os
import re
import sys
import time
from typing import AsyncIterator, Callable, Mapping, Sequence

from gravity_led.daemon import __version__
from gravity_led.daemon.protocol import DEFAULT_PORT, FrameError, Vector, encode_text, make_vector, parse_number
from gravity_led.daemon.usage import UsageParser, suggest, unknown_environment, unrecognized

from . import EXIT_ERROR, EXIT_OK, EXIT_USAGE, ClientError
from .argcheck import DEMO_URL, foreign_option, ignored_option
from .link import Link, LinkOptions, env_url, normalize_url
from .demo import run_demo
from .discover import BROWSE_S, browse, choose, find_daemon
from .live import View, choose_mode
from .phone_cli import PHONE_COMMANDS, add_phone_parsers, phone_source
from .recording import read_recording
from .session import StreamOptions, led_levels, run_stream
from .sim import PATTERNS, SimConfig, sim_source
from .sources import constant_source, flipped, keepalive, replay_source, stdin_source

__all__ = ["build_parser", "main"]

PROG = "gravity-led-client"


# ---- argument types -----------------------------------------------------------


def _number(kind: Callable[[str], float], test: Callable[[float], bool], what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}{_url_hint(text)}") from None
        if not (math.isfinite(value) and test(value)):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    return parse


positive = _number(float, lambda v: v > 0, "a positive number")
non_negative = _number(float, lambda v: v >= 0, "a number >= 0")
count_type = _number(int, lambda v: v >= 1, "a whole number >= 1")
retries_type = _number(int, lambda v: v >= 0, "a whole number >= 0")
finite = _number(float, lambda v: True, "a finite number")
amplitude_type = _number(float, lambda v: 0 <= v <= 180, "an angle between 0 and 180 degrees")


def _angles(text: str) -> tuple[float, ...]:
    items = text.replace(" ", "").split(",")
    try:
        if not all(items):
            raise FrameError("empty", "an empty item")
        return tuple(parse_number(x) for x in items)
    except FrameError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of angles such as -60,0,60") from None


# ---- parser -------------------------------------------------------------------


def _connection_options(p: argparse.ArgumentParser, *, url: bool = True) -> None:
    g = p.add_argument_group("connection")
    if url:
        g.add_argument(
            "--url",
            default=None,
            help=f"daemon address: ws://HOST:PORT, wss://HOST:PORT, or just HOST[:PORT] (port {DEFAULT_PORT} if none; "
            f"wss:// with --cafile or --insecure) (default: $GRAVITY_LED_URL, else a daemon listening on this machine's "
            f"port {DEFAULT_PORT}, else the one daemon found on the network over mDNS within 2 s)",
        )
        g.add_argument(
            "--token-file",
            metavar="PATH",
            default=None,
            help="file holding the shared secret if the daemon requires one (not the secret itself: ps would show it; "
            "default: $GRAVITY_LED_TOKEN_FILE, or the secret in $GRAVITY_LED_TOKEN)",
        )
        g.add_argument("--cafile", metavar="PEM", help="CA certificate to trust for a wss:// daemon with a self-signed certificate")
        g.add_argument("--insecure", action="store_true", help="wss:// without verifying the certificate (trusted networks only)")
    g.add_argument("--binary", action="store_true", help="send little-endian float32 binary frames instead of text 'x y z'")
    g.add_argument(
        "--max-retries",
        type=retries_type,
        default=None,
        metavar="N",
        help="when a connection attempt fails or the connection is lost (to the daemon; for sensorserver and phyphox, "
        "to the phone app too), retry up to N times in a row, then give up "
        f"(N+1 attempts in all at first; default: {'retry until Ctrl-C; send: 0' if url else '5'})",
    )


def _run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument(
        "--duration",
        type=positive,
        metavar="S",
        help="stop after S seconds, connecting included: a hard limit, whatever the daemon or the phone does "
        "(a run that sent nothing by then exits 1 and says why)",
    )
    g.add_argument("--count", type=count_type, metavar="N", help="stop after N frames were sent")
    g.add_argument("--record", metavar="FILE", help="also write every vector to FILE as CSV t,x,y,z (replayable); FILE must not exist yet")
    g.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    g.add_argument("--flip", action="store_true", help="negate x, y and z (iOS apps report gravity the other way round)")


def _sim_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("simulated phone")
    g.add_argument(
        "--pattern",
        choices=PATTERNS,
        default="rock",
        help="rock: smooth sine tilt; sweep: full left to full right, again and again; "
        "walk: random walk; steps: fixed tilts held in turn (default: rock)",
    )
    g.add_argument("--rate", type=positive, default=50.0, metavar="HZ", help="frames per second, up to 1000+ (default: 50, Android's GAME rate)")
    g.add_argument("--period", type=positive, default=4.0, metavar="S", help="seconds per rock/sweep cycle or per round of steps (default: 4)")
    g.add_argument("--amplitude", type=amplitude_type, default=90.0, metavar="DEG", help="largest tilt, in degrees (default: 90 = phone on its side)")
    g.add_argument("--noise", type=non_negative, default=0.0, metavar="DEG", help="Gaussian jitter added to the tilt, std dev in degrees (default: 0)")
    g.add_argument("--steps", type=_angles, metavar="DEG,DEG,...", help="tilts of the steps pattern, only with --pattern steps (default: -A,-A/2,0,A/2,A for amplitude A)")
    g.add_argument("--seed", type=int, help="random seed for --pattern walk and --noise, only with one of them (default: different every run)")
    g.add_argument("--percent", action="store_true", help="send each component as a percentage of g, like the article's app, instead of m/s^2")


def build_parser() -> argparse.ArgumentParser:
    parser = UsageParser(
        prog=PROG,
        usage="%(prog)s [SUBCOMMAND] [OPTIONS]",
        description="Stream a gravity vector (from a simulated phone, stdin, a recording or a phone app) "
        "to the gravity-led daemon, which lights the right or left LED. "
        "Without a subcommand, runs 'sim'. Options may come before or after the subcommand "
        "('%(prog)s --url pi.local sim' = '%(prog)s sim --url pi.local').",
        epilog="Exit codes: 0 done (or Ctrl-C), 1 error, 2 bad command line, 3 the LEDs stayed in use by another client. "
        "Run 'gravity-led-client SUBCOMMAND --help' for its options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # prog=PROG: each subcommand's errors start "gravity-led-client sim: error:".
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", prog=PROG)

    def add(name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
        # The list of subcommands shows fragments; each one's own --help, sentences (as the descriptions are).
        p = sub.add_parser(name, help=help, description=description or f"{help[0].upper()}{help[1:]}.")
        return p

    p = add("sim", "a simulated phone rocking left and right (the default)")
    _sim_options(p)
    _connection_options(p)
    _run_options(p)

    p = add(
        "stdin",
        "forward lines 'x y z' (whitespace or commas) from standard input",
        "Forward lines of 'x y z' (whitespace and/or a comma) from standard input as they arrive. "
        "Bad lines are reported with their number and skipped; blank lines and # comments are ignored. "
        "The last vector is repeated 4 times a second so the daemon's stale-data failsafe keeps the LEDs on.",
    )
    _connection_options(p)
    _run_options(p)

    p = add("replay", "play back a CSV recording (t,x,y,z) at its own timing")
    p.add_argument("file", metavar="FILE", help="CSV t,x,y,z, as written by --record")
    p.add_argument("--speed", type=positive, default=1.0, metavar="X", help="playback speed factor (default: 1)")
    p.add_argument("--loop", action="store_true", help="start again at the end, until Ctrl-C/--duration/--count")
    _connection_options(p)
    _run_options(p)

    add_phone_parsers(add, _connection_options, _run_options, positive=positive)  # client/phone_cli.py

    p = add(
        "send",
        "send one vector and exit (scripting, troubleshooting)",
        "Send one vector, print the LED levels the daemon reports, and exit. The LEDs go dark after the daemon's "
        "stale timeout (1 s) unless --duration keeps repeating the vector.",
    )
    p.add_argument("x", type=finite, help="gravity x")
    p.add_argument("y", type=finite, help="gravity y (positive = tilted right)")
    p.add_argument("z", type=finite, help="gravity z")
    _connection_options(p)
    g = p.add_argument_group("run")
    g.add_argument("--duration", type=positive, metavar="S", help="keep the vector on the LEDs for S seconds (repeated 4 times a second)")
    g.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")

    p = add(
        "discover",
        "list the daemons that answer on this network (mDNS)",
        "List the gravity-led daemons that answer on this network over mDNS / DNS-SD (avahi-daemon advertises one "
        "installed by deploy/install.sh), with the URL --url takes for each. The streaming subcommands do the same "
        "search when they are given no address.",
    )
    p.add_argument("--wait", type=positive, default=BROWSE_S, metavar="S", help=f"how long to listen for answers (default: {BROWSE_S:g})")

    p = add(
        "demo",
        "the whole system on this machine: daemon on mock pins + simulated phone + live view",
        "Start the daemon on mock pins on a free loopback port, stream the simulated phone to it with the live view "
        "until Ctrl-C or --duration, then stop the daemon.",
    )
    _sim_options(p)
    _connection_options(p, url=False)
    _run_options(p)
    return parser


_LOOKS_LIKE_ADDRESS = re.compile(r"[a-z][a-z0-9+.-]*://.*|[\w.-]+:\d+|\[[0-9a-f:]+\](:\d+)?|localhost", re.I)


def _url_hint(text: str) -> str:
    return f"; to give the daemon's address, write --url {text}" if _LOOKS_LIKE_ADDRESS.fullmatch(text) else ""


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands' parsers by name (argparse keeps them in ``_actions``, with no public accessor)."""
    return next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _value_options(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of every subcommand that takes a value."""
    return {o for sub in _subcommands(parser).values() for a in sub._actions if a.nargs != 0 for o in a.option_strings}


def normalize_argv(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """The command line as argparse wants it: subcommand first, 'sim' if none is named.

    So options work before the subcommand too, as in git and docker
    ('--url ws://pi:5678 sim', '-q send 0 4.9 8.5'). And a value that starts
    with '-' sticks to its option ('--steps -60,0,60' becomes
    '--steps=-60,0,60'), where argparse would take it for an option.
    """
    takes_value = _value_options(parser)
    subcommands = _subcommands(parser)
    joined: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            joined.extend(argv[i:])
            break
        if a in takes_value and i + 1 < len(argv) and re.match(r"-[\d.]", argv[i + 1]):
            joined.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        joined.append(a)
        i += 1
    i = 0
    while i < len(joined):
        a = joined[i]
        if a in ("-h", "--help", "--version"):
            return joined  # help before any subcommand: the overview
        if a in subcommands:
            return [a, *joined[:i], *joined[i + 1 :]]
        if not a.startswith("-") or a == "--":
            break  # a positional before any subcommand: sim's (it reports what is wrong)
        i += 2 if a in takes_value else 1
    return ["sim", *joined]


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse, or exit 2 with one sentence prefixed by the subcommand's name (``gravity-led-client sim: error:``)."""
    argv = normalize_argv(parser, argv)
    subcommands = _subcommands(parser)
    if argv and argv[0] in subcommands:
        if (problem := foreign_option(argv, subcommands)) is not None:
            subcommands[argv[0]].error(problem)
    args, extra = parser.parse_known_args(argv)
    sub = subcommands[args.command]
    if extra:
        if args.command == "sim" and (guess := suggest(extra[0], subcommands)) is not None and extra[0] not in argv[:1]:
            parser.error(f"unknown subcommand {extra[0]!r}; did you mean {guess}?")
        hints = [_url_hint(x) for x in extra if _url_hint(x)]
        if hints and args.command == "demo":
            sub.error(DEMO_URL.format(flag="address"))
        sub.error(unrecognized(extra, sub.option_strings()) + (hints[0] if hints else ""))
    if (problem := ignored_option(args)) is not None:
        sub.error(problem)
    return args


CLIENT_ENV = ("URL", "TOKEN", "TOKEN_FILE")


def environment_warnings(env: Mapping[str, str]) -> list[str]:
    """Warnings for GRAVITY_LED_* variables nothing reads; the daemon's (set in the same shell) count as known."""
    if not unknown_environment(env, CLIENT_ENV):
        return []
    from gravity_led.daemon.config import environment_warnings as all_known  # only now: it imports the LED code

    return all_known(env)


# ---- commands -----------------------------------------------------------------


def _token(args: argparse.Namespace) -> str | None:
    from gravity_led.daemon.security import SecurityError, check_token, read_token

    path = getattr(args, "token_file", None) or os.environ.get("GRAVITY_LED_TOKEN_FILE")
    try:
        if path:
            return read_token(path)
        token = os.environ.get("GRAVITY_LED_TOKEN", "").strip()
        return check_token(token, "$GRAVITY_LED_TOKEN") if token else None
    except SecurityError as e:  # the same rules as the daemon's, so it can always be sent
        raise ClientError(str(e), EXIT_USAGE) from None


def daemon_address(args: argparse.Namespace, view: View) -> str:
    """--url, else $GRAVITY_LED_URL, else where discovery finds the daemon (client/discover.py)."""
    return args.url or env_url("") or find_daemon(say=view.event)


def link_options(args: argparse.Namespace, *, max_retries: int | None = None, url: str | None = None) -> LinkOptions:
    return LinkOptions(
        url=normalize_url(url or args.url or env_url(), tls=bool(getattr(args, "cafile", None) or getattr(args, "insecure", False))),
        binary=args.binary,
        max_retries=args.max_retries if args.max_retries is not None else max_retries,
        cafile=getattr(args, "cafile", None),
        insecure=getattr(args, "insecure", False),
        token=_token(args),
        telemetry_hz=10.0,
    )


def sim_config(args: argparse.Namespace) -> SimConfig:
    try:
        return SimConfig(
            pattern=args.pattern,
            rate_hz=args.rate,
            period_s=args.period,
            amplitude_deg=args.amplitude,
            noise_deg=args.noise,
            steps_deg=args.steps,
            percent=args.percent,
            seed=args.seed,
        )
    except ValueError as e:
        raise ClientError(str(e), EXIT_USAGE) from None


def _source_for(args: argparse.Namespace, view: View) -> Callable[[], AsyncIterator[Vector]]:
    """The source factory for a streaming subcommand (built after validating its arguments)."""
    cmd = args.command
    if cmd == "sim":
        cfg = sim_config(args)
        return lambda: sim_source(cfg)
    if cmd == "stdin":
        return lambda: keepalive(_noting_input(stdin_source(warn=view.warn), view))
    if cmd == "replay":
        samples = read_recording(args.file)
        return lambda: keepalive(replay_source(samples, speed=args.speed, loop=args.loop))
    if cmd in PHONE_COMMANDS:
        return phone_source(args, view)
    raise AssertionError(cmd)


async def _noting_input(source: AsyncIterator[Vector], view: View) -> AsyncIterator[Vector]:
    """Tell the view each time a line was entered (in 'lines' mode it then shows the status once)."""
    async for v in source:
        yield v
        view.input_done()


SOURCES = {"sim": "the simulator", "stdin": "standard input", "replay": "the recording"}
"""What each streaming subcommand's vectors come from (the phone subcommands: "the phone app")."""


def stream_options(args: argparse.Namespace) -> StreamOptions:
    """--duration, --count and --record, checked: a recording never replaces a file."""
    if args.record is not None and os.path.isfile(args.record):  # (a device such as /dev/null is fine)
        raise ClientError(f"--record {args.record}: the file exists already; give a new name, or remove it first", EXIT_USAGE)
    return StreamOptions(duration_s=args.duration, count=args.count, record=args.record, source=SOURCES.get(args.command, "the phone app"))


def cmd_stream(args: argparse.Namespace, view: View) -> int:
    make_source = _source_for(args, view)
    run_stream(
        (lambda: flipped(make_source())) if args.flip else make_source,
        link_options(args, url=daemon_address(args, view)),
        stream_options(args),
        view,
    )
    return EXIT_OK


def cmd_send(args: argparse.Namespace, view: View) -> int:
    try:
        v = make_vector(float(args.x), float(args.y), float(args.z))
    except FrameError as e:
        raise ClientError(f"cannot send {args.x} {args.y} {args.z}: {e.message}", EXIT_USAGE) from None
    opts = link_options(args, max_retries=0, url=daemon_address(args, view))
    if args.duration is None:
        return _send_once(v, opts, view)
    run_stream(lambda: keepalive(constant_source(v, hold=True)), opts, StreamOptions(duration_s=args.duration), view)
    return EXIT_OK


def _send_once(v: Vector, opts: LinkOptions, view: View) -> int:
    """Send one frame, then report the daemon's verdict: the LED levels from its telemetry, or its error."""

    async def go() -> str:
        link = Link(opts, notify=lambda msg: None)
        runner = asyncio.ensure_future(link.run())
        connected = asyncio.ensure_future(link.connected.wait())
        try:
            await asyncio.wait({runner, connected}, return_when=asyncio.FIRST_COMPLETED)
            if runner.done():
                runner.result()  # raises the ClientError that ended it
            if not await link.send(v):
                raise ClientError(f"the connection to {opts.url} closed before the vector was sent")
            sent_at = time.monotonic()
            # The next telemetry message a little after the send reflects it (the daemon applies frames within ms).
            deadline = sent_at + 1.0
            while time.monotonic() < deadline and not link.rejected:
                if link.telemetry.received_at > sent_at + 0.03:
                    break
                await asyncio.sleep(0.01)
            if link.rejected:
                raise ClientError(f"the daemon rejected {encode_text(v)}: {link.last_error}")
            t = link.telemetry
            if t.received_at > sent_at and t.right is not None and t.left is not None:
                return f"sent {encode_text(v)}: {led_levels(t.right, t.left)}"
            return f"sent {encode_text(v)} to {opts.url}"
        finally:
            connected.cancel()
            await link.close()
            runner.cancel()
            await asyncio.gather(runner, connected, return_exceptions=True)

    view.finish(asyncio.run(go()), stamp=False)  # the same line on a terminal and in $(...)
    return EXIT_OK


def cmd_discover(args: argparse.Namespace, view: View) -> int:
    """Every daemon that answered, one line each; none is an error (exit 1)."""
    found = browse(args.wait)
    if not found:
        choose(found, seconds=args.wait)  # raises: none answered, and how to give --url
    for f in sorted(found, key=lambda f: f.name):
        print(f.line(), flush=True)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, view: View) -> int:
    run_demo(
        sim_config(args),
        binary=args.binary,
        max_retries=args.max_retries if args.max_retries is not None else 5,
        stream=stream_options(args),
        view=view,
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, list(sys.argv[1:] if argv is None else argv))
    view = View(choose_mode(getattr(args, "quiet", False), typing_in=sys.stdin if args.command == "stdin" else None))
    for warning in environment_warnings(os.environ):
        view.warn(warning)
    try:
        if args.command == "demo":
            return cmd_demo(args, view)
        if args.command == "discover":
            return cmd_discover(args, view)
        if args.command == "send":
            return cmd_send(args, view)
        return cmd_stream(args, view)
    except ClientError as e:
        if e.exit_code == EXIT_USAGE:  # a value (a URL, a token file) is wrong: the subcommand's prefix, as argparse's
            sys.stderr.write(f"{PROG} {args.command}: error: {e}\n")
            return EXIT_USAGE
        view.error(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        return EXIT_ERROR
    except OSError as e:
        if e.errno == errno.EIO:  # the terminal closed (SIGHUP): everything was stopped on the way out
            return EXIT_ERROR
        raise
