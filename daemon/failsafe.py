"""Drive both LED pins low after the daemon ended without cleaning up.

Run by the service's ``ExecStopPost=`` (``python -m gravity_led.daemon.failsafe``), that
is after every stop and before any restart, also when systemd gives up
restarting. The daemon turns its LEDs off itself when it stops normally; when
it is killed (SIGKILL, a watchdog timeout, a crash) nothing does, and a
Raspberry Pi's pin keeps its last level: an LED would stay lit until the
restart, or for good. systemd tells us how the daemon ended in
``$SERVICE_RESULT``: on ``success`` there is nothing to do, and this module
says so before importing anything heavy (the pins pull in gpiozero): every
clean stop and restart runs it.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    env = dict(os.environ) if env is None else env
    parser = argparse.ArgumentParser(prog="python -m gravity_led.daemon.failsafe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", metavar="PATH", help="the daemon's TOML file")
    parser.add_argument("--always", action="store_true", help="act even if the daemon ended cleanly")
    args = parser.parse_args(argv)
    result = env.get("SERVICE_RESULT", "")
    if result == "success" and not args.always:
        return 0
    from .config import load_config
    from .errors import ConfigError, HardwareError
    from .leds import LedPair

    try:
        cfg, _ = load_config(argparse.Namespace(config=args.config), env)
        # LedPair claims both pins as outputs at 0; close() leaves them as
        # inputs (gpiozero's close): an input drives no current, the LED is dark.
        # A hardware PWM channel (pwm = auto/hardware) is taken over, set to
        # duty 0, disabled and unexported: its output idles low.
        with LedPair(right_pin=cfg.right_pin, left_pin=cfg.left_pin, frequency_hz=cfg.frequency_hz, pin_factory=cfg.pin_factory, **cfg.pwm_options()):
            pass
    except (ConfigError, HardwareError) as e:
        print(f"failsafe: could not turn the LEDs off: {e}", file=sys.stderr)
        return 1
    ended = f"{result}, {env.get('EXIT_CODE', '?')} {env.get('EXIT_STATUS', '?')}" if result else "by hand"
    print(f"failsafe: drove {cfg.right_pin} and {cfg.left_pin} low (the daemon ended: {ended})", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
