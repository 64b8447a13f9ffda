"""Faithful fakes of what each phone app sends, one builder per app and format.

Each builder follows the app's own source or documentation, cited beside it,
so the tests read what a real phone would send (and not what our reader
happens to like).  Used by test_phone_formats.py (pure) and test_phone_e2e.py
(against the real daemon).
"""

from __future__ import annotations

import json
from typing import Sequence

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

Triple = Sequence[float]


def _java_float(v: float) -> str:
    # Java's Float.toString always has a '.' (3.0, not 3): what Android apps write.
    text = repr(float(v))
    return text if ("." in text or "e" in text or "E" in text) else text + ".0"


# HyperIMU: ianovir/HIMUServer README.md ("Protocols and Data Format"): all sensors' values of one
# sample in one comma-separated line, in the order chosen in the app's settings, three values per
# sensor; the timestamp and the MAC address "at the very beginning", GPS at the end; each line ends
# with CR LF or, as an option, '#'.
def hyperimu_line(
    *sensors: Triple, timestamp_ms: int | None = None, mac: str | None = None, terminator: str = "\r\n"
) -> bytes:
    fields: list[str] = []
    if timestamp_ms is not None:
        fields.append(str(timestamp_ms))
    if mac is not None:
        fields.append(mac)
    for values in sensors:
        fields += [_java_float(v) for v in values]
    return (",".join(fields) + terminator).encode()


# Sensorstream IMU+GPS (de.lorenz_fenster.sensorstreamgps): its PreferencesActivity.java (the app's
# source as published in Tilak1996/FinalYrProj, src/de/lorenz_fenster/sensorstreamgps/), onSensorChanged()
# and addSensorToString(): String.format("%.5f", timestamp_sec) then ", %d, %.3f,%.3f,%.3f" per sensor
# (CSV_ID_ACCELEROMETER 3, GYROSCOPE 4, MAG 5, ORI 81, LIN_ACC 82, GRA 83, ROT_VEC 84, then
# ", 85,<9 values>" and ", 86,<4 values>" after a rotation vector, ", 87, %.3f" pressure,
# ", 88, %d" battery temperature); with GPS, ", 1, %10.6f,%11.6f,%6.1f" right after the timestamp and
# ", 6, ...", ", 7, ...", ", 8, %d" at the end.
def sensorstream_line(t_s: float, groups: Sequence[tuple[int, Sequence[float]]], *, gps: Triple | None = None) -> bytes:
    parts = [f"{t_s:.5f}"]
    if gps is not None:
        parts.append(f", 1, {gps[0]:10.6f},{gps[1]:11.6f},{gps[2]:6.1f}")
    for sid, values in groups:
        if sid in (85, 86):
            parts.append(f", {sid}," + ",".join(f"{v:.3f}" for v in values))
        elif sid == 88:
            parts.append(f", {sid}, {int(values[0])}")
        else:
            parts.append(f", {sid}, " + ",".join(f"{v:.3f}" for v in values))
    if gps is not None:
        parts.append(", 6, 4160000.123, 800000.456, 4760000.789, 7,  0.010, 0.020,-0.030, 8, 1764167400123")
    return "".join(parts).encode()


# SensaGram: umer0586/SensaGram app/src/main/java/.../data/streamer/SensorStreamer.kt,
# onSensorChanged(): one UDP datagram per sensor event, JSON {"timestamp", "values", "type"} with
# type the Android string type (android.sensor.gravity, android.sensor.gyroscope, ...).
def sensagram_datagram(sensor_type: str, values: Triple, timestamp_ns: int = 3925657519043709) -> bytes:
    return json.dumps({"timestamp": timestamp_ns, "values": list(values), "type": sensor_type}).encode()


# SensorServer: umer0586/SensorServer app/src/main/java/.../websocketserver/SensorWebSocketServer.kt,
# onSensorChanged(): {"values", "timestamp", "accuracy"} on /sensor/connect; on /sensors/connect the
# same plus "type" (the sensor's string type).
def sensorserver_message(values: Triple, sensor_type: str | None = None, timestamp_ns: int = 1_000_000) -> str:
    message: dict = {"values": list(values), "timestamp": timestamp_ns, "accuracy": 3}
    if sensor_type is not None:
        message["type"] = sensor_type
    return json.dumps(message)


# ZIG SIM: https://1-10.github.io/zigsim/ (features/motion.html): gravity in G's; OSC address
# /(deviceUUID)/gravity with x, y, z (the app prefixes /ZIGSIM), JSON keys gravity.x/.y/.z under
# "sensordata", beside "device" and "timestamp". iOS reports gravity with the opposite sign.
ZIGSIM_UUID = "A1B2C3D4-0000-4000-8000-0123456789AB"


def zigsim_json(gravity: Triple, accel: Triple = (0.0, 0.0, 0.0), *, with_gravity: bool = True) -> bytes:
    sensordata: dict = {"accel": dict(zip("xyz", accel))}
    if with_gravity:
        sensordata["gravity"] = dict(zip("xyz", gravity))
    doc = {
        "device": {"name": "iPhone", "uuid": ZIGSIM_UUID, "os": "ios", "osversion": "17.1", "displaywidth": 1170, "displayheight": 2532},
        "timestamp": "2026_11_26_14:30:00.123",
        "sensordata": sensordata,
    }
    return json.dumps(doc).encode()


def _message(address: str, values: Sequence[float]) -> OscMessageBuilder:
    b = OscMessageBuilder(address)
    for v in values:
        b.add_arg(float(v))
    return b


def zigsim_osc(gravity: Triple, accel: Triple = (0.0, 0.0, 0.0)) -> bytes:
    """A bundle of the enabled sensors' messages, as ZIG SIM sends each frame."""
    bundle = OscBundleBuilder(IMMEDIATELY)
    bundle.add_content(_message(f"/ZIGSIM/{ZIGSIM_UUID}/accel", accel).build())
    bundle.add_content(_message(f"/ZIGSIM/{ZIGSIM_UUID}/gravity", gravity).build())
    return bundle.build().dgram


# Sensors2OSC: https://sensors2.org/osc/ and SensorApps/Sensors2OSC: one OSC message per sensor,
# the address named after the sensor (/gravity, /accelerometer, ...), its values as float32
# arguments; bundles optional.
def sensors2osc(sensor: str, values: Triple) -> bytes:
    return _message(f"/{sensor}", values).build().dgram


# GyrOSC (iOS): its documented address space /gyrosc/gyro, /gyrosc/accel, /gyrosc/grav (gravity
# vector x, y, z in g), /gyrosc/rrate, ...; several per packet, so a bundle here.
def gyrosc_bundle(grav: Triple, gyro: Triple = (0.01, 0.02, 0.03), accel: Triple = (0.0, 0.0, -1.0)) -> bytes:
    bundle = OscBundleBuilder(IMMEDIATELY)
    bundle.add_content(_message("/gyrosc/gyro", gyro).build())
    bundle.add_content(_message("/gyrosc/accel", accel).build())
    bundle.add_content(_message("/gyrosc/grav", grav).build())
    return bundle.build().dgram


# Sensor Logger: tszheichoi/awesome-sensor-logger PUSHING.md ("messageId", "sessionId", "deviceId",
# "payload": [{"name", "time" (UTC epoch ns), <fields>}]); UNITS.md: gravity x, y, z in m/s^2;
# "accelerometer" excludes gravity, "totalacceleration" (Android) includes it.
def sensorlogger_body(samples: Sequence[tuple[str, int, Triple]], message_id: int = 0, session: str = "7f1e0c7a-s") -> bytes:
    payload = [{"name": name, "time": t_ns, "values": dict(zip("xyz", values)), "accuracy": 3} for name, t_ns, values in samples]
    return json.dumps({"messageId": message_id, "sessionId": session, "deviceId": "0d1c2b3a-d", "payload": payload}).encode()
