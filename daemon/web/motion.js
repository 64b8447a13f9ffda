// gravity-led phone page: the motion math.  Pure: no DOM, no globals, no
// clock; every input is an argument, so tests run it on a blank page.
//
// Axes.  Everything is normalised to the W3C DeviceOrientation convention,
// which is also Android's: device frame, x to the right of the screen in its
// natural orientation, y to its top, z out of the screen; the value is the
// reaction to gravity, so a phone lying face up reads (0, 0, +9.81) and one
// held upright reads (0, +9.81, 0).  WebKit (every browser on iOS/iPadOS)
// reports the opposite sign on all three axes, so it is negated there.
// The vector is then turned into the frame of the screen as the user sees it
// (screen.orientation.angle) and rotated a quarter turn about z for the
// daemon, whose default axis is y with right = +y:
//     sent = (screen_y, -screen_x, z)
// Rolling the phone to the right (right edge down, lying flat or held like a
// steering wheel) makes screen_x negative, so the daemon's y goes positive
// and the right LED lights.  In landscape-primary this is exactly the raw
// Android vector the article's app sent.  The rotation keeps the vector's
// length, so y/|v| is still the sine of the roll.  docs/phones.md: "Axes".

/** A component smaller than this (m/s^2) is sent as 0. */
export const TINY = 1e-3;
/** No component is sent larger than this (m/s^2). */
export const LARGEST = 1000;

/** Degrees in [0, 360) from screen.orientation.angle, or the older
 * window.orientation (-90..180), or 0 when the browser gives neither. */
export function normalAngle(angle) {
  if (typeof angle !== 'number' || !Number.isFinite(angle)) return 0;
  return ((Math.round(angle) % 360) + 360) % 360;
}

/** Whether motion readings come with WebKit's signs, from the user agent
 * string and navigator.maxTouchPoints. */
export function isWebKitMotion(userAgent, maxTouchPoints) {
  const ua = userAgent || '';
  if (/iPhone|iPad|iPod/.test(ua)) return true;
  // iPadOS asks for desktop pages by default and then says "Macintosh".
  // (DeviceMotionEvent.requestPermission is no sign of WebKit: Chromium has it too.)
  return /Macintosh/.test(ua) && maxTouchPoints > 1;
}

// A component tiny enough to be noise is sent as 0, and none is larger than
// LARGEST: then no float32 frame can consist only of the bytes the daemon
// would read as a text frame ("0-9 + - . e E , space").
function clean(c) {
  if (Math.abs(c) < TINY) return 0;
  return Math.max(-LARGEST, Math.min(LARGEST, c));
}

/** g: {x, y, z} as the browser gives it (accelerationIncludingGravity);
 * angle: the screen's rotation in degrees (normalAngle); webkit: negate
 * first; swap: the user's "swap left and right".  Returns [x, y, z] for the
 * daemon, or null when there is nothing usable (Chromium without a sensor
 * fires one event of nulls). */
export function toDaemon(g, angle, webkit, swap) {
  if (!g) return null;
  let x = g.x, y = g.y, z = g.z;
  if (![x, y, z].every((c) => typeof c === 'number' && Number.isFinite(c))) return null;
  if (webkit) { x = -x; y = -y; z = -z; }
  let sx, sy;
  switch (angle) {
    case 0: sx = x; sy = y; break;
    case 90: sx = -y; sy = x; break;
    case 180: sx = -x; sy = -y; break;
    case 270: sx = y; sy = -x; break;
    default: {
      const r = angle * Math.PI / 180;
      sx = x * Math.cos(r) - y * Math.sin(r);
      sy = x * Math.sin(r) + y * Math.cos(r);
    }
  }
  const d = [clean(sy), clean(-sx), clean(z)];
  if (swap) d[1] = -d[1];
  if (d[0] === 0 && d[1] === 0 && d[2] === 0) return null;
  return d;
}

/** Whether a devicemotion event's accelerationIncludingGravity carries no
 * numbers at all: Chromium's way of saying that this page gets no
 * accelerometer (none, or blocked).  It fires one such event once its
 * sensors have started or failed and never a null one when the accelerometer
 * works (it waits for the first reading), so this is an answer, not a guess. */
export function noAccelerometer(g) {
  return !g || [g.x, g.y, g.z].every((c) => c === null || c === undefined);
}

/** Roll in degrees, right positive: the angle whose sine the daemon uses. */
export function tiltDeg(d) {
  const n = Math.hypot(d[0], d[1], d[2]);
  return Math.asin(Math.max(-1, Math.min(1, d[1] / n))) * 180 / Math.PI;
}
