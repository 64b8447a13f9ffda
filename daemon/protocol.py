"""The gravity-led wire protocol, declared once for the daemon and the client.

Sans-I/O, like the ``websockets`` library's own protocol layer: these are pure
functions from frames to values and back, with no sockets, clocks or logging,
so they can be tested exhaustively and shared by both programs.

Client -> daemon
    * text frame ``"x y z"``: three numbers separated by whitespace and/or one
      comma, surrounding whitespace allowed, Python/Java float syntax
      (``0.5``, ``-3``, ``1.0E-5``, ``.25``, ``+7.``).
    * binary frame: 12 bytes (three float32) or 24 bytes (three float64),
      little-endian.  A binary frame made only of characters of the text
      grammar (``0-9 + - . e E , space tab CR LF``) is read as text.
    * text frame ``{"type": "subscribe", "rate": HZ}``: ask for telemetry;
      ``{"type": "unsubscribe"}`` stops it.

Daemon -> client (only ever in answer to something the client sent)
    * ``{"type": "error", "error": CODE, "message": TEXT, "suppressed": N}``
      (:class:`ErrorMessage`)
    * ``{"type": "state", "leds": {"right": R, "left": L}, ...}``
      (:class:`StateMessage`)

Over HTTP: ``GET /status`` answers the :class:`Status` document.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, NamedTuple

from .errors import FrameError

__all__ = [
    "BUSY_CLOSE_CODE",
    "ConnectionCounts",
    "ErrorMessage",
    "FrameCounts",
    "LedLevels",
    "MappingDoc",
    "PinsDoc",
    "SERVER_MESSAGES",
    "StateMessage",
    "Status",
    "BUSY_REASON",
    "DEFAULT_PORT",
    "FrameError",
    "MAX_FRAME_BYTES",
    "MAX_TELEMETRY_HZ",
    "NUMBER_RE",
    "PROTOCOL_VERSION",
    "STANDARD_GRAVITY",
    "TLS_ONLY_ANSWER",
    "Subscribe",
    "Vector",
    "decode_server_message",
    "encode_binary",
    "encode_error",
    "parse_number",
    "encode_subscribe",
    "encode_text",
    "make_vector",
    "parse_frame",
    "parse_text",
]

DEFAULT_PORT = 5678
"""The article's port."""

PROTOCOL_VERSION = 1
"""This wire protocol's version, advertised over DNS-SD (TXT ``protocol=``,
:mod:`gravity_led.daemon.dnssd`): raise it on a change old clients cannot follow."""

MAX_FRAME_BYTES = 1024
"""Largest frame the daemon accepts by default; bigger ones close with 1009."""

BUSY_CLOSE_CODE = 1013
"""RFC 6455's "Try Again Later" (websockets' CloseCode.TRY_AGAIN_LATER): sent to a
second client while the LEDs are held. A number, so that importing the wire
format does not import websockets: the failsafe and the installer read the
configuration, which names DEFAULT_PORT, on every stop and every install."""

BUSY_REASON = "LEDs in use by another client"

TLS_ONLY_ANSWER = "This port speaks HTTPS only"
"""How the body of the daemon's 400 to plain HTTP on its TLS port begins
(daemon/http_rules.py); the client recognises it and suggests wss://."""

MAX_TELEMETRY_HZ = 20.0
"""Telemetry rate cap: enough for a live view, cheap on a Pi Zero."""

STANDARD_GRAVITY = 9.81
"""m/s^2, the length of a resting phone's gravity vector."""


class Vector(NamedTuple):
    """A gravity vector in any unit (only its direction matters)."""

    x: float
    y: float
    z: float


@dataclass(frozen=True, slots=True)
class Subscribe:
    """A request for telemetry at ``rate_hz`` (0 = stop)."""

    rate_hz: float


# One number: Python's and Java's decimal float syntax without underscores
# or hex (Java's Float.toString writes e.g. "1.0E-5").
_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_SEP = r"(?:\s*,\s*|\s+)"
# re.ASCII: Python's \d and \s would also match other scripts' digits and
# spaces (and float() would accept them); the wire format is ASCII.
_TEXT_RE = re.compile(rf"\s*({_NUM}){_SEP}({_NUM}){_SEP}({_NUM})\s*", re.ASCII)
NUMBER_RE = _NUM_RE = re.compile(_NUM, re.ASCII)
"""One number as the wire format spells it; the client's CSV, UDP and option parsers use it too."""
_TOKEN_SPLIT_RE = re.compile(r"\s*,\s*|\s+", re.ASCII)
_INF = math.inf
_new_vector = tuple.__new__  # Vector(x, y, z) without NamedTuple's Python-level __new__ (hot path)
_NON_FINITE_RE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
_TEXT_BYTES = frozenset(b"0123456789+-.eE, \t\r\n")
_F32 = struct.Struct("<3f")
_F64 = struct.Struct("<3d")


def make_vector(x: float, y: float, z: float) -> Vector:
    """Three floats as a :class:`Vector`, or :class:`FrameError` if the daemon
    would reject them (NaN, infinite, zero or overflowing length).

    For vectors that do not come from a frame (phone apps' JSON, CSV files).
    """
    # One hypot call rejects everything: it is NaN if a part is NaN, inf if
    # a part is inf or the length overflows, and 0 for the zero vector.
    n = math.hypot(x, y, z)
    if 0.0 < n < _INF:
        return _new_vector(Vector, (x, y, z))
    if n == 0.0:
        raise FrameError("zero_vector", "the vector has zero length, so it has no direction")
    if math.isfinite(x) and math.isfinite(y) and math.isfinite(z):
        raise FrameError("not_finite", "the vector is too long to normalise")
    raise FrameError("not_finite", "NaN and infinite values are not allowed")


def _explain_text(text: str) -> FrameError:
    """Say precisely why ``text`` is not three numbers (slow path only)."""
    stripped = text.strip()
    tokens = [t for t in _TOKEN_SPLIT_RE.split(stripped) if t] if stripped else []
    for token in tokens:
        if _NON_FINITE_RE.fullmatch(token):
            return FrameError("not_finite", "NaN and infinite values are not allowed")
        if not _NUM_RE.fullmatch(token):
            shown = token if len(token) <= 20 else token[:20] + "..."
            return FrameError("not_a_number", f"{shown!r} is not a number")
    if len(tokens) != 3:
        return FrameError("wrong_count", f"expected 3 numbers 'x y z', got {len(tokens)}")
    return FrameError("bad_separator", "numbers must be separated by whitespace and/or one comma")


class _UnexplainedText(FrameError):
    """A text frame that is not three numbers, its reason worked out only when
    asked for (the error reply or the log line, each within its budget):
    :func:`_explain_text` splits and matches every token, five times the cost
    of parsing a good frame, and a flood of bad frames must cost no more than
    a flood of good ones (issue 21.3)."""

    def __init__(self, text: str) -> None:
        Exception.__init__(self)
        self._text = text
        self._why: FrameError | None = None

    def _explained(self) -> FrameError:
        if self._why is None:
            self._why = _explain_text(self._text)
        return self._why

    @property  # type: ignore[override]
    def code(self) -> str:
        return self._explained().code

    @property  # type: ignore[override]
    def message(self) -> str:
        return self._explained().message

    def __str__(self) -> str:
        return self.message


def parse_number(text: str) -> float:
    """One number in the wire format's syntax (``1.0E-5``, ``.5``; no ``nan``, ``inf`` or ``1_0``),
    or :class:`FrameError`; for the numbers that the client reads outside frames."""
    token = text.strip()
    if _NUM_RE.fullmatch(token):
        value = float(token)
        if value not in (_INF, -_INF):
            return value
        raise FrameError("not_finite", f"{token!r} is too large")
    raise _explain_text(token) if _NON_FINITE_RE.fullmatch(token) else FrameError("not_a_number", f"{token!r} is not a number")


def parse_text(text: str) -> Vector:
    """Parse ``"x y z"`` into a finite, non-zero :class:`Vector`.

    Raises :class:`FrameError` and nothing else, whatever ``text`` holds.
    """
    m = _TEXT_RE.fullmatch(text)
    if m is None:
        raise _explain_text(text)
    # float() of a matched literal cannot fail; it may overflow to inf.
    x, y, z = map(float, m.groups())
    return make_vector(x, y, z)


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    # json.loads keeps the last of two equal keys; another parser might keep
    # the first.  A message that means different things to different readers
    # is refused rather than guessed at.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise FrameError("bad_json", "a JSON message must not repeat a key")
    return obj


def _parse_control(text: str) -> Subscribe:
    try:
        # Every number as a float: an integer of any size becomes a float
        # (inf if it is huge), never an int that overflows later.
        msg = json.loads(text, parse_int=float, object_pairs_hook=_no_duplicate_keys)
    except FrameError:
        raise
    except (ValueError, RecursionError):
        raise FrameError("bad_json", "a frame starting with '{' must be a JSON object") from None
    if not isinstance(msg, dict):
        raise FrameError("bad_json", "a frame starting with '{' must be a JSON object")
    kind = msg.get("type")
    if kind == "unsubscribe":
        return Subscribe(0.0)
    if kind != "subscribe":
        raise FrameError("unknown_type", "the only JSON messages are 'subscribe' and 'unsubscribe'")
    rate = msg.get("rate", MAX_TELEMETRY_HZ)
    if type(rate) is not float or not 0.0 < rate < _INF:  # NaN fails both comparisons
        raise FrameError("bad_rate", "'rate' must be a positive number of messages per second")
    return Subscribe(min(rate, MAX_TELEMETRY_HZ))


def parse_frame(data: str | bytes | bytearray | memoryview) -> Vector | Subscribe:
    """Parse one WebSocket message (``str`` = text frame, bytes = binary).

    Raises :class:`FrameError` and nothing else, whatever ``data`` holds.
    """
    if type(data) is str:
        if data[:1] == "{":
            return _parse_control(data)
        # Fast path for printable ASCII without "_" or ",": there the only
        # separator is " ", and float() reads exactly our number grammar (plus
        # nan/inf, which make_vector() rejects as not_finite), so three
        # float()s decide and no regex runs.  split() stops at a fourth token:
        # a long bad frame costs no more than a good one (issue 21.3).
        if data.isascii() and data.isprintable() and "_" not in data and "," not in data:
            parts = data.split(None, 3)
            if len(parts) == 3:
                try:
                    x, y, z = float(parts[0]), float(parts[1]), float(parts[2])
                except ValueError:
                    pass
                else:
                    return make_vector(x, y, z)
            raise _UnexplainedText(data)
        m = _TEXT_RE.fullmatch(data)
        if m is not None:
            x, y, z = map(float, m.groups())
            return make_vector(x, y, z)
        raise _UnexplainedText(data)
    if isinstance(data, str):  # a str subclass
        return parse_frame(str(data))
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FrameError("bad_type", f"a frame is text or bytes, not {type(data).__name__}")
    data = bytes(data)
    if data and _TEXT_BYTES.issuperset(data):
        return parse_text(data.decode("ascii"))
    n = len(data)
    if n == 12:
        return make_vector(*_F32.unpack(data))
    if n == 24:
        return make_vector(*_F64.unpack(data))
    raise FrameError(
        "bad_length", f"a binary frame must be 12 bytes (3 x float32) or 24 bytes (3 x float64), got {n}"
    )


def encode_text(v: Vector | tuple[float, float, float]) -> str:
    """The text frame for ``v``, exact (``repr`` round-trips floats)."""
    return f"{v[0]!r} {v[1]!r} {v[2]!r}"


def encode_binary(v: Vector | tuple[float, float, float], *, double: bool = False) -> bytes:
    """The binary frame for ``v``: 12 bytes of float32 (24 of float64 if ``double``).

    Raises :class:`FrameError` for a value too large for float32.
    """
    try:
        return (_F64 if double else _F32).pack(*v)
    except (OverflowError, struct.error):
        raise FrameError("not_finite", "a value is too large for a float32 frame; send text or float64") from None


def encode_subscribe(rate_hz: float = MAX_TELEMETRY_HZ) -> str:
    return json.dumps({"type": "subscribe", "rate": rate_hz})


# ---- daemon -> client, and the /status document ---------------------------
# Declared here once: the daemon encodes them, the client decodes them, and
# tests/unit/test_protocol.py checks the phone page (daemon/web/*.js) reads only
# fields that exist.


@dataclass(frozen=True, slots=True)
class LedLevels:
    """PWM duty cycles in [0, 1], as the daemon last wrote them."""

    right: float
    left: float


@dataclass(frozen=True, slots=True)
class FrameCounts:
    """Frames the daemon accepted and rejected since it started, and those it
    skipped unparsed, superseded in a backlog (daemon/wsadapter.py, newest())."""

    accepted: int
    rejected: int
    superseded: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StateMessage:
    """``{"type": "state", ...}``: telemetry, sent to a subscribed client."""

    TYPE: ClassVar[str] = "state"
    leds: LedLevels
    client: str | None
    frames: FrameCounts
    rate_hz: float

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, **asdict(self)}

    def encode(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StateMessage:
        return cls(
            leds=LedLevels(**d["leds"]),
            client=d["client"],
            frames=FrameCounts(**d["frames"]),
            rate_hz=d["rate_hz"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorMessage:
    """``{"type": "error", ...}``: the answer to a rejected frame;
    ``suppressed`` counts the errors not answered since the last one."""

    TYPE: ClassVar[str] = "error"
    error: str
    message: str
    suppressed: int = 0

    @classmethod
    def of(cls, err: FrameError, *, suppressed: int = 0) -> ErrorMessage:
        return cls(error=err.code, message=err.message, suppressed=suppressed)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, **asdict(self)}

    def encode(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ErrorMessage:
        return cls(error=str(d["error"]), message=str(d["message"]), suppressed=int(d.get("suppressed") or 0))


@dataclass(frozen=True, slots=True)
class ConnectionCounts:
    """Open connections (pending handshakes included), the caps, and the
    refusals by kind since start."""

    open: int
    max: int
    pending: int = 0
    max_per_address: int = 0
    refused: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PinsDoc:
    right: int | str
    left: int | str
    frequency_hz: float


@dataclass(frozen=True, slots=True, kw_only=True)
class MappingDoc:
    axis: str
    invert: bool
    dead_zone_deg: float
    full_scale_deg: float
    curve: str
    gamma: float
    smoothing_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """The ``/status`` document: the state message's fields and the rest."""

    state: StateMessage
    version: str
    uptime_s: float
    busy_refused: int
    connections: ConnectionCounts
    pin_factory: str
    pins: PinsDoc
    mapping: MappingDoc
    stale_after_s: float
    pin_writes: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["state"]
        state = self.state.to_dict()
        del state["type"]
        return {**state, **d}

    def encode(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Status:
        return cls(
            state=StateMessage.from_dict(d),
            version=d["version"],
            uptime_s=d["uptime_s"],
            busy_refused=d["busy_refused"],
            connections=ConnectionCounts(**d["connections"]),
            pin_factory=d["pin_factory"],
            pins=PinsDoc(**d["pins"]),
            mapping=MappingDoc(**d["mapping"]),
            stale_after_s=d["stale_after_s"],
            pin_writes=d["pin_writes"],
        )


SERVER_MESSAGES: dict[str, type[StateMessage] | type[ErrorMessage]] = {m.TYPE: m for m in (StateMessage, ErrorMessage)}
"""Every message the daemon sends, by its ``type``."""


def encode_error(err: FrameError, *, suppressed: int = 0) -> str:
    """The daemon's answer to a rejected frame."""
    return ErrorMessage.of(err, suppressed=suppressed).encode()


def decode_server_message(text: str | bytes) -> StateMessage | ErrorMessage:
    """Decode a daemon message; raises :class:`FrameError` if it is not one."""
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):
        raise FrameError("bad_json", "the daemon sent something that is not JSON") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise FrameError("bad_json", "the daemon sent a JSON value without a 'type'")
    kind = SERVER_MESSAGES.get(msg["type"])
    if kind is None:
        raise FrameError("unknown_type", f"the daemon sent a message of unknown type {msg['type']!r}")
    try:
        return kind.from_dict(msg)
    except (KeyError, TypeError, ValueError):
        raise FrameError("bad_json", f"the daemon sent a {msg['type']!r} message without the fields it must have") from None
