"""``gravity-led-daemon``: parse options, set up logging, run the server."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable

from . import __version__
from .config import Config, add_arguments, load_config
from .errors import GravityLedError
from .files import open_secret_warning
from .leds import LedPair
from .security import read_token
from .server import Daemon, run_daemon
from .systemd import Systemd

__all__ = ["build_parser", "main"]

PROG = "gravity-led-daemon"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Serve one phone at a time over WebSocket and light the right or left LED as it tilts. "
            "Options come from flags, then GRAVITY_LED_* environment variables, then the TOML file, then defaults. "
            "Subcommand: 'make-cert' creates a self-signed TLS certificate (see 'make-cert --help')."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--qr", action="store_true", help="print a QR code of the page's URL in the terminal at start")
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
    parser = build_parser()
    args = parser.parse_args(argv)
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
    _warn_open_secrets(cfg)
    leds = LedPair(
        right_pin=cfg.right_pin,
        left_pin=cfg.left_pin,
        frequency_hz=cfg.frequency_hz,
        pin_factory=cfg.pin_factory,
        write_delay_s=cfg.mock_write_delay_us / 1e6,
    )

    def reload_config() -> Config:
        new = load_config(args, os.environ)[0]
        _warn_open_secrets(new)
        return new

    with leds:
        daemon = Daemon(cfg, leds=leds, systemd=sd, token=token, reload_config=reload_config)
        try:
            run_daemon(daemon, on_listening=_announcer(daemon, qr=args.qr))
        except KeyboardInterrupt:  # Ctrl-C before the signal handlers were set
            pass
    if daemon.failed is not None:
        return 1
    log.info("stopped")
    return 0


def _warn_open_secrets(cfg: Config) -> None:
    """One line per secret file that others may read, as ssh does for its keys."""
    for what, path in (("token file", cfg.token_file), ("TLS key", cfg.keyfile)):
        warning = open_secret_warning(path, what=what) if path else None
        if warning:
            logging.getLogger("gravity_led").warning("%s", warning)


def _announcer(daemon: Daemon, *, qr: bool) -> Callable[[], None]:
    """Log the URLs to open on a phone (and print a QR code) once listening."""

    def announce() -> None:
        from .cli_cert import ca_announcement, make_cert_command
        from .urls import announcement, local_name_url, qr_text, urls_to_open

        cfg = daemon.cfg
        urls = urls_to_open(cfg.host, daemon.port, tls=cfg.tls)
        lines = announcement(urls, tls=cfg.tls, make_cert=make_cert_command(), local_url=local_name_url(cfg.host, daemon.port, tls=cfg.tls))
        for line in lines + (ca_announcement(urls[0], daemon.routes.downloads) if cfg.tls and urls else []):
            logging.getLogger("gravity_led").info("%s", line)
        if qr and urls and cfg.tls:
            print(qr_text(urls[0]), file=sys.stderr, flush=True)
        elif qr:
            logging.getLogger("gravity_led").warning("--qr: no QR code, as a phone cannot use the http:// page")

    return announce
