"""Daemon configuration: one table of options, read from three places.

Precedence, highest first: command-line flags, ``GRAVITY_LED_*`` environment
variables, the TOML file (``--config``, else ``/etc/gravity-led/daemon.toml``
if it exists), built-in defaults.  Each option has the same name everywhere:
TOML key ``stale_after_s`` = variable ``GRAVITY_LED_STALE_AFTER_S`` = flag
``--stale-after-s``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit
from typing import Any, Mapping as MappingT

from .errors import ConfigError
from .files import UnreadableFile, read_small_file
from .leds import FACTORY_NAMES, PWM_MODES
from .mapping import AXES, CURVES, Mapping, MappingError
from .protocol import DEFAULT_PORT, MAX_FRAME_BYTES
from .usage import OTHER_ENV, did_you_mean, unknown_environment

__all__ = ["Config", "ConfigError", "DEFAULT_CONFIG_PATH", "ENV_PREFIX", "RELOADABLE", "load_config", "add_arguments", "environment_warnings"]

DEFAULT_CONFIG_PATH = Path("/etc/gravity-led/daemon.toml")
ENV_PREFIX = "GRAVITY_LED_"
LOG_LEVELS = ("debug", "info", "warning", "error")


def _opt(default: Any, help: str, *, metavar: str | None = None, choices: tuple | None = None, group: str, default_text: str | None = None) -> Any:
    return field(default=default, metadata={"help": help, "metavar": metavar, "choices": choices, "group": group, "default_text": default_text})


def default_text(name: str) -> str:
    """An option's default as ``--help`` and docs/configuration.md show it ("none" when there is none)."""
    f = _FIELDS[name]
    if f.metadata["default_text"]:
        return f.metadata["default_text"]
    d = f.default
    return "none" if d is None or d == () else ",".join(d) if isinstance(d, tuple) else str(d).lower() if isinstance(d, bool) else str(d)


@dataclass(frozen=True, kw_only=True)
class Config:
    """Every daemon option, with units in the names."""

    host: str = _opt("0.0.0.0", "address to listen on (0.0.0.0 = every IPv4 address, :: = every IPv6 and IPv4 address)", metavar="ADDR", group="network")
    port: int = _opt(DEFAULT_PORT, "TCP port for WebSocket and HTTP (0 = any free port)", metavar="PORT", group="network")
    certfile: str | None = _opt(None, "TLS certificate (PEM): serve https:// and wss:// instead of http:// and ws://", metavar="PATH", group="network")
    keyfile: str | None = _opt(None, "TLS private key (PEM) for --certfile", metavar="PATH", group="network")
    token_file: str | None = _opt(None, "file holding a shared secret that clients must present (Bearer header or ?token=)", metavar="PATH", group="security")
    allowed_origins: tuple[str, ...] = _opt((), "extra web page origins allowed to connect, comma-separated (the daemon's own page is always allowed)", metavar="URLS", group="security")
    max_connections: int = _opt(32, "cap on open connections, handshakes included, so a flood cannot exhaust memory", metavar="N", group="security")
    max_connections_per_address: int = _opt(8, "cap on open connections from one address (IPv6: one ipv6_group_prefix network, by default a /64), so one host cannot take every slot", metavar="N", group="security")
    ipv6_group_prefix: int = _opt(64, "IPv6 addresses that count as one source for the connection caps and the wrong-token back-off: 64 = one /64 (a phone then shares its back-off with every host of its LAN's /64), 128 = each address alone", metavar="BITS", group="security")
    max_frame_bytes: int = _opt(MAX_FRAME_BYTES, "largest frame accepted; bigger ones close the connection with 1009", metavar="BYTES", group="security")
    handshake_timeout_s: float = _opt(5.0, "time a new connection has to finish its handshake", metavar="S", group="security")
    ping_interval_s: float = _opt(5.0, "WebSocket ping interval, to find vanished phones", metavar="S", group="security")
    ping_timeout_s: float = _opt(5.0, "time to wait for a pong before dropping the client", metavar="S", group="security")

    pin_factory: str | None = _opt(None, "GPIO library: lgpio, rpigpio, pigpio, native, or mock", metavar="NAME", choices=FACTORY_NAMES, group="leds", default_text="gpiozero's own choice")
    right_pin: str = _opt("GPIO18", "pin of the right LED (BCM number, GPIO18 or BOARD12 form)", metavar="PIN", group="leds")
    left_pin: str = _opt("GPIO22", "pin of the left LED", metavar="PIN", group="leds")
    frequency_hz: float = _opt(100.0, "software PWM frequency (the article's 50 Hz flickers)", metavar="HZ", group="leds")
    pwm: str = _opt("auto", "PWM backend: hardware (the kernel's PWM channel; fails at start on a pin without one), software (gpiozero's pin library), or auto (hardware on pins that have a channel, software elsewhere and on mock pins)", choices=PWM_MODES, group="leds")
    hardware_frequency_hz: float = _opt(1000.0, "hardware PWM frequency (costs no CPU; 1 kHz does not flicker, not even on camera)", metavar="HZ", group="leds")
    pwm_channels: tuple[str, ...] = _opt((), "hardware PWM channels named by hand, GPIO=DEVICE:CHANNEL comma-separated (DEVICE: the chip's device as in /sys/class/pwm/pwmchipN/device, or pwmchipN), for boards whose device tree does not say", metavar="MAP", group="leds")
    update_hz: float = _opt(250.0, "most LED updates per second, on average (up to four back to back, for a phone's jitter); newer frames replace older ones in between (a duty cannot show before the next PWM period anyway)", metavar="HZ", group="leds")
    stale_after_s: float = _opt(1.0, "turn the LEDs off when no valid frame arrived for this long", metavar="S", group="leds")
    idle_release_s: float = _opt(30.0, "close the LED holder's connection when no valid frame arrived for this long, so the next client can take the LEDs (0 = never)", metavar="S", group="leds")
    mock_write_delay_us: float = _opt(0.0, "with mock pins, make each PWM write cost this much CPU (benchmarks)", metavar="US", group="leds")

    axis: str = _opt("y", "gravity axis that measures the tilt", choices=AXES, group="mapping")
    invert: bool = _opt(False, "swap left and right", group="mapping")
    dead_zone_deg: float = _opt(0.0, "tilt below which both LEDs stay dark", metavar="DEG", group="mapping")
    full_scale_deg: float = _opt(90.0, "tilt that gives full brightness (90 = the article)", metavar="DEG", group="mapping")
    curve: str = _opt("linear", "response curve: linear (in the sine of the tilt, as the article) or gamma", choices=CURVES, group="mapping")
    gamma: float = _opt(2.2, "exponent of the gamma curve (2.2 looks even to the eye)", metavar="G", group="mapping")
    smoothing_s: float = _opt(0.0, "time constant of a low-pass on the duties (0 = off)", metavar="S", group="mapping")

    log_level: str = _opt("info", "log level", choices=LOG_LEVELS, group="logging")

    def mapping(self) -> Mapping:
        return Mapping(
            axis=self.axis,
            invert=self.invert,
            dead_zone_deg=self.dead_zone_deg,
            full_scale_deg=self.full_scale_deg,
            curve=self.curve,
            gamma=self.gamma,
        )

    def pwm_options(self) -> dict[str, Any]:
        """LedPair's hardware PWM arguments."""
        return {"pwm": self.pwm, "pwm_channels": self.pwm_channels, "hardware_frequency_hz": self.hardware_frequency_hz}

    @property
    def tls(self) -> bool:
        return self.certfile is not None


RELOADABLE = frozenset(
    {"frequency_hz", "hardware_frequency_hz", "axis", "invert", "dead_zone_deg", "full_scale_deg", "curve", "gamma", "smoothing_s", "stale_after_s", "idle_release_s", "log_level"}
)
"""Options SIGHUP applies live; the others need a restart."""

_FIELDS = {f.name: f for f in fields(Config)}
_POSITIVE = {"frequency_hz", "hardware_frequency_hz", "update_hz", "stale_after_s", "handshake_timeout_s", "ping_interval_s", "ping_timeout_s", "max_frame_bytes", "max_connections", "max_connections_per_address"}


def _kind(name: str) -> str:
    t = _FIELDS[name].type
    return {"int": "int", "float": "float", "bool": "bool", "tuple[str, ...]": "list"}.get(t, "str")


def _coerce(name: str, value: Any, where: str) -> Any:
    """Turn a TOML value or a string from env/CLI into the option's type."""
    kind = _kind(name)
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind == "int":
            if isinstance(value, bool) or isinstance(value, float):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            v = float(value)
            if not math.isfinite(v):
                raise ValueError
            return v
        if kind == "list":
            items = value if isinstance(value, list) else str(value).split(",")
            return tuple(str(i).strip() for i in items if str(i).strip())
        if name in ("right_pin", "left_pin") and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise ValueError
        return value.lower() if _FIELDS[name].metadata["choices"] else value  # --log-level DEBUG, =MOCK
    except (TypeError, ValueError):
        wanted = {"bool": "true or false", "int": "a whole number", "float": "a finite number", "list": "a list of strings"}.get(kind, "a string")
        raise ConfigError(f"{name} {where} must be {wanted}, not {value!r}") from None


def _validate(cfg: Config) -> Config:
    for name in _POSITIVE:
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{name} must be greater than 0, not {getattr(cfg, name)}")
    if not 0 <= cfg.port <= 65535:
        raise ConfigError(f"port must be between 0 and 65535, not {cfg.port}")
    if not 16 <= cfg.ipv6_group_prefix <= 128:
        raise ConfigError(f"ipv6_group_prefix must be between 16 and 128 (64: one /64 counts as one source; 128: each address), not {cfg.ipv6_group_prefix}")
    for name in ("smoothing_s", "mock_write_delay_us", "idle_release_s"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{name} must not be negative, not {getattr(cfg, name)}")
    for name in ("pin_factory", "pwm", "axis", "curve", "log_level"):
        choices = _FIELDS[name].metadata["choices"]
        value = getattr(cfg, name)
        if value is not None and value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    for origin in cfg.allowed_origins:
        if not _is_origin(origin):
            raise ConfigError(f"allowed_origins: {origin!r} is not a web origin such as https://app.example or http://host:8080")
    if cfg.pwm_channels:
        from .hwpwm import parse_overrides  # here: a start without overrides need not load the PWM backend

        parse_overrides(cfg.pwm_channels)  # ConfigError: one sentence
    if (cfg.certfile is None) != (cfg.keyfile is None):
        raise ConfigError("certfile and keyfile must be given together")
    try:
        cfg.mapping()
    except MappingError as e:
        raise ConfigError(str(e)) from None
    return cfg


def _is_origin(text: str) -> bool:
    """``http(s)://host[:port]`` and nothing more: what a browser sends as Origin."""
    try:
        parts = urlsplit(text)
        parts.port  # raises ValueError for a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.path in ("", "/") and not (parts.query or parts.fragment or parts.username)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per option, all defaulting to None so we know what was given."""
    parser.add_argument(
        "--config",
        metavar="PATH",
        help=f"TOML file of options (default: {DEFAULT_CONFIG_PATH} if it exists; env {ENV_PREFIX}CONFIG)",
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in fields(Config):
        meta = f.metadata
        group = groups.get(meta["group"]) or groups.setdefault(meta["group"], parser.add_argument_group(meta["group"]))
        help = f"{meta['help']} (default: {default_text(f.name)}; env {ENV_PREFIX}{f.name.upper()})"
        flags = ["--" + f.name.replace("_", "-")]
        if f.name == "stale_after_s":
            flags.append("--stale-after")
        if _kind(f.name) == "bool":
            group.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help)
        else:
            lower = str.lower if meta["choices"] else None  # choices in any case: --log-level DEBUG
            group.add_argument(*flags, dest=f.name, metavar=meta["metavar"], choices=meta["choices"], type=lower, default=None, help=help)


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # only with a config file: not at every start (a Pi Zero)

    try:
        # Never blocks (a FIFO), never reads without end (a device, a huge
        # file), and every OSError is one sentence: reload relies on it.
        text = read_small_file(path, what="config file").decode("utf-8-sig")
        data = tomllib.loads(text)
    except UnreadableFile as e:
        raise ConfigError(str(e)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    for key in data:
        if key not in _FIELDS:
            raise ConfigError(f"unknown option {key!r} in config file {path}{did_you_mean(key, _FIELDS)}")
    return data


def config_path(args: argparse.Namespace | None, env: MappingT[str, str]) -> Path | None:
    given = getattr(args, "config", None) or env.get(ENV_PREFIX + "CONFIG")
    if given:
        return Path(given)
    try:
        return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None
    except OSError:  # e.g. /etc/gravity-led not searchable: reading it will say so
        return DEFAULT_CONFIG_PATH


def load_config(args: argparse.Namespace | None = None, env: MappingT[str, str] | None = None) -> tuple[Config, Path | None]:
    """Merge defaults, the TOML file, the environment and flags; validate."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = config_path(args, env)
    if path is not None:
        for key, value in _read_toml(path).items():
            values[key] = _coerce(key, value, f"in {path}")
    for name in _FIELDS:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None and raw != "":
            values[name] = _coerce(name, raw, f"in ${ENV_PREFIX}{name.upper()}")
    for name in _FIELDS:
        raw = getattr(args, name, None) if args is not None else None
        if raw is not None:
            values[name] = _coerce(name, raw, f"(--{name.replace('_', '-')})")
    return _validate(Config(**values)), path


def environment_warnings(env: MappingT[str, str]) -> list[str]:
    """A warning for each ``GRAVITY_LED_*`` variable neither program reads (a typo is otherwise silently ignored)."""
    return unknown_environment(env, [name.upper() for name in _FIELDS] + list(OTHER_ENV))


def changed_options(old: Config, new: Config) -> set[str]:
    return {f.name for f in fields(Config) if getattr(old, f.name) != getattr(new, f.name)}


def replace(cfg: Config, **changes: Any) -> Config:
    return _validate(dataclasses.replace(cfg, **changes))
