// gravity-led phone page: the link to the daemon, as pure parts in the
// sans-I/O style of the daemon (docs/development.md).  Nothing here opens a
// socket, arms a timer or reads the clock: app.js tells these parts what
// happened and when, and carries out what they answer.  So the tests drive
// them on a blank page with a fake clock.

export const BUSY_CODE = 1013; // the daemon's "Try Again Later": another client holds the LEDs
export const BUSY_REASON = 'LEDs in use by another client';
export const TELEMETRY_HZ = 10;
export const BUSY_RETRY_MS = 5000;
export const BACKOFF_MS = [500, 1000, 2000, 4000, 8000]; // then stays at the last, +-20 % jitter
export const STABLE_MS = 3000; // a connection open this long resets the backoff
export const SEND_EVERY_MS = 10; // at most 100 frames a second: the PWM shows no more

// This Pi's CA for a phone to trust (daemon/mobileconfig.py): an iOS profile, the DER certificate.
export const PROFILE_PATH = '/ca.mobileconfig';
export const CA_PATH = '/ca.crt';

/** 'ios', 'android' or 'other': whose steps to show for trusting this Pi's CA. */
export function phoneKind(userAgent, maxTouchPoints) {
  const ua = userAgent || '';
  if (/iPhone|iPad|iPod/.test(ua) || (/Macintosh/.test(ua) && maxTouchPoints > 1)) return 'ios';
  if (/Android/.test(ua)) return 'android';
  return 'other';
}

/** The steps to trust this Pi's CA on a phone of `kind`: each a list of
 * strings and {link, href} parts.  The settings paths are the phones' own. */
export function trustSteps(kind) {
  const ios = [
    ['Download ', { link: 'this Pi\u2019s profile', href: PROFILE_PATH }, ' and tap Allow.'],
    ['Open Settings \u203a General \u203a VPN & Device Management, tap the gravity-led profile and Install it.'],
    ['Open Settings \u203a General \u203a About \u203a Certificate Trust Settings and enable full trust for the gravity-led CA.'],
    ['Come back to this page and tap Start.'],
  ];
  const android = [
    ['Download ', { link: 'this Pi\u2019s certificate', href: CA_PATH }, '.'],
    ['Open Settings \u203a Security \u203a Encryption & credentials \u203a Install a certificate \u203a CA certificate, and pick the downloaded file.'],
    ['Come back to this page and tap Start.'],
  ];
  if (kind === 'ios') return { ios };
  if (kind === 'android') return { android };
  return { ios, android };
}

/** The WebSocket URL for a page at `loc` ({protocol, host, search}): same
 * host and port, wss:// under https://, the page's ?token= passed on. */
export function wsUrl(loc) {
  const scheme = loc.protocol === 'https:' ? 'wss://' : 'ws://';
  const token = new URLSearchParams(loc.search).get('token');
  return scheme + loc.host + '/' + (token ? '?token=' + encodeURIComponent(token) : '');
}

/** A vector [x, y, z] as the daemon's binary frame: three little-endian
 * float32 (daemon/protocol.py). */
export function frame(d) {
  const buf = new ArrayBuffer(12);
  const view = new DataView(buf);
  view.setFloat32(0, d[0], true);
  view.setFloat32(4, d[1], true);
  view.setFloat32(8, d[2], true);
  return buf;
}

/** The subscribe message (daemon/protocol.py, Subscribe). */
export const SUBSCRIBE = JSON.stringify({ type: 'subscribe', rate: TELEMETRY_HZ });

/** A message from the daemon (daemon/protocol.py: state, error) as
 * {type: 'state', leds: {right, left}} or {type: 'error', message,
 * suppressed}; null for anything else, which the page ignores. */
export function readMessage(data) {
  if (typeof data !== 'string') return null;
  let msg;
  try { msg = JSON.parse(data); } catch (e) { return null; }
  if (!msg || typeof msg !== 'object') return null;
  if (msg.type === 'state' && msg.leds && typeof msg.leds === 'object') {
    return { type: 'state', leds: { right: msg.leds.right, left: msg.leds.left } };
  }
  if (msg.type === 'error') {
    return { type: 'error', message: String(msg.message || msg.error), suppressed: Number(msg.suppressed) || 0 };
  }
  return null;
}

/**
 * The frame cap: the newest vector at most every `everyMs` (10 ms: 100 a
 * second), and never one left behind.  A phone may fire devicemotion at
 * 200 Hz, twice what a 100 Hz PWM can show, and every frame costs the Pi CPU.
 *
 * offer(v, now) -> v when it may go now, else null: then it is kept (newer
 * ones replace it) and goes when fire() is called at or after `dueAt`.
 * `v` is anything but null; `now` in ms on one clock (performance.now()).
 */
export class Pacer {
  constructor({ everyMs = SEND_EVERY_MS } = {}) {
    this.everyMs = everyMs;
    this.lastSent = -Infinity;
    this.pending = null;
  }

  /** When the kept vector may go (ms, the caller's clock), or null. */
  get dueAt() {
    return this.pending !== null ? this.lastSent + this.everyMs : null;
  }

  offer(v, now) {
    if (now - this.lastSent >= this.everyMs) {
      this.lastSent = now;
      this.pending = null;
      return v;
    }
    this.pending = v;
    return null;
  }

  /** The timer set for dueAt fired at `now`: the kept vector, or null. */
  fire(now) {
    if (this.pending === null || now < this.dueAt) return null;
    const v = this.pending;
    this.pending = null;
    this.lastSent = now;
    return v;
  }

  /** Forget the kept vector (the connection closed). */
  reset() {
    this.pending = null;
  }
}

/**
 * The connection's state machine.  Each input returns a list of commands for
 * the page to carry out, in order:
 *   {do: 'connect', id}   open a WebSocket; report opened(id) / closed(id, ...)
 *   {do: 'send', data}    send this on the open WebSocket
 *   {do: 'close', reason} close the WebSocket (no closed() report is needed)
 *   {do: 'wait', ms}      call due() in ms, replacing any earlier wait
 *   {do: 'cancel'}        forget the wait
 *   {do: 'check'}         ask GET /status why the handshake failed, then
 *                         report checked('token' | 'refused' | 'gone')
 * `view` says what to show, a new object on every change:
 *   {state: 'idle' | 'paused' | 'connecting' | 'open' | 'busy' | 'checking'
 *           | 'lost' | 'token', ...details}
 * 'token' means the daemon wants a token the page lacks: it gave up.
 */
export class Link {
  constructor({ random = Math.random } = {}) {
    this.random = random;
    this.running = false; // started and not stopped
    this.paused = false; // running, but the page is hidden
    this.id = 0; // of the current WebSocket; reports about older ones are ignored
    this.attempt = 0; // failures in a row: the backoff step
    this.everOpen = false;
    this.openedAt = 0;
    this.delayMs = 0; // the retry delay chosen while checking
    this.view = { state: 'idle' };
  }

  get state() {
    return this.view.state;
  }

  start() {
    this.running = true;
    this.paused = false;
    this.everOpen = false;
    this.attempt = 0;
    return this._connect();
  }

  stop() {
    const cmds = this._release('stopped');
    this.running = false;
    this.paused = false;
    this.view = { state: 'idle' };
    return cmds;
  }

  pause() {
    if (!this.running || this.paused) return [];
    const cmds = this._release('page hidden');
    this.paused = true;
    this.view = { state: 'paused' };
    return cmds;
  }

  resume() {
    if (!this.running || !this.paused) return [];
    this.paused = false;
    this.attempt = 0;
    return this._connect();
  }

  opened(id, now) {
    if (id !== this.id || this.state !== 'connecting') return [];
    this.openedAt = now;
    this.everOpen = true;
    this.view = { state: 'open' };
    return [{ do: 'send', data: SUBSCRIBE }];
  }

  closed(id, now, code, reason) {
    if (id !== this.id || (this.state !== 'connecting' && this.state !== 'open')) return [];
    const wasOpen = this.state === 'open';
    if (wasOpen && now - this.openedAt >= STABLE_MS) this.attempt = 0;
    if (code === BUSY_CODE) {
      this.view = { state: 'busy', reason: reason || BUSY_REASON, retryMs: BUSY_RETRY_MS };
      return [{ do: 'wait', ms: BUSY_RETRY_MS }];
    }
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    const delay = Math.round(base * (0.8 + this.random() * 0.4));
    this.attempt += 1;
    if (wasOpen) {
      this.view = { state: 'lost', why: 'closed', code, reason: reason || '', retryMs: delay, everOpen: true };
      return [{ do: 'wait', ms: delay }];
    }
    // The handshake failed: gone, or refused (a token or origin)?  Ask over HTTP.
    this.delayMs = delay;
    this.view = { state: 'checking' };
    return [{ do: 'check' }];
  }

  checked(why) {
    if (this.state !== 'checking') return [];
    if (why === 'token') {
      this.running = false;
      this.view = { state: 'token' };
      return [];
    }
    this.view = { state: 'lost', why, retryMs: this.delayMs, everOpen: this.everOpen };
    return [{ do: 'wait', ms: this.delayMs }];
  }

  due() {
    if (this.state !== 'busy' && this.state !== 'lost') return [];
    return this._connect();
  }

  _connect() {
    this.id += 1;
    this.view = { state: 'connecting', again: this.attempt > 0 };
    return [{ do: 'cancel' }, { do: 'connect', id: this.id }];
  }

  _release(reason) {
    const cmds = [{ do: 'cancel' }];
    if (this.state === 'connecting' || this.state === 'open') cmds.push({ do: 'close', reason });
    this.id += 1;
    return cmds;
  }
}
