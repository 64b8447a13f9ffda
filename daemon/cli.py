"""``gravity-led-daemon``: parse options, set up logging, run the server."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from typing import Callable

from . import __version__
from .config import Config, add_arguments, environment_warnings, load_config
from .errors import GravityLedError
from .files import open_secret_warning
from .leds import LedPair
from .security import read_token
from .server import Daemon, run_daemon
from .systemd import Systemd
from .usage import UsageParser, did_you_mean, usage_error

__all__ = ["build_parser", "main"]

PROG = "gravity-led-daemon"
SUBCOMMANDS = ("make-cert",)


def build_parser() -> argparse.ArgumentParser:
    parser = UsageParser(
        prog=PROG,
        usage=f"{PROG} [OPTIONS]\n       {PROG} make-cert [--host NAME] [--out-dir DIR] [--force] ...",
        description=(
            "Serve one phone at a time over WebSocket and light the right or left LED as it tilts. "
            "Options come from flags, then GRAVITY_LED_* environment variables, then the TOML file, then defaults. "
            "Subcommand: 'make-cert' creates a self-signed TLS certificate (see 'make-cert --help')."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--qr", action="store_true", help="print a QR code of the page's URL in the terminal at start")
    parser.add_argument(
        "--stop-with-stdin",
        action="store_true",
        help="stop when standard input reaches its end: a parent that holds the other end of a pipe "
        "(gravity-led-client demo) takes the daemon with it when it dies, however it dies",
    )
    add_arguments(parser)
    return parser


def _setup_logging(level: str, sd: Systemd) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = sd.journal_handler()
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    # websockets' own messages are internals (and its DEBUG lines would show
    # request paths, where a ?token= may be); keep them to real warnings.
    logging.getLogger("gravity_led.websockets").setLevel(logging.WARNING)


def _fail(message: str, code: int = 1) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["make-cert"]:
        from .cli_cert import main as make_cert_main

        return make_cert_main(argv[1:])
    if argv and not argv[0].startswith("-"):  # the daemon's only positional is a subcommand
        usage_error(PROG, f"unknown subcommand {argv[0]!r} (the only one is make-cert){did_you_mean(argv[0], SUBCOMMANDS)}")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.stop_with_stdin:
        _stop_at_end_of(sys.stdin.fileno())
    try:
        return _run(args)
    except GravityLedError as e:  # one sentence for the user, no traceback
        return _fail(str(e), e.exit_code)


def _run(args: argparse.Namespace) -> int:
    cfg, path = load_config(args)
    # The token file is part of the configuration: read it with the rest
    # (a problem is a SecurityError, exit 2 like a ConfigError).
    token = read_token(cfg.token_file) if cfg.token_file else None
    sd = Systemd()
    sd.check()
    _setup_logging(cfg.log_level, sd)
    log = logging.getLogger("gravity_led")
    log.info("gravity-led %s starting (config file: %s)", __version__, path or "none")
    for warning in environment_warnings(os.environ):
        log.warning("%s", warning.removeprefix("warning: "))
    _warn_open_secrets(cfg)
    leds = LedPair(
        right_pin=cfg.right_pin,
        left_pin=cfg.left_pin,
        frequency_hz=cfg.frequency_hz,
        pin_factory=cfg.pin_factory,
        write_delay_s=cfg.mock_write_delay_us / 1e6,
        **cfg.pwm_options(),
    )
    for pin, spec in leds.hardware.items():
        log.info("%s: hardware PWM (%s channel %d, %s)", pin, spec.chip.name, spec.channel, spec.device)

    def reload_config() -> Config:
        new = load_config(args, os.environ)[0]
        _warn_open_secrets(new)
        return new

    with leds:
        daemon = Daemon(cfg, leds=leds, systemd=sd, token=token, reload_config=reload_config, reload_token=lambda c: read_token(c.token_file) if c.token_file else None)
        try:
            run_daemon(daemon, on_listening=_announcer(daemon, qr=args.qr))
        except KeyboardInterrupt:  # Ctrl-C before the signal handlers were set
            pass
    if daemon.failed is not None:
        return 1
    log.info("stopped")
    return 0


def _stop_at_end_of(fd: int) -> None:
    """SIGTERM ourselves (the normal, clean stop) once ``fd`` reaches its end: its writer is gone.

    A pipe works wherever Python does and cannot miss a parent that died before
    we started watching (PR_SET_PDEATHSIG is Linux-only and can): the end of
    file is there to read whenever we look.  os.read, not sys.stdin: a thread
    blocked in a buffered read would hold its lock as the interpreter exits.
    """
    import signal

    def watch() -> None:
        try:
            while os.read(fd, 4096):
                pass
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stop-with-stdin", daemon=True).start()


def _warn_open_secrets(cfg: Config) -> None:
    """One line per secret file that others may read, as ssh does for its keys."""
    for what, path in (("token file", cfg.token_file), ("TLS key", cfg.keyfile)):
        warning = open_secret_warning(path, what=what) if path else None
        if warning:
            logging.getLogger("gravity_led").warning("%s", warning)


def _announcer(daemon: Daemon, *, qr: bool) -> Callable[[], None]:
    """Log the URLs to open on a phone (and print a QR code) once listening."""

    def announce() -> None:
        from .certnames import left_out_line, phone_urls, served_names
        from .installed import make_cert_command
        from .urls import announcement, is_loopback, is_loopback_url, local_name_url, qr_text, urls_to_open

        cfg = daemon.cfg
        log = logging.getLogger("gravity_led")
        urls = urls_to_open(cfg.host, daemon.port, tls=cfg.tls)
        local_url = local_name_url(cfg.host, daemon.port, tls=cfg.tls)
        names = served_names(cfg.certfile) if cfg.tls and cfg.certfile else None  # read once, at start
        urls, local_url, left_out = phone_urls(urls, local_url, names)
        lines = announcement(urls, tls=cfg.tls, make_cert=make_cert_command(), local_url=local_url)
        if cfg.tls and urls:
            from .cli_cert import ca_announcement

            lines += ca_announcement(urls[0], daemon.routes.downloads())
        for line in lines:
            log.info("%s", line)
        if left_out and names:
            log.warning("%s", left_out_line(left_out, names, make_cert=make_cert_command()))
        if not qr:
            return
        if not cfg.tls:
            log.warning("--qr: no QR code, as a phone cannot use the http:// page")
        elif is_loopback(cfg.host):
            log.warning("--qr: no QR code, as a phone cannot reach %s; listen on the network (--host 0.0.0.0) for one", cfg.host)
        elif not urls or is_loopback_url(urls[0]):
            log.warning("--qr: no QR code, as the TLS certificate names no address of this machine that a phone can reach")
        else:
            print(qr_text(urls[0]), file=sys.stderr, flush=True)

    return announce
