// gravity-led phone page: devicemotion -> WebSocket -> the daemon's two LEDs.
// ES modules, no build step, no dependencies.  This module is the page's I/O:
// the DOM, the sensor, the WebSocket and the timers.  What to send is decided
// in motion.js, when to send and how to (re)connect in link.js; both are pure.
// See docs/phones.md, "Any phone is a client".

import { isWebKitMotion, noAccelerometer, normalAngle, tiltDeg, toDaemon } from './motion.js';
import { BUSY_REASON, BUSY_RETRY_MS, Link, Pacer, frame, phoneKind, readMessage, trustSteps, wsUrl } from './link.js';

// Start connects only once the first reading came, so a page that may have no
// sensor never holds the LEDs.  Chromium says "no sensor" with an event
// (noAccelerometer), and the page says so at once; Safari and Firefox on a
// computer say nothing, so there no reading this long after Start means no
// sensor.  Not shorter: a phone may start its sensor slowly, and this wait
// holds nothing.  On iOS it starts once the permission prompt was answered.
const NO_DATA_MS = 3000;
// The daemon turns the LEDs off when no frame came for its stale_after_s, and
// the page sends a frame per reading: after as long without one it shows no
// tilt.  The daemon's value comes from /status on every connection; until
// then, the daemon's default.
const STALE_DEFAULT_MS = 1000;
const WAITING = 'Waiting for the sensor\u2026';
const MAX_BUFFERED = 240; // bytes queued in the socket: skip frames rather than lag

const $ = (id) => document.getElementById(id);
const ui = {
  start: $('start'), conn: $('conn'), connText: $('conn-text'),
  notice: $('notice'), noticeTitle: $('notice-title'), noticeText: $('notice-text'), noticeExtra: $('notice-extra'),
  tiltText: $('tilt-text'), tiltFill: $('tilt-fill'), tiltTrack: $('tilt-track'),
  ledsNote: $('leds-note'), foot: $('foot'), swap: $('swap'), help: $('https-help'),
  left: { fill: $('fill-left'), pct: $('pct-left'), bulb: $('big-left'), track: $('track-left') },
  right: { fill: $('fill-right'), pct: $('pct-right'), bulb: $('big-right'), track: $('track-right') },
  phone: $('phone'),
};

const link = new Link();
const pacer = new Pacer();
const s = {
  running: false, // the user tapped Start and not Stop
  paused: false, // running, but the page is hidden: sensor and socket released
  ws: null, wsId: 0, retryTimer: 0, sendTimer: 0, noDataTimer: 0, noticeTimer: 0,
  gotData: false, latest: null, drawPending: false, shown: null,
  lastReadingAt: 0, staleMs: STALE_DEFAULT_MS, staleTimer: 0, stale: false,
  sent: 0, sentAtTick: 0, rate: 0, tick: 0, wakeLock: null,
  webkit: isWebKitMotion(navigator.userAgent, navigator.maxTouchPoints), swap: false, notice: null,
};

function screenAngle() {
  const o = window.screen && window.screen.orientation;
  return normalAngle(o && typeof o.angle === 'number' ? o.angle : window.orientation);
}

const daemonUrl = () => wsUrl(location);

try { s.swap = localStorage.getItem('gravity-led.swap') === '1'; } catch (e) { /* private mode */ }
ui.swap.checked = s.swap;
ui.swap.addEventListener('change', () => {
  s.swap = ui.swap.checked;
  try { localStorage.setItem('gravity-led.swap', s.swap ? '1' : '0'); } catch (e) { /* ignore */ }
});

function setConn(state, text) {
  ui.conn.dataset.state = state;
  ui.connText.textContent = text;
}

// One notice at a time; `kind` lets a later event clear only its own notice.
function showNotice(kind, level, title, text, extra) {
  clearTimeout(s.noticeTimer);
  s.notice = kind;
  ui.notice.dataset.level = level;
  ui.noticeTitle.textContent = title;
  ui.noticeText.textContent = text;
  ui.noticeExtra.replaceChildren();
  ui.noticeExtra.hidden = !extra;
  if (extra) ui.noticeExtra.append(...extra);
  ui.notice.hidden = false;
}

function clearNotice(...kinds) {
  if (s.notice && (kinds.length === 0 || kinds.includes(s.notice))) {
    s.notice = null;
    ui.notice.hidden = true;
  }
}

function anchor(text, href, onclick) {
  const a = document.createElement('a');
  a.textContent = text;
  a.href = href;
  if (onclick) a.addEventListener('click', onclick);
  return a;
}

const helpLink = () => anchor('Help', '#https-help', () => { ui.help.open = true; });

function showInsecure() {
  const https = 'https://' + location.host + location.pathname + location.search;
  showNotice('insecure', 'error', 'This page needs HTTPS',
    'Phones only share motion sensors with pages opened over https:// (or on localhost), and this one came over plain http://, so tilting will do nothing.',
    ['Start the daemon with a certificate (gravity-led-daemon make-cert, see "Any phone is a client" in docs/phones.md) and open ',
      anchor(https, https), '. ', helpLink(), '.']);
}

// The page came over https, yet its WebSocket failed before opening: most
// often the phone does not trust the certificate for the socket (iOS never
// applies "accept this certificate" to wss://).  The steps for this phone.
function showTrust(again) {
  const titles = { ios: 'iPhone, iPad', android: 'Android' };
  const extra = [];
  for (const [kind, steps] of Object.entries(trustSteps(phoneKind(navigator.userAgent, navigator.maxTouchPoints)))) {
    const ol = document.createElement('ol');
    ol.className = 'steps';
    ol.dataset.phone = kind;
    for (const parts of steps) {
      const li = document.createElement('li');
      li.append(...parts.map((p) => (typeof p === 'string' ? p : anchor(p.link, p.href))));
      ol.append(li);
    }
    const head = document.createElement('strong');
    head.textContent = titles[kind];
    extra.push(head, ol);
  }
  showNotice('trust', 'error', 'This phone does not trust the Pi yet',
    'The page loaded over https, but its connection to the LEDs failed before opening, which most often means this phone does not trust the Pi\u2019s certificate for it: trust the Pi\u2019s certificate authority once, as below.' + again,
    extra);
}

// ---- LEDs and tilt display -------------------------------------------------
function showLed(side, duty) {
  const u = ui[side];
  if (duty == null || !Number.isFinite(duty)) {
    u.fill.style.width = '0%';
    u.pct.textContent = '\u2013';
    u.bulb.style.setProperty('--level', 0);
    u.track.setAttribute('aria-valuenow', '0');
    return;
  }
  const pct = Math.round(Math.max(0, Math.min(1, duty)) * 100);
  u.fill.style.width = pct + '%';
  u.pct.textContent = pct + '%';
  u.bulb.style.setProperty('--level', Math.max(0, Math.min(1, duty)).toFixed(3));
  u.track.setAttribute('aria-valuenow', String(pct));
}

function showLeds(leds) {
  showLed('right', leds ? leds.right : null);
  showLed('left', leds ? leds.left : null);
  ui.ledsNote.textContent = leds ? 'live' : 'no data';
}

function draw() {
  s.drawPending = false;
  const d = s.stale ? null : s.latest;
  if (!d) {
    ui.phone.style.transform = 'rotate(0deg)';
    ui.tiltText.textContent = s.stale ? 'no reading' : '\u2013';
    ui.tiltFill.style.left = '50%';
    ui.tiltFill.style.width = '0%';
    return;
  }
  const deg = tiltDeg(d);
  const r = Math.round(deg);
  ui.phone.style.transform = 'rotate(' + deg.toFixed(1) + 'deg)';
  ui.tiltText.textContent = r === 0 ? 'level' : Math.abs(r) + '\u00b0 ' + (r > 0 ? 'right' : 'left');
  const w = Math.abs(deg) / 90 * 50;
  ui.tiltFill.style.left = (deg >= 0 ? 50 : 50 - w) + '%';
  ui.tiltFill.style.width = w + '%';
  ui.tiltTrack.setAttribute('aria-valuenow', String(r));
}

function scheduleDraw() {
  if (!s.drawPending) {
    s.drawPending = true;
    requestAnimationFrame(draw);
  }
}

function updateFoot() {
  const now = performance.now();
  if (now - s.tick >= 1000) {
    s.rate = Math.round((s.sent - s.sentAtTick) * 1000 / (now - s.tick || 1));
    s.sentAtTick = s.sent;
    s.tick = now;
  }
  const where = daemonUrl().replace(/\?.*$/, '');
  ui.foot.textContent = s.ws && s.ws.readyState === WebSocket.OPEN
    ? 'Sending ' + s.rate + ' frames/s to ' + where
    : 'Daemon: ' + where;
}

// ---- sensor ----------------------------------------------------------------
function send(d) {
  const ws = s.ws;
  if (ws && ws.readyState === WebSocket.OPEN && ws.bufferedAmount <= MAX_BUFFERED) {
    ws.send(frame(d));
    s.sent += 1;
  }
}

function sendDue() {
  s.sendTimer = 0;
  const d = pacer.fire(performance.now());
  if (d) send(d);
  else if (pacer.dueAt !== null) armSend(); // woke a little early
}

function armSend() {
  if (!s.sendTimer) s.sendTimer = setTimeout(sendDue, Math.max(0, pacer.dueAt - performance.now()));
}

function onMotion(ev) {
  const g = ev.accelerationIncludingGravity;
  const d = toDaemon(g, screenAngle(), s.webkit, s.swap);
  if (!d) {
    if (!s.gotData && noAccelerometer(g)) noData(); // Chromium: no sensor, say so now
    return;
  }
  if (!s.gotData) { // a sensor: now take the LEDs
    s.gotData = true;
    clearTimeout(s.noDataTimer);
    clearNotice('nosensor');
    apply(link.start());
  }
  s.latest = d;
  s.lastReadingAt = performance.now();
  s.stale = false;
  armStale();
  scheduleDraw();
  if (pacer.offer(d, performance.now())) send(d);
  else armSend();
}

function listen(on) {
  if (on) window.addEventListener('devicemotion', onMotion);
  else window.removeEventListener('devicemotion', onMotion);
  if (!on) {
    clearTimeout(s.sendTimer);
    s.sendTimer = 0;
    pacer.reset();
  }
}

// One timer per stale period, moved on when it fires early (not per reading).
function armStale() {
  if (!s.staleTimer) s.staleTimer = setTimeout(checkStale, s.lastReadingAt + s.staleMs - performance.now());
}

function checkStale() {
  clearTimeout(s.staleTimer);
  s.staleTimer = 0;
  if (!s.latest || s.stale) return;
  if (performance.now() - s.lastReadingAt < s.staleMs) {
    armStale();
  } else {
    s.stale = true;
    scheduleDraw();
  }
}

async function learnStaleAfter() {
  try {
    const r = await fetch('/status' + location.search, { cache: 'no-store' });
    const v = r.ok ? (await r.json()).stale_after_s : NaN;
    if (typeof v === 'number' && v > 0 && v < 1e6) s.staleMs = v * 1000; // 1e6 s: setTimeout's range
  } catch (e) { /* keep what the page had */ }
  checkStale();
}

function armNoDataTimer() {
  clearTimeout(s.noDataTimer);
  if (s.gotData) return;
  s.noDataTimer = setTimeout(noData, NO_DATA_MS);
}

async function noData() {
  if (!s.running || s.paused || s.gotData) return;
  let denied = false;
  try {
    if (navigator.permissions) {
      const p = await navigator.permissions.query({ name: 'accelerometer' });
      denied = p.state === 'denied';
    }
  } catch (e) { /* this browser does not know the permission name */ }
  if (!s.running || s.paused || s.gotData) return;
  stop();
  if (!window.isSecureContext) {
    showInsecure();
  } else if (denied) {
    showNotice('denied', 'error', 'Motion access is blocked',
      'This browser blocks motion sensors for this site. Allow "Motion sensors" in the site settings (the icon left of the address), then tap Start again.');
  } else {
    showNotice('nosensor', 'error', 'No motion sensor',
      'No tilt readings arrived. This device may have no motion sensor (a desktop computer), or the browser does not give it to web pages. Open this page on a phone.');
  }
}

// ---- WebSocket: carry out what the link (link.js) decides ------------------------
function apply(cmds) {
  for (const c of cmds) {
    switch (c.do) {
      case 'connect': open(c.id); break;
      case 'send': if (s.ws && s.ws.readyState === WebSocket.OPEN) s.ws.send(c.data); break;
      case 'close': closeSocket(c.reason); break;
      case 'wait':
        clearTimeout(s.retryTimer);
        s.retryTimer = setTimeout(() => apply(link.due()), c.ms);
        break;
      case 'cancel': clearTimeout(s.retryTimer); break;
      case 'check': diagnose().then((why) => apply(link.checked(why))); break;
      default: throw new Error('unknown link command ' + c.do);
    }
  }
  showLink(link.view);
}

function open(id) {
  let ws;
  try {
    ws = new WebSocket(daemonUrl());
  } catch (e) {
    stop();
    showNotice('lost', 'error', 'Cannot connect', String(e.message || e));
    return;
  }
  ws.binaryType = 'arraybuffer';
  s.ws = ws;
  ws.onopen = () => {
    apply(link.opened(id, performance.now()));
    learnStaleAfter();
  };
  ws.onmessage = (ev) => {
    if (s.ws !== ws) return;
    const msg = readMessage(ev.data);
    if (!msg) return;
    if (msg.type === 'state') {
      showLeds(msg.leds);
    } else if (msg.type === 'error') {
      if (s.notice && s.notice !== 'frame') return; // never hide a bigger problem
      showNotice('frame', 'warn', 'The daemon rejected a frame',
        msg.message + (msg.suppressed ? ' (and ' + msg.suppressed + ' more)' : ''));
      s.noticeTimer = setTimeout(() => clearNotice('frame'), 5000);
    }
  };
  ws.onclose = (ev) => {
    if (s.ws === ws) {
      s.ws = null;
      showLeds(null);
    }
    apply(link.closed(id, performance.now(), ev.code, ev.reason));
  };
}

function closeSocket(reason) {
  const ws = s.ws;
  s.ws = null;
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, reason);
  showLeds(null);
}

// After a failed handshake: 'gone' (no answer), 'token' (401) or 'refused'.
async function diagnose() {
  try {
    const r = await fetch('/status' + location.search, { cache: 'no-store' });
    return r.status === 401 ? 'token' : 'refused';
  } catch (e) {
    return 'gone';
  }
}

// What the link's state means on the page.
function showLink(v) {
  if (v === s.shown) return;
  s.shown = v;
  const again = v.retryMs ? ' Retrying in ' + (v.retryMs / 1000).toFixed(1) + ' s.' : '';
  switch (v.state) {
    case 'idle': break; // stop() says Stopped
    case 'paused': setConn('idle', 'Paused'); break;
    case 'connecting': setConn('connecting', v.again ? 'Reconnecting\u2026' : 'Connecting\u2026'); break;
    case 'open':
      setConn('open', 'Connected');
      clearNotice('busy', 'lost', 'trust');
      break;
    case 'busy':
      setConn('busy', 'Busy');
      showNotice('busy', 'warn', v.reason || BUSY_REASON,
        'Another phone or program is driving the LEDs. This page takes over as soon as they are free: it asks again every ' +
        BUSY_RETRY_MS / 1000 + ' s.');
      break;
    case 'checking': setConn('lost', 'Offline'); break;
    case 'lost': {
      setConn('lost', 'Offline');
      if (v.why === 'closed') {
        const why = v.reason ? ' It said: \u201c' + v.reason + '\u201d (code ' + v.code + ').' : '';
        showNotice('lost', 'error', 'Connection to the daemon lost',
          'The daemon at ' + location.host + ' closed the connection or went away.' + why + again);
      } else {
        if (v.why === 'refused' && !v.everOpen && location.protocol === 'https:') {
          showTrust(again);
          break;
        }
        showNotice('lost', 'error', v.everOpen ? 'Connection to the daemon lost' : 'Cannot reach the daemon',
          (v.why === 'refused'
            ? 'The daemon at ' + location.host + ' is running but refused the connection (its log says why).'
            : 'Nothing answers at ' + location.host + ': the daemon is stopped or restarting, or this phone left its network.') + again);
      }
      break;
    }
    case 'token': {
      stop();
      const hasToken = new URLSearchParams(location.search).has('token');
      showNotice('token', 'error', hasToken ? 'Wrong token' : 'The daemon needs a token',
        'This daemon only accepts clients that know its secret token. Open the page as ' +
        location.origin + '/?token=SECRET, with the token from the daemon\u2019s token_file.');
      break;
    }
    default: throw new Error('unknown link state ' + v.state);
  }
}

// ---- wake lock: keep the screen on while driving the LEDs --------------------
function keepAwake(on) {
  if (!on) {
    if (s.wakeLock) s.wakeLock.release().catch(() => {});
    s.wakeLock = null;
    return;
  }
  if (s.wakeLock || !navigator.wakeLock || document.hidden) return;
  navigator.wakeLock.request('screen').then((l) => { s.wakeLock = l; }, () => {});
}

// ---- Start / Stop / hide ------------------------------------------------------
async function start() {
  clearNotice('busy', 'lost', 'trust', 'nosensor', 'denied', 'noapi', 'frame', 'token');
  if (!window.isSecureContext) { // no browser gives motion sensors to it
    showInsecure();
    return;
  }
  if (!('DeviceMotionEvent' in window)) {
    showNotice('noapi', 'error', 'No motion sensor',
      'This browser has no motion sensor support (DeviceMotionEvent), so it cannot drive the LEDs. Try Chrome or Safari on a phone.');
    return;
  }
  // iOS/iPadOS: must be asked from the tap itself, before anything else awaits.
  if (typeof DeviceMotionEvent.requestPermission === 'function') {
    let answer;
    try { answer = await DeviceMotionEvent.requestPermission(); } catch (e) { answer = 'error'; }
    if (answer !== 'granted') {
      showNotice('denied', 'error', 'Motion access was denied',
        'The LEDs follow the phone\u2019s motion sensor, which the browser only shares when you allow it. ' +
        (s.webkit
          ? 'Close this tab, open the page again, tap Start and then Allow; or turn on Motion & Orientation Access in Settings \u203a Apps \u203a Safari.'
          : 'Allow "Motion sensors" in the site settings (the icon left of the address), then tap Start again.'));
      return;
    }
  }
  s.running = true;
  s.paused = false;
  s.gotData = false;
  ui.start.textContent = 'Stop';
  ui.start.classList.add('stop');
  setConn('connecting', WAITING);
  listen(true);
  armNoDataTimer();
  keepAwake(true);
}

function stop() {
  s.running = false;
  s.paused = false;
  listen(false);
  clearTimeout(s.noDataTimer);
  apply(link.stop());
  keepAwake(false);
  s.latest = null;
  s.stale = false;
  checkStale();
  scheduleDraw();
  ui.start.textContent = 'Start';
  ui.start.classList.remove('stop');
  setConn('idle', 'Stopped');
  clearNotice('busy', 'lost', 'frame');  // not 'trust': its steps are still to do
}

function pause() {
  if (!s.running || s.paused) return;
  s.paused = true;
  listen(false);
  clearTimeout(s.noDataTimer);
  apply(link.pause());
  if (!s.gotData) setConn('idle', 'Paused');
  keepAwake(false);
}

function resume() {
  if (!s.running || !s.paused) return;
  s.paused = false;
  listen(true);
  armNoDataTimer();
  if (!s.gotData) setConn('connecting', WAITING);
  apply(link.resume());
  keepAwake(true);
}

ui.start.addEventListener('click', () => { if (s.running) stop(); else start(); });
document.addEventListener('visibilitychange', () => { if (document.hidden) pause(); else resume(); });
window.addEventListener('pagehide', pause);
window.addEventListener('pageshow', () => { if (!document.hidden) resume(); });

if (!window.isSecureContext) showInsecure();
showLeds(null);
draw();
updateFoot();
setInterval(updateFoot, 1000);

// For tests and curious users (devtools console).
window.gravityLed = {
  screenAngle,
  isWebKitMotion: () => s.webkit,
  wsUrl: daemonUrl,
  state: s,
  link,
};
