"""Phone apps' wire formats -> gravity vectors: pure, sans-I/O readers.

Each reader takes what one app sent (a UDP datagram, a WebSocket message, an
HTTP body, a phyphox ``/get`` answer) and returns the vectors in it, an empty
list for a message that carries no gravity (another sensor on the same
socket), or raises :class:`FrameError` whose ``message`` says in plain words
why the input cannot be read.  Nothing here touches a socket or a clock; the
I/O lives in :mod:`client.phones` and :mod:`client.receivers`.

The exact reading rule of each format is documented in docs/phones.md
("Phone apps"); keep the two in step.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Callable, Iterable, Iterator, Sequence

from gravity_led.daemon.protocol import NUMBER_RE as _NUMBER  # the daemon's own number syntax (Python/Java floats)
from gravity_led.daemon.protocol import FrameError, Vector, make_vector

__all__ = [
    "DEFAULT_OSC_ADDRESSES",
    "FORMATS",
    "SENSORSTREAM_IDS",
    "PhyphoxReader",
    "SensorLoggerReader",
    "Reading",
    "detect_format",
    "flip",
    "read_csv",
    "read_datagram",
    "read_json",
    "read_osc",
    "read_sensorlogger",
    "read_sensorserver",
    "read_sensorstream",
    "sensor_names",
]

FORMATS = ("auto", "csv", "sensorstream", "json", "osc")

ANDROID_GRAVITY = "android.sensor.gravity"

SENSORSTREAM_IDS = {1: 3, 3: 3, 4: 3, 5: 3, 6: 3, 7: 3, 8: 1, 81: 3, 82: 3, 83: 3, 84: 3, 85: 9, 86: 4, 87: 1, 88: 1}
"""Sensorstream IMU+GPS sensor id -> number of values after it, from the app's PreferencesActivity.java
(CSV_ID_*): 1 GPS latitude/longitude/altitude, 3 accelerometer, 4 gyroscope, 5 magnetometer, 6 GPS
position (WGS84 x/y/z), 7 GPS velocity, 8 GPS UTC time, 81 orientation, 82 linear acceleration,
83 gravity, 84 rotation vector, 85 orientation matrix, 86 quaternion, 87 pressure, 88 battery temperature."""
SENSORSTREAM_WHOLE_IDS = frozenset({8, 88})
"""Ids whose values the app writes as whole numbers (%d): GPS UTC time and battery temperature; every
other value is written with a decimal point (%.3f, %10.6f, ...), the timestamp too (%.5f seconds)."""
SENSORSTREAM_GRAVITY = 83
SENSORSTREAM_ACCELEROMETER = 3

DEFAULT_OSC_ADDRESSES = ("/*/gravity", "/gravity", "/gyrosc/grav")
"""ZIG SIM (``/ZIGSIM/<device>/gravity`` or ``/<device>/gravity``), Sensors2OSC (``/gravity``), GyrOSC."""


def flip(v: Vector) -> Vector:
    """All three axes negated: iOS reports gravity pointing the other way from Android."""
    return Vector(-v.x, -v.y, -v.z)


# --------------------------------------------------------------------------- CSV (HyperIMU and friends)

_FIELD_SPLIT = re.compile(r"[,;\s]+")
_LINE_SPLIT = re.compile(r"[\r\n#]+")  # HyperIMU ends a reading with CR LF, or '#' as an option
_BARE_INT = re.compile(r"\d{1,3}", re.ASCII)
_WHOLE = re.compile(r"[+-]?\d+", re.ASCII)
_SECONDS = re.compile(r"\d+\.\d+", re.ASCII)  # Sensorstream's timestamp, String.format("%.5f", seconds)
_TIMESTAMP = re.compile(r"\d{10,}")
_MAC = re.compile(r"[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}")


def _lines(data: bytes | str) -> list[str]:
    text = data.decode("utf-8", errors="replace") if isinstance(data, (bytes, bytearray, memoryview)) else data
    return [line for line in _LINE_SPLIT.split(text) if line.strip()]


def _fields(line: str) -> list[str]:
    return [f for f in _FIELD_SPLIT.split(line.strip()) if f]


def _vector(values: Sequence[Any]) -> Vector:
    """Three JSON/OSC values as a Vector; FrameError for non-numbers (strings too), NaN, zero length."""
    xyz = list(values[:3])
    if len(xyz) < 3 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in xyz):
        raise FrameError("not_a_number", f"expected three numbers, got {xyz!r}"[:120])
    try:
        return make_vector(float(xyz[0]), float(xyz[1]), float(xyz[2]))
    except OverflowError:  # a JSON integer too big for a float
        raise FrameError("not_finite", "the vector is too long to normalise") from None


def _csv_values(fields: list[str]) -> list[str]:
    """The run of values after the leading metadata (names, a 10+-digit timestamp, a MAC address)."""
    i = 0
    while i < len(fields) and (not _NUMBER.fullmatch(fields[i]) or _TIMESTAMP.fullmatch(fields[i]) or _MAC.fullmatch(fields[i])):
        i += 1
    values: list[str] = []
    for f in fields[i:]:
        if not _NUMBER.fullmatch(f):
            break  # GPS NMEA sentences and the like end the run
        values.append(f)
    return values


def read_csv(data: bytes | str, *, columns: tuple[int, int, int] | None = None) -> list[Vector]:
    """One vector per line ("reading"); see docs/phones.md for the rule.

    Without ``columns`` a line must hold exactly three values (one sensor):
    with more, which three are gravity depends on the app's settings, so the
    line is rejected rather than guessed.  ``columns`` are 1-based positions
    among the values.
    """
    return _each_line(data, lambda line: _csv_line(line, columns))


def _each_line(data: bytes | str, read_line: Callable[[str], Vector]) -> list[Vector]:
    """The vectors of the lines that can be read; the last line's reason if none can."""
    vectors: list[Vector] = []
    error: FrameError | None = None
    for line in _lines(data):
        try:
            vectors.append(read_line(line))
        except FrameError as e:
            error = e
    if not vectors:
        raise error or FrameError("empty", "the datagram is empty")
    return vectors


def _csv_line(line: str, columns: tuple[int, int, int] | None) -> Vector:
    values = _csv_values(_fields(line))
    if columns is None:
        if len(values) == 3:
            return make_vector(*(float(n) for n in values))
        if len(values) < 3:
            raise FrameError("wrong_count", f"expected 3 numbers, got {len(values)}")
        if _resembles_sensorstream(_fields(line)):
            raise FrameError(
                "ambiguous",
                f"{len(values)} values in Sensorstream's order (number, sensor id, values) but without its seconds "
                "timestamp (1234.56789) and decimal values, so the line cannot be read unambiguously",
            )
        raise FrameError(
            "ambiguous",
            f"{len(values)} values (several sensors): give the positions of gravity's three with --columns, "
            "e.g. --columns 4,5,6 when gravity is the second sensor set in the app",
        )
    if max(columns) > len(values):
        raise FrameError("wrong_count", f"--columns {','.join(map(str, columns))} but the line has {len(values)} values")
    return make_vector(*(float(values[c - 1]) for c in columns))


# --------------------------------------------------------------------------- Sensorstream IMU+GPS


def _resembles_sensorstream(fields: list[str]) -> bool:
    """A number, then a known sensor id, then more: the order of a Sensorstream line, whatever its numbers look like."""
    return len(fields) >= 5 and bool(_NUMBER.fullmatch(fields[0])) and _BARE_INT.fullmatch(fields[1]) is not None and int(fields[1]) in SENSORSTREAM_IDS


def _sensorstream_groups(fields: list[str]) -> dict[int, list[str]] | None:
    """``timestamp, id, v.., id, v..`` -> {id: values}; None if the line does not have that layout.

    Strict, as the app writes it: the timestamp in seconds with a fractional part and every value
    with a decimal point (except the whole-number ids), so that a line of bare integers such as
    ``1 3 0 4 8`` is not taken for one.
    """
    if not _resembles_sensorstream(fields) or not _SECONDS.fullmatch(fields[0]):
        return None
    groups: dict[int, list[str]] = {}
    i = 1
    while i < len(fields):
        if not _BARE_INT.fullmatch(fields[i]):
            return groups if groups else None
        sid = int(fields[i])
        n = SENSORSTREAM_IDS.get(sid)
        if n is None:
            groups[-sid] = []  # an id we cannot measure: everything after it is unreadable
            return groups
        values = fields[i + 1 : i + 1 + n]
        if len(values) < n or not all(_NUMBER.fullmatch(v) for v in values):
            return None
        if sid not in SENSORSTREAM_WHOLE_IDS and any(_WHOLE.fullmatch(v) for v in values):
            return None
        groups[sid] = values
        i += 1 + n
    return groups


def read_sensorstream(data: bytes | str, *, sensor_id: int | None = None) -> list[Vector]:
    """Sensorstream IMU+GPS lines: the gravity (83) triple, else the accelerometer's (3), or ``sensor_id``'s."""
    return _each_line(data, lambda line: _sensorstream_line(line, sensor_id))


def _sensorstream_line(line: str, sensor_id: int | None) -> Vector:
    groups = _sensorstream_groups(_fields(line))
    if groups is None:
        raise FrameError(
            "not_sensorstream", "not Sensorstream's 'timestamp, id, x, y, z, id, ...' layout (seconds like 1234.56789, values like 0.147)"
        )
    unknown = [-k for k in groups if k < 0]
    wanted = (sensor_id,) if sensor_id is not None else (SENSORSTREAM_GRAVITY, SENSORSTREAM_ACCELEROMETER)
    for sid in wanted:
        if sid in groups:
            # Gravity first: an accelerometer seen before an unknown id might hide a gravity group after it.
            if sid == SENSORSTREAM_GRAVITY or not unknown or sensor_id is not None:
                return make_vector(*(float(v) for v in groups[sid]))
    if unknown:
        raise FrameError("ambiguous", f"Sensorstream sensor id {unknown[0]} is unknown, so the values after it cannot be placed")
    names = "sensor id " + str(sensor_id) if sensor_id is not None else "gravity (83) or accelerometer (3)"
    raise FrameError("no_gravity", f"the Sensorstream line has no {names}; tick it in the app")


# --------------------------------------------------------------------------- JSON (SensaGram, SensorServer, ZIG SIM)


def read_json(data: bytes | str, *, sensor: str | None = None) -> list[Vector]:
    """SensaGram/SensorServer ``{"type", "timestamp", "values"}`` or ZIG SIM's ``{"sensordata": {...}}``.

    ``sensor`` is the Android sensor type (default ``android.sensor.gravity``)
    or ZIG SIM's key (default ``gravity``).  A message of another type is no
    error (several sensors share the stream): it gives no vector.
    """
    doc = _json(data, "not valid JSON")
    if not isinstance(doc, dict):
        raise FrameError("not_json", "the JSON is not an object")
    if "sensordata" in doc:
        return _zigsim(doc, sensor)
    if "values" not in doc:
        if "type" in doc:  # SensaGram's GPS ("android.gps") has no values
            return []
        raise FrameError("no_values", 'the JSON has no "values"')
    kind = doc.get("type")
    if kind is not None and str(kind).lower() != (sensor or ANDROID_GRAVITY).lower():
        return []
    values = doc["values"]
    if not isinstance(values, list):
        raise FrameError("not_a_number", '"values" is not a list')
    return [_vector(values)]


def _json(data: bytes | str, reason: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: '[[[[...' sent on purpose
        raise FrameError("not_json", reason) from None


def _zigsim(doc: dict, sensor: str | None) -> list[Vector]:
    key = sensor or "gravity"
    data = doc["sensordata"]
    if not isinstance(data, dict):
        raise FrameError("no_values", '"sensordata" is not an object')
    reading = data.get(key)
    if reading is None:
        raise FrameError("no_gravity", f'the ZIG SIM message has no "{key}": turn on {key.capitalize()} in the app')
    if not isinstance(reading, dict):
        raise FrameError("not_a_number", f'"{key}" is not an object')
    return [_vector([reading.get("x"), reading.get("y"), reading.get("z")])]


def read_sensorserver(message: str | bytes, *, sensor: str = ANDROID_GRAVITY) -> list[Vector]:
    """One SensorServer message: ``{"values", "timestamp", "accuracy"}``, plus ``"type"`` on /sensors/connect."""
    return read_json(message, sensor=sensor)


# --------------------------------------------------------------------------- OSC (ZIG SIM, Sensors2OSC, GyrOSC)


def read_osc(data: bytes, *, addresses: Iterable[str] = DEFAULT_OSC_ADDRESSES) -> list[Vector]:
    """OSC messages and bundles (nested too), parsed by python-osc; messages whose address matches
    one of the ``fnmatch`` patterns ``addresses`` (case-insensitive) give a vector from their first three
    arguments, others are ignored."""
    patterns = [a.lower() for a in addresses]
    vectors: list[Vector] = []
    for msg in _osc_messages(data):
        address = msg.address.lower()
        if any(fnmatchcase(address, p) for p in patterns):
            vectors.append(_vector(list(msg.params)))
    return vectors


def _osc_messages(data: bytes) -> list[Any]:
    """The messages of an OSC packet, bundles opened; FrameError for what python-osc cannot read whole."""
    from pythonosc.osc_packet import OscPacket  # here, not at the top: only OSC users pay for it

    try:
        with _python_osc_warnings() as skipped:
            packet = OscPacket(bytes(data))
    except Exception:  # ParseError, and anything else: a third-party parser fed by strangers on the LAN
        raise FrameError("not_osc", "not a valid OSC message or bundle") from None
    if skipped:
        raise FrameError("not_osc", f"python-osc cannot read all of it ({skipped[0]})"[:120])
    return [timed.message for timed in packet.messages]


class _Catch(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.messages.append(record.getMessage())
        return False


@contextlib.contextmanager
def _python_osc_warnings() -> Iterator[list[str]]:
    """The warnings python-osc logs while parsing, kept from the log.

    python-osc skips what it cannot read (an unknown argument type, a bundle
    element that is neither a message nor a bundle) with ``logging.warning``
    on the root logger: without this, one stderr line per datagram a stranger
    sends, and a skipped argument would shift the ones after it.  The
    NullHandler stops ``logging.warning`` from calling ``basicConfig``.
    """
    root = logging.getLogger()
    catch, guard = _Catch(), logging.NullHandler()
    root.addFilter(catch)
    root.addHandler(guard)
    try:
        yield catch.messages
    finally:
        root.removeHandler(guard)
        root.removeFilter(catch)


# --------------------------------------------------------------------------- UDP dispatch


def detect_format(data: bytes) -> str:
    """``osc`` when it starts with ``/`` or ``#bundle``, ``json`` with ``{``, else ``csv``."""
    head = data.lstrip()[:8]
    if data[:1] == b"/" or data[:8] == b"#bundle\x00":
        return "osc"
    if head[:1] == b"{":
        return "json"
    return "csv"


@dataclass(frozen=True, kw_only=True)
class Reading:
    """How to read datagrams: the UDP subcommand's options, pure."""

    format: str = "auto"
    columns: tuple[int, int, int] | None = None
    """Plain CSV only: positions of gravity's x, y, z among a line's values (Sensorstream names its sensors)."""
    sensor: str | None = None
    """JSON: Android sensor type or ZIG SIM key; Sensorstream: the sensor id."""
    osc_addresses: tuple[str, ...] = DEFAULT_OSC_ADDRESSES

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.columns is not None and self.format not in ("auto", "csv"):
            why = ": Sensorstream names its sensors, pick one with --sensor ID" if self.format == "sensorstream" else ""
            raise ValueError(f"--columns picks values of plain CSV lines, not with --format {self.format}{why}")


def read_datagram(data: bytes, reading: Reading = Reading()) -> list[Vector]:
    """One datagram in the chosen format, or the detected one with ``auto``."""
    fmt = reading.format if reading.format != "auto" else detect_format(data)
    if fmt == "osc":
        return read_osc(data, addresses=reading.osc_addresses)
    if fmt == "json":
        return read_json(data, sensor=reading.sensor)
    sensor_id = _sensorstream_id(reading.sensor)
    if fmt == "sensorstream":
        return read_sensorstream(data, sensor_id=sensor_id)
    if reading.format == "auto":
        lines = _lines(data)
        if lines and _sensorstream_groups(_fields(lines[0])) is not None:
            if reading.columns is not None:  # counted as CSV values, its timestamp and ids would make a wrong vector
                raise FrameError(
                    "columns_sensorstream",
                    "--columns does not apply to Sensorstream lines, whose sensors are named by id: "
                    "leave it out (gravity, else the accelerometer) or pick one with --sensor ID",
                )
            return read_sensorstream(data, sensor_id=sensor_id)
    return read_csv(data, columns=reading.columns)


def _sensorstream_id(sensor: str | None) -> int | None:
    return int(sensor) if sensor is not None and sensor.isdigit() else None


# --------------------------------------------------------------------------- what came instead of gravity


def sensor_names(data: bytes | str) -> list[str]:
    """The sensors a reading that held no gravity came from, as the app names them, each once.

    For telling the user what the app does send: SensaGram's and SensorServer's ``"type"`` without
    ``android.sensor.``, OSC addresses (what ``--osc-address`` takes), Sensor Logger's sample names.
    Nothing for input that names no sensor or cannot be read.
    """
    raw = data.encode("utf-8", errors="replace") if isinstance(data, str) else bytes(data)
    try:
        if detect_format(raw) == "osc":
            return list(dict.fromkeys(str(m.address) for m in _osc_messages(raw)))
        doc = _json(raw, "")
    except FrameError:
        return []
    if not isinstance(doc, dict):
        return []
    if isinstance(doc.get("payload"), list):  # Sensor Logger
        return list(dict.fromkeys(str(s["name"]) for s in doc["payload"] if isinstance(s, dict) and "name" in s))
    if "type" in doc:  # SensaGram, SensorServer's /sensors/connect
        return [str(doc["type"]).removeprefix("android.sensor.")]
    return []


# --------------------------------------------------------------------------- Sensor Logger (HTTP push)

SENSORLOGGER_SOURCES = ("gravity", "totalacceleration")
"""Newest gravity sample of a batch; else the accelerometer with gravity included (Android's TotalAcceleration).
Sensor Logger's "accelerometer" excludes gravity (awesome-sensor-logger UNITS.md), so it is never used."""


def _sensorlogger_newest(body: bytes | str) -> tuple[Vector, float | None, object] | None:
    """The newest gravity (else total acceleration) sample of a push: its vector,
    its ``time`` (None if not a number) and the batch's ``sessionId``; None for a batch without one."""
    doc = _json(body, "the POST body is not valid JSON")
    if not isinstance(doc, dict) or not isinstance(doc.get("payload"), list):
        raise FrameError("no_payload", 'the POST body has no "payload" list: is this Sensor Logger?')
    samples = [s for s in doc["payload"] if isinstance(s, dict)]
    names = {str(s.get("name", "")).lower() for s in samples}
    for name in SENSORLOGGER_SOURCES:
        chosen = [s for s in samples if str(s.get("name", "")).lower() == name]
        if chosen:
            newest = max(chosen, key=lambda s: _sample_time(s) if _sample_time(s) is not None else -math.inf)
            values = newest.get("values")
            if not isinstance(values, dict):
                raise FrameError("not_a_number", f'the {name} sample has no "values" object')
            session = doc.get("sessionId")
            return _vector([values.get("x"), values.get("y"), values.get("z")]), _sample_time(newest), session if isinstance(session, (str, int)) else None
    if "accelerometer" in names:
        raise FrameError("no_gravity", "the batch has no gravity: turn on Gravity in Sensor Logger (its accelerometer excludes gravity)")
    return None


def _sample_time(sample: dict) -> float | None:
    t = sample.get("time")
    return float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) else None


def read_sensorlogger(body: bytes | str) -> list[Vector]:
    """One HTTP push: ``{"messageId", "sessionId", "deviceId", "payload": [{"name", "time", "values"}, ...]}``.

    Returns the newest gravity (else total acceleration) sample as one vector;
    an empty list for a batch without motion samples (the app's test push).
    """
    found = _sensorlogger_newest(body)
    return [found[0]] if found else []


@dataclass
class SensorLoggerReader:
    """Sensor Logger's pushes, in the order of their readings.

    The app posts each batch as its own HTTP request, and a late one (a retry,
    a request that overtook another on a second connection) would move the
    LEDs back to an old tilt: a batch whose newest reading is older, by the
    payload's own ``time``, than the newest one already applied is ignored
    (an empty list). A new recording (another ``sessionId``) starts afresh; a
    sample without a numeric ``time`` cannot be ordered and is applied.
    """

    newest: float | None = None
    session: object = None
    late: int = 0
    """Batches ignored for coming late."""

    def read(self, body: bytes | str) -> list[Vector]:
        found = _sensorlogger_newest(body)
        if found is None:
            return []
        vector, at, session = found
        if session != self.session:
            self.session, self.newest = session, None
        if at is not None:
            if self.newest is not None and at < self.newest:
                self.late += 1
                return []
            self.newest = at
        return [vector]


# --------------------------------------------------------------------------- phyphox


@dataclass
class PhyphoxReader:
    """phyphox remote access, incremental: which ``/get`` to ask next, and what its answer holds.

    With a time buffer (``acc_time`` in "Acceleration with g"), each request
    asks for the samples newer than the last one seen
    (``accX=T|acc_time&...``), so no sample is repeated or skipped; without
    one, the newest value of each buffer.  Samples are only taken while
    ``status.measuring`` is true.
    """

    buffers: tuple[str, str, str]
    time_buffer: str | None = "acc_time"
    threshold: float | None = None
    measuring: bool | None = None
    session: str | None = None
    _has_time: bool | None = field(default=None, repr=False)

    def query(self) -> str:
        names = list(self.buffers)
        if self.time_buffer is None or self._has_time is False:
            return "/get?" + "&".join(_q(n) for n in names)
        if self.threshold is None:
            return "/get?" + "&".join(_q(n) for n in [*names, self.time_buffer])
        t = repr(self.threshold)
        tb = _q(self.time_buffer)
        return "/get?" + "&".join(f"{_q(n)}={t}|{tb}" for n in names) + f"&{tb}={t}"

    def missing(self, data: dict) -> list[str]:
        """Buffers the experiment does not have (checked on the first answer)."""
        have = data.get("buffer") if isinstance(data.get("buffer"), dict) else {}
        return [b for b in self.buffers if b not in have]

    def read(self, data: dict) -> tuple[list[Vector], str | None]:
        """One ``/get`` answer -> (new vectors, a sentence when measuring started or stopped)."""
        status = data.get("status") if isinstance(data.get("status"), dict) else {}
        measuring = bool(status.get("measuring", False))
        session = status.get("session")
        note = None
        if measuring != self.measuring:
            if self.measuring is not None or not measuring:
                note = (
                    "phyphox is measuring again; streaming"
                    if measuring
                    else "phyphox is not measuring (paused or the timed run ended): sending nothing, the LEDs go dark"
                )
            self.threshold = None  # a restart may clear the buffers and the clock
        if session != self.session:
            self.threshold = None
        self.measuring, self.session = measuring, session
        buffers = data.get("buffer") if isinstance(data.get("buffer"), dict) else {}
        if self.time_buffer is not None and self._has_time is None:
            self._has_time = self.time_buffer in buffers
        if not measuring:
            return [], note
        columns = [_buffer(buffers, n) for n in self.buffers]
        times = _buffer(buffers, self.time_buffer) if self._has_time else []
        n = min(len(c) for c in columns)
        if self._has_time:
            n = min(n, len(times))
        vectors = []
        for xyz in zip(*(c[len(c) - n :] for c in columns)) if n else ():
            try:
                vectors.append(make_vector(*(float(v) for v in xyz)))
            except (TypeError, ValueError):  # null before the first sample, NaN
                continue
        if self._has_time and times:
            last = times[-1]
            if isinstance(last, (int, float)) and not isinstance(last, bool) and math.isfinite(last):
                self.threshold = float(last)
        return vectors, note


def _q(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _buffer(buffers: dict, name: str | None) -> list:
    entry = buffers.get(name) if name is not None else None
    values = entry.get("buffer") if isinstance(entry, dict) else None
    return values if isinstance(values, list) else []
